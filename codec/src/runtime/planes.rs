//! Samples of 4:2:0 frames, 8- and 10-bit (issue 17): where each format keeps
//! Y, U and V and how wide a sample is, so the luma path and the 10-bit
//! conversions read and write every layout through one place.
//!
//! - I420, NV12: one byte per sample; U and V planar or interleaved.
//! - I420_10LE: little-endian u16 per sample holding the 10-bit value.
//! - P010_10LE: little-endian u16 with the value in its top 10 bits (the
//!   low 6 bits zero), U and V interleaved.
use super::frame::{FrameMut, FrameRef, PixelFormat};

/// The storage of one 4:2:0 format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Bytes per sample: 1 or 2.
    pub bytes: usize,
    /// Left shift of the value inside its u16 (P010: 6).
    pub shift: u32,
    /// U and V interleaved in plane 1 (NV12, P010).
    pub interleaved: bool,
    /// Bits per value: 8 or 10.
    pub bits: u32,
}

impl Layout {
    /// The largest value: 255 or 1023.
    pub fn max(self) -> f32 {
        ((1u32 << self.bits) - 1) as f32
    }

    /// What one 8-bit code step is in this depth's units (1 or 4): a 10-bit
    /// studio-range value is four times its 8-bit one (BT.709 §4.6).
    pub fn per_8bit(self) -> f32 {
        (1u32 << (self.bits - 8)) as f32
    }
}

impl PixelFormat {
    /// The layout of a 4:2:0 format; None for packed RGB.
    pub fn yuv420(self) -> Option<Layout> {
        let l = |bytes, shift, interleaved, bits| {
            Some(Layout {
                bytes,
                shift,
                interleaved,
                bits,
            })
        };
        match self {
            PixelFormat::I420 => l(1, 0, false, 8),
            PixelFormat::Nv12 => l(1, 0, true, 8),
            PixelFormat::I42010le => l(2, 0, false, 10),
            PixelFormat::P01010le => l(2, 6, true, 10),
            PixelFormat::Rgb | PixelFormat::Rgbx | PixelFormat::Bgrx => None,
        }
    }

    /// A 10-bit format.
    pub fn is_10bit(self) -> bool {
        self.yuv420().is_some_and(|l| l.bits == 10)
    }
}

/// Which component of a 4:2:0 frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Comp {
    Y,
    U,
    V,
}

/// (plane, first sample, step between samples) of `comp`.
fn place(l: Layout, comp: Comp) -> (usize, usize, usize) {
    match (comp, l.interleaved) {
        (Comp::Y, _) => (0, 0, 1),
        (Comp::U, true) => (1, 0, 2),
        (Comp::V, true) => (1, 1, 2),
        (Comp::U, false) => (1, 0, 1),
        (Comp::V, false) => (2, 0, 1),
    }
}

/// Reads row `r` of `comp` (`out.len()` samples) as values (0..=max).
/// The frame must have passed `color::check_frame`.
pub fn read_row(src: &FrameRef, l: Layout, comp: Comp, r: usize, out: &mut [f32]) {
    let (p, first, step) = place(l, comp);
    let row = &src.planes[p][r * src.strides[p]..];
    if l.bytes == 1 && step == 1 {
        // Contiguous (Y, I420's U and V): a loop that vectorises.
        let n = out.len();
        for (o, &v) in out.iter_mut().zip(&row[first..first + n]) {
            *o = f32::from(v);
        }
    } else if l.bytes == 1 {
        for (i, o) in out.iter_mut().enumerate() {
            *o = f32::from(row[first + i * step]);
        }
    } else {
        for (i, o) in out.iter_mut().enumerate() {
            let k = 2 * (first + i * step);
            *o = f32::from(u16::from_le_bytes([row[k], row[k + 1]]) >> l.shift);
        }
    }
}

/// A value as stored: clamped to 0..=max, then ⌊v + ½⌋. Defined this way
/// rather than with `f32::round`, which baseline x86-64 (no SSE4.1) calls as
/// a libm function per sample: the truncating conversion is one instruction.
/// Through `i32`, not `u32`: SSE2 has a packed f32 → i32 truncation but none
/// to u32, and the `u32` form left the row loops scalar (the chroma rows'
/// stores then cost 4× their resize).
#[inline(always)]
pub fn quantize(v: f32, max: f32) -> i32 {
    // (The cap on `max` and the second `max(0.0)` are for odd arguments only: a sample's
    // largest value is at most 65535 and not negative. Loop-invariant or one vector op.)
    let t = v.max(0.0).min(max.min(65535.0)).max(0.0) + 0.5;
    // SAFETY: `f32::max`/`min` ignore a NaN operand, so t is finite and in 0.5..=65535.5: it
    // truncates to an i32 in range. Unchecked, because the saturating `as i32` kept a NaN and
    // range test per sample that stopped vectorization.
    unsafe { t.to_int_unchecked::<i32>() }
}

/// Writes row `r` of `comp`: each value [`quantize`]d. The frame must have
/// passed `color::check_frame`'s plane checks.
pub fn write_row(dst: &mut FrameMut, l: Layout, comp: Comp, r: usize, vals: &[f32]) {
    let (p, first, step) = place(l, comp);
    let stride = dst.strides[p];
    let row = &mut dst.planes[p][r * stride..];
    let max = l.max();
    if l.bytes == 1 && step == 1 {
        for (o, &v) in row[first..first + vals.len()].iter_mut().zip(vals) {
            *o = quantize(v, max) as u8;
        }
    } else if l.bytes == 1 {
        for (i, &v) in vals.iter().enumerate() {
            row[first + i * step] = quantize(v, max) as u8;
        }
    } else {
        for (i, &v) in vals.iter().enumerate() {
            let k = 2 * (first + i * step);
            let q = (quantize(v, max) as u16) << l.shift;
            row[k..k + 2].copy_from_slice(&q.to_le_bytes());
        }
    }
}

/// Samples per row and rows of `comp` in a `w`×`h` frame.
pub fn comp_size(comp: Comp, w: usize, h: usize) -> (usize, usize) {
    match comp {
        Comp::Y => (w, h),
        Comp::U | Comp::V => (w.div_ceil(2), h.div_ceil(2)),
    }
}

/// An owned 8-bit 4:2:0 frame: what an RGB model's conversions see of a
/// 10-bit frame. RGB models take 8-bit RGB anyway, so the 10-bit values are
/// rounded to 8 bits on the way in and widened on the way out; luma models
/// keep all 10 bits (`Codec::upscale`).
pub(crate) struct Frame8 {
    pub format: PixelFormat,
    pub width: usize,
    pub height: usize,
    pub planes: [Vec<u8>; 3],
    pub strides: [usize; 3],
}

impl Frame8 {
    /// A zeroed 8-bit frame of the same size and chroma layout as `format`.
    pub fn new(format: PixelFormat, width: usize, height: usize) -> Frame8 {
        let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
        let interleaved = format.yuv420().is_some_and(|l| l.interleaved);
        let (format, strides) = if interleaved {
            (PixelFormat::Nv12, [width, 2 * cw, 0])
        } else {
            (PixelFormat::I420, [width, cw, cw])
        };
        let planes = [
            vec![0u8; width * height],
            vec![0u8; strides[1] * ch],
            vec![0u8; strides[2] * ch],
        ];
        Frame8 {
            format,
            width,
            height,
            planes,
            strides,
        }
    }

    pub fn as_ref(&self, colorimetry: super::frame::Colorimetry) -> FrameRef<'_> {
        FrameRef {
            format: self.format,
            width: self.width,
            height: self.height,
            planes: [&self.planes[0], &self.planes[1], &self.planes[2]],
            strides: self.strides,
            colorimetry,
        }
    }

    pub fn as_mut(&mut self, colorimetry: super::frame::Colorimetry) -> FrameMut<'_> {
        let [a, b, c] = &mut self.planes;
        FrameMut {
            format: self.format,
            width: self.width,
            height: self.height,
            planes: [a, b, c],
            strides: self.strides,
            colorimetry,
        }
    }
}

/// 10 → 8 bits: limited range divides by 4 (BT.709 §4.6), full range maps
/// 1023 to 255; rounded.
fn to_8(v: f32, full: bool) -> f32 {
    if full { v * 255.0 / 1023.0 } else { v / 4.0 }
}

fn to_10(v: f32, full: bool) -> f32 {
    if full { v * 1023.0 / 255.0 } else { v * 4.0 }
}

/// The 8-bit copy of a 10-bit 4:2:0 frame (checked by the caller).
pub(crate) fn narrow(src: &FrameRef) -> Frame8 {
    let l = src.format.yuv420().expect("a 10-bit 4:2:0 frame");
    let full = src.colorimetry.range == super::frame::Range::Full;
    let mut out = Frame8::new(src.format, src.width, src.height);
    let l8 = out.format.yuv420().expect("4:2:0");
    let mut dst = out.as_mut(src.colorimetry);
    for comp in [Comp::Y, Comp::U, Comp::V] {
        let (w, h) = comp_size(comp, src.width, src.height);
        let mut row = vec![0f32; w];
        for r in 0..h {
            read_row(src, l, comp, r, &mut row);
            row.iter_mut().for_each(|v| *v = to_8(*v, full));
            write_row(&mut dst, l8, comp, r, &row);
        }
    }
    out
}

/// Writes an 8-bit 4:2:0 frame into a 10-bit one of the same size.
pub(crate) fn widen(src: &Frame8, dst: &mut FrameMut) {
    let l = dst.format.yuv420().expect("a 10-bit 4:2:0 frame");
    let full = dst.colorimetry.range == super::frame::Range::Full;
    let s = src.as_ref(dst.colorimetry);
    let l8 = s.format.yuv420().expect("4:2:0");
    for comp in [Comp::Y, Comp::U, Comp::V] {
        let (w, h) = comp_size(comp, src.width, src.height);
        let mut row = vec![0f32; w];
        for r in 0..h {
            read_row(&s, l8, comp, r, &mut row);
            row.iter_mut().for_each(|v| *v = to_10(*v, full));
            write_row(dst, l, comp, r, &row);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::frame::{Colorimetry, Range};

    fn frame10(format: PixelFormat, w: usize, h: usize, pad: usize) -> (Vec<Vec<u8>>, [usize; 3]) {
        let l = format.yuv420().unwrap();
        let cw = w.div_ceil(2);
        let strides = if l.interleaved {
            [2 * w + pad, 4 * cw + pad, 0]
        } else {
            [2 * w + pad, 2 * cw + pad, 2 * cw + pad]
        };
        let ch = h.div_ceil(2);
        let planes = vec![
            vec![0u8; strides[0] * h],
            vec![0u8; strides[1] * ch],
            vec![0u8; strides[2] * ch],
        ];
        (planes, strides)
    }

    /// Every component of both 10-bit layouts reads back what was written,
    /// P010 keeps its low 6 bits zero, and 10 → 8 → 10 bits keeps limited-range
    /// values that are multiples of 4.
    #[test]
    fn ten_bit_layouts_round_trip() {
        for format in [PixelFormat::I42010le, PixelFormat::P01010le] {
            let (w, h) = (7, 5);
            let l = format.yuv420().unwrap();
            let (mut planes, strides) = frame10(format, w, h, 6);
            let val = |c: Comp, r: usize, i: usize| {
                (64 + 4 * ((r * 31 + i * 17 + c as usize * 7) % 220)) as f32
            };
            {
                let [a, b, c] = &mut planes[..] else {
                    unreachable!()
                };
                let mut dst = FrameMut {
                    format,
                    width: w,
                    height: h,
                    planes: [a, b, c],
                    strides,
                    colorimetry: Colorimetry::default(),
                };
                for comp in [Comp::Y, Comp::U, Comp::V] {
                    let (cw, ch) = comp_size(comp, w, h);
                    for r in 0..ch {
                        let row: Vec<f32> = (0..cw).map(|i| val(comp, r, i)).collect();
                        write_row(&mut dst, l, comp, r, &row);
                    }
                }
            }
            if format == PixelFormat::P01010le {
                let y = u16::from_le_bytes([planes[0][0], planes[0][1]]);
                assert_eq!(y & 0x3f, 0);
                assert_eq!(f32::from(y >> 6), val(Comp::Y, 0, 0));
            }
            let src = FrameRef {
                format,
                width: w,
                height: h,
                planes: [&planes[0], &planes[1], &planes[2]],
                strides,
                colorimetry: Colorimetry::default(),
            };
            crate::runtime::color::check_frame(&src).unwrap();
            let f8 = narrow(&src);
            let (mut back, strides2) = frame10(format, w, h, 0);
            {
                let [a, b, c] = &mut back[..] else {
                    unreachable!()
                };
                let mut dst = FrameMut {
                    format,
                    width: w,
                    height: h,
                    planes: [a, b, c],
                    strides: strides2,
                    colorimetry: Colorimetry {
                        range: Range::Limited,
                        ..Default::default()
                    },
                };
                widen(&f8, &mut dst);
            }
            let back = FrameRef {
                format,
                width: w,
                height: h,
                planes: [&back[0], &back[1], &back[2]],
                strides: strides2,
                colorimetry: Colorimetry::default(),
            };
            for comp in [Comp::Y, Comp::U, Comp::V] {
                let (cw, ch) = comp_size(comp, w, h);
                let (mut a, mut b) = (vec![0f32; cw], vec![0f32; cw]);
                for r in 0..ch {
                    read_row(&src, l, comp, r, &mut a);
                    read_row(&back, l, comp, r, &mut b);
                    assert_eq!(a, b, "{format:?} {comp:?} row {r}");
                    assert!(a.iter().enumerate().all(|(i, &v)| v == val(comp, r, i)));
                }
            }
        }
    }
}
