//! The evaluation harness shared by `nawqsr eval`, calibration and the offline
//! flow: datasets of (HR, LR) pairs made by the SR protocol, and scoring of an
//! upscaler on them.
use std::path::Path;

use image::RgbImage;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::metrics::{self, images};

/// One evaluation image: modcropped HR and its MATLAB-bicubic LR.
#[derive(Clone, Debug)]
pub struct Sample {
    pub name: String,
    pub hr: RgbImage,
    pub lr: RgbImage,
}

impl Sample {
    pub fn from_hr(name: String, hr: &RgbImage, scale: usize) -> Sample {
        let hr = images::modcrop(hr, scale);
        let lr = images::make_lr(&hr, scale);
        Sample { name, hr, lr }
    }
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Every image of `dir`, modcropped, with its LR.
pub fn load_dataset(dir: &Path, scale: usize) -> Result<Vec<Sample>> {
    check_scale(scale)?;
    images::list_images(dir)?
        .iter()
        .map(|p| Ok(Sample::from_hr(stem(p), &images::load_rgb(p)?, scale)))
        .collect()
}

fn check_scale(scale: usize) -> Result<()> {
    if (2..=4).contains(&scale) {
        Ok(())
    } else {
        Err(Error::Scale(scale))
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ImageScore {
    pub name: String,
    pub psnr: f64,
    pub ssim: f64,
    /// No-reference PIQE of the SR output (0 best, 100 worst; FYE-SR's
    /// perceptual metric, MATLAB `piqe`), on the whole RGB image.
    pub piqe: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Score {
    pub mean_psnr: f64,
    pub mean_ssim: f64,
    pub mean_piqe: f64,
    pub images: Vec<ImageScore>,
}

/// Scores `upscale` on `samples` (Y PSNR/SSIM, shave = scale; PIQE of the output).
pub fn score(
    samples: &[Sample],
    scale: usize,
    mut upscale: impl FnMut(&RgbImage) -> Result<RgbImage>,
) -> Result<Score> {
    let mut images = Vec::with_capacity(samples.len());
    for s in samples {
        let sr = upscale(&s.lr)?;
        let (psnr, ssim) = metrics::sr_quality(&sr, &s.hr, scale)
            .map_err(|e| Error::Invalid(format!("image {}: {e}", s.name)))?;
        let piqe = metrics::piqe::piqe_rgb(&sr)
            .map_err(|e| Error::Invalid(format!("image {}: PIQE: {e}", s.name)))?
            .score;
        images.push(ImageScore {
            name: s.name.clone(),
            psnr,
            ssim,
            piqe,
        });
    }
    summarize(images)
}

/// Scores a luma model on its own output plane (issue 17): `upscale_y`
/// gives the SR Y (0..=255, as written into a video frame's Y plane) and its
/// width and height; Y PSNR/SSIM against the HR image's Y, PIQE of that plane.
/// This is the protocol's score of a Y network, with no RGB rounding between.
pub fn score_y(
    samples: &[Sample],
    scale: usize,
    mut upscale_y: impl FnMut(&RgbImage) -> Result<(Vec<f64>, usize, usize)>,
) -> Result<Score> {
    let mut images = Vec::with_capacity(samples.len());
    for s in samples {
        let (y, w, h) = upscale_y(&s.lr)?;
        if (w as u32, h as u32) != s.hr.dimensions() || y.len() != w * h {
            return Err(Error::Invalid(format!(
                "image {}: SR Y plane is {w}x{h}, HR is {:?}",
                s.name,
                s.hr.dimensions()
            )));
        }
        let hr = metrics::color::rgb_to_y(&s.hr);
        let psnr = metrics::psnr::psnr(&y, &hr, w, h, scale);
        let ssim = metrics::ssim::ssim(&y, &hr, w, h, scale);
        let piqe = metrics::piqe::piqe(&y, w, h)
            .map_err(|e| Error::Invalid(format!("image {}: PIQE: {e}", s.name)))?
            .score;
        images.push(ImageScore {
            name: s.name.clone(),
            psnr,
            ssim,
            piqe,
        });
    }
    summarize(images)
}

/// The means over per-image scores (an error for none).
fn summarize(images: Vec<ImageScore>) -> Result<Score> {
    if images.is_empty() {
        return Err(Error::Invalid("no images to evaluate".into()));
    }
    let n = images.len() as f64;
    Ok(Score {
        mean_psnr: images.iter().map(|i| i.psnr).sum::<f64>() / n,
        mean_ssim: images.iter().map(|i| i.ssim).sum::<f64>() / n,
        mean_piqe: images.iter().map(|i| i.piqe).sum::<f64>() / n,
        images,
    })
}

/// Mean Y-PSNR only (the offline flow's GetQuality), on precomputed outputs.
pub fn mean_psnr(samples: &[Sample], scale: usize, outputs: &[RgbImage]) -> Result<f64> {
    let mut s = 0.0;
    for (smp, sr) in samples.iter().zip(outputs) {
        let y1 = metrics::color::rgb_to_y(sr);
        let y2 = metrics::color::rgb_to_y(&smp.hr);
        if sr.dimensions() != smp.hr.dimensions() {
            return Err(Error::Invalid(format!(
                "{}: output {:?} vs HR {:?}",
                smp.name,
                sr.dimensions(),
                smp.hr.dimensions()
            )));
        }
        s += metrics::psnr::psnr(&y1, &y2, sr.width() as usize, sr.height() as usize, scale);
    }
    Ok(s / samples.len().max(1) as f64)
}
