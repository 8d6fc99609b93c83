//! Luma models (issue 16 item 3): FSRCNN, ESPCN and their kin take and give
//! one channel. As ffmpeg's `sr` filter and mpv's FSRCNNX do, the network
//! upscales Y and bicubic upscales the chroma.
//!
//! The colour space is the SR protocol's, the one such models are trained
//! and scored in: MATLAB `rgb2ycbcr` (BT.601, studio swing: Y in [16, 235],
//! Cb and Cr in [16, 240], here divided by 255), so the network sees what it
//! saw in training; the chroma goes through MATLAB's bicubic `imresize` in
//! float, and `ycbcr2rgb` (the exact inverse) brings the frame back to RGB.
//! From a 4:2:0 frame the network takes the frame's own Y plane (in studio
//! range) and the chroma planes are upscaled straight from their size, with
//! the frame's matrix for the way back (`Chroma::from_frame`); left-sited
//! (MPEG-2, H.264) chroma is first resampled to the centred positions the
//! bicubic assumes.
use std::sync::Arc;

use super::frame::{FrameRef, PixelFormat, Range};
use crate::engine::Tensor;
use crate::error::Result;
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

    /// From a 4:2:0 frame (I420, NV12): the network's Y is the frame's own Y
    /// plane (brought to studio range if the frame is full range), and the
    /// chroma planes are kept as they are, to be upscaled once, straight from
    /// their resolution to the output's. None for RGB formats.
    pub fn from_frame(src: &FrameRef) -> Result<Option<(Tensor, Chroma)>> {
        let interleaved = match src.format {
            PixelFormat::I420 => false,
            PixelFormat::Nv12 => true,
            _ => return Ok(None),
        };
        super::color::check_frame(src)?;
        let (w, h) = (src.width, src.height);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let full = src.colorimetry.range == Range::Full;
        let ys = |v: u8| {
            let v = f32::from(v);
            if full {
                (16.0 + v * 219.0 / 255.0) / 255.0
            } else {
                v / 255.0
            }
        };
        let cs = |v: u8| {
            let d = f32::from(v) - 128.0;
            if full { d * 224.0 / 255.0 } else { d }
        };
        let mut y = Vec::with_capacity(w * h);
        for r in 0..h {
            y.extend(
                src.planes[0][r * src.strides[0]..][..w]
                    .iter()
                    .map(|&v| ys(v)),
            );
        }
        let (mut cb, mut cr) = (Vec::with_capacity(cw * ch), Vec::with_capacity(cw * ch));
        for r in 0..ch {
            if interleaved {
                let row = &src.planes[1][r * src.strides[1]..][..2 * cw];
                for uv in row.chunks_exact(2) {
                    cb.push(cs(uv[0]));
                    cr.push(cs(uv[1]));
                }
            } else {
                cb.extend(
                    src.planes[1][r * src.strides[1]..][..cw]
                        .iter()
                        .map(|&v| cs(v)),
                );
                cr.extend(
                    src.planes[2][r * src.strides[2]..][..cw]
                        .iter()
                        .map(|&v| cs(v)),
                );
            }
        }
        if src.colorimetry.siting == super::frame::Siting::Left {
            // MPEG-2/H.264 chroma sits on the even luma column (x = 2i), the
            // bicubic below assumes the centre of the pair (2i + ½): resample
            // to those positions, a quarter of a chroma sample to the right.
            for plane in [&mut cb, &mut cr] {
                for row in plane.chunks_exact_mut(cw) {
                    for i in 0..cw {
                        let next = row[(i + 1).min(cw - 1)];
                        row[i] = 0.75 * row[i] + 0.25 * next;
                    }
                }
            }
        }
        let (kr, kb) = super::color::kr_kb(src.colorimetry.matrix);
        Ok(Some((
            Tensor {
                h,
                w,
                c: 1,
                data: y,
            },
            Chroma {
                lw: w,
                lh: h,
                cw,
                ch,
                cb,
                cr,
                kr,
                kb,
            },
        )))
    }

    /// The RGB output: the network's luma bands (in frame order, studio-range
    /// Y / 255) with this chroma upscaled ×`scale` by MATLAB bicubic; f32
    /// bands in [0, 1] and their RGB u8 (clip, ×255, round). The inverse is
    /// the frame matrix's for studio range; for BT.601 it is MATLAB's `ycbcr2rgb`.
    pub fn merge(&self, y: &[Arc<Tensor>], scale: usize) -> (Vec<Arc<Tensor>>, Vec<Arc<Vec<u8>>>) {
        let (ow, oh) = (self.lw * scale, self.lh * scale);
        let cb = imresize_plane(&self.cb, self.cw, self.ch, ow, oh);
        let cr = imresize_plane(&self.cr, self.cw, self.ch, ow, oh);
        let (kr, kb) = (self.kr, self.kb);
        let kg = 1.0 - kr - kb;
        let (rv, gu, gv, bu) = (
            2.0 * (1.0 - kr) / 224.0,
            2.0 * (1.0 - kb) * kb / (kg * 224.0),
            2.0 * (1.0 - kr) * kr / (kg * 224.0),
            2.0 * (1.0 - kb) / 224.0,
        );
        let mut row0 = 0;
        let mut chunks = Vec::with_capacity(y.len());
        let mut rgb = Vec::with_capacity(y.len());
        for band in y {
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
            rgb.push(Arc::new(u8s));
            chunks.push(Arc::new(Tensor {
                h: band.h,
                w: band.w,
                c: 3,
                data,
            }));
        }
        (chunks, rgb)
    }
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
