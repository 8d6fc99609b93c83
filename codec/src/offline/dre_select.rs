//! DRE layer selection (Alg. 3): treat the sorted layerwise drops as a discrete
//! signal and mark for run-time dynamic range estimation the leading layers
//! whose cumulative energy Σ|q_drop|² stays within a fraction K of the total.
use super::lra::LraEntry;

/// Conv positions selected for DRE (d_l = 1), in LRA order.
///
/// Line 5's test is E_l / E_total ≤ K, so K = 0 selects nothing and K = 1
/// every layer. Layers with a zero drop are never selected: they add no
/// energy, and DRE on them would only add the RQU's overhead (§4.2). When all
/// drops are zero, E_total = 0 and nothing is selected.
pub fn select(sorted: &[LraEntry], k: f64) -> Vec<usize> {
    // Lines 1–3: running energy concentration. Partial sums of non-negative
    // terms never decrease in floating point, so E_l ≤ E_total exactly.
    let energy: Vec<f64> = sorted
        .iter()
        .scan(0.0, |e, x| {
            *e += x.drop * x.drop;
            Some(*e)
        })
        .collect();
    let total = energy.last().copied().unwrap_or(0.0);
    if total <= 0.0 {
        return Vec::new();
    }
    // Lines 4–8.
    sorted
        .iter()
        .zip(&energy)
        .filter(|(x, e)| x.drop != 0.0 && **e / total <= k)
        .map(|(x, _)| x.pos)
        .collect()
}
