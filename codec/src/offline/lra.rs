//! Layerwise Resilience Analysis (Alg. 2): each conv layer's quality drop when
//! it alone is at 8 bits and every other layer at 16, measured against the
//! weights-quantized model so that only activation quantization is counted.
use super::{Config, Quality};
use crate::error::Result;
use crate::quant::Bits;

/// One layer's drop (an element of q_drop^sorted and L_drop^sorted).
#[derive(Clone, Debug, PartialEq)]
pub struct LraEntry {
    /// Conv position (in `Graph::conv_layers()` order).
    pub pos: usize,
    /// Quality with this layer alone at 8 bits.
    pub quality: f64,
    /// q_ref' − quality, in dB (may be negative: quantization noise can help).
    pub drop: f64,
}

/// Runs Alg. 2 over `n` conv layers and returns them sorted by decreasing drop
/// (ties keep layer order). `q_w_drop` is the drop of the 8-bit-weights model
/// against `q_ref`; `on_layer(pos, index, quality)` sees every evaluation.
pub fn lra(
    quality: &mut Quality,
    n: usize,
    q_ref: f64,
    q_w_drop: f64,
    on_layer: &mut dyn FnMut(usize, usize, f64),
) -> Result<Vec<LraEntry>> {
    // Line 1: remove the drop due to the 8-bit weights.
    let q_ref = q_ref - q_w_drop;
    let mut out = Vec::with_capacity(n);
    for l in 0..n {
        // Lines 4–7 (line 2's u is 16 bits).
        let mut b = Config::uniform(n, Bits::B16);
        b.bits[l] = Bits::B8;
        let q = quality(&b)?;
        on_layer(l, l, q);
        out.push(LraEntry {
            pos: l,
            quality: q,
            drop: q_ref - q,
        });
    }
    // Line 9. total_cmp: NaN (never produced by PSNR of finite images) sorts last.
    out.sort_by(|a, b| b.drop.total_cmp(&a.drop));
    Ok(out)
}
