//! The project's own models (`assets/models/nawq_x{2,3,4}.onnx`, trained by
//! `tools/train`): what every network mode runs when no model is given.
//!
//! They are compiled into the codec (≈ 330 KB), so `nawqsr` and
//! `libgstnawqsr.so` work after `cargo install` or a copy into a plugin
//! directory, with the checkout gone. `NAWQSR_MODELS` may still point at
//! directories whose `nawq_xN.onnx` replace the built-in ones.
use std::borrow::Cow;
use std::path::PathBuf;

use super::ModelBytes;
use crate::error::{Error, Result};

/// Scale used when neither a model nor a scale is given.
pub const DEFAULT_SCALE: usize = 2;

/// The built-in models, by scale.
const EMBEDDED: [(usize, &[u8]); 3] = [
    (2, include_bytes!("../../../assets/models/nawq_x2.onnx")),
    (3, include_bytes!("../../../assets/models/nawq_x3.onnx")),
    (4, include_bytes!("../../../assets/models/nawq_x4.onnx")),
];

/// File name of the bundled model for `scale`.
pub fn file_name(scale: usize) -> String {
    format!("nawq_x{scale}.onnx")
}

/// The name a built-in model goes by in errors and logs.
pub fn label(scale: usize) -> PathBuf {
    format!("built-in:{}", file_name(scale)).into()
}

/// The built-in models: (scale, file name, bytes).
pub fn builtin() -> impl Iterator<Item = (usize, String, usize)> {
    EMBEDDED.iter().map(|&(s, b)| (s, file_name(s), b.len()))
}

/// Directories that override the built-in models (`NAWQSR_MODELS`, `:`-separated).
pub fn override_dirs() -> Vec<PathBuf> {
    std::env::var_os("NAWQSR_MODELS")
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default()
}

/// The override file for `scale`, if an `NAWQSR_MODELS` directory holds one.
pub fn override_path(scale: usize) -> Option<PathBuf> {
    override_dirs()
        .into_iter()
        .map(|d| d.join(file_name(scale)))
        .find(|p| p.is_file())
}

/// The bundled model for `scale`: an `NAWQSR_MODELS` override, else the
/// built-in one. A scale without a model is [`Error::Scale`].
pub fn load(scale: usize) -> Result<ModelBytes> {
    let &(_, bytes) = EMBEDDED
        .iter()
        .find(|(s, _)| *s == scale)
        .ok_or(Error::Scale(scale))?;
    match override_path(scale) {
        Some(p) => ModelBytes::read(&p),
        None => Ok(ModelBytes {
            label: label(scale),
            bytes: Cow::Borrowed(bytes),
        }),
    }
}
