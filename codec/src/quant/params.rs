//! Activation quantization parameters ⟨b, s, z⟩ (Eq. 1).
//!
//! s = (2^b − 1) / (x̂_max − x̂_min),  z = ⌊s · x̂_min⌋            (Eq. 1)
//! q = clamp(round_half_even(x · s) − z, 0, 2^b − 1)            (quantize)
//! x̂ = (q + z) / s                                               (dequantize)
//!
//! Eq. (1) writes the quantizer with a floor; we round to nearest (half to even,
//! the same policy as the kernels' epilogue) because it halves the mean error at
//! no cost. The range always includes 0 so that real zero — the conv padding —
//! is exactly representable as q₀ = −z.
use serde::{Deserialize, Serialize};

/// Activation wordlength: the two units of the NPU (§4.1, 𝒲 = {8, 16}).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Bits {
    #[serde(rename = "8")]
    B8,
    #[serde(rename = "16")]
    B16,
}

impl Bits {
    pub fn bits(self) -> u32 {
        match self {
            Bits::B8 => 8,
            Bits::B16 => 16,
        }
    }
    pub fn qmax(self) -> f32 {
        match self {
            Bits::B8 => 255.0,
            Bits::B16 => 65535.0,
        }
    }
}

/// ⟨b, s, z⟩ for one activation tensor.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct QParams {
    pub bits: Bits,
    pub scale: f32,
    pub zero: f32,
}

impl QParams {
    /// Eq. (1) from an estimated range. The range is widened to include 0 and to
    /// at least 1e-6 so that the scale stays finite.
    pub fn from_range(min: f32, max: f32, bits: Bits) -> QParams {
        let min = min.min(0.0);
        let max = max.max(0.0).max(min + 1e-6);
        let scale = bits.qmax() / (max - min);
        let zero = (scale * min).floor();
        QParams { bits, scale, zero }
    }

    /// The integer that represents real 0 (what padded taps read).
    pub fn q_zero(&self) -> u16 {
        (-self.zero).clamp(0.0, self.bits.qmax()) as u16
    }

    #[inline]
    pub fn quantize(&self, x: f32) -> f32 {
        ((x * self.scale).round_ties_even() - self.zero).clamp(0.0, self.bits.qmax())
    }

    #[inline]
    pub fn dequantize(&self, q: f32) -> f32 {
        (q + self.zero) / self.scale
    }

    /// Largest rounding error of a value inside the range: half a step.
    pub fn step(&self) -> f32 {
        1.0 / self.scale
    }
}

/// Quantize a slice into u8 (8-bit parameters).
pub fn quantize_u8(x: &[f32], q: &QParams, out: &mut [u8]) {
    debug_assert_eq!(q.bits, Bits::B8);
    let n = x.len().min(out.len());
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: AVX-512F is present (checked); slices are bounded by `n`.
        let done = unsafe { avx512::quantize(&x[..n], q, out.as_mut_ptr(), 1) };
        return quantize_tail(&x[done..n], q, &mut out[done..n], |v| v as u8);
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is present (checked); slices are bounded by `n`.
        let done = unsafe { avx2::quantize(&x[..n], q, out.as_mut_ptr(), 1) };
        return quantize_tail(&x[done..n], q, &mut out[done..n], |v| v as u8);
    }
    quantize_tail(&x[..n], q, &mut out[..n], |v| v as u8)
}

/// Quantize a slice into u16 (16-bit parameters).
pub fn quantize_u16(x: &[f32], q: &QParams, out: &mut [u16]) {
    debug_assert_eq!(q.bits, Bits::B16);
    let n = x.len().min(out.len());
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: AVX-512F is present (checked); slices are bounded by `n`.
        let done = unsafe { avx512::quantize(&x[..n], q, out.as_mut_ptr() as *mut u8, 2) };
        return quantize_tail(&x[done..n], q, &mut out[done..n], |v| v as u16);
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is present (checked); slices are bounded by `n`.
        let done = unsafe { avx2::quantize(&x[..n], q, out.as_mut_ptr() as *mut u8, 2) };
        return quantize_tail(&x[done..n], q, &mut out[done..n], |v| v as u16);
    }
    quantize_tail(&x[..n], q, &mut out[..n], |v| v as u16)
}

/// The scalar definition (also the tail of the vector path).
fn quantize_tail<T>(x: &[f32], q: &QParams, out: &mut [T], cast: impl Fn(f32) -> T) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = cast(q.quantize(v));
    }
}

/// The quantizer runs before every integer conv over every activation, so it
/// is vectorised by hand: without SSE4.1 enabled at compile time,
/// `round_ties_even` is a libm call per element (measured 3.4 ns/element, more
/// than the conv). Same operations as [`QParams::quantize`]: mul, round half to
/// even, sub, clamp, then an exact conversion of an integral value.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::QParams;
    use std::arch::x86_64::*;

    /// Quantizes the largest multiple of 16 elements of `x`; returns how many.
    /// `width` is the output element size in bytes (1: u8, 2: u16).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub unsafe fn quantize(x: &[f32], q: &QParams, out: *mut u8, width: usize) -> usize {
        let n = x.len() / 16 * 16;
        let (s, z, m) = (
            _mm512_set1_ps(q.scale),
            _mm512_set1_ps(q.zero),
            _mm512_set1_ps(q.bits.qmax()),
        );
        let zero = _mm512_setzero_ps();
        let mut i = 0;
        while i < n {
            // SAFETY: i + 16 <= n <= x.len(); `out` holds at least n elements of `width` bytes.
            unsafe {
                let v = _mm512_loadu_ps(x.as_ptr().add(i));
                let r = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                    _mm512_mul_ps(v, s),
                );
                let c = _mm512_min_ps(_mm512_max_ps(_mm512_sub_ps(r, z), zero), m);
                let iv = _mm512_cvtps_epi32(c);
                if width == 1 {
                    _mm_storeu_si128(out.add(i) as *mut __m128i, _mm512_cvtusepi32_epi8(iv));
                } else {
                    _mm256_storeu_si256(
                        out.add(2 * i) as *mut __m256i,
                        _mm512_cvtusepi32_epi16(iv),
                    );
                }
            }
            i += 16;
        }
        n
    }
}

/// The same quantizer, 8 lanes, for hosts without AVX-512 (`vroundps` is SSE4.1; the
/// saturating packs are exact on values already clamped to 0..=qmax).
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::QParams;
    use std::arch::x86_64::*;

    /// Quantizes the largest multiple of 8 elements of `x`; returns how many.
    /// `width` is the output element size in bytes (1: u8, 2: u16).
    #[target_feature(enable = "avx2")]
    pub unsafe fn quantize(x: &[f32], q: &QParams, out: *mut u8, width: usize) -> usize {
        let n = x.len() / 8 * 8;
        let (s, z, m) = (
            _mm256_set1_ps(q.scale),
            _mm256_set1_ps(q.zero),
            _mm256_set1_ps(q.bits.qmax()),
        );
        let zero = _mm256_setzero_ps();
        let mut i = 0;
        while i < n {
            // SAFETY: i + 8 <= n <= x.len(); `out` holds at least n elements of `width` bytes.
            unsafe {
                let v = _mm256_loadu_ps(x.as_ptr().add(i));
                let r = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                    _mm256_mul_ps(v, s),
                );
                // max(NaN, 0) is 0 (second operand), as the scalar cast of NaN.
                let c = _mm256_min_ps(_mm256_max_ps(_mm256_sub_ps(r, z), zero), m);
                let iv = _mm256_cvtps_epi32(c);
                let w16 = _mm_packus_epi32(
                    _mm256_castsi256_si128(iv),
                    _mm256_extracti128_si256::<1>(iv),
                );
                if width == 1 {
                    _mm_storel_epi64(out.add(i) as *mut __m128i, _mm_packus_epi16(w16, w16));
                } else {
                    _mm_storeu_si128(out.add(2 * i) as *mut __m128i, w16);
                }
            }
            i += 8;
        }
        n
    }
}

/// Min and max of a slice (the Runtime Quantization Unit's range estimate,
/// §4.3), vectorised: independent compare-and-select lanes compile to
/// `vminps`/`vmaxps` (`f32::min` must honour NaN and does not vectorise, which
/// made the reductions ~14 % of the worker time on an all-DRE IMDN_x4). NaN
/// inputs are ignored unless every value is NaN; a zero bound may come out as
/// −0.0 or +0.0, which Eq. (1) (the range always contains 0) does not see.
/// Partial results of slices combine exactly with `min`/`max` in any order.
pub fn min_max(x: &[f32]) -> (f32, f32) {
    const L: usize = 32;
    let mut lo = [f32::INFINITY; L];
    let mut hi = [f32::NEG_INFINITY; L];
    let chunks = x.chunks_exact(L);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..L {
            lo[i] = if c[i] < lo[i] { c[i] } else { lo[i] };
            hi[i] = if c[i] > hi[i] { c[i] } else { hi[i] };
        }
    }
    let (mut mn, mut mx) = (f32::INFINITY, f32::NEG_INFINITY);
    for &v in lo.iter().chain(rest) {
        mn = if v < mn { v } else { mn };
    }
    for &v in hi.iter().chain(rest) {
        mx = if v > mx { v } else { mx };
    }
    (mn, mx)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slice quantizers take the host's vector path (AVX-512 or AVX2) and a
    /// scalar tail; both must equal `QParams::quantize`, ties, NaN, ±∞ and values
    /// outside the range included.
    #[test]
    fn slice_quantizers_equal_the_scalar_definition() {
        let mut x: Vec<f32> = (0..2003).map(|i| i as f32 * 0.0137 - 9.0).collect();
        x.extend([
            f32::NAN,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1e30,
            -1e30,
        ]);
        // Ties for the scale-2 parameters: x·2 = k + 0.5, rounded half to even.
        x.extend((-24..24).map(|k| (k as f32 + 0.5) / 2.0));
        for bits in [Bits::B8, Bits::B16] {
            let ties = QParams {
                bits,
                scale: 2.0,
                zero: -10.0,
            };
            for q in [&QParams::from_range(-7.5, 11.25, bits), &ties] {
                for len in [x.len(), x.len() - 5, 9, 0] {
                    let x = &x[..len];
                    match bits {
                        Bits::B8 => {
                            let mut out = vec![0u8; len];
                            quantize_u8(x, q, &mut out);
                            for (i, (&o, &v)) in out.iter().zip(x).enumerate() {
                                assert_eq!(o, q.quantize(v) as u8, "u8 element {i} ({v:e})");
                            }
                        }
                        Bits::B16 => {
                            let mut out = vec![0u16; len];
                            quantize_u16(x, q, &mut out);
                            for (i, (&o, &v)) in out.iter().zip(x).enumerate() {
                                assert_eq!(o, q.quantize(v) as u16, "u16 element {i} ({v:e})");
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn power_of_two_scale_is_exact() {
        // Range [-2, 2) with 8 bits: s = 255/4 is not a power of two, so build one
        // by hand: s = 64, z = -128 represents [-2, 1.98] in steps of 1/64.
        let q = QParams {
            bits: Bits::B8,
            scale: 64.0,
            zero: -128.0,
        };
        for i in -128..127 {
            let x = i as f32 / 64.0;
            let qi = q.quantize(x);
            assert_eq!(qi, (i + 128) as f32);
            assert_eq!(q.dequantize(qi), x);
        }
    }

    #[test]
    fn zero_is_representable() {
        for (lo, hi) in [(-1.3f32, 2.7f32), (0.1, 5.0), (-4.0, -0.5), (0.0, 1.0)] {
            for bits in [Bits::B8, Bits::B16] {
                let q = QParams::from_range(lo, hi, bits);
                let q0 = q.quantize(0.0);
                assert_eq!(q.dequantize(q0), 0.0, "{lo} {hi} {bits:?}");
                assert_eq!(q0, q.q_zero() as f32);
            }
        }
    }

    #[test]
    fn rounding_is_half_to_even() {
        let q = QParams {
            bits: Bits::B8,
            scale: 1.0,
            zero: 0.0,
        };
        assert_eq!(q.quantize(2.5), 2.0);
        assert_eq!(q.quantize(3.5), 4.0);
        assert_eq!(q.quantize(-1.0), 0.0); // clamped
        assert_eq!(q.quantize(300.0), 255.0);
    }

    #[test]
    fn error_within_half_step_inside_range() {
        let q = QParams::from_range(-0.7, 3.1, Bits::B8);
        let q16 = QParams::from_range(-0.7, 3.1, Bits::B16);
        // Eq. (1)'s floor in z shifts the grid down by < 1 step: the top step may clip.
        for i in 0..=1000 {
            let x = -0.7 + (3.8 - q.step()) * i as f32 / 1000.0;
            assert!((q.dequantize(q.quantize(x)) - x).abs() <= 0.5 * q.step() + 1e-6);
            assert!((q16.dequantize(q16.quantize(x)) - x).abs() <= 0.5 * q16.step() + 1e-6);
        }
    }

    #[test]
    fn vector_quantizer_equals_scalar_definition() {
        let x: Vec<f32> = (0..4099)
            .map(|i| (i as f32 - 2000.0) * 0.00123 + if i % 7 == 0 { 0.5 / 64.0 } else { 0.0 })
            .collect();
        for bits in [Bits::B8, Bits::B16] {
            let q = QParams::from_range(-1.9, 2.3, bits);
            let mut a = vec![0u16; x.len()];
            let mut b = vec![0u8; x.len()];
            if bits == Bits::B16 {
                quantize_u16(&x, &q, &mut a)
            } else {
                quantize_u8(&x, &q, &mut b)
            }
            for (i, &v) in x.iter().enumerate() {
                let want = q.quantize(v);
                let got = if bits == Bits::B16 {
                    a[i] as f32
                } else {
                    b[i] as f32
                };
                assert_eq!(got, want, "{bits:?} x={v}");
            }
        }
    }

    #[test]
    fn min_max_matches_fold() {
        let x: Vec<f32> = (0..1003)
            .map(|i| ((i * 7919) % 1000) as f32 - 500.0)
            .collect();
        let (a, b) = min_max(&x);
        assert_eq!(a, x.iter().copied().fold(f32::INFINITY, f32::min));
        assert_eq!(b, x.iter().copied().fold(f32::NEG_INFINITY, f32::max));
    }
}
