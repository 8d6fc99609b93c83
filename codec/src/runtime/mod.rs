//! The Neural Image Codec (§4.3, Fig. 3): the public API the element, the
//! player and the benchmarks use.
pub mod codec;
pub mod color;
pub mod frame;

pub use codec::{Codec, CodecConfig, Mode};
pub use frame::{FrameMut, FrameRef, PixelFormat};
