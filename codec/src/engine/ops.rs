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

/// A float conv: [`super::fconv`]'s packed weights and register-blocked kernel.
#[derive(Clone, Debug)]
pub struct FloatConv {
    packed: super::fconv::Packed,
}

impl FloatConv {
    pub fn new(conv: &Conv, weights: &[f32]) -> FloatConv {
        FloatConv {
            packed: super::fconv::Packed::new(conv, weights),
        }
    }

    /// The conv on the whole map `x`, any stride and padding.
    pub fn run(&self, x: &Tensor, act: Option<&Activation>, threads: usize) -> Tensor {
        let c = &self.packed.conv;
        // ONNX's ⌊(n + pads − dilation·(k − 1) − 1) / stride⌋ + 1.
        let (span, win) = (x.h + c.pads[0] + c.pads[2], c.dilation * (c.kh - 1) + 1);
        let oh = if span < win {
            0
        } else {
            (span - win) / c.stride + 1
        };
        self.run_rows(x, 0, x.h, 0..oh, act, threads)
    }

    /// Output rows `out_rows` of the conv on a map of `frame_h` rows, of
    /// which `x` holds rows `x_row0..x_row0 + x.h` (all the rows those
    /// outputs read). Each output element takes the same operations in the
    /// same order whatever rows `x` holds, so bands of a float conv equal
    /// the whole-frame conv bit for bit (the band executor's float path).
    pub fn run_rows(
        &self,
        x: &Tensor,
        x_row0: usize,
        frame_h: usize,
        out_rows: std::ops::Range<usize>,
        act: Option<&Activation>,
        threads: usize,
    ) -> Tensor {
        self.packed
            .run_rows(x, x_row0, frame_h, out_rows, act, threads)
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
        Activation::Tanh => v.tanh(),
        Activation::Clip(lo, hi) => v.max(*lo).min(*hi),
        Activation::HardSigmoid(a, b) => (a * v + b).clamp(0.0, 1.0),
        Activation::HardSwish => v * (v / 6.0 + 0.5).clamp(0.0, 1.0),
        Activation::Gelu => {
            (0.5 * v as f64 * (1.0 + erf(v as f64 / std::f64::consts::SQRT_2))) as f32
        }
        Activation::Erf => erf(v as f64) as f32,
    }
}

/// erf(x) from Numerical Recipes' Chebyshev fit of erfc (fractional error
/// below 1.2e-7 everywhere), in f64: Rust's std has no erf.
pub fn erf(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    if x >= 0.0 { 1.0 - erfc } else { erfc - 1.0 }
}

pub fn act(x: &Tensor, a: &Activation) -> Tensor {
    let mut out = x.clone();
    for (i, v) in out.data.iter_mut().enumerate() {
        *v = activate(a, *v, i % x.c);
    }
    out
}

pub fn add(a: &Tensor, b: &Tensor) -> Tensor {
    // One pass into a fresh buffer (not a clone, then a second pass).
    let data = a.data.iter().zip(&b.data).map(|(&x, &y)| x + y).collect();
    Tensor { data, ..*a }
}

/// x[y, x, c] · g[c]
pub fn mul_channel(x: &Tensor, g: &Tensor) -> Tensor {
    let mut data = Vec::with_capacity(x.data.len());
    for px in x.data.chunks_exact(x.c) {
        data.extend(px.iter().zip(&g.data).map(|(&v, &s)| v * s));
    }
    Tensor { data, ..*x }
}

/// Appends one pixel's channels. IMDN's split and concat move 16–64 channels
/// per pixel: `copy_from_slice` on those called `memcpy` once per pixel
/// (with the zeroed output before it, 10 % of an IMDN_x4 frame's samples,
/// perf, Zen 4); copies of 16 values with a constant length are inlined.
#[inline(always)]
fn push_pixel(out: &mut Vec<f32>, px: &[f32]) {
    let (blocks, rest) = px.as_chunks::<16>();
    for b in blocks {
        out.extend_from_slice(b);
    }
    for &v in rest {
        out.push(v);
    }
}

pub fn concat(parts: &[&Tensor]) -> Tensor {
    let (h, w) = (parts[0].h, parts[0].w);
    let c: usize = parts.iter().map(|t| t.c).sum();
    let mut data = Vec::with_capacity(h * w * c);
    for p in 0..h * w {
        for t in parts {
            push_pixel(&mut data, &t.data[p * t.c..][..t.c]);
        }
    }
    Tensor { h, w, c, data }
}

pub fn split(x: &Tensor, sizes: &[usize]) -> Vec<Tensor> {
    let mut off = 0;
    sizes
        .iter()
        .map(|&s| {
            let t = slice_channels(x, off, s);
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

/// `a ∘ b` with broadcasting: an operand of height and width 1 (a
/// per-channel vector) repeats over pixels, one of 1 channel over channels.
pub fn binary(a: &Tensor, b: &Tensor, op: crate::model::BinOp) -> Tensor {
    let (h, w, c) = (a.h.max(b.h), a.w.max(b.w), a.c.max(b.c));
    if (a.h, a.w, a.c) == (b.h, b.w, b.c) {
        let mut out = a.clone();
        for (o, &v) in out.data.iter_mut().zip(&b.data) {
            *o = op.apply(*o, v);
        }
        return out;
    }
    let mut out = Tensor::zeros(h, w, c);
    fn at(t: &Tensor, y: usize, x: usize) -> &[f32] {
        let (y, x) = (if t.h == 1 { 0 } else { y }, if t.w == 1 { 0 } else { x });
        &t.data[(y * t.w + x) * t.c..][..t.c]
    }
    for y in 0..h {
        for x in 0..w {
            let (pa, pb) = (at(a, y, x), at(b, y, x));
            let o = &mut out.data[(y * w + x) * c..][..c];
            for (ch, v) in o.iter_mut().enumerate() {
                let va = pa[if a.c == 1 { 0 } else { ch }];
                let vb = pb[if b.c == 1 { 0 } else { ch }];
                *v = op.apply(va, vb);
            }
        }
    }
    out
}

/// `x ∘ k[c]` (or `k[c] ∘ x`), `k` per channel or a scalar.
pub fn with_const(x: &Tensor, op: crate::model::BinOp, k: &[f32], const_first: bool) -> Tensor {
    let mut out = x.clone();
    for px in out.data.chunks_exact_mut(x.c) {
        for (ch, v) in px.iter_mut().enumerate() {
            let kc = k[if k.len() == 1 { 0 } else { ch }];
            *v = if const_first {
                op.apply(kc, *v)
            } else {
                op.apply(*v, kc)
            };
        }
    }
    out
}

pub fn slice_channels(x: &Tensor, start: usize, len: usize) -> Tensor {
    let mut data = Vec::with_capacity(x.h * x.w * len);
    for px in x.data.chunks_exact(x.c) {
        push_pixel(&mut data, &px[start..start + len]);
    }
    Tensor {
        h: x.h,
        w: x.w,
        c: len,
        data,
    }
}

/// Source taps and weights of one output coordinate of a resize along one axis.
fn resize_taps(
    o: usize,
    n_in: usize,
    n_out: usize,
    interp: crate::model::Interp,
    coord: crate::model::CoordMode,
) -> Vec<(usize, f32)> {
    use crate::model::{CoordMode, Interp, NearestMode};
    // ONNX Resize (opset 13+), computed in f32 as ONNX Runtime does.
    let scale = n_out as f32 / n_in as f32;
    let x = match coord {
        CoordMode::HalfPixel => (o as f32 + 0.5) / scale - 0.5,
        CoordMode::PytorchHalfPixel if n_out > 1 => (o as f32 + 0.5) / scale - 0.5,
        CoordMode::PytorchHalfPixel => 0.0,
        CoordMode::AlignCorners if n_out > 1 => o as f32 * (n_in - 1) as f32 / (n_out - 1) as f32,
        CoordMode::AlignCorners => 0.0,
        CoordMode::Asymmetric => o as f32 / scale,
    };
    let last = n_in as isize - 1;
    let clampi = |i: isize| i.clamp(0, last) as usize;
    match interp {
        Interp::Nearest(m) => {
            let i = match m {
                NearestMode::RoundPreferFloor if x == x.floor() + 0.5 => x.floor(),
                NearestMode::RoundPreferCeil if x == x.floor() + 0.5 => x.ceil(),
                NearestMode::RoundPreferFloor | NearestMode::RoundPreferCeil => x.round(),
                NearestMode::Floor => x.floor(),
                NearestMode::Ceil => x.ceil(),
            };
            vec![(clampi(i as isize), 1.0)]
        }
        Interp::Linear => {
            let x = x.clamp(0.0, last as f32);
            let x0 = x.floor();
            let t = x - x0;
            vec![(clampi(x0 as isize), 1.0 - t), (clampi(x0 as isize + 1), t)]
        }
        Interp::Cubic(a) => {
            let x0 = x.floor();
            let t = x - x0;
            let k = |s: f32| {
                let s = s.abs();
                if s <= 1.0 {
                    ((a + 2.0) * s - (a + 3.0)) * s * s + 1.0
                } else if s < 2.0 {
                    ((a * s - 5.0 * a) * s + 8.0 * a) * s - 4.0 * a
                } else {
                    0.0
                }
            };
            (-1..=2)
                .map(|d| (clampi(x0 as isize + d), k(t - d as f32)))
                .collect()
        }
    }
}

/// Resize to `oh`×`ow`: separable, columns first.
pub fn resize(
    x: &Tensor,
    oh: usize,
    ow: usize,
    interp: crate::model::Interp,
    coord: crate::model::CoordMode,
) -> Tensor {
    let c = x.c;
    let cols: Vec<_> = (0..ow)
        .map(|o| resize_taps(o, x.w, ow, interp, coord))
        .collect();
    let mut mid = Tensor::zeros(x.h, ow, c);
    for y in 0..x.h {
        let src = &x.data[y * x.w * c..(y + 1) * x.w * c];
        for (ox, taps) in cols.iter().enumerate() {
            let o = &mut mid.data[(y * ow + ox) * c..][..c];
            for &(i, wt) in taps {
                for (v, &s) in o.iter_mut().zip(&src[i * c..(i + 1) * c]) {
                    *v += wt * s;
                }
            }
        }
    }
    let mut out = Tensor::zeros(oh, ow, c);
    let row = ow * c;
    for oy in 0..oh {
        let o = &mut out.data[oy * row..(oy + 1) * row];
        for (i, wt) in resize_taps(oy, x.h, oh, interp, coord) {
            for (v, &s) in o.iter_mut().zip(&mid.data[i * row..(i + 1) * row]) {
                *v += wt * s;
            }
        }
    }
    out
}

/// ONNX ConvTranspose (weights [in_c][out_c / g][kh][kw]), as a gather per
/// output pixel: output row oy takes input row iy where oy = iy·s + ky·d − pad.
pub fn conv_transpose(
    x: &Tensor,
    c: &crate::model::Conv,
    out_pad: [usize; 2],
    threads: usize,
) -> Tensor {
    let s = c.stride;
    let out_len = |n: usize, p0: usize, p1: usize, k: usize, op: usize| {
        ((n - 1) * s + c.dilation * (k - 1) + 1 + op).saturating_sub(p0 + p1)
    };
    let oh = out_len(x.h, c.pads[0], c.pads[2], c.kh, out_pad[0]);
    let ow = out_len(x.w, c.pads[1], c.pads[3], c.kw, out_pad[1]);
    let (g, icg, ocg) = (c.groups, c.in_c / c.groups, c.out_c / c.groups);
    let mut out = Tensor::zeros(oh, ow, c.out_c);
    // Input index along an axis for output o and tap k, when the tap lands.
    let src = |o: usize, k: usize, pad: usize, n: usize| {
        let t = o as isize + pad as isize - (k * c.dilation) as isize;
        (t >= 0 && t % s as isize == 0 && ((t / s as isize) as usize) < n).then(|| t as usize / s)
    };
    par_rows(&mut out.data, oh, ow * c.out_c, threads, |rows, chunk| {
        for (ry, oy) in rows.enumerate() {
            for ox in 0..ow {
                let acc = &mut chunk[(ry * ow + ox) * c.out_c..][..c.out_c];
                acc.copy_from_slice(&c.bias);
                for ky in 0..c.kh {
                    let Some(iy) = src(oy, ky, c.pads[0], x.h) else {
                        continue;
                    };
                    for kx in 0..c.kw {
                        let Some(ix) = src(ox, kx, c.pads[1], x.w) else {
                            continue;
                        };
                        let px = &x.data[(iy * x.w + ix) * x.c..][..x.c];
                        for gi in 0..g {
                            for i in 0..icg {
                                let v = px[gi * icg + i];
                                let ic = gi * icg + i;
                                for o in 0..ocg {
                                    let wv = c.weights[((ic * ocg + o) * c.kh + ky) * c.kw + kx];
                                    acc[gi * ocg + o] += v * wv;
                                }
                            }
                        }
                    }
                }
            }
        }
    });
    out
}

/// Max or average pooling; pads top, left, bottom, right.
pub fn pool(
    x: &Tensor,
    max: bool,
    k: [usize; 2],
    stride: [usize; 2],
    pads: [usize; 4],
    count_include_pad: bool,
) -> Tensor {
    let out_len = |n: usize, p: usize, k: usize, s: usize| {
        if n + p < k { 0 } else { (n + p - k) / s + 1 }
    };
    let oh = out_len(x.h, pads[0] + pads[2], k[0], stride[0]);
    let ow = out_len(x.w, pads[1] + pads[3], k[1], stride[1]);
    let c = x.c;
    let mut out = Tensor::zeros(oh, ow, c);
    for oy in 0..oh {
        for ox in 0..ow {
            let o = &mut out.data[(oy * ow + ox) * c..][..c];
            if max {
                o.fill(f32::NEG_INFINITY);
            }
            let mut n = 0usize;
            for ky in 0..k[0] {
                let iy = (oy * stride[0] + ky) as isize - pads[0] as isize;
                if iy < 0 || iy >= x.h as isize {
                    continue;
                }
                for kx in 0..k[1] {
                    let ix = (ox * stride[1] + kx) as isize - pads[1] as isize;
                    if ix < 0 || ix >= x.w as isize {
                        continue;
                    }
                    n += 1;
                    let px = &x.data[(iy as usize * x.w + ix as usize) * c..][..c];
                    for (v, &p) in o.iter_mut().zip(px) {
                        *v = if max { v.max(p) } else { *v + p };
                    }
                }
            }
            if !max {
                // ONNX count_include_pad: the window clipped to the padded frame.
                let d = if count_include_pad {
                    let span = |o: usize, s: usize, k: usize, n: usize, p0: usize, p1: usize| {
                        let a = o * s;
                        (a + k).min(n + p0 + p1) - a
                    };
                    span(oy, stride[0], k[0], x.h, pads[0], pads[2])
                        * span(ox, stride[1], k[1], x.w, pads[1], pads[3])
                } else {
                    n
                };
                for v in o.iter_mut() {
                    *v /= d as f32;
                }
            }
        }
    }
    out
}

/// Spatial padding; pads top, left, bottom, right.
pub fn pad(x: &Tensor, pads: [usize; 4], mode: crate::model::PadMode) -> Tensor {
    use crate::model::PadMode;
    let (oh, ow, c) = (x.h + pads[0] + pads[2], x.w + pads[1] + pads[3], x.c);
    let fill = match mode {
        PadMode::Constant(v) => v,
        _ => 0.0,
    };
    let mut out = Tensor {
        h: oh,
        w: ow,
        c,
        data: vec![fill; oh * ow * c],
    };
    // Source index along an axis, None for a constant-filled position.
    let src = |o: usize, p: usize, n: usize| -> Option<usize> {
        let i = o as isize - p as isize;
        let last = n as isize - 1;
        match mode {
            PadMode::Constant(_) => (0..n as isize).contains(&i).then_some(i as usize),
            PadMode::Edge => Some(i.clamp(0, last) as usize),
            // Mirror without repeating the edge (numpy "reflect"), folded until inside.
            PadMode::Reflect => {
                let mut i = i;
                while i < 0 || i > last {
                    i = if i < 0 { -i } else { 2 * last - i };
                    if last == 0 {
                        i = 0;
                    }
                }
                Some(i as usize)
            }
        }
    };
    for oy in 0..oh {
        let Some(iy) = src(oy, pads[0], x.h) else {
            continue;
        };
        for ox in 0..ow {
            let Some(ix) = src(ox, pads[1], x.w) else {
                continue;
            };
            out.data[(oy * ow + ox) * c..][..c]
                .copy_from_slice(&x.data[(iy * x.w + ix) * c..][..c]);
        }
    }
    out
}

/// The ops that need the whole frame of their input but no frame-global
/// reduction (resampling, pooling, padding, transposed convs), producing a
/// map of `oh`×`ow`. None for the ops it does not cover.
pub fn whole(
    op: &crate::model::Op,
    xs: &[&Tensor],
    oh: usize,
    ow: usize,
    threads: usize,
) -> Option<Tensor> {
    use crate::model::Op;
    Some(match op {
        Op::Resize { interp, coord } => resize(xs[0], oh, ow, *interp, *coord),
        Op::ConvTranspose { conv, out_pad } => conv_transpose(xs[0], conv, *out_pad, threads),
        Op::Pool {
            max,
            k,
            stride,
            pads,
            count_include_pad,
        } => pool(xs[0], *max, *k, *stride, *pads, *count_include_pad),
        Op::Pad { pads, mode } => pad(xs[0], *pads, *mode),
        _ => return None,
    })
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
        Op::Binary(b) => vec![binary(xs[0], xs[1], *b)],
        Op::Const { op, c, const_first } => vec![with_const(xs[0], *op, c, *const_first)],
        Op::SliceChannels { start, len } => vec![slice_channels(xs[0], *start, *len)],
        // The rest: `Op::is_row_local` is false for them.
        _ => return None,
    })
}

/// [`Op::ShuffleAnchor`](crate::model::Op::ShuffleAnchor): DCR depth-to-space
/// of `x + concat(a × s²)`, in one pass.
pub fn shuffle_anchor(x: &Tensor, a: &Tensor, s: usize) -> Tensor {
    let co = a.c;
    debug_assert_eq!((x.h, x.w, x.c), (a.h, a.w, co * s * s));
    // The shapes real models have (RGB and luma, ×2–×4) with the pixel and the block fixed, so
    // the inner loops unroll: the generic loop cost 9 % of a luma ×2 frame's CPU in the
    // element (one-value chunks through iterators, and a zeroed HR band).
    fixed_shape!(
        co,
        s,
        shuffle_anchor_fixed(x, a),
        shuffle_anchor_any(x, a, s)
    )
}

/// `$fixed::<C, S>($args)` for the shapes real models have (RGB and luma, ×2–×4), else `$any`.
macro_rules! fixed_shape {
    ($c:expr, $s:expr, $fixed:ident($($arg:expr),*), $any:expr) => {
        match ($c, $s) {
            (1, 2) => $fixed::<1, 2>($($arg),*),
            (1, 3) => $fixed::<1, 3>($($arg),*),
            (1, 4) => $fixed::<1, 4>($($arg),*),
            (3, 2) => $fixed::<3, 2>($($arg),*),
            (3, 3) => $fixed::<3, 3>($($arg),*),
            (3, 4) => $fixed::<3, 4>($($arg),*),
            _ => $any,
        }
    };
}
use fixed_shape;

/// HR row `i` of the LR row `(xr, ar)` (C channels, block S): `put(k, v)` for its k-th value.
#[inline(always)]
fn shuffle_row<const C: usize, const S: usize>(
    xr: &[f32],
    ar: &[f32],
    i: usize,
    mut put: impl FnMut(usize, f32),
) {
    for (p, (px, an)) in xr
        .chunks_exact(C * S * S)
        .zip(ar.chunks_exact(C))
        .enumerate()
    {
        for j in 0..S {
            for c in 0..C {
                put((p * S + j) * C + c, px[(i * S + j) * C + c] + an[c]);
            }
        }
    }
}

/// [`shuffle_anchor`] for C channels at block S, written into spare capacity (zeroing the HR
/// band first cost as much as filling it).
fn shuffle_anchor_fixed<const C: usize, const S: usize>(x: &Tensor, a: &Tensor) -> Tensor {
    let (h, w) = (x.h, x.w);
    let row = w * S * C;
    let n = h * S * row;
    let mut data: Vec<f32> = Vec::with_capacity(n);
    let out = &mut data.spare_capacity_mut()[..n];
    for (y, band) in out.chunks_exact_mut(S * row).enumerate() {
        let xr = &x.data[y * w * C * S * S..][..w * C * S * S];
        let ar = &a.data[y * w * C..][..w * C];
        for (i, orow) in band.chunks_exact_mut(row).enumerate() {
            shuffle_row::<C, S>(xr, ar, i, |k, v| {
                orow[k].write(v);
            });
        }
    }
    // SAFETY: the loops above wrote all n elements: h bands of S rows, each row's w pixels
    // × S × C values (`shuffle_row` puts every k < w·S·C, `chunks_exact_mut` covers n exactly).
    unsafe { data.set_len(n) };
    Tensor {
        h: h * S,
        w: w * S,
        c: C,
        data,
    }
}

/// [`shuffle_anchor`] straight to u8 pixels ([`crate::tensor::to_u8_pixels`] of its
/// output, bit for bit), one HR row at a time through a row of f32 that stays in L1: for
/// callers that keep only the bytes (`Runtime::run_bytes`), so the HR band is never written
/// and read back as f32.
pub fn shuffle_anchor_u8(x: &Tensor, a: &Tensor, s: usize) -> Vec<u8> {
    fixed_shape!(a.c, s, shuffle_anchor_u8_fixed(x, a), {
        let t = shuffle_anchor_any(x, a, s);
        let mut out = vec![0u8; t.data.len()];
        crate::tensor::to_u8_pixels(&t.data, &mut out);
        out
    })
}

fn shuffle_anchor_u8_fixed<const C: usize, const S: usize>(x: &Tensor, a: &Tensor) -> Vec<u8> {
    let (h, w) = (x.h, x.w);
    let row = w * S * C;
    let mut out = Vec::with_capacity(h * S * row);
    let mut buf = vec![0f32; row];
    // One HR row: the shuffle into `buf` (every index a constant within a
    // pixel's chunks, so no bounds check is left), then its pixels. Built for
    // AVX-512 or AVX2 where present; the same f32 adds and `to_u8_pixel`.
    // (LLVM makes gathers of the shuffle, which `perf` shows as more samples
    // than the baseline build's; yet nawq_x2 ran faster with it in four
    // interleaved wall-clock rounds: 25.7/26.3/23.6/23.8 ms against
    // 26.7/28.5/26.5/27.5.)
    #[inline(always)]
    fn rows<const C: usize, const S: usize>(
        x: &Tensor,
        a: &Tensor,
        buf: &mut [f32],
        out: &mut Vec<u8>,
    ) {
        let w = x.w;
        for y in 0..x.h {
            let xr = &x.data[y * w * C * S * S..][..w * C * S * S];
            let ar = &a.data[y * w * C..][..w * C];
            for i in 0..S {
                for ((o, px), an) in buf
                    .chunks_exact_mut(S * C)
                    .zip(xr.chunks_exact(C * S * S))
                    .zip(ar.chunks_exact(C))
                {
                    for j in 0..S {
                        for c in 0..C {
                            o[j * C + c] = px[(i * S + j) * C + c] + an[c];
                        }
                    }
                }
                out.extend(buf.iter().map(|&v| crate::tensor::to_u8_pixel(v)));
            }
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512bw")]
        fn wide<const C: usize, const S: usize>(
            x: &Tensor,
            a: &Tensor,
            buf: &mut [f32],
            out: &mut Vec<u8>,
        ) {
            rows::<C, S>(x, a, buf, out)
        }
        #[target_feature(enable = "avx2")]
        fn narrow<const C: usize, const S: usize>(
            x: &Tensor,
            a: &Tensor,
            buf: &mut [f32],
            out: &mut Vec<u8>,
        ) {
            rows::<C, S>(x, a, buf, out)
        }
        if std::arch::is_x86_feature_detected!("avx512bw") {
            // SAFETY: AVX-512 F/BW are present (checked).
            unsafe { wide::<C, S>(x, a, &mut buf, &mut out) };
            return out;
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 is present (checked).
            unsafe { narrow::<C, S>(x, a, &mut buf, &mut out) };
            return out;
        }
    }
    rows::<C, S>(x, a, &mut buf, &mut out);
    out
}

fn shuffle_anchor_any(x: &Tensor, a: &Tensor, s: usize) -> Tensor {
    let co = a.c;
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
        // The fixed (RGB, luma × 2–4) and the generic shapes.
        for (c, s) in [
            (3, 2),
            (3, 3),
            (3, 4),
            (1, 2),
            (1, 3),
            (1, 4),
            (2, 2),
            (1, 5),
        ] {
            let x = t(5, 3, c * s * s);
            let mut a = t(5, 3, c);
            a.data.iter_mut().for_each(|v| *v = *v * 0.37 + 0.1);
            let copies: Vec<&Tensor> = (0..s * s).map(|_| &a).collect();
            let want = depth_to_space(&add(&x, &concat(&copies)), s, false);
            let got = shuffle_anchor(&x, &a, s);
            assert_eq!(got, want, "{c} channels x{s}");
            // The u8 form is the f32 form's pixels (values spread over [0, 1] and past it).
            let x = Tensor {
                data: x.data.iter().map(|v| v * 0.05).collect(),
                ..x
            };
            let mut bytes = vec![0u8; want.data.len()];
            crate::tensor::to_u8_pixels(&shuffle_anchor(&x, &a, s).data, &mut bytes);
            assert_eq!(shuffle_anchor_u8(&x, &a, s), bytes, "{c} channels x{s}: u8");
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
