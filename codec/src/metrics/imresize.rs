//! PLACEHOLDER: replaced by the MATLAB-compatible imresize.
use image::RgbImage;
pub fn upscale_bicubic(_lr: &RgbImage, _scale: usize) -> RgbImage {
    unimplemented!("placeholder")
}
