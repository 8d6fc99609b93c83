//! PIQE, the Perception based Image Quality Evaluator (Venkatanath N et al.,
//! "Blind image quality evaluation using perception based features", NCC
//! 2015), as MATLAB's `piqe` computes it. FYE-SR (MobiCom'24) scores its
//! latency-targeted plans with it because it needs no reference image, so the
//! runtime can measure it on live frames. 0 is excellent, 100 is bad.
//!
//! The steps (MATLAB `piqe.m`, followed line by line by the `pypiqe` port that
//! `tools/piqe_reference.py` runs to produce the reference values the tests
//! compare against):
//! 1. grey (MATLAB `rgb2gray` on u8: the BT.601 weights, rounded to u8);
//! 2. symmetric padding at the bottom/right to a multiple of 16;
//! 3. rescale to `round(255 · I / max(I))`;
//! 4. MSCN coefficients `(I − μ) / (σ + 1)`, μ and σ² from a 7×7 Gaussian
//!    window with σ = 7/6 (3 standard deviations), replicated borders;
//! 5. per non-overlapping 16×16 block: it is *active* when the MSCN variance
//!    (n − 1 normalised) exceeds 0.1; an active block has a *noticeable
//!    distortion* when any 6-pixel segment of one of its four edges has a
//!    standard deviation below 0.1 (blockiness: a flat edge in a busy block),
//!    and *noise* when its standard deviation σ_b exceeds twice β, the relative
//!    difference between σ_b and the centre/surround deviation ratio;
//! 6. score = 100 · (Σ_active [d·(1 − v) + n·v] + 1) / (N_active + 1), with v
//!    the block variance and d, n the two flags (C = 1 keeps a picture with no
//!    active block, e.g. a flat one, at 100).
//!
//! Two conventions where MATLAB and the numpy port differ, and which this code
//! takes: grey conversion uses MATLAB's `rgb2gray` weights (pypiqe calls
//! OpenCV's `cvtColor`, whose 14-bit fixed-point weights move some pixels by
//! one grey level), and rounding is half away from zero (MATLAB `round`;
//! numpy rounds half to even, which differs only when 255·I/max(I) is an exact
//! tie, i.e. for images whose maximum is below 255). The centre/surround
//! deviation keeps MATLAB's quirk of deleting columns 8 and then "9" of the
//! already shortened block (original columns 8 and 10, 1-based), as pypiqe does.
use image::RgbImage;

use crate::error::{Error, Result};

/// Side of the analysis blocks.
pub const BLOCK: usize = 16;
/// Minimum MSCN variance of a spatially active block.
const ACTIVITY_THRESHOLD: f64 = 0.1;
/// Maximum edge-segment standard deviation of an impaired (blocky) edge.
const IMPAIRED_THRESHOLD: f64 = 0.1;
/// Pixels per edge segment.
const SEGMENT: usize = 6;

/// A PIQE score and its block counts.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Piqe {
    /// 0 (excellent) to 100 (bad).
    pub score: f64,
    /// 16×16 blocks analysed (after padding).
    pub blocks: usize,
    /// Spatially active blocks (N_HSA).
    pub active: usize,
    /// Active blocks with a noticeable distortion (blockiness).
    pub artifacts: usize,
    /// Active blocks flagged as noisy.
    pub noise: usize,
}

/// MATLAB `rgb2gray` on a u8 image: `round(0.2989 R + 0.5870 G + 0.1140 B)`
/// with MATLAB's exact weights (the inverse of its NTSC matrix's first row).
pub fn rgb2gray(img: &RgbImage) -> Vec<f64> {
    const W: [f64; 3] = [0.298936021293775, 0.587043074451121, 0.114020904255103];
    img.pixels()
        .map(|p| {
            let [r, g, b] = p.0.map(f64::from);
            (W[0] * r + W[1] * g + W[2] * b).round().clamp(0.0, 255.0)
        })
        .collect()
}

/// PIQE of an RGB image (grey by [`rgb2gray`]).
pub fn piqe_rgb(img: &RgbImage) -> Result<Piqe> {
    piqe(&rgb2gray(img), img.width() as usize, img.height() as usize)
}

/// PIQE of a `w`×`h` grey plane, row-major, any non-negative scale (it is
/// rescaled by its maximum, step 3).
pub fn piqe(plane: &[f64], w: usize, h: usize) -> Result<Piqe> {
    if w == 0 || h == 0 || plane.len() != w * h {
        return Err(Error::Invalid(format!(
            "PIQE: plane of {} values for a {w}x{h} image (expected w·h > 0 values)",
            plane.len()
        )));
    }
    if let Some(v) = plane.iter().find(|v| !(v.is_finite() && **v >= 0.0)) {
        return Err(Error::Invalid(format!(
            "PIQE: pixel value {v} (expected finite values ≥ 0)"
        )));
    }
    // Step 2: symmetric padding (MATLAB padarray 'symmetric', 'post': the edge
    // pixel is repeated, then the image mirrored).
    let (pw, ph) = (w.div_ceil(BLOCK) * BLOCK, h.div_ceil(BLOCK) * BLOCK);
    let sym = |i: usize, n: usize| {
        let m = i % (2 * n);
        if m < n { m } else { 2 * n - 1 - m }
    };
    let max = plane.iter().copied().fold(0.0f64, f64::max);
    let blocks = (pw / BLOCK) * (ph / BLOCK);
    if max == 0.0 {
        // A black image: MATLAB divides 0 by 0 and every block test is false on
        // NaN, so the score is C/C = 100; say so without the NaNs.
        return Ok(Piqe {
            score: 100.0,
            blocks,
            active: 0,
            artifacts: 0,
            noise: 0,
        });
    }
    // Step 3, in MATLAB's order of operations: round(255 * (I / max)).
    let mut img = vec![0.0f64; pw * ph];
    for y in 0..ph {
        let src = &plane[sym(y, h) * w..][..w];
        for x in 0..pw {
            img[y * pw + x] = round_half_away(255.0 * (src[sym(x, w)] / max));
        }
    }
    let mscn = mscn(&img, pw, ph);

    // Step 5.
    let mut dist = 0.0;
    let (mut active, mut artifacts, mut noise) = (0, 0, 0);
    let mut block = [0.0f64; BLOCK * BLOCK];
    for by in (0..ph).step_by(BLOCK) {
        for bx in (0..pw).step_by(BLOCK) {
            for r in 0..BLOCK {
                block[r * BLOCK..][..BLOCK].copy_from_slice(&mscn[(by + r) * pw + bx..][..BLOCK]);
            }
            let var = variance(&block);
            // MATLAB: `if blockVar > activityThreshold` (NaN is never active).
            if var.is_nan() || var <= ACTIVITY_THRESHOLD {
                continue;
            }
            active += 1;
            let impaired = noticeable_distortion(&block);
            let noisy = noise_criterion(&block, var);
            artifacts += usize::from(impaired);
            noise += usize::from(noisy);
            // Step 6's pooling: a blocky block counts 1 − v, a noisy one v.
            if impaired {
                dist += 1.0 - var;
            }
            if noisy {
                dist += var;
            }
        }
    }
    const C: f64 = 1.0;
    Ok(Piqe {
        score: (dist + C) / (C + active as f64) * 100.0,
        blocks,
        active,
        artifacts,
        noise,
    })
}

/// MATLAB `round`: halves away from zero (f64::round does exactly this).
fn round_half_away(v: f64) -> f64 {
    v.round()
}

/// The normalised 7-tap Gaussian of σ = 7/6 (MATLAB `fspecial('gaussian', 7,
/// 7/6)` is its outer product, normalised: the same filter, separable).
fn gaussian7() -> [f64; 7] {
    let s = 7.0 / 6.0;
    let mut g = [0.0; 7];
    for (k, v) in g.iter_mut().enumerate() {
        let x = k as f64 - 3.0;
        *v = (-(x * x) / (2.0 * s * s)).exp();
    }
    let sum: f64 = g.iter().sum();
    g.map(|v| v / sum)
}

/// Separable 7×7 Gaussian with replicated borders (MATLAB `imfilter(…,
/// 'replicate')`).
fn blur(src: &[f64], w: usize, h: usize, g: &[f64; 7]) -> Vec<f64> {
    let mut tmp = vec![0.0; w * h];
    for y in 0..h {
        let row = &src[y * w..][..w];
        for x in 0..w {
            let mut acc = 0.0;
            for (k, gk) in g.iter().enumerate() {
                let xx = (x + k).saturating_sub(3).min(w - 1);
                acc += gk * row[xx];
            }
            tmp[y * w + x] = acc;
        }
    }
    let mut out = vec![0.0; w * h];
    for y in 0..h {
        for (k, gk) in g.iter().enumerate() {
            let yy = (y + k).saturating_sub(3).min(h - 1);
            let src = &tmp[yy * w..][..w];
            for (o, s) in out[y * w..][..w].iter_mut().zip(src) {
                *o += gk * s;
            }
        }
    }
    out
}

/// Step 4: mean-subtracted contrast-normalised coefficients.
fn mscn(img: &[f64], w: usize, h: usize) -> Vec<f64> {
    let g = gaussian7();
    let mu = blur(img, w, h, &g);
    let sq: Vec<f64> = img.iter().map(|v| v * v).collect();
    let mu2 = blur(&sq, w, h, &g);
    img.iter()
        .zip(mu.iter().zip(&mu2))
        .map(|(&x, (&m, &m2))| {
            let sigma = (m2 - m * m).abs().sqrt();
            (x - m) / (sigma + 1.0)
        })
        .collect()
}

/// Sample variance (n − 1), two-pass.
fn variance(v: &[f64]) -> f64 {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0)
}

fn std_dev(v: &[f64]) -> f64 {
    variance(v).sqrt()
}

/// Noticeable-distortion criterion: any 6-pixel segment of the top, right,
/// bottom or left edge whose standard deviation is below the threshold.
fn noticeable_distortion(b: &[f64; BLOCK * BLOCK]) -> bool {
    let row = |r: usize| -> [f64; BLOCK] { std::array::from_fn(|c| b[r * BLOCK + c]) };
    let col = |c: usize| -> [f64; BLOCK] { std::array::from_fn(|r| b[r * BLOCK + c]) };
    let edges = [row(0), col(BLOCK - 1), row(BLOCK - 1), col(0)];
    (0..=BLOCK - SEGMENT).any(|s| {
        edges
            .iter()
            .any(|e| std_dev(&e[s..s + SEGMENT]) < IMPAIRED_THRESHOLD)
    })
}

/// Noise criterion: σ_b > 2β with β = |σ_b − r| / max(σ_b, r), r the ratio of
/// the centre columns' deviation to the surround's. NaN (a zero surround
/// deviation makes r infinite and β = ∞/∞) fails the test, as in MATLAB.
fn noise_criterion(b: &[f64; BLOCK * BLOCK], var: f64) -> bool {
    let sigma = var.sqrt();
    // MATLAB: blockSize = 15, center1 = (15 + 1) / 2 = 8, center2 = 9 (1-based).
    let (c1, c2) = (7, 8);
    let mut center = Vec::with_capacity(2 * BLOCK);
    center.extend((0..BLOCK).map(|r| b[r * BLOCK + c1]));
    center.extend((0..BLOCK).map(|r| b[r * BLOCK + c2]));
    // Deleting column c1 and then column c2 of the shortened block removes the
    // original columns 7 and 9 (0-based); column 8 stays in the surround.
    let surround: Vec<f64> = (0..BLOCK)
        .flat_map(|r| {
            (0..BLOCK)
                .filter(|&c| c != 7 && c != 9)
                .map(move |c| (r, c))
        })
        .map(|(r, c)| b[r * BLOCK + c])
        .collect();
    let mut ratio = std_dev(&center) / std_dev(&surround);
    if ratio.is_nan() {
        ratio = 0.0;
    }
    let beta = (sigma - ratio).abs() / sigma.max(ratio);
    sigma > 2.0 * beta
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_images_score_100() {
        for v in [0.0, 17.0, 255.0] {
            let p = piqe(&vec![v; 40 * 30], 40, 30).unwrap();
            assert_eq!(p.score, 100.0, "value {v}");
            assert_eq!(p.active, 0);
            assert_eq!(p.blocks, 3 * 2);
        }
    }

    #[test]
    fn bad_planes_are_errors() {
        assert!(piqe(&[1.0; 10], 4, 3).is_err());
        assert!(piqe(&[], 0, 0).is_err());
        let e = piqe(&[1.0, f64::NAN, 0.0, 2.0], 2, 2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("NaN"), "{e}");
    }

    #[test]
    fn gaussian_is_normalised_and_symmetric() {
        let g = gaussian7();
        assert!((g.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        for k in 0..3 {
            assert_eq!(g[k], g[6 - k]);
        }
    }

    #[test]
    fn symmetric_padding_repeats_the_edge() {
        // A 20-wide image pads to 32 with columns 19, 18, … : a 2-column
        // right-edge stripe then appears mirrored in the padding, so an image
        // and its explicit symmetric extension score the same.
        let (w, h) = (20, 18);
        let img: Vec<f64> = (0..w * h).map(|i| ((i * 7919) % 251) as f64).collect();
        let (pw, ph) = (32, 32);
        let sym = |i: usize, n: usize| if i < n { i } else { 2 * n - 1 - i };
        let padded: Vec<f64> = (0..pw * ph)
            .map(|i| img[sym(i / pw, h) * w + sym(i % pw, w)])
            .collect();
        assert_eq!(piqe(&img, w, h).unwrap(), piqe(&padded, pw, ph).unwrap());
    }
}
