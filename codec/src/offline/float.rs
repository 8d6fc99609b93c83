//! Float partitions in the offline flow (issue 16 item 2): FYE-SR's third
//! kind of processor, an FP32 partition, added to NAWQ-SR's INT8 and A16W8.
//!
//! NAWQ-SR's flow (Fig. 2) starts WLopt from A16W8 everywhere and assumes
//! that design meets ε; when it does not (a layer whose input has an outlier
//! channel stretches even a 16-bit grid), no wordlength choice can recover.
//! Then some layers must keep float activations. Which: each conv alone in
//! float on top of A16W8 (|L| evaluations, like LRA's per-layer pass) gives
//! its quality gain; layers are moved to float in decreasing gain until the
//! design meets ε, re-measuring the cumulative design at each step. A layer
//! that gains nothing is never moved, so when A16W8 meets ε nothing is.
use super::{Config, Quality};
use crate::error::Result;
use crate::quant::Bits;

/// One layer's measurement.
#[derive(Clone, Debug, PartialEq)]
pub struct FloatStep {
    /// Conv position.
    pub pos: usize,
    /// Quality of A16W8 with this layer alone in float.
    pub alone: f64,
    /// Quality of the cumulative design when the layer was moved (None: not moved).
    pub moved: Option<f64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FloatResult {
    /// Per conv position: kept in float.
    pub float: Vec<bool>,
    /// Quality of A16W8 with `float` in float.
    pub quality: f64,
    /// Per-layer measurements, in the order tried (empty when A16W8 met ε).
    pub trace: Vec<FloatStep>,
}

/// Chooses the float layers. `on_step(pos, k, quality)` sees each evaluation.
pub fn rescue(
    quality: &mut Quality,
    n: usize,
    q_ref: f64,
    eps: f64,
    on_step: &mut dyn FnMut(usize, usize, f64),
) -> Result<FloatResult> {
    let base = Config::uniform(n, Bits::B16);
    let q0 = quality(&base)?;
    let none = FloatResult {
        float: vec![false; n],
        quality: q0,
        trace: Vec::new(),
    };
    if q_ref - q0 <= eps {
        return Ok(none);
    }
    let mut trace = Vec::with_capacity(n);
    for p in 0..n {
        let mut c = base.clone();
        c.float[p] = true;
        let q = quality(&c)?;
        on_step(p, p, q);
        trace.push(FloatStep {
            pos: p,
            alone: q,
            moved: None,
        });
    }
    // Largest gain first; ties keep layer order.
    trace.sort_by(|a, b| b.alone.total_cmp(&a.alone));
    let mut cur = base;
    let mut q = q0;
    for (k, step) in trace.iter_mut().enumerate() {
        if step.alone <= q0 || q_ref - q <= eps {
            break;
        }
        cur.float[step.pos] = true;
        q = quality(&cur)?;
        on_step(step.pos, n + k, q);
        step.moved = Some(q);
    }
    Ok(FloatResult {
        float: cur.float,
        quality: q,
        trace,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A synthetic oracle: layer 2's 16-bit activations cost 0.5 dB, layer 0's
    /// 0.05, the rest nothing. With ε = 0.1 only layer 2 goes to float; with
    /// ε = 1 none does.
    #[test]
    fn moves_the_costly_layer_and_only_as_many_as_needed() {
        let cost = [0.05, 0.0, 0.5, 0.0];
        let mut q = |c: &Config| -> Result<f64> {
            Ok(30.0
                - (0..4)
                    .filter(|&p| !c.float[p])
                    .map(|p| cost[p])
                    .sum::<f64>())
        };
        let r = rescue(&mut q, 4, 30.0, 0.1, &mut |_, _, _| {}).unwrap();
        assert_eq!(r.float, [false, false, true, false]);
        assert!((r.quality - 29.95).abs() < 1e-9);
        let r = rescue(&mut q, 4, 30.0, 1.0, &mut |_, _, _| {}).unwrap();
        assert_eq!(r.float, [false; 4]);
        assert!(r.trace.is_empty());
        // ε = 0.01: both costly layers move, in decreasing gain.
        let r = rescue(&mut q, 4, 30.0, 0.01, &mut |_, _, _| {}).unwrap();
        assert_eq!(r.float, [true, false, true, false]);
        assert_eq!(r.trace[0].pos, 2);
    }
}
