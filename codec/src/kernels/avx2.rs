//! AVX2 kernels. `vpmaddubsw` is **not** used: it saturates its pairwise sums to i16, and
//! 255·127·2 = 64,770 > 32,767. Instead the input bytes are widened to i16 when the band is
//! packed and the weights are stored as i16, so `vpmaddwd` (i16 × i16, pairs summed into i32) is
//! exact, followed by `vpaddd` into the i32 accumulators (bound: see `pack::MAX_K`).
//!
//! Micro-kernel `avx2_conv_u8s8_tile::<MR, NB>`: MR output pixels × NB·8 output channels. Per K
//! pair: NB weight lines (8 channels × 2 K as i16) are loaded, and for each pixel the two input
//! values (one i32) are broadcast and multiplied into NB accumulators. Register budget (16 ymm):
//! MR·NB accumulators + NB weights + broadcast + product, hence tiles 4×16 and 8×8 (a 5×16
//! tile would fit on paper, but LLVM then spilled 3 accumulators in the inner loop).
//!
//! The A16W8 unit runs the same micro-kernel on the low-byte and the high-byte planes.
//! Grouped convs never reach this file (they take the scalar body, see `kernels/mod.rs`).

use std::arch::x86_64::*;
use std::cell::RefCell;
use std::ops::Range;

use super::epilogue::{RawData, RawOutput};
use super::pack::{Avx2Pack, BandWalk, Line32, band_rows, fill_band, fill_im2col, im2col_rows};
use super::{Activation, ConvGeom, Epilogue, Output, PackedConv, Src};

thread_local! {
    /// Padded input bands widened to i16 (low bytes / u8 input, and high bytes for u16 input).
    static BANDS: RefCell<(Vec<i16>, Vec<i16>)> = const { RefCell::new((Vec::new(), Vec::new())) };
    /// The plain (unpadded-channel) band an im2col band is copied from (`fill_im2col`).
    static PLAIN: RefCell<(Vec<i16>, Vec<i16>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Everything a tile needs, fixed for one band.
struct Args<'a> {
    lo: *const i16,
    /// High-byte plane for u16 input, null for u8 input.
    hi: *const i16,
    /// Tap runs `(offset, len)` in elements of the plane (see `BandWalk::tap_runs`); K advances
    /// with them, one pair (2 elements) at a time.
    taps: &'a [(usize, usize)],
    w: *const Line32,
    /// Lines per K pair (8-channel blocks of the packed weights).
    nb: usize,
    /// Paired weights (`Avx2Pack::paired`): ≤ 4 channels, one line per K quad.
    paired: bool,
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
    let p: &Avx2Pack = w
        .avx2
        .as_ref()
        .expect("AVX2 weights are packed whenever the host has AVX2");
    let out_w = g.out_w();
    let n_band = if p.im2col {
        im2col_rows(g, p.cp, 2, rows.len())
    } else {
        band_rows(g, p.cp, 2, rows.len())
    };
    let raw = out.raw();
    BANDS.with(|b| {
        PLAIN.with(|plain| {
            let (lo, hi) = &mut *b.borrow_mut();
            let pl = &mut *plain.borrow_mut();
            let mut oy0 = rows.start;
            while oy0 < rows.end {
                let n = n_band.min(rows.end - oy0);
                let (walk, taps) = if p.im2col {
                    // Few input channels: a 1×1 conv over an im2col band, K = p.cp in one run.
                    let row0 = oy0 - rows.start;
                    let walk = fill_im2col(
                        g,
                        src,
                        in_ps,
                        p.cp,
                        oy0,
                        n,
                        raw.pixel_stride,
                        row0,
                        (lo, hi),
                        (&mut pl.0, &mut pl.1),
                        |x| x as i16,
                    );
                    (walk, vec![(0, p.cp)])
                } else {
                    let band = fill_band(g, src, in_ps, p.cp, oy0, n, lo, hi, |x| x as i16);
                    let walk = BandWalk::over_band(g, &band, raw.pixel_stride, oy0 - rows.start);
                    let taps = walk.tap_runs(g, p.cp);
                    (walk, taps)
                };
                let args = Args {
                    lo: lo.as_ptr(),
                    hi: if matches!(src, Src::U16 { .. }) {
                        hi.as_ptr()
                    } else {
                        std::ptr::null()
                    },
                    taps: &taps,
                    w: p.lines.as_ptr(),
                    nb: p.nb,
                    paired: p.paired,
                    walk,
                    n_pix: n * out_w,
                    epi,
                    out: raw,
                    out_c: g.out_c,
                };
                // SAFETY: `check_args` asserted level <= host max, and this path is only taken for
                // the AVX2 level. The band holds every (pixel, tap, channel) the tiles read
                // (fill_band sizes it from the same geometry as the BandWalk; fill_im2col writes
                // n·out_w pixels of p.cp values, read as one run of p.cp), the weights
                // hold kp·nb lines, and the output slice is long enough for every pixel of `rows`
                // (asserted by `check_args`); stores are limited to `out_c` channels.
                unsafe { avx2_conv_u8s8_band(&args) };
                oy0 += n;
            }
        })
    });
}

#[target_feature(enable = "avx2")]
unsafe fn avx2_conv_u8s8_band(a: &Args) {
    if a.paired {
        // SAFETY: the caller's contract, forwarded; paired weights have one line per K quad.
        unsafe { paired_chunk(a) };
        return;
    }
    let mut ocb0 = 0;
    while ocb0 < a.nb {
        // SAFETY (both calls): the caller's contract, forwarded; ocb0 + NB <= a.nb.
        unsafe {
            if a.nb - ocb0 >= 2 {
                avx2_conv_u8s8_chunk::<4, 2>(a, ocb0);
            } else {
                avx2_conv_u8s8_chunk::<8, 1>(a, ocb0);
            }
        }
        ocb0 += 2;
    }
}

/// All pixels of the band for the output-channel blocks `ocb0..ocb0+NB`: full MR tiles, then the
/// remainder with 4/2/1-pixel tiles.
#[target_feature(enable = "avx2")]
unsafe fn avx2_conv_u8s8_chunk<const MR: usize, const NB: usize>(a: &Args, ocb0: usize) {
    let n = a.n_pix;
    let mut p = 0;
    // SAFETY (all calls): the caller's contract; every tile covers pixels p..p+TILE <= n.
    unsafe {
        while p + MR <= n {
            avx2_conv_u8s8_tile::<MR, NB>(a, p, ocb0);
            p += MR;
        }
        while MR > 4 && p + 4 <= n {
            avx2_conv_u8s8_tile::<4, NB>(a, p, ocb0);
            p += 4;
        }
        while MR > 2 && p + 2 <= n {
            avx2_conv_u8s8_tile::<2, NB>(a, p, ocb0);
            p += 2;
        }
        while p < n {
            avx2_conv_u8s8_tile::<1, NB>(a, p, ocb0);
            p += 1;
        }
    }
}

/// All pixels of the band for paired weights (≤ 4 channels): 8-pixel tiles, then 4, 2, 1.
#[target_feature(enable = "avx2")]
unsafe fn paired_chunk(a: &Args) {
    let n = a.n_pix;
    let mut p = 0;
    // SAFETY (all calls): the caller's contract; every tile covers pixels p..p+TILE <= n.
    unsafe {
        while p + 8 <= n {
            paired_tile::<8>(a, p);
            p += 8;
        }
        while p + 4 <= n {
            paired_tile::<4>(a, p);
            p += 4;
        }
        while p + 2 <= n {
            paired_tile::<2>(a, p);
            p += 2;
        }
        while p < n {
            paired_tile::<1>(a, p);
            p += 1;
        }
    }
}

/// MR pixels × ≤ 4 paired channels: the dot products 4 K at a time, lane pairs summed
/// (`hadd`: exact i32 adds) into lanes 0..4, then the plain epilogue on those lanes.
#[target_feature(enable = "avx2")]
unsafe fn paired_tile<const MR: usize>(a: &Args, p0: usize) {
    let pix = a.walk.pixels::<MR>(p0);
    let mut out = [0usize; MR];
    for (i, o) in out.iter_mut().enumerate() {
        *o = a.walk.out_at(p0 + i);
    }
    // Lane 2c + h (channel c, K half h) → lane c: hadd gives [s0, s1, s0, s1 | s2, s3, s2, s3].
    let gather = _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7);
    let sum = |acc: [__m256i; MR]| {
        let mut s = [[_mm256_setzero_si256(); 1]; MR];
        for i in 0..MR {
            s[i][0] = _mm256_permutevar8x32_epi32(_mm256_hadd_epi32(acc[i], acc[i]), gather);
        }
        s
    };
    // SAFETY: forwarded from the caller (band, weights and output bounds, CPU features).
    unsafe {
        let lo = sum(paired_dot::<MR>(a, a.lo, &pix));
        let hi = (!a.hi.is_null()).then(|| sum(paired_dot::<MR>(a, a.hi, &pix)));
        avx2_epilogue::<MR, 1>(dequant(lo, hi), 0, a.out_c, a.epi, &a.out, &out);
    }
}

/// The dot products of MR pixels over all of K for paired weights, one plane: one 4-value
/// broadcast per pixel and K quad.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn paired_dot<const MR: usize>(
    a: &Args,
    plane: *const i16,
    pix: &[usize; MR],
) -> [__m256i; MR] {
    let mut acc = [_mm256_setzero_si256(); MR];
    // SAFETY: as `avx2_dot_u8s8`, with runs of whole K quads (cp % 4 == 0): pix[i] + tap + 4q + 4
    // stays inside the band, and line s < K/4 inside the packed weights.
    unsafe {
        let mut wl = a.w;
        for &(tap, len) in a.taps {
            let mut base = [plane; MR];
            for (b, &p) in base.iter_mut().zip(pix) {
                *b = plane.add(p + tap);
            }
            for q in 0..len / 4 {
                let w = _mm256_load_si256(wl.cast());
                for i in 0..MR {
                    let x = _mm256_set1_epi64x(base[i].add(4 * q).cast::<i64>().read_unaligned());
                    acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(x, w));
                }
                wl = wl.add(1);
            }
        }
    }
    acc
}

/// The register-blocked dot products of MR pixels × NB·8 channels over all of K, for one plane.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn avx2_dot_u8s8<const MR: usize, const NB: usize>(
    a: &Args,
    plane: *const i16,
    pix: &[usize; MR],
    ocb0: usize,
) -> [[__m256i; NB]; MR] {
    if MR == 4 && NB == 2 {
        // SAFETY: forwarded; the main tile's shape is checked just above.
        let acc = unsafe { avx2_dot_4x2(a, plane, pix[..4].try_into().unwrap(), ocb0) };
        // SAFETY: MR == 4 and NB == 2, so the two array types are the same type.
        return unsafe { std::mem::transmute_copy(&acc) };
    }
    let mut acc = [[_mm256_setzero_si256(); NB]; MR];
    // SAFETY: pix[i] + off + len stays inside the band (see `conv`); the runs cover K exactly
    // once, so line kp·nb + ocb0 + j with kp < K/2 and ocb0 + j < nb stays inside the packed
    // weights. Lines are 32-byte aligned.
    unsafe {
        let mut wl = a.w.add(ocb0);
        for &(tap, len) in a.taps {
            let mut base = [plane; MR];
            for (b, &p) in base.iter_mut().zip(pix) {
                *b = plane.add(p + tap);
            }
            for q in 0..len / 2 {
                let mut wv = [_mm256_setzero_si256(); NB];
                for (j, w) in wv.iter_mut().enumerate() {
                    *w = _mm256_load_si256(wl.add(j).cast());
                }
                for i in 0..MR {
                    let x = _mm256_set1_epi32(base[i].add(2 * q).cast::<i32>().read_unaligned());
                    for j in 0..NB {
                        acc[i][j] = _mm256_add_epi32(acc[i][j], _mm256_madd_epi16(x, wv[j]));
                    }
                }
                wl = wl.add(a.nb);
            }
        }
    }
    acc
}

/// `avx2_dot_u8s8::<4, 2>` (the main tile) with its K loop in assembly: LLVM's version of this
/// loop carried 7 `vmovdqa` register copies per K pair (33 instructions for 8 `vpmaddwd`,
/// dispatch-bound); this one is the 26 the arithmetic needs. Same loads, same products, same
/// i32 sums in the same order, so the results are bit-identical (`codec/tests/kernels.rs`).
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn avx2_dot_4x2(
    a: &Args,
    plane: *const i16,
    pix: &[usize; 4],
    ocb0: usize,
) -> [[__m256i; 2]; 4] {
    let z = _mm256_setzero_si256();
    let (mut c00, mut c01, mut c10, mut c11) = (z, z, z, z);
    let (mut c20, mut c21, mut c30, mut c31) = (z, z, z, z);
    let wstride = a.nb * std::mem::size_of::<Line32>();
    // SAFETY: as `avx2_dot_u8s8`: each run reads pairs q < len/2 at pix[i] + tap of the band
    // and one 2-line weight group per pair, `wstride` apart, all in bounds; Lines are 32-byte
    // aligned. The asm touches only the declared registers and reads memory.
    unsafe {
        let mut wl = a.w.add(ocb0).cast::<u8>();
        for &(tap, len) in a.taps {
            let pairs = len / 2;
            if pairs == 0 {
                continue;
            }
            std::arch::asm!(
                "2:",
                "vmovdqa {w0}, ymmword ptr [{wl}]",
                "vmovdqa {w1}, ymmword ptr [{wl} + 32]",
                "vpbroadcastd {x}, dword ptr [{p0} + {q}*4]",
                "vpmaddwd {t}, {x}, {w0}",
                "vpaddd {c00}, {c00}, {t}",
                "vpmaddwd {t}, {x}, {w1}",
                "vpaddd {c01}, {c01}, {t}",
                "vpbroadcastd {x}, dword ptr [{p1} + {q}*4]",
                "vpmaddwd {t}, {x}, {w0}",
                "vpaddd {c10}, {c10}, {t}",
                "vpmaddwd {t}, {x}, {w1}",
                "vpaddd {c11}, {c11}, {t}",
                "vpbroadcastd {x}, dword ptr [{p2} + {q}*4]",
                "vpmaddwd {t}, {x}, {w0}",
                "vpaddd {c20}, {c20}, {t}",
                "vpmaddwd {t}, {x}, {w1}",
                "vpaddd {c21}, {c21}, {t}",
                "vpbroadcastd {x}, dword ptr [{p3} + {q}*4]",
                "vpmaddwd {t}, {x}, {w0}",
                "vpaddd {c30}, {c30}, {t}",
                "vpmaddwd {t}, {x}, {w1}",
                "vpaddd {c31}, {c31}, {t}",
                "add {wl}, {ws}",
                "inc {q}",
                "cmp {q}, {n}",
                "jne 2b",
                wl = inout(reg) wl,
                ws = in(reg) wstride,
                q = inout(reg) 0usize => _,
                n = in(reg) pairs,
                p0 = in(reg) plane.add(pix[0] + tap),
                p1 = in(reg) plane.add(pix[1] + tap),
                p2 = in(reg) plane.add(pix[2] + tap),
                p3 = in(reg) plane.add(pix[3] + tap),
                w0 = out(ymm_reg) _,
                w1 = out(ymm_reg) _,
                x = out(ymm_reg) _,
                t = out(ymm_reg) _,
                c00 = inout(ymm_reg) c00,
                c01 = inout(ymm_reg) c01,
                c10 = inout(ymm_reg) c10,
                c11 = inout(ymm_reg) c11,
                c20 = inout(ymm_reg) c20,
                c21 = inout(ymm_reg) c21,
                c30 = inout(ymm_reg) c30,
                c31 = inout(ymm_reg) c31,
                options(nostack, readonly),
            );
        }
    }
    [[c00, c01], [c10, c11], [c20, c21], [c30, c31]]
}

#[target_feature(enable = "avx2")]
unsafe fn avx2_conv_u8s8_tile<const MR: usize, const NB: usize>(a: &Args, p0: usize, ocb0: usize) {
    // (Plain loops rather than `std::array::from_fn` throughout this file: a closure defined in
    // a `#[target_feature]` function cannot always be inlined into the generic std code.)
    let pix = a.walk.pixels::<MR>(p0);
    let mut out = [0usize; MR];
    for (i, o) in out.iter_mut().enumerate() {
        *o = a.walk.out_at(p0 + i);
    }
    // SAFETY: forwarded from the caller (band, weights and output bounds, CPU features).
    unsafe {
        let lo = avx2_dot_u8s8::<MR, NB>(a, a.lo, &pix, ocb0);
        let hi = (!a.hi.is_null()).then(|| avx2_dot_u8s8::<MR, NB>(a, a.hi, &pix, ocb0));
        avx2_epilogue::<MR, NB>(dequant(lo, hi), ocb0 * 8, a.out_c, a.epi, &a.out, &out);
    }
}

/// Epilogue step 1. INT8: `v = acc as f32` (vcvtdq2ps, RNE). A16W8: `v = (hi as f32) * 256.0 +
/// (lo as f32)`.
#[target_feature(enable = "avx2")]
#[inline]
fn dequant<const MR: usize, const NB: usize>(
    lo: [[__m256i; NB]; MR],
    hi: Option<[[__m256i; NB]; MR]>,
) -> [[__m256; NB]; MR] {
    let mut v = [[_mm256_setzero_ps(); NB]; MR];
    let k256 = _mm256_set1_ps(256.0);
    for i in 0..MR {
        for j in 0..NB {
            v[i][j] = match &hi {
                None => _mm256_cvtepi32_ps(lo[i][j]),
                Some(hi) => _mm256_add_ps(
                    _mm256_mul_ps(_mm256_cvtepi32_ps(hi[i][j]), k256),
                    _mm256_cvtepi32_ps(lo[i][j]),
                ),
            };
        }
    }
    v
}

/// Epilogue steps 2–4 (see `epilogue.rs`) for MR pixels (element offsets `out`) × NB blocks of
/// 8 channels from `oc0`. The activation and output-kind matches sit outside the vector loops.
#[target_feature(enable = "avx2")]
#[inline]
pub(super) unsafe fn avx2_epilogue<const MR: usize, const NB: usize>(
    v: [[__m256; NB]; MR],
    oc0: usize,
    out_c: usize,
    epi: &Epilogue,
    o: &RawOutput,
    out: &[usize; MR],
) {
    // Valid lanes per block (1..=8; 0 for a block past out_c, which never happens: NB blocks
    // are chosen from the packed channel count).
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let (mut n, mut m) = ([0usize; NB], [_mm256_setzero_si256(); NB]);
    for j in 0..NB {
        n[j] = out_c.saturating_sub(oc0 + 8 * j).min(8);
        m[j] = _mm256_cmpgt_epi32(_mm256_set1_epi32(n[j] as i32), lanes);
    }
    // SAFETY: for partial blocks only the first n lanes are loaded (vmaskmovps suppresses faults
    // on the others) and stored; lanes < n are < out_c, within mult/offset/slopes and the output
    // pixel.
    unsafe {
        let ld = |s: &[f32], j: usize| {
            let p = s.as_ptr().add(oc0 + 8 * j);
            if n[j] == 8 {
                _mm256_loadu_ps(p)
            } else {
                _mm256_maskload_ps(p, m[j])
            }
        };
        let ld_all = |s: &[f32]| {
            let mut r = [_mm256_setzero_ps(); NB];
            for (j, r) in r.iter_mut().enumerate() {
                *r = ld(s, j);
            }
            r
        };
        let (mult, offset) = (ld_all(epi.mult), ld_all(epi.offset));
        // Step 2: a multiply, then an add (two roundings, never fused).
        let mut y = v;
        for yi in y.iter_mut() {
            for j in 0..NB {
                yi[j] = _mm256_add_ps(_mm256_mul_ps(yi[j], mult[j]), offset[j]);
            }
        }
        // Step 3: `if y < 0`, an ordered compare (NaN and -0.0 are not negative).
        let zero = _mm256_setzero_ps();
        let leaky = |y: &mut [[__m256; NB]; MR], slope: [__m256; NB]| {
            for yi in y.iter_mut() {
                for j in 0..NB {
                    let neg = _mm256_cmp_ps::<_CMP_LT_OQ>(yi[j], zero);
                    yi[j] = _mm256_blendv_ps(yi[j], _mm256_mul_ps(yi[j], slope[j]), neg);
                }
            }
        };
        match epi.act {
            // The requantization's clamp does it (`RawOutput::clamp_is_relu`).
            Activation::Relu if o.clamp_is_relu() => {}
            Activation::None => {}
            // vmaxps returns its second operand when both are zeros or one is NaN, so
            // max(0, y) is exactly `if y < 0 { 0 } else { y }`.
            Activation::Relu => {
                for yi in y.iter_mut() {
                    for yij in yi.iter_mut() {
                        *yij = _mm256_max_ps(zero, *yij);
                    }
                }
            }
            Activation::Leaky(s) => leaky(&mut y, [_mm256_set1_ps(*s); NB]),
            Activation::PRelu(s) => leaky(&mut y, ld_all(s)),
        }
        // Step 3's residual (`Output::Plus`), at the output's element offsets.
        if !o.residual.is_null() {
            for i in 0..MR {
                for j in 0..NB {
                    let p = o.residual.add(out[i] + oc0 + 8 * j);
                    let r = if n[j] == 8 {
                        _mm256_loadu_ps(p)
                    } else {
                        _mm256_maskload_ps(p, m[j])
                    };
                    y[i][j] = _mm256_add_ps(y[i][j], r);
                }
            }
        }
        // Step 4.
        match o.data {
            RawData::Pixels(p) => store_pixels(&y, p, oc0, out_c, o, out),
            RawData::F32(p) => {
                for i in 0..MR {
                    for j in 0..NB {
                        let dst = p.add(out[i] + oc0 + 8 * j);
                        if n[j] == 8 {
                            _mm256_storeu_ps(dst, y[i][j])
                        } else {
                            _mm256_maskstore_ps(dst, m[j], y[i][j])
                        }
                    }
                }
            }
            RawData::U8(p) => {
                let rq = Requant::new(o.scale, o.zero, 255.0);
                for i in 0..MR {
                    for j in 0..NB {
                        let q = rq.apply(y[i][j]);
                        // Values are in 0..=255: the saturating packs are exact.
                        let w16 = _mm_packus_epi32(
                            _mm256_castsi256_si128(q),
                            _mm256_extracti128_si256::<1>(q),
                        );
                        let b = _mm_packus_epi16(w16, w16);
                        let dst = p.add(out[i] + oc0 + 8 * j);
                        if n[j] == 8 {
                            _mm_storel_epi64(dst.cast(), b);
                        } else {
                            let mut tmp = [0u8; 16];
                            _mm_storeu_si128(tmp.as_mut_ptr().cast(), b);
                            std::ptr::copy_nonoverlapping(tmp.as_ptr(), dst, n[j]);
                        }
                    }
                }
            }
            RawData::U16(p) => {
                let rq = Requant::new(o.scale, o.zero, 65535.0);
                for i in 0..MR {
                    for j in 0..NB {
                        let q = rq.apply(y[i][j]);
                        // Values are in 0..=65535: the unsigned saturating pack is exact.
                        let w16 = _mm_packus_epi32(
                            _mm256_castsi256_si128(q),
                            _mm256_extracti128_si256::<1>(q),
                        );
                        let dst = p.add(out[i] + oc0 + 8 * j);
                        if n[j] == 8 {
                            _mm_storeu_si128(dst.cast(), w16);
                        } else {
                            let mut tmp = [0u16; 8];
                            _mm_storeu_si128(tmp.as_mut_ptr().cast(), w16);
                            std::ptr::copy_nonoverlapping(tmp.as_ptr(), dst, n[j]);
                        }
                    }
                }
            }
        }
    }
}

/// Step 4 of `Output::Pixels` for MR consecutive pixels (`out[i]` = pixel index) × NB blocks
/// of 8 from `oc0`: the anchor added lane for lane (lane l of block j holds anchor channel
/// (oc0 + 8j + l) mod C, C ≤ 8), `to_u8_pixel`, and every HR row's run written from the
/// blocks' bytes held as u64 words (AVX2 has no byte-masked store). One division per tile.
///
/// Safety: `p` holds every HR byte of the call's rows and `o.anchor` every anchor value
/// (`check_args`); each run writes exactly its own bytes.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn store_pixels<const MR: usize, const NB: usize>(
    y: &[[__m256; NB]; MR],
    p: *mut u8,
    oc0: usize,
    out_c: usize,
    o: &RawOutput,
    out: &[usize; MR],
) {
    let (s, c, w) = (o.block, o.channels, o.width);
    let sc = s * c;
    let runs = o.pixel_runs(oc0, 8 * NB, out_c);
    let mut idx = [_mm256_setzero_si256(); NB];
    for (j, v) in idx.iter_mut().enumerate() {
        let mut lanes = [0i32; 8];
        for (l, x) in lanes.iter_mut().enumerate() {
            *x = ((oc0 + 8 * j + l) % c) as i32;
        }
        // SAFETY: reads 8 i32 from an 8-element array.
        *v = unsafe { _mm256_loadu_si256(lanes.as_ptr().cast()) };
    }
    let cm = _mm256_cmpgt_epi32(
        _mm256_set1_epi32(c as i32),
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
    );
    let q0 = out[0];
    let (mut r, mut x) = (q0 / w, q0 % w);
    for (i, yi) in y.iter().enumerate() {
        let base = r * s * sc * w + x * sc;
        // A word per block (the AVX2 tiles have NB ≤ 2; 4 bounds any caller) and a spare: a
        // run's last read may look one word past its bytes.
        let mut words = [0u64; 5];
        // SAFETY: pixel q0 + i is inside the call's rows, its C anchor values are in the anchor
        // (vmaskmovps loads only those).
        unsafe {
            let a = _mm256_maskload_ps(o.anchor.add((q0 + i) * c), cm);
            for j in 0..NB {
                let b = to_u8_pixels(_mm256_add_ps(yi[j], _mm256_permutevar8x32_ps(a, idx[j])));
                words[j] = _mm_cvtsi128_si64(b) as u64;
            }
        }
        for &(l0, off, len) in &runs.runs[..runs.n] {
            let (mut l, mut rem) = (l0, len);
            let mut d = p.wrapping_add(base + off);
            while rem > 0 {
                let (k0, sh) = (l / 8, 8 * (l % 8));
                let mut v = words[k0] >> sh;
                if sh > 0 {
                    v |= words[k0 + 1] << (64 - sh);
                }
                let k = rem.min(8);
                // SAFETY: d..d + k are bytes of this run, inside the HR rows.
                unsafe { write_bytes(d, v, k) };
                (l, rem, d) = (l + k, rem - k, d.wrapping_add(k));
            }
        }
        x += 1;
        if x == w {
            x = 0;
            r += 1;
        }
    }
}

/// The low `k` (1..=8) bytes of `v` to `d`, little-endian.
///
/// Safety: `d..d + k` is writable.
#[inline(always)]
unsafe fn write_bytes(mut d: *mut u8, mut v: u64, k: usize) {
    // SAFETY: the caller's contract; each write stays within the k bytes.
    unsafe {
        if k == 8 {
            return d.cast::<u64>().write_unaligned(v);
        }
        if k & 4 != 0 {
            d.cast::<u32>().write_unaligned(v as u32);
            (d, v) = (d.add(4), v >> 32);
        }
        if k & 2 != 0 {
            d.cast::<u16>().write_unaligned(v as u16);
            (d, v) = (d.add(2), v >> 16);
        }
        if k & 1 != 0 {
            d.write(v as u8);
        }
    }
}

/// `crate::tensor::to_u8_pixel` on 8 lanes (see the AVX-512 one): the 8 bytes in the low half.
#[target_feature(enable = "avx2")]
#[inline]
fn to_u8_pixels(v: __m256) -> __m128i {
    let x = _mm256_min_ps(_mm256_max_ps(v, _mm256_setzero_ps()), _mm256_set1_ps(1.0));
    let x = _mm256_mul_ps(x, _mm256_set1_ps(255.0));
    let t = _mm256_cvttps_epi32(_mm256_add_ps(x, _mm256_set1_ps(crate::tensor::U8_ROUND)));
    // Values are in 0..=255: the packs are exact.
    let w16 = _mm_packus_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256::<1>(t));
    _mm_packus_epi16(w16, w16)
}

/// Step 4's constants, broadcast once per tile.
#[derive(Clone, Copy)]
struct Requant {
    scale: __m256,
    zero: __m256,
    qmax: __m256,
    /// zero ≠ 0: `t - 0.0` is `t` but for −0.0, which ends as 0 either way.
    shift: bool,
}

impl Requant {
    #[target_feature(enable = "avx2")]
    #[inline]
    fn new(scale: f32, zero: f32, qmax: f32) -> Requant {
        Requant {
            scale: _mm256_set1_ps(scale),
            zero: _mm256_set1_ps(zero),
            qmax: _mm256_set1_ps(qmax),
            shift: zero != 0.0,
        }
    }

    /// `((y * scale).round_ties_even() - zero).clamp(0.0, qmax)` then the (exact) cast to i32.
    /// `vmaxps(q, 0)` returns its second operand for NaN, so NaN ends as 0 like the scalar cast.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn apply(&self, y: __m256) -> __m256i {
        let t = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm256_mul_ps(y, self.scale),
        );
        let q = if self.shift {
            _mm256_sub_ps(t, self.zero)
        } else {
            t
        };
        // (The clamp at qmax stays: the packs saturate as signed, and a q ≥ 2³¹ converts to
        // 0x8000_0000, which they would take for negative.)
        let q = _mm256_min_ps(_mm256_max_ps(q, _mm256_setzero_ps()), self.qmax);
        _mm256_cvtps_epi32(q)
    }
}
