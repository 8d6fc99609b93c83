//! Model import and the project's own layer graph.
//! - [`graph`]: `Graph`, `Layer`, `Op`, shapes and MACs — the centre of the codec.
//! - [`import`]: ONNX → `Graph`.
//! - [`reference`]: the FP32 reference (tract).
//! - [`float`]: an FP32 executor over our `Graph` (checks the lowering, and is
//!   the FP32W8 path).
pub mod bundled;
pub mod fuse;
pub mod graph;
pub mod import;
pub mod reference;

pub use graph::{Activation, Conv, Graph, Layer, Op, Spatial, ValueId, ValueShape};
pub use import::import;

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// SHA-256 of a model file, hex: the model's identity in schedule files.
pub fn file_sha256(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    Ok(format!("{:x}", Sha256::digest(&bytes)))
}
