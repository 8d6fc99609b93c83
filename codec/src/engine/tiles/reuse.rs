//! Exact temporal reuse (issue 18; NEMO, MobiCom'20, without its lossy anchor
//! interpolation): an output band whose LR receptive rows are bit-identical to
//! those of a frame already computed under the same plan takes that frame's
//! output band, and every node that only that band needed is skipped.
//!
//! Why it is exact: band execution is bit-identical to whole-frame execution
//! (module docs of `tiles`), and without frame-global ops every output element
//! of the whole-frame computation is a function of its receptive field alone:
//! the LR rows within [`TileGraph::reuse_halo`] of it. Same rows in, same bits
//! out. A graph with a frame-global op (GlobalAvgPool/Std, a whole-frame layer,
//! a §4.2 DRE range) makes every output depend on the whole frame: it reuses
//! only when no input row changed.
//!
//! What is skipped: the backward closure of the recomputed output bands over
//! the node graph is what runs; a band node outside it has no consumer that
//! runs. The closure grows by one band per layer (a band node computes its
//! whole band, halo rows included), so small bands reuse more.
use std::sync::Arc;

use super::{Chunk, FrameTiles, NodeKind, TileGraph, factor};
use crate::engine::{Compiled, Engine, Tensor};
use crate::error::{Error, Result};
use crate::model::Op;

/// LR pixels around an output pixel that decide it, in rows and in columns
/// (the larger of the two: the band executor and `runtime::reuse`'s 2D
/// patches use one halo), or None when the graph has a node that is not a
/// band (frame-global op, whole-frame layer, DRE range barrier).
pub(super) fn receptive_halo(e: &Engine, tg: &TileGraph) -> Option<usize> {
    if tg
        .nodes
        .iter()
        .any(|n| !matches!(n.kind, NodeKind::Band { .. }))
    {
        return None;
    }
    let g = &e.graph;
    // Per value: how many LR pixels away from a pixel of it its inputs reach.
    let mut reach = vec![0usize; g.values.len()];
    for (l, layer) in g.layers.iter().enumerate() {
        let outputs = match &e.compiled[l] {
            Compiled::Fused => continue,
            Compiled::Conv { out, .. } => vec![*out],
            Compiled::SplitOf | Compiled::Other => layer.outputs.clone(),
        };
        // Banded non-conv ops are pixel-local in LR pixels (element-wise,
        // per-channel, depth-to-space: tiles::TileGraph::new); a conv reaches
        // its larger pad on either axis, in pixels of its input's resolution.
        let halo = match &layer.op {
            Op::Conv(c) => {
                let f = factor(e, layer.inputs[0])?;
                let (sh, sw) = (c.dilation * (c.kh - 1), c.dilation * (c.kw - 1));
                let rows = c.pads[0].max(sh.saturating_sub(c.pads[0]));
                let cols = c.pads[1].max(sw.saturating_sub(c.pads[1]));
                rows.max(cols).div_ceil(f)
            }
            _ => 0,
        };
        let r = layer.inputs.iter().map(|&v| reach[v]).max().unwrap_or(0) + halo;
        for v in outputs {
            reach[v] = reach[v].max(r);
        }
    }
    Some(reach[g.output])
}

/// Per LR row: does `cur` differ from `prev` (same shape) anywhere in it?
/// Bitwise, with an early exit: moving content costs a few values per row.
pub fn changed_rows(prev: &Tensor, cur: &Tensor) -> Vec<bool> {
    debug_assert_eq!((prev.h, prev.w, prev.c), (cur.h, cur.w, cur.c));
    let row = cur.w * cur.c;
    prev.data
        .chunks_exact(row)
        .zip(cur.data.chunks_exact(row))
        .map(|(a, b)| a.iter().zip(b).any(|(x, y)| x.to_bits() != y.to_bits()))
        .collect()
}

impl TileGraph {
    /// Output bands whose receptive LR rows are unchanged (`changed[r]`: LR
    /// row `r` differs from the cached frame).
    pub fn reusable_bands(&self, changed: &[bool]) -> Vec<bool> {
        let nb = self.bands.count();
        match self.reuse_halo {
            None => vec![!changed.iter().any(|&c| c); nb],
            Some(h) => (0..nb)
                .map(|b| {
                    let r = self.bands.range(b);
                    let a = r.start.saturating_sub(h);
                    let z = (r.end + h).min(changed.len());
                    !changed[a..z].iter().any(|&c| c)
                })
                .collect(),
        }
    }
}

/// A finished frame's output, to take bands from.
pub struct Reused<'a> {
    /// Per output band: take it from here.
    pub bands: &'a [bool],
    pub chunks: &'a [Arc<Tensor>],
    pub rgb: &'a [Arc<Vec<u8>>],
}

impl FrameTiles {
    /// Takes the marked output bands from `r` and skips every node that only
    /// they needed. Returns the number of nodes skipped. Call before
    /// [`FrameTiles::initial`].
    pub fn reuse(&mut self, r: Reused) -> Result<usize> {
        let tg = self.tg.clone();
        let nb = tg.chunks[tg.output];
        if r.bands.len() != nb || r.chunks.len() != nb || r.rgb.len() != nb {
            return Err(Error::Invalid(format!(
                "reused frame has {} bands, this frame {nb}",
                r.chunks.len()
            )));
        }
        let mut needed = vec![false; tg.nodes.len()];
        let mut stack: Vec<usize> = (0..nb)
            .filter(|&b| !r.bands[b])
            .filter_map(|b| tg.producer[tg.output][b])
            .collect();
        while let Some(n) = stack.pop() {
            if !std::mem::replace(&mut needed[n], true) {
                stack.extend(tg.nodes[n].deps.iter().copied());
            }
        }
        let mut skipped = 0;
        for (n, node) in tg.nodes.iter().enumerate() {
            if needed[n] {
                continue;
            }
            // Never handed out, never finished: a needed node depends only on
            // needed nodes, so nothing waits for it.
            self.taken[n] = true;
            self.remaining -= 1;
            skipped += 1;
            for need in &node.needs {
                for c in need.chunks.clone() {
                    self.uses[need.value][c] -= 1;
                    if self.uses[need.value][c] == 0 {
                        self.chunks[need.value][c] = None;
                    }
                }
            }
        }
        for b in (0..nb).filter(|&b| r.bands[b]) {
            self.chunks[tg.output][b] = Some(Chunk::F32(r.chunks[b].clone()));
            self.rgb[b] = Some(r.rgb[b].clone());
        }
        Ok(skipped)
    }
}
