//! The project's own layer graph: what the offline flow quantizes and schedules
//! and what the engine executes. Nothing downstream of `model::import` touches
//! tract or ONNX types.
//!
//! Tensors are images of the LR frame's size (or an integer multiple of it after
//! depth-to-space) or per-channel vectors (after global pooling). Spatial sizes are
//! dynamic: a [`Graph`] runs on any H×W, so shapes are stored relative to the input.

/// Index of a tensor (a value flowing between layers).
pub type ValueId = usize;

/// Where a tensor lives spatially, relative to the LR input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spatial {
    /// `factor`·H × `factor`·W (1 for LR-sized feature maps, the scale after depth-to-space).
    Image { factor: usize },
    /// 1×1: per-channel vector produced by a frame-global reduction.
    Pooled,
}

/// Shape of a tensor: channels plus its spatial kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValueShape {
    pub channels: usize,
    pub spatial: Spatial,
}

impl ValueShape {
    /// Height and width of this tensor for an LR input of `h`×`w`.
    pub fn hw(&self, h: usize, w: usize) -> (usize, usize) {
        match self.spatial {
            Spatial::Image { factor } => (factor * h, factor * w),
            Spatial::Pooled => (1, 1),
        }
    }
}

/// An activation function, fused into the preceding conv when possible.
#[derive(Clone, Debug, PartialEq)]
pub enum Activation {
    Relu,
    Leaky(f32),
    PRelu(Vec<f32>),
    Sigmoid,
}

/// A convolution with its FP32 parameters (quantized by `quant::weights`).
#[derive(Clone, Debug, PartialEq)]
pub struct Conv {
    pub in_c: usize,
    pub out_c: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub dilation: usize,
    /// top, left, bottom, right
    pub pads: [usize; 4],
    pub groups: usize,
    /// ONNX order [out_c][in_c / groups][kh][kw].
    pub weights: Vec<f32>,
    pub bias: Vec<f32>,
}

impl Conv {
    /// Multiply-accumulates per output pixel.
    pub fn macs_per_pixel(&self) -> u64 {
        (self.out_c * (self.in_c / self.groups) * self.kh * self.kw) as u64
    }
}

/// What a layer computes.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    Conv(Conv),
    Act(Activation),
    /// Element-wise sum of two tensors of the same shape.
    Add,
    /// `x[c, y, x] · g[c]`: a feature map scaled by a per-channel vector (IMDN's attention).
    MulChannel,
    /// Concatenation along channels.
    Concat,
    /// Split along channels into the given sizes (one output per size).
    Split(Vec<usize>),
    /// Per-channel mean over the whole frame (frame-global: a barrier for patches).
    GlobalAvgPool,
    /// Per-channel population standard deviation over the whole frame (IMDN's
    /// contrast, exported as a ReduceSum/Shape/Pow chain; frame-global).
    GlobalStd,
    /// Depth-to-space with `block`; `crd` is ONNX mode CRD (= PyTorch PixelShuffle), else DCR.
    DepthToSpace {
        block: usize,
        crd: bool,
    },
    /// `DepthToSpace(x + concat(a × block²))` in DCR order, inputs `[x, a]`: the
    /// sub-pixel upsampler with a nearest-neighbour anchor (ABPN-style nets,
    /// the project's own models). Folded from its three ONNX nodes by
    /// `model::fuse` so the engine makes one pass instead of three; the sums
    /// are the same f32 additions.
    ShuffleAnchor {
        block: usize,
    },
}

impl Op {
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Conv(_) => "conv",
            Op::Act(Activation::Relu) => "relu",
            Op::Act(Activation::Leaky(_)) => "leaky_relu",
            Op::Act(Activation::PRelu(_)) => "prelu",
            Op::Act(Activation::Sigmoid) => "sigmoid",
            Op::Add => "add",
            Op::MulChannel => "mul_channel",
            Op::Concat => "concat",
            Op::Split(_) => "split",
            Op::GlobalAvgPool => "global_avg_pool",
            Op::GlobalStd => "global_std",
            Op::DepthToSpace { .. } => "depth_to_space",
            Op::ShuffleAnchor { .. } => "shuffle_anchor",
        }
    }

    /// True for frame-global reductions: a patch-based executor must see the whole
    /// frame before continuing past them.
    pub fn is_global(&self) -> bool {
        matches!(self, Op::GlobalAvgPool | Op::GlobalStd)
    }
}

/// One layer: an op with named inputs and outputs.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    /// The ONNX node name (or its first output's name when the node is unnamed).
    pub name: String,
    pub op: Op,
    pub inputs: Vec<ValueId>,
    pub outputs: Vec<ValueId>,
}

/// The model: layers in a valid execution order.
#[derive(Clone, Debug)]
pub struct Graph {
    pub layers: Vec<Layer>,
    pub values: Vec<ValueShape>,
    pub value_names: Vec<String>,
    pub input: ValueId,
    pub output: ValueId,
    pub scale: usize,
}

impl Graph {
    /// MACs of layer `i` for an LR input of `h`×`w` (convs and the element-wise ops,
    /// counting one MAC per output element for the latter).
    pub fn layer_macs(&self, i: usize, h: usize, w: usize) -> u64 {
        let l = &self.layers[i];
        let out = self.values[l.outputs[0]];
        let (oh, ow) = out.hw(h, w);
        match &l.op {
            Op::Conv(c) => c.macs_per_pixel() * (oh * ow) as u64,
            Op::Split(_) | Op::Concat | Op::DepthToSpace { .. } => 0,
            Op::ShuffleAnchor { .. } => (self.values[l.inputs[0]].channels * h * w) as u64,
            Op::GlobalAvgPool | Op::GlobalStd => {
                let inp = self.values[l.inputs[0]];
                let (ih, iw) = inp.hw(h, w);
                (inp.channels * ih * iw) as u64
            }
            _ => (out.channels * oh * ow) as u64,
        }
    }

    /// Total MACs for an LR input of `h`×`w`.
    pub fn total_macs(&self, h: usize, w: usize) -> u64 {
        (0..self.layers.len())
            .map(|i| self.layer_macs(i, h, w))
            .sum()
    }

    /// Indices of the conv layers, in execution order.
    pub fn conv_layers(&self) -> Vec<usize> {
        (0..self.layers.len())
            .filter(|&i| matches!(self.layers[i].op, Op::Conv(_)))
            .collect()
    }

    /// Number of parameters (conv weights and biases, PReLU slopes).
    pub fn params(&self) -> usize {
        self.layers
            .iter()
            .map(|l| match &l.op {
                Op::Conv(c) => c.weights.len() + c.bias.len(),
                Op::Act(Activation::PRelu(a)) => a.len(),
                _ => 0,
            })
            .sum()
    }

    /// For each value, the layers that consume it.
    pub fn consumers(&self) -> Vec<Vec<usize>> {
        let mut out = vec![Vec::new(); self.values.len()];
        for (i, l) in self.layers.iter().enumerate() {
            for &v in &l.inputs {
                out[v].push(i);
            }
        }
        out
    }

    /// For each value, the layer that produces it (None for the input).
    pub fn producers(&self) -> Vec<Option<usize>> {
        let mut out = vec![None; self.values.len()];
        for (i, l) in self.layers.iter().enumerate() {
            for &v in &l.outputs {
                out[v] = Some(i);
            }
        }
        out
    }

    /// A short human-readable table: one line per layer with kind, shapes and MACs
    /// for an LR input of `h`×`w`.
    pub fn summary(&self, h: usize, w: usize) -> String {
        let mut s = String::new();
        for (i, l) in self.layers.iter().enumerate() {
            let out = self.values[l.outputs[0]];
            let (oh, ow) = out.hw(h, w);
            let detail = match &l.op {
                Op::Conv(c) => format!("{}x{} {}->{} g{}", c.kh, c.kw, c.in_c, c.out_c, c.groups),
                _ => String::new(),
            };
            s.push_str(&format!(
                "{i:3} {:<16} {:<14} out {}x{}x{} macs {:>12}  {}\n",
                l.op.kind(),
                detail,
                out.channels,
                oh,
                ow,
                self.layer_macs(i, h, w),
                l.name
            ));
        }
        s
    }
}
