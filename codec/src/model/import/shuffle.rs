//! Pixel shuffle written by hand: Reshape to 6-D → Transpose → Reshape to
//! 4-D, as code from before `nn.PixelShuffle` (and TF exports) writes it.
//! Folded to one `DepthToSpace` (issue 16 item 1):
//! - CRD (= PyTorch PixelShuffle): (1, C, r, r, H, W), perm [0, 1, 4, 2, 5, 3];
//! - DCR (ONNX's default): (1, r, r, C, H, W), perm [0, 3, 4, 1, 5, 2];
//!
//! then (1, C, r·H, r·W). H and W come from the map itself (`fold::Dim`),
//! so the folded graph runs at any frame size; fixed sizes are refused.
use tract_onnx::pb::NodeProto;

use super::fold::Dim;
use super::{Lowering, Lv, attr_ints};
use crate::error::Result;
use crate::model::graph::{Op, Spatial, ValueShape};

impl Lowering<'_> {
    /// The target shape of a Reshape as [`Dim`]s.
    fn shape_dims(&self, node: &NodeProto) -> Result<Vec<Dim>> {
        Ok(match self.get(node, 1)? {
            Lv::Dims(d) => d,
            Lv::Const(c) if c.dims.len() == 1 => {
                c.data.iter().map(|&v| Dim::Known(v as i64)).collect()
            }
            _ => return Err(self.unsupported(node, "a target shape that is not a vector")),
        })
    }

    /// Does `d` name the height (`axis` 2) or width (3) of map `x`, times `k`?
    fn is_side(&self, d: Dim, x: usize, axis: usize, k: usize) -> bool {
        let same = |v: usize| self.values[v].spatial == self.values[x].spatial;
        match (d, axis) {
            (Dim::H(v), 2) | (Dim::W(v), 3) => k == 1 && same(v),
            (Dim::HMul(v, m), 2) | (Dim::WMul(v, m), 3) => m == k && same(v),
            _ => false,
        }
    }

    pub(super) fn reshape(&mut self, node: &NodeProto) -> Result<()> {
        let d = self.shape_dims(node)?;
        let known = |i: usize| match d.get(i) {
            Some(Dim::Known(k)) if *k > 0 => Some(*k as usize),
            _ => None,
        };
        let batch_ok = matches!(d.first(), Some(Dim::Known(-1..=1)));
        match self.get(node, 0)? {
            Lv::Tensor(x) if d.len() == 6 && batch_ok => {
                let s = self.values[x];
                let (Some(a), Some(b), Some(c)) = (known(1), known(2), known(3)) else {
                    return Err(
                        self.unsupported(node, "a 6-D view whose middle dims are not constants")
                    );
                };
                if a * b * c != s.channels
                    || !self.is_side(d[4], x, 2, 1)
                    || !self.is_side(d[5], x, 3, 1)
                {
                    return Err(self.unsupported(
                        node,
                        "a 6-D view other than a pixel shuffle's (1, C, r, r, H, W) or (1, r, r, C, H, W)",
                    ));
                }
                self.set(node, Lv::View6(x, [a, b, c]));
                Ok(())
            }
            Lv::Shuffled { x, block, crd } if d.len() == 4 && batch_ok => {
                let s = self.values[x];
                let c = s.channels / (block * block);
                if known(1) != Some(c)
                    || !self.is_side(d[2], x, 2, block)
                    || !self.is_side(d[3], x, 3, block)
                {
                    return Err(self.unsupported(
                        node,
                        "a reshape after the shuffle other than (1, C, r·H, r·W)",
                    ));
                }
                let Spatial::Image { factor } = s.spatial else {
                    return Err(
                        self.unsupported(node, "a pixel shuffle of a map that is not frame-sized")
                    );
                };
                self.emit(
                    node,
                    Op::DepthToSpace { block, crd },
                    vec![x],
                    vec![ValueShape {
                        channels: c,
                        spatial: Spatial::Image {
                            factor: factor * block,
                        },
                    }],
                )
            }
            _ => Err(self.unsupported(node, "reshape of a feature map (only a pixel shuffle's)")),
        }
    }

    pub(super) fn transpose(&mut self, node: &NodeProto) -> Result<()> {
        let perm = attr_ints(node, "perm").unwrap_or_default();
        match self.get(node, 0)? {
            Lv::View6(x, [a, b, c]) => {
                let lv = match perm.as_slice() {
                    [0, 1, 4, 2, 5, 3] if b == c => Lv::Shuffled {
                        x,
                        block: b,
                        crd: true,
                    },
                    [0, 3, 4, 1, 5, 2] if a == b => Lv::Shuffled {
                        x,
                        block: a,
                        crd: false,
                    },
                    _ => {
                        return Err(self.unsupported(
                            node,
                            &format!("perm {perm:?} of a 6-D view (not a pixel shuffle)"),
                        ));
                    }
                };
                self.set(node, lv);
                Ok(())
            }
            _ => Err(self.unsupported(node, "transpose of a feature map (only a pixel shuffle's)")),
        }
    }
}
