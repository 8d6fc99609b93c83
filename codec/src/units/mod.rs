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

/// Grouped convs up to this many input channels are packed dense (`QConv::build`).
const DENSE_GROUPED_MAX_CHANNELS: usize = 128;

/// Grouped weights [out_c][in_c/g][kh][kw] as dense [out_c][in_c][kh][kw],
/// zero outside each output channel's group.
fn block_diagonal(q: &[i8], c: &Conv) -> Vec<i8> {
    let (icg, ocg, k) = (c.in_c / c.groups, c.out_c / c.groups, c.kh * c.kw);
    let mut d = vec![0i8; c.out_c * c.in_c * k];
    for o in 0..c.out_c {
        let g = o / ocg;
        for i in 0..icg {
            d[(o * c.in_c + g * icg + i) * k..][..k].copy_from_slice(&q[(o * icg + i) * k..][..k]);
        }
    }
    d
}

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
    /// Groups of the packed kernel: 1 when a grouped conv was packed dense.
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
        Self::build_with(conv, gran, only, conv.in_c <= DENSE_GROUPED_MAX_CHANNELS)
    }

    fn build_with(
        conv: &Conv,
        gran: WeightGranularity,
        only: Option<CpuLevel>,
        densify: bool,
    ) -> QConv {
        let weights = QuantWeights::quantize(&conv.weights, conv.out_c, gran);
        // Grouped convs of few channels (CARN-M, XLSR) are packed as dense
        // block-diagonal convs, so they take the SIMD kernels instead of the
        // scalar grouped body: the added weights are 0, integer accumulation
        // is exact, and Σw per output channel is unchanged, so the output is
        // the same bit for bit; the cost is groups× the MACs.
        let dense = conv.groups > 1 && densify;
        let groups = if dense { 1 } else { conv.groups };
        let q = if dense {
            block_diagonal(&weights.q, conv)
        } else {
            weights.q.clone()
        };
        let packed = PackedConv::new_for(
            &q,
            conv.out_c,
            conv.in_c / groups,
            conv.kh,
            conv.kw,
            groups,
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
            groups,
        }
    }

    /// The conv restricted to output channels `r` (ungrouped convs): the same
    /// quantized weights, scales and biases, so each of its channels is the
    /// whole conv's, integer for integer (`engine::ConvSplit`).
    pub fn channels(&self, r: std::ops::Range<usize>, only: Option<CpuLevel>) -> QConv {
        assert!(
            self.groups == 1 && r.start < r.end && r.end <= self.out_c,
            "a channel range of an ungrouped conv"
        );
        let per = self.weights.q.len() / self.out_c;
        let weights = QuantWeights {
            q: self.weights.q[r.start * per..r.end * per].to_vec(),
            scale: self.weights.scale[r.clone()].to_vec(),
            out_c: r.len(),
        };
        let packed = PackedConv::new_for(&weights.q, r.len(), self.in_c, self.kh, self.kw, 1, only);
        QConv {
            weights,
            packed,
            bias: self.bias[r.clone()].to_vec(),
            out_c: r.len(),
            ..*self
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A grouped conv packed dense (block-diagonal) gives the grouped
    /// scalar body's output bit for bit, on both units and every level.
    #[test]
    fn dense_packed_grouped_conv_equals_the_grouped_body() {
        for &(ic, oc, g, k) in &[
            (16usize, 16usize, 4usize, 3usize),
            (8, 8, 8, 3),
            (12, 24, 3, 1),
        ] {
            let n = oc * (ic / g) * k * k;
            let conv = Conv {
                in_c: ic,
                out_c: oc,
                kh: k,
                kw: k,
                stride: 1,
                dilation: 1,
                pads: [k / 2; 4],
                groups: g,
                weights: (0..n)
                    .map(|i| ((i * 7919) % 97) as f32 / 97.0 - 0.5)
                    .collect(),
                bias: (0..oc).map(|i| i as f32 * 0.01).collect(),
            };
            let grouped = QConv::build_with(&conv, WeightGranularity::PerChannel, None, false);
            let dense = QConv::build_with(&conv, WeightGranularity::PerChannel, None, true);
            assert_eq!((grouped.groups, dense.groups), (g, 1));
            let x = crate::tensor::Tensor {
                h: 6,
                w: 9,
                c: ic,
                data: (0..6 * 9 * ic)
                    .map(|i| ((i * 31) % 53) as f32 / 53.0 - 0.2)
                    .collect(),
            };
            for bits in [Bits::B8, Bits::B16] {
                let q = QParams::from_range(-0.2, 0.8, bits);
                let want = grouped.run(CpuLevel::Scalar, &x, &q, &kernels::Activation::Relu, 1);
                for level in CpuLevel::supported() {
                    if level == CpuLevel::Amx {
                        continue;
                    }
                    let got = dense.run(level, &x, &q, &kernels::Activation::Relu, 1);
                    assert!(
                        got.data
                            .iter()
                            .zip(&want.data)
                            .all(|(a, b)| a.to_bits() == b.to_bits()),
                        "{ic}->{oc} g{g} k{k} {bits:?} {}",
                        level.name()
                    );
                }
            }
        }
    }
}
