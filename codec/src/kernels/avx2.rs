//! AVX2 kernels (temporary: scalar body while the vpmaddwd kernel is written).
use std::ops::Range;

use super::{ConvGeom, Epilogue, Output, PackedConv, Src};

pub(crate) fn conv(
    g: &ConvGeom,
    src: Src,
    in_ps: usize,
    w: &PackedConv,
    epi: &Epilogue,
    rows: Range<usize>,
    out: &mut Output,
) {
    super::scalar::conv(g, src, in_ps, w, epi, rows, out)
}
