//! MATLAB-compatible `imresize(..., 'bicubic')`.
//!
//! Published SR numbers use LR images made by MATLAB, so this follows
//! MATLAB's `imresize.m` step by step rather than a textbook bicubic:
//! - `contributions`: Keys cubic (a = −0.5); when downscaling with
//!   antialiasing the kernel is stretched by 1/scale; every output's weights
//!   are normalised to sum to 1; out-of-range taps are clamped to the edge
//!   (`indices = min(max(1, indices), in_length)`, i.e. replicate padding);
//!   tap columns that are zero for every output are dropped. Replicate, not
//!   the symmetric padding of some ports (`aux = [1:n, n:-1:1]`): against the
//!   LR images MATLAB made (../shared/datasets/Set5_matlab_lr) replicate gives
//!   0 differing pixels, symmetric over 800 per scale, up to 7 LSB, on the
//!   border rows and columns.
//! - Dimensions are resized one after the other in order of increasing scale
//!   (`getResizeDimOrder` = `sort(scale)`, stable, so rows first on a tie).
//! - Each pass goes through `imresizemex`, which returns the input class: for
//!   uint8 the intermediate image is itself rounded (half away from zero) and
//!   saturated to 0..255 before the second pass. Skipping that intermediate
//!   rounding leaves ±1 differences in ~35% of the pixels of that MATLAB LR;
//!   with it, and rows resized first on equal scales, every pixel matches.
//! - Accumulation is in f64, in tap order, as `imresizemex` does.
use image::RgbImage;

/// Keys cubic convolution kernel with a = −0.5, written as MATLAB's `cubic`.
fn cubic(x: f64) -> f64 {
    let absx = x.abs();
    let absx2 = absx * absx;
    let absx3 = absx2 * absx;
    if absx <= 1.0 {
        1.5 * absx3 - 2.5 * absx2 + 1.0
    } else if absx <= 2.0 {
        -0.5 * absx3 + 2.5 * absx2 - 4.0 * absx + 2.0
    } else {
        0.0
    }
}

/// Per-axis resampling table: output `i` reads `idx[i*taps..][..taps]`
/// (0-based input positions) with the matching `w`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Contributions {
    pub taps: usize,
    pub idx: Vec<usize>,
    pub w: Vec<f64>,
}

/// MATLAB `contributions(in_length, out_length, scale, @cubic, 4, true)`.
pub(crate) fn contributions(in_len: usize, out_len: usize, scale: f64) -> Contributions {
    assert!(
        in_len > 0,
        "imresize: cannot resize an empty axis to {out_len}"
    );
    // Antialiasing: h(x) = scale * cubic(scale * x) with a wider support.
    let (kernel_scale, kernel_width) = if scale < 1.0 {
        (scale, 4.0 / scale)
    } else {
        (1.0, 4.0)
    };
    let p = kernel_width.ceil() as usize + 2;
    let last = in_len as i64 - 1;
    let mut idx = vec![0usize; out_len * p];
    let mut w = vec![0f64; out_len * p];
    for i in 0..out_len {
        // 1-based output coordinate mapped into input space, as in MATLAB.
        let x = (i + 1) as f64;
        let u = x / scale + 0.5 * (1.0 - 1.0 / scale);
        let left = (u - kernel_width / 2.0).floor() as i64;
        let row_w = &mut w[i * p..][..p];
        for (k, wk) in row_w.iter_mut().enumerate() {
            let j = left + k as i64;
            *wk = if kernel_scale < 1.0 {
                kernel_scale * cubic(kernel_scale * (u - j as f64))
            } else {
                cubic(u - j as f64)
            };
        }
        let sum: f64 = row_w.iter().sum();
        row_w.iter_mut().for_each(|wk| *wk /= sum);
        for (k, ik) in idx[i * p..][..p].iter_mut().enumerate() {
            // min(max(1, j), n), converted to 0-based.
            *ik = (left + k as i64 - 1).clamp(0, last) as usize;
        }
    }
    // MATLAB's `kill`: drop tap columns whose weight is zero for every output.
    let keep: Vec<usize> = (0..p)
        .filter(|&k| (0..out_len).any(|i| w[i * p + k] != 0.0))
        .collect();
    if keep.len() == p {
        return Contributions { taps: p, idx, w };
    }
    let taps = keep.len();
    let mut cidx = Vec::with_capacity(out_len * taps);
    let mut cw = Vec::with_capacity(out_len * taps);
    for i in 0..out_len {
        for &k in &keep {
            cidx.push(idx[i * p + k]);
            cw.push(w[i * p + k]);
        }
    }
    Contributions {
        taps,
        idx: cidx,
        w: cw,
    }
}

/// A sample type `imresizemex` can return: u8 rounds and saturates, f32 does not.
trait Sample: Copy + Default {
    fn to_f64(self) -> f64;
    fn from_f64(v: f64) -> Self;
}

impl Sample for u8 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        // MATLAB: round half away from zero, saturate to 0..255. Same result as
        // `v.round() as u8` (tested below), but f64::round is a libm call on
        // baseline x86-64 (no SSE4.1); this form is branch-free and vectorises.
        let c = v.clamp(0.0, 255.0);
        let up = (c + 0.5) as u8; // truncation = floor for c >= 0; NaN -> 0
        // c + 0.5 itself rounds up when c is just below a half (0.49999999999999994
        // + 0.5 == 1.0); up - 0.5 is exact, so this comparison undoes it.
        up - u8::from(f64::from(up) - 0.5 > c)
    }
}

impl Sample for f32 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}

/// Resize along x (within each row) of `CH` interleaved channels.
///
/// Each source row is widened to f64 once (every sample feeds several
/// outputs) and `CH` is a constant so an output pixel keeps its channel sums
/// in registers. 320×180 → 1280×720 RGB: ~19 ms before these, the unrolled
/// 4-tap loop and branch-free rounding, ~11 ms after (tests/metrics.rs
/// `upscale_720p_speed`). Computing the repeating interior of an integer
/// upscale phase by phase as contiguous vector multiply-adds was tried and
/// gave no measurable gain, so the table is used as is.
fn resize_rows<T: Sample, const CH: usize>(src: &[T], w: usize, c: &Contributions) -> Vec<T> {
    let out_w = c.w.len() / c.taps;
    let h = src.len() / (w * CH);
    let mut dst = vec![T::default(); out_w * h * CH];
    let mut row_f = vec![0f64; w * CH];
    for (src_row, dst_row) in src
        .chunks_exact(w * CH)
        .zip(dst.chunks_exact_mut(out_w * CH))
    {
        for (f, &v) in row_f.iter_mut().zip(src_row) {
            *f = v.to_f64();
        }
        // A literal 4 (every upscale has 4 taps after `kill`) unrolls the inlined loop.
        if c.taps == 4 {
            row_taps::<T, CH>(&row_f, dst_row, &c.w, &c.idx, 4);
        } else {
            row_taps::<T, CH>(&row_f, dst_row, &c.w, &c.idx, c.taps);
        }
    }
    dst
}

/// Outputs of the x pass for the table rows `wts`/`idx`; inlined so that a
/// literal `taps` specialises it.
#[inline(always)]
fn row_taps<T: Sample, const CH: usize>(
    row: &[f64],
    dst: &mut [T],
    wts: &[f64],
    idx: &[usize],
    taps: usize,
) {
    for ((out_px, wts), idx) in dst
        .chunks_exact_mut(CH)
        .zip(wts.chunks_exact(taps))
        .zip(idx.chunks_exact(taps))
    {
        let mut acc = [0.0f64; CH];
        for (&wk, &ik) in wts.iter().zip(idx) {
            let px: &[f64; CH] = row[ik * CH..][..CH].try_into().expect("CH samples");
            for (a, &v) in acc.iter_mut().zip(px) {
                *a += wk * v;
            }
        }
        for (o, a) in out_px.iter_mut().zip(acc) {
            *o = T::from_f64(a);
        }
    }
}

/// Resize along y (across rows). Whole rows are combined at once so the inner
/// loop is contiguous and vectorises; per-pixel tap order is unchanged.
fn resize_cols<T: Sample>(src: &[T], w: usize, ch: usize, c: &Contributions) -> Vec<T> {
    let row_len = w * ch;
    let out_h = c.w.len() / c.taps;
    let mut dst = vec![T::default(); row_len * out_h];
    let mut acc = vec![0f64; row_len];
    for ((dst_row, wts), idx) in dst
        .chunks_exact_mut(row_len)
        .zip(c.w.chunks_exact(c.taps))
        .zip(c.idx.chunks_exact(c.taps))
    {
        acc.fill(0.0);
        for (&wk, &ik) in wts.iter().zip(idx) {
            let src_row = &src[ik * row_len..][..row_len];
            for (a, &s) in acc.iter_mut().zip(src_row) {
                *a += wk * s.to_f64();
            }
        }
        for (d, &a) in dst_row.iter_mut().zip(&acc) {
            *d = T::from_f64(a);
        }
    }
    dst
}

/// MATLAB's two-pass resize of an interleaved `w`×`h`×`CH` buffer with the
/// per-axis scales MATLAB would use.
fn resize<T: Sample, const CH: usize>(
    src: &[T],
    (w, h): (usize, usize),
    (out_w, out_h): (usize, usize),
    (scale_w, scale_h): (f64, f64),
) -> Vec<T> {
    assert_eq!(
        src.len(),
        w * h * CH,
        "imresize: buffer is not {w}x{h}x{CH}"
    );
    if out_w == 0 || out_h == 0 {
        return Vec::new();
    }
    // Scale 1 along an axis is the identity (cubic(0) = 1, cubic(±1) = cubic(±2) = 0),
    // so that pass is skipped. Keyed on the scale, not on out == in: MATLAB's
    // ceil(s·n) can equal n for s ≠ 1, and that still filters.
    let x_pass = |img: &[T]| resize_rows::<T, CH>(img, w, &contributions(w, out_w, scale_w));
    let y_pass = |img: &[T], cols| resize_cols(img, cols, CH, &contributions(h, out_h, scale_h));
    match (scale_w == 1.0, scale_h == 1.0) {
        (true, true) => src.to_vec(),
        (true, false) => y_pass(src, w),
        (false, true) => x_pass(src),
        // getResizeDimOrder: sort(scale) is stable, dim 1 (rows, i.e. the y pass) wins ties.
        _ if scale_h <= scale_w => x_pass(&y_pass(src, w)),
        _ => y_pass(&x_pass(src), out_w),
    }
}

fn resize_rgb(img: &RgbImage, out_w: usize, out_h: usize, scales: (f64, f64)) -> RgbImage {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let data = resize::<u8, 3>(img.as_raw(), (w, h), (out_w, out_h), scales);
    RgbImage::from_raw(out_w as u32, out_h as u32, data)
        .expect("resize returns out_w*out_h*3 bytes")
}

/// MATLAB `imresize(img, [out_h out_w], 'bicubic')`: per-axis scale = out/in.
pub fn imresize(img: &RgbImage, out_w: u32, out_h: u32) -> RgbImage {
    let scales = (
        f64::from(out_w) / f64::from(img.width()),
        f64::from(out_h) / f64::from(img.height()),
    );
    resize_rgb(img, out_w as usize, out_h as usize, scales)
}

/// MATLAB `imresize(img, s)`: output size is `ceil(s * size)` and the kernel
/// uses `s` itself (not out/in), which matters when the size is not a multiple.
fn imresize_by(img: &RgbImage, s: f64) -> RgbImage {
    let out_w = (s * f64::from(img.width())).ceil() as usize;
    let out_h = (s * f64::from(img.height())).ceil() as usize;
    resize_rgb(img, out_w, out_h, (s, s))
}

/// MATLAB `imresize(hr, 1/scale, 'bicubic')` (antialiased), as used to make
/// the LR of every SR benchmark.
pub fn downscale(hr: &RgbImage, scale: usize) -> RgbImage {
    imresize_by(hr, 1.0 / scale as f64)
}

/// MATLAB `imresize(lr, scale, 'bicubic')`: the bicubic baseline and the
/// codec's "bicubic" video mode.
pub fn upscale_bicubic(lr: &RgbImage, scale: usize) -> RgbImage {
    imresize_by(lr, scale as f64)
}

/// Float version of [`imresize`] on one `w`×`h` plane (MATLAB on single
/// input: no rounding, no clamping).
pub fn imresize_plane(src: &[f32], w: usize, h: usize, out_w: usize, out_h: usize) -> Vec<f32> {
    let scales = (out_w as f64 / w as f64, out_h as f64 / h as f64);
    resize::<f32, 1>(src, (w, h), (out_w, out_h), scales)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cubic_kernel_values() {
        assert_eq!(cubic(0.0), 1.0);
        assert_eq!(cubic(1.0), 0.0);
        assert_eq!(cubic(2.0), 0.0);
        assert_eq!(cubic(-2.5), 0.0);
        // 1.5·0.125 − 2.5·0.25 + 1 = 0.5625; −0.5·3.375 + 2.5·2.25 − 6 + 2 = −0.0625
        assert_eq!(cubic(0.5), 0.5625);
        assert_eq!(cubic(-1.5), -0.0625);
    }

    /// ×2 upscale of a length-4 axis, first output, worked by hand:
    /// u = 1/2 + 0.25 = 0.75, left = floor(0.75 − 2) = −2, taps at 1-based
    /// −2..3 with distances 2.75, 1.75, 0.75, −0.25, −1.25, −2.25.
    /// cubic: 0, −0.0234375, 0.2265625, 0.8671875, −0.0703125, 0 (sum 1).
    /// The two outer columns are zero for every output and get killed;
    /// 1-based positions −1, 0, 1, 2 clamp to 1, 1, 1, 2.
    #[test]
    fn upscale_weights_by_hand() {
        let c = contributions(4, 8, 2.0);
        assert_eq!(c.taps, 4);
        assert_eq!(&c.w[..4], &[-0.0234375, 0.2265625, 0.8671875, -0.0703125]);
        assert_eq!(&c.idx[..4], &[0, 0, 0, 1]);
        // Last output clamps at the other edge: positions 3, 4, 5, 6 → 3, 4, 4, 4.
        assert_eq!(&c.w[28..], &[-0.0703125, 0.8671875, 0.2265625, -0.0234375]);
        assert_eq!(&c.idx[28..], &[2, 3, 3, 3]);
        for row in c.w.chunks(4) {
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        }
    }

    /// ×1/2 downscale: kernel stretched to width 8, h(x) = ½·cubic(x/2).
    /// Output 1: u = 2 − 0.5 = 1.5, left = floor(1.5 − 4) = −3, P = 10;
    /// distances 4.5..−4.5; nonzero at |d| ≤ 3.5 (d = 4 would be cubic(2) = 0):
    /// d = ±3.5, ±2.5, ±1.5, ±0.5 → ½·cubic(1.75, 1.25, 0.75, 0.25)
    /// = ½·(−0.0234375, −0.0703125, 0.2265625, 0.8671875), sum 1 → /1.
    #[test]
    fn downscale_weights_by_hand() {
        let c = contributions(8, 4, 0.5);
        assert_eq!(c.taps, 8);
        let half = [-0.01171875, -0.03515625, 0.11328125, 0.43359375];
        let expect: Vec<f64> = half.iter().chain(half.iter().rev()).copied().collect();
        assert_eq!(&c.w[..8], expect.as_slice());
        // 1-based −2..5 → clamped 1, 1, 1, 1, 2, 3, 4, 5.
        assert_eq!(&c.idx[..8], &[0, 0, 0, 0, 1, 2, 3, 4]);
    }

    #[test]
    fn one_dimensional_resize_by_hand() {
        // out[0] = (−0.0234375 + 0.2265625 + 0.8671875)·in[0] − 0.0703125·in[1]
        //        = 1.0703125·100 − 0.0703125·40 = 104.21875
        let out = imresize_plane(&[100.0, 40.0, 0.0, 0.0], 4, 1, 8, 1);
        assert_eq!(out[0], 104.21875);
        let row = |v: [u8; 4]| RgbImage::from_fn(4, 1, move |x, _| image::Rgb([v[x as usize]; 3]));
        let first = |v| imresize(&row(v), 8, 1).get_pixel(0, 0).0[0];
        assert_eq!(first([100, 40, 0, 0]), 104);
        // Exactly half-way: 1.0703125·5 − 0.0703125·69 = 0.5 → 1 (MATLAB rounds
        // half away from zero; round-half-even would give 0).
        assert_eq!(imresize_plane(&[5.0, 69.0, 0.0, 0.0], 4, 1, 8, 1)[0], 0.5);
        assert_eq!(first([5, 69, 0, 0]), 1);
        // 1.0703125·0 − 0.0703125·8 = −0.5625 saturates to 0.
        assert_eq!(first([0, 8, 0, 0]), 0);
    }

    #[test]
    fn u8_rounding_equals_round() {
        let mut v = -3.0f64;
        while v < 260.0 {
            for x in [
                v,
                v.next_up(),
                v.next_down(),
                v + 0.5,
                (v + 0.5).next_down(),
            ] {
                assert_eq!(<u8 as Sample>::from_f64(x), x.round() as u8, "{x:e}");
            }
            v += 0.25;
        }
        assert_eq!(<u8 as Sample>::from_f64(f64::NAN), 0);
        assert_eq!(<u8 as Sample>::from_f64(0.5f64.next_down()), 0);
    }

    #[test]
    fn u8_rounds_half_away() {
        assert_eq!(<u8 as Sample>::from_f64(2.5), 3);
        assert_eq!(<u8 as Sample>::from_f64(3.5), 4);
        assert_eq!(<u8 as Sample>::from_f64(-0.5), 0);
        assert_eq!(<u8 as Sample>::from_f64(254.5), 255);
        assert_eq!(<u8 as Sample>::from_f64(300.0), 255);
    }

    /// Straight transcription of MATLAB's resizeAlongDim loop, one sample at
    /// a time, to pin the fast passes and the dimension order.
    fn naive(img: &RgbImage, out_w: usize, out_h: usize) -> RgbImage {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let (sw, sh) = (out_w as f64 / w as f64, out_h as f64 / h as f64);
        let get =
            |buf: &Vec<u8>, bw: usize, x: usize, y: usize, c: usize| buf[(y * bw + x) * 3 + c];
        let along =
            |buf: &Vec<u8>, bw: usize, bh: usize, horizontal: bool| -> (Vec<u8>, usize, usize) {
                let (n_in, n_out, s) = if horizontal {
                    (bw, out_w, sw)
                } else {
                    (bh, out_h, sh)
                };
                let t = contributions(n_in, n_out, s);
                let (ow, oh) = if horizontal { (n_out, bh) } else { (bw, n_out) };
                let mut out = vec![0u8; ow * oh * 3];
                for y in 0..oh {
                    for x in 0..ow {
                        for c in 0..3 {
                            let o = if horizontal { x } else { y };
                            let mut acc = 0.0;
                            for k in 0..t.taps {
                                let i = t.idx[o * t.taps + k];
                                let v = if horizontal {
                                    get(buf, bw, i, y, c)
                                } else {
                                    get(buf, bw, x, i, c)
                                };
                                acc += t.w[o * t.taps + k] * f64::from(v);
                            }
                            out[(y * ow + x) * 3 + c] = acc.round() as u8;
                        }
                    }
                }
                (out, ow, oh)
            };
        let buf = img.as_raw().clone();
        let out = if sh <= sw {
            let (b, bw, bh) = along(&buf, w, h, false);
            along(&b, bw, bh, true).0
        } else {
            let (b, bw, bh) = along(&buf, w, h, true);
            along(&b, bw, bh, false).0
        };
        RgbImage::from_raw(out_w as u32, out_h as u32, out).unwrap()
    }

    #[test]
    fn fast_passes_equal_naive() {
        let mut seed = 0x2545f4914f6cdd1du64;
        let img = RgbImage::from_fn(23, 17, |_, _| {
            let mut px = [0u8; 3];
            for v in &mut px {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                *v = seed as u8;
            }
            image::Rgb(px)
        });
        // Up, down, mixed (x first when the width shrinks more), non-integer.
        for (ow, oh) in [
            (46, 34),
            (69, 51),
            (92, 68),
            (11, 8),
            (7, 5),
            (40, 9),
            (9, 40),
            (30, 17),
        ] {
            assert_eq!(
                imresize(&img, ow, oh),
                naive(&img, ow as usize, oh as usize),
                "{ow}x{oh}"
            );
        }
    }

    #[test]
    fn constant_image_stays_constant() {
        for (w, h, ow, oh) in [
            (17, 11, 68, 44),
            (40, 30, 10, 10),
            (37, 29, 19, 50),
            (5, 5, 5, 9),
        ] {
            let img = RgbImage::from_pixel(w, h, image::Rgb([7, 128, 250]));
            let out = imresize(&img, ow, oh);
            assert_eq!(out.dimensions(), (ow, oh));
            assert!(
                out.pixels().all(|p| p.0 == [7, 128, 250]),
                "{w}x{h} → {ow}x{oh}"
            );
            let plane = imresize_plane(
                &vec![0.25f32; (w * h) as usize],
                w as usize,
                h as usize,
                ow as usize,
                oh as usize,
            );
            assert!(plane.iter().all(|&v| (v - 0.25).abs() < 1e-6));
        }
    }

    #[test]
    fn sizes_follow_matlab() {
        let img = RgbImage::new(511, 256);
        // ceil(511/3) = 171, ceil(256/3) = 86.
        assert_eq!(downscale(&img, 3).dimensions(), (171, 86));
        assert_eq!(
            upscale_bicubic(&RgbImage::new(320, 180), 4).dimensions(),
            (1280, 720)
        );
    }

    #[test]
    fn saturates_overshoot() {
        // A hard edge overshoots with a = −0.5; u8 output must clamp, not wrap.
        let img = RgbImage::from_fn(8, 8, |x, _| image::Rgb([if x < 4 { 0 } else { 255 }; 3]));
        let plane: Vec<f32> = img.pixels().map(|p| f32::from(p.0[0])).collect();
        let f = imresize_plane(&plane, 8, 8, 32, 32);
        assert!(f.iter().any(|&v| v > 255.0) && f.iter().any(|&v| v < 0.0));
        let out = upscale_bicubic(&img, 4);
        for (p, &v) in out.pixels().zip(&f) {
            assert_eq!(f64::from(p.0[0]), f64::from(v).round().clamp(0.0, 255.0));
        }
    }
}
