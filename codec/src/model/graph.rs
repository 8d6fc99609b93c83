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
    /// A map whose size is not a multiple of the frame's: what strided convs,
    /// pooling and padding make of `factor`·H × `factor`·W (RFDN's ESA branch
    /// works on such a map). Not banded: layers on it run whole-frame.
    Reduced(Reduced),
}

/// Most size steps a [`Reduced`] map records per axis (RFDN's ESA takes 2).
pub const MAX_SIZE_STEPS: usize = 4;

/// One axis of a [`Spatial::Reduced`] map: from `factor`·n, each step maps a
/// size m to ⌊(m + off − 1) / stride⌋ + 1 (a conv or pooling window: off =
/// pads − dilation·(k − 1); padding alone: stride 1, off = pads).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SizeSteps {
    steps: [(i32, u32); MAX_SIZE_STEPS],
    n: u8,
}

impl SizeSteps {
    const NONE: SizeSteps = SizeSteps {
        steps: [(0, 1); MAX_SIZE_STEPS],
        n: 0,
    };

    /// The size after the steps from `m`, or None where a window no longer fits.
    pub fn apply(&self, m: usize) -> Option<usize> {
        let mut m = m as i64;
        for &(off, s) in &self.steps[..self.n as usize] {
            let span = m + off as i64 - 1;
            if span < 0 {
                return None;
            }
            m = span / s as i64 + 1;
        }
        Some(m as usize)
    }

    /// These steps then one more; stride-1 steps merge into an offset, so
    /// `None` (too many strided steps) is rare.
    fn then(mut self, off: i32, stride: u32) -> Option<SizeSteps> {
        if self.n > 0 && self.steps[self.n as usize - 1].1 == 1 {
            // ⌊(m + a − 1)/1⌋ + 1 = m + a, so a trailing stride-1 step folds into the next.
            let (a, _) = self.steps[self.n as usize - 1];
            self.steps[self.n as usize - 1] = (a + off, stride);
        } else {
            if self.n as usize == MAX_SIZE_STEPS {
                return None;
            }
            self.steps[self.n as usize] = (off, stride);
            self.n += 1;
        }
        // A lone stride-1 step of offset 0 is no step.
        if self.n > 0 && self.steps[self.n as usize - 1] == (0, 1) {
            self.n -= 1;
        }
        Some(self)
    }
}

/// A reduced map: `factor`·(H, W) followed by per-axis size steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reduced {
    pub factor: usize,
    pub rows: SizeSteps,
    pub cols: SizeSteps,
}

impl Spatial {
    /// This map after a window of kernel `k`, stride `s`, dilation `d` and
    /// total padding `pads` (rows, cols); `None` when it cannot be expressed
    /// (a per-channel vector, or more than [`MAX_SIZE_STEPS`] strided steps).
    pub fn window(
        self,
        k: [usize; 2],
        s: [usize; 2],
        d: [usize; 2],
        pads: [usize; 2],
    ) -> Option<Spatial> {
        let r = match self {
            Spatial::Image { factor } => Reduced {
                factor,
                rows: SizeSteps::NONE,
                cols: SizeSteps::NONE,
            },
            Spatial::Reduced(r) => r,
            Spatial::Pooled => return None,
        };
        let off = |i: usize| pads[i] as i32 - (d[i] * (k[i] - 1)) as i32;
        let r = Reduced {
            factor: r.factor,
            rows: r.rows.then(off(0), s[0] as u32)?,
            cols: r.cols.then(off(1), s[1] as u32)?,
        };
        Some(if r.rows.n == 0 && r.cols.n == 0 {
            Spatial::Image { factor: r.factor }
        } else {
            Spatial::Reduced(r)
        })
    }
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
            // A frame too small for the model's windows gives 0 here;
            // `Graph::check_size` turns that into an error before running.
            Spatial::Reduced(r) => (
                r.rows.apply(r.factor * h).unwrap_or(0),
                r.cols.apply(r.factor * w).unwrap_or(0),
            ),
        }
    }
}

/// An element-wise function. Relu, Leaky and PRelu are fused into the
/// preceding conv's integer epilogue when possible; the rest run in float.
#[derive(Clone, Debug, PartialEq)]
pub enum Activation {
    Relu,
    Leaky(f32),
    PRelu(Vec<f32>),
    Sigmoid,
    Tanh,
    /// Clip / ReLU6: min(max(x, lo), hi).
    Clip(f32, f32),
    /// max(0, min(1, α·x + β)).
    HardSigmoid(f32, f32),
    /// x · max(0, min(1, x/6 + 1/2)).
    HardSwish,
    /// x · Φ(x), the exact (erf) form.
    Gelu,
    /// erf(x): what exporters below opset 20 decompose GELU into.
    Erf,
}

/// An element-wise binary operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
}

impl BinOp {
    #[inline]
    pub fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            BinOp::Add => a + b,
            BinOp::Sub => a - b,
            BinOp::Mul => a * b,
            BinOp::Div => a / b,
        }
    }
}

/// How [`Op::Resize`] interpolates (ONNX Resize `mode` and its options).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Interp {
    /// `nearest_mode`: round_prefer_floor, round_prefer_ceil, floor or ceil.
    Nearest(NearestMode),
    Linear,
    /// `cubic_coeff_a` (−0.75 for PyTorch and ONNX's default).
    Cubic(f32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NearestMode {
    RoundPreferFloor,
    RoundPreferCeil,
    Floor,
    Ceil,
}

/// ONNX Resize `coordinate_transformation_mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoordMode {
    HalfPixel,
    PytorchHalfPixel,
    AlignCorners,
    Asymmetric,
}

/// Border handling of [`Op::Pad`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PadMode {
    Constant(f32),
    Reflect,
    Edge,
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

    /// True when the output has the input's size (stride 1, "same" padding):
    /// the only convs the integer units and the band executor run. Others
    /// (RFDN's strided conv, a conv after an explicit Pad) run in float.
    pub fn is_same(&self) -> bool {
        self.stride == 1
            && self.pads[0] + self.pads[2] == self.dilation * (self.kh - 1)
            && self.pads[1] + self.pads[3] == self.dilation * (self.kw - 1)
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
    /// `a ∘ b` between two tensors: equal shapes, or one of them a per-channel
    /// vector or a 1-channel map, broadcast (PAN's pixel attention, GELU's
    /// x·Φ(x), a gate of another branch).
    Binary(BinOp),
    /// `x ∘ c` (or `c ∘ x` when `const_first`) with a constant per channel
    /// (`c.len()` = channels) or a scalar (`c.len()` = 1): MeanShift, scaling.
    Const {
        op: BinOp,
        c: Vec<f32>,
        const_first: bool,
    },
    /// Channels `start..start + len` (ONNX Slice on the channel axis).
    SliceChannels {
        start: usize,
        len: usize,
    },
    /// Interpolation to the output value's size (ONNX Resize / Upsample).
    Resize {
        interp: Interp,
        coord: CoordMode,
    },
    /// Transposed conv (FSRCNN's upsampler); `conv.weights` in ONNX order
    /// [in_c][out_c / groups][kh][kw], `conv.stride` the upscale, and
    /// `conv.pads` the ONNX pads. Float only.
    ConvTranspose {
        conv: Conv,
        out_pad: [usize; 2],
    },
    /// Max or average pooling (ONNX MaxPool / AveragePool); pads top, left,
    /// bottom, right.
    Pool {
        max: bool,
        k: [usize; 2],
        stride: [usize; 2],
        pads: [usize; 4],
        count_include_pad: bool,
    },
    /// Spatial padding: top, left, bottom, right.
    Pad {
        pads: [usize; 4],
        mode: PadMode,
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
            Op::Act(Activation::Tanh) => "tanh",
            Op::Act(Activation::Clip(..)) => "clip",
            Op::Act(Activation::HardSigmoid(..)) => "hard_sigmoid",
            Op::Act(Activation::HardSwish) => "hard_swish",
            Op::Act(Activation::Gelu) => "gelu",
            Op::Act(Activation::Erf) => "erf",
            Op::Binary(_) => "binary",
            Op::Const { .. } => "const_op",
            Op::SliceChannels { .. } => "slice",
            Op::Resize { .. } => "resize",
            Op::ConvTranspose { .. } => "conv_transpose",
            Op::Pool { max: true, .. } => "max_pool",
            Op::Pool { max: false, .. } => "avg_pool",
            Op::Pad { .. } => "pad",
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

    /// True for ops whose output rows depend only on the same rows of their
    /// inputs (the band executor runs them band by band); the others
    /// (resampling, pooling, padding, transposed convs) run whole-frame.
    pub fn is_row_local(&self) -> bool {
        !matches!(
            self,
            Op::Conv(_)
                | Op::GlobalAvgPool
                | Op::GlobalStd
                | Op::Resize { .. }
                | Op::ConvTranspose { .. }
                | Op::Pool { .. }
                | Op::Pad { .. }
        )
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
            Op::Split(_)
            | Op::Concat
            | Op::DepthToSpace { .. }
            | Op::SliceChannels { .. }
            | Op::Pad { .. } => 0,
            Op::ConvTranspose { conv, .. } => {
                let (ih, iw) = self.values[l.inputs[0]].hw(h, w);
                conv.macs_per_pixel() * (ih * iw) as u64
            }
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

    /// True for a model of one input channel (luma: FSRCNN, ESPCN).
    pub fn is_luma(&self) -> bool {
        self.values[self.input].channels == 1
    }

    /// The network's input for an RGB frame in [0, 1]: the frame, or its
    /// MATLAB `rgb2ycbcr` Y for a luma model.
    pub fn input_of(&self, rgb: crate::tensor::Tensor) -> crate::tensor::Tensor {
        if self.is_luma() && rgb.c == 3 {
            crate::metrics::color::y_tensor(&rgb)
        } else {
            rgb
        }
    }

    /// An error naming the first layer whose output would be empty for an
    /// LR input of `h`×`w` (a frame smaller than the model's pooling windows).
    pub fn check_size(&self, h: usize, w: usize) -> Result<(), String> {
        for l in &self.layers {
            for &v in &l.outputs {
                let (oh, ow) = self.values[v].hw(h, w);
                if oh == 0 || ow == 0 {
                    return Err(format!(
                        "a {w}x{h} frame is too small for this model: layer {} ({}) would have no pixels",
                        l.name,
                        l.op.kind()
                    ));
                }
            }
        }
        Ok(())
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
                Op::ConvTranspose { conv, .. } => conv.weights.len() + conv.bias.len(),
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
