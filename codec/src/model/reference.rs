//! The FP32 reference: the ONNX model run by tract, exactly as exported.
//! This is the "FP32-CPU" baseline of the paper's Table 3 and the ground truth
//! every quantized mode is compared with. It is slow (single-threaded FP32) and
//! is never the fast path.
use std::path::{Path, PathBuf};

use image::RgbImage;
use tract_onnx::prelude::*;

use super::validate;
use crate::error::{Error, Result};

type Runnable = std::sync::Arc<TypedRunnableModel>;

/// A loaded ONNX SR model ready to run in FP32.
pub struct Fp32Reference {
    path: PathBuf,
    model: Runnable,
    scale: usize,
}

impl Fp32Reference {
    /// Load and optimise `path`, then infer the scale by running a probe frame.
    ///
    /// The file is validated first (`validate::check_bytes`: a NaN weight would
    /// otherwise give a silently wrong image), and every tract call runs under
    /// `validate::no_panic`: a panic inside tract is an error naming the model.
    pub fn load(path: &Path) -> Result<Fp32Reference> {
        Fp32Reference::from_bytes(&super::ModelBytes::read(path)?)
    }

    /// As [`Fp32Reference::load`], from a model in memory (errors name its label).
    pub fn from_bytes(m: &super::ModelBytes) -> Result<Fp32Reference> {
        let path = m.label.as_path();
        validate::check_bytes(m)?;
        let model = validate::no_panic(path, "loading in tract", || load_runnable(path, &m.bytes))?;
        let scale = validate::no_panic(path, "running tract on a probe frame", || {
            probe_scale(path, &model)
        })?;
        Ok(Fp32Reference {
            path: path.to_owned(),
            model,
            scale,
        })
    }

    pub fn scale(&self) -> usize {
        self.scale
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run on a planar NCHW f32 buffer (values in [0, 1]); returns the planar
    /// output (3 × scale·h × scale·w), unclipped.
    pub fn run_planar(&self, data: Vec<f32>, h: usize, w: usize) -> Result<Vec<f32>> {
        let input = tract_ndarray::Array4::from_shape_vec((1, 3, h, w), data)
            .map_err(|e| Error::Invalid(format!("input tensor: {e}")))?;
        let out = validate::no_panic(&self.path, "running tract", || {
            self.model
                .run(tvec!(Tensor::from(input).into()))
                .map_err(|e| {
                    Error::model(
                        &self.path,
                        format!("inference failed on a {w}x{h} frame: {e}"),
                    )
                })
        })?;
        let view = out[0]
            .to_plain_array_view::<f32>()
            .map_err(|e| Error::model(&self.path, format!("output is not f32: {e}")))?;
        let (s, h, w) = (self.scale, h, w);
        if view.shape() != [1, 3, s * h, s * w] {
            return Err(Error::model(
                &self.path,
                format!(
                    "output shape {:?}, expected [1, 3, {}, {}]",
                    view.shape(),
                    s * h,
                    s * w
                ),
            ));
        }
        Ok(view.iter().copied().collect())
    }

    /// Upscale an RGB image: u8 → [0,1] → model → clip, round → u8 (the protocol of
    /// ../shared/README.md).
    pub fn upscale(&self, lr: &RgbImage) -> Result<RgbImage> {
        let (w, h) = (lr.width() as usize, lr.height() as usize);
        let out = self.run_planar(rgb_to_planar(lr), h, w)?;
        Ok(planar_to_rgb(&out, self.scale * w, self.scale * h))
    }
}

fn load_runnable(path: &Path, bytes: &[u8]) -> Result<Runnable> {
    let inference = tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])
        .map_err(|e| {
            Error::model(
                path,
                format!("not a readable ONNX model: {}", root_cause(&e)),
            )
        })?;
    let typed = inference.into_optimized().map_err(|e| {
        Error::model(
            path,
            format!("cannot be optimised by tract: {}", root_cause(&e)),
        )
    })?;
    typed
        .into_runnable()
        .map_err(|e| Error::model(path, format!("cannot be made runnable: {}", root_cause(&e))))
}

/// Runs a small probe frame and derives the scale; rejects models that are not
/// 1×3×H×W → 1×3×sH×sW image-to-image networks.
fn probe_scale(path: &Path, model: &Runnable) -> Result<usize> {
    let (h, w) = (8usize, 12usize);
    let input = Tensor::from(tract_ndarray::Array4::<f32>::from_elem((1, 3, h, w), 0.5));
    let out = model.run(tvec!(input.into())).map_err(|e| {
        Error::model(
            path,
            format!("does not accept a 1x3xHxW float image: {}", root_cause(&e)),
        )
    })?;
    let shape = out.first().map(|t| t.shape().to_vec()).unwrap_or_default();
    if shape.len() != 4 || shape[0] != 1 || shape[1] != 3 {
        return Err(Error::model(
            path,
            format!("output shape {shape:?} is not an RGB image (expected [1, 3, sH, sW])"),
        ));
    }
    if shape[2] % h != 0 || shape[3] % w != 0 || shape[2] / h != shape[3] / w {
        return Err(Error::model(
            path,
            format!("output {shape:?} is not an integer upscale of input [1, 3, {h}, {w}]"),
        ));
    }
    let scale = shape[2] / h;
    if !(2..=4).contains(&scale) {
        return Err(Error::model(
            path,
            format!("upscales ×{scale} (expected 2, 3 or 4)"),
        ));
    }
    Ok(scale)
}

fn root_cause(e: &TractError) -> String {
    e.chain()
        .last()
        .map(|c| c.to_string())
        .unwrap_or_else(|| e.to_string())
}

/// Interleaved RGB u8 → planar f32 in [0, 1].
pub fn rgb_to_planar(img: &RgbImage) -> Vec<f32> {
    let n = (img.width() * img.height()) as usize;
    let mut out = vec![0f32; 3 * n];
    for (i, p) in img.pixels().enumerate() {
        for c in 0..3 {
            out[c * n + i] = p.0[c] as f32 / 255.0;
        }
    }
    out
}

/// Planar f32 → interleaved RGB u8: clip to [0, 1], ×255, round half away from zero.
pub fn planar_to_rgb(data: &[f32], w: usize, h: usize) -> RgbImage {
    let n = w * h;
    let mut buf = vec![0u8; 3 * n];
    for i in 0..n {
        for c in 0..3 {
            buf[3 * i + c] = crate::tensor::to_u8_pixel(data[c * n + i]);
        }
    }
    RgbImage::from_raw(w as u32, h as u32, buf).expect("buffer sized w*h*3")
}
