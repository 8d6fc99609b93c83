//! Quantization (§3, §4.1): activation parameters per Eq. (1) and the 8-bit
//! weights quantizer.
pub mod params;
pub mod weights;

pub use params::{Bits, QParams};
pub use weights::{QuantWeights, WeightGranularity};
