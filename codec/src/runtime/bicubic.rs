//! Fast fixed-point bicubic upscaling by an integer factor (2, 3 or 4): the
//! QoS ladder's last rung (`Mode::Bicubic`) and the resizer of a future
//! chroma path.
//!
//! It follows MATLAB `imresize(img, s, 'bicubic')` as
//! `metrics::imresize::upscale_bicubic` (the f64 reference, kept for
//! evaluation) does, in integers:
//! - Keys cubic, a = −0.5, with MATLAB's `contributions` geometry: output `o`
//!   (0-based) reads the 4 inputs `floor((2o + 1 − 3s) / 2s) + 0..4`, clamped
//!   to the edge (`min(max(1, indices), in_length)`, replicate padding). For
//!   an integer factor the weights repeat with period `s`, so there are `s`
//!   phases of 4 taps; they are taken from the reference's own table and
//!   scaled to 2^14, each phase summing exactly to 2^14.
//! - The y pass runs first and its result is rounded (half away from zero)
//!   and saturated to u8 before the x pass, as MATLAB does for uint8 input
//!   (`getResizeDimOrder` puts rows first on equal scales; `imresizemex`
//!   returns the input class). For ×2 and ×4 every weight is a multiple of
//!   2^−10, so the fixed-point sums are exact and the output equals the
//!   reference bit for bit. For ×3 (weights in 1/54ths) the 2^14 rounding
//!   moves a sum by at most 255·7·2^−15 ≈ 0.05 (3 taps off by ≤ 2^−15, the
//!   largest carrying the residue), so a sample rounds differently only when
//!   the reference's sum lies that close to a half; tests/bicubic.rs asserts
//!   ±1 and reports the count (0 on Set5 and its random images so far).
//! - Output rows are independent (the y pass of one row reads 4 input rows),
//!   so bands of rows run in parallel with identical results.
//!
//! The inner loops are written once (`#[inline(always)]`, integer only) and
//! compiled twice: under `#[target_feature(enable = "avx2")]` and for the
//! baseline target. Same integer operations, so both levels give the same
//! bytes (asserted in tests/bicubic.rs).
use image::RgbImage;

use crate::error::{Error, Result};

/// Fixed-point weight scale: weights are multiples of 2^−14.
const FRAC_BITS: u32 = 14;
const ONE: i32 = 1 << FRAC_BITS;

/// Instruction-set level of the inner loops; results are identical.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Baseline x86-64 (or any other target).
    Scalar,
    /// AVX2 (x86-64 only, when the CPU has it).
    Avx2,
}

impl Level {
    /// The best level this CPU runs.
    pub fn detect() -> Level {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            return Level::Avx2;
        }
        Level::Scalar
    }

    /// Whether this CPU can run the level.
    pub fn available(self) -> bool {
        match self {
            Level::Scalar => true,
            Level::Avx2 => Level::detect() == Level::Avx2,
        }
    }
}

/// Per-phase taps of an integer upscale: output `s·i + p` reads inputs
/// `i + off[p] + 0..4` (before clamping) with weights `w[p]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kernel {
    pub scale: usize,
    pub off: [isize; 4],
    pub w: [[i16; 4]; 4],
}

impl Kernel {
    /// The kernel of MATLAB `imresize(·, s, 'bicubic')` along one axis.
    pub fn new(scale: usize) -> Kernel {
        assert!(
            (2..=4).contains(&scale),
            "bicubic: scale {scale} not in 2..=4"
        );
        // The reference table of a short axis (every phase appears, interior
        // or not: clamping moves indices, never weights).
        let n = 4;
        let c = crate::metrics::imresize::contributions(n, n * scale, scale as f64);
        assert_eq!(
            c.taps, 4,
            "an integer upscale has 4 taps after MATLAB's kill"
        );
        let mut w = [[0i16; 4]; 4];
        let mut off = [0isize; 4];
        for p in 0..scale {
            off[p] = first_tap(p, scale);
            let o = scale + p;
            let f = &c.w[o * 4..][..4];
            let mut q = [0i32; 4];
            for (qk, &fk) in q.iter_mut().zip(f) {
                *qk = (fk * f64::from(ONE)).round() as i32;
            }
            // The taps must sum to exactly 1.0 (constants stay constant):
            // put the rounding residue on the largest tap.
            let resid = ONE - q.iter().sum::<i32>();
            let big = (0..4).max_by_key(|&k| q[k].abs()).expect("4 taps");
            q[big] += resid;
            for k in 0..4 {
                w[p][k] = i16::try_from(q[k]).expect("bicubic weight fits in i16");
            }
        }
        Kernel { scale, off, w }
    }

    /// First (unclamped, 0-based) input of output `o`: MATLAB's
    /// `left = floor(u − kernel_width/2)` with `u = (o+1)/s + (1 − 1/s)/2`,
    /// shifted past the tap column `kill` drops, in exact integers.
    pub fn first(&self, o: usize) -> isize {
        first_tap(o, self.scale)
    }
}

fn first_tap(o: usize, s: usize) -> isize {
    (2 * o as isize + 1 - 3 * s as isize).div_euclid(2 * s as isize)
}

/// Round (half away from zero for the non-negative sums that survive the
/// clamp, as MATLAB's uint8 conversion) and saturate a 2^14-scaled sum.
#[inline(always)]
fn to_u8(acc: i32) -> u8 {
    ((acc + (ONE >> 1)) >> FRAC_BITS).clamp(0, 255) as u8
}

/// `dst[j] = round(Σ_k w_k · src_k[j])`: both passes (the y pass over 4
/// input rows, the x pass over 4 shifted views of one padded row).
#[inline(always)]
fn taps4(dst: &mut [u8], src: [&[u8]; 4], w: [i16; 4]) {
    let n = dst.len();
    let (a, b, c, d) = (&src[0][..n], &src[1][..n], &src[2][..n], &src[3][..n]);
    let w = w.map(i32::from);
    for j in 0..n {
        let acc = w[0] * i32::from(a[j])
            + w[1] * i32::from(b[j])
            + w[2] * i32::from(c[j])
            + w[3] * i32::from(d[j]);
        dst[j] = to_u8(acc);
    }
}

/// Bytes after each phase row of the x pass, so that a pixel of C < 4 bytes
/// can be moved as one 4-byte word (see [`interleave`]).
const PHASE_PAD: usize = 4;

/// `dst` pixel `s·i + p` (C bytes) = phase `p`'s pixel `i`; `ph` holds the
/// `S` phase rows `ps` bytes apart (each `w·C` bytes plus [`PHASE_PAD`]).
///
/// For C = 2 or 3 each pixel is copied as one 4-byte word: the extra bytes
/// land on the next pixel, which is written right after, and the row's last
/// pixel is copied exactly (the row after may belong to another band). One
/// unaligned load and store per pixel instead of C byte moves with bounds
/// checks: the byte-wise loop took about half of the ×2 720p RGB time.
#[inline(always)]
fn interleave<const S: usize, const C: usize>(dst: &mut [u8], ph: &[u8], ps: usize) {
    let w = dst.len() / (S * C);
    if w == 0 {
        return;
    }
    assert!(dst.len() == w * S * C && ps >= w * C + PHASE_PAD && ph.len() >= S * ps);
    let (d, src) = (dst.as_mut_ptr(), ph.as_ptr());
    let words = C == 2 || C == 3;
    for i in 0..w {
        for p in 0..S {
            let (o, q) = ((i * S + p) * C, p * ps + i * C);
            // SAFETY: o + C ≤ w·S·C = dst.len() and q + C ≤ (S−1)·ps + w·C.
            // A word (4 bytes, C ∈ {2, 3}) is written only when a later pixel
            // of this row follows: o + 4 ≤ (o + C) + C ≤ dst.len() as C ≥ 2;
            // it reads q + 4 ≤ (S−1)·ps + w·C + PHASE_PAD ≤ ph.len().
            unsafe {
                if words && (i + 1 < w || p + 1 < S) {
                    std::ptr::copy_nonoverlapping(src.add(q), d.add(o), 4);
                } else {
                    std::ptr::copy_nonoverlapping(src.add(q), d.add(o), C);
                }
            }
        }
    }
}

#[inline(always)]
fn interleave_any(dst: &mut [u8], ph: &[u8], ps: usize, s: usize, ch: usize) {
    match (s, ch) {
        (2, 1) => interleave::<2, 1>(dst, ph, ps),
        (3, 1) => interleave::<3, 1>(dst, ph, ps),
        (4, 1) => interleave::<4, 1>(dst, ph, ps),
        (2, 3) => interleave::<2, 3>(dst, ph, ps),
        (3, 3) => interleave::<3, 3>(dst, ph, ps),
        (4, 3) => interleave::<4, 3>(dst, ph, ps),
        (2, 4) => interleave::<2, 4>(dst, ph, ps),
        (3, 4) => interleave::<3, 4>(dst, ph, ps),
        (4, 4) => interleave::<4, 4>(dst, ph, ps),
        _ => {
            for (i, out) in dst.chunks_exact_mut(s * ch).enumerate() {
                for p in 0..s {
                    out[p * ch..][..ch].copy_from_slice(&ph[p * ps + i * ch..][..ch]);
                }
            }
        }
    }
}

/// The source image of one call.
#[derive(Clone, Copy)]
struct Src<'a> {
    data: &'a [u8],
    w: usize,
    h: usize,
    stride: usize,
    ch: usize,
}

/// Output rows `rows` into `out` (row `rows.start` at offset 0, `stride` apart).
#[inline(always)]
fn band(k: &Kernel, src: Src<'_>, rows: std::ops::Range<usize>, out: &mut [u8], stride: usize) {
    let s = k.scale;
    let wc = src.w * src.ch;
    let ch = src.ch;
    // The y-pass row with 2 replicated pixels each side (the x pass reads
    // inputs i − 2 ..= i + 2 for pixel i: MATLAB's edge clamp).
    let mut padded = vec![0u8; wc + 4 * ch];
    let ps = wc + PHASE_PAD;
    let mut phases = vec![0u8; s * ps];
    let last = src.h as isize - 1;
    for (n, o) in rows.enumerate() {
        let p = o % s;
        let first = k.first(o);
        let row = |t: isize| {
            let y = (first + t).clamp(0, last) as usize;
            &src.data[y * src.stride..][..wc]
        };
        taps4(
            &mut padded[2 * ch..2 * ch + wc],
            [row(0), row(1), row(2), row(3)],
            k.w[p],
        );
        let (head, rest) = padded.split_at_mut(2 * ch);
        head[..ch].copy_from_slice(&rest[..ch]);
        head[ch..].copy_from_slice(&rest[..ch]);
        let tail = wc + 2 * ch;
        padded.copy_within(tail - ch..tail, tail);
        padded.copy_within(tail - ch..tail, tail + ch);
        // x pass, phase-planar so every tap is a contiguous view.
        for (q, ph) in phases.chunks_exact_mut(ps).enumerate() {
            let at = |t: isize| {
                let x0 = (k.off[q] + 2 + t) as usize * ch;
                &padded[x0..x0 + wc]
            };
            taps4(&mut ph[..wc], [at(0), at(1), at(2), at(3)], k.w[q]);
        }
        interleave_any(&mut out[n * stride..][..s * wc], &phases, ps, s, ch);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn band_avx2(
    k: &Kernel,
    src: Src<'_>,
    rows: std::ops::Range<usize>,
    out: &mut [u8],
    stride: usize,
) {
    band(k, src, rows, out, stride)
}

fn band_scalar(
    k: &Kernel,
    src: Src<'_>,
    rows: std::ops::Range<usize>,
    out: &mut [u8],
    stride: usize,
) {
    band(k, src, rows, out, stride)
}

/// Upscale a `w`×`h` image of `channels` interleaved u8 samples (`src_stride`
/// bytes per row) by `scale` ∈ {2, 3, 4} into `dst` (`dst_stride` bytes per
/// row, `scale·w`×`scale·h`), over up to `threads` bands of output rows.
/// The result does not depend on `threads`.
#[allow(clippy::too_many_arguments)]
pub fn upscale_u8(
    src: &[u8],
    w: usize,
    h: usize,
    src_stride: usize,
    channels: usize,
    scale: usize,
    dst: &mut [u8],
    dst_stride: usize,
    threads: usize,
) -> Result<()> {
    upscale_u8_at(
        Level::detect(),
        src,
        (w, h, src_stride),
        channels,
        scale,
        dst,
        dst_stride,
        threads,
    )
}

/// [`upscale_u8`] at a given [`Level`] (tests, benchmarks). `geom` is
/// `(w, h, src_stride)`.
#[allow(clippy::too_many_arguments)]
pub fn upscale_u8_at(
    level: Level,
    src: &[u8],
    (w, h, src_stride): (usize, usize, usize),
    channels: usize,
    scale: usize,
    dst: &mut [u8],
    dst_stride: usize,
    threads: usize,
) -> Result<()> {
    if !(2..=4).contains(&scale) {
        return Err(Error::Scale(scale));
    }
    if !level.available() {
        return Err(Error::Invalid(format!(
            "bicubic: this CPU has no {level:?}"
        )));
    }
    let invalid = |what: String| Err(Error::Invalid(format!("bicubic: {what}")));
    if channels == 0 {
        return invalid("0 channels".into());
    }
    if w == 0 || h == 0 {
        return Ok(());
    }
    let (Some(wc), Some(out_wc)) = (
        w.checked_mul(channels),
        w.checked_mul(channels).and_then(|v| v.checked_mul(scale)),
    ) else {
        return invalid(format!("{w}x{channels} samples per row overflow"));
    };
    let out_h = h * scale;
    let need = |rows: usize, stride: usize, row: usize| {
        (rows - 1)
            .checked_mul(stride)
            .and_then(|v| v.checked_add(row))
    };
    if src_stride < wc || need(h, src_stride, wc).is_none_or(|n| n > src.len()) {
        return invalid(format!(
            "source {w}x{h}x{channels} does not fit {} bytes with stride {src_stride}",
            src.len()
        ));
    }
    let dst_need = need(out_h, dst_stride, out_wc);
    let Some(dst_need) = dst_need.filter(|&n| dst_stride >= out_wc && n <= dst.len()) else {
        return invalid(format!(
            "output {}x{out_h}x{channels} does not fit {} bytes with stride {dst_stride}",
            w * scale,
            dst.len()
        ));
    };
    let k = Kernel::new(scale);
    let s = Src {
        data: src,
        w,
        h,
        stride: src_stride,
        ch: channels,
    };
    let run = |rows: std::ops::Range<usize>, out: &mut [u8]| match level {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `level.available()` checked above that the CPU has AVX2.
        Level::Avx2 => unsafe { band_avx2(&k, s, rows, out, dst_stride) },
        _ => band_scalar(&k, s, rows, out, dst_stride),
    };
    crate::tensor::par_rows(&mut dst[..dst_need], out_h, dst_stride, threads, run);
    Ok(())
}

/// MATLAB `imresize(img, scale, 'bicubic')` of an RGB image, fast path;
/// `threads` bands (0 = all cores). Panics on a scale outside 2..=4.
pub fn upscale_rgb(img: &RgbImage, scale: usize, threads: usize) -> RgbImage {
    upscale_rgb_at(Level::detect(), img, scale, threads)
}

/// [`upscale_rgb`] at a given [`Level`].
pub fn upscale_rgb_at(level: Level, img: &RgbImage, scale: usize, threads: usize) -> RgbImage {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut out = vec![0u8; w * h * 3 * scale * scale];
    upscale_u8_at(
        level,
        img.as_raw(),
        (w, h, w * 3),
        3,
        scale,
        &mut out,
        w * 3 * scale,
        crate::tensor::resolve_threads(threads),
    )
    .unwrap_or_else(|e| panic!("bicubic upscale_rgb: {e}"));
    RgbImage::from_raw((w * scale) as u32, (h * scale) as u32, out)
        .expect("scale·w × scale·h × 3 bytes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::imresize::contributions;

    /// Tap positions (after the edge clamp) and weights equal the
    /// reference's `contributions` for every output of short and odd axes;
    /// ×2 and ×4 weights are exact in 2^14.
    #[test]
    fn kernel_equals_reference_table() {
        for s in 2..=4 {
            let k = Kernel::new(s);
            for n in [1usize, 2, 3, 5, 8, 17] {
                let c = contributions(n, n * s, s as f64);
                assert_eq!(c.taps, 4);
                for o in 0..n * s {
                    for t in 0..4 {
                        let i = (k.first(o) + t as isize).clamp(0, n as isize - 1) as usize;
                        assert_eq!(i, c.idx[o * 4 + t], "s{s} n{n} o{o} t{t}");
                        let q = f64::from(k.w[o % s][t]) / f64::from(ONE);
                        let f = c.w[o * 4 + t];
                        if s == 3 {
                            assert!((q - f).abs() <= 1.0 / f64::from(ONE), "{q} vs {f}");
                        } else {
                            assert_eq!(q, f, "s{s} o{o} t{t}");
                        }
                    }
                }
            }
            for p in 0..s {
                assert_eq!(k.w[p].iter().map(|&v| i32::from(v)).sum::<i32>(), ONE);
                assert_eq!(k.off[p], k.first(s * 5 + p) - 5);
            }
        }
    }

    #[test]
    fn rounding_is_half_up_and_saturating() {
        assert_eq!(to_u8(ONE / 2), 1);
        assert_eq!(to_u8(ONE / 2 - 1), 0);
        assert_eq!(to_u8(-ONE), 0);
        assert_eq!(to_u8(300 * ONE), 255);
        assert_eq!(to_u8(254 * ONE + ONE / 2), 255);
    }
}
