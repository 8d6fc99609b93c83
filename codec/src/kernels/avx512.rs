//! AVX-512 VNNI kernels (`vpdpbusd`: u8 × i8, four products summed into each i32 lane, no
//! saturation, so the i32 accumulation is exact; see `pack::MAX_K` for the bound).
//!
//! Micro-kernel `avx512vnni_conv_u8s8_tile::<MR, NB>`: MR output pixels × NB·16 output channels.
//! Per K quad: NB weight lines (64 B, 16 channels × 4 K) are loaded, and for each pixel the 4
//! input bytes are broadcast to all lanes and multiplied into NB accumulators. Register budget
//! (32 zmm): MR·NB accumulators + NB weights + a broadcast, hence tiles 6×64, 8×48, 10×32, 12×16
//! (10 rather than 12 pixels with 32 channels: 12 base pointers no longer fit in the 16 GPRs and
//! LLVM reloaded 3 of them from the stack per K step; 10 is ~3 % faster on 3×3 16→27).
//!
//! The A16W8 unit runs the same micro-kernel twice (low bytes, then high bytes) and combines the
//! two accumulators in the epilogue: exactly 2× the INT8 work.
//!
//! Grouped convs never reach this file (they take the scalar body, see `kernels/mod.rs`).

use std::arch::x86_64::*;
use std::cell::RefCell;
use std::ops::Range;

use super::epilogue::{MAX_RUNS, RawData, RawOutput};
use super::pack::{
    BandWalk, Line64, VnniLayout, VnniPack, band_rows, fill_band, fill_im2col, im2col_rows,
};
use super::{Activation, ConvGeom, Epilogue, Output, PackedConv, Src};

thread_local! {
    /// Padded input bands (low bytes / u8 input, and high bytes for u16 input), reused per thread.
    static BANDS: RefCell<(Vec<u8>, Vec<u8>)> = const { RefCell::new((Vec::new(), Vec::new())) };
    /// The plain (unpadded-channel) band an im2col band is copied from (`fill_im2col`).
    static PLAIN: RefCell<(Vec<u8>, Vec<u8>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Everything a tile needs, fixed for one band.
struct Args<'a> {
    lo: *const u8,
    /// High-byte plane for u16 input, null for u8 input.
    hi: *const u8,
    /// Tap runs `(offset, len)` in bytes of the plane (see `BandWalk::tap_runs`); K advances
    /// with them, one broadcast step (4 bytes, or 8 when `paired`) at a time.
    taps: &'a [(usize, usize)],
    /// Quad and paired layouts: the byte offset of every K step (16 or 8 bytes), the runs
    /// flattened, so the tile walks K in one loop: over runs of a few steps (a 16-channel 3×3
    /// conv has 3 runs of 48 bytes) LLVM moved the accumulators through the stack between runs.
    koffs: &'a [usize],
    /// The weights' layout (`VnniPack`): plain; paired octets, 16 channels as 2 × (8 channels
    /// × 2 K halves); or quads, `nb` lines of 4 channels × 4 K quads.
    layout: VnniLayout,
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
    let raw = out.raw();
    let args = |lo: *const u8,
                hi: *const u8,
                walk: BandWalk,
                taps: &[(usize, usize)],
                n: usize,
                f: &dyn Fn(&Args)| {
        let step = p.layout.k_step();
        let koffs: Vec<usize> = if step > 0 {
            taps.iter()
                .flat_map(|&(t, len)| (0..len / step).map(move |q| t + step * q))
                .collect()
        } else {
            Vec::new()
        };
        f(&Args {
            lo,
            hi,
            taps,
            koffs: &koffs,
            layout: p.layout,
            w: p.lines.as_ptr(),
            nb: p.nb,
            walk,
            n_pix: n * out_w,
            epi,
            out: raw,
            out_c: g.out_c,
        })
    };
    // SAFETY (every `avx512vnni_conv_u8s8_band` call): `check_args` asserted level <= host max,
    // and this path is only taken for levels that imply AVX-512 F/BW/VL/VNNI. Every (pixel, tap,
    // K quad) the tiles read is inside the plane: the band is sized by `fill_band` from the same
    // geometry as the walk (an im2col band by `fill_im2col`: n·out_w pixels of p.cp bytes, read
    // as one run of p.cp), and in-place reads stay within the last input pixel's channels
    // (in_c % 4 == 0, no padding, input length asserted). The weights hold kq·nb lines, and the
    // output slice is long enough for every pixel of `rows` (asserted by `check_args`); stores
    // are masked to `out_c` channels.
    if p.im2col {
        // Few input channels: a 1×1 conv over an im2col band, K = p.cp in one run.
        let n_band = im2col_rows(g, p.cp, 1, rows.len());
        let taps = [(0, p.cp)];
        BANDS.with(|b| {
            PLAIN.with(|plain| {
                let (lo, hi) = &mut *b.borrow_mut();
                let pl = &mut *plain.borrow_mut();
                let mut oy0 = rows.start;
                while oy0 < rows.end {
                    let n = n_band.min(rows.end - oy0);
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
                        |x| x,
                    );
                    let hi = if matches!(src, Src::U16 { .. }) {
                        hi.as_ptr()
                    } else {
                        std::ptr::null()
                    };
                    args(lo.as_ptr(), hi, walk, &taps, n, &|a| unsafe {
                        avx512vnni_conv_u8s8_band(a)
                    });
                    oy0 += n;
                }
            })
        });
        return;
    }
    let unpadded = g.pad_top == 0 && g.pad_left == 0 && g.pad_bottom == 0 && g.pad_right == 0;
    if let Src::U8 { data, .. } = src
        && unpadded
        && g.in_c == p.cp
    {
        // The input already is a valid band (no padding, channels a multiple of 4): read it in
        // place instead of copying (saves a pass over the input, ~10 % on 1×1 convs).
        let walk = BandWalk {
            out_w,
            stride: g.stride,
            row_pitch: g.in_w * in_ps,
            pix_pitch: in_ps,
            out_ps: raw.pixel_stride,
            out_row0: 0,
            next: Default::default(),
        };
        let taps = walk.tap_runs(g, p.cp);
        let base = data[rows.start * g.stride * g.in_w * in_ps..].as_ptr();
        args(
            base,
            std::ptr::null(),
            walk,
            &taps,
            rows.len(),
            &|a| unsafe { avx512vnni_conv_u8s8_band(a) },
        );
        return;
    }
    let n_band = band_rows(g, p.cp, 1, rows.len());
    BANDS.with(|b| {
        let (lo, hi) = &mut *b.borrow_mut();
        let mut oy0 = rows.start;
        while oy0 < rows.end {
            let n = n_band.min(rows.end - oy0);
            let band = fill_band(g, src, in_ps, p.cp, oy0, n, lo, hi, |x| x);
            let walk = BandWalk::over_band(g, &band, raw.pixel_stride, oy0 - rows.start);
            let taps = walk.tap_runs(g, p.cp);
            let hi = if matches!(src, Src::U16 { .. }) {
                hi.as_ptr()
            } else {
                std::ptr::null()
            };
            args(lo.as_ptr(), hi, walk, &taps, n, &|a| unsafe {
                avx512vnni_conv_u8s8_band(a)
            });
            oy0 += n;
        }
    });
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn avx512vnni_conv_u8s8_band(a: &Args) {
    // Tiles: the most pixels whose MR·NB accumulators + NB weights + a broadcast fit in 32 zmm.
    // ≤ 16 channels use the paired layout: the plain 12×16 tile needs 13 loads per 12 vpdpbusd
    // and was load-bound (3×3 48→16: ~240 GMAC/s); paired 10×(2×8), 12 loads feed 20
    // (~290 GMAC/s). Without paired weights (channels not a multiple of 8) the 12×16 tile stays.
    if a.layout == VnniLayout::Paired {
        // SAFETY: the caller's contract, forwarded; paired weights have exactly 2 lines per step.
        unsafe { avx512vnni_conv_u8s8_chunk::<10, 2, true>(a, 0) };
        return;
    }
    if a.layout == VnniLayout::Quad {
        // MR·NB accumulators + NB weights + a broadcast: 12×1 or 12×2 (both lines at once: the
        // 16-byte broadcast is shared by every channel).
        // SAFETY: the caller's contract, forwarded; quad weights have nb <= 2 lines per step
        // (`quad_pays`: out_c <= 8).
        unsafe {
            if a.nb == 1 {
                quad_chunk::<1>(a)
            } else {
                quad_chunk::<2>(a)
            }
        }
        return;
    }
    let mut ocb0 = 0;
    while ocb0 < a.nb {
        // SAFETY (all calls): the caller's contract, forwarded; ocb0 + NB <= a.nb.
        unsafe {
            match a.nb - ocb0 {
                1 => avx512vnni_conv_u8s8_chunk::<12, 1, false>(a, ocb0),
                2 => avx512vnni_conv_u8s8_chunk::<10, 2, false>(a, ocb0),
                3 => avx512vnni_conv_u8s8_chunk::<8, 3, false>(a, ocb0),
                _ => avx512vnni_conv_u8s8_chunk::<6, 4, false>(a, ocb0),
            }
        }
        ocb0 += 4;
    }
}

/// All pixels of the band for the output-channel blocks `ocb0..ocb0+NB`: full MR tiles, then the
/// remainder with 8/4/2/1-pixel tiles.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn avx512vnni_conv_u8s8_chunk<const MR: usize, const NB: usize, const PAIRED: bool>(
    a: &Args,
    ocb0: usize,
) {
    let n = a.n_pix;
    let mut p = 0;
    // SAFETY (all calls): the caller's contract; every tile covers pixels p..p+TILE <= n.
    unsafe {
        while p + MR <= n {
            avx512vnni_conv_u8s8_tile::<MR, NB, PAIRED>(a, p, ocb0);
            p += MR;
        }
        while MR > 8 && p + 8 <= n {
            avx512vnni_conv_u8s8_tile::<8, NB, PAIRED>(a, p, ocb0);
            p += 8;
        }
        while MR > 4 && p + 4 <= n {
            avx512vnni_conv_u8s8_tile::<4, NB, PAIRED>(a, p, ocb0);
            p += 4;
        }
        while MR > 2 && p + 2 <= n {
            avx512vnni_conv_u8s8_tile::<2, NB, PAIRED>(a, p, ocb0);
            p += 2;
        }
        while p < n {
            avx512vnni_conv_u8s8_tile::<1, NB, PAIRED>(a, p, ocb0);
            p += 1;
        }
    }
}

/// The register-blocked dot products of MR pixels × NB weight lines over all of K, for one
/// plane. STEP is the bytes per broadcast: 4 (plain: one K quad to every lane) or 8 (paired: one
/// K octet, each 4-byte half going to alternate lanes).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
unsafe fn avx512vnni_dot_u8s8<const MR: usize, const NB: usize, const STEP: usize>(
    a: &Args,
    plane: *const u8,
    pix: &[usize; MR],
    ocb0: usize,
) -> [[__m512i; NB]; MR] {
    let mut acc = [[_mm512_setzero_si512(); NB]; MR];
    let step = STEP;
    // SAFETY: pix[i] + off + len stays inside the plane (see `conv`); the runs cover K exactly
    // once, so line q·nb + ocb0 + j with q < K/step and ocb0 + j < nb stays inside the packed
    // weights. Lines are 64-byte aligned.
    unsafe {
        let mut wl = a.w.add(ocb0);
        if STEP == 8 {
            // Paired: one flat loop over `koffs` (same K order, same lines).
            let mut base = [plane; MR];
            for i in 0..MR {
                base[i] = plane.add(pix[i]);
            }
            for &off in a.koffs {
                let mut wv = [_mm512_setzero_si512(); NB];
                for (j, w) in wv.iter_mut().enumerate() {
                    *w = _mm512_load_si512(wl.add(j).cast());
                }
                for i in 0..MR {
                    let x = _mm512_set1_epi64(base[i].add(off).cast::<i64>().read_unaligned());
                    for j in 0..NB {
                        acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], x, wv[j]);
                    }
                }
                wl = wl.add(a.nb);
            }
            return acc;
        }
        for &(tap, len) in a.taps {
            let mut base = [plane; MR];
            for i in 0..MR {
                base[i] = plane.add(pix[i] + tap);
            }
            for q in 0..len / step {
                let mut wv = [_mm512_setzero_si512(); NB];
                for (j, w) in wv.iter_mut().enumerate() {
                    *w = _mm512_load_si512(wl.add(j).cast());
                }
                for i in 0..MR {
                    let at = base[i].add(step * q);
                    let x = match STEP {
                        4 => _mm512_set1_epi32(at.cast::<i32>().read_unaligned()),
                        _ => _mm512_set1_epi64(at.cast::<i64>().read_unaligned()),
                    };
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
unsafe fn avx512vnni_conv_u8s8_tile<const MR: usize, const NB: usize, const PAIRED: bool>(
    a: &Args,
    p0: usize,
    ocb0: usize,
) {
    // (Plain loops rather than `std::array::from_fn` throughout this file: a closure defined in
    // a `#[target_feature]` function cannot always be inlined into the generic std code.)
    let pix = a.walk.pixels::<MR>(p0);
    let mut out = [0usize; MR];
    for (i, o) in out.iter_mut().enumerate() {
        *o = a.walk.out_at(p0 + i);
    }
    // SAFETY: forwarded from the caller (plane, weights and output bounds, CPU features).
    unsafe {
        if PAIRED {
            let lo = paired_sum(avx512vnni_dot_u8s8::<MR, 2, 8>(a, a.lo, &pix, 0));
            let hi = (!a.hi.is_null())
                .then(|| paired_sum(avx512vnni_dot_u8s8::<MR, 2, 8>(a, a.hi, &pix, 0)));
            avx512_epilogue::<MR, 1>(dequant(lo, hi), 0, a.out_c, a.epi, &a.out, &out);
        } else {
            let lo = avx512vnni_dot_u8s8::<MR, NB, 4>(a, a.lo, &pix, ocb0);
            let hi =
                (!a.hi.is_null()).then(|| avx512vnni_dot_u8s8::<MR, NB, 4>(a, a.hi, &pix, ocb0));
            avx512_epilogue::<MR, NB>(dequant(lo, hi), ocb0 * 16, a.out_c, a.epi, &a.out, &out);
        }
    }
}

/// Paired accumulators (lane 2c + h of block b = channel 8b + c, K half h) → 16 channels.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
fn paired_sum<const MR: usize>(acc: [[__m512i; 2]; MR]) -> [[__m512i; 1]; MR] {
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    let mut sum = [[_mm512_setzero_si512(); 1]; MR];
    for i in 0..MR {
        let [a, b] = acc[i];
        sum[i][0] = _mm512_add_epi32(
            _mm512_permutex2var_epi32(a, even, b),
            _mm512_permutex2var_epi32(a, odd, b),
        );
    }
    sum
}

/// Epilogue step 4: vector `y[i][j]` is requantized once and stored at each place of
/// `$at(i, j)`: (element offset, lanes); one place for a plain tile, one per pixel for a quad
/// vector. A macro, not a function: a generic `#[target_feature]` function is not always inlined
/// (`#[inline(always)]` is refused there), and an out-of-line store cost 18 % of a 16→4 conv.
///
/// Safety (of the expansion, inside an `unsafe` block of a function with AVX-512 F/BW enabled):
/// every lane in a mask is inside the output; lanes outside are not touched (masked stores
/// suppress faults). `wrapping_add`: a base may lie before the output (the quad epilogue shifts
/// it so that lane 4p lands on pixel p), only the masked lanes are written.
macro_rules! store {
    ($o:expr, $y:expr, $at:expr) => {{
        let (o, y, at) = ($o, $y, $at);
        match o.data {
            RawData::F32(p) => {
                for (i, yi) in y.iter().enumerate() {
                    for (j, &v) in yi.iter().enumerate() {
                        for (e, m) in at(i, j) {
                            _mm512_mask_storeu_ps(p.wrapping_add(e), m, v);
                        }
                    }
                }
            }
            RawData::U8(p) => {
                let rq = Requant::new(o.scale, o.zero, 255.0);
                for (i, yi) in y.iter().enumerate() {
                    for (j, &v) in yi.iter().enumerate() {
                        let q = rq.apply(v);
                        for (e, m) in at(i, j) {
                            _mm512_mask_cvtusepi32_storeu_epi8(p.wrapping_add(e).cast(), m, q);
                        }
                    }
                }
            }
            RawData::U16(p) => {
                let rq = Requant::new(o.scale, o.zero, 65535.0);
                for (i, yi) in y.iter().enumerate() {
                    for (j, &v) in yi.iter().enumerate() {
                        let q = rq.apply(v);
                        for (e, m) in at(i, j) {
                            _mm512_mask_cvtusepi32_storeu_epi16(p.wrapping_add(e).cast(), m, q);
                        }
                    }
                }
            }
            RawData::Pixels(_) => {
                unreachable!("pixel outputs of the quad layout go through f32 (`kernels::run`)")
            }
        }
    }};
}

/// Epilogue step 1. INT8: `v = acc as f32` (vcvtdq2ps, RNE). A16W8: `v = (hi as f32) * 256.0 +
/// (lo as f32)`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
fn dequant<const MR: usize, const NB: usize>(
    lo: [[__m512i; NB]; MR],
    hi: Option<[[__m512i; NB]; MR]>,
) -> [[__m512; NB]; MR] {
    let mut v = [[_mm512_setzero_ps(); NB]; MR];
    let k256 = _mm512_set1_ps(256.0);
    for i in 0..MR {
        for j in 0..NB {
            v[i][j] = match &hi {
                None => _mm512_cvtepi32_ps(lo[i][j]),
                Some(hi) => _mm512_add_ps(
                    _mm512_mul_ps(_mm512_cvtepi32_ps(hi[i][j]), k256),
                    _mm512_cvtepi32_ps(lo[i][j]),
                ),
            };
        }
    }
    v
}

/// Lanes of the 16-channel block starting at `oc` that are real output channels.
#[inline]
fn lane_mask(out_c: usize, oc: usize) -> __mmask16 {
    let n = out_c.saturating_sub(oc).min(16);
    ((1u32 << n) - 1) as __mmask16
}

/// Epilogue steps 2–4 (see `epilogue.rs`) for MR pixels (element offsets `out`) × NB blocks of
/// 16 channels from `oc0`. The activation and output-kind matches sit outside the vector loops.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
unsafe fn avx512_epilogue<const MR: usize, const NB: usize>(
    v: [[__m512; NB]; MR],
    oc0: usize,
    out_c: usize,
    epi: &Epilogue,
    o: &RawOutput,
    out: &[usize; MR],
) {
    let mut m: [__mmask16; NB] = [0; NB];
    for (j, m) in m.iter_mut().enumerate() {
        *m = lane_mask(out_c, oc0 + 16 * j);
    }
    // SAFETY: lanes outside `m` are neither loaded nor stored (masked loads/stores suppress
    // faults); lanes inside are < out_c, within mult/offset/slopes and the output pixel.
    unsafe {
        let ld = |s: &[f32]| {
            let mut r = [_mm512_setzero_ps(); NB];
            for j in 0..NB {
                r[j] = _mm512_maskz_loadu_ps(m[j], s.as_ptr().add(oc0 + 16 * j));
            }
            r
        };
        let mut y = v;
        affine_act(&mut y, epi, o.clamp_is_relu(), ld);
        // Step 3's residual (`Output::Plus`), at the output's element offsets.
        if !o.residual.is_null() {
            for (yi, &at) in y.iter_mut().zip(out) {
                for (j, yij) in yi.iter_mut().enumerate() {
                    let r = _mm512_maskz_loadu_ps(m[j], o.residual.add(at + oc0 + 16 * j));
                    *yij = _mm512_add_ps(*yij, r);
                }
            }
        }
        // Step 4.
        if let RawData::Pixels(p) = o.data {
            store_pixels(&y, p, oc0, out_c, o, out);
            return;
        }
        store!(o, &y, |i: usize, j: usize| [(out[i] + oc0 + 16 * j, m[j])]);
    }
}

/// Step 4 of `Output::Pixels` for MR consecutive pixels (`out[i]` = pixel index, the walk's
/// offsets at pixel stride 1) × NB blocks from `oc0`: the anchor added lane for lane (lane l of
/// block j holds anchor channel (oc0 + 16j + l) mod C), `to_u8_pixel`, and every HR row's run
/// stored from its block with a byte mask. The pixel's row and column take one division per
/// tile (the tile's pixels are consecutive).
///
/// Safety: `p` holds every HR byte of the call's rows and `o.anchor` every anchor value
/// (`check_args`); only the runs' lanes are stored (masked stores suppress faults, so a block's
/// base may lie outside the output: `wrapping_offset`).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
unsafe fn store_pixels<const MR: usize, const NB: usize>(
    y: &[[__m512; NB]; MR],
    p: *mut u8,
    oc0: usize,
    out_c: usize,
    o: &RawOutput,
    out: &[usize; MR],
) {
    let (s, c, w) = (o.block, o.channels, o.width);
    let sc = s * c;
    // Each run split at block edges: (block, offset of the block's lane 0, byte mask).
    let runs = o.pixel_runs(oc0, 16 * NB, out_c);
    let mut st = [(0usize, 0isize, 0 as __mmask16); MAX_RUNS + 4];
    let mut n = 0;
    for &(l0, off, len) in &runs.runs[..runs.n] {
        for j in l0 / 16..=(l0 + len - 1) / 16 {
            let (a, z) = (
                l0.max(16 * j) - 16 * j,
                (l0 + len).min(16 * j + 16) - 16 * j,
            );
            let mask = (((1u32 << z) - 1) & !((1u32 << a) - 1)) as __mmask16;
            st[n] = (j, off as isize - (l0 as isize - 16 * j as isize), mask);
            n += 1;
        }
    }
    let mut idx = [_mm512_setzero_si512(); NB];
    for (j, v) in idx.iter_mut().enumerate() {
        let mut lanes = [0i32; 16];
        for (l, x) in lanes.iter_mut().enumerate() {
            *x = ((oc0 + 16 * j + l) % c) as i32;
        }
        // SAFETY: reads 16 i32 from a 16-element array.
        *v = unsafe { _mm512_loadu_si512(lanes.as_ptr().cast()) };
    }
    let cm = ((1u32 << c) - 1) as __mmask16;
    let q0 = out[0];
    let (mut r, mut x) = (q0 / w, q0 % w);
    for (i, yi) in y.iter().enumerate() {
        let base = r * s * sc * w + x * sc;
        // SAFETY: pixel q0 + i is inside the call's rows, its C anchor values are in the
        // anchor; the stores write only the run lanes, each inside the HR rows (see above).
        unsafe {
            let a = _mm512_maskz_loadu_ps(cm, o.anchor.add((q0 + i) * c));
            let mut b = [_mm_setzero_si128(); NB];
            for j in 0..NB {
                b[j] = to_u8_pixels(_mm512_add_ps(yi[j], _mm512_permutexvar_ps(idx[j], a)));
            }
            for &(j, off, m) in &st[..n] {
                _mm_mask_storeu_epi8(p.wrapping_add(base).wrapping_offset(off).cast(), m, b[j]);
            }
        }
        x += 1;
        if x == w {
            x = 0;
            r += 1;
        }
    }
}

/// `crate::tensor::to_u8_pixel` on 16 lanes: `x = min(max(v, 0), 1) · 255` (vmaxps returns
/// its second operand, 0, for NaN, as `f32::max` does), then `x + U8_ROUND` truncated (the
/// same integer, `tensor::U8_ROUND`); the 16 bytes.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[inline]
fn to_u8_pixels(v: __m512) -> __m128i {
    let x = _mm512_min_ps(_mm512_max_ps(v, _mm512_setzero_ps()), _mm512_set1_ps(1.0));
    let x = _mm512_mul_ps(x, _mm512_set1_ps(255.0));
    let x = _mm512_add_ps(x, _mm512_set1_ps(crate::tensor::U8_ROUND));
    _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(x))
}

/// Epilogue steps 2 and 3 on vectors whose lanes hold the channels `ld` lays out: `ld(params)`
/// returns the per-channel values lane for lane. A ReLU is left to the output's clamp when
/// `clamp_is_relu`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
fn affine_act<const MR: usize, const NB: usize>(
    y: &mut [[__m512; NB]; MR],
    epi: &Epilogue,
    clamp_is_relu: bool,
    ld: impl Fn(&[f32]) -> [__m512; NB],
) {
    let (mult, offset) = (ld(epi.mult), ld(epi.offset));
    // Step 2: a multiply, then an add (two roundings, never fused).
    for yi in y.iter_mut() {
        for j in 0..NB {
            yi[j] = _mm512_add_ps(_mm512_mul_ps(yi[j], mult[j]), offset[j]);
        }
    }
    // Step 3: `if y < 0`, an ordered compare (NaN and -0.0 are not negative).
    let zero = _mm512_setzero_ps();
    let leaky = |y: &mut [[__m512; NB]; MR], slope: [__m512; NB]| {
        for yi in y.iter_mut() {
            for j in 0..NB {
                let neg = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(yi[j], zero);
                yi[j] = _mm512_mask_mul_ps(yi[j], neg, yi[j], slope[j]);
            }
        }
    };
    match epi.act {
        // The requantization's clamp does it (`RawOutput::clamp_is_relu`).
        Activation::Relu if clamp_is_relu => {}
        Activation::None => {}
        // vmaxps returns its second operand when both are zeros or one is NaN, so
        // max(0, y) is exactly `if y < 0 { 0 } else { y }`.
        Activation::Relu => {
            // (Nested loops over the arrays, not `flatten()`, which LLVM left as a loop over
            // the stack copy instead of unrolling it over registers.)
            for yi in y.iter_mut() {
                for yij in yi.iter_mut() {
                    *yij = _mm512_max_ps(zero, *yij);
                }
            }
        }
        Activation::Leaky(s) => leaky(y, [_mm512_set1_ps(*s); NB]),
        Activation::PRelu(s) => leaky(y, ld(s)),
    }
}

/// All pixels of the band for a quad layout of NB lines: 12-pixel tiles, then 8, 4, and the
/// last 1–3 pixels.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn quad_chunk<const NB: usize>(a: &Args) {
    let n = a.n_pix;
    let mut p = 0;
    // SAFETY (all calls): the caller's contract; every tile covers pixels p..p+TILE <= n.
    unsafe {
        while p + 12 <= n {
            quad_tile::<12, NB>(a, p);
            p += 12;
        }
        while p + 8 <= n {
            quad_tile::<8, NB>(a, p);
            p += 8;
        }
        while p + 4 <= n {
            quad_tile::<4, NB>(a, p);
            p += 4;
        }
        match n - p {
            3 => quad_tile::<3, NB>(a, p),
            2 => quad_tile::<2, NB>(a, p),
            1 => quad_tile::<1, NB>(a, p),
            _ => {}
        }
    }
}

/// MR pixels × NB quad lines (4 channels each). The accumulators are summed over each 128-bit
/// lane 4 pixels at a time (`quad_sum`), so the epilogue runs on vectors of 4 pixels × 4
/// channels instead of one pixel's 4 useful lanes in 16.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn quad_tile<const MR: usize, const NB: usize>(a: &Args, p0: usize) {
    let pix = a.walk.pixels::<MR>(p0);
    // SAFETY: forwarded from the caller (plane, weights and output bounds, CPU features).
    unsafe {
        let lo = quad_dot::<MR, NB>(a, a.lo, &pix);
        let hi = (!a.hi.is_null()).then(|| quad_dot::<MR, NB>(a, a.hi, &pix));
        // Groups of 4 pixels (the last one padded with zero accumulators past MR).
        let mut g0 = 0;
        while g0 < MR {
            let np = (MR - g0).min(4);
            let sum = |acc: &[[__m512i; NB]; MR]| {
                let mut s = [[_mm512_setzero_si512(); NB]; 1];
                for j in 0..NB {
                    let at = |i: usize| {
                        if i < np {
                            acc[g0 + i][j]
                        } else {
                            _mm512_setzero_si512()
                        }
                    };
                    s[0][j] = quad_sum(at(0), at(1), at(2), at(3));
                }
                s
            };
            let v = dequant::<1, NB>(sum(&lo), hi.as_ref().map(sum));
            let mut out = [0usize; 4];
            for (i, o) in out.iter_mut().enumerate().take(np) {
                *o = a.walk.out_at(p0 + g0 + i);
            }
            quad_epilogue::<NB>(v[0], np, &out, a);
            g0 += 4;
        }
    }
}

/// The dot products of MR pixels × NB quad lines over all of K (`Args::koffs`), for one plane:
/// one 16-byte broadcast per pixel and step feeds NB `vpdpbusd`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
unsafe fn quad_dot<const MR: usize, const NB: usize>(
    a: &Args,
    plane: *const u8,
    pix: &[usize; MR],
) -> [[__m512i; NB]; MR] {
    let mut acc = [[_mm512_setzero_si512(); NB]; MR];
    // SAFETY: as `avx512vnni_dot_u8s8`: pix[i] + koffs[s] + 16 stays inside the plane, and step
    // s reads lines s·nb..s·nb + NB (NB == nb) of the packed weights, 64-byte aligned.
    unsafe {
        let mut base = [plane; MR];
        for i in 0..MR {
            base[i] = plane.add(pix[i]);
        }
        let mut wl = a.w;
        for &off in a.koffs {
            let mut wv = [_mm512_setzero_si512(); NB];
            for (j, w) in wv.iter_mut().enumerate() {
                *w = _mm512_load_si512(wl.add(j).cast());
            }
            for i in 0..MR {
                let x = _mm512_broadcast_i32x4(_mm_loadu_si128(base[i].add(off).cast()));
                for j in 0..NB {
                    acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], x, wv[j]);
                }
            }
            wl = wl.add(NB);
        }
    }
    acc
}

/// Lane `l` of the 4 × 4 transpose: lane `4p + c` takes lane `4c + p`.
const QUAD_T: [i32; 16] = [0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15];

/// Quad accumulators of 4 pixels (lane `4c + d`: the line's channel c, partial sum over K quads
/// ≡ d mod 4) → one vector, lane `4p + c` = pixel p's channel c. Exact integer adds, so the
/// order of the sum does not change the result.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
fn quad_sum(a: __m512i, b: __m512i, c: __m512i, d: __m512i) -> __m512i {
    // Per 128-bit lane (a channel): [a0+a2, b0+b2, a1+a3, b1+b3], then [c…, d…] likewise.
    let ab = _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
    let cd = _mm512_add_epi32(_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));
    // [a, b, c, d] in the lane of each channel: lane 4c + p.
    let s = _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd));
    // SAFETY: QUAD_T is 16 i32s, read unaligned.
    let t = unsafe { _mm512_loadu_si512(QUAD_T.as_ptr().cast()) };
    _mm512_permutexvar_epi32(t, s)
}

/// Epilogue steps 2–4 for `np` ≤ 4 pixels × NB quad lines, vector j lane `4p + c` = pixel p's
/// channel `4j + c`: the per-channel values are the line's 4, repeated in every 128-bit lane.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
unsafe fn quad_epilogue<const NB: usize>(v: [__m512; NB], np: usize, out: &[usize; 4], a: &Args) {
    // Channels of line j that are real, as a 4-bit mask.
    let m4 = |j: usize| lane_mask(a.out_c, 4 * j) & 0xF;
    // SAFETY: the loads read channels 4j..4j+4 masked to < out_c (inside mult/offset/slopes); the
    // stores write pixel p's real channels only (mask m4 << 4p, base shifted back by 4p), inside
    // the output as asserted by `check_args`.
    unsafe {
        let ld = |s: &[f32]| {
            let mut r = [_mm512_setzero_ps(); NB];
            for (j, r) in r.iter_mut().enumerate() {
                let x = _mm_maskz_loadu_ps(m4(j) as __mmask8, s.as_ptr().add(4 * j));
                *r = _mm512_broadcast_f32x4(x);
            }
            r
        };
        let mut y = [v];
        debug_assert!(
            a.out.residual.is_null(),
            "residuals of quad tiles go through f32"
        );
        affine_act(&mut y, a.epi, a.out.clamp_is_relu(), ld);
        // Pixels past np get an empty mask (the tail tiles of 1–3 pixels).
        store!(&a.out, &y, |_, j: usize| {
            let mut at = [(0usize, 0 as __mmask16); 4];
            for (p, at) in at.iter_mut().enumerate().take(np) {
                *at = (
                    (out[p] + 4 * j).wrapping_sub(4 * p),
                    (m4(j) << (4 * p)) as __mmask16,
                );
            }
            at
        });
    }
}

/// Step 4's constants, broadcast once per tile.
#[derive(Clone, Copy)]
struct Requant {
    scale: __m512,
    zero: __m512,
    /// zero ≠ 0: `t - 0.0` is `t` but for −0.0, which ends as 0 either way.
    shift: bool,
}

impl Requant {
    /// `qmax` is the store's: 255 or 65535, which its unsigned saturating down-convert
    /// (`vpmovusdb` / `vpmovusdw`) applies.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    fn new(scale: f32, zero: f32, _qmax: f32) -> Requant {
        Requant {
            scale: _mm512_set1_ps(scale),
            zero: _mm512_set1_ps(zero),
            shift: zero != 0.0,
        }
    }

    /// `((y * scale).round_ties_even() - zero).max(0.0)` cast to i32; the store's unsigned
    /// saturation then clamps at qmax: an integer-valued q in 0..2³¹ converts exactly and
    /// saturates to min(q, qmax), and q ≥ 2³¹ (+∞ included) converts to 0x8000_0000, which
    /// saturates to qmax as well. `vmaxps(q, 0)` returns its second operand for NaN, so NaN
    /// ends as 0 like the scalar cast. (The clamp at qmax and the subtraction of a zero of 0
    /// were two of a 16-channel pixel's ~14 epilogue ops.)
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    fn apply(&self, y: __m512) -> __m512i {
        let t = _mm512_mul_ps(y, self.scale);
        if !self.shift {
            // Zero 0: max(round(t), 0) = round(max(t, 0)) (rounding is monotone and keeps 0),
            // and the unsigned conversion rounds half to even itself (MXCSR's default, as
            // `vcvtps2dq` below); values ≥ 2³² (+∞) convert to 0xFFFF_FFFF, which saturates
            // to qmax. One op less than the path below.
            return _mm512_cvtps_epu32(_mm512_max_ps(t, _mm512_setzero_ps()));
        }
        let q = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(t);
        let q = _mm512_sub_ps(q, self.zero);
        _mm512_cvtps_epi32(_mm512_max_ps(q, _mm512_setzero_ps()))
    }
}
