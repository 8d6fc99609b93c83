//! Luma models (issue 16 item 3): FSRCNN, ESPCN and their kin take and give
//! one channel. As ffmpeg's `sr` filter and mpv's FSRCNNX do, the network
//! upscales Y and bicubic upscales the chroma.
//!
//! The colour space is the SR protocol's, the one such models are trained
//! and scored in: MATLAB `rgb2ycbcr` (BT.601, studio swing: Y in [16, 235],
//! Cb and Cr in [16, 240], here divided by 255), so the network sees what it
//! saw in training; the chroma goes through MATLAB's bicubic `imresize` in
//! float, and `ycbcr2rgb` (the exact inverse) brings the frame back to RGB.
use std::sync::Arc;

use crate::engine::Tensor;
use crate::metrics::imresize::imresize_plane;

/// MATLAB `rgb2ycbcr` for RGB in [0, 1]: rows Y, Cb, Cr; offsets 16, 128, 128.
const T: [[f64; 3]; 3] = [
    [65.481, 128.553, 24.966],
    [-37.797, -74.203, 112.0],
    [112.0, -93.786, -18.214],
];
const OFFSET: [f64; 3] = [16.0, 128.0, 128.0];

/// The inverse of [`T`] (for RGB in [0, 1] from Y, Cb, Cr in 0..255 units).
fn t_inv() -> [[f64; 3]; 3] {
    let m = T;
    let det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    let c = |a: usize, b: usize, x: usize, y: usize| m[a][b] * m[x][y] - m[a][y] * m[x][b];
    [
        [
            c(1, 1, 2, 2) / det,
            -c(0, 1, 2, 2) / det,
            c(0, 1, 1, 2) / det,
        ],
        [
            -c(1, 0, 2, 2) / det,
            c(0, 0, 2, 2) / det,
            -c(0, 0, 1, 2) / det,
        ],
        [
            c(1, 0, 2, 1) / det,
            -c(0, 0, 2, 1) / det,
            c(0, 0, 1, 1) / det,
        ],
    ]
}

/// Y of an h×w×3 RGB tensor in [0, 1], as an h×w×1 tensor in [0, 1].
pub fn y_of(rgb: &Tensor) -> Tensor {
    Tensor {
        h: rgb.h,
        w: rgb.w,
        c: 1,
        data: rgb.data.chunks_exact(3).map(|p| ycc(p, 0) as f32).collect(),
    }
}

fn ycc(p: &[f32], row: usize) -> f64 {
    (OFFSET[row] + T[row][0] * p[0] as f64 + T[row][1] * p[1] as f64 + T[row][2] * p[2] as f64)
        / 255.0
}

/// The chroma of one LR frame, kept while the network runs on its luma.
pub struct Chroma {
    w: usize,
    h: usize,
    cb: Vec<f32>,
    cr: Vec<f32>,
}

impl Chroma {
    pub fn of(rgb: &Tensor) -> Chroma {
        let plane = |row| {
            rgb.data
                .chunks_exact(3)
                .map(|p| ycc(p, row) as f32)
                .collect()
        };
        Chroma {
            w: rgb.w,
            h: rgb.h,
            cb: plane(1),
            cr: plane(2),
        }
    }

    /// The RGB output: the network's luma bands (in frame order) with this
    /// chroma upscaled ×`scale`; f32 bands and their RGB u8 (clip, ×255, round).
    pub fn merge(&self, y: &[Arc<Tensor>], scale: usize) -> (Vec<Arc<Tensor>>, Vec<Arc<Vec<u8>>>) {
        let (ow, oh) = (self.w * scale, self.h * scale);
        let cb = imresize_plane(&self.cb, self.w, self.h, ow, oh);
        let cr = imresize_plane(&self.cr, self.w, self.h, ow, oh);
        let inv = t_inv();
        let mut row0 = 0;
        let mut chunks = Vec::with_capacity(y.len());
        let mut rgb = Vec::with_capacity(y.len());
        for band in y {
            let n = band.h * band.w;
            let mut data = Vec::with_capacity(n * 3);
            for (i, &yv) in band.data.iter().enumerate() {
                let k = row0 * ow + i;
                let d = [
                    yv as f64 * 255.0 - OFFSET[0],
                    cb[k] as f64 * 255.0 - OFFSET[1],
                    cr[k] as f64 * 255.0 - OFFSET[2],
                ];
                for r in &inv {
                    data.push((r[0] * d[0] + r[1] * d[1] + r[2] * d[2]) as f32);
                }
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
