//! A no-reference quality sample of output frames (FYE-SR scores with PIQE):
//! PIQE (`metrics::piqe`) on one fixed centred crop — the "patch set" — of the
//! frame's grey plane, cheap enough to run every N frames while playing.
//!
//! Grey is MATLAB's `rgb2gray` for RGB formats (what `nawqsr piqe` scores)
//! and the Y plane as stored for I420/NV12 and their 10-bit forms (PIQE rescales by the plane's
//! maximum first, so limited-range luma needs no conversion).
use super::frame::{FrameRef, PixelFormat};
use crate::metrics::piqe;

/// Side of the sampled crop (a multiple of PIQE's 16-pixel block): 256 × 256 is
/// 256 blocks, enough for a stable score at ~1 ms.
pub const SAMPLE_SIDE: usize = 256;

/// PIQE of the centred `side`×`side` crop of `frame` (smaller frames: the whole
/// frame, cut to whole blocks). None when not even one 16×16 block fits or a
/// plane is too short for its stride.
pub fn piqe_sample(frame: &FrameRef, side: usize) -> Option<f64> {
    let b = piqe::BLOCK;
    let w = (side.min(frame.width) / b) * b;
    let h = (side.min(frame.height) / b) * b;
    if w == 0 || h == 0 {
        return None;
    }
    let (x0, y0) = ((frame.width - w) / 2, (frame.height - h) / 2);
    let (bpp, order) = match frame.format {
        PixelFormat::Rgb => (3, [0, 1, 2]),
        PixelFormat::Rgbx => (4, [0, 1, 2]),
        PixelFormat::Bgrx => (4, [2, 1, 0]),
        PixelFormat::I420 | PixelFormat::Nv12 => (1, [0, 0, 0]),
        PixelFormat::I42010le | PixelFormat::P01010le => (2, [0, 0, 0]),
    };
    const W: [f64; 3] = [0.298936021293775, 0.587043074451121, 0.114020904255103];
    let (plane, stride) = (frame.planes[0], frame.strides[0]);
    let mut grey = Vec::with_capacity(w * h);
    for y in y0..y0 + h {
        let row = plane.get(y * stride + x0 * bpp..y * stride + (x0 + w) * bpp)?;
        if bpp == 1 {
            grey.extend(row.iter().map(|&v| f64::from(v)));
        } else if bpp == 2 {
            let shift = frame.format.yuv420().map_or(0, |l| l.shift);
            grey.extend(
                row.chunks_exact(2)
                    .map(|b| f64::from(u16::from_le_bytes([b[0], b[1]]) >> shift)),
            );
        } else {
            grey.extend(row.chunks_exact(bpp).map(|p| {
                let [r, g, b] = order.map(|i| f64::from(p[i]));
                (W[0] * r + W[1] * g + W[2] * b).round().clamp(0.0, 255.0)
            }));
        }
    }
    piqe::piqe(&grey, w, h).ok().map(|p| p.score)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rgb_frame(data: &[u8], w: usize, h: usize) -> FrameRef<'_> {
        FrameRef {
            format: PixelFormat::Rgb,
            width: w,
            height: h,
            planes: [data, &[], &[]],
            strides: [w * 3, 0, 0],
            colorimetry: Default::default(),
        }
    }

    #[test]
    fn equals_piqe_of_the_crop() {
        let (w, h) = (300, 280);
        let img = image::RgbImage::from_fn(w as u32, h as u32, |x, y| {
            image::Rgb([
                (x * 7 % 251) as u8,
                (y * 13 % 241) as u8,
                ((x ^ y) % 256) as u8,
            ])
        });
        let f = rgb_frame(img.as_raw(), w, h);
        let got = piqe_sample(&f, 256).unwrap();
        let crop = image::imageops::crop_imm(&img, 22, 12, 256, 256).to_image();
        assert_eq!(got, piqe::piqe_rgb(&crop).unwrap().score);
    }

    #[test]
    fn tiny_or_short_frames_have_no_sample() {
        assert_eq!(
            piqe_sample(&rgb_frame(&[0; 15 * 15 * 3], 15, 15), 256),
            None
        );
        // Claims 32×32 but holds one row.
        assert_eq!(piqe_sample(&rgb_frame(&[0; 32 * 3], 32, 32), 256), None);
    }
}
