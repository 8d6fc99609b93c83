//! Graph rewrites that change how a model is executed, never what it computes.
use super::graph::{Graph, Op};

/// Folds `Concat(a, …, a) → Add(x, ·) → DepthToSpace(DCR)` into one
/// [`Op::ShuffleAnchor`] (inputs `[x, a]`). Each output element is still the one
/// f32 sum `x + a` (addition commutes exactly), so results are bit-identical;
/// what goes is the block²-fold copy of `a` and two passes over the HR-sized
/// tensor. The Concat and Add become dead and are dropped by the importer.
pub fn shuffle_anchor(g: &mut Graph) {
    let consumers = g.consumers();
    let producers = g.producers();
    for d in 0..g.layers.len() {
        let Op::DepthToSpace { block, crd: false } = g.layers[d].op else {
            continue;
        };
        let r = g.layers[d].inputs[0];
        let Some(add) = producers[r] else { continue };
        if !matches!(g.layers[add].op, Op::Add) || consumers[r].len() != 1 || r == g.output {
            continue;
        }
        let [p, q] = g.layers[add].inputs[..] else {
            continue;
        };
        // Which operand is the repeated anchor?
        let anchor_of = |v: usize| -> Option<usize> {
            let c = producers[v]?;
            let l = &g.layers[c];
            let a = l.inputs[0];
            (matches!(l.op, Op::Concat)
                && l.inputs.len() == block * block
                && l.inputs.iter().all(|&i| i == a)
                && consumers[v].len() == 1
                && v != g.output)
                .then_some(a)
        };
        let (x, a) = match (anchor_of(q), anchor_of(p)) {
            (Some(a), _) => (p, a),
            (None, Some(a)) => (q, a),
            _ => continue,
        };
        if g.values[x].channels != g.values[a].channels * block * block {
            continue;
        }
        g.layers[d].op = Op::ShuffleAnchor { block };
        g.layers[d].inputs = vec![x, a];
    }
}
