//! AVX-512 VNNI kernels (`vpdpbusd`: u8 × i8, four products summed into each i32 lane, no
//! saturation, so the i32 accumulation is exact; see `pack::MAX_K` for the bound).
//!
//! Micro-kernel `avx512vnni_conv_u8s8_tile::<MR, NB>`: MR output pixels × NB·16 output channels.
//! Per K quad: NB weight lines (64 B, 16 channels × 4 K) are loaded, and for each pixel the 4
//! input bytes are broadcast to all lanes and multiplied into NB accumulators. Register budget
//! (32 zmm): MR·NB accumulators + NB weights + a broadcast, hence tiles 6×64, 8×48, 12×32, 12×16.
//!
//! The A16W8 unit runs the same micro-kernel twice (low bytes, then high bytes) and combines the
//! two accumulators in the epilogue: exactly 2× the INT8 work.
//!
//! Grouped convs never reach this file (they take the scalar body, see `kernels/mod.rs`).

use std::arch::x86_64::*;
use std::cell::RefCell;
use std::ops::Range;

use super::epilogue::{RawData, RawOutput};
use super::pack::{BandWalk, Line64, VnniPack, band_rows, fill_band, tap_offsets};
use super::{Activation, ConvGeom, Epilogue, Output, PackedConv, Src};

thread_local! {
    /// Padded input bands (low bytes / u8 input, and high bytes for u16 input), reused per thread.
    static BANDS: RefCell<(Vec<u8>, Vec<u8>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Everything a tile needs, fixed for one band.
struct Args<'a> {
    lo: *const u8,
    /// High-byte plane for u16 input, null for u8 input.
    hi: *const u8,
    taps: &'a [usize],
    /// K quads per tap (`cp / 4`).
    cq: usize,
    w: *const Line64,
    /// Lines per K quad (16-channel blocks of the packed weights).
    nb: usize,
    walk: BandWalk,
    n_pix: usize,
    epi: &'a Epilogue<'a>,
    out: RawOutput,
    out_c: usize,
}

pub(crate) fn conv(
    g: &ConvGeom,
    src: Src,
    in_ps: usize,
    w: &PackedConv,
    epi: &Epilogue,
    rows: Range<usize>,
    out: &mut Output,
) {
    let p: &VnniPack = w
        .vnni
        .as_ref()
        .expect("VNNI weights are packed whenever the host has AVX-512 VNNI");
    let out_w = g.out_w();
    let n_band = band_rows(g, p.cp, 1, rows.len());
    let raw = out.raw();
    BANDS.with(|b| {
        let (lo, hi) = &mut *b.borrow_mut();
        let mut oy0 = rows.start;
        while oy0 < rows.end {
            let n = n_band.min(rows.end - oy0);
            let band = fill_band(g, src, in_ps, p.cp, oy0, n, lo, hi, |x| x);
            let taps = tap_offsets(g, band.wp, band.cp);
            let args = Args {
                lo: lo.as_ptr(),
                hi: if matches!(src, Src::U16 { .. }) {
                    hi.as_ptr()
                } else {
                    std::ptr::null()
                },
                taps: &taps,
                cq: p.cp / 4,
                w: p.lines.as_ptr(),
                nb: p.nb,
                walk: BandWalk {
                    out_w,
                    stride: g.stride,
                    wp: band.wp,
                    cp: band.cp,
                    out_ps: raw.pixel_stride,
                    out_row0: oy0 - rows.start,
                },
                n_pix: n * out_w,
                epi,
                out: raw,
                out_c: g.out_c,
            };
            // SAFETY: `check_args` asserted level <= host max, and this path is only taken for
            // levels that imply AVX-512 F/BW/VL/VNNI. The band holds every (pixel, tap, channel)
            // the tiles read (fill_band sizes it from the same geometry as BandWalk/tap_offsets),
            // the weights hold kq·nb lines, and the output slice is long enough for every pixel
            // of `rows` (asserted by `check_args`); stores are masked to `out_c` channels.
            unsafe { avx512vnni_conv_u8s8_band(&args) };
            oy0 += n;
        }
    });
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn avx512vnni_conv_u8s8_band(a: &Args) {
    let mut ocb0 = 0;
    while ocb0 < a.nb {
        // SAFETY (all calls): the caller's contract, forwarded; ocb0 + NB <= a.nb.
        unsafe {
            match a.nb - ocb0 {
                1 => avx512vnni_conv_u8s8_chunk::<12, 1>(a, ocb0),
                2 => avx512vnni_conv_u8s8_chunk::<12, 2>(a, ocb0),
                3 => avx512vnni_conv_u8s8_chunk::<8, 3>(a, ocb0),
                _ => avx512vnni_conv_u8s8_chunk::<6, 4>(a, ocb0),
            }
        }
        ocb0 += 4;
    }
}

/// All pixels of the band for the output-channel blocks `ocb0..ocb0+NB`: full MR tiles, then the
/// remainder with 8/4/2/1-pixel tiles.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn avx512vnni_conv_u8s8_chunk<const MR: usize, const NB: usize>(a: &Args, ocb0: usize) {
    let n = a.n_pix;
    let mut p = 0;
    // SAFETY (all calls): the caller's contract; every tile covers pixels p..p+TILE <= n.
    unsafe {
        while p + MR <= n {
            avx512vnni_conv_u8s8_tile::<MR, NB>(a, p, ocb0);
            p += MR;
        }
        while MR > 8 && p + 8 <= n {
            avx512vnni_conv_u8s8_tile::<8, NB>(a, p, ocb0);
            p += 8;
        }
        while MR > 4 && p + 4 <= n {
            avx512vnni_conv_u8s8_tile::<4, NB>(a, p, ocb0);
            p += 4;
        }
        while MR > 2 && p + 2 <= n {
            avx512vnni_conv_u8s8_tile::<2, NB>(a, p, ocb0);
            p += 2;
        }
        while p < n {
            avx512vnni_conv_u8s8_tile::<1, NB>(a, p, ocb0);
            p += 1;
        }
    }
}

/// The register-blocked dot products of MR pixels × NB·16 channels over all of K, for one plane.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
unsafe fn avx512vnni_dot_u8s8<const MR: usize, const NB: usize>(
    a: &Args,
    plane: *const u8,
    pix: &[usize; MR],
    ocb0: usize,
) -> [[__m512i; NB]; MR] {
    let mut acc = [[_mm512_setzero_si512(); NB]; MR];
    // SAFETY: pix[i] + tap + 4·cq stays inside the band (see `conv`); line kq·nb + ocb0 + j with
    // kq < taps·cq and ocb0 + j < nb stays inside the packed weights. Lines are 64-byte aligned.
    unsafe {
        let mut wl = a.w.add(ocb0);
        for &tap in a.taps {
            let base: [*const u8; MR] = std::array::from_fn(|i| plane.add(pix[i] + tap));
            for q in 0..a.cq {
                let wv: [__m512i; NB] =
                    std::array::from_fn(|j| _mm512_load_si512(wl.add(j).cast()));
                for i in 0..MR {
                    let x = _mm512_set1_epi32(base[i].add(4 * q).cast::<i32>().read_unaligned());
                    for j in 0..NB {
                        acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], x, wv[j]);
                    }
                }
                wl = wl.add(a.nb);
            }
        }
    }
    acc
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn avx512vnni_conv_u8s8_tile<const MR: usize, const NB: usize>(
    a: &Args,
    p0: usize,
    ocb0: usize,
) {
    let pix: [usize; MR] = std::array::from_fn(|i| a.walk.pix(p0 + i));
    // SAFETY: forwarded from the caller (band, weights and output bounds, CPU features).
    unsafe {
        let lo = avx512vnni_dot_u8s8::<MR, NB>(a, a.lo, &pix, ocb0);
        if a.hi.is_null() {
            for j in 0..NB {
                let oc = (ocb0 + j) * 16;
                let m = lane_mask(a.out_c, oc);
                for (i, acc) in lo.iter().enumerate() {
                    // Epilogue step 1, INT8: v = acc as f32 (vcvtdq2ps, RNE).
                    let v = _mm512_cvtepi32_ps(acc[j]);
                    avx512_finish(v, oc, m, a.epi, &a.out, a.walk.out_at(p0 + i));
                }
            }
        } else {
            let hi = avx512vnni_dot_u8s8::<MR, NB>(a, a.hi, &pix, ocb0);
            let k256 = _mm512_set1_ps(256.0);
            for j in 0..NB {
                let oc = (ocb0 + j) * 16;
                let m = lane_mask(a.out_c, oc);
                for i in 0..MR {
                    // Epilogue step 1, A16W8: (hi as f32) * 256.0 + (lo as f32).
                    let vh = _mm512_mul_ps(_mm512_cvtepi32_ps(hi[i][j]), k256);
                    let v = _mm512_add_ps(vh, _mm512_cvtepi32_ps(lo[i][j]));
                    avx512_finish(v, oc, m, a.epi, &a.out, a.walk.out_at(p0 + i));
                }
            }
        }
    }
}

/// Lanes of the 16-channel block starting at `oc` that are real output channels.
#[inline]
fn lane_mask(out_c: usize, oc: usize) -> __mmask16 {
    let n = out_c.saturating_sub(oc).min(16);
    ((1u32 << n) - 1) as __mmask16
}

/// Epilogue steps 2–4 (see `epilogue.rs`) for the 16 channels `oc..oc+16` (lanes in `m`) of
/// the output pixel at element offset `at`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
unsafe fn avx512_finish(
    v: __m512,
    oc: usize,
    m: __mmask16,
    epi: &Epilogue,
    out: &RawOutput,
    at: usize,
) {
    // SAFETY: lanes outside `m` are neither loaded nor stored (masked loads/stores suppress
    // faults); lanes inside are < out_c, within mult/offset/slopes and the output pixel.
    unsafe {
        let mult = _mm512_maskz_loadu_ps(m, epi.mult.as_ptr().add(oc));
        let offset = _mm512_maskz_loadu_ps(m, epi.offset.as_ptr().add(oc));
        // Step 2: a multiply, then an add (two roundings, never fused).
        let y = _mm512_add_ps(_mm512_mul_ps(v, mult), offset);
        // Step 3: lanes with y < 0 (ordered compare: NaN and -0.0 are not negative).
        let zero = _mm512_setzero_ps();
        let y = match epi.act {
            Activation::None => y,
            // vmaxps returns its second operand when both are zeros or one is NaN, so
            // max(0, y) is exactly `if y < 0 { 0 } else { y }`.
            Activation::Relu => _mm512_max_ps(zero, y),
            Activation::Leaky(s) => {
                let neg = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(y, zero);
                _mm512_mask_mul_ps(y, neg, y, _mm512_set1_ps(*s))
            }
            Activation::PRelu(s) => {
                let neg = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(y, zero);
                _mm512_mask_mul_ps(y, neg, y, _mm512_maskz_loadu_ps(m, s.as_ptr().add(oc)))
            }
        };
        // Step 4.
        match out.data {
            RawData::F32(p) => _mm512_mask_storeu_ps(p.add(at + oc), m, y),
            RawData::U8(p) => {
                let q = requantize(y, out.scale, out.zero, 255.0);
                _mm512_mask_cvtepi32_storeu_epi8(p.add(at + oc).cast(), m, q);
            }
            RawData::U16(p) => {
                let q = requantize(y, out.scale, out.zero, 65535.0);
                _mm512_mask_cvtepi32_storeu_epi16(p.add(at + oc).cast(), m, q);
            }
        }
    }
}

/// `((y * scale).round_ties_even() - zero).clamp(0.0, qmax)` then the (exact) cast to i32.
/// `vmaxps(q, 0)` returns its second operand for NaN, so NaN ends as 0 like the scalar cast.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
fn requantize(y: __m512, scale: f32, zero: f32, qmax: f32) -> __m512i {
    let t = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
        _mm512_mul_ps(y, _mm512_set1_ps(scale)),
    );
    let q = _mm512_sub_ps(t, _mm512_set1_ps(zero));
    let q = _mm512_min_ps(_mm512_max_ps(q, _mm512_setzero_ps()), _mm512_set1_ps(qmax));
    _mm512_cvtps_epi32(q)
}
