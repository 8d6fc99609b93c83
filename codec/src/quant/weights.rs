//! Weights quantizer (§3 "Weights Quantizer", §4.1): 8-bit symmetric weights
//! per output channel (per tensor as an option, as the paper), and biases in
//! i32 at the accumulator scale.
//!
//! w_q = clamp(round(w / s_w), −127, 127),  s_w = max|w| / 127
//! The weights are quantized once and shared by the INT8 and A16W8 units (§4.3).
use serde::{Deserialize, Serialize};

/// Scale granularity of the weight quantizer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum WeightGranularity {
    #[default]
    PerChannel,
    PerTensor,
}

/// One conv's 8-bit weights.
#[derive(Clone, Debug)]
pub struct QuantWeights {
    /// ONNX order [out_c][in_c/groups][kh][kw].
    pub q: Vec<i8>,
    /// Per output channel scale (all equal for per-tensor).
    pub scale: Vec<f32>,
    pub out_c: usize,
}

impl QuantWeights {
    pub fn quantize(w: &[f32], out_c: usize, gran: WeightGranularity) -> QuantWeights {
        let per = w.len() / out_c;
        // An all-zero row (a pruned channel, or one that only carries its
        // bias) quantizes to zeros at any scale; it takes the scale of
        // |w| = 1 so that its bias, stored at the accumulator scale
        // s_in / s_w, stays an ordinary integer (a vanishing s_w saturated
        // it: such a channel lost its bias on the integer units).
        let absmax = |s: &[f32]| {
            let m = s.iter().fold(0f32, |m, &v| m.max(v.abs()));
            if m > 0.0 { m } else { 1.0 }
        };
        let scale: Vec<f32> = match gran {
            WeightGranularity::PerChannel => w.chunks(per).map(|c| absmax(c) / 127.0).collect(),
            WeightGranularity::PerTensor => vec![absmax(w) / 127.0; out_c],
        };
        let q = w
            .chunks(per)
            .zip(&scale)
            .flat_map(|(c, &s)| {
                c.iter()
                    .map(move |&v| (v / s).round().clamp(-127.0, 127.0) as i8)
            })
            .collect();
        QuantWeights { q, scale, out_c }
    }

    /// The weights as the FP32W8 path sees them: w_q · s_w.
    pub fn dequantized(&self) -> Vec<f32> {
        let per = self.q.len() / self.out_c;
        self.q
            .chunks(per)
            .zip(&self.scale)
            .flat_map(|(c, &s)| c.iter().map(move |&v| v as f32 * s))
            .collect()
    }

    /// Bias of channel `oc` in i32 at the accumulator scale s_in / s_w[oc]
    /// (the real value of one accumulator unit is s_w / s_in).
    pub fn bias_q(&self, bias: f32, oc: usize, s_in: f32) -> i64 {
        (bias as f64 * s_in as f64 / self.scale[oc] as f64).round() as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A channel whose weights are all zero keeps its bias through the
    /// integer path's bias_q (a vanishing weight scale saturated it).
    #[test]
    fn an_all_zero_channel_keeps_its_bias() {
        let w = vec![0.5, -0.25, 0.0, 0.0];
        let q = QuantWeights::quantize(&w, 2, WeightGranularity::PerChannel);
        assert_eq!(&q.q[2..], &[0, 0]);
        let s_in = 255.0;
        let b = q.bias_q(3000.0, 1, s_in);
        let back = b as f64 * q.scale[1] as f64 / s_in as f64;
        assert!((back - 3000.0).abs() < 0.01, "{back}");
    }

    #[test]
    fn round_trip_within_half_step() {
        let w: Vec<f32> = (0..2 * 27)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 37.0)
            .collect();
        for g in [WeightGranularity::PerChannel, WeightGranularity::PerTensor] {
            let q = QuantWeights::quantize(&w, 2, g);
            let d = q.dequantized();
            for (i, (&a, &b)) in w.iter().zip(&d).enumerate() {
                assert!((a - b).abs() <= 0.5 * q.scale[i / 27] * 1.0001, "{a} {b}");
            }
            // the largest magnitude maps to ±127
            assert!(q.q.iter().any(|&v| v.unsigned_abs() == 127));
        }
    }

    #[test]
    fn per_channel_uses_each_channels_range() {
        let w = vec![1.0, -0.25, 0.005, 0.02];
        let q = QuantWeights::quantize(&w, 2, WeightGranularity::PerChannel);
        assert_eq!(q.q, vec![127, -32, 32, 127]);
        let t = QuantWeights::quantize(&w, 2, WeightGranularity::PerTensor);
        assert_eq!(t.q, vec![127, -32, 1, 3]);
    }

    #[test]
    fn power_of_two_weights_are_exact() {
        let w: Vec<f32> = (-127..=127).map(|i| i as f32 / 128.0).collect();
        let q = QuantWeights::quantize(&w, 1, WeightGranularity::PerTensor);
        assert_eq!(q.dequantized(), w);
    }
}
