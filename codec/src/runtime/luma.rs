//! Luma models (issue 16 item 3): FSRCNN, ESPCN and their kin take and give
//! one channel. As ffmpeg's `sr` filter and mpv's FSRCNNX do, the network
//! upscales Y and bicubic upscales the chroma.
//!
//! The colour space is the SR protocol's, the one such models are trained
//! and scored in: MATLAB `rgb2ycbcr` (BT.601, studio swing: Y in [16, 235],
//! Cb and Cr in [16, 240], here divided by 255), so the network sees what it
//! saw in training; the chroma goes through MATLAB's bicubic `imresize` in
//! float, and `ycbcr2rgb` (the exact inverse) brings the frame back to RGB.
//!
//! A 4:2:0 frame, 8- or 10-bit, stays YUV (issue 17, [`upscale_yuv`]): the
//! network takes the frame's own Y plane and writes the output's, and U and
//! V are resized straight from their planes ([`super::chroma`]) on the
//! caller's thread while the workers run the network. No colour matrix is
//! applied anywhere, so the output keeps the input's colorimetry exactly.
use std::sync::Arc;

use image::GrayImage;

use super::chroma::ChromaResizer;
use super::codec::LumaOut;
use super::frame::{FrameMut, FrameRef, Range};
use super::planes::{Comp, read_row, write_row};
use crate::engine::Tensor;
use crate::error::{Error, Result};
use crate::metrics::color::ycbcr;
use crate::metrics::imresize::imresize_plane;

/// Y of an RGB tensor, as the network sees it (`metrics::color::y_tensor`).
pub use crate::metrics::color::y_tensor as y_of;

/// The chroma of one LR frame, kept while the network runs on its luma:
/// Cb − 128 and Cr − 128 in studio-range units (224 steps for the full
/// swing), at the chroma planes' own resolution, and the matrix's Kr, Kb.
pub struct Chroma {
    /// LR luma size (the output is `scale` times it).
    lw: usize,
    lh: usize,
    /// Chroma plane size (the LR size for RGB input, half of it for 4:2:0).
    cw: usize,
    ch: usize,
    cb: Vec<f32>,
    cr: Vec<f32>,
    kr: f64,
    kb: f64,
}

impl Chroma {
    /// From an RGB frame: MATLAB `rgb2ycbcr` (BT.601).
    pub fn of(rgb: &Tensor) -> Chroma {
        let plane = |row| {
            rgb.data
                .chunks_exact(3)
                .map(|p| (ycbcr(p, row) * 255.0 - 128.0) as f32)
                .collect()
        };
        Chroma {
            lw: rgb.w,
            lh: rgb.h,
            cw: rgb.w,
            ch: rgb.h,
            cb: plane(1),
            cr: plane(2),
            kr: 0.299,
            kb: 0.114,
        }
    }

    /// The RGB output: the network's luma bands (in frame order, studio-range
    /// Y / 255) with this chroma upscaled ×`scale` by MATLAB bicubic; f32
    /// bands in [0, 1] and their RGB u8 (clip, ×255, round). The inverse is
    /// the frame matrix's for studio range; for BT.601 it is MATLAB's `ycbcr2rgb`.
    pub fn merge(&self, y: &[Arc<Tensor>], scale: usize) -> (Vec<Arc<Tensor>>, Vec<Arc<Vec<u8>>>) {
        let (ow, oh) = (self.lw * scale, self.lh * scale);
        // On two threads (the frame's end, where the workers have nothing left to do; on
        // the dispatcher's thread alone this took ~12 % of a 960×540 frame's CPU samples):
        // the two planes' resizes, then the halves of the bands. Each value is computed
        // the same way wherever it runs.
        let (cb, cr) = std::thread::scope(|s| {
            let cr = s.spawn(|| imresize_plane(&self.cr, self.cw, self.ch, ow, oh));
            let cb = imresize_plane(&self.cb, self.cw, self.ch, ow, oh);
            (cb, cr.join().expect("a plane resize does not panic"))
        });
        let (kr, kb) = (self.kr, self.kb);
        let kg = 1.0 - kr - kb;
        let (rv, gu, gv, bu) = (
            2.0 * (1.0 - kr) / 224.0,
            2.0 * (1.0 - kb) * kb / (kg * 224.0),
            2.0 * (1.0 - kr) * kr / (kg * 224.0),
            2.0 * (1.0 - kb) / 224.0,
        );
        let merge_bands = |bands: &[Arc<Tensor>], mut row0: usize| {
            let mut out = Vec::with_capacity(bands.len());
            for band in bands {
                let mut data = Vec::with_capacity(band.h * band.w * 3);
                for (i, &yv) in band.data.iter().enumerate() {
                    let k = row0 * ow + i;
                    let l = (yv as f64 * 255.0 - 16.0) / 219.0;
                    let (u, v) = (cb[k] as f64, cr[k] as f64);
                    data.push((l + rv * v) as f32);
                    data.push((l - gu * u - gv * v) as f32);
                    data.push((l + bu * u) as f32);
                }
                let mut u8s = vec![0u8; data.len()];
                crate::tensor::to_u8_pixels(&data, &mut u8s);
                row0 += band.h;
                out.push((
                    Arc::new(Tensor {
                        h: band.h,
                        w: band.w,
                        c: 3,
                        data,
                    }),
                    Arc::new(u8s),
                ));
            }
            out
        };
        let half = y.len() / 2;
        let rows_before: usize = y[..half].iter().map(|b| b.h).sum();
        let (first, second) = std::thread::scope(|s| {
            let second = s.spawn(|| merge_bands(&y[half..], rows_before));
            let first = merge_bands(&y[..half], 0);
            (first, second.join().expect("merging bands does not panic"))
        });
        first.into_iter().chain(second).unzip()
    }
}

/// The network's input plane. An 8-bit studio-range Y goes as its bytes
/// (the runtime makes its f32 bands from them, v / 255, so no whole-plane
/// f32 tensor exists: issue 15 item 4); any other Y as values.
pub(crate) enum Plane {
    Bytes(GrayImage),
    Values(Tensor),
}

/// A luma model on a 4:2:0 frame into `dst` (same format, ×`scale`); false
/// (nothing written) for RGB formats or a different output format. `run`
/// computes the output Y from the network's input plane.
///
/// The network sees Y / 255 in studio range, as it was trained (MATLAB
/// `rgb2ycbcr`): an 8-bit limited-range Y as it is, a 10-bit one divided by 4
/// (BT.709 §4.6: a 10-bit studio code is four times the 8-bit one), a
/// full-range one mapped into [16, 235] first; the output goes back the same
/// way, so 10-bit frames keep all their bits through the network.
pub(crate) fn upscale_yuv(
    run: impl FnOnce(Plane, &mut dyn FnMut()) -> Result<LumaOut>,
    chroma_secs: impl FnOnce(f64),
    scale: usize,
    src: &FrameRef,
    dst: &mut FrameMut,
) -> Result<bool> {
    let Some(l) = src.format.yuv420() else {
        return Ok(false);
    };
    if dst.format != src.format {
        return Ok(false);
    }
    super::color::check_frame(src)?;
    super::color::check_frame_mut(dst)?;
    let (w, h) = (src.width, src.height);
    let (ow, oh) = (w * scale, h * scale);
    if (dst.width, dst.height) != (ow, oh) {
        return Err(Error::Invalid(format!(
            "output frame is {}x{}, expected {ow}x{oh}",
            dst.width, dst.height
        )));
    }
    let full = src.colorimetry.range == Range::Full;
    let (max, unit) = (l.max(), 255.0 * l.per_8bit());
    let plain = !full && l.bits == 8;
    let plane = if plain {
        let mut y8 = Vec::with_capacity(w * h);
        for r in 0..h {
            y8.extend_from_slice(&src.planes[0][r * src.strides[0]..][..w]);
        }
        Plane::Bytes(GrayImage::from_raw(w as u32, h as u32, y8).expect("w × h bytes"))
    } else {
        let mut y = vec![0.0; w * h];
        if w > 0 {
            for (r, row) in y.chunks_exact_mut(w).enumerate() {
                read_row(src, l, Comp::Y, r, row);
                for v in row {
                    *v = if full {
                        (16.0 + *v / max * 219.0) / 255.0
                    } else {
                        *v / unit
                    };
                }
            }
        }
        Plane::Values(Tensor {
            h,
            w,
            c: 1,
            data: y,
        })
    };
    let (format, strides, colorimetry) = (dst.format, dst.strides, dst.colorimetry);
    let [py, pu, pv] = &mut dst.planes;
    let mut chroma = FrameMut {
        format,
        width: ow,
        height: oh,
        planes: [&mut [], &mut **pu, &mut **pv],
        strides,
        colorimetry,
    };
    // The chroma on this thread while the workers run Y (`run` calls it between
    // handing Y over and waiting; no thread per frame). Once, whatever `run` did.
    let z = ChromaResizer::new(w, h, scale, src.colorimetry.siting);
    let mut secs = None;
    let mut chroma_job = || {
        if secs.is_some() {
            return;
        }
        let t = std::time::Instant::now();
        for comp in [Comp::U, Comp::V] {
            z.run(
                |r, row| read_row(src, l, comp, r, row),
                |r, row| write_row(&mut chroma, l, comp, r, row),
            );
        }
        secs = Some(t.elapsed().as_secs_f64());
    };
    let out = run(plane, &mut chroma_job);
    chroma_job();
    chroma_secs(secs.unwrap_or(0.0));
    let out = out?;
    let stride = strides[0];
    let mut luma = FrameMut {
        format,
        width: ow,
        height: oh,
        planes: [&mut **py, &mut [], &mut []],
        strides,
        colorimetry,
    };
    let mut r = 0;
    let put = |line: &[u8], r: usize, luma: &mut FrameMut| {
        luma.planes[0][r * stride..][..ow].copy_from_slice(line);
    };
    match &out {
        // The workers' u8 bands (clip, ×255, round) are the Y plane already.
        LumaOut::Bands(up) if plain && !up.rgb.is_empty() => {
            for line in up.rgb.iter().flat_map(|b| b.chunks_exact(ow)) {
                put(line, r, &mut luma);
                r += 1;
            }
        }
        LumaOut::Image(img) if plain => {
            for line in img.as_raw().chunks_exact(ow) {
                put(line, r, &mut luma);
                r += 1;
            }
        }
        LumaOut::Image(_) => {
            return Err(Error::Invalid(
                "reused luma plane of a non-8-bit frame".into(),
            ));
        }
        LumaOut::Bands(up) => {
            let mut vals = vec![0f32; ow];
            for line in up.chunks.iter().flat_map(|b| b.data.chunks_exact(ow)) {
                for (o, &v) in vals.iter_mut().zip(line) {
                    *o = if full {
                        (v * 255.0 - 16.0) / 219.0 * max
                    } else {
                        v * unit
                    };
                }
                write_row(&mut luma, l, Comp::Y, r, &vals);
                r += 1;
            }
        }
    }
    if r != oh {
        return Err(Error::Invalid(format!(
            "luma model output has {r} rows, expected {oh}"
        )));
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Y of rgb2ycbcr, then ycbcr2rgb of Y with the frame's own (unscaled)
    /// chroma, gives the frame back.
    #[test]
    fn luma_and_chroma_round_trip() {
        let rgb = Tensor {
            h: 2,
            w: 3,
            c: 3,
            data: (0..18).map(|i| ((i * 37) % 17) as f32 / 16.0).collect(),
        };
        let y = y_of(&rgb);
        assert!(
            (y.data[0]
                - (16.0 / 255.0
                    + (65.481 * rgb.data[0] as f64
                        + 128.553 * rgb.data[1] as f64
                        + 24.966 * rgb.data[2] as f64) as f32
                        / 255.0))
                .abs()
                < 1e-6
        );
        let (out, u8s) = Chroma::of(&rgb).merge(&[Arc::new(y)], 1);
        for (a, b) in out[0].data.iter().zip(&rgb.data) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        assert_eq!(u8s[0].len(), 18);
    }
}
