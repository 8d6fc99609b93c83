//! A16W8 unit: u16 activations × i8 weights. The kernels byte-slice the input
//! (x = hi·256 + lo) and run two exact u8×i8 accumulations with the same packed
//! weights; a 16×8-bit product summed over 576 terms (3×3×64) reaches
//! 65535·127·576 ≈ 4.8·10⁹ and would overflow i32, each byte slice stays below
//! 255·127·576 ≈ 1.9·10⁷.
use crate::engine::{Tensor, par_rows};
use crate::kernels::{self, Activation, CpuLevel, Epilogue, Output};
use crate::quant::QParams;
use crate::quant::params::quantize_u16;

use super::QConv;

pub fn run(
    conv: &QConv,
    level: CpuLevel,
    x: &Tensor,
    q: &QParams,
    act: &Activation,
    threads: usize,
) -> Tensor {
    let mut xq = vec![0u16; x.data.len()];
    quantize_u16(&x.data, q, &mut xq);
    let (mult, offset) = conv.epilogue_consts(q);
    let epi = Epilogue {
        mult: &mult,
        offset: &offset,
        act,
    };
    let g = conv.geom(x.h, x.w);
    let mut out = Tensor::zeros(x.h, x.w, conv.out_c);
    let pad = q.q_zero();
    par_rows(
        &mut out.data,
        x.h,
        x.w * conv.out_c,
        threads,
        |rows, chunk| {
            let out = Output::F32 {
                data: chunk,
                pixel_stride: conv.out_c,
            };
            kernels::conv_u16(level, &g, &xq, x.c, pad, &conv.packed, &epi, rows, out);
        },
    );
    out
}
