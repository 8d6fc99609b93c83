//! The project's own models (`assets/models/nawq_x{2,3,4}.onnx`, trained by
//! `tools/train`): what every network mode runs when no model is given.
use std::path::PathBuf;

/// Scale used when neither a model nor a scale is given.
pub const DEFAULT_SCALE: usize = 2;

/// File name of the bundled model for `scale`.
pub fn file_name(scale: usize) -> String {
    format!("nawq_x{scale}.onnx")
}

/// Directories searched for bundled models, in order: `NAWQSR_MODELS`
/// (`:`-separated), then the project's `assets/models`.
pub fn dirs() -> Vec<PathBuf> {
    let mut d: Vec<PathBuf> = std::env::var_os("NAWQSR_MODELS")
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default();
    d.push(concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/models").into());
    d
}

/// [`dirs`] as one line, for error messages.
pub fn dirs_list() -> String {
    dirs()
        .iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The bundled model for `scale`, if one is installed.
pub fn path(scale: usize) -> Option<PathBuf> {
    dirs()
        .into_iter()
        .map(|d| d.join(file_name(scale)))
        .find(|p| p.is_file())
}
