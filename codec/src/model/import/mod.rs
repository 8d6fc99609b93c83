//! ONNX → [`Graph`] lowering.
//!
//! We read the ONNX protobuf with tract-onnx's parser and lower node by node,
//! rather than walking tract's decluttered `TypedModel`: tract's typed ops (conv
//! as a matmul-with-im2col op, depth-to-space as reshape/permute chains, symbolic
//! shape arithmetic) change between releases and would have to be pattern-matched
//! back into layers, whereas ONNX ops are a stable contract. tract remains the
//! FP32 reference (`model::reference`), and `tests` check that our float executor
//! over this graph reproduces tract's output.
//!
//! Constant and shape-only subgraphs are folded while lowering. IMDN's exported
//! contrast-aware attention computes a per-channel mean and standard deviation as
//! ReduceSum → ReduceSum → Shape/Gather/Mul/Cast → Div (→ Sub → Pow(2) → … → Pow(0.5));
//! those chains are tracked symbolically ([`Lv`]) and become one `GlobalAvgPool`
//! or `GlobalStd` layer.
mod fold;
mod layers;
mod shuffle;

use std::collections::HashMap;
use std::path::Path;

use tract_onnx::pb::{AttributeProto, NodeProto, TensorProto};

use super::graph::{Activation, BinOp, Conv, Graph, Layer, Op, Spatial, ValueId, ValueShape};
use crate::error::{Error, Result};

const SUPPORTED: &str = "Conv (any groups, dilation, stride), ConvTranspose, Pad, Relu, LeakyRelu, PRelu, \
Sigmoid, Tanh, Clip, HardSigmoid, HardSwish, Gelu, Erf, Add, Sub, Mul, Div (maps, per-channel vectors, \
constants), Split, Slice (channels), Concat, DepthToSpace (or Reshape-Transpose-Reshape), Resize/Upsample (nearest, linear, cubic), \
MaxPool, AveragePool, GlobalAveragePool, ReduceMean (H, W), ReduceSum/Pow (mean/std patterns), shape \
subgraphs (Shape, Gather, Unsqueeze, Squeeze, Concat, Cast, Reshape, Transpose, Slice, ConstantOfShape), \
Constant, Identity";

/// A constant tensor folded at import.
#[derive(Clone, Debug)]
struct Const {
    dims: Vec<usize>,
    data: Vec<f64>,
}

/// What an ONNX value lowers to.
#[derive(Clone, Debug)]
enum Lv {
    Tensor(ValueId),
    Const(Const),
    /// A 1-D shape vector (Shape(v), sliced or concatenated): see `fold`.
    Dims(Vec<fold::Dim>),
    /// k · Gather(Shape(v), axis)
    DimMul(ValueId, usize, usize),
    /// A map viewed as 6-D for a hand-written pixel shuffle: x reshaped to
    /// (1, d0, d1, d2, H, W) (`shuffle.rs`).
    View6(ValueId, [usize; 3]),
    /// That view transposed into a depth-to-space order, before the final reshape.
    Shuffled {
        x: ValueId,
        block: usize,
        crd: bool,
    },
    /// Gather(Shape(v), axis)
    Dim(ValueId, usize),
    /// H·W of v (Mul of its two spatial dims, possibly Cast)
    HwCount(ValueId),
    /// ReduceSum over W (axis 3) of `inner` applied to v: partial spatial sum
    SumW(Box<Lv>),
    /// ReduceSum over H and W
    SumHw(Box<Lv>),
    /// mean over H·W of v
    Mean(ValueId),
    /// v − mean(v)
    Centered(ValueId),
    /// (v − mean(v))²
    SqCentered(ValueId),
    /// mean((v − mean(v))²)
    Var(ValueId),
}

struct Lowering<'p> {
    path: &'p Path,
    values: Vec<ValueShape>,
    value_names: Vec<String>,
    layers: Vec<Layer>,
    env: HashMap<String, Lv>,
}

/// Load `path` and lower it to a [`Graph`].
///
/// The model is validated first (`validate::check`: finite constants, shape
/// limits, one image input and output), and the lowering runs under
/// `validate::no_panic`, so a malformed file is an error, never a crash.
pub fn import(path: &Path) -> Result<Graph> {
    import_bytes(&super::ModelBytes::read(path)?)
}

/// Lower an ONNX model held in memory (a file read by [`super::ModelBytes::read`]
/// or a bundled model compiled into the codec); errors name `model.label`.
pub fn import_bytes(model: &super::ModelBytes) -> Result<Graph> {
    let path = model.label.as_path();
    let proto = super::validate::parse(model)?;
    super::validate::check(path, &proto)?;
    super::validate::no_panic(path, "importing", || lower(path, &proto))
}

fn lower(path: &Path, proto: &tract_onnx::pb::ModelProto) -> Result<Graph> {
    let graph = proto
        .graph
        .as_ref()
        .ok_or_else(|| Error::model(path, "ONNX file has no graph"))?;
    let mut lw = Lowering {
        path,
        values: vec![],
        value_names: vec![],
        layers: vec![],
        env: HashMap::new(),
    };
    for t in &graph.initializer {
        let c = lw.tensor_const(t)?;
        lw.env.insert(t.name.clone(), Lv::Const(c));
    }
    let inputs: Vec<_> = graph
        .input
        .iter()
        .filter(|i| !lw.env.contains_key(&i.name))
        .collect();
    if inputs.len() != 1 {
        return Err(Error::model(
            path,
            format!(
                "has {} image inputs (expected exactly one, NCHW RGB)",
                inputs.len()
            ),
        ));
    }
    // RGB, or luma for a model declaring one input channel (FSRCNN, ESPCN).
    let in_c = match super::validate::dims_of(inputs[0]).and_then(|d| d.get(1).copied().flatten()) {
        Some(1) => 1,
        _ => 3,
    };
    let input = lw.new_value(
        &inputs[0].name,
        ValueShape {
            channels: in_c,
            spatial: Spatial::Image { factor: 1 },
        },
    );
    lw.env.insert(inputs[0].name.clone(), Lv::Tensor(input));
    for node in &graph.node {
        lw.node(node)?;
    }
    if graph.output.len() != 1 {
        return Err(Error::model(
            path,
            format!(
                "has {} outputs (expected exactly one image)",
                graph.output.len()
            ),
        ));
    }
    let out_name = &graph.output[0].name;
    let output = match lw.env.get(out_name) {
        Some(Lv::Tensor(v)) => *v,
        _ => {
            return Err(Error::model(
                path,
                format!("output '{out_name}' is not an image tensor"),
            ));
        }
    };
    let oshape = lw.values[output];
    let scale = match oshape.spatial {
        Spatial::Image { factor } if oshape.channels == in_c => factor,
        _ => {
            return Err(Error::model(
                path,
                format!(
                    "output has {} channels, {:?} (expected {} ×2, ×3 or ×4 like the input)",
                    oshape.channels,
                    oshape.spatial,
                    if in_c == 1 {
                        "a luma image"
                    } else {
                        "an RGB image"
                    }
                ),
            ));
        }
    };
    if !(2..=4).contains(&scale) {
        return Err(Error::model(
            path,
            format!("upscales ×{scale} (expected 2, 3 or 4)"),
        ));
    }
    let mut g = Graph {
        layers: lw.layers,
        values: lw.values,
        value_names: lw.value_names,
        input,
        output,
        scale,
    };
    super::fuse::shuffle_anchor(&mut g);
    eliminate_dead_layers(&mut g);
    Ok(g)
}

/// Drops layers none of whose outputs reach the graph output (e.g. a mean that
/// only fed a folded variance).
fn eliminate_dead_layers(g: &mut Graph) {
    let mut live = vec![false; g.values.len()];
    live[g.output] = true;
    let mut keep = vec![false; g.layers.len()];
    for (i, l) in g.layers.iter().enumerate().rev() {
        if l.outputs.iter().any(|&v| live[v]) {
            keep[i] = true;
            for &v in &l.inputs {
                live[v] = true;
            }
        }
    }
    let mut i = 0;
    g.layers.retain(|_| {
        i += 1;
        keep[i - 1]
    });
}

fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

fn attr_ints(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(node, name).map(|a| a.ints.clone())
}

impl Lowering<'_> {
    fn err(&self, node: &NodeProto, msg: impl std::fmt::Display) -> Error {
        Error::model(
            self.path,
            format!("node '{}' ({}): {msg}", node_name(node), node.op_type),
        )
    }

    fn unsupported(&self, node: &NodeProto, what: &str) -> Error {
        Error::UnsupportedOp {
            op: if what.is_empty() {
                node.op_type.clone()
            } else {
                format!("{} ({what})", node.op_type)
            },
            node: node_name(node),
            supported: SUPPORTED,
        }
    }

    fn new_value(&mut self, name: &str, shape: ValueShape) -> ValueId {
        self.values.push(shape);
        self.value_names.push(name.to_owned());
        self.values.len() - 1
    }

    fn tensor_const(&self, t: &TensorProto) -> Result<Const> {
        let dims: Vec<usize> = t.dims.iter().map(|&d| d.max(0) as usize).collect();
        let n: usize = dims.iter().product();
        let raw = &t.raw_data;
        let data: Vec<f64> = match t.data_type {
            1 if !raw.is_empty() => raw
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64)
                .collect(),
            1 => t.float_data.iter().map(|&x| x as f64).collect(),
            7 if !raw.is_empty() => raw
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f64)
                .collect(),
            7 => t.int64_data.iter().map(|&x| x as f64).collect(),
            6 if !raw.is_empty() => raw
                .chunks_exact(4)
                .map(|b| i32::from_le_bytes(b.try_into().unwrap()) as f64)
                .collect(),
            6 => t.int32_data.iter().map(|&x| x as f64).collect(),
            11 if !raw.is_empty() => raw
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
                .collect(),
            11 => t.double_data.clone(),
            dt => {
                return Err(Error::model(
                    self.path,
                    format!(
                        "tensor '{}' has ONNX data type {dt} (expected float, double, int32 or int64)",
                        t.name
                    ),
                ));
            }
        };
        if data.len() != n {
            return Err(Error::model(
                self.path,
                format!(
                    "tensor '{}' holds {} values for dims {:?} (external data is not supported)",
                    t.name,
                    data.len(),
                    dims
                ),
            ));
        }
        Ok(Const { dims, data })
    }

    fn get(&self, node: &NodeProto, i: usize) -> Result<Lv> {
        let name = node
            .input
            .get(i)
            .ok_or_else(|| self.err(node, format!("missing input {i}")))?;
        self.env
            .get(name)
            .cloned()
            .ok_or_else(|| self.err(node, format!("input '{name}' is not defined before use")))
    }

    fn tensor(&mut self, node: &NodeProto, i: usize) -> Result<ValueId> {
        let lv = self.get(node, i)?;
        self.materialize(node, lv)
    }

    /// Turns a folded value into a real tensor, emitting a layer if needed.
    fn materialize(&mut self, node: &NodeProto, lv: Lv) -> Result<ValueId> {
        match lv {
            Lv::Tensor(v) => Ok(v),
            Lv::Mean(v) => Ok(self.global(node, Op::GlobalAvgPool, v)),
            Lv::Var(_) | Lv::Centered(_) | Lv::SqCentered(_) | Lv::SumW(_) | Lv::SumHw(_) => {
                Err(self.unsupported(node, "intermediate of a mean/std pattern used as a tensor"))
            }
            Lv::Const(_) => Err(self.unsupported(node, "constant used as an image tensor")),
            Lv::View6(..) | Lv::Shuffled { .. } => Err(self.unsupported(
                node,
                "intermediate of a Reshape-Transpose-Reshape pixel shuffle used as a tensor",
            )),
            Lv::Dims(_) | Lv::Dim(..) | Lv::DimMul(..) | Lv::HwCount(_) => {
                Err(self.unsupported(node, "shape value used as a tensor"))
            }
        }
    }

    fn global(&mut self, node: &NodeProto, op: Op, v: ValueId) -> ValueId {
        let c = self.values[v].channels;
        let out = self.new_value(
            &format!("{}:{}", node_name(node), op.kind()),
            ValueShape {
                channels: c,
                spatial: Spatial::Pooled,
            },
        );
        self.layers.push(Layer {
            name: format!("{}/{}", node_name(node), op.kind()),
            op,
            inputs: vec![v],
            outputs: vec![out],
        });
        out
    }

    fn emit(
        &mut self,
        node: &NodeProto,
        op: Op,
        inputs: Vec<ValueId>,
        shapes: Vec<ValueShape>,
    ) -> Result<()> {
        if shapes.len() != node.output.len() {
            return Err(self.err(
                node,
                format!("{} outputs (expected {})", node.output.len(), shapes.len()),
            ));
        }
        let outputs: Vec<ValueId> = node
            .output
            .iter()
            .zip(shapes)
            .map(|(n, s)| self.new_value(n, s))
            .collect();
        for (n, &v) in node.output.iter().zip(&outputs) {
            self.env.insert(n.clone(), Lv::Tensor(v));
        }
        self.layers.push(Layer {
            name: node_name(node),
            op,
            inputs,
            outputs,
        });
        Ok(())
    }

    fn set(&mut self, node: &NodeProto, lv: Lv) {
        if let Some(o) = node.output.first() {
            self.env.insert(o.clone(), lv);
        }
    }

    fn node(&mut self, node: &NodeProto) -> Result<()> {
        if self.fold(node)? {
            return Ok(());
        }
        match node.op_type.as_str() {
            "Constant" => {
                let t = attr(node, "value")
                    .and_then(|a| a.t.as_ref())
                    .ok_or_else(|| self.unsupported(node, "non-tensor constant"))?;
                let c = self.tensor_const(t)?;
                self.set(node, Lv::Const(c));
            }
            "Identity" => {
                let lv = self.get(node, 0)?;
                self.set(node, lv);
            }
            "Conv" => self.conv(node)?,
            "Relu" | "LeakyRelu" | "Sigmoid" | "PRelu" => {
                let x = self.tensor(node, 0)?;
                let act = match node.op_type.as_str() {
                    "Relu" => Activation::Relu,
                    "Sigmoid" => Activation::Sigmoid,
                    "LeakyRelu" => {
                        Activation::Leaky(attr(node, "alpha").map(|a| a.f).unwrap_or(0.01))
                    }
                    _ => {
                        let Lv::Const(slope) = self.get(node, 1)? else {
                            return Err(self.unsupported(node, "non-constant slope"));
                        };
                        let c = self.values[x].channels;
                        let s: Vec<f32> = slope.data.iter().map(|&v| v as f32).collect();
                        let s = if s.len() == 1 { vec![s[0]; c] } else { s };
                        if s.len() != c {
                            return Err(
                                self.err(node, format!("{} slopes for {c} channels", s.len()))
                            );
                        }
                        Activation::PRelu(s)
                    }
                };
                let shape = self.values[x];
                self.emit(node, Op::Act(act), vec![x], vec![shape])?;
            }
            "Split" => {
                let x = self.tensor(node, 0)?;
                let axis = attr(node, "axis").map(|a| a.i).unwrap_or(0);
                if axis != 1 && axis != -3 {
                    return Err(self.unsupported(node, "split along an axis other than channels"));
                }
                let c = self.values[x].channels;
                let sizes: Vec<usize> = match (
                    node.input.get(1).filter(|s| !s.is_empty()),
                    attr_ints(node, "split"),
                ) {
                    (Some(_), _) => match self.get(node, 1)? {
                        Lv::Const(k) => k.data.iter().map(|&v| v as usize).collect(),
                        _ => return Err(self.unsupported(node, "non-constant split sizes")),
                    },
                    (None, Some(s)) if !s.is_empty() => s.iter().map(|&v| v as usize).collect(),
                    _ => {
                        let n = node.output.len();
                        if n == 0 || !c.is_multiple_of(n) {
                            return Err(self.err(
                                node,
                                format!("cannot split {c} channels in {n} equal parts"),
                            ));
                        }
                        vec![c / n; n]
                    }
                };
                if sizes.iter().sum::<usize>() != c {
                    return Err(self.err(
                        node,
                        format!("split sizes {sizes:?} do not add up to {c} channels"),
                    ));
                }
                let sp = self.values[x].spatial;
                let shapes = sizes
                    .iter()
                    .map(|&s| ValueShape {
                        channels: s,
                        spatial: sp,
                    })
                    .collect();
                self.emit(node, Op::Split(sizes), vec![x], shapes)?;
            }
            "Concat" => {
                let axis = attr(node, "axis").map(|a| a.i).unwrap_or(0);
                if axis != 1 && axis != -3 {
                    return Err(self.unsupported(node, "concat along an axis other than channels"));
                }
                let ins: Vec<ValueId> = (0..node.input.len())
                    .map(|i| self.tensor(node, i))
                    .collect::<Result<_>>()?;
                let sp = self.values[ins[0]].spatial;
                if ins.iter().any(|&v| self.values[v].spatial != sp) {
                    return Err(self.err(node, "inputs have different spatial sizes"));
                }
                let c = ins.iter().map(|&v| self.values[v].channels).sum();
                self.emit(
                    node,
                    Op::Concat,
                    ins,
                    vec![ValueShape {
                        channels: c,
                        spatial: sp,
                    }],
                )?;
            }
            "GlobalAveragePool" => {
                let x = self.tensor(node, 0)?;
                let out = self.global(node, Op::GlobalAvgPool, x);
                self.set(node, Lv::Tensor(out));
            }
            "ReduceSum" => self.reduce_sum(node)?,
            "ReduceMean" => self.reduce_mean(node)?,
            "Tanh" | "Erf" | "HardSwish" | "HardSigmoid" | "Gelu" | "Clip" => {
                self.activation(node)?
            }
            "Slice" => self.slice(node)?,
            "Resize" | "Upsample" => self.resize(node)?,
            "ConvTranspose" => self.conv_transpose(node)?,
            "MaxPool" | "AveragePool" => self.pool(node)?,
            "Pad" => self.pad(node)?,
            "Reshape" => self.reshape(node)?,
            "Transpose" => self.transpose(node)?,
            "Mul" => self.mul(node)?,
            "Div" => {
                let (a, b) = (self.get(node, 0)?, self.get(node, 1)?);
                let out = match (a, b) {
                    (Lv::SumHw(inner), Lv::HwCount(v)) => match *inner {
                        Lv::Tensor(x) if x == v => Lv::Mean(x),
                        Lv::SqCentered(x) if x == v => Lv::Var(x),
                        _ => {
                            return Err(self
                                .unsupported(node, "division of a sum by another tensor's size"));
                        }
                    },
                    (a, b) => return self.eltwise(node, BinOp::Div, a, b),
                };
                self.set(node, out);
            }
            "Sub" => {
                let (a, b) = (self.get(node, 0)?, self.get(node, 1)?);
                match (a, b) {
                    (Lv::Tensor(x), Lv::Mean(m)) if x == m => self.set(node, Lv::Centered(x)),
                    (a, b) => self.eltwise(node, BinOp::Sub, a, b)?,
                }
            }
            "Pow" => {
                let (a, Lv::Const(e)) = (self.get(node, 0)?, self.get(node, 1)?) else {
                    return Err(self.unsupported(node, "non-constant exponent"));
                };
                let e = e.data.first().copied().unwrap_or(f64::NAN);
                match (a, e) {
                    (Lv::Centered(x), 2.0) => self.set(node, Lv::SqCentered(x)),
                    (Lv::Var(x), 0.5) => {
                        let out = self.global(node, Op::GlobalStd, x);
                        self.set(node, Lv::Tensor(out));
                    }
                    _ => {
                        return Err(self
                            .unsupported(node, "only (x − mean)² and variance^0.5 are supported"));
                    }
                }
            }
            "Add" => {
                let (a, b) = (self.get(node, 0)?, self.get(node, 1)?);
                self.eltwise(node, BinOp::Add, a, b)?;
            }
            "DepthToSpace" => {
                let x = self.tensor(node, 0)?;
                let block = attr(node, "blocksize").map(|a| a.i).unwrap_or(0) as usize;
                let crd = attr(node, "mode")
                    .map(|a| a.s.as_slice() == b"CRD")
                    .unwrap_or(false);
                let s = self.values[x];
                let Spatial::Image { factor } = s.spatial else {
                    return Err(self.unsupported(node, "depth-to-space of a pooled tensor"));
                };
                if block < 2 || !s.channels.is_multiple_of(block * block) {
                    return Err(self.err(
                        node,
                        format!("blocksize {block} does not divide {} channels", s.channels),
                    ));
                }
                let shape = ValueShape {
                    channels: s.channels / (block * block),
                    spatial: Spatial::Image {
                        factor: factor * block,
                    },
                };
                self.emit(node, Op::DepthToSpace { block, crd }, vec![x], vec![shape])?;
            }
            _ => return Err(self.unsupported(node, "")),
        }
        Ok(())
    }

    fn conv(&mut self, node: &NodeProto) -> Result<()> {
        let x = self.tensor(node, 0)?;
        let Lv::Const(w) = self.get(node, 1)? else {
            return Err(self.unsupported(node, "non-constant weights"));
        };
        if w.dims.len() != 4 {
            return Err(self.unsupported(node, "only 2-D convolutions are supported"));
        }
        let (out_c, icg, kh, kw) = (w.dims[0], w.dims[1], w.dims[2], w.dims[3]);
        // Weights may come from a Constant node, which `validate` does not tie to
        // the conv: the same limits again.
        use super::validate::{MAX_CHANNELS, MAX_KERNEL};
        if !(1..=MAX_CHANNELS).contains(&out_c)
            || !(1..=MAX_CHANNELS).contains(&icg)
            || !(1..=MAX_KERNEL).contains(&kh)
            || !(1..=MAX_KERNEL).contains(&kw)
        {
            return Err(self.err(
                node,
                format!(
                    "weights have dims {:?} (expected 1..={MAX_CHANNELS} channels, 1..={MAX_KERNEL} kernel)",
                    w.dims
                ),
            ));
        }
        let groups = attr(node, "group").map(|a| a.i).unwrap_or(1).max(1) as usize;
        let in_c = self.values[x].channels;
        if icg * groups != in_c {
            return Err(self.err(
                node,
                format!(
                    "weights expect {} input channels, tensor has {in_c}",
                    icg * groups
                ),
            ));
        }
        let bias = if node.input.len() > 2 && !node.input[2].is_empty() {
            let Lv::Const(b) = self.get(node, 2)? else {
                return Err(self.unsupported(node, "non-constant bias"));
            };
            b.data.iter().map(|&v| v as f32).collect()
        } else {
            vec![0.0; out_c]
        };
        let strides = attr_ints(node, "strides").unwrap_or_else(|| vec![1, 1]);
        let dil = attr_ints(node, "dilations").unwrap_or_else(|| vec![1, 1]);
        if strides.len() != 2 || strides[0] != strides[1] || strides[0] < 1 {
            return Err(self.unsupported(node, "anisotropic strides"));
        }
        let stride = strides[0] as usize;
        if dil.len() != 2 || dil[0] != dil[1] || dil[0] < 1 {
            return Err(self.unsupported(node, "anisotropic dilation"));
        }
        let pads = match (
            attr_ints(node, "pads"),
            attr(node, "auto_pad").map(|a| a.s.clone()),
        ) {
            (Some(p), _) if p.len() == 4 => {
                [p[0] as usize, p[1] as usize, p[2] as usize, p[3] as usize]
            }
            (_, Some(ap)) if (ap == b"SAME_UPPER" || ap == b"SAME_LOWER") && stride == 1 => {
                let d = dil[0] as usize;
                let (th, tw) = (d * (kh - 1), d * (kw - 1));
                let lo = |t: usize| {
                    if ap == b"SAME_UPPER" {
                        t / 2
                    } else {
                        t - t / 2
                    }
                };
                [lo(th), lo(tw), th - lo(th), tw - lo(tw)]
            }
            _ => [0; 4],
        };
        let d = dil[0] as usize;
        // A conv that changes the map's size (RFDN's strided conv, one after an
        // explicit Pad) gives a reduced map, run whole-frame and in float.
        let sp = self.values[x].spatial;
        let pooled_1x1 =
            sp == Spatial::Pooled && kh == 1 && kw == 1 && stride == 1 && pads == [0; 4];
        let out_sp = if pooled_1x1 {
            Spatial::Pooled
        } else {
            sp.window(
                [kh, kw],
                [stride; 2],
                [d; 2],
                [pads[0] + pads[2], pads[1] + pads[3]],
            )
            .ok_or_else(|| {
                self.unsupported(node, "convolution of a per-channel vector wider than 1x1")
            })?
        };
        let conv = Conv {
            in_c,
            out_c,
            kh,
            kw,
            stride,
            dilation: d,
            pads,
            groups,
            weights: w.data.iter().map(|&v| v as f32).collect(),
            bias,
        };
        if conv.bias.len() != out_c {
            return Err(self.err(
                node,
                format!("{} biases for {out_c} output channels", conv.bias.len()),
            ));
        }
        self.emit(
            node,
            Op::Conv(conv),
            vec![x],
            vec![ValueShape {
                channels: out_c,
                spatial: out_sp,
            }],
        )
    }

    fn reduce_axes(&self, node: &NodeProto) -> Result<Vec<i64>> {
        if let Some(a) = attr_ints(node, "axes").filter(|a| !a.is_empty()) {
            return Ok(a);
        }
        match node.input.get(1).filter(|s| !s.is_empty()) {
            Some(_) => match self.get(node, 1)? {
                Lv::Const(c) => Ok(c.data.iter().map(|&v| v as i64).collect()),
                _ => Err(self.unsupported(node, "non-constant axes")),
            },
            None => Err(self.unsupported(node, "reduction over all axes")),
        }
    }

    fn reduce_sum(&mut self, node: &NodeProto) -> Result<()> {
        let mut axes: Vec<i64> = self
            .reduce_axes(node)?
            .into_iter()
            .map(|a| if a < 0 { a + 4 } else { a })
            .collect();
        axes.sort();
        let keep = attr(node, "keepdims").map(|a| a.i).unwrap_or(1) == 1;
        if !keep {
            return Err(self.unsupported(node, "ReduceSum without keepdims"));
        }
        let x = self.get(node, 0)?;
        let lv = match (x, axes.as_slice()) {
            (x @ (Lv::Tensor(_) | Lv::SqCentered(_)), [3]) => Lv::SumW(Box::new(x)),
            (Lv::SumW(inner), [2]) => Lv::SumHw(inner),
            (x @ (Lv::Tensor(_) | Lv::SqCentered(_)), [2, 3]) => Lv::SumHw(Box::new(x)),
            _ => {
                return Err(self.unsupported(
                    node,
                    "only spatial sums feeding a mean or variance are supported",
                ));
            }
        };
        self.set(node, lv);
        Ok(())
    }

    fn mul(&mut self, node: &NodeProto) -> Result<()> {
        let (a, b) = (self.get(node, 0)?, self.get(node, 1)?);
        match (a, b) {
            (Lv::Dim(v, 2), Lv::Dim(u, 3)) | (Lv::Dim(v, 3), Lv::Dim(u, 2)) if u == v => {
                self.set(node, Lv::HwCount(v));
                Ok(())
            }
            (Lv::Dim(v, a), Lv::Const(k)) | (Lv::Const(k), Lv::Dim(v, a))
                if k.data.len() == 1 && k.data[0] >= 1.0 && k.data[0].fract() == 0.0 =>
            {
                self.set(node, Lv::DimMul(v, a, k.data[0] as usize));
                Ok(())
            }
            (a, b) => self.eltwise(node, BinOp::Mul, a, b),
        }
    }
}

fn node_name(node: &NodeProto) -> String {
    if node.name.is_empty() {
        node.output.first().cloned().unwrap_or_default()
    } else {
        node.name.clone()
    }
}
