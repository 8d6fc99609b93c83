//! Lowering of the SR ops beyond IMDN's set (issue 16): element-wise ops
//! between feature maps and with constants, the remaining activations,
//! channel slices, Resize/Upsample, ConvTranspose, pooling and Pad.
use tract_onnx::pb::NodeProto;

use super::fold::Dim;
use super::{Lowering, Lv, attr, attr_ints};
use crate::error::Result;
use crate::model::graph::{
    Activation, BinOp, Conv, CoordMode, Interp, NearestMode, Op, PadMode, Spatial, ValueShape,
};

/// Slice ends at or beyond this cover the whole axis (exporters write i64::MAX).
const WHOLE_AXIS: i64 = 1 << 30;

impl Lowering<'_> {
    /// Add, Sub, Mul, Div with at least one tensor operand.
    pub(super) fn eltwise(&mut self, node: &NodeProto, op: BinOp, a: Lv, b: Lv) -> Result<()> {
        match (a, b) {
            (Lv::Const(c), x) | (x, Lv::Const(c)) => {
                let const_first = matches!(self.get(node, 0)?, Lv::Const(_));
                let x = self.materialize(node, x)?;
                let s = self.values[x];
                // A scalar, or one value per channel ([C], [C,1,1] or [1,C,1,1]).
                let per_channel = c.data.len() == s.channels
                    && c.dims.iter().filter(|&&d| d != 1).count() <= 1
                    && (c.dims.len() < 3 || c.dims[c.dims.len() - 3] == s.channels);
                if c.data.len() != 1 && !per_channel {
                    return Err(self.unsupported(
                        node,
                        &format!(
                            "constant of dims {:?} against {} channels (expected a scalar or one value per channel)",
                            c.dims, s.channels
                        ),
                    ));
                }
                let k: Vec<f32> = c.data.iter().map(|&v| v as f32).collect();
                self.emit(
                    node,
                    Op::Const {
                        op,
                        c: k,
                        const_first,
                    },
                    vec![x],
                    vec![s],
                )
            }
            (a, b) => {
                let (x, y) = (self.materialize(node, a)?, self.materialize(node, b)?);
                let (sx, sy) = (self.values[x], self.values[y]);
                if sx == sy && op == BinOp::Add {
                    return self.emit(node, Op::Add, vec![x, y], vec![sx]);
                }
                // IMDN's channel attention keeps its own op (either operand order).
                if op == BinOp::Mul && sx.channels == sy.channels {
                    if sy.spatial == Spatial::Pooled && sx.spatial != Spatial::Pooled {
                        return self.emit(node, Op::MulChannel, vec![x, y], vec![sx]);
                    }
                    if sx.spatial == Spatial::Pooled && sy.spatial != Spatial::Pooled {
                        return self.emit(node, Op::MulChannel, vec![y, x], vec![sy]);
                    }
                }
                let spatial = match (sx.spatial, sy.spatial) {
                    (a, b) if a == b => a,
                    (Spatial::Pooled, b) => b,
                    (a, Spatial::Pooled) => a,
                    _ => {
                        return Err(self.unsupported(
                            node,
                            &format!(
                                "operands of different sizes {:?} and {:?}",
                                sx.spatial, sy.spatial
                            ),
                        ));
                    }
                };
                let channels = match (sx.channels, sy.channels) {
                    (a, b) if a == b => a,
                    (1, b) => b,
                    (a, 1) => a,
                    (a, b) => {
                        return Err(
                            self.err(node, format!("cannot broadcast {a} channels against {b}"))
                        );
                    }
                };
                self.emit(
                    node,
                    Op::Binary(op),
                    vec![x, y],
                    vec![ValueShape { channels, spatial }],
                )
            }
        }
    }

    /// Tanh, Clip, HardSigmoid, HardSwish, Gelu, Erf.
    pub(super) fn activation(&mut self, node: &NodeProto) -> Result<()> {
        let x = self.tensor(node, 0)?;
        let f = |name: &str, d: f32| attr(node, name).map(|a| a.f).unwrap_or(d);
        let act = match node.op_type.as_str() {
            "Tanh" => Activation::Tanh,
            "Erf" => Activation::Erf,
            "HardSwish" => Activation::HardSwish,
            "HardSigmoid" => Activation::HardSigmoid(f("alpha", 0.2), f("beta", 0.5)),
            "Gelu" => {
                if attr(node, "approximate").is_some_and(|a| a.s.as_slice() != b"none") {
                    return Err(self.unsupported(node, "tanh-approximated GELU"));
                }
                Activation::Gelu
            }
            // Clip: bounds as inputs (opset 11+) or attributes (before).
            _ => {
                let bound = |i: usize, name: &str, d: f32| -> Result<f32> {
                    Ok(match self.opt_const(node, i, "clip bound")? {
                        Some(c) => c.data.first().map(|&v| v as f32).unwrap_or(d),
                        None => f(name, d),
                    })
                };
                Activation::Clip(
                    bound(1, "min", f32::NEG_INFINITY)?,
                    bound(2, "max", f32::INFINITY)?,
                )
            }
        };
        let s = self.values[x];
        self.emit(node, Op::Act(act), vec![x], vec![s])
    }

    /// Slice of a feature map: channels only (the spatial axes whole).
    pub(super) fn slice(&mut self, node: &NodeProto) -> Result<()> {
        let x = self.tensor(node, 0)?;
        let s = self.values[x];
        let (starts, ends, axes, steps) = self.slice_args(node)?;
        let (mut a, mut z) = (0usize, s.channels);
        for k in 0..starts.len() {
            let axis = if axes[k] < 0 { axes[k] + 4 } else { axes[k] };
            let whole = starts[k] == 0 && ends[k] >= WHOLE_AXIS && steps[k] == 1;
            match axis {
                1 if steps[k] == 1 => {
                    let n = s.channels as i64;
                    let c = |v: i64| (if v < 0 { v + n } else { v }).clamp(0, n) as usize;
                    (a, z) = (c(starts[k]), c(ends[k]));
                }
                1 => return Err(self.unsupported(node, "channel slice with a step")),
                _ if whole => {}
                _ => return Err(self.unsupported(node, "slice of the batch or spatial axes")),
            }
        }
        if z <= a {
            return Err(self.err(node, format!("empty channel slice {a}..{z}")));
        }
        self.emit(
            node,
            Op::SliceChannels {
                start: a,
                len: z - a,
            },
            vec![x],
            vec![ValueShape {
                channels: z - a,
                spatial: s.spatial,
            }],
        )
    }

    /// Resize (opset 10+) and Upsample (opset 7–9).
    pub(super) fn resize(&mut self, node: &NodeProto) -> Result<()> {
        let x = self.tensor(node, 0)?;
        let s = self.values[x];
        let mode = attr(node, "mode")
            .map(|a| a.s.clone())
            .unwrap_or_else(|| b"nearest".to_vec());
        let upsample = node.op_type == "Upsample";
        let coord = if upsample {
            CoordMode::Asymmetric
        } else {
            match attr(node, "coordinate_transformation_mode").map(|a| a.s.as_slice()) {
                None | Some(b"half_pixel") => CoordMode::HalfPixel,
                Some(b"pytorch_half_pixel") => CoordMode::PytorchHalfPixel,
                Some(b"align_corners") => CoordMode::AlignCorners,
                Some(b"asymmetric") => CoordMode::Asymmetric,
                Some(m) => {
                    return Err(self.unsupported(
                        node,
                        &format!(
                            "coordinate_transformation_mode {}",
                            String::from_utf8_lossy(m)
                        ),
                    ));
                }
            }
        };
        if attr(node, "antialias").is_some_and(|a| a.i != 0)
            || attr(node, "exclude_outside").is_some_and(|a| a.i != 0)
        {
            return Err(self.unsupported(node, "antialias or exclude_outside"));
        }
        let interp = match mode.as_slice() {
            b"nearest" if upsample => Interp::Nearest(NearestMode::Floor),
            b"nearest" => {
                Interp::Nearest(match attr(node, "nearest_mode").map(|a| a.s.as_slice()) {
                    None | Some(b"round_prefer_floor") => NearestMode::RoundPreferFloor,
                    Some(b"round_prefer_ceil") => NearestMode::RoundPreferCeil,
                    Some(b"floor") => NearestMode::Floor,
                    Some(b"ceil") => NearestMode::Ceil,
                    Some(m) => {
                        return Err(self.unsupported(
                            node,
                            &format!("nearest_mode {}", String::from_utf8_lossy(m)),
                        ));
                    }
                })
            }
            b"linear" | b"bilinear" => Interp::Linear,
            b"cubic" => Interp::Cubic(attr(node, "cubic_coeff_a").map(|a| a.f).unwrap_or(-0.75)),
            m => {
                return Err(self.unsupported(node, &format!("mode {}", String::from_utf8_lossy(m))));
            }
        };
        // Where the scales and sizes are: Upsample (scales input or attribute),
        // Resize-10 (scales), Resize-11+ (roi, scales, sizes).
        let (scales, sizes) = if upsample {
            let sc = match self.opt_const(node, 1, "scales")? {
                Some(c) => c.data,
                None => attr(node, "scales")
                    .map(|a| a.floats.iter().map(|&v| v as f64).collect())
                    .unwrap_or_default(),
            };
            (Some(sc), None)
        } else if node.input.len() == 2 {
            (Some(self.const_input(node, 1, "scales")?.data), None)
        } else {
            let sc = self
                .opt_const(node, 2, "scales")?
                .map(|c| c.data)
                .filter(|d| !d.is_empty());
            let sz = match node.input.get(3).filter(|n| !n.is_empty()) {
                Some(_) => Some(self.get(node, 3)?),
                None => None,
            };
            (sc, sz)
        };
        let spatial = match (scales, sizes) {
            (Some(sc), None) => {
                let sp = &sc[sc.len().saturating_sub(2)..];
                let lead_ok = sc.len() == 2 || (sc.len() == 4 && sc[0] == 1.0 && sc[1] == 1.0);
                let k = sp.first().copied().unwrap_or(0.0);
                let Spatial::Image { factor } = s.spatial else {
                    return Err(self.unsupported(node, "scaling of a map that is not frame-sized"));
                };
                if !lead_ok || sp.len() != 2 || sp[1] != k || k < 1.0 || k.fract() != 0.0 {
                    return Err(self.unsupported(
                        node,
                        &format!("scales {sc:?} (expected the same integer factor on H and W)"),
                    ));
                }
                Spatial::Image {
                    factor: factor * k as usize,
                }
            }
            (_, Some(Lv::Dims(d))) => {
                let sp = &d[d.len().saturating_sub(2)..];
                match sp {
                    [Dim::H(u), Dim::W(v)] if u == v => self.values[*u].spatial,
                    _ => {
                        return Err(self.unsupported(
                            node,
                            "sizes that are not the height and width of one feature map",
                        ));
                    }
                }
            }
            (_, Some(Lv::Const(_))) => {
                return Err(self.unsupported(
                    node,
                    "a fixed output size (export the model with dynamic height and width)",
                ));
            }
            _ => return Err(self.err(node, "neither scales nor sizes given")),
        };
        self.emit(
            node,
            Op::Resize { interp, coord },
            vec![x],
            vec![ValueShape {
                channels: s.channels,
                spatial,
            }],
        )
    }

    /// ConvTranspose whose output is exactly `stride`× its input (FSRCNN).
    pub(super) fn conv_transpose(&mut self, node: &NodeProto) -> Result<()> {
        let x = self.tensor(node, 0)?;
        let w = self.const_input(node, 1, "weights")?;
        if w.dims.len() != 4 {
            return Err(self.unsupported(node, "only 2-D transposed convolutions are supported"));
        }
        if attr(node, "output_shape").is_some()
            || attr(node, "auto_pad")
                .is_some_and(|a| !a.s.is_empty() && a.s.as_slice() != b"NOTSET")
        {
            return Err(self.unsupported(node, "output_shape or auto_pad"));
        }
        let groups = attr(node, "group").map(|a| a.i).unwrap_or(1).max(1) as usize;
        let (in_c, ocg, kh, kw) = (w.dims[0], w.dims[1], w.dims[2], w.dims[3]);
        if in_c != self.values[x].channels || in_c % groups != 0 {
            return Err(self.err(
                node,
                format!(
                    "weights expect {in_c} input channels, tensor has {}",
                    self.values[x].channels
                ),
            ));
        }
        let out_c = ocg * groups;
        let two = |name: &str, d: i64| -> Vec<usize> {
            attr_ints(node, name)
                .unwrap_or_else(|| vec![d, d])
                .iter()
                .map(|&v| v.max(0) as usize)
                .collect()
        };
        let (st, dil, op) = (
            two("strides", 1),
            two("dilations", 1),
            two("output_padding", 0),
        );
        let pads = attr_ints(node, "pads").unwrap_or_else(|| vec![0; 4]);
        if st.len() != 2
            || st[0] != st[1]
            || dil.len() != 2
            || dil[0] != dil[1]
            || pads.len() != 4
            || op.len() != 2
        {
            return Err(self.unsupported(node, "anisotropic strides or dilations"));
        }
        let pads = [
            pads[0] as usize,
            pads[1] as usize,
            pads[2] as usize,
            pads[3] as usize,
        ];
        let (s, d) = (st[0], dil[0]);
        // out = (n − 1)·s + d·(k − 1) + 1 + output_padding − pads must be s·n.
        let exact = |k: usize, o: usize, p: usize| d * (k - 1) + 1 + o == s + p;
        let Spatial::Image { factor } = self.values[x].spatial else {
            return Err(self.unsupported(node, "transposed conv of a map that is not frame-sized"));
        };
        if !exact(kh, op[0], pads[0] + pads[2]) || !exact(kw, op[1], pads[1] + pads[3]) {
            return Err(self.unsupported(
                node,
                &format!("transposed conv whose output is not {s}x its input (kernel {kh}x{kw}, pads {pads:?})"),
            ));
        }
        let bias = match self.opt_const(node, 2, "bias")? {
            Some(b) => b.data.iter().map(|&v| v as f32).collect(),
            None => vec![0.0; out_c],
        };
        if bias.len() != out_c {
            return Err(self.err(
                node,
                format!("{} biases for {out_c} output channels", bias.len()),
            ));
        }
        let conv = Conv {
            in_c,
            out_c,
            kh,
            kw,
            stride: s,
            dilation: d,
            pads,
            groups,
            weights: w.data.iter().map(|&v| v as f32).collect(),
            bias,
        };
        if let Some(sub) = subpixel(&conv) {
            // The same sums as a "same" conv with s² phases per output channel
            // then depth-to-space: runs in bands, on the units or the float kernel.
            let mid = self.new_value(
                &format!("{}:subpixel", super::node_name(node)),
                ValueShape {
                    channels: sub.out_c,
                    spatial: Spatial::Image { factor },
                },
            );
            self.layers.push(crate::model::Layer {
                name: format!("{}/subpixel", super::node_name(node)),
                op: Op::Conv(sub),
                inputs: vec![x],
                outputs: vec![mid],
            });
            return self.emit(
                node,
                Op::DepthToSpace {
                    block: s,
                    crd: true,
                },
                vec![mid],
                vec![ValueShape {
                    channels: out_c,
                    spatial: Spatial::Image { factor: factor * s },
                }],
            );
        }
        self.emit(
            node,
            Op::ConvTranspose {
                conv,
                out_pad: [op[0], op[1]],
            },
            vec![x],
            vec![ValueShape {
                channels: out_c,
                spatial: Spatial::Image { factor: factor * s },
            }],
        )
    }

    /// MaxPool and AveragePool (floor mode, no dilation).
    pub(super) fn pool(&mut self, node: &NodeProto) -> Result<()> {
        let x = self.tensor(node, 0)?;
        let s = self.values[x];
        let k = attr_ints(node, "kernel_shape").unwrap_or_default();
        let st = attr_ints(node, "strides").unwrap_or_else(|| vec![1, 1]);
        let p = attr_ints(node, "pads").unwrap_or_else(|| vec![0; 4]);
        if k.len() != 2 || st.len() != 2 || p.len() != 4 || k.iter().chain(&st).any(|&v| v < 1) {
            return Err(self.unsupported(node, "only 2-D pooling windows are supported"));
        }
        if attr(node, "ceil_mode").is_some_and(|a| a.i != 0)
            || attr_ints(node, "dilations").is_some_and(|d| d.iter().any(|&v| v != 1))
            || attr(node, "auto_pad")
                .is_some_and(|a| !matches!(a.s.as_slice(), b"" | b"NOTSET" | b"VALID"))
        {
            return Err(self.unsupported(node, "ceil_mode, dilations or SAME auto_pad"));
        }
        let k = [k[0] as usize, k[1] as usize];
        let stride = [st[0] as usize, st[1] as usize];
        let pads = [p[0] as usize, p[1] as usize, p[2] as usize, p[3] as usize];
        let spatial = s
            .spatial
            .window(k, stride, [1, 1], [pads[0] + pads[2], pads[1] + pads[3]])
            .ok_or_else(|| {
                self.unsupported(
                    node,
                    "pooling of a per-channel vector, or too many strided steps",
                )
            })?;
        let op = Op::Pool {
            max: node.op_type == "MaxPool",
            k,
            stride,
            pads,
            count_include_pad: attr(node, "count_include_pad").is_some_and(|a| a.i != 0),
        };
        self.emit(
            node,
            op,
            vec![x],
            vec![ValueShape {
                channels: s.channels,
                spatial,
            }],
        )
    }

    /// Pad of the spatial axes: constant, reflect or edge.
    pub(super) fn pad(&mut self, node: &NodeProto) -> Result<()> {
        let x = self.tensor(node, 0)?;
        let s = self.values[x];
        let p: Vec<i64> = match attr_ints(node, "pads") {
            Some(p) => p,
            None => self
                .const_input(node, 1, "pads")?
                .data
                .iter()
                .map(|&v| v as i64)
                .collect(),
        };
        let value = match self.opt_const(node, 2, "constant value")? {
            Some(c) => c.data.first().copied().unwrap_or(0.0) as f32,
            None => attr(node, "value").map(|a| a.f).unwrap_or(0.0),
        };
        if node.input.get(3).is_some_and(|n| !n.is_empty()) {
            return Err(self.unsupported(node, "the axes input"));
        }
        if p.len() != 8
            || p[0] != 0
            || p[1] != 0
            || p[4] != 0
            || p[5] != 0
            || p.iter().any(|&v| v < 0)
        {
            return Err(self.unsupported(
                node,
                &format!("pads {p:?} (expected non-negative H and W pads only)"),
            ));
        }
        let mode = match attr(node, "mode").map(|a| a.s.as_slice()) {
            None | Some(b"constant") => PadMode::Constant(value),
            Some(b"reflect") => PadMode::Reflect,
            Some(b"edge") => PadMode::Edge,
            Some(m) => {
                return Err(self.unsupported(node, &format!("mode {}", String::from_utf8_lossy(m))));
            }
        };
        let pads = [p[2] as usize, p[3] as usize, p[6] as usize, p[7] as usize];
        let spatial = s
            .spatial
            .window(
                [1, 1],
                [1, 1],
                [1, 1],
                [pads[0] + pads[2], pads[1] + pads[3]],
            )
            .ok_or_else(|| self.unsupported(node, "padding of a per-channel vector"))?;
        self.emit(
            node,
            Op::Pad { pads, mode },
            vec![x],
            vec![ValueShape {
                channels: s.channels,
                spatial,
            }],
        )
    }

    /// ReduceMean over H and W (keepdims): a global average pool.
    pub(super) fn reduce_mean(&mut self, node: &NodeProto) -> Result<()> {
        let mut axes: Vec<i64> = self
            .reduce_axes(node)?
            .into_iter()
            .map(|a| if a < 0 { a + 4 } else { a })
            .collect();
        axes.sort_unstable();
        if axes != [2, 3] || attr(node, "keepdims").is_some_and(|a| a.i != 1) {
            return Err(self.unsupported(
                node,
                "only the mean over H and W with keepdims is supported",
            ));
        }
        let x = self.tensor(node, 0)?;
        let out = self.global(node, Op::GlobalAvgPool, x);
        self.set(node, Lv::Tensor(out));
        Ok(())
    }
}

/// A transposed conv whose output is exactly `stride`× its input, as the
/// sub-pixel conv it equals (Shi et al., ESPCN): output row s·Y + r takes
/// taps ky ≡ r + pad (mod s) from input rows Y + (r + pad − ky)/s. Gathering
/// every phase's taps into one window gives a "same" conv with s² output
/// channels per channel in CRD order (channel·s² + r_y·s + r_x), followed
/// by depth-to-space. None when the window would not be "same" (groups,
/// dilation, or pads that put the phases' taps off-centre).
fn subpixel(c: &Conv) -> Option<Conv> {
    if c.groups != 1 || c.dilation != 1 {
        return None;
    }
    let s = c.stride as isize;
    // Per axis: for each phase r, its (tap, input offset) pairs.
    let phases = |k: usize, pad: usize| -> Vec<Vec<(usize, isize)>> {
        (0..s)
            .map(|r| {
                (0..k)
                    .filter(|&t| (r + pad as isize - t as isize).rem_euclid(s) == 0)
                    .map(|t| (t, (r + pad as isize - t as isize) / s))
                    .collect()
            })
            .collect()
    };
    let (py, px) = (phases(c.kh, c.pads[0]), phases(c.kw, c.pads[1]));
    let span = |p: &Vec<Vec<(usize, isize)>>| {
        let offs = p.iter().flatten().map(|&(_, o)| o);
        (offs.clone().min().unwrap_or(0), offs.max().unwrap_or(0))
    };
    let ((ylo, yhi), (xlo, xhi)) = (span(&py), span(&px));
    // "Same": the window spans lo..=hi around 0 with pads −lo and hi.
    if ylo > 0 || yhi < 0 || xlo > 0 || xhi < 0 {
        return None;
    }
    let (kh, kw) = ((yhi - ylo + 1) as usize, (xhi - xlo + 1) as usize);
    let (ic, oc, ss) = (c.in_c, c.out_c, (s * s) as usize);
    let mut w = vec![0f32; oc * ss * ic * kh * kw];
    let mut bias = vec![0f32; oc * ss];
    for o in 0..oc {
        for (ry, ptaps_y) in py.iter().enumerate() {
            for (rx, ptaps_x) in px.iter().enumerate() {
                let oo = o * ss + ry * s as usize + rx;
                bias[oo] = c.bias[o];
                for &(ty, offy) in ptaps_y {
                    for &(tx, offx) in ptaps_x {
                        let (a, b) = ((offy - ylo) as usize, (offx - xlo) as usize);
                        for i in 0..ic {
                            // ONNX ConvTranspose weights: [in_c][out_c][kh][kw].
                            w[((oo * ic + i) * kh + a) * kw + b] =
                                c.weights[((i * oc + o) * c.kh + ty) * c.kw + tx];
                        }
                    }
                }
            }
        }
    }
    Some(Conv {
        in_c: ic,
        out_c: oc * ss,
        kh,
        kw,
        stride: 1,
        dilation: 1,
        pads: [(-ylo) as usize, (-xlo) as usize, yhi as usize, xhi as usize],
        groups: 1,
        weights: w,
        bias,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ops::{FloatConv, conv_transpose, depth_to_space};
    use crate::tensor::Tensor;

    /// The sub-pixel conv + depth-to-space equals the transposed conv it was
    /// lowered from (FSRCNN's 9×9 ×2 and ×3, ×4 with 8×8, odd pads).
    #[test]
    fn subpixel_lowering_equals_conv_transpose() {
        for &(k, s, p) in &[
            (9usize, 2usize, 4usize),
            (9, 3, 3),
            (8, 4, 2),
            (3, 2, 1),
            (4, 2, 1),
        ] {
            let (ic, oc) = (3, 2);
            let op = s + 2 * p - k; // output exactly s× the input
            let c = Conv {
                in_c: ic,
                out_c: oc,
                kh: k,
                kw: k,
                stride: s,
                dilation: 1,
                pads: [p; 4],
                groups: 1,
                weights: (0..ic * oc * k * k)
                    .map(|i| ((i * 7919) % 97) as f32 / 97.0 - 0.5)
                    .collect(),
                bias: vec![0.1, -0.2],
            };
            let x = Tensor {
                h: 5,
                w: 7,
                c: ic,
                data: (0..5 * 7 * ic)
                    .map(|i| ((i * 31) % 53) as f32 / 53.0)
                    .collect(),
            };
            let want = conv_transpose(&x, &c, [op, op], 1);
            let sub = subpixel(&c).expect("lowerable");
            assert!(sub.is_same(), "k{k} s{s} p{p}");
            let got = depth_to_space(
                &FloatConv::new(&sub, &sub.weights).run(&x, None, 1),
                s,
                true,
            );
            assert_eq!(
                (got.h, got.w, got.c),
                (want.h, want.w, want.c),
                "k{k} s{s} p{p}"
            );
            let err = got
                .data
                .iter()
                .zip(&want.data)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(err < 1e-5, "k{k} s{s} p{p}: {err}");
        }
    }
}
