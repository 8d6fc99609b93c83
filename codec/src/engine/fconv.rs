//! The float conv kernel (issue 16 item 4): FP32 mode and float partitions.
//!
//! Direct convolution, register-blocked the way oneDNN's and XNNPACK's f32
//! convs are: 4 output pixels × up to 64 output channels (4 vectors of 16) of
//! accumulators stay in registers while the taps and input channels stream
//! past; each step broadcasts one input value per pixel and fuses it with a
//! 16-wide weight vector (`mul_add`, one FMA). Input rows are zero-padded
//! left and right once per call, so the inner loop has no bounds tests.
//!
//! Numerics are defined once: every output element is bias + Σ over
//! (ky, kx, i) in that order of one fused multiply-add each, whatever the
//! CPU level (the AVX-512 and AVX2 builds are the same source with FMA
//! enabled; the baseline build's `mul_add` is the same fused operation) and
//! whatever rows a band holds, so bands equal the whole frame bit for bit.
use std::ops::Range;

use crate::model::{Activation, Conv};
use crate::tensor::{Tensor, par_rows};

const LANES: usize = 16;
/// Output pixels per register block.
const PIX: usize = 4;
/// Output-channel vectors per register block (64 channels).
const VECS: usize = 4;
/// Most taps (kh·kw) a kernel may have: the importer's 15×15 limit.
const MAX_TAPS: usize = 225;

/// Weights re-laid out as [group][ky][kx][i][oc padded to 16], bias padded.
#[derive(Clone, Debug)]
pub struct Packed {
    pub conv: Conv,
    w: Vec<f32>,
    bias: Vec<f32>,
    /// Output channels per group, padded to a multiple of [`LANES`].
    ocp: usize,
}

impl Packed {
    pub fn new(conv: &Conv, weights: &[f32]) -> Packed {
        let (g, kh, kw) = (conv.groups, conv.kh, conv.kw);
        let (icg, ocg) = (conv.in_c / g, conv.out_c / g);
        let ocp = ocg.div_ceil(LANES) * LANES;
        let mut w = vec![0f32; g * kh * kw * icg * ocp];
        let mut bias = vec![0f32; g * ocp];
        for gi in 0..g {
            for o in 0..ocg {
                bias[gi * ocp + o] = conv.bias[gi * ocg + o];
                for i in 0..icg {
                    for y in 0..kh {
                        for x in 0..kw {
                            let src = (((gi * ocg + o) * icg + i) * kh + y) * kw + x;
                            let dst = (((gi * kh + y) * kw + x) * icg + i) * ocp + o;
                            w[dst] = weights[src];
                        }
                    }
                }
            }
        }
        Packed {
            // The geometry only: the weights live in `w`.
            conv: Conv {
                weights: Vec::new(),
                bias: Vec::new(),
                ..conv.clone()
            },
            w,
            bias,
            ocp,
        }
    }

    /// Output width for an input of width `w`.
    pub fn out_w(&self, w: usize) -> usize {
        let c = &self.conv;
        let (span, win) = (w + c.pads[1] + c.pads[3], c.dilation * (c.kw - 1) + 1);
        if span < win {
            0
        } else {
            (span - win) / c.stride + 1
        }
    }

    /// Output rows `out_rows` of the conv on a map of `frame_h` rows, of which
    /// `x` holds rows `x_row0..x_row0 + x.h` (all the rows those outputs read).
    pub fn run_rows(
        &self,
        x: &Tensor,
        x_row0: usize,
        frame_h: usize,
        out_rows: Range<usize>,
        act: Option<&Activation>,
        threads: usize,
    ) -> Tensor {
        let c = &self.conv;
        let ow = self.out_w(x.w);
        let oh = out_rows.len();
        // Zero-padded rows: the inner loop reads columns without tests.
        let wp = x.w + c.pads[1] + c.pads[3];
        let mut xp = vec![0f32; x.h * wp * x.c];
        for y in 0..x.h {
            xp[(y * wp + c.pads[1]) * x.c..][..x.w * x.c]
                .copy_from_slice(&x.data[y * x.w * x.c..(y + 1) * x.w * x.c]);
        }
        let mut out = Tensor::zeros(oh, ow, c.out_c);
        let geo = Geo {
            xp: &xp,
            wp,
            in_c: x.c,
            x_row0,
            frame_h,
            ow,
            row0: out_rows.start,
        };
        par_rows(&mut out.data, oh, ow * c.out_c, threads, |rows, chunk| {
            run(self, &geo, rows, chunk, act);
        });
        out
    }
}

/// Where the padded input is and what to produce.
struct Geo<'a> {
    xp: &'a [f32],
    wp: usize,
    in_c: usize,
    x_row0: usize,
    frame_h: usize,
    ow: usize,
    row0: usize,
}

fn run(p: &Packed, g: &Geo, rows: Range<usize>, out: &mut [f32], act: Option<&Activation>) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the features were just detected.
            return unsafe { run_avx512(p, g, rows, out, act) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: as above.
            return unsafe { run_avx2(p, g, rows, out, act) };
        }
    }
    body::<{ Level::Scalar as u8 }>(p, g, rows, out, act)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn run_avx512(
    p: &Packed,
    g: &Geo,
    rows: Range<usize>,
    out: &mut [f32],
    act: Option<&Activation>,
) {
    body::<{ Level::Avx512 as u8 }>(p, g, rows, out, act)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_avx2(
    p: &Packed,
    g: &Geo,
    rows: Range<usize>,
    out: &mut [f32],
    act: Option<&Activation>,
) {
    body::<{ Level::Avx2 as u8 }>(p, g, rows, out, act)
}

/// Which build of the accumulate loop (a const parameter, so each build is
/// its own monomorphised copy inlined into its `target_feature` function).
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Level {
    Scalar,
    Avx512,
    Avx2,
}

#[inline(always)]
fn body<const L: u8>(
    p: &Packed,
    g: &Geo,
    rows: Range<usize>,
    out: &mut [f32],
    act: Option<&Activation>,
) {
    let c = &p.conv;
    let groups = c.groups;
    let ocp = p.ocp;
    let row_len = g.ow * c.out_c;
    for (ry, y) in rows.enumerate() {
        let y = y + g.row0;
        let orow = &mut out[ry * row_len..(ry + 1) * row_len];
        // Taps whose input row is inside the frame (the others are padding).
        let taps: Vec<(usize, usize)> = (0..c.kh)
            .filter_map(|ky| {
                let iy = (y * c.stride + ky * c.dilation) as isize - c.pads[0] as isize;
                (iy >= 0 && (iy as usize) < g.frame_h).then(|| (ky, iy as usize - g.x_row0))
            })
            .collect();
        for gi in 0..groups {
            for ob in (0..ocp).step_by(LANES * VECS) {
                let nv = ((ocp - ob) / LANES).min(VECS);
                // Per tap (ky, kx): where its input channels start for output
                // pixel 0 in the padded rows, and where its weights start.
                let icg = c.in_c / groups;
                let row = g.wp * g.in_c;
                let tap_offs: Vec<(usize, usize)> = taps
                    .iter()
                    .flat_map(|&(ky, ly)| {
                        (0..c.kw).map(move |kx| {
                            (
                                ly * row + kx * c.dilation * g.in_c + gi * icg,
                                ((gi * c.kh + ky) * c.kw + kx) * icg * ocp + ob,
                            )
                        })
                    })
                    .collect();
                let mut xo = 0;
                while xo < g.ow {
                    // Narrow outputs (≤ 32 channels) take 8 pixels a block, so
                    // enough independent accumulators hide the FMA latency.
                    let np = match g.ow - xo {
                        r if nv <= 2 && r >= 2 * PIX => 2 * PIX,
                        r if r >= PIX => PIX,
                        _ => 1,
                    };
                    let b = Block {
                        gi,
                        ob,
                        xo,
                        taps: &tap_offs,
                    };
                    // Constant block sizes, so the accumulators stay in registers.
                    match (np, nv) {
                        (8, 2) => block::<L, 8, 2>(p, g, &b, orow),
                        (8, _) => block::<L, 8, 1>(p, g, &b, orow),
                        (PIX, 4) => block::<L, PIX, 4>(p, g, &b, orow),
                        (PIX, 3) => block::<L, PIX, 3>(p, g, &b, orow),
                        (PIX, 2) => block::<L, PIX, 2>(p, g, &b, orow),
                        (PIX, _) => block::<L, PIX, 1>(p, g, &b, orow),
                        (_, 4) => block::<L, 1, 4>(p, g, &b, orow),
                        (_, 3) => block::<L, 1, 3>(p, g, &b, orow),
                        (_, 2) => block::<L, 1, 2>(p, g, &b, orow),
                        _ => block::<L, 1, 1>(p, g, &b, orow),
                    }
                    xo += np;
                }
            }
        }
        // The fused activation, once over the finished row (vectorises).
        if let Some(a) = act {
            for px in orow.chunks_exact_mut(c.out_c) {
                for (o, v) in px.iter_mut().enumerate() {
                    *v = super::ops::activate(a, *v, o);
                }
            }
        }
    }
}

/// Which register block: group, first padded output channel, first pixel.
struct Block<'a> {
    gi: usize,
    ob: usize,
    xo: usize,
    /// Per tap: input offset for pixel 0, weight offset.
    taps: &'a [(usize, usize)],
}

#[inline(always)]
fn block<const L: u8, const P: usize, const V: usize>(
    p: &Packed,
    g: &Geo,
    b: &Block,
    orow: &mut [f32],
) {
    let c = &p.conv;
    let (icg, ocg, ocp) = (c.in_c / c.groups, c.out_c / c.groups, p.ocp);
    let mut acc = [[[0f32; LANES]; V]; P];
    for a in acc.iter_mut() {
        for (v, av) in a.iter_mut().enumerate() {
            av.copy_from_slice(&p.bias[b.gi * ocp + b.ob + v * LANES..][..LANES]);
        }
    }
    let cstep = c.stride * g.in_c;
    // Shift the taps to this block's first pixel; check every read once here.
    let x0 = b.xo * cstep;
    let mut taps = [(0usize, 0usize); MAX_TAPS];
    let n_taps = b.taps.len();
    assert!(n_taps <= MAX_TAPS, "kernel of more than {MAX_TAPS} taps");
    for (t, &(xo, wo)) in taps.iter_mut().zip(b.taps) {
        let xo = xo + x0;
        assert!(
            xo + (P - 1) * cstep + icg <= g.xp.len()
                && wo + (icg - 1) * ocp + V * LANES <= p.w.len(),
            "tap reads outside the padded rows or the weights"
        );
        *t = (xo, wo);
    }
    let taps = &taps[..n_taps];
    #[cfg(target_arch = "x86_64")]
    if L == Level::Avx512 as u8 {
        // SAFETY: this build runs only where AVX-512F and FMA were detected
        // (`run`); every tap's reads were bounds-checked above.
        unsafe { fma_avx512::<P, V>(&mut acc, g.xp, &p.w, taps, icg, cstep, ocp) };
    } else if L == Level::Avx2 as u8 {
        // SAFETY: as above, for AVX2 and FMA.
        unsafe { fma_avx2::<P, V>(&mut acc, g.xp, &p.w, taps, icg, cstep, ocp) };
    }
    if L == Level::Scalar as u8 {
        for &(xo, wo) in taps {
            for i in 0..icg {
                let wrow = &p.w[wo + i * ocp..][..V * LANES];
                for (pi, a) in acc.iter_mut().enumerate() {
                    let xv = g.xp[xo + pi * cstep + i];
                    for (v, av) in a.iter_mut().enumerate() {
                        for l in 0..LANES {
                            av[l] = xv.mul_add(wrow[v * LANES + l], av[l]);
                        }
                    }
                }
            }
        }
    }
    for (pi, a) in acc.iter().enumerate() {
        let px = &mut orow[(b.xo + pi) * c.out_c + b.gi * ocg..][..ocg];
        for (v, av) in a.iter().enumerate() {
            let o0 = b.ob + v * LANES;
            if o0 >= ocg {
                break;
            }
            let n = (ocg - o0).min(LANES);
            px[o0..o0 + n].copy_from_slice(&av[..n]);
        }
    }
}

/// `acc[p][v] += x[xo + p·cstep + i] · w[wo + i·ocp + v·16 ..]` over every
/// tap (xo, wo) and input channel i, fused, with the accumulators in zmm
/// registers for the whole window. The same per-element sequence as the
/// scalar loop.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
#[inline]
unsafe fn fma_avx512<const P: usize, const V: usize>(
    acc: &mut [[[f32; LANES]; V]; P],
    x: &[f32],
    w: &[f32],
    taps: &[(usize, usize)],
    icg: usize,
    cstep: usize,
    ocp: usize,
) {
    use std::arch::x86_64::*;
    // SAFETY (whole body): `block` checked every tap's reads against `x` and `w`.
    unsafe {
        let mut r = [[_mm512_setzero_ps(); V]; P];
        for (rp, ap) in r.iter_mut().zip(acc.iter()) {
            for (rv, av) in rp.iter_mut().zip(ap.iter()) {
                *rv = _mm512_loadu_ps(av.as_ptr());
            }
        }
        for &(xo, wo) in taps {
            let (xs, ws) = (x.as_ptr().add(xo), w.as_ptr().add(wo));
            for i in 0..icg {
                let wp = ws.add(i * ocp);
                let mut wv = [_mm512_setzero_ps(); V];
                for (v, q) in wv.iter_mut().enumerate() {
                    *q = _mm512_loadu_ps(wp.add(v * LANES));
                }
                for (pi, rp) in r.iter_mut().enumerate() {
                    let xv = _mm512_set1_ps(*xs.add(pi * cstep + i));
                    for (rv, &q) in rp.iter_mut().zip(wv.iter()) {
                        *rv = _mm512_fmadd_ps(xv, q, *rv);
                    }
                }
            }
        }
        for (rp, ap) in r.iter().zip(acc.iter_mut()) {
            for (rv, av) in rp.iter().zip(ap.iter_mut()) {
                _mm512_storeu_ps(av.as_mut_ptr(), *rv);
            }
        }
    }
}

/// [`fma_avx512`] in two ymm halves per 16 lanes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn fma_avx2<const P: usize, const V: usize>(
    acc: &mut [[[f32; LANES]; V]; P],
    x: &[f32],
    w: &[f32],
    taps: &[(usize, usize)],
    icg: usize,
    cstep: usize,
    ocp: usize,
) {
    use std::arch::x86_64::*;
    // SAFETY: as in `fma_avx512`, 8 lanes at a time.
    unsafe {
        for h in 0..2 {
            let mut r = [[_mm256_setzero_ps(); V]; P];
            for (rp, ap) in r.iter_mut().zip(acc.iter()) {
                for (rv, av) in rp.iter_mut().zip(ap.iter()) {
                    *rv = _mm256_loadu_ps(av.as_ptr().add(h * 8));
                }
            }
            for &(xo, wo) in taps {
                let (xs, ws) = (x.as_ptr().add(xo), w.as_ptr().add(wo + h * 8));
                for i in 0..icg {
                    let wp = ws.add(i * ocp);
                    let mut wv = [_mm256_setzero_ps(); V];
                    for (v, q) in wv.iter_mut().enumerate() {
                        *q = _mm256_loadu_ps(wp.add(v * LANES));
                    }
                    for (pi, rp) in r.iter_mut().enumerate() {
                        let xv = _mm256_set1_ps(*xs.add(pi * cstep + i));
                        for (rv, &q) in rp.iter_mut().zip(wv.iter()) {
                            *rv = _mm256_fmadd_ps(xv, q, *rv);
                        }
                    }
                }
            }
            for (rp, ap) in r.iter().zip(acc.iter_mut()) {
                for (rv, av) in rp.iter().zip(ap.iter_mut()) {
                    _mm256_storeu_ps(av.as_mut_ptr().add(h * 8), *rv);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(in_c: usize, out_c: usize, k: usize, stride: usize, groups: usize, dil: usize) -> Conv {
        let n = out_c * (in_c / groups) * k * k;
        let pad = dil * (k - 1) / 2;
        Conv {
            in_c,
            out_c,
            kh: k,
            kw: k,
            stride,
            dilation: dil,
            pads: [pad, pad, dil * (k - 1) - pad, dil * (k - 1) - pad],
            groups,
            weights: (0..n)
                .map(|i| ((i * 7919) % 97) as f32 / 97.0 - 0.5)
                .collect(),
            bias: (0..out_c).map(|i| i as f32 * 0.01 - 0.1).collect(),
        }
    }

    /// Every SIMD build equals the scalar build bit for bit (fused
    /// multiply-adds in the same order), on shapes that exercise the
    /// channel tails, groups, strides, dilation and pixel tails.
    #[test]
    fn simd_builds_equal_the_scalar_build() {
        for &(ic, oc, k, s, g, d) in &[
            (3, 64, 3, 1, 1, 1),
            (16, 12, 3, 1, 1, 1),
            (64, 80, 1, 1, 1, 1),
            (8, 8, 3, 1, 4, 1),
            (4, 4, 3, 2, 1, 1),
            (6, 3, 5, 1, 1, 2),
        ] {
            let c = conv(ic, oc, k, s, g, d);
            let p = Packed::new(&c, &c.weights);
            let (h, w) = (7, 13);
            let x = Tensor {
                h,
                w,
                c: ic,
                data: (0..h * w * ic)
                    .map(|i| ((i * 31) % 53) as f32 / 53.0)
                    .collect(),
            };
            let oh = (h + c.pads[0] + c.pads[2] - d * (k - 1) - 1) / s + 1;
            let ow = p.out_w(w);
            let wp = w + c.pads[1] + c.pads[3];
            let mut xp = vec![0f32; h * wp * ic];
            for y in 0..h {
                xp[(y * wp + c.pads[1]) * ic..][..w * ic]
                    .copy_from_slice(&x.data[y * w * ic..(y + 1) * w * ic]);
            }
            let geo = Geo {
                xp: &xp,
                wp,
                in_c: ic,
                x_row0: 0,
                frame_h: h,
                ow,
                row0: 0,
            };
            let act = Activation::Relu;
            let mut want = vec![0f32; oh * ow * oc];
            body::<{ Level::Scalar as u8 }>(&p, &geo, 0..oh, &mut want, Some(&act));
            let got = p.run_rows(&x, 0, h, 0..oh, Some(&act), 1);
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                let mut avx2 = vec![0f32; oh * ow * oc];
                // SAFETY: AVX2 and FMA were just detected.
                unsafe { run_avx2(&p, &geo, 0..oh, &mut avx2, Some(&act)) };
                assert!(
                    avx2.iter()
                        .zip(&want)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "avx2 {ic}->{oc}"
                );
            }
            assert!(
                got.data
                    .iter()
                    .zip(&want)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{ic}->{oc} k{k} s{s} g{g} d{d}"
            );
            // And the definition, within rounding: bias + Σ x·w.
            let mut max_err = 0f32;
            for y in 0..oh {
                for xo in 0..ow {
                    for o in 0..oc {
                        let (icg, ocg) = (ic / g, oc / g);
                        let gi = o / ocg;
                        let mut v = c.bias[o] as f64;
                        for ky in 0..k {
                            for kx in 0..k {
                                let iy = (y * s + ky * d) as isize - c.pads[0] as isize;
                                let ix = (xo * s + kx * d) as isize - c.pads[1] as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    continue;
                                }
                                for i in 0..icg {
                                    let xv =
                                        x.data[(iy as usize * w + ix as usize) * ic + gi * icg + i];
                                    v += xv as f64
                                        * c.weights[((o * icg + i) * k + ky) * k + kx] as f64;
                                }
                            }
                        }
                        let e = (v.max(0.0) as f32 - got.data[(y * ow + xo) * oc + o]).abs();
                        max_err = max_err.max(e);
                    }
                }
            }
            assert!(max_err < 1e-4, "{ic}->{oc}: {max_err}");
        }
    }
}
