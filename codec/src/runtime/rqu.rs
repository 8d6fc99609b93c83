//! Runtime Quantization Unit (§4.2–4.3) for DRE layers.
//!
//! Placement, as the paper asks ("vectorize the max/min operations by dividing
//! the input activations tensor across parallel max/min search tasks and then
//! apply a parallel-reduce operation"):
//! 1. **partial min/max** — the worker that produces a band of a DRE layer's input
//!    reduces that band right away, while it is in cache (`quant::params::min_max`,
//!    16 independent lanes the compiler vectorises; `engine::tiles::run_steps`);
//! 2. **combine** — the band partials meet at the layer's range barrier in the
//!    dispatcher ([`RangeAcc`]; min/max are exact, so the order does not matter and
//!    the frame range equals the whole-tensor min/max bit for bit);
//! 3. **Eq. (1)** — ⟨s, z⟩ from the actual range ([`derive`]), then every band of
//!    the layer quantizes its input rows with them on the unit that runs it.
//!
//! The frame-wide range keeps patches bit-identical to whole-frame execution.
use crate::quant::{Bits, QParams};

/// Running (min, max) of one tensor, fed with per-band partials.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RangeAcc {
    pub min: f32,
    pub max: f32,
}

impl Default for RangeAcc {
    fn default() -> Self {
        RangeAcc {
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
        }
    }
}

impl RangeAcc {
    /// Adds one partial (a band's min/max).
    pub fn add(&mut self, (lo, hi): (f32, f32)) {
        self.min = self.min.min(lo);
        self.max = self.max.max(hi);
    }

    /// Min/max of `x` as per-chunk partials combined (chunks of `chunk` values),
    /// the same reduction tree the runtime uses across bands.
    pub fn of_chunks(x: &[f32], chunk: usize) -> RangeAcc {
        let mut r = RangeAcc::default();
        for c in x.chunks(chunk.max(1)) {
            r.add(crate::quant::params::min_max(c));
        }
        r
    }
}

/// Eq. (1) with the actual range: s = (2^b − 1)/(x_max − x_min), z = ⌊s·x_min⌋.
pub fn derive(r: RangeAcc, bits: Bits) -> QParams {
    QParams::from_range(r.min, r.max, bits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::params::min_max;

    #[test]
    fn partials_combine_to_the_whole_tensor_range() {
        let x: Vec<f32> = (0..10_007)
            .map(|i| (((i * 7919) % 4099) as f32 - 2000.0) * 0.37)
            .collect();
        let whole = min_max(&x);
        for chunk in [1, 5, 64, 1000, 20_000] {
            let r = RangeAcc::of_chunks(&x, chunk);
            assert_eq!((r.min, r.max), whole, "chunk {chunk}");
            assert_eq!(
                derive(r, Bits::B8),
                QParams::from_range(whole.0, whole.1, Bits::B8)
            );
        }
    }
}
