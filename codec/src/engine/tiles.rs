//! Patch (band) execution of a compiled graph: the data side of the Neural Image
//! Codec (§4.3, "dividing the LR images into fixed-size patches").
//!
//! A patch is a band of `rows` consecutive LR rows over the full frame width.
//! Execution is *layer-wise tiled*: every image-sized value is held as one chunk
//! per band, and band `b` of layer `l` runs as soon as the chunks of its inputs
//! that cover its receptive rows (± the conv halo, dilation·(k−1)/2) exist. Each
//! output element is therefore computed from exactly the same inputs, with exactly
//! the same operations, as in [`Engine::run`], so the result is bit-identical to
//! the whole-frame computation:
//! - integer convs: the halo rows are quantized again by each band that reads
//!   them (element-wise, deterministic); the kernel runs on a local geometry whose
//!   padding equals the frame's only at frame edges (integer accumulation is exact
//!   whatever the traversal order, and the epilogue is per element);
//! - element-wise ops, split/concat and depth-to-space are row-local;
//! - frame-global ops (GlobalAvgPool, GlobalStd) and the RQU's DRE range (min/max
//!   of a conv's *whole* input, §4.2) are barriers: every band reaches them, the
//!   reduction completes, then bands continue. The pooling accumulates the chunks
//!   in frame order, i.e. the same f64 sum sequence as the whole-frame op; min/max
//!   partials are exact and combine in any order.
//!
//! Everything else (a float conv, a conv that is not "same"-sized, layers on
//! per-channel vectors) runs as one whole-frame node.
//!
//! Some values are never stored, each exactly as the whole frame computes
//! them (issue 15 item 3): a split's parts are written by their conv
//! (`engine::ConvSplit`), a channel gate is applied by the static conv that
//! reads it while it quantizes (`gates`), a concat read only by statistics
//! and static integer convs is read in parts (`parted`), a conv's output read
//! only by a residual `Add` gets the residual added by the conv's epilogue
//! (`residuals`), and the nawq models' last conv does their `ShuffleAnchor`
//! tail, writing the output's pixels from its epilogue for a caller that
//! keeps bytes (`tails`).
//!
//! [`TileGraph`] is the static task graph for one frame size; [`FrameTiles`] the
//! per-frame state (chunks, dependency counts, DRE ranges); [`run_steps`] executes
//! a (coalesced) work item on any thread. The runtime's dispatcher drives these
//! concurrently; [`run_tiled`] drives them sequentially (tests, reference).
use std::ops::Range;
use std::sync::Arc;

use super::ops;
use super::{Compiled, ConvPlan, Engine, Plan, Tensor};
use crate::error::{Error, Result};
use crate::kernels::{self, ConvGeom, CpuLevel, Epilogue, Output};
use crate::model::{Op, Spatial};
use crate::quant::params::{min_max, quantize_u8, quantize_u16};
use crate::quant::{Bits, QParams};

mod recycle;
mod reuse;
pub use reuse::{Reused, changed_rows};

/// The receptive halo of `plan` on `e` in LR pixels ([`TileGraph::reuse_halo`]):
/// None when a frame-global op or a DRE range makes every output pixel depend
/// on the whole frame.
pub fn reuse_halo(e: &Engine, plan: &Plan) -> Result<Option<usize>> {
    // A map of another size than the frame's (strided convs, pooling: RFDN's
    // ESA) runs whole-frame, so every output depends on the whole frame; and
    // the 8×8 probe below may be smaller than such a model's windows.
    if e.graph
        .values
        .iter()
        .any(|v| matches!(v.spatial, Spatial::Reduced(_)))
    {
        return Ok(None);
    }
    Ok(TileGraph::new(e, plan, 8, 8, 8)?.reuse_halo)
}

/// The LR frame's rows split into bands of `rows` (the last may be shorter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bands {
    pub h: usize,
    pub rows: usize,
}

impl Bands {
    pub fn new(h: usize, rows: usize) -> Bands {
        Bands {
            h,
            rows: rows.clamp(1, h.max(1)),
        }
    }

    pub fn count(&self) -> usize {
        self.h.div_ceil(self.rows)
    }

    /// LR rows of band `b`.
    pub fn range(&self, b: usize) -> Range<usize> {
        b * self.rows..((b + 1) * self.rows).min(self.h)
    }

    /// Bands overlapping the non-empty LR row range `r`.
    pub fn covering(&self, r: Range<usize>) -> Range<usize> {
        r.start / self.rows..r.end.div_ceil(self.rows).max(r.start / self.rows + 1)
    }
}

/// A quantized band: the integers a conv's epilogue wrote for its consumers,
/// with the ⟨s, z⟩ they were written with.
#[derive(Clone, Debug, PartialEq)]
pub struct QTensor<T> {
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub data: Vec<T>,
}

/// One band of a value as stored between nodes. A value whose consumers are all
/// integer convs reading it with the same static ⟨s, z⟩ is stored quantized:
/// its producer's epilogue requantizes straight into the consumers' input type
/// (`kernels::Output::U8/U16`), so no f32 tensor is written and no quantization
/// pass runs between the two convs. The requantization is the same operation
/// as `QParams::quantize`, so the integers are those the consumer would have
/// made from the f32 (bit-identical to [`Engine::run`]).
#[derive(Clone, Debug)]
pub enum Chunk {
    F32(Arc<Tensor>),
    U8(Arc<QTensor<u8>>),
    U16(Arc<QTensor<u16>>),
}

impl Chunk {
    pub fn h(&self) -> usize {
        match self {
            Chunk::F32(t) => t.h,
            Chunk::U8(t) => t.h,
            Chunk::U16(t) => t.h,
        }
    }

    /// The f32 tensor (values consumed by anything but integer convs).
    fn f32(&self) -> &Tensor {
        match self {
            Chunk::F32(t) => t,
            _ => unreachable!("only values read by integer convs alone are stored quantized"),
        }
    }
}

/// What a node of the task graph does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    /// Layer `layer` on band `band`.
    Band { layer: usize, band: usize },
    /// Layer `layer` on the whole frame (reads every band of its image inputs).
    Whole { layer: usize },
    /// §4.2 DRE barrier: the min/max of `value` over the whole frame is known
    /// (combined from the producers' per-band partials). No work; the dispatcher
    /// completes it inline.
    Range { value: usize },
}

/// Which chunks of a value a node reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Need {
    pub value: usize,
    /// Chunk indices (bands; `0..1` for per-channel vectors).
    pub chunks: Range<usize>,
}

#[derive(Clone, Debug)]
pub struct Node {
    pub kind: NodeKind,
    /// One entry per layer input, in order.
    pub needs: Vec<Need>,
    /// Values written (the fused activation's output for a conv).
    pub outputs: Vec<usize>,
    /// Nodes that must complete first (deduplicated).
    pub deps: Vec<usize>,
    pub consumers: Vec<usize>,
    /// Banded DRE conv: the activation bitwidth its RQU-derived ⟨s, z⟩ use.
    pub dre: Option<Bits>,
    /// How many leading needs are the channel parts of the op's first input:
    /// 1, or a concat's inputs when the concat is read in parts (`parted`).
    pub parts: usize,
    /// The need after the input's parts is a channel gate the conv applies (`gates`).
    pub gated: bool,
    /// The conv also does the graph's tail, a `ShuffleAnchor` of this block (`tails`): its
    /// last need is the anchor, and its output is the graph's.
    pub tail: Option<usize>,
    /// The conv also does the residual `Add` after it (`residuals`): its last need is the
    /// residual, and its output is the add's.
    pub residual: bool,
}

impl Node {
    pub fn layer(&self) -> Option<usize> {
        match self.kind {
            NodeKind::Band { layer, .. } | NodeKind::Whole { layer } => Some(layer),
            NodeKind::Range { .. } => None,
        }
    }

    pub fn band(&self) -> Option<usize> {
        match self.kind {
            NodeKind::Band { band, .. } => Some(band),
            _ => None,
        }
    }
}

/// The static task graph of one graph + plan at one frame size.
#[derive(Clone, Debug)]
pub struct TileGraph {
    pub h: usize,
    pub w: usize,
    pub bands: Bands,
    pub nodes: Vec<Node>,
    /// Per value: number of chunks (bands for images, 1 for per-channel vectors).
    pub chunks: Vec<usize>,
    /// Per value: true when some banded DRE conv reads it, so producers report
    /// per-chunk min/max partials (§4.3 RQU parallel reduce).
    pub range_needed: Vec<bool>,
    /// Per value and chunk: the node that produces it (None: the graph input).
    pub producer: Vec<Vec<Option<usize>>>,
    /// Per value and chunk: how many nodes read it (+1 for the graph output).
    pub uses: Vec<Vec<u32>>,
    /// Per value: the DRE range node (if any).
    pub range_node: Vec<Option<usize>>,
    /// Per value: stored quantized with these ⟨b, s, z⟩ (see [`Chunk`]).
    pub quantized: Vec<Option<QParams>>,
    pub input: usize,
    /// Channels of the input: 3 (RGB) or 1 (a luma model).
    pub in_c: usize,
    pub output: usize,
    /// LR pixels around an output pixel that decide it, on either axis
    /// (temporal reuse: `reuse.rs`, `runtime::reuse`); None when a
    /// frame-global node makes every output depend on the whole frame.
    pub reuse_halo: Option<usize>,
}

/// Spatial factor of an image value (None for per-channel vectors).
fn factor(e: &Engine, v: usize) -> Option<usize> {
    match e.graph.values[v].spatial {
        Spatial::Image { factor } => Some(factor),
        Spatial::Pooled | Spatial::Reduced(_) => None,
    }
}

/// A conv whose output has its input's size (stride 1, "same" padding) can be
/// computed band by band from its input rows ± halo, on its integer unit or
/// in float (a float partition, or the FP32 modes).
fn conv_is_bandable(e: &Engine, layer: usize) -> bool {
    let Op::Conv(c) = &e.graph.layers[layer].op else {
        return false;
    };
    c.is_same() && factor(e, e.graph.layers[layer].inputs[0]).is_some()
}

/// ⟨b, s, z⟩ to store value `v` with, when its producer is a banded integer
/// conv and every consumer is a banded integer conv with the same static
/// (non-DRE) parameters. A DRE consumer needs the f32 range (§4.2), anything
/// else needs f32 values.
fn stored_quantized(
    e: &Engine,
    plan: &Plan,
    tg: &TileGraph,
    consumers: &[usize],
    v: usize,
) -> Option<QParams> {
    if v == tg.output || v == tg.input || tg.range_needed[v] || consumers.is_empty() {
        return None;
    }
    let p = tg.producer[v].first().copied().flatten()?;
    let NodeKind::Band { layer, .. } = tg.nodes[p].kind else {
        return None;
    };
    if !matches!(e.compiled[layer], Compiled::Conv { .. }) {
        return None;
    }
    let mut qp: Option<QParams> = None;
    for &j in consumers {
        let ConvPlan::Quant { q, dre: false } = plan.convs[j] else {
            return None;
        };
        if !conv_is_bandable(e, j) || qp.is_some_and(|p| p != q) {
            return None;
        }
        qp = Some(q);
    }
    qp
}

/// Per layer: the channel gate a banded static integer conv applies while it
/// quantizes its input, `(x, g)` for an input `m = x · g` (`Op::MulChannel`,
/// IMDN's attention) that nothing else reads. The conv's rows are then `x`'s,
/// multiplied by `g` in a row of scratch, as `ops::mul_channel` would (the
/// same f32 product), and `m` is never stored: one f32 pass and tensor of the
/// frame's widest value less per block.
fn gates(e: &Engine, plan: &Plan) -> Vec<Option<(usize, usize)>> {
    let g = &e.graph;
    let (consumers, producers) = (g.consumers(), g.producers());
    (0..g.layers.len())
        .map(|l| {
            let ConvPlan::Quant { dre: false, .. } = plan.convs[l] else {
                return None;
            };
            if !conv_is_bandable(e, l) {
                return None;
            }
            let m = g.layers[l].inputs[0];
            let k = producers[m]?;
            let (Op::MulChannel, Compiled::Other) = (&g.layers[k].op, &e.compiled[k]) else {
                return None;
            };
            let (x, gate) = (g.layers[k].inputs[0], g.layers[k].inputs[1]);
            (m != g.output
                && consumers[m] == [l]
                && factor(e, x).is_some()
                && factor(e, gate).is_none()
                && g.values[gate].channels == g.values[x].channels)
                .then_some((x, gate))
        })
        .collect()
}

/// Per layer: true for a concat whose readers all take it in parts, so it is
/// never stored: IMDN's blocks concatenate their four distilled parts only
/// for the attention's statistics (per channel, so per part: the same sums)
/// and for the gated conv after it, and its six block outputs only for a 1×1
/// conv; a static integer conv builds its quantized rows from the parts in a
/// row of scratch (`conv_band`). The 64- and 384-channel f32 copies of the
/// frame were 5 % of an IMDN_x4 frame's samples.
fn parted(e: &Engine, plan: &Plan, gates: &[Option<(usize, usize)>]) -> Vec<bool> {
    let g = &e.graph;
    let consumers = g.consumers();
    (0..g.layers.len())
        .map(|k| {
            let (Op::Concat, Compiled::Other) = (&g.layers[k].op, &e.compiled[k]) else {
                return false;
            };
            let v = g.layers[k].outputs[0];
            let readers_take_parts = consumers[v].iter().all(|&j| match &g.layers[j].op {
                Op::GlobalAvgPool | Op::GlobalStd => true,
                // A gate whose conv applies it (`gates`) to this concat.
                Op::MulChannel => consumers[g.layers[j].outputs[0]]
                    .iter()
                    .any(|&c| gates[c].is_some_and(|(x, _)| x == v)),
                Op::Conv(_) => {
                    matches!(plan.convs[j], ConvPlan::Quant { dre: false, .. })
                        && conv_is_bandable(e, j)
                }
                _ => false,
            });
            v != g.output
                && !consumers[v].is_empty()
                && readers_take_parts
                && g.layers[k]
                    .inputs
                    .iter()
                    .all(|&p| factor(e, p) == factor(e, v))
        })
        .collect()
}

/// A conv that also does the graph's tail (`tails`).
#[derive(Clone, Copy, Debug)]
struct Tail {
    /// The `ShuffleAnchor` layer, its anchor value and block.
    layer: usize,
    anchor: usize,
    block: usize,
}

/// `(out, k)` when layer `l` is a banded integer conv written whole (no
/// split) whose output `out` only layer `k`, not itself a conv, reads: where
/// `tails` and `residuals` look for a layer the conv can do as well.
fn sole_reader(
    e: &Engine,
    plan: &Plan,
    consumers: &[Vec<usize>],
    l: usize,
) -> Option<(usize, usize)> {
    let (
        ConvPlan::Quant { .. },
        Compiled::Conv {
            out, split: None, ..
        },
    ) = (&plan.convs[l], &e.compiled[l])
    else {
        return None;
    };
    match consumers[*out][..] {
        [k] if conv_is_bandable(e, l) && matches!(e.compiled[k], Compiled::Other) => {
            Some((*out, k))
        }
        _ => None,
    }
}

/// Per layer: the graph's tail a banded integer conv does as well, when its
/// output is read only by the `ShuffleAnchor` that makes the graph's output
/// (the nawq models' last conv, `model::fuse`). The node then runs the two
/// layers on its band, and a frame whose caller keeps only bytes has them
/// written by the conv's epilogue (`kernels::Output::Pixels`): no f32 band of
/// the conv, nor an HR one, is written (7 % of nawq_x2's samples went to the
/// separate pass).
fn tails(e: &Engine, plan: &Plan) -> Vec<Option<Tail>> {
    let g = &e.graph;
    let (consumers, producers) = (g.consumers(), g.producers());
    (0..g.layers.len())
        .map(|l| {
            let (out, k) = sole_reader(e, plan, &consumers, l)?;
            let Op::ShuffleAnchor { block } = g.layers[k].op else {
                return None;
            };
            let (x, anchor) = (g.layers[k].inputs[0], g.layers[k].inputs[1]);
            (x == out
                && anchor != out
                && g.layers[k].outputs[..] == [g.output]
                && factor(e, anchor).is_some()
                && factor(e, anchor) == factor(e, x)
                && producers[g.output] == Some(k))
            .then_some(Tail {
                layer: k,
                anchor,
                block,
            })
        })
        .collect()
}

/// Per layer: `(add, r)` when a banded integer conv's output is read only by
/// the residual `Add` layer `add` with another image `r` of its shape (IMDN's
/// blocks: `c5(x) + input`, and `LR_conv(x) + fea`). The node then runs both:
/// its epilogue adds `r` after the activation (`kernels::Output::Plus`, the
/// same f32 add) and stores the sum, quantized when the sum's readers are
/// integer convs: neither the conv's f32 output nor the add's pass over
/// three tensors exists (issue 15 item 3). `r` must come from an earlier
/// layer (nodes are made in layer order), so of two such convs summed only
/// the later does the add.
fn residuals(e: &Engine, plan: &Plan) -> Vec<Option<(usize, usize)>> {
    let g = &e.graph;
    let (consumers, producers) = (g.consumers(), g.producers());
    (0..g.layers.len())
        .map(|l| {
            let (out, k) = sole_reader(e, plan, &consumers, l)?;
            let r = match (&g.layers[k].op, &g.layers[k].inputs[..]) {
                (Op::Add, &[a, b]) if a == out && b != out => b,
                (Op::Add, &[a, b]) if b == out && a != out => a,
                _ => return None,
            };
            (producers[r].is_none_or(|p| p < l)
                && factor(e, r).is_some()
                && factor(e, r) == factor(e, out)
                && g.values[r].channels == g.values[out].channels)
                .then_some((k, r))
        })
        .collect()
}

impl TileGraph {
    /// Task graph for an `h`×`w` LR frame in bands of `rows` LR rows.
    pub fn new(e: &Engine, plan: &Plan, h: usize, w: usize, rows: usize) -> Result<TileGraph> {
        let g = &e.graph;
        if h == 0 || w == 0 {
            return Err(Error::Invalid(format!(
                "frame is {w}x{h}, expected a non-empty size"
            )));
        }
        if plan.convs.len() != g.layers.len() {
            return Err(Error::Invalid(format!(
                "plan has {} layers, graph has {}",
                plan.convs.len(),
                g.layers.len()
            )));
        }
        g.check_size(h, w).map_err(Error::Invalid)?;
        let bands = Bands::new(h, rows);
        let nb = bands.count();
        let nv = g.values.len();
        let chunks: Vec<usize> = (0..nv)
            .map(|v| if factor(e, v).is_some() { nb } else { 1 })
            .collect();
        let mut producer: Vec<Vec<Option<usize>>> = chunks.iter().map(|&n| vec![None; n]).collect();
        let mut tg = TileGraph {
            h,
            w,
            bands,
            nodes: Vec::new(),
            chunks: chunks.clone(),
            range_needed: vec![false; nv],
            producer: Vec::new(),
            uses: chunks.iter().map(|&n| vec![0; n]).collect(),
            range_node: vec![None; nv],
            quantized: vec![None; nv],
            input: g.input,
            in_c: g.values[g.input].channels,
            output: g.output,
            reuse_halo: None,
        };
        let gates = gates(e, plan);
        let producers = g.producers();
        let gated: Vec<bool> = {
            let mut v = vec![false; g.layers.len()];
            for (l, gate) in gates.iter().enumerate() {
                if gate.is_some()
                    && let Some(k) = producers[g.layers[l].inputs[0]]
                {
                    v[k] = true;
                }
            }
            v
        };
        let parted = parted(e, plan, &gates);
        let tails = tails(e, plan);
        let residuals = residuals(e, plan);
        // Layers a conv does as well: tails and residual adds.
        let done_by_conv: Vec<bool> = {
            let mut v = vec![false; g.layers.len()];
            for t in tails.iter().flatten() {
                v[t.layer] = true;
            }
            for &(k, _) in residuals.iter().flatten() {
                v[k] = true;
            }
            v
        };
        // A value as the list of values it is read from: a parted concat's inputs.
        let parts_of = |v: usize| -> Vec<usize> {
            match producers[v] {
                Some(k) if parted[k] => g.layers[k].inputs.clone(),
                _ => vec![v],
            }
        };
        for (l, layer) in g.layers.iter().enumerate() {
            if gated[l] || parted[l] || done_by_conv[l] {
                // A channel gate its conv applies (`gates`), a concat read in parts (`parted`),
                // the tail or residual add a conv does (`tails`, `residuals`).
                continue;
            }
            let mut inputs = match gates[l] {
                Some((x, gate)) => vec![x, gate],
                None => layer.inputs.clone(),
            };
            let first = parts_of(inputs[0]);
            let parts = first.len();
            inputs.splice(0..1, first);
            if let Some(t) = tails[l] {
                inputs.push(t.anchor);
            }
            if let Some((_, r)) = residuals[l] {
                inputs.push(r);
            }
            let outputs = match &e.compiled[l] {
                Compiled::Fused | Compiled::SplitOf => continue,
                _ if tails[l].is_some() => vec![g.output],
                _ if let Some((k, _)) = residuals[l] => g.layers[k].outputs.clone(),
                Compiled::Conv { split: Some(s), .. } => s.parts.iter().map(|p| p.value).collect(),
                Compiled::Conv { out, .. } => vec![*out],
                Compiled::Other => layer.outputs.clone(),
            };
            let out_image = outputs.iter().all(|&v| factor(e, v).is_some());
            let banded = match &layer.op {
                Op::Conv(_) => conv_is_bandable(e, l),
                op => out_image && op.is_row_local(),
            };
            let dre = plan.is_dre(l) && banded;
            let band_list: Vec<Option<usize>> = if banded {
                (0..nb).map(Some).collect()
            } else {
                vec![None]
            };
            for band in band_list {
                let mut needs = Vec::new();
                let mut deps = Vec::new();
                for (i, &v) in inputs.iter().enumerate() {
                    // A tail's anchor and a residual are read pixel for pixel.
                    let anchor =
                        (tails[l].is_some() || residuals[l].is_some()) && i == inputs.len() - 1;
                    let chunks = match (factor(e, v), band) {
                        (None, _) => 0..1,
                        (Some(_), None) => 0..nb,
                        (Some(f), Some(b)) => {
                            let r = bands.range(b);
                            let (r0, r1) = (f * r.start, f * r.end);
                            let (a, z) = match &layer.op {
                                Op::Conv(c) if !anchor => {
                                    let span = c.dilation * (c.kh - 1) + 1;
                                    let hv = f * h;
                                    (
                                        r0.saturating_sub(c.pads[0]),
                                        (r1 + span - 1).saturating_sub(c.pads[0]).min(hv),
                                    )
                                }
                                _ => (r0, r1),
                            };
                            let z = z.max(a + 1);
                            bands.covering(a / f..z.div_ceil(f))
                        }
                    };
                    for c in chunks.clone() {
                        tg.uses[v][c] += 1;
                        if let Some(p) = producer[v][c] {
                            deps.push(p);
                        }
                    }
                    needs.push(Need { value: v, chunks });
                }
                if dre {
                    let v = layer.inputs[0];
                    let r = match tg.range_node[v] {
                        Some(r) => r,
                        None => {
                            let rid = tg.nodes.len();
                            let mut rdeps: Vec<usize> =
                                producer[v].iter().flatten().copied().collect();
                            rdeps.sort_unstable();
                            rdeps.dedup();
                            tg.nodes.push(Node {
                                kind: NodeKind::Range { value: v },
                                needs: Vec::new(),
                                outputs: Vec::new(),
                                deps: rdeps,
                                consumers: Vec::new(),
                                dre: None,
                                parts: 0,
                                gated: false,
                                tail: None,
                                residual: false,
                            });
                            tg.range_node[v] = Some(rid);
                            tg.range_needed[v] = true;
                            rid
                        }
                    };
                    deps.push(r);
                }
                // A range barrier created above shifts this node's index.
                let id = tg.nodes.len();
                deps.sort_unstable();
                deps.dedup();
                let kind = match band {
                    Some(band) => NodeKind::Band { layer: l, band },
                    None => NodeKind::Whole { layer: l },
                };
                let dre_bits = match plan.convs[l] {
                    ConvPlan::Quant { q, dre: true } if dre => Some(q.bits),
                    _ => None,
                };
                tg.nodes.push(Node {
                    kind,
                    needs,
                    outputs: outputs.clone(),
                    deps,
                    consumers: Vec::new(),
                    dre: dre_bits,
                    parts,
                    gated: gates[l].is_some(),
                    tail: tails[l].map(|t| t.block),
                    residual: residuals[l].is_some(),
                });
                for &v in &outputs {
                    match band {
                        Some(b) if factor(e, v).is_some() => producer[v][b] = Some(id),
                        _ => producer[v].iter_mut().for_each(|p| *p = Some(id)),
                    }
                }
            }
        }
        if producer[g.output].iter().any(Option::is_none) || factor(e, g.output).is_none() {
            return Err(Error::Invalid(
                "graph output is not an image produced by a layer".into(),
            ));
        }
        for c in 0..chunks[g.output] {
            tg.uses[g.output][c] += 1;
        }
        for i in 0..tg.nodes.len() {
            for d in tg.nodes[i].deps.clone() {
                tg.nodes[d].consumers.push(i);
            }
        }
        tg.producer = producer;
        let consumers = g.consumers();
        tg.quantized = (0..nv)
            .map(|v| stored_quantized(e, plan, &tg, &consumers[v], v))
            .collect();
        tg.reuse_halo = reuse::receptive_halo(e, &tg);
        Ok(tg)
    }

    /// Scheduling priority, lowest first: finish the top bands through as many
    /// layers as possible before starting lower ones (a skewed wavefront that
    /// keeps a band's working set in cache, §4.3).
    pub fn priority(&self, node: usize) -> (usize, usize) {
        let n = &self.nodes[node];
        (n.band().unwrap_or(0), n.layer().unwrap_or(0))
    }
}

/// One input chunk of a work step: stored, or produced by an earlier step of
/// the same (coalesced) work item.
#[derive(Clone, Debug)]
pub enum Src {
    Chunk(Chunk),
    /// Output `out`, chunk `chunk` of step `step`.
    Chain {
        step: usize,
        out: usize,
        chunk: usize,
    },
}

/// One node to execute, with its inputs resolved.
#[derive(Clone, Debug)]
pub struct Step {
    pub node: usize,
    /// Per layer input: the chunks of `Node::needs`, in order.
    pub inputs: Vec<Vec<Src>>,
    /// DRE layers: ⟨b, s, z⟩ derived by the RQU from the input's frame range.
    pub qp: Option<QParams>,
    /// The frame keeps only the bytes of this step's output (`FrameTiles::bytes_only`):
    /// a `ShuffleAnchor` output band is then made as u8 pixels alone.
    pub bytes_only: bool,
}

/// What a step produced.
#[derive(Clone, Debug)]
pub struct StepOut {
    pub node: usize,
    /// Per output value: its chunks (one for band nodes).
    pub chunks: Vec<Vec<Chunk>>,
    /// Per output value: min/max over the chunks when a DRE conv reads it.
    pub partial: Vec<Option<(f32, f32)>>,
    /// Seconds spent on the step, and on its min/max partials (RQU, §4.3).
    pub secs: f64,
    pub range_secs: f64,
    /// Nodes writing the graph output: its chunks already converted to RGB u8
    /// (clip, ×255, round), so the conversion runs in the workers, band by band,
    /// instead of serially on the caller's thread after the frame.
    pub rgb: Vec<Arc<Vec<u8>>>,
}

/// A frame's input value cut into the task graph's bands (`Bands::new(h, rows)`).
#[derive(Clone, Debug, PartialEq)]
struct Banded {
    h: usize,
    w: usize,
    c: usize,
    bands: Vec<Tensor>,
}

impl Banded {
    /// `row(r, dst)` writes frame row `r` (w·c values) into `dst`.
    fn from_rows(
        h: usize,
        w: usize,
        c: usize,
        rows: usize,
        mut row: impl FnMut(usize, &mut [f32]),
    ) -> Banded {
        let cut = Bands::new(h, rows);
        let bands = (0..cut.count())
            .map(|b| band_of(cut.range(b), w, c, &mut row))
            .collect();
        Banded { h, w, c, bands }
    }
}

/// Frame rows `r` (w·c values each, made by `row`) as one band, in a recycled
/// buffer (every value is written).
fn band_of(r: Range<usize>, w: usize, c: usize, mut row: impl FnMut(usize, &mut [f32])) -> Tensor {
    let mut data = recycle::take::<f32>(r.len() * w * c);
    if w * c > 0 {
        for (i, dst) in data.chunks_exact_mut(w * c).enumerate() {
            row(r.start + i, dst);
        }
    }
    Tensor {
        h: r.len(),
        w,
        c,
        data,
    }
}

/// A frame's u8 pixels, from which the runtime makes each f32 input band
/// when a node first reads it (issue 15 item 4): only the bands in flight
/// exist in f32, never the whole frame. The values are v / 255, those of
/// `Tensor::from_rgb`.
#[derive(Clone, Debug)]
pub enum Pixels {
    Rgb(Arc<image::RgbImage>),
    Gray(Arc<image::GrayImage>),
}

impl Pixels {
    /// (h, w, c).
    pub fn dims(&self) -> (usize, usize, usize) {
        match self {
            Pixels::Rgb(i) => (i.height() as usize, i.width() as usize, 3),
            Pixels::Gray(i) => (i.height() as usize, i.width() as usize, 1),
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Pixels::Rgb(i) => i.as_raw(),
            Pixels::Gray(i) => i.as_raw(),
        }
    }

    /// Frame row `r` as the network's input, v / 255.
    fn row(&self, r: usize, dst: &mut [f32]) {
        let n = dst.len();
        for (d, &v) in dst.iter_mut().zip(&self.bytes()[r * n..][..n]) {
            *d = f32::from(v) / 255.0;
        }
    }

    /// Rows `r` as an f32 band.
    fn band(&self, r: Range<usize>) -> Tensor {
        let (_, w, c) = self.dims();
        band_of(r, w, c, |r, dst| self.row(r, dst))
    }
}

/// A frame handed to the runtime: whole, or as pixels made into bands on
/// demand.
#[derive(Clone, Debug)]
pub enum FrameInput {
    Whole(Tensor),
    Pixels(Pixels),
}

impl FrameInput {
    /// (h, w, c).
    pub fn dims(&self) -> (usize, usize, usize) {
        match self {
            FrameInput::Whole(t) => (t.h, t.w, t.c),
            FrameInput::Pixels(p) => p.dims(),
        }
    }

    pub fn into_whole(self) -> Tensor {
        match self {
            FrameInput::Whole(t) => t,
            FrameInput::Pixels(p) => p.band(0..p.dims().0),
        }
    }
}

impl From<Tensor> for FrameInput {
    fn from(t: Tensor) -> FrameInput {
        FrameInput::Whole(t)
    }
}

impl From<Pixels> for FrameInput {
    fn from(p: Pixels) -> FrameInput {
        FrameInput::Pixels(p)
    }
}

fn check_dims(tg: &TileGraph, (h, w, c): (usize, usize, usize)) -> Result<()> {
    if (h, w, c) != (tg.h, tg.w, tg.in_c) {
        return Err(Error::Invalid(format!(
            "input is {w}x{h}x{c}, task graph is for {}x{}x{}",
            tg.w, tg.h, tg.in_c
        )));
    }
    Ok(())
}

/// Per-frame state: chunks, remaining dependencies, DRE ranges.
pub struct FrameTiles {
    pub tg: Arc<TileGraph>,
    chunks: Vec<Vec<Option<Chunk>>>,
    uses: Vec<Vec<u32>>,
    pending: Vec<u32>,
    /// Node handed out (ready or dispatched): never made ready again.
    taken: Vec<bool>,
    done: Vec<bool>,
    ranges: Vec<Option<(f32, f32)>>,
    /// Per output chunk: its RGB u8 conversion.
    rgb: Vec<Option<Arc<Vec<u8>>>>,
    remaining: usize,
    /// The caller takes the u8 output only: an f32 output chunk is kept as
    /// its shape alone (no data) once its u8 form is in.
    pub bytes_only: bool,
    /// The input's pixels, while some input band is still to be made (let
    /// go with the last, so that the caller's frame is no longer shared).
    source: Option<Pixels>,
    unmade: usize,
}

impl FrameTiles {
    /// Splits `input` (h×w×c) into band chunks (a copy of each band).
    pub fn new(tg: Arc<TileGraph>, input: &Tensor) -> Result<FrameTiles> {
        check_dims(&tg, (input.h, input.w, input.c))?;
        let row = input.w * input.c;
        let banded = Banded::from_rows(input.h, input.w, input.c, tg.bands.rows, |r, dst| {
            dst.copy_from_slice(&input.data[r * row..][..row])
        });
        Ok(FrameTiles::from_banded(tg, banded))
    }

    /// The frame as a whole tensor or as pixels.
    pub fn of(tg: Arc<TileGraph>, input: FrameInput) -> Result<FrameTiles> {
        match input {
            FrameInput::Whole(t) => FrameTiles::new(tg, &t),
            FrameInput::Pixels(p) => FrameTiles::from_pixels(tg, p),
        }
    }

    /// Makes each input band from `px` when a node first reads it
    /// ([`FrameTiles::step`]), so only the bands in flight exist in f32.
    /// A plan whose first conv takes its range from the whole input (§4.2
    /// DRE) needs every band at once: they are made here.
    pub fn from_pixels(tg: Arc<TileGraph>, px: Pixels) -> Result<FrameTiles> {
        check_dims(&tg, px.dims())?;
        if tg.range_needed[tg.input] {
            let (h, w, c) = px.dims();
            let banded = Banded::from_rows(h, w, c, tg.bands.rows, |r, dst| px.row(r, dst));
            return Ok(FrameTiles::from_banded(tg, banded));
        }
        let mut ft = FrameTiles::empty(tg, Vec::new(), None);
        ft.unmade = ft.uses[ft.tg.input].iter().filter(|&&u| u > 0).count();
        ft.source = (ft.unmade > 0).then_some(px);
        Ok(ft)
    }

    /// Takes the input's bands, cut as `tg.bands` cuts the frame (the callers
    /// checked the frame's size).
    fn from_banded(tg: Arc<TileGraph>, input: Banded) -> FrameTiles {
        debug_assert_eq!((input.h, input.w, input.c), (tg.h, tg.w, tg.in_c));
        debug_assert_eq!(input.bands.len(), tg.bands.count());
        // Band partials combined, as the RQU combines producers' (exact).
        let range = if tg.range_needed[tg.input] {
            input
                .bands
                .iter()
                .filter(|t| !t.data.is_empty())
                .map(|t| min_max(&t.data))
                .reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)))
        } else {
            None
        };
        FrameTiles::empty(tg, input.bands, range)
    }

    /// The state before any node ran, with these input bands (none: made
    /// from `source` on demand) and the input's range.
    fn empty(tg: Arc<TileGraph>, bands: Vec<Tensor>, range: Option<(f32, f32)>) -> FrameTiles {
        let mut chunks: Vec<Vec<Option<Chunk>>> =
            tg.chunks.iter().map(|&n| vec![None; n]).collect();
        let mut ranges = vec![None; tg.chunks.len()];
        ranges[tg.input] = range;
        for (slot, t) in chunks[tg.input].iter_mut().zip(bands) {
            *slot = Some(Chunk::F32(Arc::new(t)));
        }
        let pending: Vec<u32> = tg.nodes.iter().map(|n| n.deps.len() as u32).collect();
        FrameTiles {
            uses: tg.uses.clone(),
            pending,
            taken: vec![false; tg.nodes.len()],
            done: vec![false; tg.nodes.len()],
            remaining: tg.nodes.len(),
            rgb: vec![None; tg.chunks[tg.output]],
            chunks,
            ranges,
            tg,
            bytes_only: false,
            source: None,
            unmade: 0,
        }
    }

    /// Nodes with no dependencies (call once, at the start); they count as
    /// handed out.
    pub fn initial(&mut self) -> Vec<usize> {
        // Nodes skipped by `reuse` are already taken.
        let r: Vec<usize> = (0..self.pending.len())
            .filter(|&i| self.pending[i] == 0 && !self.taken[i])
            .collect();
        for &i in &r {
            self.taken[i] = true;
        }
        r
    }

    pub fn is_finished(&self) -> bool {
        self.remaining == 0
    }

    /// Could `node` run once the nodes in `chain` have run (everything else it
    /// depends on done, not yet handed out)? Used to coalesce work items (§4.3).
    pub fn ready_after(&self, node: usize, chain: &[usize]) -> bool {
        !self.taken[node]
            && self.tg.nodes[node]
                .deps
                .iter()
                .all(|d| self.done[*d] || chain.contains(d))
    }

    /// Builds the step for `node`; `chain` holds the nodes of earlier steps of
    /// the same work item (their outputs are passed along in the item).
    pub fn step(&mut self, node: usize, chain: &[usize]) -> Step {
        self.taken[node] = true;
        if let Some(px) = &self.source {
            // Input bands this node reads for the first time, made now.
            let v = self.tg.input;
            for need in self.tg.nodes[node].needs.iter().filter(|n| n.value == v) {
                for c in need.chunks.clone() {
                    if self.chunks[v][c].is_none() && self.uses[v][c] > 0 {
                        let t = px.band(self.tg.bands.range(c));
                        self.chunks[v][c] = Some(Chunk::F32(Arc::new(t)));
                        self.unmade -= 1;
                    }
                }
            }
            if self.unmade == 0 {
                self.source = None;
            }
        }
        let tg = &self.tg;
        let n = &tg.nodes[node];
        let inputs = n
            .needs
            .iter()
            .map(|need| {
                need.chunks
                    .clone()
                    .map(|c| {
                        if let Some(t) = &self.chunks[need.value][c] {
                            return Src::Chunk(t.clone());
                        }
                        let p = tg.producer[need.value][c].expect("graph input chunks are stored");
                        let step = chain
                            .iter()
                            .position(|&x| x == p)
                            .expect("dependency is done or in the chain");
                        let out = tg.nodes[p]
                            .outputs
                            .iter()
                            .position(|&v| v == need.value)
                            .expect("producer writes it");
                        let chunk = if tg.nodes[p].band().is_some() { 0 } else { c };
                        Src::Chain { step, out, chunk }
                    })
                    .collect()
            })
            .collect();
        // §4.2: a DRE layer's ⟨s, z⟩ come from its input's actual frame range.
        let qp = n.dre.map(|bits| {
            let (lo, hi) = self.ranges[n.needs[0].value].expect("range barrier precedes DRE bands");
            QParams::from_range(lo, hi, bits)
        });
        let bytes_only = self.bytes_only && n.outputs.contains(&tg.output);
        Step {
            node,
            inputs,
            qp,
            bytes_only,
        }
    }

    /// Records a finished step; returns the nodes that became ready. Range
    /// barriers are among them: complete those with [`FrameTiles::complete_range`].
    pub fn complete(&mut self, out: StepOut) -> Vec<usize> {
        let tg = self.tg.clone();
        let n = &tg.nodes[out.node];
        for ((&v, chunks), partial) in n.outputs.iter().zip(out.chunks).zip(out.partial) {
            match n.band() {
                Some(b) if tg.chunks[v] > 1 => self.chunks[v][b] = chunks.into_iter().next(),
                _ => {
                    for (c, t) in chunks.into_iter().enumerate() {
                        self.chunks[v][c] = Some(t);
                    }
                }
            }
            if let Some((lo, hi)) = partial {
                let r = self.ranges[v].get_or_insert((lo, hi));
                // §4.3 RQU: partial min/max of each band, combined (exact).
                r.0 = r.0.min(lo);
                r.1 = r.1.max(hi);
            }
        }
        match n.band() {
            Some(b) if out.rgb.len() == 1 && self.rgb.len() > 1 => {
                self.rgb[b] = out.rgb.into_iter().next()
            }
            _ => {
                for (c, r) in out.rgb.into_iter().enumerate() {
                    self.rgb[c] = Some(r);
                }
            }
        }
        if self.bytes_only && n.outputs.contains(&tg.output) {
            for c in self.chunks[tg.output].iter_mut() {
                if let Some(Chunk::F32(t)) = c
                    && !t.data.is_empty()
                {
                    *c = Some(Chunk::F32(Arc::new(Tensor {
                        h: t.h,
                        w: t.w,
                        c: t.c,
                        data: Vec::new(),
                    })));
                }
            }
        }
        // Inputs read by this node: release chunks nobody needs any more.
        for need in &n.needs {
            for c in need.chunks.clone() {
                self.uses[need.value][c] -= 1;
                if self.uses[need.value][c] == 0 {
                    // The buffer goes back to the pool when this was its last holder.
                    match self.chunks[need.value][c].take() {
                        Some(Chunk::U8(t)) => Arc::into_inner(t).map(|t| recycle::give(t.data)),
                        Some(Chunk::U16(t)) => Arc::into_inner(t).map(|t| recycle::give(t.data)),
                        Some(Chunk::F32(t)) => Arc::into_inner(t).map(|t| recycle::give(t.data)),
                        None => None,
                    };
                }
            }
        }
        self.finish(out.node)
    }

    /// Completes a DRE range barrier (its partials are all in).
    pub fn complete_range(&mut self, node: usize) -> Vec<usize> {
        self.finish(node)
    }

    /// The frame range of `value` (DRE values), for telemetry and tests.
    pub fn range(&self, value: usize) -> Option<(f32, f32)> {
        self.ranges[value]
    }

    fn finish(&mut self, node: usize) -> Vec<usize> {
        self.done[node] = true;
        self.remaining -= 1;
        let mut ready = Vec::new();
        for &c in &self.tg.nodes[node].consumers {
            self.pending[c] -= 1;
            if self.pending[c] == 0 && !self.taken[c] {
                self.taken[c] = true;
                ready.push(c);
            }
        }
        ready
    }

    /// The output chunks (in band order) once the frame is finished.
    pub fn output_chunks(&self) -> Result<Vec<Arc<Tensor>>> {
        self.chunks[self.tg.output]
            .iter()
            .map(|c| match c {
                Some(Chunk::F32(t)) => Ok(t.clone()),
                Some(_) => Err(Error::Invalid("graph output chunk is quantized".into())),
                None => Err(Error::Invalid("graph output chunk was not produced".into())),
            })
            .collect()
    }

    /// The output chunks as RGB u8 (see [`StepOut::rgb`]), in band order.
    pub fn output_rgb(&self) -> Result<Vec<Arc<Vec<u8>>>> {
        self.rgb
            .iter()
            .map(|c| {
                c.clone()
                    .ok_or_else(|| Error::Invalid("graph output chunk was not produced".into()))
            })
            .collect()
    }
}

/// Stitches band chunks (same width and channels) into one tensor.
pub fn stitch(chunks: &[Arc<Tensor>]) -> Tensor {
    let (w, c) = (chunks[0].w, chunks[0].c);
    let h = chunks.iter().map(|t| t.h).sum();
    let mut data = Vec::with_capacity(h * w * c);
    for t in chunks {
        data.extend_from_slice(&t.data);
    }
    Tensor { h, w, c, data }
}

/// Consecutive chunks of one value seen as rows `first..first + Σh`.
struct Rows<'a> {
    chunks: Vec<&'a Chunk>,
    starts: Vec<usize>,
}

/// Row `r` of `data` (rows of `w`·`c` elements) for the chunk starting at `start`.
fn row_of<T>(data: &[T], w: usize, c: usize, start: usize, r: usize) -> &[T] {
    let len = w * c;
    &data[(r - start) * len..][..len]
}

impl<'a> Rows<'a> {
    fn new(chunks: Vec<&'a Chunk>, first: usize) -> Rows<'a> {
        let mut starts = Vec::with_capacity(chunks.len());
        let mut s = first;
        for t in &chunks {
            starts.push(s);
            s += t.h();
        }
        Rows { chunks, starts }
    }

    /// The chunk holding row `r` and that chunk's first row.
    fn at(&self, r: usize) -> (&'a Chunk, usize) {
        let i = self.starts.partition_point(|&s| s <= r) - 1;
        (self.chunks[i], self.starts[i])
    }

    fn row(&self, r: usize) -> &'a [f32] {
        let (t, s) = self.at(r);
        let t = t.f32();
        row_of(&t.data, t.w, t.c, s, r)
    }

    /// Copies row `r` into `dst` as the integers of `qp`: the stored ones when
    /// the value is kept quantized (with `qp`, by construction), else quantized
    /// from f32 here.
    fn row_u8(&self, r: usize, qp: &QParams, dst: &mut [u8]) {
        match self.at(r) {
            (Chunk::U8(t), s) => dst.copy_from_slice(row_of(&t.data, t.w, t.c, s, r)),
            _ => quantize_u8(self.row(r), qp, dst),
        }
    }

    fn row_u16(&self, r: usize, qp: &QParams, dst: &mut [u16]) {
        match self.at(r) {
            (Chunk::U16(t), s) => dst.copy_from_slice(row_of(&t.data, t.w, t.c, s, r)),
            _ => quantize_u16(self.row(r), qp, dst),
        }
    }

    /// Frame row of the first row held.
    fn first(&self) -> usize {
        self.starts[0]
    }

    fn single(&self) -> &'a Tensor {
        debug_assert_eq!(self.chunks.len(), 1);
        self.chunks[0].f32()
    }

    fn tensors(&self) -> Vec<&'a Tensor> {
        self.chunks.iter().map(|c| c.f32()).collect()
    }

    fn gather(&self) -> Tensor {
        if self.chunks.len() == 1 {
            return self.chunks[0].f32().clone();
        }
        let ts = self.tensors();
        let (w, c) = (ts[0].w, ts[0].c);
        let h = ts.iter().map(|t| t.h).sum();
        let mut data = Vec::with_capacity(h * w * c);
        for t in ts {
            data.extend_from_slice(&t.data);
        }
        Tensor { h, w, c, data }
    }
}

/// Per-channel f64 sums over chunks in frame order: the same accumulation
/// sequence as `ops::global_*` on the stitched tensor, hence the same result.
/// The loop runs across channels, each channel's sum still pixel after pixel,
/// so a wider build changes no bit; built at the level's width, as IMDN's
/// attention statistics are frame barriers that one worker computes while
/// the other waits (the baseline SSE2 loop was 4 % of an IMDN_x4 frame).
fn channel_sums(level: CpuLevel, parts: &[&Tensor], c: usize, mean: Option<&[f64]>) -> Vec<f64> {
    let mut s = vec![0f64; c];
    // `Σ v`, or `Σ (v − mean)²` when a mean is given; zipped, so that no
    // bounds check keeps the loop scalar.
    #[inline(always)]
    fn sums(s: &mut [f64], parts: &[&Tensor], c: usize, mean: Option<&[f64]>) {
        match c {
            16 => return fixed::<16>(s, parts, mean),
            32 => return fixed::<32>(s, parts, mean),
            64 => return fixed::<64>(s, parts, mean),
            _ => {}
        }
        for t in parts {
            for px in t.data.chunks_exact(c) {
                match mean {
                    None => {
                        for (s, &v) in s.iter_mut().zip(px) {
                            *s += v as f64;
                        }
                    }
                    Some(m) => {
                        for ((s, &v), &m) in s.iter_mut().zip(px).zip(m) {
                            let d = v as f64 - m;
                            *s += d * d;
                        }
                    }
                }
            }
        }
    }
    // C channels: the sums stay in registers across pixels (with a slice,
    // each pixel stored them and the next loaded them back).
    #[inline(always)]
    fn fixed<const C: usize>(s: &mut [f64], parts: &[&Tensor], mean: Option<&[f64]>) {
        let mut acc = [0f64; C];
        let m: [f64; C] = match mean {
            Some(m) => m.try_into().expect("one mean per channel"),
            None => [0.0; C],
        };
        for t in parts {
            let (pxs, _) = t.data.as_chunks::<C>();
            for px in pxs {
                if mean.is_some() {
                    for i in 0..C {
                        let d = px[i] as f64 - m[i];
                        acc[i] += d * d;
                    }
                } else {
                    for i in 0..C {
                        acc[i] += px[i] as f64;
                    }
                }
            }
        }
        s.copy_from_slice(&acc);
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        fn wide(s: &mut [f64], parts: &[&Tensor], c: usize, mean: Option<&[f64]>) {
            sums(s, parts, c, mean)
        }
        #[target_feature(enable = "avx2")]
        fn narrow(s: &mut [f64], parts: &[&Tensor], c: usize, mean: Option<&[f64]>) {
            sums(s, parts, c, mean)
        }
        if level >= CpuLevel::Avx512Vnni && std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512 F (checked above).
            unsafe { wide(&mut s, parts, c, mean) };
            return s;
        }
        if level >= CpuLevel::Avx2 && std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked above).
            unsafe { narrow(&mut s, parts, c, mean) };
            return s;
        }
    }
    sums(&mut s, parts, c, mean);
    s
}

fn global_avg_pool(level: CpuLevel, parts: &[&Tensor]) -> Tensor {
    let c = parts[0].c;
    let n = parts.iter().map(|t| t.h * t.w).sum::<usize>() as f64;
    let s = channel_sums(level, parts, c, None);
    Tensor {
        h: 1,
        w: 1,
        c,
        data: s.iter().map(|v| (v / n) as f32).collect(),
    }
}

fn global_std(level: CpuLevel, parts: &[&Tensor]) -> Tensor {
    let c = parts[0].c;
    let n = parts.iter().map(|t| t.h * t.w).sum::<usize>() as f64;
    let mean: Vec<f64> = channel_sums(level, parts, c, None)
        .iter()
        .map(|v| v / n)
        .collect();
    let var = channel_sums(level, parts, c, Some(&mean));
    Tensor {
        h: 1,
        w: 1,
        c,
        data: var.iter().map(|v| (v / n).sqrt() as f32).collect(),
    }
}

/// Runs the steps of one work item in order (on any thread). Later steps may
/// read earlier steps' outputs ([`Src::Chain`]).
pub fn run_steps(e: &Engine, plan: &Plan, tg: &TileGraph, steps: &[Step]) -> Result<Vec<StepOut>> {
    let mut outs: Vec<StepOut> = Vec::with_capacity(steps.len());
    for step in steps {
        let t0 = std::time::Instant::now();
        let node = &tg.nodes[step.node];
        let ins: Vec<Vec<Chunk>> = step
            .inputs
            .iter()
            .map(|srcs| {
                srcs.iter()
                    .map(|s| match s {
                        Src::Chunk(t) => t.clone(),
                        Src::Chain { step, out, chunk } => outs[*step].chunks[*out][*chunk].clone(),
                    })
                    .collect()
            })
            .collect();
        let rows: Vec<Rows> = ins
            .iter()
            .zip(&node.needs)
            .map(|(ts, need)| {
                let first = match e.graph.values[need.value].spatial {
                    Spatial::Image { factor } => factor * tg.bands.range(need.chunks.start).start,
                    Spatial::Pooled | Spatial::Reduced(_) => 0,
                };
                Rows::new(ts.iter().collect(), first)
            })
            .collect();
        // A bytes-only frame's output band straight to u8: the same pixels as
        // `to_u8_pixels` of the f32 band below, with no HR f32 band written.
        if step.bytes_only
            && matches!(node.kind, NodeKind::Band { .. })
            && node.outputs[..] == [tg.output]
            && let Some(layer) = node.layer()
            && let Op::ShuffleAnchor { block } = e.graph.layers[layer].op
        {
            let (x, a) = (rows[0].single(), rows[1].single());
            let bytes = ops::shuffle_anchor_u8(x, a, block);
            let shape = Tensor {
                h: x.h * block,
                w: x.w * block,
                c: a.c,
                data: Vec::new(),
            };
            outs.push(StepOut {
                node: step.node,
                chunks: vec![vec![Chunk::F32(Arc::new(shape))]],
                partial: vec![None],
                secs: t0.elapsed().as_secs_f64(),
                range_secs: 0.0,
                rgb: vec![Arc::new(bytes)],
            });
            continue;
        }
        let mut results = run_node(e, plan, tg, node, &rows, step.qp, step.bytes_only)?;
        let t1 = std::time::Instant::now();
        let partial = node
            .outputs
            .iter()
            .zip(&results)
            .map(|(&v, chunks)| {
                tg.range_needed[v].then(|| {
                    chunks
                        .iter()
                        .map(|t| min_max(&t.f32().data))
                        .fold((f32::INFINITY, f32::NEG_INFINITY), |a, b| {
                            (a.0.min(b.0), a.1.max(b.1))
                        })
                })
            })
            .collect();
        let t2 = std::time::Instant::now();
        let rgb = match node.outputs.iter().position(|&v| v == tg.output) {
            Some(k) => results[k]
                .iter_mut()
                .map(|c| match c {
                    // A tail's pixels (`tails`): the chunk keeps the shape.
                    Chunk::U8(px) => {
                        let (h, w, c_) = (px.h, px.w, px.c);
                        let px = std::mem::replace(
                            c,
                            Chunk::F32(Arc::new(Tensor {
                                h,
                                w,
                                c: c_,
                                data: Vec::new(),
                            })),
                        );
                        let Chunk::U8(px) = px else { unreachable!() };
                        Arc::new(Arc::into_inner(px).map_or_else(Vec::new, |t| t.data))
                    }
                    c => {
                        let t = c.f32();
                        let mut out = vec![0u8; t.data.len()];
                        crate::tensor::to_u8_pixels(&t.data, &mut out);
                        Arc::new(out)
                    }
                })
                .collect(),
            None => Vec::new(),
        };
        let chunks = results;
        let (secs, range_secs) = ((t2 - t0).as_secs_f64(), (t2 - t1).as_secs_f64());
        outs.push(StepOut {
            node: step.node,
            chunks,
            partial,
            secs,
            range_secs,
            rgb,
        });
    }
    Ok(outs)
}

/// One node: per output value, its chunk(s).
/// `bytes_only`: a tail (`tails`) returns the output band's u8 pixels as a
/// `Chunk::U8` of the HR band's shape, written by the conv's epilogue where
/// the kernel does that (`kernels::writes_pixels`).
fn run_node(
    e: &Engine,
    plan: &Plan,
    tg: &TileGraph,
    node: &Node,
    ins: &[Rows],
    qp: Option<QParams>,
    bytes_only: bool,
) -> Result<Vec<Vec<Chunk>>> {
    let layer = node.layer().expect("range nodes are not executed");
    let l = &e.graph.layers[layer];
    match node.kind {
        NodeKind::Band { band, .. } => Ok(match (&l.op, &e.compiled[layer]) {
            (Op::Conv(c), Compiled::Conv { q, kact, split, .. }) => {
                let ConvPlan::Quant { q: qs, .. } = plan.convs[layer] else {
                    // A float conv: the rows its band reads, from the frame's.
                    let f = match e.graph.values[l.inputs[0]].spatial {
                        Spatial::Image { factor } => factor,
                        _ => unreachable!("banded convs read images"),
                    };
                    let r = tg.bands.range(band);
                    let x = ins[0].gather();
                    let (fc, act) = e.float_conv(layer, plan);
                    let out =
                        fc.run_rows(&x, ins[0].first(), f * tg.h, f * r.start..f * r.end, act, 1);
                    let outs = match split {
                        Some(s) => {
                            let sizes: Vec<usize> =
                                s.parts.iter().map(|p| p.channels.len()).collect();
                            ops::split(&out, &sizes)
                        }
                        None => vec![out],
                    };
                    return Ok(outs
                        .into_iter()
                        .map(|t| vec![Chunk::F32(Arc::new(t))])
                        .collect());
                };
                let qp = qp.unwrap_or(qs);
                let f = match e.graph.values[l.inputs[0]].spatial {
                    Spatial::Image { factor } => factor,
                    Spatial::Pooled | Spatial::Reduced(_) => {
                        unreachable!("banded convs read images")
                    }
                };
                let r = tg.bands.range(band);
                let parts: Vec<Part> = match split {
                    Some(s) => s
                        .parts
                        .iter()
                        .map(|p| (&p.q, &p.kact, tg.quantized[p.value]))
                        .collect(),
                    None => vec![(q, kact, tg.quantized[node.outputs[0]])],
                };
                // A gated input (`gates`): the gate is the input after the
                // input's channel parts (`parted`).
                let gate = node.gated.then(|| ins[node.parts].single().data.as_slice());
                // A tail (`tails`): its anchor is the last input; a bytes-only
                // frame has the pixels written by the epilogue.
                let tail = node.tail.map(|block| (ins[ins.len() - 1].single(), block));
                // (Where the kernel would convert f32 rows itself, the
                // const-shaped `ops::shuffle_anchor_u8` below is faster.)
                let pixels = tail.filter(|&(a, block)| {
                    bytes_only && kernels::writes_pixels(e.level, &q.packed, block, a.c)
                });
                let parts = match tail {
                    Some(_) => vec![(q, kact, None)],
                    None => parts,
                };
                // A residual add (`residuals`): the last input.
                let residual = node
                    .residual
                    .then(|| ins[ins.len() - 1].single().data.as_slice());
                let out = conv_band(
                    e,
                    &parts,
                    c,
                    &qp,
                    &ins[..node.parts],
                    gate,
                    residual,
                    pixels,
                    f * r.start..f * r.end,
                    f * tg.h,
                    f * tg.w,
                );
                match tail {
                    Some((a, block)) if pixels.is_none() => {
                        let y = match &out[0] {
                            Chunk::F32(y) => y,
                            _ => unreachable!("a tail's conv writes f32 or pixels"),
                        };
                        let hr = match bytes_only {
                            true => Chunk::U8(Arc::new(QTensor {
                                h: block * y.h,
                                w: block * y.w,
                                c: a.c,
                                data: ops::shuffle_anchor_u8(y, a, block),
                            })),
                            false => Chunk::F32(Arc::new(ops::shuffle_anchor(y, a, block))),
                        };
                        vec![vec![hr]]
                    }
                    _ => out.into_iter().map(|c| vec![c]).collect(),
                }
            }
            (op, _) => {
                let xs: Vec<&Tensor> = ins.iter().map(|r| r.single()).collect();
                ops::row_local(op, &xs)
                    .ok_or_else(|| {
                        Error::Invalid(format!(
                            "layer {layer}: op {} cannot run in a band",
                            op.kind()
                        ))
                    })?
                    .into_iter()
                    .map(|t| vec![Chunk::F32(Arc::new(t))])
                    .collect()
            }
        }),
        NodeKind::Whole { .. } => {
            let outs: Vec<Tensor> = match (&l.op, &e.compiled[layer]) {
                // Per channel, so a concat's parts (`parted`) give their own
                // channels' statistics: the same sums, concatenated.
                (Op::GlobalAvgPool | Op::GlobalStd, _) => {
                    let stat = |x: &Rows| match l.op {
                        Op::GlobalAvgPool => global_avg_pool(e.level, &x.tensors()),
                        _ => global_std(e.level, &x.tensors()),
                    };
                    let stats: Vec<Tensor> = ins[..node.parts].iter().map(stat).collect();
                    let refs: Vec<&Tensor> = stats.iter().collect();
                    vec![ops::concat(&refs)]
                }
                (Op::Conv(_), _) => vec![e.run_conv(layer, plan, &ins[0].gather(), 1)],
                (op, _) => {
                    let xs: Vec<Tensor> = ins.iter().map(Rows::gather).collect();
                    let xs: Vec<&Tensor> = xs.iter().collect();
                    let (oh, ow) = e.graph.values[l.outputs[0]].hw(tg.h, tg.w);
                    match ops::whole(op, &xs, oh, ow, 1) {
                        Some(t) => vec![t],
                        None => ops::row_local(op, &xs).expect("every other op is row-local"),
                    }
                }
            };
            // Image outputs are stored per band like every other image value.
            Ok(outs
                .into_iter()
                .zip(&node.outputs)
                .map(|(t, &v)| {
                    let parts = if tg.chunks[v] > 1 {
                        split_bands(&t, tg)
                    } else {
                        vec![t]
                    };
                    parts.into_iter().map(|t| Chunk::F32(Arc::new(t))).collect()
                })
                .collect())
        }
        NodeKind::Range { .. } => unreachable!(),
    }
}

fn split_bands(t: &Tensor, tg: &TileGraph) -> Vec<Tensor> {
    let f = t.h / tg.h;
    let row = t.w * t.c;
    (0..tg.bands.count())
        .map(|b| {
            let r = tg.bands.range(b);
            let (a, z) = (f * r.start, f * r.end);
            Tensor {
                h: z - a,
                w: t.w,
                c: t.c,
                data: t.data[a * row..z * row].to_vec(),
            }
        })
        .collect()
}

thread_local! {
    /// Per worker: the quantized input rows of the band being computed. Every
    /// element is rewritten per call, so the buffer is only grown, never zeroed.
    static XQ8: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    static XQ16: std::cell::RefCell<Vec<u16>> = const { std::cell::RefCell::new(Vec::new()) };
    /// Per worker: one f32 input row assembled from parts or gated (`parted`, `gates`).
    static GATED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The first `len` elements of `buf`, grown if needed.
fn scratch<T: Copy + Default>(buf: &mut Vec<T>, len: usize) -> &mut [T] {
    if buf.len() < len {
        buf.resize(len, T::default());
    }
    &mut buf[..len]
}

/// What one kernel call of a conv band computes: the conv (or a part of its
/// channels, `engine::ConvSplit`), its fused activation, and the ⟨b, s, z⟩ its
/// output is stored with (None: f32).
type Part<'a> = (
    &'a crate::units::QConv,
    &'a kernels::Activation,
    Option<QParams>,
);

/// One band of an integer conv: output rows `out_rows` (value rows) of an
/// `hv`×`wv` value, one chunk per part. Quantizes the input rows it reads
/// (band ± halo) once and runs the kernel per part on a local geometry whose
/// top/bottom padding is the frame's only where the band touches a frame
/// edge; everything else reads real rows.
#[allow(clippy::too_many_arguments)]
fn conv_band(
    e: &Engine,
    parts: &[Part],
    c: &crate::model::Conv,
    qp: &QParams,
    xs: &[Rows],
    gate: Option<&[f32]>,
    residual: Option<&[f32]>,
    pixels: Option<(&Tensor, usize)>,
    out_rows: Range<usize>,
    hv: usize,
    wv: usize,
) -> Vec<Chunk> {
    let pt = c.pads[0];
    let span = c.dilation * (c.kh - 1) + 1;
    let (r0, r1) = (out_rows.start, out_rows.end);
    let i0 = r0.saturating_sub(pt);
    let i1 = (r1 + span - 1).saturating_sub(pt).min(hv).max(i0);
    let in_h = i1 - i0;
    let pad_top = pt.saturating_sub(r0);
    let pad_bottom = ((r1 - r0) + span - 1).saturating_sub(in_h + pad_top);
    let in_c = parts[0].0.in_c;
    let row_len = wv * in_c;
    let oh = r1 - r0;
    // Each part on the quantized rows: `xq` holds `in_h` rows (u8 or u16).
    let run = |xq: Xq,
               q: &crate::units::QConv,
               kact: &kernels::Activation,
               out_q: Option<QParams>| {
        let mut g: ConvGeom = q.geom(in_h, wv);
        g.pad_top = pad_top;
        g.pad_bottom = pad_bottom;
        let (mult, offset) = q.epilogue_consts(qp);
        let epi = Epilogue {
            mult: &mult,
            offset: &offset,
            act: kact,
        };
        let oc = q.out_c;
        let n = oh * wv * oc;
        let (mut f, mut u8s, mut u16s) = (Vec::new(), Vec::new(), Vec::new());
        let output = match (out_q, pixels) {
            // The graph's tail (`tails`): u8 pixels of S·oh HR rows.
            (_, Some((a, block))) => {
                u8s = vec![0; n];
                Output::Pixels {
                    data: &mut u8s,
                    anchor: &a.data,
                    block,
                    channels: a.c,
                    width: wv,
                }
            }
            // Recycled: the kernel writes all n values (see `recycle`).
            (None, None) => {
                f = recycle::take(n);
                Output::F32 {
                    data: &mut f,
                    pixel_stride: oc,
                }
            }
            (Some(o), None) if o.bits == Bits::B8 => {
                u8s = recycle::take(n);
                Output::U8 {
                    data: &mut u8s,
                    pixel_stride: oc,
                    scale: o.scale,
                    zero: o.zero,
                }
            }
            (Some(o), None) => {
                u16s = recycle::take(n);
                Output::U16 {
                    data: &mut u16s,
                    pixel_stride: oc,
                    scale: o.scale,
                    zero: o.zero,
                }
            }
        };
        let output = match residual {
            Some(r) => Output::Plus {
                residual: r,
                out: Box::new(output),
            },
            None => output,
        };
        let rows = 0..r1 - r0;
        match xq {
            Xq::U8(xq) => kernels::conv_u8(
                e.level,
                &g,
                xq,
                in_c,
                qp.q_zero() as u8,
                &q.packed,
                &epi,
                rows,
                output,
            ),
            Xq::U16(xq) => kernels::conv_u16(
                e.level,
                &g,
                xq,
                in_c,
                qp.q_zero(),
                &q.packed,
                &epi,
                rows,
                output,
            ),
        }
        let (h, w, c) = (oh, wv, oc);
        if let Some((a, block)) = pixels {
            let (h, w, c) = (block * oh, block * wv, a.c);
            return Chunk::U8(Arc::new(QTensor { h, w, c, data: u8s }));
        }
        match out_q {
            None => Chunk::F32(Arc::new(Tensor { h, w, c, data: f })),
            Some(o) if o.bits == Bits::B8 => Chunk::U8(Arc::new(QTensor { h, w, c, data: u8s })),
            Some(_) => Chunk::U16(Arc::new(QTensor {
                h,
                w,
                c,
                data: u16s,
            })),
        }
    };
    let x = &xs[0];
    // Input row r as f32 in `row`, from the input's channel parts
    // (`parted`) in order, with the gate applied (`gates`).
    let assemble = |r: usize, row: &mut Vec<f32>| {
        let row = scratch(row, row_len);
        let mut c0 = 0;
        for part in xs {
            let src = part.row(r);
            let pc = src.len() / wv;
            let pixels = row.chunks_exact_mut(in_c).zip(src.chunks_exact(pc));
            match gate {
                Some(g) => {
                    let g = &g[c0..c0 + pc];
                    for (o, px) in pixels {
                        // `ops::mul_channel`'s product.
                        for ((o, &v), &s) in o[c0..c0 + pc].iter_mut().zip(px).zip(g) {
                            *o = v * s;
                        }
                    }
                }
                None => {
                    for (o, px) in pixels {
                        o[c0..c0 + pc].copy_from_slice(px);
                    }
                }
            }
            c0 += pc;
        }
        debug_assert_eq!(c0, in_c);
    };
    let whole = gate.is_none() && xs.len() == 1;
    match qp.bits {
        Bits::B8 => XQ8.with_borrow_mut(|buf| {
            let xq = scratch(buf, in_h * row_len);
            for (r, dst) in (i0..i1).zip(xq.chunks_exact_mut(row_len)) {
                if whole {
                    x.row_u8(r, qp, dst)
                } else {
                    GATED.with_borrow_mut(|row| {
                        assemble(r, row);
                        quantize_u8(&row[..row_len], qp, dst)
                    })
                }
            }
            parts
                .iter()
                .map(|&(q, kact, out_q)| run(Xq::U8(xq), q, kact, out_q))
                .collect()
        }),
        Bits::B16 => XQ16.with_borrow_mut(|buf| {
            let xq = scratch(buf, in_h * row_len);
            for (r, dst) in (i0..i1).zip(xq.chunks_exact_mut(row_len)) {
                if whole {
                    x.row_u16(r, qp, dst)
                } else {
                    GATED.with_borrow_mut(|row| {
                        assemble(r, row);
                        quantize_u16(&row[..row_len], qp, dst)
                    })
                }
            }
            parts
                .iter()
                .map(|&(q, kact, out_q)| run(Xq::U16(xq), q, kact, out_q))
                .collect()
        }),
    }
}

/// A band's quantized input rows.
#[derive(Clone, Copy)]
enum Xq<'a> {
    U8(&'a [u8]),
    U16(&'a [u16]),
}

/// Runs the task graph sequentially (reference for the dispatcher, and the
/// single-threaded path): bit-identical to [`Engine::run`].
pub fn run_tiled(e: &Engine, plan: &Plan, input: &Tensor, rows: usize) -> Result<Tensor> {
    let tg = Arc::new(TileGraph::new(e, plan, input.h, input.w, rows)?);
    drive(e, plan, FrameTiles::new(tg, input)?)
}

/// [`run_tiled`] from u8 pixels, each input band made when first read
/// ([`FrameTiles::from_pixels`]).
pub fn run_tiled_pixels(e: &Engine, plan: &Plan, px: Pixels, rows: usize) -> Result<Tensor> {
    let (h, w, _) = px.dims();
    let tg = Arc::new(TileGraph::new(e, plan, h, w, rows)?);
    drive(e, plan, FrameTiles::from_pixels(tg, px)?)
}

/// [`run_tiled_pixels`] for a caller that keeps only the u8 output
/// (`FrameTiles::bytes_only`, as `Runtime::run_bytes`): the output's pixels,
/// rows in order.
pub fn run_tiled_bytes(e: &Engine, plan: &Plan, px: Pixels, rows: usize) -> Result<Vec<u8>> {
    let (h, w, _) = px.dims();
    let tg = Arc::new(TileGraph::new(e, plan, h, w, rows)?);
    let mut ft = FrameTiles::from_pixels(tg, px)?;
    ft.bytes_only = true;
    let ft = run_all(e, plan, ft)?;
    Ok(ft
        .output_rgb()?
        .iter()
        .flat_map(|b| b.iter().copied())
        .collect())
}

/// Runs every node of `ft` in turn on this thread.
fn drive(e: &Engine, plan: &Plan, ft: FrameTiles) -> Result<Tensor> {
    Ok(stitch(&run_all(e, plan, ft)?.output_chunks()?))
}

fn run_all(e: &Engine, plan: &Plan, mut ft: FrameTiles) -> Result<FrameTiles> {
    let tg = ft.tg.clone();
    let mut ready = ft.initial();
    while let Some(n) = ready.pop() {
        let more = match tg.nodes[n].kind {
            NodeKind::Range { .. } => ft.complete_range(n),
            _ => {
                let step = ft.step(n, &[]);
                let out = run_steps(e, plan, &tg, std::slice::from_ref(&step))?
                    .pop()
                    .expect("one step");
                ft.complete(out)
            }
        };
        ready.extend(more);
    }
    Ok(ft)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixel_bands_are_the_frame_tensor_cut_into_bands() {
        let img = image::RgbImage::from_fn(5, 11, |x, y| {
            image::Rgb([(x * 37 + y) as u8, (y * 23) as u8, (x * y * 7) as u8])
        });
        let px = Pixels::Rgb(Arc::new(img.clone()));
        let b = Banded::from_rows(11, 5, 3, 4, |r, dst| px.row(r, dst));
        assert_eq!(
            b.bands.iter().map(|t| t.h).collect::<Vec<_>>(),
            vec![4, 4, 3],
            "cut as Bands::new(11, 4)"
        );
        let joined: Vec<f32> = b.bands.iter().flat_map(|t| t.data.clone()).collect();
        let want = Tensor::from_rgb(&img);
        assert_eq!(joined, want.data, "v / 255, every value");
        assert_eq!(FrameInput::Pixels(px).into_whole(), want);
    }

    /// Input bands made from the pixels as nodes first read them give the
    /// frame the whole tensor gives, bit for bit, and the frame is let go
    /// with the last band; a plan whose first conv needs the input's range
    /// (DRE) makes every band up front, with the same result.
    #[test]
    fn pixel_input_equals_the_tensor_input() {
        let p = std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../assets/models/nawq_x2.onnx"
        ));
        let e = Engine::new(
            crate::model::import(p).unwrap(),
            crate::kernels::CpuLevel::Scalar,
            1,
        );
        let g = &e.graph;
        let fixed = Plan::per_layer(g, &crate::engine::Ranges::empty(g), |_| {
            Some((crate::quant::Bits::B8, false))
        });
        let dre = Plan::all_dre(g, crate::quant::Bits::B8);
        let img = Arc::new(image::RgbImage::from_fn(13, 11, |x, y| {
            image::Rgb([
                (x * 19 + y * 7) as u8,
                (x * y * 5) as u8,
                (250 - 9 * y) as u8,
            ])
        }));
        let x = Tensor::from_rgb(&img);
        for (name, plan) in [("static", &fixed), ("dre", &dre)] {
            for rows in [1, 3, 16] {
                let want = run_tiled(&e, plan, &x, rows).unwrap();
                let got = run_tiled_pixels(&e, plan, Pixels::Rgb(img.clone()), rows).unwrap();
                assert!(
                    got == want,
                    "{name}, {rows} rows: differs from the tensor input"
                );
                assert_eq!(
                    Arc::strong_count(&img),
                    1,
                    "{name}, {rows} rows: frame let go"
                );
            }
        }
    }

    #[test]
    fn pixels_of_another_size_are_an_error() {
        let p = std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../assets/models/nawq_x2.onnx"
        ));
        let g = crate::model::import(p).unwrap();
        let e = Engine::new(g, crate::kernels::CpuLevel::Scalar, 1);
        let plan = Plan::all_dre(&e.graph, crate::quant::Bits::B8);
        let tg = Arc::new(TileGraph::new(&e, &plan, 9, 4, 4).unwrap());
        let px = |h| Pixels::Rgb(Arc::new(image::RgbImage::new(4, h)));
        assert!(FrameTiles::from_pixels(tg.clone(), px(9)).is_ok());
        let err = FrameTiles::from_pixels(tg, px(8))
            .err()
            .expect("8 rows for a 9-row graph");
        assert!(err.to_string().contains("task graph is for 4x9x3"), "{err}");
    }
}
