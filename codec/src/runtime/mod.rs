//! The Neural Image Codec (§4.3, Fig. 3): the public API the element, the
//! player and the benchmarks use.
//! - [`codec`]: `Codec` (synchronous API, modes, configuration).
//! - [`stream`]: the streaming API over the input and playback buffers ([`buffers`]).
//! - [`dispatcher`]: the dispatcher thread and the INT8 / A16W8 unit workers;
//!   patches are the bands of `engine::tiles`.
//! - [`rqu`]: the Runtime Quantization Unit (DRE ranges, Eq. 1).
//! - [`reuse`]: exact temporal reuse in 2D patches (NEMO; issue 18) for the
//!   synchronous API; streams reuse row bands in the dispatcher.
//! - [`routing`]: difficulty routing of easy patches to bicubic (MobiSR;
//!   issue 18), on reuse's patch grid.
//! - [`telemetry`]: `Stats` and tracing spans.
//! - [`color`], [`frame`], [`planes`]: pixel formats (8- and 10-bit 4:2:0).
//! - [`luma`], [`chroma`]: luma models; from YUV frames the network takes Y
//!   and the chroma planes are resized straight (`Codec::upscale`).
//! - [`bicubic`]: fast fixed-point MATLAB-compatible bicubic (the `Bicubic` mode).
pub mod bicubic;
pub mod buffers;
pub mod chroma;
pub mod codec;
pub mod color;
pub(crate) mod dispatcher;
pub mod frame;
pub mod luma;
pub mod planes;
pub mod quality;
pub mod reuse;
pub mod routing;
pub mod rqu;
pub mod stream;
pub mod telemetry;

pub use buffers::{Timestamp, Upscaled};
pub use codec::{Codec, CodecConfig, DEFAULT_PATCH_ROWS, MAX_THREADS, Mode, RuntimeOptions};
pub use color::MAX_DIM;
pub use frame::{FrameMut, FrameRef, PixelFormat};
pub use stream::{Stream, StreamConfig, StreamFrame};
pub use telemetry::{PatchCounts, Stats, Unit};
