//! Float implementations of the layer ops.
//!
//! Which ops run where (issue "quantized engine"): convolutions — >99 % of the
//! MACs — run on the integer units (`crate::units`) in the quantized modes. The
//! remaining ops run here on dequantized f32 values: element-wise add and the
//! channel gate (one op per element: quantizing them would only add a rounding),
//! split/concat (pure data movement), the frame-global mean/std and the sigmoid
//! of IMDN's attention (per-channel vectors of 64 values), and depth-to-space.
//! Activations that follow a conv are fused into the integer epilogue.
use crate::model::{Activation, Conv};
use crate::tensor::{Tensor, par_rows};

/// A float conv with weights re-laid out as [group][kh][kw][ic/g][oc/g] so the
/// inner loop is an axpy over output channels (vectorised by the compiler).
#[derive(Clone, Debug)]
pub struct FloatConv {
    pub conv: Conv,
    w_t: Vec<f32>,
}

impl FloatConv {
    pub fn new(conv: &Conv, weights: &[f32]) -> FloatConv {
        let (g, kh, kw) = (conv.groups, conv.kh, conv.kw);
        let (icg, ocg) = (conv.in_c / g, conv.out_c / g);
        let mut w_t = vec![0f32; weights.len()];
        for gi in 0..g {
            for o in 0..ocg {
                for i in 0..icg {
                    for y in 0..kh {
                        for x in 0..kw {
                            let src = (((gi * ocg + o) * icg + i) * kh + y) * kw + x;
                            let dst = ((((gi * kh + y) * kw + x) * icg + i) * ocg) + o;
                            w_t[dst] = weights[src];
                        }
                    }
                }
            }
        }
        FloatConv {
            conv: Conv {
                weights: weights.to_vec(),
                ..conv.clone()
            },
            w_t,
        }
    }

    pub fn run(&self, x: &Tensor, act: Option<&Activation>, threads: usize) -> Tensor {
        let c = &self.conv;
        let (h, w) = (x.h, x.w);
        let mut out = Tensor::zeros(h, w, c.out_c);
        let (g, icg, ocg) = (c.groups, c.in_c / c.groups, c.out_c / c.groups);
        let row_len = w * c.out_c;
        par_rows(&mut out.data, h, row_len, threads, |rows, chunk| {
            for (ry, y) in rows.enumerate() {
                for xo in 0..w {
                    let acc = &mut chunk[(ry * w + xo) * c.out_c..][..c.out_c];
                    acc.copy_from_slice(&c.bias);
                    for ky in 0..c.kh {
                        let iy = (y + ky * c.dilation) as isize - c.pads[0] as isize;
                        if iy < 0 || iy >= h as isize {
                            continue;
                        }
                        for kx in 0..c.kw {
                            let ix = (xo + kx * c.dilation) as isize - c.pads[1] as isize;
                            if ix < 0 || ix >= w as isize {
                                continue;
                            }
                            let px = &x.data[(iy as usize * w + ix as usize) * x.c..][..x.c];
                            for gi in 0..g {
                                let wbase = ((gi * c.kh + ky) * c.kw + kx) * icg * ocg;
                                let acc_g = &mut acc[gi * ocg..][..ocg];
                                for (i, &v) in px[gi * icg..][..icg].iter().enumerate() {
                                    let wr = &self.w_t[wbase + i * ocg..][..ocg];
                                    for (a, &wv) in acc_g.iter_mut().zip(wr) {
                                        *a += v * wv;
                                    }
                                }
                            }
                        }
                    }
                    if let Some(a) = act {
                        for (o, v) in acc.iter_mut().enumerate() {
                            *v = activate(a, *v, o);
                        }
                    }
                }
            }
        });
        out
    }
}

#[inline]
pub fn activate(a: &Activation, v: f32, ch: usize) -> f32 {
    match a {
        Activation::Relu => {
            if v < 0.0 {
                0.0
            } else {
                v
            }
        }
        Activation::Leaky(s) => {
            if v < 0.0 {
                v * s
            } else {
                v
            }
        }
        Activation::PRelu(s) => {
            if v < 0.0 {
                v * s[ch]
            } else {
                v
            }
        }
        Activation::Sigmoid => 1.0 / (1.0 + (-v).exp()),
    }
}

pub fn act(x: &Tensor, a: &Activation) -> Tensor {
    let mut out = x.clone();
    for (i, v) in out.data.iter_mut().enumerate() {
        *v = activate(a, *v, i % x.c);
    }
    out
}

pub fn add(a: &Tensor, b: &Tensor) -> Tensor {
    let mut out = a.clone();
    for (o, &v) in out.data.iter_mut().zip(&b.data) {
        *o += v;
    }
    out
}

/// x[y, x, c] · g[c]
pub fn mul_channel(x: &Tensor, g: &Tensor) -> Tensor {
    let mut out = x.clone();
    for px in out.data.chunks_exact_mut(x.c) {
        for (v, &s) in px.iter_mut().zip(&g.data) {
            *v *= s;
        }
    }
    out
}

pub fn concat(parts: &[&Tensor]) -> Tensor {
    let (h, w) = (parts[0].h, parts[0].w);
    let c: usize = parts.iter().map(|t| t.c).sum();
    let mut out = Tensor::zeros(h, w, c);
    for p in 0..h * w {
        let mut off = 0;
        for t in parts {
            out.data[p * c + off..][..t.c].copy_from_slice(&t.data[p * t.c..][..t.c]);
            off += t.c;
        }
    }
    out
}

pub fn split(x: &Tensor, sizes: &[usize]) -> Vec<Tensor> {
    let mut off = 0;
    sizes
        .iter()
        .map(|&s| {
            let mut t = Tensor::zeros(x.h, x.w, s);
            for p in 0..x.h * x.w {
                t.data[p * s..][..s].copy_from_slice(&x.data[p * x.c + off..][..s]);
            }
            off += s;
            t
        })
        .collect()
}

/// Per-channel sums in f64 (frame-global reductions are accumulated in double
/// so the result does not depend on the frame size's rounding).
fn channel_sums(x: &Tensor, f: impl Fn(usize, f32) -> f64) -> Vec<f64> {
    let mut s = vec![0f64; x.c];
    for px in x.data.chunks_exact(x.c) {
        for (c, &v) in px.iter().enumerate() {
            s[c] += f(c, v);
        }
    }
    s
}

pub fn global_avg_pool(x: &Tensor) -> Tensor {
    let n = (x.h * x.w) as f64;
    let s = channel_sums(x, |_, v| v as f64);
    Tensor {
        h: 1,
        w: 1,
        c: x.c,
        data: s.iter().map(|v| (v / n) as f32).collect(),
    }
}

/// Population standard deviation per channel (IMDN's contrast), two-pass.
pub fn global_std(x: &Tensor) -> Tensor {
    let n = (x.h * x.w) as f64;
    let mean: Vec<f64> = channel_sums(x, |_, v| v as f64)
        .iter()
        .map(|v| v / n)
        .collect();
    let var = channel_sums(x, |c, v| {
        let d = v as f64 - mean[c];
        d * d
    });
    Tensor {
        h: 1,
        w: 1,
        c: x.c,
        data: var.iter().map(|v| (v / n).sqrt() as f32).collect(),
    }
}

/// Depth-to-space, in the memory-aware formulation of §4.3: instead of the
/// 6-D reshape/permute (1×c×s×s×h×w → 1×c×h×s×w×s), each output channel is
/// extracted on its own and handled as a ≤4-D block s×s×h×w → h×s×w×s, then
/// stacked. With our HWC layout the s×s sub-pixels of one output channel are
/// strided by 1 (CRD: channel = c·s² + i·s + j) or by c_out (DCR).
pub fn depth_to_space(x: &Tensor, block: usize, crd: bool) -> Tensor {
    let s = block;
    let co = x.c / (s * s);
    let (oh, ow) = (x.h * s, x.w * s);
    let mut out = Tensor::zeros(oh, ow, co);
    // In output order (y, i, x, j, c), so the writes are sequential: pixel
    // (y·s + i, x·s + j) takes channel c of sub-pixel (i, j) from input pixel (y, x).
    let mut dst = out.data.chunks_exact_mut(co);
    for y in 0..x.h {
        for i in 0..s {
            for px in x.data[y * x.w * x.c..(y + 1) * x.w * x.c].chunks_exact(x.c) {
                for j in 0..s {
                    let o = dst.next().expect("sized oh·ow·co");
                    if crd {
                        for (c, v) in o.iter_mut().enumerate() {
                            *v = px[c * s * s + i * s + j];
                        }
                    } else {
                        o.copy_from_slice(&px[(i * s + j) * co..][..co]);
                    }
                }
            }
        }
    }
    out
}

/// The row-local float ops (everything but convs and frame-global reductions)
/// on their inputs, in layer order: one dispatch for the whole-frame engine and
/// both band paths. None for the ops it does not cover.
pub fn row_local(op: &crate::model::Op, xs: &[&Tensor]) -> Option<Vec<Tensor>> {
    use crate::model::Op;
    Some(match op {
        Op::Act(a) => vec![act(xs[0], a)],
        Op::Add => vec![add(xs[0], xs[1])],
        Op::MulChannel => vec![mul_channel(xs[0], xs[1])],
        Op::Concat => vec![concat(xs)],
        Op::Split(sizes) => split(xs[0], sizes),
        Op::DepthToSpace { block, crd } => vec![depth_to_space(xs[0], *block, *crd)],
        Op::ShuffleAnchor { block } => vec![shuffle_anchor(xs[0], xs[1], *block)],
        Op::Conv(_) | Op::GlobalAvgPool | Op::GlobalStd => return None,
    })
}

/// [`Op::ShuffleAnchor`](crate::model::Op::ShuffleAnchor): DCR depth-to-space
/// of `x + concat(a × s²)`, in one pass.
pub fn shuffle_anchor(x: &Tensor, a: &Tensor, s: usize) -> Tensor {
    let co = a.c;
    debug_assert_eq!((x.h, x.w, x.c), (a.h, a.w, co * s * s));
    if co == 3 {
        // RGB, the only case real models have: fixed-size pixels, so the
        // per-pixel loops unroll; and written into spare capacity, because
        // zeroing this HR-sized band first cost as much as filling it.
        let n = x.h * s * x.w * s * 3;
        let mut data: Vec<f32> = Vec::with_capacity(n);
        let mut dst = data.spare_capacity_mut()[..n].chunks_exact_mut(3 * s);
        for y in 0..x.h {
            let xr = &x.data[y * x.w * x.c..(y + 1) * x.w * x.c];
            let ar = &a.data[y * a.w * 3..(y + 1) * a.w * 3];
            for i in 0..s {
                for (px, an) in xr.chunks_exact(x.c).zip(ar.chunks_exact(3)) {
                    let o = dst.next().expect("sized");
                    let sub = &px[i * s * 3..(i + 1) * s * 3];
                    for (o, p) in o.chunks_exact_mut(3).zip(sub.chunks_exact(3)) {
                        o[0].write(p[0] + an[0]);
                        o[1].write(p[1] + an[1]);
                        o[2].write(p[2] + an[2]);
                    }
                }
            }
        }
        assert!(dst.next().is_none(), "every output element written");
        // SAFETY: the loops above wrote all n elements (x.h·s rows of x.w·s
        // pixels of 3; the iterator is exhausted, checked).
        unsafe { data.set_len(n) };
        return Tensor {
            h: x.h * s,
            w: x.w * s,
            c: 3,
            data,
        };
    }
    let mut out = Tensor::zeros(x.h * s, x.w * s, co);
    let mut dst = out.data.chunks_exact_mut(co);
    for y in 0..x.h {
        let xr = &x.data[y * x.w * x.c..(y + 1) * x.w * x.c];
        let ar = &a.data[y * a.w * co..(y + 1) * a.w * co];
        for i in 0..s {
            for (px, an) in xr.chunks_exact(x.c).zip(ar.chunks_exact(co)) {
                for j in 0..s {
                    let o = dst.next().expect("sized");
                    for ((v, &p), &b) in o.iter_mut().zip(&px[(i * s + j) * co..]).zip(an) {
                        *v = p + b;
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(h: usize, w: usize, c: usize) -> Tensor {
        Tensor {
            h,
            w,
            c,
            data: (0..h * w * c)
                .map(|i| ((i * 37) % 23) as f32 - 11.0)
                .collect(),
        }
    }

    #[test]
    fn shuffle_anchor_is_concat_add_depth_to_space() {
        for s in [2, 3, 4] {
            let x = t(5, 3, 3 * s * s);
            let mut a = t(5, 3, 3);
            a.data.iter_mut().for_each(|v| *v = *v * 0.37 + 0.1);
            let copies: Vec<&Tensor> = (0..s * s).map(|_| &a).collect();
            let want = depth_to_space(&add(&x, &concat(&copies)), s, false);
            assert_eq!(shuffle_anchor(&x, &a, s), want, "x{s}");
        }
    }

    #[test]
    fn depth_to_space_matches_6d_definition() {
        // Reference: the 6-D ONNX definition on NCHW indices.
        let (h, w, s, co) = (3, 4, 2, 3);
        let x = t(h, w, co * s * s);
        for crd in [true, false] {
            let y = depth_to_space(&x, s, crd);
            for c in 0..co {
                for oy in 0..h * s {
                    for ox in 0..w * s {
                        let (iy, i, ix, j) = (oy / s, oy % s, ox / s, ox % s);
                        let ch = if crd {
                            c * s * s + i * s + j
                        } else {
                            i * s * co + j * co + c
                        };
                        assert_eq!(
                            y.data[(oy * w * s + ox) * co + c],
                            x.data[(iy * w + ix) * x.c + ch]
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn conv_1x1_is_matmul_and_3x3_pads_with_zero() {
        let x = Tensor {
            h: 1,
            w: 2,
            c: 2,
            data: vec![1.0, 2.0, 3.0, 4.0],
        };
        let conv = Conv {
            in_c: 2,
            out_c: 1,
            kh: 1,
            kw: 1,
            stride: 1,
            dilation: 1,
            pads: [0; 4],
            groups: 1,
            weights: vec![10.0, 1.0],
            bias: vec![0.5],
        };
        let y = FloatConv::new(&conv, &conv.weights).run(&x, None, 1);
        assert_eq!(y.data, vec![12.5, 34.5]);
        // 3×3 all-ones kernel on a 1×1 image: only the centre tap is inside.
        let c3 = Conv {
            kh: 3,
            kw: 3,
            pads: [1; 4],
            in_c: 1,
            weights: vec![1.0; 9],
            bias: vec![0.0],
            ..conv
        };
        let x1 = Tensor {
            h: 1,
            w: 1,
            c: 1,
            data: vec![7.0],
        };
        assert_eq!(
            FloatConv::new(&c3, &c3.weights).run(&x1, None, 1).data,
            vec![7.0]
        );
    }

    #[test]
    fn std_and_mean_of_known_values() {
        let x = Tensor {
            h: 2,
            w: 2,
            c: 1,
            data: vec![1.0, 2.0, 3.0, 4.0],
        };
        assert_eq!(global_avg_pool(&x).data, vec![2.5]);
        assert!((global_std(&x).data[0] - 1.25f32.sqrt()).abs() < 1e-6);
    }

    #[test]
    fn split_then_concat_is_identity() {
        let x = t(3, 2, 7);
        let parts = split(&x, &[2, 4, 1]);
        let refs: Vec<&Tensor> = parts.iter().collect();
        assert_eq!(concat(&refs), x);
    }
}
