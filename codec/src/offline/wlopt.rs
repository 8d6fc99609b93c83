//! QuantSR-WLopt (Alg. 1): a single cost-prioritised pass over the conv layers.
//!
//! All layers start at 16 bits (lines 1–3); in decreasing BOPs order (lines
//! 4–5; ties keep layer order) each layer is tried at 8 bits on top of the
//! layers already accepted (lines 7–10) and kept there if the calibration
//! quality stays within ε of the reference (lines 12–13). Each layer is
//! examined once, so the cost is |L| quality evaluations, and a cheaper layer
//! is never quantized at the expense of a heavier one: a heavier layer left at
//! 16 bits was tried first and violated the constraint (the trace records it).
use std::time::{Duration, Instant};

use super::{Config, Quality, bops};
use crate::error::Result;
use crate::quant::Bits;

/// One iteration of the loop (Alg. 1 lines 6–14).
#[derive(Clone, Debug, PartialEq)]
pub struct WlStep {
    /// Conv position (in `Graph::conv_layers()` order).
    pub pos: usize,
    /// BOPs of the layer at 16 bits (the sort key).
    pub bops16: u64,
    /// Quality with this layer (and the ones accepted before) at 8 bits.
    pub quality: f64,
    /// Total BOPs of that candidate (line 11).
    pub bops: u64,
    /// Whether the constraint held (line 12) and the layer stays at 8 bits.
    pub accepted: bool,
}

#[derive(Clone, Debug)]
pub struct WlResult {
    /// b^sel, per conv position.
    pub bits: Vec<Bits>,
    /// Quality of b^sel (q_best; the A16W8 quality when no layer was accepted).
    pub quality: f64,
    /// c_min^bops.
    pub bops: u64,
    /// BOPs of uniform A16W8 over `bops`.
    pub reduction: f64,
    pub trace: Vec<WlStep>,
    /// Wall-clock time of the pass (the search budget of Table 1's baselines).
    pub elapsed: Duration,
}

/// Alg. 1 (lines 4–5): conv positions by decreasing BOPs, stable on layer order.
pub fn order(macs: &[u64]) -> Vec<usize> {
    let mut o: Vec<usize> = (0..macs.len()).collect();
    // At uniform 16 bits a layer's BOPs are 2·MACs, so MACs give the same order.
    o.sort_by_key(|&p| std::cmp::Reverse(macs[p]));
    o
}

/// Runs Alg. 1. `quality` is GetQuality on the calibration set; `on_step`
/// sees every iteration with its index and the best reduction so far.
pub fn wlopt(
    quality: &mut Quality,
    macs: &[u64],
    q_ref: f64,
    eps: f64,
    on_step: &mut dyn FnMut(&WlStep, usize, f64),
) -> Result<WlResult> {
    let start = Instant::now();
    let n = macs.len();
    // Lines 1–2: b^sel ← u (16 bits everywhere). q_best starts as the quality of
    // u so that a design with no accepted layer still reports its quality.
    let mut sel = Config::uniform(n, Bits::B16);
    let mut q_best = quality(&sel)?;
    let mut c_min = bops::bops(macs, &sel.bits);
    let a16 = c_min;
    let mut trace = Vec::with_capacity(n);
    for (k, &l) in order(macs).iter().enumerate() {
        // Lines 7–10.
        let mut b = sel.clone();
        b.bits[l] = Bits::B8;
        let q = quality(&b)?;
        let c = bops::bops(macs, &b.bits);
        // Line 12: the quality constraint of Eq. (2).
        let accepted = q_ref - q <= eps;
        if accepted {
            // Line 13.
            sel = b;
            q_best = q;
            c_min = c;
        }
        let step = WlStep {
            pos: l,
            bops16: 2 * macs[l],
            quality: q,
            bops: c,
            accepted,
        };
        on_step(&step, k, a16 as f64 / c_min as f64);
        trace.push(step);
    }
    Ok(WlResult {
        bits: sel.bits,
        quality: q_best,
        bops: c_min,
        reduction: a16 as f64 / c_min.max(1) as f64,
        trace,
        elapsed: start.elapsed(),
    })
}
