//! The executor: runs a [`Graph`] under a precision [`Plan`] on one frame (or
//! patch). Sequential over layers; each conv splits its rows across threads.
//! The runtime (`crate::runtime`) adds patches, the dispatcher and the units'
//! queues on top of this.
//!
//! Conv layers run on the integer units (`crate::units`) or in float; all other
//! ops run in float (see `ops` for why). An activation that is a conv's only
//! consumer is fused into that conv's epilogue.
mod fconv;
pub mod ops;
pub mod plan;
pub mod tiles;

use std::sync::OnceLock;

pub use crate::tensor::{Tensor, par_rows, resolve_threads};
pub use plan::{ConvPlan, Plan, Ranges};

use crate::error::{Error, Result};
use crate::kernels::{self, CpuLevel};
use crate::model::{Activation, Conv, Graph, Op};
use crate::quant::params::min_max;
use crate::quant::{QParams, WeightGranularity};
use crate::units::QConv;
use ops::FloatConv;

/// Per-layer compiled state. One per layer, built once and never moved on a
/// hot path, so the variants' size difference does not matter.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Compiled {
    Conv {
        q: QConv,
        fp32: OnceLock<FloatConv>,
        w8: OnceLock<FloatConv>,
        /// Activation fused into the epilogue (the next layer, then skipped).
        act: Option<Activation>,
        kact: kernels::Activation,
        /// Value the conv (+ fused activation) writes.
        out: usize,
        /// The band executor writes the split that alone reads `out` (issue 15
        /// item 3): one output per part, no f32 tensor of the whole conv.
        split: Option<ConvSplit>,
    },
    /// An activation fused into its producer.
    Fused,
    /// A split whose conv writes its parts in the band executor (see
    /// [`ConvSplit`]); the whole-frame engine still runs it, as the reference.
    SplitOf,
    Other,
}

/// A conv whose output only a channel split reads (IMDN's progressive
/// refinement: 16 channels kept, 48 to the next conv). The band executor runs
/// the conv once per part, on the input quantized once, with the part's
/// channels of the same integer weights, so every part holds exactly the
/// whole conv's channels (the whole-frame engine, conv then split, is the
/// reference). A part read only by integer convs with the same static ⟨s, z⟩
/// is then stored quantized (`tiles::Chunk::U8/U16`) as any conv output is:
/// no f32 tensor, no split copy and no quantization pass between two convs.
pub(crate) struct ConvSplit {
    /// Per split output: its value, its channels and the conv on them.
    pub parts: Vec<SplitPart>,
}

pub(crate) struct SplitPart {
    pub value: usize,
    pub channels: std::ops::Range<usize>,
    pub q: QConv,
    pub kact: kernels::Activation,
}

/// The split of conv layer `i`'s output `out` that the band executor can
/// write directly: the only reader of `out` is a `Split` (not the graph
/// output), the conv is banded ("same", on an image) and ungrouped, and the
/// parts need no more 16-lane channel blocks than the whole conv (a 64 → 16 +
/// 48 split costs no kernel work; 64 → 12 + 52 would, 5 blocks for 4).
fn split_of(
    graph: &Graph,
    consumers: &[Vec<usize>],
    c: &Conv,
    q: &QConv,
    out: usize,
) -> Option<(usize, Vec<usize>)> {
    let [j] = consumers[out].as_slice() else {
        return None;
    };
    let Op::Split(sizes) = &graph.layers[*j].op else {
        return None;
    };
    let image = matches!(
        graph.values[graph.layers[*j].inputs[0]].spatial,
        crate::model::Spatial::Image { .. }
    );
    let blocks: usize = sizes.iter().map(|s| s.div_ceil(16)).sum();
    (out != graph.output
        && image
        && c.is_same()
        && q.groups == 1
        && c.groups == 1
        && sizes.len() > 1
        && sizes.iter().all(|&s| s > 0)
        && blocks <= q.out_c.div_ceil(16))
    .then(|| (*j, sizes.clone()))
}

/// A graph compiled for execution: 8-bit weights quantized and packed once.
pub struct Engine {
    pub graph: Graph,
    compiled: Vec<Compiled>,
    pub level: CpuLevel,
    pub threads: usize,
}

/// What the engine reports to an observer while running.
pub enum Event<'a> {
    /// The f32 input of conv layer `layer`, before quantization.
    ConvInput { layer: usize, x: &'a Tensor },
    /// Layer `layer` finished after `secs` seconds of wall time.
    LayerDone { layer: usize, secs: f64 },
}

impl Engine {
    pub fn new(graph: Graph, level: CpuLevel, threads: usize) -> Engine {
        Engine::with_granularity(graph, level, threads, WeightGranularity::PerChannel)
    }

    pub fn with_granularity(
        graph: Graph,
        level: CpuLevel,
        threads: usize,
        gran: WeightGranularity,
    ) -> Engine {
        let consumers = graph.consumers();
        let mut compiled: Vec<Compiled> = graph.layers.iter().map(|_| Compiled::Other).collect();
        for (i, l) in graph.layers.iter().enumerate() {
            let Op::Conv(c) = &l.op else { continue };
            let v = l.outputs[0];
            let fused = match consumers[v].as_slice() {
                [j] if v != graph.output => match &graph.layers[*j].op {
                    Op::Act(
                        a @ (Activation::Relu | Activation::Leaky(_) | Activation::PRelu(_)),
                    ) => Some((*j, a.clone())),
                    _ => None,
                },
                _ => None,
            };
            let (act, out) = match &fused {
                Some((j, a)) => (Some(a.clone()), graph.layers[*j].outputs[0]),
                None => (None, v),
            };
            if let Some((j, _)) = fused {
                compiled[j] = Compiled::Fused;
            }
            let kact = match &act {
                None => kernels::Activation::None,
                Some(Activation::Relu) => kernels::Activation::Relu,
                Some(Activation::Leaky(a)) => kernels::Activation::Leaky(*a),
                Some(Activation::PRelu(s)) => kernels::Activation::PRelu(s.clone()),
                Some(_) => unreachable!("only Relu, Leaky and PRelu are fused"),
            };
            let q = QConv::for_level(c, gran, level);
            let split = split_of(&graph, &consumers, c, &q, out).map(|(j, sizes)| {
                compiled[j] = Compiled::SplitOf;
                let mut start = 0;
                let parts = sizes
                    .iter()
                    .zip(&graph.layers[j].outputs)
                    .map(|(&n, &value)| {
                        let channels = start..start + n;
                        start += n;
                        SplitPart {
                            value,
                            q: q.channels(channels.clone(), Some(level)),
                            kact: match &kact {
                                // One slope per output channel: the part's.
                                kernels::Activation::PRelu(s) if s.len() == q.out_c => {
                                    kernels::Activation::PRelu(s[channels.clone()].to_vec())
                                }
                                a => a.clone(),
                            },
                            channels,
                        }
                    })
                    .collect();
                ConvSplit { parts }
            });
            compiled[i] = Compiled::Conv {
                q,
                fp32: OnceLock::new(),
                w8: OnceLock::new(),
                act,
                kact,
                out,
                split,
            };
        }
        Engine {
            graph,
            compiled,
            level,
            threads: resolve_threads(threads),
        }
    }

    /// Bytes of the integer model (packed 8-bit weights, scales, biases),
    /// with the split convs' parts (`ConvSplit`), which hold their channels'
    /// weights a second time.
    pub fn model_bytes(&self) -> usize {
        self.compiled
            .iter()
            .map(|c| match c {
                Compiled::Conv { q, split, .. } => {
                    q.bytes()
                        + split
                            .iter()
                            .flat_map(|s| &s.parts)
                            .map(|p| p.q.bytes())
                            .sum::<usize>()
                }
                _ => 0,
            })
            .sum()
    }

    pub fn qconv(&self, layer: usize) -> Option<&QConv> {
        match &self.compiled[layer] {
            Compiled::Conv { q, .. } => Some(q),
            _ => None,
        }
    }

    /// Runs the whole graph on `input` (H×W×3 in [0, 1]).
    pub fn run(&self, plan: &Plan, input: &Tensor) -> Result<Tensor> {
        self.run_observed(plan, input, &mut |_| {})
    }

    /// Like [`Engine::run`], reporting each conv's input to `observe`.
    pub fn run_observed(
        &self,
        plan: &Plan,
        input: &Tensor,
        observe: &mut dyn FnMut(Event),
    ) -> Result<Tensor> {
        let g = &self.graph;
        let in_c = g.values[g.input].channels;
        if input.c != in_c {
            return Err(Error::Invalid(format!(
                "engine input has {} channels (expected {in_c})",
                input.c
            )));
        }
        g.check_size(input.h, input.w).map_err(Error::Invalid)?;
        if plan.convs.len() != g.layers.len() {
            return Err(Error::Invalid(format!(
                "plan has {} layers, graph has {}",
                plan.convs.len(),
                g.layers.len()
            )));
        }
        // Remaining uses per value, so tensors are freed as soon as possible.
        let mut uses = vec![0usize; g.values.len()];
        for l in &g.layers {
            for &v in &l.inputs {
                uses[v] += 1;
            }
        }
        uses[g.output] += 1;
        let mut vals: Vec<Option<Tensor>> = vec![None; g.values.len()];
        vals[g.input] = Some(input.clone());
        for (i, l) in g.layers.iter().enumerate() {
            if matches!(self.compiled[i], Compiled::Fused) {
                continue;
            }
            let t0 = std::time::Instant::now();
            let outs: Vec<Tensor> = {
                let x = |k: usize| {
                    vals[l.inputs[k]]
                        .as_ref()
                        .expect("producer ran before consumer")
                };
                match &l.op {
                    Op::Conv(_) => {
                        let xin = x(0);
                        observe(Event::ConvInput { layer: i, x: xin });
                        vec![self.run_conv(i, plan, xin, self.threads)]
                    }
                    Op::GlobalAvgPool => vec![ops::global_avg_pool(x(0))],
                    Op::GlobalStd => vec![ops::global_std(x(0))],
                    op => {
                        let xs: Vec<&Tensor> = (0..l.inputs.len()).map(x).collect();
                        let (oh, ow) = g.values[l.outputs[0]].hw(input.h, input.w);
                        match ops::whole(op, &xs, oh, ow, self.threads) {
                            Some(t) => vec![t],
                            None => ops::row_local(op, &xs).expect("every other op is row-local"),
                        }
                    }
                }
            };
            let targets: Vec<usize> = match &self.compiled[i] {
                Compiled::Conv { out, .. } => vec![*out],
                _ => l.outputs.clone(),
            };
            for (v, t) in targets.into_iter().zip(outs) {
                vals[v] = Some(t);
            }
            observe(Event::LayerDone {
                layer: i,
                secs: t0.elapsed().as_secs_f64(),
            });
            for &v in &l.inputs {
                uses[v] -= 1;
                if uses[v] == 0 {
                    vals[v] = None;
                }
            }
        }
        vals[g.output]
            .take()
            .ok_or_else(|| Error::Invalid("graph output was not produced".into()))
    }

    /// The float conv of layer `layer` under `plan` (FP32 or FP32W8 weights),
    /// with its fused activation.
    pub(crate) fn float_conv(
        &self,
        layer: usize,
        plan: &Plan,
    ) -> (&FloatConv, Option<&Activation>) {
        let (
            Op::Conv(c),
            Compiled::Conv {
                q, fp32, w8, act, ..
            },
        ) = (&self.graph.layers[layer].op, &self.compiled[layer])
        else {
            unreachable!("layer {layer} is a compiled conv")
        };
        let f = if plan.weights_8bit {
            w8.get_or_init(|| FloatConv::new(c, &q.weights.dequantized()))
        } else {
            fp32.get_or_init(|| FloatConv::new(c, &c.weights))
        };
        (f, act.as_ref())
    }

    /// Conv layer `layer` on the whole tensor `x` under `plan`: float (FP32 or
    /// FP32W8) or on its integer unit, with the RQU's range for DRE layers.
    pub(crate) fn run_conv(&self, layer: usize, plan: &Plan, x: &Tensor, threads: usize) -> Tensor {
        let Compiled::Conv { q, kact, .. } = &self.compiled[layer] else {
            unreachable!("layer {layer} is a compiled conv")
        };
        match plan.convs[layer] {
            ConvPlan::Float => {
                let (f, act) = self.float_conv(layer, plan);
                f.run(x, act, threads)
            }
            ConvPlan::Quant { q: qp, dre } => {
                // §4.2: DRE layers derive s, z from this input's actual range
                // (the RQU), static layers use the calibrated ones.
                let qp = if dre {
                    let (lo, hi) = min_max(&x.data);
                    QParams::from_range(lo, hi, qp.bits)
                } else {
                    qp
                };
                q.run(self.level, x, &qp, kact, threads)
            }
        }
    }

    /// Static ranges (Eq. 1's x̂_min, x̂_max) of every conv input over `images`,
    /// observed on the FP32W8 model (§4.1 InitScales&ZeroPoints).
    pub fn calibrate(&self, images: &[Tensor]) -> Result<Ranges> {
        let mut r = Ranges::empty(&self.graph);
        let plan = Plan::fp32w8(&self.graph);
        for img in images {
            self.run_observed(&plan, img, &mut |e| {
                if let Event::ConvInput { layer, x } = e {
                    let (lo, hi) = min_max(&x.data);
                    r.observe(layer, lo, hi);
                }
            })?;
        }
        Ok(r)
    }
}
