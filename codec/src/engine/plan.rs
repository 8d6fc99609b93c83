//! Precision plans: for every conv layer, which unit runs it and with which
//! activation quantization ⟨b, s, z, d⟩ (§4.1–4.2). Uniform plans give the
//! baselines of the paper's Table 2; hybrid plans come from schedule files.
use serde::{Deserialize, Serialize};

use crate::model::{Graph, Op};
use crate::quant::{Bits, QParams};

/// Observed (min, max) of each conv layer's input over a calibration set,
/// indexed by layer (None for non-conv layers).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ranges(pub Vec<Option<(f32, f32)>>);

impl Ranges {
    pub fn empty(g: &Graph) -> Ranges {
        Ranges(vec![None; g.layers.len()])
    }

    pub fn observe(&mut self, layer: usize, min: f32, max: f32) {
        let r = self.0[layer].get_or_insert((min, max));
        r.0 = r.0.min(min);
        r.1 = r.1.max(max);
    }
}

/// Where a conv runs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum ConvPlan {
    /// FP32 activations (FP32 or FP32W8 weights, see [`Plan::weights_8bit`]).
    Float,
    /// Integer unit with static ⟨b, s, z⟩ (d = 0) or run-time DRE (d = 1): with
    /// DRE, `q.bits` is kept and s, z are re-derived from each input (§4.2).
    Quant { q: QParams, dre: bool },
}

/// A precision plan for one graph.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// false: the original FP32 weights (FP32 mode); true: the 8-bit weights,
    /// dequantized for Float convs (FP32W8) and native on the integer units.
    pub weights_8bit: bool,
    /// One entry per layer; only conv layers' entries are read.
    pub convs: Vec<ConvPlan>,
}

impl Plan {
    pub fn fp32(g: &Graph) -> Plan {
        Plan {
            weights_8bit: false,
            convs: vec![ConvPlan::Float; g.layers.len()],
        }
    }

    pub fn fp32w8(g: &Graph) -> Plan {
        Plan {
            weights_8bit: true,
            convs: vec![ConvPlan::Float; g.layers.len()],
        }
    }

    /// Every conv at `bits` with static ranges (Table 2's INT8 / A16W8 rows).
    pub fn uniform(g: &Graph, ranges: &Ranges, bits: Bits) -> Plan {
        Plan::per_layer(g, ranges, |_| Some((bits, false)))
    }

    /// `choice(layer)` gives (bits, dre) for each conv layer, or None for Float.
    pub fn per_layer(
        g: &Graph,
        ranges: &Ranges,
        choice: impl Fn(usize) -> Option<(Bits, bool)>,
    ) -> Plan {
        let convs = g
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| match (&l.op, choice(i)) {
                // Convs that change the map's size stay in float: the
                // integer units and bands run "same" convs only.
                (Op::Conv(c), Some((bits, dre))) if c.is_same() => {
                    let (lo, hi) = ranges.0[i].unwrap_or((0.0, 1.0));
                    ConvPlan::Quant {
                        q: QParams::from_range(lo, hi, bits),
                        dre,
                    }
                }
                _ => ConvPlan::Float,
            })
            .collect();
        Plan {
            weights_8bit: true,
            convs,
        }
    }

    /// Per conv layer in `Graph::conv_layers()` order, (bits, DRE flag), with
    /// static ranges from `ranges`: a design point of the offline flow or of the
    /// profiler.
    pub fn per_conv(g: &Graph, ranges: &Ranges, bits: &[Bits], dre: &[bool]) -> Plan {
        let mut pos = vec![None; g.layers.len()];
        for (p, i) in g.conv_layers().into_iter().enumerate() {
            pos[i] = Some(p);
        }
        Plan::per_layer(g, ranges, |i| {
            pos[i].map(|p| (bits[p], dre.get(p).copied().unwrap_or(false)))
        })
    }

    /// Every conv at `bits` with run-time DRE (d = 1 everywhere, §4.2): each conv
    /// derives ⟨s, z⟩ from its actual input, so no calibrated ranges are needed.
    pub fn all_dre(g: &Graph, bits: Bits) -> Plan {
        Plan::per_layer(g, &Ranges::empty(g), |_| Some((bits, true)))
    }

    /// This plan with every integer conv moved to `bits`, keeping its DRE flag and
    /// its static range (Eq. 1 re-derived for the new bitwidth). The range is
    /// recovered from ⟨s, z⟩ as [z/s, (z + 1 + qmax)/s], which covers the original
    /// one (z = ⌊s·x̂_min⌋ loses up to one step at each end).
    pub fn with_bits(&self, bits: Bits) -> Plan {
        let convs = self
            .convs
            .iter()
            .map(|c| match *c {
                ConvPlan::Quant { q, dre } if q.bits != bits => {
                    let lo = q.zero / q.scale;
                    let hi = (q.zero + 1.0 + q.bits.qmax()) / q.scale;
                    ConvPlan::Quant {
                        q: QParams::from_range(lo, hi, bits),
                        dre,
                    }
                }
                other => other,
            })
            .collect();
        Plan {
            weights_8bit: self.weights_8bit,
            convs,
        }
    }

    /// This plan with the integer convs that read the network's input moved to `bits`
    /// (range kept, as [`Plan::with_bits`]). For input deeper than 8 bits (10-bit video,
    /// issue 17): an INT8 first conv would quantize a 10-bit Y to 256 levels, A16W8 keeps it.
    pub fn with_input_bits(&self, g: &Graph, bits: Bits) -> Plan {
        let mut out = self.clone();
        let deeper = self.with_bits(bits);
        for (i, l) in g.layers.iter().enumerate() {
            if matches!(l.op, Op::Conv(_)) && l.inputs.contains(&g.input) {
                out.convs[i] = deeper.convs[i];
            }
        }
        out
    }

    /// Activation bitwidth of conv layer `i` (32 for float), for BOPs (§4.1).
    pub fn bits(&self, i: usize) -> u32 {
        match self.convs[i] {
            ConvPlan::Float => 32,
            ConvPlan::Quant { q, .. } => q.bits.bits(),
        }
    }

    pub fn is_dre(&self, i: usize) -> bool {
        matches!(self.convs[i], ConvPlan::Quant { dre: true, .. })
    }
}
