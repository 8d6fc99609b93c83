//! Structural similarity as Wang et al.'s `ssim_index.m` (and BasicSR's
//! `calculate_ssim`): 11×11 Gaussian window, σ = 1.5, K1 = 0.01, K2 = 0.03,
//! L = 255, 'valid' filtering, mean of the SSIM map. No downsampling (the
//! later `ssim.m` downsamples large images; SR papers use `ssim_index.m`).
use super::psnr::shaved;

const WIN: usize = 11;
const SIGMA: f64 = 1.5;
const C1: f64 = (0.01 * 255.0) * (0.01 * 255.0);
const C2: f64 = (0.03 * 255.0) * (0.03 * 255.0);

/// Normalised 1-D Gaussian; its outer product is `fspecial('gaussian', 11, 1.5)`
/// (whose eps cut-off removes nothing at this size), so the 2-D filter is
/// applied separably.
fn gaussian() -> [f64; WIN] {
    let c = (WIN / 2) as f64;
    let mut g = [0.0; WIN];
    for (i, v) in g.iter_mut().enumerate() {
        let d = i as f64 - c;
        *v = (-(d * d) / (2.0 * SIGMA * SIGMA)).exp();
    }
    let sum: f64 = g.iter().sum();
    g.map(|v| v / sum)
}

/// 'valid' separable correlation of a `w`×`h` plane: (w−10)×(h−10) out.
fn filter_valid(src: &[f64], w: usize, h: usize, g: &[f64; WIN]) -> Vec<f64> {
    let (ow, oh) = (w - WIN + 1, h - WIN + 1);
    let mut tmp = vec![0.0; ow * h];
    for (s, t) in src.chunks_exact(w).zip(tmp.chunks_exact_mut(ow)) {
        for (x, out) in t.iter_mut().enumerate() {
            *out = g.iter().zip(&s[x..x + WIN]).map(|(k, v)| k * v).sum();
        }
    }
    let mut dst = vec![0.0; ow * oh];
    for (y, d) in dst.chunks_exact_mut(ow).enumerate() {
        for (k, &gk) in g.iter().enumerate() {
            for (o, &v) in d.iter_mut().zip(&tmp[(y + k) * ow..][..ow]) {
                *o += gk * v;
            }
        }
    }
    dst
}

/// Mean SSIM between two `w`×`h` luma planes (0..255 scale) after removing
/// `shave` pixels from each border.
pub fn ssim(a: &[f64], b: &[f64], w: usize, h: usize, shave: usize) -> f64 {
    let (cw, ch) = shaved(a.len(), b.len(), w, h, shave);
    assert!(
        cw >= WIN && ch >= WIN,
        "SSIM needs at least {WIN}x{WIN} after shaving, got {cw}x{ch}"
    );
    let crop = |p: &[f64]| -> Vec<f64> {
        (shave..h - shave)
            .flat_map(|y| p[y * w + shave..][..cw].iter().copied())
            .collect::<Vec<_>>()
    };
    let (a, b) = (crop(a), crop(b));
    let g = gaussian();
    let f = |p: &[f64]| filter_valid(p, cw, ch, &g);
    let prod = |p: &[f64], q: &[f64]| p.iter().zip(q).map(|(x, y)| x * y).collect::<Vec<_>>();
    let (mu1, mu2) = (f(&a), f(&b));
    let (e11, e22, e12) = (f(&prod(&a, &a)), f(&prod(&b, &b)), f(&prod(&a, &b)));
    let n = mu1.len();
    let sum: f64 = (0..n)
        .map(|i| {
            let (m1, m2) = (mu1[i], mu2[i]);
            let (s11, s22, s12) = (e11[i] - m1 * m1, e22[i] - m2 * m2, e12[i] - m1 * m2);
            ((2.0 * m1 * m2 + C1) * (2.0 * s12 + C2))
                / ((m1 * m1 + m2 * m2 + C1) * (s11 + s22 + C2))
        })
        .sum();
    sum / n as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct transcription of ssim_index.m (2-D window, no separability).
    fn naive(a: &[f64], b: &[f64], w: usize, h: usize) -> f64 {
        let g = gaussian();
        let (ow, oh) = (w - 10, h - 10);
        let mut total = 0.0;
        for y in 0..oh {
            for x in 0..ow {
                let (mut m1, mut m2, mut e11, mut e22, mut e12) = (0.0, 0.0, 0.0, 0.0, 0.0);
                for i in 0..WIN {
                    for j in 0..WIN {
                        let k = g[i] * g[j];
                        let (p, q) = (a[(y + i) * w + x + j], b[(y + i) * w + x + j]);
                        m1 += k * p;
                        m2 += k * q;
                        e11 += k * p * p;
                        e22 += k * q * q;
                        e12 += k * p * q;
                    }
                }
                let (s11, s22, s12) = (e11 - m1 * m1, e22 - m2 * m2, e12 - m1 * m2);
                total += ((2.0 * m1 * m2 + C1) * (2.0 * s12 + C2))
                    / ((m1 * m1 + m2 * m2 + C1) * (s11 + s22 + C2));
            }
        }
        total / (ow * oh) as f64
    }

    fn noise(n: usize, seed: u64) -> Vec<f64> {
        // Small LCG: deterministic test data without a dependency.
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 33) % 256) as f64
            })
            .collect()
    }

    #[test]
    fn window_is_normalised_and_symmetric() {
        let g = gaussian();
        assert!((g.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        assert_eq!(g[0], g[10]);
        // exp(−25/4.5) / exp(0) for the outermost tap relative to the centre.
        assert!((g[0] / g[5] - (-25.0f64 / 4.5).exp()).abs() < 1e-15);
    }

    #[test]
    fn identical_is_one() {
        let a = noise(40 * 30, 1);
        assert!((ssim(&a, &a, 40, 30, 4) - 1.0).abs() < 1e-12);
    }

    /// Two flat 11×11 planes: one window, σ = 0, so only the luminance term
    /// is left: (2·100·110 + C1) / (100² + 110² + C1) with C1 = 2.55² = 6.5025
    /// = 22006.5025 / 22106.5025 = 0.99547644409…
    #[test]
    fn flat_planes_by_hand() {
        let (a, b) = (vec![100.0; 121], vec![110.0; 121]);
        assert!((ssim(&a, &b, 11, 11, 0) - 0.995_476_444_091_506_6).abs() < 1e-12);
        // Shaving 2 from 15×15 leaves the same single window.
        let (a, b) = (vec![100.0; 225], vec![110.0; 225]);
        assert!((ssim(&a, &b, 15, 15, 2) - 0.995_476_444_091_506_6).abs() < 1e-12);
    }

    /// Negated contrast around a flat mean: b = 2·128 − a inside one window
    /// gives μ equal, σ12 = −σ², so SSIM = (C2 − 2σ²)/(2σ² + C2) < 0.
    #[test]
    fn inverted_structure_is_negative() {
        let a = noise(121, 7);
        let b: Vec<f64> = a.iter().map(|v| 256.0 - v).collect();
        assert!(ssim(&a, &b, 11, 11, 0) < 0.0);
    }

    #[test]
    fn separable_matches_naive() {
        let (w, h) = (37, 29);
        let a = noise(w * h, 3);
        let b: Vec<f64> = a
            .iter()
            .zip(noise(w * h, 5))
            .map(|(x, n)| (x * 0.8 + n * 0.2).round())
            .collect();
        let s = ssim(&a, &b, w, h, 0);
        assert!((s - naive(&a, &b, w, h)).abs() < 1e-12, "{s}");
        // Shaving equals cropping first.
        let crop = |p: &[f64]| {
            (3..h - 3)
                .flat_map(|y| p[y * w + 3..][..w - 6].to_vec())
                .collect::<Vec<_>>()
        };
        assert!((ssim(&a, &b, w, h, 3) - naive(&crop(&a), &crop(&b), w - 6, h - 6)).abs() < 1e-12);
    }
}
