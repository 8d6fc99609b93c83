//! The NPU's two processing units (§4.1, §5 "INT8 → HVX, A16W8 → HTA"),
//! emulated with real integer kernels: a conv layer's input is quantized to
//! u8 or u16 with ⟨b, s, z⟩, multiplied with the shared 8-bit weights with exact
//! integer accumulation, and the requantization epilogue (bias, fused
//! activation, rescale) produces the output.
//!
//! Both units share one [`QConv`]: the weights are quantized and packed once
//! (§4.3: "no extra memory cost for supporting both INT8 and A16W8").
pub mod a16w8;
pub mod int8;

use crate::kernels::{self, ConvGeom, CpuLevel, PackedConv};
use crate::model::Conv;
use crate::quant::{Bits, QParams, QuantWeights, WeightGranularity};

/// A conv layer prepared for the integer units.
#[derive(Debug)]
pub struct QConv {
    pub weights: QuantWeights,
    pub packed: PackedConv,
    pub bias: Vec<f32>,
    pub in_c: usize,
    pub out_c: usize,
    pub kh: usize,
    pub kw: usize,
    pub dilation: usize,
    pub pads: [usize; 4],
    pub groups: usize,
}

impl QConv {
    /// Packs for every level the host supports (tests force each level).
    pub fn new(conv: &Conv, gran: WeightGranularity) -> QConv {
        Self::build(conv, gran, None)
    }

    /// Packs only for `level` (what an engine running at `level` holds).
    pub fn for_level(conv: &Conv, gran: WeightGranularity, level: CpuLevel) -> QConv {
        Self::build(conv, gran, Some(level))
    }

    fn build(conv: &Conv, gran: WeightGranularity, only: Option<CpuLevel>) -> QConv {
        let weights = QuantWeights::quantize(&conv.weights, conv.out_c, gran);
        let packed = PackedConv::new_for(
            &weights.q,
            conv.out_c,
            conv.in_c / conv.groups,
            conv.kh,
            conv.kw,
            conv.groups,
            only,
        );
        QConv {
            weights,
            packed,
            bias: conv.bias.clone(),
            in_c: conv.in_c,
            out_c: conv.out_c,
            kh: conv.kh,
            kw: conv.kw,
            dilation: conv.dilation,
            pads: conv.pads,
            groups: conv.groups,
        }
    }

    pub fn geom(&self, h: usize, w: usize) -> ConvGeom {
        ConvGeom {
            in_h: h,
            in_w: w,
            in_c: self.in_c,
            out_c: self.out_c,
            kh: self.kh,
            kw: self.kw,
            stride: 1,
            dilation: self.dilation,
            pad_top: self.pads[0],
            pad_left: self.pads[1],
            pad_bottom: self.pads[2],
            pad_right: self.pads[3],
            groups: self.groups,
        }
    }

    /// Epilogue constants for an input quantized with `q`:
    /// real(acc) = s_w/s_in · (acc + z·Σw + bias_q)  ⇒  mult = s_w/s_in,
    /// offset = (z·Σw + bias_q) · mult, with bias_q the i32 bias at the
    /// accumulator scale. Computed in f64 and rounded once to f32. For DRE layers
    /// this runs per frame (a few dozen values).
    pub fn epilogue_consts(&self, q: &QParams) -> (Vec<f32>, Vec<f32>) {
        let wsum = self.packed.wsum();
        let mut mult = Vec::with_capacity(self.out_c);
        let mut offset = Vec::with_capacity(self.out_c);
        for (oc, &ws) in wsum.iter().enumerate().take(self.out_c) {
            let m = self.weights.scale[oc] as f64 / q.scale as f64;
            let corr = q.zero as i64 * ws as i64 + self.weights.bias_q(self.bias[oc], oc, q.scale);
            mult.push(m as f32);
            offset.push((corr as f64 * m) as f32);
        }
        (mult, offset)
    }

    /// Bytes held by the integer representation (packed i8 weights for every
    /// level, scales, biases): the model memory of the paper's Table 4.
    pub fn bytes(&self) -> usize {
        self.packed.bytes() + 4 * (self.weights.scale.len() + self.bias.len())
    }

    /// Run on the unit that matches `q.bits`.
    pub fn run(
        &self,
        level: CpuLevel,
        x: &crate::tensor::Tensor,
        q: &QParams,
        act: &kernels::Activation,
        threads: usize,
    ) -> crate::tensor::Tensor {
        match q.bits {
            Bits::B8 => int8::run(self, level, x, q, act, threads),
            Bits::B16 => a16w8::run(self, level, x, q, act, threads),
        }
    }
}

/// The work both units share: quantize the input with `q`, derive the
/// epilogue constants, and run `kernel` on row bands across `threads` into an
/// f32 output. The units differ only in the integer type, its quantizer and
/// the kernel entry point.
#[allow(clippy::too_many_arguments)]
fn run_on<T: Copy + Default + Send + Sync>(
    conv: &QConv,
    x: &crate::tensor::Tensor,
    q: &QParams,
    act: &kernels::Activation,
    threads: usize,
    pad: T,
    quantize: impl Fn(&[f32], &mut [T]),
    kernel: impl Fn(&ConvGeom, &[T], T, &kernels::Epilogue, std::ops::Range<usize>, kernels::Output)
    + Sync,
) -> crate::tensor::Tensor {
    let mut xq = vec![T::default(); x.data.len()];
    quantize(&x.data, &mut xq);
    let (mult, offset) = conv.epilogue_consts(q);
    let epi = kernels::Epilogue {
        mult: &mult,
        offset: &offset,
        act,
    };
    let g = conv.geom(x.h, x.w);
    let mut out = crate::tensor::Tensor::zeros(x.h, x.w, conv.out_c);
    crate::tensor::par_rows(
        &mut out.data,
        x.h,
        x.w * conv.out_c,
        threads,
        |rows, chunk| {
            let out = kernels::Output::F32 {
                data: chunk,
                pixel_stride: conv.out_c,
            };
            kernel(&g, &xq, pad, &epi, rows, out)
        },
    );
    out
}
