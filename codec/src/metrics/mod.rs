//! The SR evaluation protocol of ../shared/README.md (§5 of the paper): HR is
//! modcropped, LR is MATLAB's antialiased bicubic downscale rounded to u8, SR
//! is rounded to u8, and quality is PSNR/SSIM on MATLAB `rgb2ycbcr` luma with
//! `scale` pixels shaved from each border (grey images are replicated to RGB;
//! [`Plane::Gray`] measures them on their raw grey level instead, as the
//! classic MATLAB bicubic table did). Every result of the project is judged
//! by these functions: the resize matches MATLAB's LR bit for bit and the
//! bicubic baselines match the published numbers (tests/metrics.rs).
pub mod color;
pub mod images;
pub mod imresize;
pub mod piqe;
pub mod psnr;
pub mod ssim;

use image::RgbImage;

pub use color::{Plane, plane, rgb_to_gray, rgb_to_y};
pub use images::{list_images, load_hr, load_rgb, make_lr, modcrop};
pub use imresize::{downscale, imresize, imresize_plane, upscale_bicubic};
pub use piqe::{Piqe, piqe, piqe_rgb};
pub use psnr::psnr;
pub use ssim::ssim;

use crate::error::{Error, Result};

/// (PSNR dB, SSIM) of `sr` against `hr` on Y, `shave` pixels off each border.
pub fn sr_quality(sr: &RgbImage, hr: &RgbImage, shave: usize) -> Result<(f64, f64)> {
    sr_quality_on(sr, hr, shave, Plane::Y)
}

/// (PSNR dB, SSIM) on the given plane; with the plane [`load_hr`] returns,
/// single-channel HR images are measured as in the classic MATLAB bicubic
/// table (see [`Plane::Gray`]).
pub fn sr_quality_on(
    sr: &RgbImage,
    hr: &RgbImage,
    shave: usize,
    which: Plane,
) -> Result<(f64, f64)> {
    if sr.dimensions() != hr.dimensions() {
        return Err(Error::Invalid(format!(
            "SR image is {}x{} but HR is {}x{} (expected equal sizes)",
            sr.width(),
            sr.height(),
            hr.width(),
            hr.height()
        )));
    }
    let (w, h) = (sr.width() as usize, sr.height() as usize);
    // SSIM's 11×11 'valid' window needs 11 pixels left after shaving.
    if 2 * shave + 11 > w.min(h) {
        return Err(Error::Invalid(format!(
            "{w}x{h} image is too small for shave {shave} (expected at least {} pixels per side)",
            2 * shave + 11
        )));
    }
    let (ps, ph) = (plane(sr, which), plane(hr, which));
    Ok((psnr(&ps, &ph, w, h, shave), ssim(&ps, &ph, w, h, shave)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_mismatch_names_both_sizes() {
        let e = sr_quality(&RgbImage::new(20, 20), &RgbImage::new(20, 21), 2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("20x20") && e.contains("20x21"), "{e}");
        assert!(sr_quality(&RgbImage::new(12, 12), &RgbImage::new(12, 12), 1).is_err());
    }

    #[test]
    fn identical_images() {
        let img = RgbImage::from_fn(32, 24, |x, y| {
            image::Rgb([(x * 7) as u8, (y * 9) as u8, (x * y) as u8])
        });
        let (p, s) = sr_quality(&img, &img, 4).unwrap();
        assert_eq!(p, f64::INFINITY);
        assert!((s - 1.0).abs() < 1e-12);
    }
}
