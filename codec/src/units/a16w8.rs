//! A16W8 unit: u16 activations × i8 weights. The kernels byte-slice the input
//! (x = hi·256 + lo) and run two exact u8×i8 accumulations with the same packed
//! weights; a 16×8-bit product summed over 576 terms (3×3×64) reaches
//! 65535·127·576 ≈ 4.8·10⁹ and would overflow i32, each byte slice stays below
//! 255·127·576 ≈ 1.9·10⁷.
use crate::kernels::{self, Activation, CpuLevel};
use crate::quant::QParams;
use crate::quant::params::quantize_u16;
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
        q.q_zero(),
        |v, o| quantize_u16(v, q, o),
        |g, xq, pad, epi, rows, out| {
            kernels::conv_u16(level, g, xq, x.c, pad, &conv.packed, epi, rows, out)
        },
    )
}
