//! INT8 unit: u8 activations × i8 weights, i32 accumulation.
use crate::engine::{Tensor, par_rows};
use crate::kernels::{self, Activation, CpuLevel, Epilogue, Output};
use crate::quant::QParams;
use crate::quant::params::quantize_u8;

use super::QConv;

pub fn run(
    conv: &QConv,
    level: CpuLevel,
    x: &Tensor,
    q: &QParams,
    act: &Activation,
    threads: usize,
) -> Tensor {
    let mut xq = vec![0u8; x.data.len()];
    quantize_u8(&x.data, q, &mut xq);
    let (mult, offset) = conv.epilogue_consts(q);
    let epi = Epilogue {
        mult: &mult,
        offset: &offset,
        act,
    };
    let g = conv.geom(x.h, x.w);
    let mut out = Tensor::zeros(x.h, x.w, conv.out_c);
    let pad = q.q_zero() as u8;
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
            kernels::conv_u8(level, &g, &xq, x.c, pad, &conv.packed, &epi, rows, out);
        },
    );
    out
}
