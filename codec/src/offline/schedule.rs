//! How the offline flow writes its result as a schedule file (the format,
//! its loading and lookup live in [`crate::schedule`], shared with the runtime).
use std::collections::HashMap;

pub use crate::schedule::*;

use super::{Config, Options, bops};
use crate::engine::Ranges;
use crate::model::Graph;
use crate::quant::{Bits, QParams};

/// Everything [`Schedule::build`] needs.
pub struct BuildInputs<'a> {
    pub graph: &'a Graph,
    pub ranges: &'a Ranges,
    pub config: &'a Config,
    /// Per conv position, at [`bops::REF_LR`].
    pub macs: &'a [u64],
    /// LRA drop per conv position.
    pub lra_drops: &'a HashMap<usize, f64>,
    pub opts: &'a Options,
    pub quality: QualityInfo,
    pub search: SearchInfo,
}

impl Schedule {
    pub fn build(x: BuildInputs) -> Schedule {
        let convs = x.graph.conv_layers();
        let names: Vec<String> = convs
            .iter()
            .map(|&i| x.graph.layers[i].name.clone())
            .collect();
        let layers: Vec<(String, LayerQ)> = convs
            .iter()
            .enumerate()
            .map(|(p, &i)| {
                let (lo, hi) = x.ranges.0[i].unwrap_or((0.0, 1.0));
                let q = QParams::from_range(lo, hi, x.config.bits[p]);
                // A float layer is written with bits 32; its ⟨s, z⟩ stay those
                // of its wordlength (unused, kept valid).
                let float = x.config.float[p];
                let lq = LayerQ {
                    bits: if float { 32 } else { q.bits.bits() },
                    scale: q.scale,
                    zero: q.zero,
                    dre: x.config.dre[p] && !float,
                    range: [lo, hi],
                    macs: x.macs[p],
                    lra_drop_db: x.lra_drops.get(&p).copied(),
                };
                (names[p].clone(), lq)
            })
            .collect();
        let bits = x.config.wordlengths();
        let dre: Vec<bool> = layers.iter().map(|(_, l)| l.dre).collect();
        let partitions = partitions(&names, &bits, &dre);
        let n = convs.len();
        let b = bops::bops_of_wordlengths(x.macs, &bits);
        let b16 = bops::bops(x.macs, &vec![Bits::B16; n]);
        let b8 = bops::bops(x.macs, &vec![Bits::B8; n]);
        let file = x
            .opts
            .model_path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        Schedule {
            version: VERSION,
            model: ModelId {
                file,
                sha256: x.opts.model_sha256.clone(),
                scale: x.graph.scale,
                weights: granularity_name(x.opts.weights).into(),
            },
            energy_threshold: x.opts.energy,
            quality: x.quality,
            calibration: x.opts.calibration.clone(),
            cost: Cost {
                reference_lr: [bops::REF_LR.0, bops::REF_LR.1],
                bops: b,
                bops_a16w8: b16,
                bops_int8: b8,
                reduction_vs_a16w8: b16 as f64 / b.max(1) as f64,
            },
            search: x.search,
            layers,
            partitions,
            pareto: None,
            routing: None,
        }
    }
}

impl Schedule {
    /// This schedule with its own plan replaced by `config` (a point chosen on
    /// the latency front): ⟨s, z⟩ re-derived from each layer's calibrated range
    /// for its new b_l (as the evaluator measured it), partitions and BOPs
    /// recomputed; everything else (ranges, LRA drops, provenance) kept.
    pub fn with_config(&self, config: &Config) -> Schedule {
        let mut s = self.clone();
        for (p, (_, l)) in s.layers.iter_mut().enumerate() {
            let q = QParams::from_range(l.range[0], l.range[1], config.bits[p]);
            let float = config.float[p];
            l.bits = if float { 32 } else { q.bits.bits() };
            l.scale = q.scale;
            l.zero = q.zero;
            l.dre = config.dre[p] && !float;
        }
        let names: Vec<String> = s.layers.iter().map(|(k, _)| k.clone()).collect();
        let bits = config.wordlengths();
        let dre: Vec<bool> = s.layers.iter().map(|(_, l)| l.dre).collect();
        s.partitions = partitions(&names, &bits, &dre);
        let macs: Vec<u64> = s.layers.iter().map(|(_, l)| l.macs).collect();
        s.cost.bops = bops::bops_of_wordlengths(&macs, &bits);
        s.cost.reduction_vs_a16w8 = s.cost.bops_a16w8 as f64 / s.cost.bops.max(1) as f64;
        s
    }
}
