//! The specification: a direct convolution in plain Rust, for every geometry (any stride,
//! dilation, padding, groups). Every SIMD path must equal it bit for bit.
//!
//! Accumulation is exact in i32: |acc| ≤ 255·127·K with K ≤ [`super::pack::MAX_K`] = 66,000
//! (asserted when the weights are packed), for the u8 path and for each byte slice of the u16
//! path (x = hi·256 + lo; `acc_lo` and `acc_hi` accumulate separately).

use std::ops::Range;

use super::epilogue::{affine_act, dequant_u8, dequant_u16};
use super::{ConvGeom, Epilogue, Output, PackedConv, Src};

/// Σ_c x[c]·w[c] over one tap's channels.
#[inline]
fn dot<T: Copy>(x: &[T], w: &[i8], byte: impl Fn(T) -> i32) -> i32 {
    x.iter().zip(w).map(|(&x, &w)| byte(x) * w as i32).sum()
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
    let out_w = g.out_w();
    let ops = out.pixel_stride();
    let icpg = g.in_c / g.groups;
    let ocpg = g.out_c / g.groups;
    let k = g.kh * g.kw * icpg;
    for oy in rows.clone() {
        for ox in 0..out_w {
            let out_base = ((oy - rows.start) * out_w + ox) * ops;
            for oc in 0..g.out_c {
                let ic0 = (oc / ocpg) * icpg;
                let wk = &w.scalar[oc * k..(oc + 1) * k];
                // acc_lo is the whole accumulator for u8 input; acc_hi only exists for u16.
                let (mut acc_lo, mut acc_hi) = (0i32, 0i32);
                for ky in 0..g.kh {
                    let iy = (oy * g.stride + ky * g.dilation) as isize - g.pad_top as isize;
                    for kx in 0..g.kw {
                        let ix = (ox * g.stride + kx * g.dilation) as isize - g.pad_left as isize;
                        let wt = &wk[(ky * g.kw + kx) * icpg..][..icpg];
                        let inside =
                            iy >= 0 && (iy as usize) < g.in_h && ix >= 0 && (ix as usize) < g.in_w;
                        let at = if inside {
                            (iy as usize * g.in_w + ix as usize) * in_ps + ic0
                        } else {
                            0
                        };
                        match src {
                            Src::U8 { data, pad } => {
                                acc_lo += if inside {
                                    dot(&data[at..at + icpg], wt, |x| x as i32)
                                } else {
                                    wt.iter().map(|&w| pad as i32 * w as i32).sum::<i32>()
                                };
                            }
                            Src::U16 { data, pad } => {
                                if inside {
                                    let x = &data[at..at + icpg];
                                    acc_lo += dot(x, wt, |x| (x & 0xff) as i32);
                                    acc_hi += dot(x, wt, |x| (x >> 8) as i32);
                                } else {
                                    let (pl, ph) = ((pad & 0xff) as i32, (pad >> 8) as i32);
                                    acc_lo += wt.iter().map(|&w| pl * w as i32).sum::<i32>();
                                    acc_hi += wt.iter().map(|&w| ph * w as i32).sum::<i32>();
                                }
                            }
                        }
                    }
                }
                let v = match src {
                    Src::U8 { .. } => dequant_u8(acc_lo),
                    Src::U16 { .. } => dequant_u16(acc_hi, acc_lo),
                };
                out.store(out_base + oc, affine_act(v, oc, epi));
            }
        }
    }
}
