//! GetBOPs (§4.1): the cost estimator T(m(b)) of Eq. (2).
//!
//! Each conv layer's multiply-accumulates are weighted by the bytes of its
//! activations: 4, 2 and 1 for 32-, 16- and 8-bit (§4.1 "operations performed
//! in 32, 16, and 8 bits are assigned a cost of 4, 2 and 1"). Only conv layers
//! are counted: the other layers of an SR DNN (activations, adds, channel
//! attention, pixel shuffle) run in float on both units and are independent of
//! the wordlength choice; for IMDN they are under 1 % of the MACs
//! (`Graph::layer_macs` counts them), so they cannot change a ranking.
//!
//! Costs are computed for one fixed LR frame size, [`REF_LR`], so that numbers
//! from different calibration sets and schedules are comparable.
use crate::engine::Plan;
use crate::model::Graph;
use crate::quant::Bits;

/// Reference LR frame (width, height): 320×180, i.e. 720p output at ×4 (§5
/// "we assume a target high-resolution of 720p").
pub const REF_LR: (usize, usize) = (320, 180);

/// Cost weight of one MAC at an activation wordlength (§4.1).
pub fn weight(bits: u32) -> u64 {
    match bits {
        8 => 1,
        16 => 2,
        _ => 4,
    }
}

/// MACs of each conv layer (in `graph.conv_layers()` order) at [`REF_LR`].
pub fn conv_macs(graph: &Graph) -> Vec<u64> {
    let (w, h) = REF_LR;
    graph
        .conv_layers()
        .into_iter()
        .map(|i| graph.layer_macs(i, h, w))
        .collect()
}

/// GetBOPs for a wordlength vector over the conv layers (`macs` from [`conv_macs`]).
pub fn bops(macs: &[u64], bits: &[Bits]) -> u64 {
    debug_assert_eq!(macs.len(), bits.len());
    macs.iter()
        .zip(bits)
        .map(|(&m, b)| m * weight(b.bits()))
        .sum()
}

/// GetBOPs for activation wordlengths in bits (8, 16 or 32 for a float layer).
pub fn bops_of_wordlengths(macs: &[u64], bits: &[u32]) -> u64 {
    debug_assert_eq!(macs.len(), bits.len());
    macs.iter().zip(bits).map(|(&m, &b)| m * weight(b)).sum()
}

/// GetBOPs of an engine plan at [`REF_LR`] (Float convs cost 4 per MAC).
pub fn plan_bops(graph: &Graph, plan: &Plan) -> u64 {
    let (w, h) = REF_LR;
    graph
        .conv_layers()
        .into_iter()
        .map(|i| graph.layer_macs(i, h, w) * weight(plan.bits(i)))
        .sum()
}

/// Uniform-A16W8 cost over uniform-`bits` cost: the BOPs reduction of Table 1.
pub fn reduction_vs_a16w8(macs: &[u64], bits: &[Bits]) -> f64 {
    let a16 = bops(macs, &vec![Bits::B16; macs.len()]);
    a16 as f64 / bops(macs, bits).max(1) as f64
}
