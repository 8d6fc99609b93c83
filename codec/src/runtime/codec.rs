//! `Codec`: one configured upscaler. Synchronous `upscale` today; the streaming
//! interface (submit/receive) and the dispatcher/units arrive with the runtime issue.
use std::path::PathBuf;

use image::RgbImage;

use super::frame::{FrameMut, FrameRef};
use crate::error::{Error, Result};
use crate::model::reference::Fp32Reference;

/// Precision plan the codec runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// The schedule's per-layer bitwidths and DRE flags (§4.1–4.2).
    #[default]
    Hybrid,
    /// Every layer on the INT8 unit.
    Int8,
    /// Every layer on the A16W8 unit.
    A16w8,
    /// The FP32 reference (tract).
    Fp32,
    /// No network: MATLAB-compatible bicubic upscaling.
    Bicubic,
}

impl Mode {
    pub const ALL: [Mode; 5] = [Mode::Hybrid, Mode::Int8, Mode::A16w8, Mode::Fp32, Mode::Bicubic];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Hybrid => "hybrid",
            Mode::Int8 => "int8",
            Mode::A16w8 => "a16w8",
            Mode::Fp32 => "fp32",
            Mode::Bicubic => "bicubic",
        }
    }

    pub fn parse(s: &str) -> Result<Mode> {
        Mode::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| Error::Invalid(format!("invalid mode '{s}' (expected hybrid, int8, a16w8, fp32 or bicubic)")))
    }
}

/// What to build a [`Codec`] from.
#[derive(Clone, Debug)]
pub struct CodecConfig {
    /// ONNX model; required for every mode but `Bicubic`.
    pub model: Option<PathBuf>,
    /// Schedule file (hybrid mode).
    pub schedule: Option<PathBuf>,
    pub mode: Mode,
    /// Upscaling factor; with a model it must match the model's.
    pub scale: Option<usize>,
    /// Worker threads (0 = all cores).
    pub threads: usize,
    /// LR patch edge in pixels (0 = whole frame).
    pub patch_size: usize,
}

impl Default for CodecConfig {
    fn default() -> Self {
        CodecConfig { model: None, schedule: None, mode: Mode::default(), scale: None, threads: 0, patch_size: 0 }
    }
}

enum Backend {
    Fp32(Fp32Reference),
    Bicubic,
}

/// One configured upscaler.
pub struct Codec {
    scale: usize,
    mode: Mode,
    backend: Backend,
}

impl Codec {
    pub fn new(cfg: &CodecConfig) -> Result<Codec> {
        let (scale, backend) = match cfg.mode {
            Mode::Bicubic => {
                let scale = cfg.scale.ok_or_else(|| Error::Invalid("bicubic mode needs a scale (expected 2, 3 or 4)".into()))?;
                (scale, Backend::Bicubic)
            }
            Mode::Fp32 => {
                let path = cfg.model.as_ref().ok_or_else(|| Error::Invalid("mode fp32 needs a model (none given)".into()))?;
                let r = Fp32Reference::load(path)?;
                (r.scale(), Backend::Fp32(r))
            }
            m => return Err(Error::Invalid(format!("mode {} is not available yet in this build", m.name()))),
        };
        if !(2..=4).contains(&scale) {
            return Err(Error::Scale(scale));
        }
        if let Some(s) = cfg.scale {
            if s != scale {
                return Err(Error::Invalid(format!("scale {s} requested but the model upscales ×{scale}")));
            }
        }
        Ok(Codec { scale, mode: cfg.mode, backend })
    }

    pub fn scale(&self) -> usize {
        self.scale
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Upscale one RGB image.
    pub fn upscale_rgb(&self, lr: &RgbImage) -> Result<RgbImage> {
        match &self.backend {
            Backend::Fp32(r) => r.upscale(lr),
            Backend::Bicubic => Ok(crate::metrics::imresize::upscale_bicubic(lr, self.scale)),
        }
    }

    /// Upscale one frame of any supported format into `dst` (same format,
    /// `scale` times larger).
    pub fn upscale(&self, src: &FrameRef, dst: &mut FrameMut) -> Result<()> {
        if dst.width != src.width * self.scale || dst.height != src.height * self.scale {
            return Err(Error::Invalid(format!(
                "output frame is {}x{}, expected {}x{} (×{} of {}x{})",
                dst.width,
                dst.height,
                src.width * self.scale,
                src.height * self.scale,
                self.scale,
                src.width,
                src.height
            )));
        }
        let rgb = super::color::frame_to_rgb(src)?;
        let out = self.upscale_rgb(&rgb)?;
        super::color::rgb_to_frame(&out, dst)
    }
}
