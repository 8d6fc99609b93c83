//! The project's own models (`assets/models/nawq_x{2,3,4}.onnx`, trained by
//! `tools/train`): what every network mode runs when no model is given. Their
//! luma siblings (`nawq_luma_x{2,3,4}.onnx`, issue 17: Y in, Y out) are the
//! defaults for YUV frames, which then stay YUV (`runtime::luma`).
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

/// The built-in luma models, by scale.
const EMBEDDED_LUMA: [(usize, &[u8]); 3] = [
    (
        2,
        include_bytes!("../../../assets/models/nawq_luma_x2.onnx"),
    ),
    (
        3,
        include_bytes!("../../../assets/models/nawq_luma_x3.onnx"),
    ),
    (
        4,
        include_bytes!("../../../assets/models/nawq_luma_x4.onnx"),
    ),
];

/// Which family of bundled model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Family {
    /// RGB in, RGB out: for RGB frames and images.
    #[default]
    Rgb,
    /// Y in, Y out: for YUV frames.
    Luma,
}

impl Family {
    fn embedded(self) -> &'static [(usize, &'static [u8])] {
        match self {
            Family::Rgb => &EMBEDDED,
            Family::Luma => &EMBEDDED_LUMA,
        }
    }
}

/// File name of the bundled RGB model for `scale`.
pub fn file_name(scale: usize) -> String {
    family_file_name(Family::Rgb, scale)
}

/// File name of the bundled model of `family` for `scale`.
pub fn family_file_name(family: Family, scale: usize) -> String {
    match family {
        Family::Rgb => format!("nawq_x{scale}.onnx"),
        Family::Luma => format!("nawq_luma_x{scale}.onnx"),
    }
}

/// The name a built-in RGB model goes by in errors and logs.
pub fn label(scale: usize) -> PathBuf {
    family_label(Family::Rgb, scale)
}

/// The name a built-in model goes by in errors and logs.
pub fn family_label(family: Family, scale: usize) -> PathBuf {
    format!("built-in:{}", family_file_name(family, scale)).into()
}

/// The built-in models: (scale, file name, bytes).
pub fn builtin() -> impl Iterator<Item = (usize, String, usize)> {
    [Family::Rgb, Family::Luma].into_iter().flat_map(|f| {
        f.embedded()
            .iter()
            .map(move |&(s, b)| (s, family_file_name(f, s), b.len()))
    })
}

/// Directories that override the built-in models (`NAWQSR_MODELS`, `:`-separated).
pub fn override_dirs() -> Vec<PathBuf> {
    std::env::var_os("NAWQSR_MODELS")
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default()
}

/// The override file for `scale`, if an `NAWQSR_MODELS` directory holds one.
pub fn override_path(scale: usize) -> Option<PathBuf> {
    family_override_path(Family::Rgb, scale)
}

fn family_override_path(family: Family, scale: usize) -> Option<PathBuf> {
    override_dirs()
        .into_iter()
        .map(|d| d.join(family_file_name(family, scale)))
        .find(|p| p.is_file())
}

/// The bundled RGB model for `scale`: an `NAWQSR_MODELS` override, else the
/// built-in one. A scale without a model is [`Error::Scale`].
pub fn load(scale: usize) -> Result<ModelBytes> {
    load_family(Family::Rgb, scale)
}

/// The bundled model of `family` for `scale` (an `NAWQSR_MODELS` override,
/// else the built-in one).
pub fn load_family(family: Family, scale: usize) -> Result<ModelBytes> {
    let &(_, bytes) = family
        .embedded()
        .iter()
        .find(|(s, _)| *s == scale)
        .ok_or(Error::Scale(scale))?;
    match family_override_path(family, scale) {
        Some(p) => ModelBytes::read(&p),
        None => Ok(ModelBytes {
            label: family_label(family, scale),
            bytes: Cow::Borrowed(bytes),
        }),
    }
}
