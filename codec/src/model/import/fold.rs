//! Constant and shape-only subgraphs, folded at import (issue 16).
//!
//! Exporters compute Resize `sizes`, Reshape shapes and Pad amounts with small
//! subgraphs (Shape → Gather → Unsqueeze → Concat → Cast, ConstantOfShape →
//! Reshape → Slice → Transpose for F.pad). They never depend on pixel values,
//! only on the frame size, so they are evaluated here, once: constants fully,
//! and the H and W of a feature map symbolically ([`Dim`]), because a graph
//! runs on any frame size. Nothing of them runs per frame.
use tract_onnx::pb::NodeProto;

use super::{Const, Lowering, Lv, attr, attr_ints};
use crate::error::Result;
use crate::model::graph::ValueId;

/// Slice's starts, ends, axes and steps.
pub(super) type SliceArgs = (Vec<i64>, Vec<i64>, Vec<i64>, Vec<i64>);

/// One element of a shape vector: known, or the height or width of a value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Dim {
    Known(i64),
    H(ValueId),
    W(ValueId),
    /// k·H or k·W of a value (the output size of a hand-written pixel shuffle).
    HMul(ValueId, usize),
    WMul(ValueId, usize),
}

/// A 1-D shape vector as a list of [`Dim`]s; all-known vectors become constants.
pub(super) fn dims_lv(d: Vec<Dim>) -> Lv {
    if d.iter().all(|x| matches!(x, Dim::Known(_))) {
        let data: Vec<f64> = d
            .iter()
            .map(|x| match x {
                Dim::Known(k) => *k as f64,
                _ => unreachable!(),
            })
            .collect();
        Lv::Const(Const {
            dims: vec![data.len()],
            data,
        })
    } else {
        Lv::Dims(d)
    }
}

/// A 1-D (or scalar) constant as [`Dim`]s.
fn const_dims(c: &Const) -> Option<Vec<Dim>> {
    (c.dims.len() <= 1).then(|| c.data.iter().map(|&v| Dim::Known(v as i64)).collect())
}

/// Row-major strides of `dims`.
fn strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1];
    }
    s
}

fn norm_axis(a: i64, rank: usize) -> Option<usize> {
    let a = if a < 0 { a + rank as i64 } else { a };
    (0..rank as i64).contains(&a).then_some(a as usize)
}

impl Lowering<'_> {
    /// Constant-valued input `i`, or an error naming what was expected.
    pub(super) fn const_input(&self, node: &NodeProto, i: usize, what: &str) -> Result<Const> {
        match self.get(node, i)? {
            Lv::Const(c) => Ok(c),
            _ => Err(self.unsupported(node, &format!("non-constant {what}"))),
        }
    }

    /// An optional input (absent or named ""), as a constant.
    pub(super) fn opt_const(
        &self,
        node: &NodeProto,
        i: usize,
        what: &str,
    ) -> Result<Option<Const>> {
        match node.input.get(i).filter(|s| !s.is_empty()) {
            Some(_) => self.const_input(node, i, what).map(Some),
            None => Ok(None),
        }
    }

    /// Shape-only and constant nodes. Returns Ok(false) when `node` has a
    /// tensor operand and must be lowered as a layer instead.
    pub(super) fn fold(&mut self, node: &NodeProto) -> Result<bool> {
        let lv = match node.op_type.as_str() {
            "Shape" => {
                let x = self.tensor(node, 0)?;
                let c = self.values[x].channels as i64;
                let d = [Dim::Known(1), Dim::Known(c), Dim::H(x), Dim::W(x)];
                let (start, end) = (
                    attr(node, "start").map(|a| a.i).unwrap_or(0),
                    attr(node, "end").map(|a| a.i),
                );
                let n = 4i64;
                let clamp = |v: i64| (if v < 0 { v + n } else { v }).clamp(0, n) as usize;
                let (a, z) = (clamp(start), end.map(clamp).unwrap_or(4));
                dims_lv(d[a..z.max(a)].to_vec())
            }
            "ConstantOfShape" => {
                let shape = self.const_input(node, 0, "shape")?;
                let dims: Vec<usize> = shape.data.iter().map(|&v| v.max(0.0) as usize).collect();
                let fill = match attr(node, "value").and_then(|a| a.t.as_ref()) {
                    Some(t) => self.tensor_const(t)?.data.first().copied().unwrap_or(0.0),
                    None => 0.0,
                };
                let n = dims.iter().product();
                Lv::Const(Const {
                    dims,
                    data: vec![fill; n],
                })
            }
            "Unsqueeze" | "Squeeze" => {
                let axes = match attr_ints(node, "axes") {
                    Some(a) => a,
                    None => match self.opt_const(node, 1, "axes")? {
                        Some(c) => c.data.iter().map(|&v| v as i64).collect(),
                        None => vec![],
                    },
                };
                match self.get(node, 0)? {
                    Lv::Const(mut c) => {
                        if node.op_type == "Unsqueeze" {
                            let rank = c.dims.len() + axes.len();
                            let mut ax: Vec<usize> =
                                axes.iter().filter_map(|&a| norm_axis(a, rank)).collect();
                            ax.sort_unstable();
                            for a in ax {
                                c.dims.insert(a.min(c.dims.len()), 1);
                            }
                        } else {
                            let rank = c.dims.len();
                            let ax: Vec<usize> =
                                axes.iter().filter_map(|&a| norm_axis(a, rank)).collect();
                            c.dims = c
                                .dims
                                .iter()
                                .enumerate()
                                .filter(|&(i, &d)| !(d == 1 && (ax.is_empty() || ax.contains(&i))))
                                .map(|(_, &d)| d)
                                .collect();
                        }
                        Lv::Const(c)
                    }
                    // A scalar dimension made a 1-element vector (or back).
                    Lv::Dim(v, 2) if node.op_type == "Unsqueeze" => Lv::Dims(vec![Dim::H(v)]),
                    Lv::Dim(v, 3) if node.op_type == "Unsqueeze" => Lv::Dims(vec![Dim::W(v)]),
                    Lv::DimMul(v, 2, k) if node.op_type == "Unsqueeze" => {
                        Lv::Dims(vec![Dim::HMul(v, k)])
                    }
                    Lv::DimMul(v, 3, k) if node.op_type == "Unsqueeze" => {
                        Lv::Dims(vec![Dim::WMul(v, k)])
                    }
                    Lv::Dims(d) if node.op_type == "Squeeze" && d.len() == 1 => match d[0] {
                        Dim::H(v) => Lv::Dim(v, 2),
                        Dim::W(v) => Lv::Dim(v, 3),
                        Dim::Known(k) => Lv::Const(Const {
                            dims: vec![],
                            data: vec![k as f64],
                        }),
                        Dim::HMul(v, k) => Lv::DimMul(v, 2, k),
                        Dim::WMul(v, k) => Lv::DimMul(v, 3, k),
                    },
                    _ => return Ok(false),
                }
            }
            "Concat" => {
                let lvs: Vec<Lv> = (0..node.input.len())
                    .map(|i| self.get(node, i))
                    .collect::<Result<_>>()?;
                if lvs.is_empty() {
                    return Err(self.err(node, "no inputs (expected at least one)"));
                }
                if lvs.iter().any(|l| matches!(l, Lv::Tensor(_))) {
                    return Ok(false);
                }
                let axis = attr(node, "axis").map(|a| a.i).unwrap_or(0);
                if lvs.iter().all(|l| matches!(l, Lv::Const(_))) {
                    let cs: Vec<Const> = lvs
                        .into_iter()
                        .map(|l| match l {
                            Lv::Const(c) => c,
                            _ => unreachable!(),
                        })
                        .collect();
                    Lv::Const(self.concat_consts(node, &cs, axis)?)
                } else {
                    let mut d = Vec::new();
                    for l in lvs {
                        match l {
                            Lv::Dims(x) => d.extend(x),
                            Lv::Const(c) => d.extend(const_dims(&c).ok_or_else(|| {
                                self.unsupported(node, "concat of a shape with a matrix")
                            })?),
                            Lv::Dim(v, 2) => d.push(Dim::H(v)),
                            Lv::Dim(v, 3) => d.push(Dim::W(v)),
                            Lv::DimMul(v, 2, k) => d.push(Dim::HMul(v, k)),
                            Lv::DimMul(v, 3, k) => d.push(Dim::WMul(v, k)),
                            _ => return Err(self.unsupported(node, "concat of a shape value")),
                        }
                    }
                    dims_lv(d)
                }
            }
            "Gather" => match (self.get(node, 0)?, self.get(node, 1)?) {
                (Lv::Dims(d), Lv::Const(idx)) => {
                    let pick = |i: f64| norm_axis(i as i64, d.len()).map(|i| d[i]);
                    let picked: Option<Vec<Dim>> = idx.data.iter().map(|&i| pick(i)).collect();
                    let picked = picked.ok_or_else(|| self.err(node, "index outside the shape"))?;
                    if idx.dims.is_empty() {
                        match picked[0] {
                            Dim::H(v) => Lv::Dim(v, 2),
                            Dim::W(v) => Lv::Dim(v, 3),
                            Dim::HMul(v, k) => Lv::DimMul(v, 2, k),
                            Dim::WMul(v, k) => Lv::DimMul(v, 3, k),
                            Dim::Known(k) => Lv::Const(Const {
                                dims: vec![],
                                data: vec![k as f64],
                            }),
                        }
                    } else {
                        dims_lv(picked)
                    }
                }
                (Lv::Const(c), Lv::Const(idx)) => {
                    let axis = attr(node, "axis").map(|a| a.i).unwrap_or(0);
                    Lv::Const(self.gather_const(node, &c, &idx, axis)?)
                }
                _ => {
                    return Err(self.unsupported(
                        node,
                        "only Gather of constants and shape elements is supported",
                    ));
                }
            },
            "Cast" => match self.get(node, 0)? {
                lv @ (Lv::Dim(..) | Lv::DimMul(..) | Lv::HwCount(_) | Lv::Dims(_)) => lv,
                Lv::Const(mut c) => {
                    // ONNX Cast to an integer type truncates toward zero.
                    let to = attr(node, "to").map(|a| a.i).unwrap_or(1);
                    if matches!(to, 2..=7 | 12 | 13) {
                        c.data.iter_mut().for_each(|v| *v = v.trunc());
                    }
                    Lv::Const(c)
                }
                _ => return Err(self.unsupported(node, "cast of an image tensor")),
            },
            "Reshape" => match (self.get(node, 0)?, self.get(node, 1)?) {
                (Lv::Const(c), Lv::Const(shape)) => {
                    let n = c.data.len();
                    let mut dims: Vec<i64> = shape.data.iter().map(|&v| v as i64).collect();
                    for (i, d) in dims.iter_mut().enumerate() {
                        if *d == 0 {
                            *d = c.dims.get(i).copied().unwrap_or(1) as i64;
                        }
                    }
                    let known: i64 = dims.iter().filter(|&&d| d > 0).product();
                    let dims: Vec<usize> = dims
                        .iter()
                        .map(|&d| {
                            if d < 0 {
                                n / known.max(1) as usize
                            } else {
                                d as usize
                            }
                        })
                        .collect();
                    if dims.iter().product::<usize>() != n {
                        return Err(
                            self.err(node, format!("cannot reshape {n} values to {dims:?}"))
                        );
                    }
                    Lv::Const(Const { dims, data: c.data })
                }
                (Lv::Dims(d), Lv::Const(_)) => Lv::Dims(d),
                _ => return Ok(false),
            },
            "Transpose" => match self.get(node, 0)? {
                Lv::Const(c) => {
                    let rank = c.dims.len();
                    let perm: Vec<usize> = attr_ints(node, "perm")
                        .map(|p| p.iter().map(|&v| v as usize).collect())
                        .unwrap_or_else(|| (0..rank).rev().collect());
                    if perm.len() != rank || perm.iter().any(|&p| p >= rank) {
                        return Err(self.err(node, format!("perm {perm:?} for rank {rank}")));
                    }
                    let dims: Vec<usize> = perm.iter().map(|&p| c.dims[p]).collect();
                    let (si, so) = (strides(&c.dims), strides(&dims));
                    let mut data = vec![0.0; c.data.len()];
                    for (o, slot) in data.iter_mut().enumerate() {
                        let src: usize =
                            (0..rank).map(|k| (o / so[k] % dims[k]) * si[perm[k]]).sum();
                        *slot = c.data[src];
                    }
                    Lv::Const(Const { dims, data })
                }
                _ => return Ok(false),
            },
            "Slice" => {
                let x = self.get(node, 0)?;
                if matches!(x, Lv::Tensor(_)) {
                    return Ok(false);
                }
                let (starts, ends, axes, steps) = self.slice_args(node)?;
                match x {
                    Lv::Const(c) => Lv::Const(slice_const(&c, &starts, &ends, &axes, &steps)),
                    Lv::Dims(d) => {
                        let c = Const {
                            dims: vec![d.len()],
                            data: (0..d.len()).map(|i| i as f64).collect(),
                        };
                        let idx = slice_const(&c, &starts, &ends, &axes, &steps);
                        dims_lv(idx.data.iter().map(|&i| d[i as usize]).collect())
                    }
                    _ => return Err(self.unsupported(node, "slice of a shape value")),
                }
            }
            "Add" | "Sub" | "Mul" | "Div" => match (self.get(node, 0)?, self.get(node, 1)?) {
                (Lv::Const(a), Lv::Const(b)) => {
                    let f = |x: f64, y: f64| match node.op_type.as_str() {
                        "Add" => x + y,
                        "Sub" => x - y,
                        "Mul" => x * y,
                        _ => x / y,
                    };
                    let data: Vec<f64> = if b.data.len() == 1 {
                        a.data.iter().map(|&x| f(x, b.data[0])).collect()
                    } else if a.data.len() == 1 {
                        b.data.iter().map(|&y| f(a.data[0], y)).collect()
                    } else if a.data.len() == b.data.len() {
                        a.data.iter().zip(&b.data).map(|(&x, &y)| f(x, y)).collect()
                    } else {
                        return Err(self.unsupported(node, "broadcast between two constants"));
                    };
                    let dims = if a.data.len() >= b.data.len() {
                        a.dims
                    } else {
                        b.dims
                    };
                    Lv::Const(Const { dims, data })
                }
                _ => return Ok(false),
            },
            _ => return Ok(false),
        };
        self.set(node, lv);
        Ok(true)
    }

    /// Slice's starts, ends, axes and steps (inputs from opset 10, attributes before).
    pub(super) fn slice_args(&self, node: &NodeProto) -> Result<SliceArgs> {
        let ints = |c: Const| c.data.iter().map(|&v| v as i64).collect::<Vec<i64>>();
        let (starts, ends, axes, steps) = if node.input.len() > 1 {
            (
                ints(self.const_input(node, 1, "slice starts")?),
                ints(self.const_input(node, 2, "slice ends")?),
                self.opt_const(node, 3, "slice axes")?.map(ints),
                self.opt_const(node, 4, "slice steps")?.map(ints),
            )
        } else {
            (
                attr_ints(node, "starts").unwrap_or_default(),
                attr_ints(node, "ends").unwrap_or_default(),
                attr_ints(node, "axes"),
                None,
            )
        };
        let n = starts.len();
        if ends.len() != n {
            return Err(self.err(node, "starts and ends differ in length"));
        }
        let axes = axes.unwrap_or_else(|| (0..n as i64).collect());
        let steps = steps.unwrap_or_else(|| vec![1; n]);
        if axes.len() != n || steps.len() != n || steps.contains(&0) {
            return Err(self.err(node, "axes or steps do not match starts, or a step is 0"));
        }
        Ok((starts, ends, axes, steps))
    }

    fn concat_consts(&self, node: &NodeProto, cs: &[Const], axis: i64) -> Result<Const> {
        let rank = cs[0].dims.len().max(1);
        let a = norm_axis(axis, rank).ok_or_else(|| self.err(node, "axis outside the rank"))?;
        let dims0: Vec<usize> = if cs[0].dims.is_empty() {
            vec![1]
        } else {
            cs[0].dims.clone()
        };
        let outer: usize = dims0[..a].iter().product();
        let mut dims = dims0.clone();
        dims[a] = 0;
        let mut data = Vec::new();
        for c in cs {
            let d: Vec<usize> = if c.dims.is_empty() {
                vec![1]
            } else {
                c.dims.clone()
            };
            if d.len() != dims0.len() || (0..d.len()).any(|i| i != a && d[i] != dims0[i]) {
                return Err(self.err(node, "concat of constants with different shapes"));
            }
            dims[a] += d[a];
        }
        for o in 0..outer {
            for c in cs {
                let d: Vec<usize> = if c.dims.is_empty() {
                    vec![1]
                } else {
                    c.dims.clone()
                };
                let inner: usize = d[a..].iter().product();
                data.extend_from_slice(&c.data[o * inner..(o + 1) * inner]);
            }
        }
        Ok(Const { dims, data })
    }

    fn gather_const(&self, node: &NodeProto, c: &Const, idx: &Const, axis: i64) -> Result<Const> {
        let rank = c.dims.len();
        let a =
            norm_axis(axis, rank.max(1)).ok_or_else(|| self.err(node, "axis outside the rank"))?;
        if rank == 0 {
            return Err(self.err(node, "gather from a scalar"));
        }
        let outer: usize = c.dims[..a].iter().product();
        let inner: usize = c.dims[a + 1..].iter().product();
        let n = c.dims[a];
        let mut data = Vec::new();
        for o in 0..outer {
            for &i in &idx.data {
                let i = norm_axis(i as i64, n)
                    .ok_or_else(|| self.err(node, "index outside the axis"))?;
                data.extend_from_slice(&c.data[(o * n + i) * inner..][..inner]);
            }
        }
        let mut dims = c.dims[..a].to_vec();
        dims.extend_from_slice(&idx.dims);
        dims.extend_from_slice(&c.dims[a + 1..]);
        Ok(Const { dims, data })
    }
}

/// Numpy-style slice of a constant along the given axes.
fn slice_const(c: &Const, starts: &[i64], ends: &[i64], axes: &[i64], steps: &[i64]) -> Const {
    let rank = c.dims.len().max(1);
    let dims0: Vec<usize> = if c.dims.is_empty() {
        vec![1]
    } else {
        c.dims.clone()
    };
    // Per axis: the kept indices.
    let mut keep: Vec<Vec<usize>> = dims0.iter().map(|&d| (0..d).collect()).collect();
    for k in 0..starts.len() {
        let Some(a) = norm_axis(axes[k], rank) else {
            continue;
        };
        let n = dims0[a] as i64;
        let step = steps[k];
        let clampv = |v: i64, lo: i64, hi: i64| {
            let v = if v < 0 { v + n } else { v };
            v.clamp(lo, hi)
        };
        let (mut i, end) = if step > 0 {
            (clampv(starts[k], 0, n), clampv(ends[k], 0, n))
        } else {
            (clampv(starts[k], -1, n - 1), clampv(ends[k], -1, n - 1))
        };
        let mut idx = Vec::new();
        while (step > 0 && i < end) || (step < 0 && i > end) {
            idx.push(i as usize);
            i += step;
        }
        keep[a] = idx;
    }
    let dims: Vec<usize> = keep.iter().map(Vec::len).collect();
    let si = strides(&dims0);
    let so = strides(&dims);
    let total: usize = dims.iter().product();
    let data = (0..total)
        .map(|o| {
            let src: usize = (0..dims.len())
                .map(|k| keep[k][o / so[k] % dims[k]] * si[k])
                .sum();
            c.data[src]
        })
        .collect();
    Const { dims, data }
}
