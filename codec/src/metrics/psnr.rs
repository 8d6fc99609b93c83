//! Peak signal-to-noise ratio on a luma plane, peak 255.

/// Row-major `w`×`h` crop bounds after removing `shave` pixels per border.
pub(crate) fn shaved(
    len_a: usize,
    len_b: usize,
    w: usize,
    h: usize,
    shave: usize,
) -> (usize, usize) {
    assert!(
        len_a == w * h && len_b == w * h,
        "planes have {len_a} and {len_b} samples, expected {w}x{h}"
    );
    assert!(
        2 * shave < w && 2 * shave < h,
        "shave {shave} leaves nothing of {w}x{h}"
    );
    (w - 2 * shave, h - 2 * shave)
}

/// PSNR in dB between two `w`×`h` planes (values on the 0..255 scale), with
/// `shave` pixels removed from each border; infinite for identical planes.
pub fn psnr(a: &[f64], b: &[f64], w: usize, h: usize, shave: usize) -> f64 {
    let (cw, ch) = shaved(a.len(), b.len(), w, h, shave);
    let sse: f64 = (shave..h - shave)
        .map(|y| {
            let row = y * w + shave;
            a[row..row + cw]
                .iter()
                .zip(&b[row..row + cw])
                .map(|(p, q)| (p - q) * (p - q))
                .sum::<f64>()
        })
        .sum();
    let mse = sse / (cw * ch) as f64;
    10.0 * (255.0 * 255.0 / mse).log10()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_offset() {
        let a = vec![100.0; 64];
        let b = vec![101.0; 64];
        // 10·log10(255² / 1) = 20·log10(255) = 48.1308036…
        assert!((psnr(&a, &b, 8, 8, 0) - 48.130_803_608_679_1).abs() < 1e-9);
        let c = vec![90.0; 64];
        // 20·log10(255 / 10) = 28.1308036…
        assert!((psnr(&a, &c, 8, 8, 2) - 28.130_803_608_679_1).abs() < 1e-9);
    }

    #[test]
    fn shave_ignores_the_border() {
        let a = vec![50.0; 36];
        let mut b = a.clone();
        b[0] = 0.0; // corner: inside the shaved border
        b[35] = 255.0;
        assert_eq!(psnr(&a, &b, 6, 6, 1), f64::INFINITY);
        // One interior pixel off by 4 over a 4×4 crop: mse = 16/16 = 1.
        b[2 * 6 + 2] = 54.0;
        assert!((psnr(&a, &b, 6, 6, 1) - 48.130_803_608_679_1).abs() < 1e-9);
    }

    #[test]
    #[should_panic(expected = "shave 3 leaves nothing")]
    fn shave_too_large() {
        psnr(&[0.0; 36], &[0.0; 36], 6, 6, 3);
    }
}
