//! The plane SR quality is measured on: MATLAB `rgb2ycbcr` luma for colour
//! images, the grey values themselves for single-channel images.
use image::RgbImage;

use crate::tensor::Tensor;

/// MATLAB `rgb2ycbcr` for RGB in [0, 1]: rows Y, Cb, Cr, added to
/// [`YCBCR_OFFSET`]. The Y row sums to 219, the studio-swing range of Y in
/// [16, 235].
pub const RGB_TO_YCBCR: [[f64; 3]; 3] = [
    [65.481, 128.553, 24.966],
    [-37.797, -74.203, 112.0],
    [112.0, -93.786, -18.214],
];
pub const YCBCR_OFFSET: [f64; 3] = [16.0, 128.0, 128.0];

/// MATLAB's BT.601 luma coefficients (the Y row of [`RGB_TO_YCBCR`]).
const COEFF: [f64; 3] = RGB_TO_YCBCR[0];

/// Row `row` (0 Y, 1 Cb, 2 Cr) of `rgb2ycbcr` of one RGB pixel in [0, 1], / 255.
pub fn ycbcr(p: &[f32], row: usize) -> f64 {
    let t = RGB_TO_YCBCR[row];
    (YCBCR_OFFSET[row] + t[0] * p[0] as f64 + t[1] * p[1] as f64 + t[2] * p[2] as f64) / 255.0
}

/// Y of an h×w×3 RGB tensor in [0, 1] as an h×w×1 tensor in [0, 1]: what a
/// luma model (FSRCNN, ESPCN) is trained on and fed.
pub fn y_tensor(rgb: &Tensor) -> Tensor {
    Tensor {
        h: rgb.h,
        w: rgb.w,
        c: 1,
        data: rgb
            .data
            .chunks_exact(3)
            .map(|p| ycbcr(p, 0) as f32)
            .collect(),
    }
}

/// Which plane of an image the metrics compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plane {
    /// Y of MATLAB `rgb2ycbcr` (colour images).
    Y,
    /// The grey level itself, for images stored with one channel (Set14
    /// bridge). Two published conventions disagree on such images:
    /// - the classic MATLAB scripts behind the bicubic table (Set14 ×2 30.24,
    ///   ×4 26.00 dB) convert to YCbCr only when `size(im, 3) == 3`, so bridge
    ///   is measured on its raw grey values; measuring it on Y = 16 +
    ///   219/255·grey instead adds 20·log10(255/219) = 1.32 dB to it and
    ///   gives 30.33 / 26.09;
    /// - IMDN's Python evaluation reads every image as colour, so bridge is
    ///   measured on Y: that is how ../shared/README.md's IMDN ×4 Set14
    ///   28.59 dB comes out (28.587 with [`Plane::Y`], 28.49 with this).
    ///
    /// [`Plane::Y`] is the protocol's default; this plane exists to reproduce
    /// the classic table.
    Gray,
}

/// Y of MATLAB `rgb2ycbcr`, row-major, kept as float (16 + 65.481 R +
/// 128.553 G + 24.966 B with RGB in [0, 1]).
///
/// Unrounded, unlike MATLAB's uint8 output: float Y reproduces the published
/// bicubic baselines (Set5 ×2 33.67, ×4 28.43 dB) and rounded Y does not
/// (33.64, 28.42); see tests/metrics.rs. BasicSR's `bgr2ycbcr` is float too.
pub fn rgb_to_y(img: &RgbImage) -> Vec<f64> {
    img.pixels()
        .map(|p| {
            let [r, g, b] = p.0.map(|v| f64::from(v) / 255.0);
            16.0 + COEFF[0] * r + COEFF[1] * g + COEFF[2] * b
        })
        .collect()
}

/// Grey level of an image replicated from one channel. For a model's output,
/// whose channels may drift apart, this is the luma on the 0..255 grey scale:
/// (Y − 16)·255/219, i.e. equal to the grey level when R = G = B.
pub fn rgb_to_gray(img: &RgbImage) -> Vec<f64> {
    img.pixels()
        .map(|p| {
            let [r, g, b] = p.0;
            if r == g && g == b {
                // Exact for the common case instead of within an ulp.
                f64::from(r)
            } else {
                let [r, g, b] = p.0.map(f64::from);
                (COEFF[0] * r + COEFF[1] * g + COEFF[2] * b) / 219.0
            }
        })
        .collect()
}

/// The plane `which` of `img`, row-major.
pub fn plane(img: &RgbImage, which: Plane) -> Vec<f64> {
    match which {
        Plane::Y => rgb_to_y(img),
        Plane::Gray => rgb_to_gray(img),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn px(rgb: [u8; 3], which: Plane) -> f64 {
        plane(&RgbImage::from_pixel(1, 1, image::Rgb(rgb)), which)[0]
    }

    #[test]
    fn pure_colours() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(px([0, 0, 0], Plane::Y), 16.0));
        assert!(close(px([255, 255, 255], Plane::Y), 235.0)); // 16 + 219
        assert!(close(px([255, 0, 0], Plane::Y), 81.481));
        assert!(close(px([0, 255, 0], Plane::Y), 144.553));
        assert!(close(px([0, 0, 255], Plane::Y), 40.966));
        // Grey 128: 16 + 219·128/255 = 125.92941…
        assert!(close(
            px([128, 128, 128], Plane::Y),
            16.0 + 219.0 * 128.0 / 255.0
        ));
    }

    #[test]
    fn gray_plane() {
        assert_eq!(px([77, 77, 77], Plane::Gray), 77.0);
        // (65.481·255) / 219 = 76.24…; the weights are Y's.
        assert!((px([255, 0, 0], Plane::Gray) - 65.481 * 255.0 / 219.0).abs() < 1e-12);
        // Continuous across the R = G = B shortcut.
        assert!((px([100, 101, 100], Plane::Gray) - (100.0 + 128.553 / 219.0)).abs() < 1e-12);
    }

    #[test]
    fn row_major_order() {
        let img = RgbImage::from_fn(2, 2, |x, y| {
            image::Rgb(if (x, y) == (1, 0) { [255; 3] } else { [0; 3] })
        });
        let y = rgb_to_y(&img);
        assert!(y[1] > 234.9 && [y[0], y[2], y[3]].iter().all(|&v| v < 16.1));
    }
}
