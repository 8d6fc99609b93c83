//! End-to-end efficiency of a `bench-model` run (issue 15): the model's MACs per
//! frame × fps over what the worker threads could do at the kernel level's peak,
//! `gmac_per_frame × fps / (threads × peak_gmacs_per_thread)`.
//!
//! MACs are counted as the project counts them everywhere else
//! ([`Graph::total_macs`], also behind the runtime telemetry's MAC/s): conv
//! MACs plus one per output element of the glue ops. An A16W8 MAC counts once,
//! like an INT8 one; its 2× cost lives in the peak instead, because
//! [`Peak::int16_macs_per_s`] is measured on the byte-sliced mix and counts u16
//! MACs (each two u8 × i8 products), so it is about half the INT8 peak.
use nawqsr_codec::engine::{ConvPlan, Plan};
use nawqsr_codec::kernels::bench::Peak;
use nawqsr_codec::model::Graph;
use nawqsr_codec::quant::Bits;

/// What one frame asks of the integer units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Work {
    /// [`Graph::total_macs`] at the frame size.
    pub macs: u64,
    /// MACs of the convs the plan puts on the INT8 unit.
    int8_conv_macs: u64,
    /// MACs of the convs the plan puts on the A16W8 unit.
    int16_conv_macs: u64,
}

impl Work {
    /// `plan` None: no integer plan (FP32 through tract), so no peak applies.
    pub fn of(g: &Graph, plan: Option<&Plan>, h: usize, w: usize) -> Work {
        let mut work = Work {
            macs: g.total_macs(h, w),
            int8_conv_macs: 0,
            int16_conv_macs: 0,
        };
        for i in g.conv_layers() {
            match plan.map(|p| p.convs[i]) {
                Some(ConvPlan::Quant { q, .. }) if q.bits == Bits::B8 => {
                    work.int8_conv_macs += g.layer_macs(i, h, w)
                }
                Some(ConvPlan::Quant { .. }) => work.int16_conv_macs += g.layer_macs(i, h, w),
                _ => {}
            }
        }
        work
    }

    /// Whether any conv runs on an integer unit (else there is no peak to compare with).
    pub fn uses_integer_units(&self) -> bool {
        self.int8_conv_macs + self.int16_conv_macs > 0
    }

    /// The per-thread peak (MAC/s) this frame's mix of units allows: the MAC-weighted
    /// *harmonic* mean of the INT8 and A16W8 peaks over the plan's integer convs, i.e.
    /// the MACs divided by the time they take when every conv runs at its unit's peak.
    /// (An arithmetic mean would overstate it: half the MACs at half the rate take
    /// two thirds of the time, not half.) Uniform plans get exactly one unit's peak.
    /// Glue ops and float convs do not enter the mix. None without integer convs.
    pub fn peak(&self, p: &Peak) -> Option<f64> {
        if !self.uses_integer_units() {
            return None;
        }
        let macs = (self.int8_conv_macs + self.int16_conv_macs) as f64;
        let secs = self.int8_conv_macs as f64 / p.int8_macs_per_s
            + self.int16_conv_macs as f64 / p.int16_macs_per_s;
        Some(macs / secs)
    }
}

/// `macs_per_frame × fps / (threads × peak_per_thread)`.
pub fn efficiency(macs_per_frame: u64, fps: f64, threads: usize, peak_per_thread: f64) -> f64 {
    macs_per_frame as f64 * fps / (threads.max(1) as f64 * peak_per_thread)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn work(i8: u64, i16: u64) -> Work {
        Work {
            macs: i8 + i16,
            int8_conv_macs: i8,
            int16_conv_macs: i16,
        }
    }

    const PEAK: Peak = Peak {
        int8_macs_per_s: 200e9,
        int16_macs_per_s: 100e9,
    };

    #[test]
    fn uniform_plans_get_their_units_peak() {
        assert_eq!(work(10, 0).peak(&PEAK), Some(200e9));
        assert_eq!(work(0, 10).peak(&PEAK), Some(100e9));
        assert_eq!(work(0, 0).peak(&PEAK), None);
    }

    #[test]
    fn hybrid_peak_is_the_time_weighted_mix() {
        // 1 MAC at 200 G/s + 1 MAC at 100 G/s: 2 MACs in 15 ps → 133.3 G/s.
        let p = work(1, 1).peak(&PEAK).unwrap();
        assert!((p - 400e9 / 3.0).abs() < 1.0, "{p}");
    }

    #[test]
    fn efficiency_is_work_over_capacity() {
        // 1 GMAC at 100 fps on 2 threads of 100 GMAC/s each: half the capacity.
        assert!((efficiency(1_000_000_000, 100.0, 2, 100e9) - 0.5).abs() < 1e-12);
    }
}
