//! Model import and the project's own layer graph.
//! - [`graph`]: `Graph`, `Layer`, `Op`, shapes and MACs — the centre of the codec.
//! - [`import`]: ONNX → `Graph`.
//! - [`reference`]: the FP32 reference (tract).
//! - [`float`]: an FP32 executor over our `Graph` (checks the lowering, and is
//!   the FP32W8 path).
//! - [`validate`]: load-time checks (finite constants, shape limits, one image
//!   input and output) and the panic guard at the tract boundary.
pub mod bundled;
pub mod fuse;
pub mod graph;
pub mod import;
pub mod reference;
pub mod validate;

pub use graph::{
    Activation, BinOp, Conv, CoordMode, Graph, Interp, Layer, NearestMode, Op, PadMode, Spatial,
    ValueId, ValueShape,
};
pub use import::{import, import_bytes};

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// An ONNX model's bytes and the name errors and logs give it: a file's path, or
/// `built-in:nawq_xN.onnx` for a bundled model compiled into the codec (so that a
/// binary works after its checkout is gone). Import, the FP32 reference and the
/// schedule lookup all start from this, whichever the source.
#[derive(Clone, Debug)]
pub struct ModelBytes {
    pub label: PathBuf,
    pub bytes: Cow<'static, [u8]>,
}

impl ModelBytes {
    /// Reads a model file; a missing file is named as such.
    pub fn read(path: &Path) -> Result<ModelBytes> {
        if !path.is_file() {
            return Err(Error::model(
                path,
                "file not found (expected an ONNX SR model)",
            ));
        }
        let bytes =
            std::fs::read(path).map_err(|e| Error::model(path, format!("cannot read: {e}")))?;
        Ok(ModelBytes {
            label: path.to_owned(),
            bytes: Cow::Owned(bytes),
        })
    }

    /// SHA-256, hex: the model's identity in schedule files.
    pub fn sha256(&self) -> String {
        sha256_hex(&self.bytes)
    }
}

/// SHA-256 of bytes, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// SHA-256 of a model file, hex: the model's identity in schedule files.
pub fn file_sha256(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    Ok(sha256_hex(&bytes))
}
