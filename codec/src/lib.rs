//! nawqsr-codec: the NAWQ-SR system (Venieris et al.) on a CPU.
//!
//! Rooms, one per part of the paper (Fig. 2 offline flow, Fig. 3 runtime):
//! - [`model`]: ONNX import and the project's own layer graph; FP32 reference via tract.
//! - [`metrics`]: the SR evaluation protocol (MATLAB bicubic, Y PSNR/SSIM).
//! - [`runtime`]: the Neural Image Codec API.
//!
//! Arrows point down: runtime → engine → units → kernels; [`tensor`] (the HWC
//! f32 tensor and row-parallel helpers) sits below `units`, so nothing below the
//! engine imports it.
pub mod error;
pub mod kernels;
pub mod metrics;
pub mod model;
pub mod offline;
pub mod profiler;
pub mod runtime;
pub mod schedule;

pub use error::{Error, Result};
pub mod engine;
pub mod eval;
pub mod quant;
pub mod tensor;
pub mod units;
