//! `Codec`: one configured upscaler — the Neural Image Codec of §4.3.
//!
//! Integer modes (Hybrid, Int8, A16w8) run the compiled graph patch by patch
//! through the dispatcher and the two units (`dispatcher`, `engine::tiles`);
//! the output is bit-identical to whole-frame execution for any patch size and
//! thread count. Fp32 (tract) is the reference and runs as before; Bicubic runs
//! the fixed-point `bicubic` module in bands of output rows.
//! - Synchronous: [`Codec::upscale`] / [`Codec::upscale_rgb`] (any number of
//!   callers; each frame goes through the dispatcher).
//! - Streaming: [`Codec::stream`] → [`Stream`] (`submit` / `receive` / `flush`).
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use image::{GrayImage, RgbImage};

use super::buffers::Upscaled;
use super::dispatcher::{Fault, Runtime, RuntimeConfig};
use super::frame::{FrameMut, FrameRef};
use super::luma::Plane;
use super::stream::{Stream, StreamConfig};
use super::telemetry::{PatchCounts, Stats};
use crate::engine::tiles::{FrameInput, Pixels};
use crate::engine::{Engine, Plan, Tensor, resolve_threads};
use crate::error::{Error, Result};
use crate::kernels::CpuLevel;
use crate::model::bundled;
use crate::quant::{Bits, WeightGranularity};
use crate::schedule::{Pareto, Schedule, ScheduleSource};

/// Default patch height in LR rows when `patch_size` is 0. Worker CPU ms/frame,
/// int8, 2 workers (`bench_patch_size` in codec/tests/runtime.rs): IMDN_x4
/// 320×180: 2 rows 328, 4: 336, 8: 344, **16: 320**, 32: 323, 64: 377, whole
/// frame 490; IMDN_RTC_x2 960×540: 8 rows 358, 16: 375, 64: 385, whole 715.
/// Bands of 16 rows keep a layer's band (16·W·64 values) in L2 between layers.
pub const DEFAULT_PATCH_ROWS: usize = 16;

/// Frames the dispatcher works on at once: two, so that one frame's barriers
/// (global pooling, DRE ranges) are filled with the next frame's bands.
const MAX_IN_FLIGHT: usize = 2;

/// Precision plan the codec runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// The schedule's per-layer bitwidths and DRE flags (§4.1–4.2).
    #[default]
    Hybrid,
    /// Every layer on the INT8 unit.
    Int8,
    /// Every layer on the A16W8 unit.
    A16w8,
    /// The original FP32 model, on the engine's own float convs in bands.
    Fp32,
    /// No network: MATLAB-compatible bicubic upscaling.
    Bicubic,
}

impl Mode {
    pub const ALL: [Mode; 5] = [
        Mode::Hybrid,
        Mode::Int8,
        Mode::A16w8,
        Mode::Fp32,
        Mode::Bicubic,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Hybrid => "hybrid",
            Mode::Int8 => "int8",
            Mode::A16w8 => "a16w8",
            Mode::Fp32 => "fp32",
            Mode::Bicubic => "bicubic",
        }
    }

    pub fn parse(s: &str) -> Result<Mode> {
        Mode::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "invalid mode '{s}' (expected hybrid, int8, a16w8, fp32 or bicubic)"
                ))
            })
    }
}

/// Output pixels per bicubic thread (see `Codec::upscale_rgb`).
const BICUBIC_PIXELS_PER_THREAD: usize = 2 << 20;

/// Most worker threads a codec starts (the element's `threads` range too).
pub const MAX_THREADS: usize = 256;

/// What to build a [`Codec`] from.
#[derive(Clone, Debug, Default)]
pub struct CodecConfig {
    /// ONNX model. None: the bundled model for `scale` (network modes).
    pub model: Option<PathBuf>,
    /// Schedule file (hybrid mode).
    pub schedule: Option<PathBuf>,
    pub mode: Mode,
    /// Upscaling factor; with a model it must match the model's.
    pub scale: Option<usize>,
    /// Worker threads (0 = all cores).
    pub threads: usize,
    /// LR patch height in rows: patches are full-width bands (0 = the measured
    /// default, [`DEFAULT_PATCH_ROWS`]; ≥ the frame height = whole frame).
    pub patch_size: usize,
    /// Temporal reuse (issue 18): a frame takes every output patch whose
    /// receptive field is unchanged since the previous frame (bit-identical
    /// unless `reuse_threshold`), so the output equals recomputing
    /// (`runtime::reuse`). For video; off by default (images, tests).
    pub reuse: bool,
    /// Tolerant reuse (synchronous API): above 0, a pixel counts as changed
    /// only when a channel moved by more than this (of 255); the output then
    /// differs from recomputing by a measured amount (`bench --reuse
    /// tolerant` reports the PSNR against it). 0: exact.
    pub reuse_threshold: u8,
    /// Side of temporal reuse's 2D patches in LR pixels, 4 to 256 (0: the
    /// measured default, [`REUSE_PATCH`]). Smaller patches find more
    /// unchanged ones on scattered motion, larger ones fewer, bigger
    /// sub-frames. Routing keeps its schedule's patch side.
    pub reuse_patch: usize,
    /// Difficulty routing (issue 18 item 4, MobiSR; synchronous API): patches
    /// scoring under the schedule's calibrated threshold take bicubic
    /// (`runtime::routing`). Needs a schedule with a `routing` field
    /// (`nawqsr calibrate-routing`). Off by default.
    pub routing: bool,
    /// Which bundled model runs when none is given: frames arrive as YUV
    /// (the element on 4:2:0 caps) take the luma one (issue 17), which keeps
    /// them YUV; RGB frames and images the RGB one. A `schedule` given alone
    /// picks the model it was made for, and `routing` the RGB one.
    pub family: bundled::Family,
    /// Frames deeper than 8 bits (the element on I420_10LE / P010_10LE caps):
    /// a luma model's convs that read the frame run on A16W8 in the integer
    /// modes, so the network sees all 10 bits of Y (issue 17: "A16W8 is the
    /// natural unit for 10-bit input layers"); an INT8 first conv would
    /// quantize Y to 256 levels. RGB models take 8-bit RGB anyway.
    pub deep_input: bool,
}

enum Backend {
    /// `runtime::bicubic` over this many bands of output rows.
    Bicubic { threads: usize },
    /// The integer engine behind the dispatcher (boxed: it is far larger
    /// than the other variants).
    Npu(Box<Npu>),
}

struct Npu {
    engine: Arc<Engine>,
    plan: Arc<Plan>,
    runtime: Runtime,
    rows: usize,
    workers: usize,
    /// The schedule the plan came from (hybrid and the uniform modes), for its
    /// latency front.
    schedule: Option<Arc<Schedule>>,
    cfg: CodecConfig,
    /// Temporal reuse and routing: the network's receptive halo in LR pixels
    /// (None: frame-global state, whole frames only); reuse: the last frame's
    /// LR input (its reference) and output.
    halo: Option<usize>,
    /// Difficulty routing (`cfg.routing`): the schedule's threshold.
    routing: Option<f64>,
    last: Mutex<Option<(RgbImage, LastOutput)>>,
    /// The same for a luma model's Y planes (`upscale_luma`): the LR plane
    /// the output was computed from, and the output plane.
    last_y: Mutex<Option<(GrayImage, YKeep)>>,
}

/// The last output: a whole frame's RGB bands as the workers wrote them (kept
/// without a copy, and without the f32 bands), or an image pasted together
/// from reused and recomputed patches.
enum LastOutput {
    Bands(Upscaled),
    /// Shared with the frame handed out: the next frame pastes into it
    /// without a copy once that is written out.
    Image(Arc<RgbImage>),
    /// A frame difficulty routing composed (`Npu::upscale_routed`): only a
    /// routed frame may reuse it.
    Routed(RgbImage),
}

impl LastOutput {
    /// The frame again, sharing what it holds.
    fn out(&self) -> Out {
        match self {
            LastOutput::Bands(u) => Out::Bands(u.rgb_only()),
            LastOutput::Image(i) => Out::Image(i.clone()),
            LastOutput::Routed(i) => Out::Image(Arc::new(i.clone())),
        }
    }

    /// The frame to paste new patches into (a copy only if still shared).
    fn into_image(self) -> RgbImage {
        match self {
            LastOutput::Bands(u) => u.to_rgb(),
            LastOutput::Image(i) => Arc::unwrap_or_clone(i),
            LastOutput::Routed(i) => i,
        }
    }
}

/// Routing runs the hard patches in sub-frames unless those (with halos,
/// fades and a fixed cost each) would cover more than this share of the
/// frame. Higher than reuse's `WHOLE_ABOVE`: routing's hard regions are
/// large and few (BENCHMARKS.md "Difficulty routing").
const ROUTED_WHOLE_ABOVE: f64 = 0.85;

/// A frame as the synchronous path produced it: the workers' bands (written
/// to a video frame band by band, with no stitching copy) or an image.
enum Out {
    Bands(Upscaled),
    Image(Arc<RgbImage>),
}

impl Out {
    fn into_rgb(self) -> RgbImage {
        match self {
            Out::Bands(u) => u.to_rgb(),
            Out::Image(i) => Arc::unwrap_or_clone(i),
        }
    }
}

/// Side of the 2D patches of exact temporal reuse, in LR pixels. Measured on
/// the call clip and container (BENCHMARKS "Temporal reuse"): 16 reuses 75 %
/// of the call's patches against 61 % at 32 and 22 % at 48 (halo 6), and
/// the merged rectangles keep the sub-frames few.
pub const REUSE_PATCH: usize = 16;

/// The range of `CodecConfig::reuse_patch`: below 4 the comparison's
/// per-patch work outweighs any patch's network cost; above 256 a patch is
/// most of a 720p frame.
pub const MIN_REUSE_PATCH: usize = 4;
pub const MAX_REUSE_PATCH: usize = 256;

impl Npu {
    /// Upscales `lr` with difficulty routing (`runtime::routing`), and
    /// temporal reuse when on: easy patches take bicubic and fade into the
    /// network's output of hard neighbours; hard ones take the network, run
    /// in sub-frames of needed patches (`reuse::cores`). The frame equals
    /// `routing::compose` of a whole-frame run, whatever the sub-frames;
    /// where the sub-frames would not pay, the network runs everywhere.
    fn upscale_routed(&self, lr: &RgbImage, s: usize, threshold: f64) -> Result<RgbImage> {
        use super::reuse::{Change, changed, cores, crop, next_reference};
        use super::routing::{self, Grid};
        let (w, h) = (lr.width() as usize, lr.height() as usize);
        let g = Grid {
            w,
            h,
            tile: REUSE_PATCH,
            s,
        };
        let n = g.cols() * g.rows();
        let tel = &self.runtime.shared.telemetry;
        let hard = routing::hard(&routing::scores(lr, REUSE_PATCH), threshold);
        // Sub-frames grow by the fade's width beyond the halo, so the
        // network's output under every fade is exact.
        let reach = self.halo.map(|hl| hl + routing::BLEND);
        // Route only when it pays: the hard patches' sub-frames must cost
        // less than the whole frame. Otherwise the network runs everywhere
        // (better quality at the same cost). A function of this frame alone,
        // so temporal reuse stays exact (a routed frame never reuses a
        // network-everywhere one, nor the reverse: `LastOutput::Routed`).
        let cover = match reach {
            Some(r) if hard.iter().any(|&x| !x) => {
                cores(&hard, REUSE_PATCH, r, w, h, ROUTED_WHOLE_ABOVE)
            }
            _ => None,
        };
        let Some(cover) = cover else {
            return if self.cfg.reuse {
                self.upscale_reusing(Arc::new(lr.clone()), s)
                    .map(Out::into_rgb)
            } else {
                tel.reuse(0, n);
                Ok(self.runtime.run_bytes(rgb_pixels(lr.clone()))?.to_rgb())
            };
        };
        let mut last = self
            .cfg
            .reuse
            .then(|| self.last.lock().unwrap_or_else(|p| p.into_inner()));
        let mut prev = match last.as_mut().and_then(|l| l.take()) {
            Some((r, LastOutput::Routed(o))) => Some((r, o)),
            _ => None,
        };
        let change = match &prev {
            Some((reference, _)) => changed(
                reference,
                lr,
                REUSE_PATCH,
                self.halo.map(|hl| routing::reuse_halo(hl, REUSE_PATCH)),
                self.cfg.reuse_threshold,
            ),
            None => Change::Everywhere,
        };
        if change == Change::Identical
            && let (Some(l), Some((reference, o))) = (last.as_mut(), prev.take())
        {
            tel.reuse(n, n);
            let out = o.clone();
            **l = Some((reference, LastOutput::Routed(o)));
            return Ok(out);
        }
        let dirty = match &change {
            Change::Patches(d) => d.clone(),
            _ => vec![true; n],
        };
        // The network runs on the hard patches that changed, and on those
        // next to a changed easy patch (its fade reads their output).
        let need: Vec<bool> = (0..n)
            .map(|i| {
                hard[i]
                    && (dirty[i]
                        || routing::neighbours(&g, i).any(|(j, _, _)| !hard[j] && dirty[j]))
            })
            .collect();
        // Bicubic of the whole frame (a fraction of a millisecond against the
        // network's tens): the easy patches (there are some: `cover`) and the
        // fades read it.
        let useful = (w * h * s * s).div_ceil(BICUBIC_PIXELS_PER_THREAD).max(1);
        let bic = super::bicubic::upscale_rgb(lr, s, self.workers.min(useful));
        let (mut out, reference) = match (&change, prev) {
            (Change::Patches(_), Some((reference, mut out))) => {
                for i in (0..n).filter(|&i| dirty[i] && !hard[i]) {
                    routing::paste_easy(&mut out, &bic, &g, i);
                }
                (out, Some(reference))
            }
            _ => (bic.clone(), None),
        };
        let rects = if need == hard {
            Some(cover)
        } else if need.iter().any(|&x| x) {
            reach.and_then(|r| cores(&need, REUSE_PATCH, r, w, h, ROUTED_WHOLE_ABOVE))
        } else {
            Some(Vec::new())
        };
        tracing::trace!(
            "routing: hard map\n{}",
            hard.chunks(g.cols())
                .map(|r| r
                    .iter()
                    .map(|&x| if x { '#' } else { '.' })
                    .collect::<String>())
                .collect::<Vec<_>>()
                .join("\n")
        );
        tracing::debug!(
            "routing: {} of {n} patches hard, {} need the network, sub-frames {:?}",
            hard.iter().filter(|&&x| x).count(),
            need.iter().filter(|&&x| x).count(),
            rects.as_ref().map(|r| r
                .iter()
                .map(|c| c.region(reach.unwrap_or(0), REUSE_PATCH, w, h))
                .collect::<Vec<_>>())
        );
        // The network's outputs, and which one covers each needed patch.
        let mut which = vec![usize::MAX; n];
        let (outs, regions): (Vec<RgbImage>, Vec<super::reuse::Rect>) = match &rects {
            Some(rects) => {
                let r = reach.unwrap_or(0);
                let grown: Vec<_> = rects
                    .iter()
                    .map(|c| c.region(r, REUSE_PATCH, w, h))
                    .collect();
                for (k, c) in rects.iter().enumerate() {
                    for py in c.y0 / REUSE_PATCH..c.y1.div_ceil(REUSE_PATCH) {
                        for px in c.x0 / REUSE_PATCH..c.x1.div_ceil(REUSE_PATCH) {
                            which[py * g.cols() + px] = k;
                        }
                    }
                }
                let inputs = grown.iter().map(|r| rgb_pixels(crop(lr, r))).collect();
                let outs = self.runtime.run_many_bytes(inputs)?;
                (outs.iter().map(|o| o.to_rgb()).collect(), grown)
            }
            None => {
                which.fill(0);
                let full = super::reuse::Rect {
                    x0: 0,
                    y0: 0,
                    x1: w,
                    y1: h,
                };
                (
                    vec![self.runtime.run_bytes(rgb_pixels(lr.clone()))?.to_rgb()],
                    vec![full],
                )
            }
        };
        let src = |i: usize| routing::Source {
            img: &outs[which[i]],
            x0: regions[which[i]].x0,
            y0: regions[which[i]].y0,
        };
        for i in 0..n {
            if hard[i] && dirty[i] {
                routing::paste_hard(&mut out, src(i), &g, i);
            } else if !hard[i] && dirty[i] {
                routing::fade_easy(&mut out, &bic, &g, &hard, i, src);
            }
        }
        let recomputed = dirty.iter().filter(|&&d| d).count();
        tel.reuse(n - recomputed, n);
        tel.routed((0..n).filter(|&i| dirty[i] && !hard[i]).count());
        if let Some(l) = last.as_mut() {
            // Tolerant reuse: recomputed patches take their new pixels.
            let reference = match reference {
                Some(mut r) => {
                    let rects: Vec<_> = (0..n)
                        .filter(|&i| dirty[i])
                        .map(|i| super::reuse::Rect::patch(i, REUSE_PATCH, w, h))
                        .collect();
                    next_reference(&mut r, lr, &rects);
                    r
                }
                None => lr.clone(),
            };
            **l = Some((reference, LastOutput::Routed(out.clone())));
        }
        Ok(out)
    }

    /// Side of reuse's 2D patches (`CodecConfig::reuse_patch`).
    fn reuse_patch(&self) -> usize {
        match self.cfg.reuse_patch {
            0 => REUSE_PATCH,
            p => p,
        }
    }

    /// Upscales `lr`, recomputing only the 2D patches whose receptive field
    /// changed since the last frame (`runtime::reuse` says why it is exact).
    fn upscale_reusing(&self, px: Arc<RgbImage>, s: usize) -> Result<Out> {
        use super::reuse::{Work, crop, next_reference, paste, plan};
        let lr = &*px;
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        // A routed frame is not the network's everywhere: recompute.
        if matches!(last.as_ref(), Some((_, LastOutput::Routed(_)))) {
            *last = None;
        }
        let (w, h) = (lr.width() as usize, lr.height() as usize);
        let t = self.cfg.reuse_threshold;
        let p = match last.as_ref() {
            Some((prev, _)) => plan(prev, lr, self.reuse_patch(), self.halo, t),
            None => plan(&RgbImage::new(0, 0), lr, self.reuse_patch(), self.halo, t),
        };
        tracing::debug!("reuse: {} of {} patches, {:?}", p.reused, p.patches, p.work);
        let (out, keep) = match (&p.work, last.take()) {
            (Work::Reuse, Some((prev, o))) => (o.out(), (prev, o)),
            (Work::Cores(cores), Some((mut reference, o))) => {
                // Paste into the kept image itself: one frame copy (the
                // returned frame), not two.
                let mut sr = o.into_image();
                let halo = self.halo.unwrap_or(0);
                let grown: Vec<_> = cores
                    .iter()
                    .map(|c| c.region(halo, self.reuse_patch(), w, h))
                    .collect();
                let inputs = grown.iter().map(|g| rgb_pixels(crop(lr, g))).collect();
                let outs = self.runtime.run_many_bytes(inputs)?;
                for ((c, g), o) in cores.iter().zip(&grown).zip(outs) {
                    paste(&mut sr, &o.to_rgb(), c, g, s);
                }
                next_reference(&mut reference, lr, cores);
                let sr = Arc::new(sr);
                (Out::Image(sr.clone()), (reference, LastOutput::Image(sr)))
            }
            _ => {
                let up = self.runtime.run_bytes(Pixels::Rgb(px.clone()))?;
                let keep = LastOutput::Bands(up.rgb_only());
                // The runtime let go of the frame with its last input band.
                let reference = Arc::unwrap_or_clone(px);
                (Out::Bands(up), (reference, keep))
            }
        };
        self.runtime.shared.telemetry.reuse(p.reused, p.patches);
        *last = Some(keep);
        Ok(out)
    }

    /// A luma model's Y plane (issue 17). With reuse and an 8-bit plane
    /// (8-bit studio-range frames: the network sees it divided by 255), the patches
    /// whose receptive field is unchanged keep the last output, exactly as
    /// RGB frames do in [`Npu::upscale_reusing`]; otherwise the plane runs
    /// whole. The chroma is no network output, so it needs no cache.
    ///
    /// `beside` is work for this thread while the workers run the plane (the
    /// frame's chroma): called once, between handing the plane over and
    /// waiting for it where there is a network run to wait for.
    fn upscale_luma(&self, y: Plane, s: usize, beside: &mut dyn FnMut()) -> Result<LumaOut> {
        use super::reuse::{Work, crop, next_reference, paste, plan};
        let run = |y: FrameInput, bytes_only: bool, beside: &mut dyn FnMut()| {
            let pending = self.runtime.submit(y, None, bytes_only)?;
            beside();
            pending.wait()
        };
        let bytes = |g: Arc<GrayImage>| FrameInput::Pixels(Pixels::Gray(g));
        // An 8-bit plane is written from the u8 bands alone.
        let lr = match y {
            Plane::Bytes(lr) if self.cfg.reuse => lr,
            Plane::Bytes(g) => return Ok(LumaOut::Bands(run(bytes(Arc::new(g)), true, beside)?)),
            Plane::Values(y) => return Ok(LumaOut::Bands(run(y.into(), false, beside)?)),
        };
        let mut last = self.last_y.lock().unwrap_or_else(|p| p.into_inner());
        let (w, h) = (lr.width() as usize, lr.height() as usize);
        let t = self.cfg.reuse_threshold;
        let p = match last.as_ref() {
            Some((prev, _)) => plan(prev, &lr, self.reuse_patch(), self.halo, t),
            None => plan(&GrayImage::new(0, 0), &lr, self.reuse_patch(), self.halo, t),
        };
        let (out, keep) = match (&p.work, last.take()) {
            (Work::Reuse, Some((prev, o))) => {
                beside();
                (o.out(), (prev, o))
            }
            (Work::Cores(cores), Some((mut reference, o))) => {
                // (The sub-frames run together through `run_many_bytes`; the chroma goes first.)
                beside();
                let mut sr = o.into_image();
                let halo = self.halo.unwrap_or(0);
                let grown: Vec<_> = cores
                    .iter()
                    .map(|c| c.region(halo, self.reuse_patch(), w, h))
                    .collect();
                let inputs = grown
                    .iter()
                    .map(|g| bytes(Arc::new(crop(&lr, g))))
                    .collect();
                let outs = self.runtime.run_many_bytes(inputs)?;
                for ((c, g), o) in cores.iter().zip(&grown).zip(outs) {
                    paste(&mut sr, &gray_of(&o), c, g, s);
                }
                next_reference(&mut reference, &lr, cores);
                let sr = Arc::new(sr);
                (LumaOut::Image(sr.clone()), (reference, YKeep::Image(sr)))
            }
            _ => {
                // The cache shares the workers' bands: no copy of the plane.
                let px = Arc::new(lr);
                let up = run(bytes(px.clone()), true, beside)?;
                let keep = YKeep::Bands(up.rgb_only());
                // The runtime let go of the plane with its last input band.
                let lr = Arc::unwrap_or_clone(px);
                (LumaOut::Bands(up), (lr, keep))
            }
        };
        self.runtime.shared.telemetry.reuse(p.reused, p.patches);
        *last = Some(keep);
        Ok(out)
    }
}

/// A luma model's output plane: the workers' bands, or a plane composed
/// from reused and recomputed patches.
pub(crate) enum LumaOut {
    Bands(Upscaled),
    Image(Arc<GrayImage>),
}

/// The last Y output, kept for reuse without copying it: the workers' u8
/// bands as they came, or the plane composed from patches.
enum YKeep {
    Bands(Upscaled),
    Image(Arc<GrayImage>),
}

impl YKeep {
    fn out(&self) -> LumaOut {
        match self {
            YKeep::Bands(u) => LumaOut::Bands(u.rgb_only()),
            YKeep::Image(i) => LumaOut::Image(i.clone()),
        }
    }

    /// The plane to paste new patches into (a copy only if still shared).
    fn into_image(self) -> GrayImage {
        match self {
            YKeep::Bands(u) => gray_of(&u),
            YKeep::Image(i) => Arc::unwrap_or_clone(i),
        }
    }
}

/// An RGB image as the runtime's input: its bands are made from the bytes
/// as the network reaches them (`engine::tiles::Pixels`).
fn rgb_pixels(img: RgbImage) -> FrameInput {
    FrameInput::Pixels(Pixels::Rgb(Arc::new(img)))
}

/// A one-channel output's u8 bands (clip, ×255, round, by the workers) as a plane.
fn gray_of(u: &Upscaled) -> GrayImage {
    // Sized once: collecting the bands' bytes through an iterator grew the
    // plane by doubling, 16 MB for a 4K plane (heaptrack, 1080p → 4K element).
    let mut px = Vec::with_capacity(u.width * u.height);
    for b in &u.rgb {
        px.extend_from_slice(b);
    }
    GrayImage::from_raw(u.width as u32, u.height as u32, px)
        .expect("bands hold width × height values")
}

/// One configured upscaler.
pub struct Codec {
    scale: usize,
    mode: Mode,
    backend: Backend,
}

impl CodecConfig {
    /// The model network modes run: the given file, else the project's bundled
    /// model for the requested scale (×2 when none is requested; built into the
    /// codec, so no checkout is needed).
    fn model_bytes(&self) -> Result<crate::model::ModelBytes> {
        match &self.model {
            Some(p) => crate::model::ModelBytes::read(p),
            None => {
                let scale = self.scale.unwrap_or(bundled::DEFAULT_SCALE);
                // A schedule given without a model was made for one of the
                // bundled models: run that one, whatever the frames are.
                // Routing (MobiSR) is calibrated for the RGB models only.
                let family = self
                    .schedule
                    .as_deref()
                    .and_then(|p| schedule_family(p, scale))
                    .unwrap_or(if self.routing {
                        bundled::Family::Rgb
                    } else {
                        self.family
                    });
                bundled::load_family(family, scale)
            }
        }
    }
}

impl Codec {
    pub fn new(cfg: &CodecConfig) -> Result<Codec> {
        // Each worker is an OS thread with its own scratch: past a few per core
        // there is no speed to gain, and thousands exhaust memory (a panic in
        // thread setup, not an error) long before the first frame.
        if cfg.threads > MAX_THREADS {
            return Err(Error::Invalid(format!(
                "threads {} (expected 0 to {MAX_THREADS}; 0 = one per core)",
                cfg.threads
            )));
        }
        if cfg.reuse_patch != 0 && !(MIN_REUSE_PATCH..=MAX_REUSE_PATCH).contains(&cfg.reuse_patch) {
            return Err(Error::Invalid(format!(
                "reuse patch {} (expected {MIN_REUSE_PATCH} to {MAX_REUSE_PATCH} LR pixels; 0 = {REUSE_PATCH})",
                cfg.reuse_patch
            )));
        }
        let (scale, backend) = match cfg.mode {
            Mode::Bicubic => {
                // Each frame allocates its HR output: keep that memory in the
                // process instead of fresh mmaps and page faults per frame.
                super::dispatcher::steady_allocation();
                let scale = cfg.scale.ok_or_else(|| {
                    Error::Invalid("bicubic mode needs a scale (expected 2, 3 or 4)".into())
                })?;
                (
                    scale,
                    Backend::Bicubic {
                        threads: resolve_threads(cfg.threads),
                    },
                )
            }
            Mode::Fp32 if cfg.routing => {
                return Err(Error::Invalid(
                    "routing is for the integer modes (expected mode hybrid, int8 or a16w8, not fp32)"
                        .into(),
                ));
            }
            m => {
                let npu = Npu::new(cfg, m, RuntimeOptions::default())?;
                (npu.engine.graph.scale, Backend::Npu(Box::new(npu)))
            }
        };
        if !(2..=4).contains(&scale) {
            return Err(Error::Scale(scale));
        }
        if let Some(s) = cfg.scale
            && s != scale
        {
            return Err(Error::Invalid(format!(
                "scale {s} requested but the model upscales ×{scale}"
            )));
        }
        Ok(Codec {
            scale,
            mode: cfg.mode,
            backend,
        })
    }

    pub fn scale(&self) -> usize {
        self.scale
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// LR pixels around an output pixel that decide it (the network's
    /// receptive halo; None for bicubic, or when a frame-global op makes
    /// every pixel depend on the whole frame).
    pub fn halo(&self) -> Option<usize> {
        match &self.backend {
            Backend::Npu(n) => n.halo,
            Backend::Bicubic { .. } => None,
        }
    }

    /// Upscale one RGB image.
    pub fn upscale_rgb(&self, lr: &RgbImage) -> Result<RgbImage> {
        // (A copy of the u8 pixels: the runtime reads its input bands from
        // them while the frame is in flight.)
        self.upscale_out(Arc::new(lr.clone())).map(Out::into_rgb)
    }

    fn upscale_out(&self, px: Arc<RgbImage>) -> Result<Out> {
        let lr = &*px;
        match &self.backend {
            // Fixed point, equal to `metrics::imresize::upscale_bicubic` (the
            // MATLAB reference) for ×2 and ×4, within ±1 for ×3.
            Backend::Bicubic { threads } => {
                // At least ~2 Mpixel of output per thread: below that the
                // threads' start-up and a shared physical core (2 vCPUs are
                // often one core's two hyperthreads) cost more than they save
                // (BENCHMARKS.md "Fast bicubic": 720p ×4 took 1.18 ms on one
                // thread, 1.39 ms on two).
                let out_px = lr.width() as usize * lr.height() as usize * self.scale * self.scale;
                let useful = out_px.div_ceil(BICUBIC_PIXELS_PER_THREAD).max(1);
                Ok(Out::Image(Arc::new(super::bicubic::upscale_rgb(
                    lr,
                    self.scale,
                    (*threads).min(useful),
                ))))
            }
            Backend::Npu(n) if n.routing.is_some() => n
                .upscale_routed(lr, self.scale, n.routing.unwrap_or(0.0))
                .map(|i| Out::Image(Arc::new(i))),
            // (A luma model on RGB input merges its output with the chroma:
            // it recomputes; on YUV frames it reuses, `upscale_luma`.)
            Backend::Npu(n) if n.cfg.reuse && !n.engine.graph.is_luma() => {
                n.upscale_reusing(px, self.scale)
            }
            // Both ways out (`Out::into_rgb`, `Upscaled::write_to`) read the
            // workers' u8 bands only.
            Backend::Npu(n) => Ok(Out::Bands(n.runtime.run_bytes(Pixels::Rgb(px))?)),
        }
    }

    /// Integer modes: the network's f32 output for an h×w×3 input in [0, 1]
    /// (unclipped; bit-identical to `Engine::run` with [`Codec::plan`]).
    pub fn upscale_tensor(&self, lr: &Tensor) -> Result<Tensor> {
        Ok(self.npu()?.runtime.run(lr.clone())?.to_tensor())
    }

    /// Integer modes: the patches as they left the network (stitched lazily).
    pub fn upscale_patches(&self, lr: Tensor) -> Result<Upscaled> {
        self.npu()?.runtime.run(lr)
    }

    fn npu(&self) -> Result<&Npu> {
        match &self.backend {
            Backend::Npu(n) => Ok(n),
            _ => Err(Error::Invalid(format!(
                "mode {} has no integer runtime (expected hybrid, int8 or a16w8)",
                self.mode.name()
            ))),
        }
    }

    /// Opens a stream (integer modes): see [`Stream`].
    pub fn stream(&self, cfg: StreamConfig) -> Result<Stream<'_>> {
        let n = self.npu()?;
        Stream::open(&n.runtime, self.scale, cfg)
    }

    /// Telemetry since the codec was built (zeros for Fp32 and Bicubic).
    pub fn stats(&self) -> Stats {
        match &self.backend {
            Backend::Npu(n) => n.runtime.shared.telemetry.snapshot(),
            _ => Stats::default(),
        }
    }

    pub fn reset_stats(&self) {
        if let Backend::Npu(n) = &self.backend {
            n.runtime.shared.telemetry.reset();
        }
    }

    /// The precision plan of an integer mode.
    pub fn plan(&self) -> Option<&Plan> {
        match &self.backend {
            Backend::Npu(n) => Some(&n.plan),
            _ => None,
        }
    }

    /// The compiled engine of an integer mode.
    pub fn engine(&self) -> Option<&Arc<Engine>> {
        match &self.backend {
            Backend::Npu(n) => Some(&n.engine),
            _ => None,
        }
    }

    /// Patch height (LR rows) and worker threads of an integer mode.
    pub fn patch_rows(&self) -> Option<(usize, usize)> {
        match &self.backend {
            Backend::Npu(n) => Some((n.rows, n.workers)),
            _ => None,
        }
    }

    /// The schedule's quality/latency front (hybrid and uniform modes with a
    /// schedule that has one: `calibrate --pareto`).
    pub fn front(&self) -> Option<&Pareto> {
        match &self.backend {
            Backend::Npu(n) => n.schedule.as_ref()?.pareto.as_ref(),
            _ => None,
        }
    }

    /// A codec running point `k` of [`Codec::front`] on this codec's engine
    /// (weights packed once) with the same threads and patch size.
    pub fn at_point(&self, k: usize) -> Result<Codec> {
        let n = self.npu()?;
        let plan = n
            .schedule
            .as_ref()
            .and_then(|s| s.point_plan(&n.engine.graph, k))
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "front point {k}: the schedule has no such point (expected one of its pareto.points)"
                ))
            })?;
        let mut npu = Npu::start(
            &n.cfg,
            n.engine.clone(),
            Arc::new(plan),
            RuntimeOptions::default(),
        )?;
        npu.schedule = n.schedule.clone();
        npu.routing = n.routing;
        Ok(Codec {
            scale: self.scale,
            mode: Mode::Hybrid,
            backend: Backend::Npu(Box::new(npu)),
        })
    }

    /// Reused, routed and all output patches over the frames so far (zeros
    /// for the backends without patches): cheaper than [`Codec::stats`] per
    /// frame.
    pub fn patch_counts(&self) -> PatchCounts {
        match &self.backend {
            Backend::Npu(n) => n.runtime.shared.telemetry.patch_counts(),
            _ => PatchCounts::default(),
        }
    }

    /// The routing threshold in use (`CodecConfig::routing`).
    pub fn routing_threshold(&self) -> Option<f64> {
        match &self.backend {
            Backend::Npu(n) => n.routing,
            _ => None,
        }
    }

    /// Forgets the frames kept for temporal reuse (seek, flush, discontinuity;
    /// reuse stays exact without this, since it compares inputs, but a new
    /// scene should not compare against an old one). No-op without reuse.
    pub fn reset_reuse(&self) {
        if let Backend::Npu(n) = &self.backend {
            *n.last.lock().unwrap_or_else(|p| p.into_inner()) = None;
            *n.last_y.lock().unwrap_or_else(|p| p.into_inner()) = None;
            let _ = n.runtime.send(super::dispatcher::Ctl::ResetReuse);
        }
    }

    /// Test hook: the next work item fails with an error or a panic.
    #[doc(hidden)]
    pub fn inject_fault(&self, panic: bool) -> Result<()> {
        self.npu()?
            .runtime
            .inject_fault(if panic { Fault::Panic } else { Fault::Error });
        Ok(())
    }

    /// Benchmark hook: a codec with an explicit plan and runtime options.
    #[doc(hidden)]
    pub fn with_plan(
        cfg: &CodecConfig,
        engine: Arc<Engine>,
        plan: Plan,
        opts: RuntimeOptions,
    ) -> Result<Codec> {
        let npu = Npu::start(cfg, engine, Arc::new(plan), opts)?;
        Ok(Codec {
            scale: npu.engine.graph.scale,
            mode: cfg.mode,
            backend: Backend::Npu(Box::new(npu)),
        })
    }

    /// Upscale one frame of any supported format into `dst` (same format,
    /// `scale` times larger).
    pub fn upscale(&self, src: &FrameRef, dst: &mut FrameMut) -> Result<()> {
        if dst.width != src.width * self.scale || dst.height != src.height * self.scale {
            return Err(Error::Invalid(format!(
                "output frame is {}x{}, expected {}x{} (×{} of {}x{})",
                dst.width,
                dst.height,
                src.width * self.scale,
                src.height * self.scale,
                self.scale,
                src.width,
                src.height
            )));
        }
        // A luma model on a 4:2:0 frame stays YUV: the network takes the
        // frame's own Y plane, the chroma planes are resized straight (`luma`).
        if let Backend::Npu(n) = &self.backend
            && n.engine.graph.is_luma()
            && super::luma::upscale_yuv(
                |y, beside| n.upscale_luma(y, self.scale, beside),
                |secs| n.runtime.shared.telemetry.chroma(secs),
                self.scale,
                src,
                dst,
            )?
        {
            return Ok(());
        }
        let rgb = super::color::frame_to_rgb(src)?;
        match self.upscale_out(Arc::new(rgb))? {
            Out::Bands(u) => u.write_to(dst),
            Out::Image(i) => super::color::rgb_to_frame(&i, dst),
        }
    }
}

/// The bundled family whose ×`scale` model `schedule` was calibrated for
/// (its `model.sha256`); None if it names neither (loading it reports why).
fn schedule_family(schedule: &std::path::Path, scale: usize) -> Option<bundled::Family> {
    let text = std::fs::read_to_string(schedule).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let sha = v.pointer("/model/sha256")?.as_str()?;
    [bundled::Family::Rgb, bundled::Family::Luma]
        .into_iter()
        .find(|&f| bundled::load_family(f, scale).is_ok_and(|m| m.sha256() == sha))
}

/// The routing threshold of the schedule an integer mode loaded, or one line
/// saying why there is none.
fn routing_threshold(loaded: Option<&Schedule>, source: Option<&ScheduleSource>) -> Result<f64> {
    let Some(s) = loaded else {
        return Err(Error::Invalid(
            "routing needs a schedule with a calibrated threshold (none found for this model; run nawqsr calibrate, then nawqsr calibrate-routing)".into(),
        ));
    };
    let label = source
        .map(|x| x.label().display().to_string())
        .unwrap_or_default();
    let r = s.routing.as_ref().ok_or_else(|| {
        Error::Invalid(format!(
            "routing: schedule {label} has no `routing` field (expected one; run nawqsr calibrate-routing --schedule {label})"
        ))
    })?;
    if r.patch != REUSE_PATCH {
        return Err(Error::Invalid(format!(
            "routing: schedule {label} field `routing.patch` is {} (expected {REUSE_PATCH}, this build's patch side)",
            r.patch
        )));
    }
    Ok(r.threshold)
}

/// Runtime knobs beyond [`CodecConfig`] (benchmarks and tests).
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct RuntimeOptions {
    pub max_in_flight: usize,
    /// Coalesce consecutive nodes of one band and partition into one work item.
    pub coalesce: bool,
    /// Every conv its own partition on alternating units (switch-cost benchmark).
    pub split_partitions: bool,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            max_in_flight: MAX_IN_FLIGHT,
            coalesce: true,
            split_partitions: false,
        }
    }
}

impl Npu {
    fn new(cfg: &CodecConfig, mode: Mode, opts: RuntimeOptions) -> Result<Npu> {
        let model = cfg.model_bytes()?;
        let graph = crate::model::import_bytes(&model)?;
        let bits = if mode == Mode::A16w8 {
            Bits::B16
        } else {
            Bits::B8
        };
        let sha = model.sha256();
        // No schedule given: use the one calibrated for this model, if any
        // (NAWQSR_SCHEDULES, ./schedules, then the built-in ones; keyed by the
        // model's hash).
        let schedule = match &cfg.schedule {
            Some(p) => Some(ScheduleSource::File(p.clone())),
            None => crate::schedule::find_for_model(&sha),
        };
        if let Some(s) = &schedule {
            tracing::info!(
                "using schedule {} for {}",
                s.label().display(),
                model.label.display()
            );
        }
        let mut loaded = None;
        let (plan, gran) = match &schedule {
            // The original weights in float, on the project's own f32 convs in
            // bands (issue 16 item 4; tract stays the test reference).
            _ if mode == Mode::Fp32 => (Plan::fp32(&graph), WeightGranularity::PerChannel),
            Some(s) => {
                let sched = s.load(&graph, &sha)?;
                let plan = match mode {
                    // §4.1–4.2: per-layer b, s, z and DRE flags from the schedule.
                    Mode::Hybrid => sched.plan(&graph),
                    // Table 2's uniform baselines: the schedule's static ranges
                    // on one unit, Eq. (1) re-derived for its bitwidth, no DRE.
                    _ => sched.plan_with(&graph, |_, _| false).with_bits(bits),
                };
                let w = sched.weights();
                loaded = Some(Arc::new(sched));
                (plan, w)
            }
            None if mode == Mode::Hybrid => {
                return Err(Error::Invalid(
                    "mode hybrid needs a schedule (none given, and none in NAWQSR_SCHEDULES, ./schedules or the built-in ones matches this model; run nawqsr calibrate, or use int8 / a16w8)"
                        .into(),
                ));
            }
            None => {
                // §4.2: without calibrated ranges every conv estimates its own (DRE).
                tracing::warn!(
                    "mode {}: no schedule given, so no calibrated ranges; every conv uses run-time DRE",
                    mode.name()
                );
                (Plan::all_dre(&graph, bits), WeightGranularity::PerChannel)
            }
        };
        let engine = Arc::new(Engine::with_granularity(graph, CpuLevel::detect(), 1, gran));
        let luma = engine.graph.is_luma();
        if luma && cfg.routing {
            return Err(Error::Invalid(
                "routing is for RGB models (this model upscales luma only; expected routing off)"
                    .into(),
            ));
        }
        let mut npu = Npu::start(cfg, engine, Arc::new(plan), opts)?;
        if cfg.routing {
            npu.routing = Some(routing_threshold(loaded.as_deref(), schedule.as_ref())?);
        }
        npu.schedule = loaded;
        Ok(npu)
    }

    fn start(
        cfg: &CodecConfig,
        engine: Arc<Engine>,
        plan: Arc<Plan>,
        opts: RuntimeOptions,
    ) -> Result<Npu> {
        let workers = resolve_threads(cfg.threads);
        let rows = if cfg.patch_size == 0 {
            DEFAULT_PATCH_ROWS
        } else {
            cfg.patch_size
        };
        let rc = RuntimeConfig {
            workers,
            // "One per core" (0): the process-wide pool, so that several
            // codecs (elements, pipelines) share the cores instead of each
            // starting one worker per core.
            shared_pool: cfg.threads == 0,
            rows,
            max_in_flight: opts.max_in_flight.max(1),
            coalesce: opts.coalesce,
            split_partitions: opts.split_partitions,
            reuse: cfg.reuse,
        };
        let plan = if cfg.deep_input && engine.graph.is_luma() {
            Arc::new(plan.with_input_bits(&engine.graph, crate::quant::Bits::B16))
        } else {
            plan
        };
        let runtime = Runtime::start(engine.clone(), plan.clone(), rc)?;
        let halo = match crate::engine::tiles::reuse_halo(&engine, &plan) {
            Ok(h) => h,
            Err(e) if cfg.reuse || cfg.routing => return Err(e),
            // Only reported (`Codec::halo`) when neither needs it.
            Err(_) => None,
        };
        Ok(Npu {
            engine,
            plan,
            runtime,
            rows,
            workers,
            schedule: None,
            cfg: cfg.clone(),
            halo,
            routing: None,
            last: Mutex::new(None),
            last_y: Mutex::new(None),
        })
    }
}
