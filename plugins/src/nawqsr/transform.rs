//! The transform: one input frame → one output frame through the running codec.
//! Buffers are mapped as video frames (so `GstVideoMeta` strides and offsets are
//! honoured), lent to the codec as `FrameRef`/`FrameMut`, and the codec runs
//! under `catch_unwind`: a panic in it (or a dependency) becomes an element
//! error, never a dead streaming thread. Afterwards the frame's cost feeds the
//! ladder, the latency estimate and the stats messages.
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use gst::subclass::prelude::*;
use gst_video::prelude::*;

use nawqsr_codec::runtime::frame::{Colorimetry, Matrix, Range, Siting};
use nawqsr_codec::runtime::quality::{SAMPLE_SIDE, piqe_sample};
use nawqsr_codec::runtime::{FrameMut, FrameRef, Mode, PixelFormat};

use super::imp::{CAT, Nawqsr};

/// Most of the frames' processing time the PIQE sampler may take.
const PIQE_BUDGET: f64 = 0.01;

/// Borrows the planes of a mapped frame in the codec's terms.
pub(super) fn frame_ref<'a>(
    frame: &'a gst_video::VideoFrameRef<&gst::BufferRef>,
    format: PixelFormat,
) -> Result<FrameRef<'a>, String> {
    let mut planes: [&[u8]; 3] = [&[]; 3];
    let mut strides = [0usize; 3];
    for i in 0..frame.n_planes() as usize {
        planes[i] = frame
            .plane_data(i as u32)
            .map_err(|e| format!("input plane {i}: {e}"))?;
        strides[i] = usize::try_from(frame.plane_stride()[i])
            .map_err(|_| format!("input plane {i}: negative stride"))?;
    }
    Ok(FrameRef {
        format,
        width: frame.width() as usize,
        height: frame.height() as usize,
        planes,
        strides,
        colorimetry: colorimetry(frame.info()),
    })
}

/// The matrix, range and chroma siting of a YUV frame, from its caps (GStreamer fills an
/// unspecified colorimetry by size: BT.601 for SD, BT.709 for HD). Matrices
/// the codec does not have (FCC, SMPTE 240M, RGB) read as BT.601, as before.
pub(super) fn colorimetry(info: &gst_video::VideoInfo) -> Colorimetry {
    let c = info.colorimetry();
    Colorimetry {
        matrix: match c.matrix() {
            gst_video::VideoColorMatrix::Bt709 => Matrix::Bt709,
            gst_video::VideoColorMatrix::Bt2020 => Matrix::Bt2020,
            _ => Matrix::Bt601,
        },
        range: match c.range() {
            gst_video::VideoColorRange::Range0_255 => Range::Full,
            _ => Range::Limited,
        },
        siting: if info
            .chroma_site()
            .contains(gst_video::VideoChromaSite::H_COSITED)
        {
            Siting::Left
        } else {
            Siting::Centre
        },
    }
}

pub(super) fn frame_mut<'a>(
    frame: &'a mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
    format: PixelFormat,
) -> Result<FrameMut<'a>, String> {
    let (width, height, n) = (
        frame.width() as usize,
        frame.height() as usize,
        frame.n_planes() as usize,
    );
    let mut strides = [0usize; 3];
    for (i, s) in strides.iter_mut().enumerate().take(n) {
        *s = usize::try_from(frame.plane_stride()[i])
            .map_err(|_| format!("output plane {i}: negative stride"))?;
    }
    let colorimetry = colorimetry(frame.info());
    let [p0, p1, p2, _] = frame.planes_data_mut();
    Ok(FrameMut {
        format,
        width,
        height,
        planes: [p0, p1, p2],
        strides,
        colorimetry,
    })
}

impl Nawqsr {
    pub(super) fn transform_frame(
        &self,
        inbuf: &gst::Buffer,
        outbuf: &mut gst::BufferRef,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let (user_mode, stats_interval, latency_target, piqe_interval) = {
            let s = self.settings.lock().unwrap();
            (
                Mode::from(s.mode),
                s.stats_interval,
                s.latency_target,
                s.piqe_interval,
            )
        };
        let mut guard = self.state.lock().unwrap();
        let Some(state) = guard.as_mut() else {
            gst::element_imp_error!(self, gst::CoreError::Negotiation, ("not started"));
            return Err(gst::FlowError::NotNegotiated);
        };
        let mut msgs = self.reconcile_mode(state, user_mode);
        let (Some(in_info), Some(out_info), Some(format)) =
            (&state.in_info, &state.out_info, state.format)
        else {
            drop(guard);
            self.post(msgs);
            gst::element_imp_error!(self, gst::CoreError::Negotiation, ("no caps negotiated"));
            return Err(gst::FlowError::NotNegotiated);
        };
        let fps = in_info.fps();

        let fail = |what: String| {
            gst::error!(CAT, imp = self, "{what}");
            gst::element_imp_error!(self, gst::StreamError::Failed, ("{what}"));
            gst::FlowError::Error
        };
        let in_frame = gst_video::VideoFrameRef::from_buffer_ref_readable(inbuf.as_ref(), in_info)
            .map_err(|e| {
                fail(format!(
                    "cannot map the input buffer as {:?}: {e}",
                    in_info.format()
                ))
            })?;
        let mut out_frame = gst_video::VideoFrameRef::from_buffer_ref_writable(outbuf, out_info)
            .map_err(|e| {
                fail(format!(
                    "cannot map the output buffer as {:?}: {e}",
                    out_info.format()
                ))
            })?;
        let src = frame_ref(&in_frame, format).map_err(fail)?;
        let mut dst = frame_mut(&mut out_frame, format).map_err(fail)?;

        let t0 = Instant::now();
        // Temporal reuse restarts after a discontinuity and when another
        // codec (mode, front point) takes over.
        let id = state.codec() as *const _ as usize;
        if inbuf.flags().contains(gst::BufferFlags::DISCONT) || id != state.last_codec {
            state.reset_reuse();
            state.last_codec = id;
        }
        let codec = state.codec();
        // The codec must not take the streaming thread down with it.
        let counts_before = codec.patch_counts();
        let result = catch_unwind(AssertUnwindSafe(|| codec.upscale(&src, &mut dst)));
        let dt = t0.elapsed();
        let counts = codec.patch_counts().since(&counts_before);
        let mode = state.active;
        drop(guard);
        // FYE-SR's perceptual score, sampled on the output we just wrote.
        // A sample (~6 ms for the 256×256 crop) is skipped while the sampler
        // has used more than 1 % of the frames' time: fast modes (bicubic, small
        // frames) would otherwise pay far more than the interval suggests.
        let (frame_no, within_budget) = {
            let t = self.timing.lock().unwrap();
            (
                t.frames,
                t.piqe_time.as_secs_f64() <= PIQE_BUDGET * t.frame_time.as_secs_f64(),
            )
        };
        let piqe = (result.as_ref().is_ok_and(|r| r.is_ok())
            && piqe_interval > 0
            && within_budget
            && frame_no.is_multiple_of(u64::from(piqe_interval)))
        .then(|| {
            let t = Instant::now();
            let view = FrameRef {
                format: dst.format,
                width: dst.width,
                height: dst.height,
                planes: [&*dst.planes[0], &*dst.planes[1], &*dst.planes[2]],
                strides: dst.strides,
                colorimetry: dst.colorimetry,
            };
            (piqe_sample(&view, SAMPLE_SIDE), t.elapsed())
        });

        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                self.post(msgs);
                return Err(fail(format!("mode {}: upscaling failed: {e}", mode.name())));
            }
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                self.post(msgs);
                return Err(fail(format!(
                    "mode {}: the codec panicked: {what}",
                    mode.name()
                )));
            }
        }

        // How much of the frame interval this mode used: the ladder's measure of
        // whether stepping up into it again can keep up.
        let interval = if fps.numer() > 0 {
            Some(f64::from(fps.denom()) / f64::from(fps.numer()))
        } else {
            inbuf.duration().map(|d| d.nseconds() as f64 / 1e9)
        };
        let interval = interval.filter(|&s| s > 0.0);
        if let Some(interval) = interval {
            self.ladder
                .lock()
                .unwrap()
                .record_cost(mode, dt.as_secs_f64() / interval);
        }
        // FYE-SR's latency target, online: the property, else (live streams)
        // the frame interval less a margin for the rest of the pipeline.
        let plan = {
            let mut guard = self.state.lock().unwrap();
            guard.as_mut().and_then(|state| {
                let t = if latency_target > 0.0 {
                    latency_target
                } else {
                    if state.front.is_none() {
                        return None;
                    }
                    let live = *state.live.get_or_insert_with(|| self.upstream_is_live());
                    if !live {
                        return None;
                    }
                    interval? * 1e3 * 0.85
                };
                msgs.extend(self.steer(state, dt.as_secs_f64() * 1e3, t));
                Self::plan_info(state, t)
            })
        };

        let latency_changed = {
            let mut timing = self.timing.lock().unwrap();
            if timing.window_start.is_none() {
                timing.window_start = Some(t0);
            }
            timing.record(dt);
            timing.window_reused += counts.reused;
            timing.window_routed += counts.routed;
            timing.window_patches += counts.patches;
            if let Some((score, cost)) = piqe {
                timing.piqe_time += cost;
                if score.is_some() {
                    timing.piqe = score;
                }
            }
            gst::trace!(
                CAT,
                imp = self,
                "frame {} in {dt:?} ({})",
                timing.frames,
                mode.name()
            );
            if stats_interval > 0 && timing.frames.is_multiple_of(u64::from(stats_interval)) {
                msgs.push(self.stats_message(&mut timing, mode, plan));
            }
            let changed = timing.latency_changed();
            if changed {
                // Tell the pipeline once; the next latency query updates `reported`.
                timing.reported = None;
            }
            changed
        };
        if latency_changed {
            msgs.push(gst::message::Latency::builder().src(&*self.obj()).build());
        }
        self.post(msgs);
        Ok(gst::FlowSuccess::Ok)
    }

    /// Asks upstream whether it is live (a latency query).
    fn upstream_is_live(&self) -> bool {
        let mut q = gst::query::Latency::new();
        self.obj()
            .static_pad("sink")
            .is_some_and(|p| p.peer_query(&mut q))
            && q.result().0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    /// The caps' colorimetry reaches the codec: BT.709 and BT.2020 as
    /// themselves, full range as full, and an SD frame without one as GStreamer
    /// defaults it (BT.601 limited).
    #[test]
    fn colorimetry_comes_from_the_caps() {
        gst::init().unwrap();
        let info = |c: Option<&str>, w: u32, h: u32| {
            let mut b = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, w, h);
            let cm;
            if let Some(c) = c {
                cm = gst_video::VideoColorimetry::from_str(c).unwrap();
                b = b.colorimetry(&cm);
            }
            b.build().unwrap()
        };
        let c = |m, r| Colorimetry {
            matrix: m,
            range: r,
            siting: Siting::Centre,
        };
        assert_eq!(
            colorimetry(&info(Some("bt709"), 64, 32)),
            c(Matrix::Bt709, Range::Limited)
        );
        assert_eq!(
            colorimetry(&info(Some("bt2020"), 64, 32)),
            c(Matrix::Bt2020, Range::Limited)
        );
        assert_eq!(
            colorimetry(&info(Some("1:3:5:1"), 64, 32)),
            c(Matrix::Bt709, Range::Full)
        );
        assert_eq!(
            colorimetry(&info(None, 640, 480)),
            c(Matrix::Bt601, Range::Limited)
        );
        // H.264's siting: on the even luma column.
        let mpeg2 = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, 64, 32)
            .chroma_site(gst_video::VideoChromaSite::MPEG2)
            .build()
            .unwrap();
        assert_eq!(colorimetry(&mpeg2).siting, Siting::Left);
    }
}
