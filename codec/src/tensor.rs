//! Float activation tensors in HWC layout (channel-last, the layout the integer
//! kernels read), and helpers to split work by rows across threads.
use image::RgbImage;

/// An H×W×C f32 tensor, channel-last.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub data: Vec<f32>,
}

impl Tensor {
    pub fn zeros(h: usize, w: usize, c: usize) -> Tensor {
        Tensor {
            h,
            w,
            c,
            data: vec![0.0; h * w * c],
        }
    }

    /// RGB u8 → [0, 1] floats (the models' input convention).
    pub fn from_rgb(img: &RgbImage) -> Tensor {
        let (w, h) = (img.width() as usize, img.height() as usize);
        Tensor {
            h,
            w,
            c: 3,
            data: img.as_raw().iter().map(|&v| v as f32 / 255.0).collect(),
        }
    }

    /// Clip to [0, 1], ×255, round half away from zero (the SR protocol).
    pub fn to_rgb(&self) -> RgbImage {
        assert_eq!(self.c, 3, "to_rgb needs 3 channels");
        let buf = self.data.iter().map(|&v| to_u8_pixel(v)).collect();
        RgbImage::from_raw(self.w as u32, self.h as u32, buf).expect("sized h*w*3")
    }
}

/// `(v.clamp(0.0, 1.0) * 255.0).round() as u8` (the SR protocol's output
/// conversion), without the libm `roundf` call baseline x86-64 makes of
/// `round()` (measured: 5 % of a 960×540 ×2 frame): for x ≥ 0, round half
/// away from zero is the truncation plus one when the (exact) fraction is ≥ ½.
/// NaN ends as 0, as with `round() as u8`.
#[inline(always)]
pub fn to_u8_pixel(v: f32) -> u8 {
    // max/min (not clamp) also map NaN to 0, so x is a number in 0..=255 and the
    // unchecked conversion (one `cvttps2dq` per 4 or 16 lanes) is exact.
    let x = v.max(0.0).min(1.0) * 255.0;
    // SAFETY: 0.0 <= x <= 255.0, representable in i32.
    let t: i32 = unsafe { x.to_int_unchecked() };
    (t + i32::from(x - t as f32 >= 0.5)) as u8
}

/// What the vector epilogues add before truncating (`kernels::Output::Pixels`):
/// the largest f32 below ½. For every x = `v.max(0.0).min(1.0) * 255.0`,
/// `(x + U8_ROUND) as i32` is [`to_u8_pixel`]'s integer (checked for every f32
/// v in 0..=1 by `round_by_adding_just_under_a_half_is_to_u8_pixel`): one add
/// instead of the fraction's convert, subtract, compare and add. Adding ½
/// itself is not: 0.49999997 + 0.5 rounds up to 1.
pub const U8_ROUND: f32 = 0.499_999_97;

/// [`to_u8_pixel`] over a slice (`dst.len() == src.len()`).
pub fn to_u8_pixels(src: &[f32], dst: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512bw") {
        // SAFETY: AVX-512 F/BW are present (checked).
        return unsafe { to_u8_pixels_avx512(src, dst) };
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is present (checked).
        return unsafe { to_u8_pixels_avx2(src, dst) };
    }
    for (d, &v) in dst.iter_mut().zip(src) {
        *d = to_u8_pixel(v);
    }
}

/// The same loop, compiled for 16 lanes (baseline x86-64 gets 4).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn to_u8_pixels_avx512(src: &[f32], dst: &mut [u8]) {
    for (d, &v) in dst.iter_mut().zip(src) {
        *d = to_u8_pixel(v);
    }
}

/// The same loop, compiled for 8 lanes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn to_u8_pixels_avx2(src: &[f32], dst: &mut [u8]) {
    for (d, &v) in dst.iter_mut().zip(src) {
        *d = to_u8_pixel(v);
    }
}

/// Number of worker threads for `threads` (0 = all cores).
pub fn resolve_threads(threads: usize) -> usize {
    if threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        threads
    }
}

/// Runs `f(row_range, out_chunk)` over `rows` split into at most `threads`
/// contiguous bands; `out` holds `row_len` elements per row.
pub fn par_rows<T: Send>(
    out: &mut [T],
    rows: usize,
    row_len: usize,
    threads: usize,
    f: impl Fn(std::ops::Range<usize>, &mut [T]) + Sync,
) {
    let n = threads.clamp(1, rows.max(1));
    if n == 1 || rows * row_len < 4096 {
        f(0..rows, out);
        return;
    }
    let per = rows.div_ceil(n);
    std::thread::scope(|s| {
        for (i, chunk) in out.chunks_mut(per * row_len).enumerate() {
            let f = &f;
            let start = i * per;
            let end = (start + per).min(rows);
            s.spawn(move || f(start..end, chunk));
        }
    });
}

#[cfg(test)]
mod tests {
    /// The slice version takes the host's vector path (AVX-512 or AVX2) and its
    /// scalar tail; both must equal the scalar definition, NaN and ±∞ included.
    #[test]
    fn to_u8_pixels_equals_to_u8_pixel() {
        let mut src: Vec<f32> = (0..=4001u32).map(|i| i as f32 / 4000.0 - 0.25).collect();
        src.extend([
            f32::NAN,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            0.5 / 255.0,
            254.5 / 255.0,
        ]);
        for len in [src.len(), src.len() - 3, 7, 0] {
            let mut dst = vec![7u8; len];
            super::to_u8_pixels(&src[..len], &mut dst);
            for (i, (&d, &v)) in dst.iter().zip(&src).enumerate() {
                assert_eq!(d, super::to_u8_pixel(v), "element {i} ({v:e}) of {len}");
            }
        }
    }

    /// Every f32 in 0..=1 (the clamp maps the rest, NaN included, onto 0 or
    /// 1): about 10⁹ values, ~2 s.
    #[test]
    // max/min as `to_u8_pixel` spells them (clamp would keep NaN).
    #[allow(clippy::manual_clamp)]
    fn round_by_adding_just_under_a_half_is_to_u8_pixel() {
        assert_eq!(super::U8_ROUND, 0.5 - f32::EPSILON / 4.0);
        for b in 0f32.to_bits()..=1f32.to_bits() {
            let v = f32::from_bits(b);
            let x = v.max(0.0).min(1.0) * 255.0;
            let t = (x + super::U8_ROUND) as i32;
            assert_eq!(t as u8, super::to_u8_pixel(v), "{v:e}");
        }
        // x just under ½ must give 0: adding ½ itself rounds up to 1.
        let x = super::U8_ROUND;
        assert_eq!(((x + 0.5) as i32, (x + super::U8_ROUND) as i32), (1, 0));
    }

    #[test]
    fn to_u8_pixel_equals_clamp_scale_round() {
        let mut specials = vec![
            f32::NAN,
            -0.0,
            0.0,
            1.0,
            -1.0,
            2.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ];
        // Every half-way point and its neighbours.
        for k in 0..=255u32 {
            let x = (k as f32 + 0.5) / 255.0;
            specials.extend([
                x,
                f32::from_bits(x.to_bits() - 1),
                f32::from_bits(x.to_bits() + 1),
            ]);
        }
        let dense = (0..=1_000_000u32).map(|i| i as f32 / 1e6);
        for v in specials.into_iter().chain(dense) {
            assert_eq!(
                super::to_u8_pixel(v),
                (v.clamp(0.0, 1.0) * 255.0).round() as u8,
                "{v:e}"
            );
        }
    }
}
