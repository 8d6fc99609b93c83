//! INT8 unit: u8 activations × i8 weights, i32 accumulation.
use crate::kernels::{self, Activation, CpuLevel};
use crate::quant::QParams;
use crate::quant::params::quantize_u8;
use crate::tensor::Tensor;

use super::QConv;

pub fn run(
    conv: &QConv,
    level: CpuLevel,
    x: &Tensor,
    q: &QParams,
    act: &Activation,
    threads: usize,
) -> Tensor {
    super::run_on(
        conv,
        x,
        q,
        act,
        threads,
        q.q_zero() as u8,
        |v, o| quantize_u8(v, q, o),
        |g, xq, pad, epi, rows, out| {
            kernels::conv_u8(level, g, xq, x.c, pad, &conv.packed, epi, rows, out)
        },
    )
}
