//! PLACEHOLDER: replaced by the vectorised YUV/RGB conversion.
use image::RgbImage;
use super::frame::{FrameMut, FrameRef};
use crate::error::{Error, Result};
pub fn frame_to_rgb(_src: &FrameRef) -> Result<RgbImage> { Err(Error::Invalid("placeholder".into())) }
pub fn rgb_to_frame(_src: &RgbImage, _dst: &mut FrameMut) -> Result<()> { Err(Error::Invalid("placeholder".into())) }
