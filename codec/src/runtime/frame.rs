//! Borrowed video frames as GStreamer hands them over: a pixel format, the
//! visible size and up to three planes with their strides (bytes per row).

/// Pixel layouts the codec accepts and produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PixelFormat {
    /// Packed 8-bit R, G, B (3 bytes per pixel).
    Rgb,
    /// Packed R, G, B, x (4 bytes per pixel, the 4th ignored on input, 255 on output).
    Rgbx,
    /// Packed B, G, R, x.
    Bgrx,
    /// Planar Y, U, V; chroma subsampled 2×2 (matrix and range: the frame's
    /// [`Colorimetry`]).
    I420,
    /// Y plane plus interleaved UV plane, chroma subsampled 2×2.
    Nv12,
    /// I420 with 10-bit values, one little-endian u16 each (GStreamer's
    /// `I420_10LE`).
    I42010le,
    /// NV12 with 10-bit values in the top bits of little-endian u16s
    /// (`P010_10LE`, what hardware decoders of 10-bit HEVC/AV1 give).
    P01010le,
}

impl PixelFormat {
    pub fn n_planes(self) -> usize {
        match self {
            PixelFormat::Rgb | PixelFormat::Rgbx | PixelFormat::Bgrx => 1,
            PixelFormat::I420 | PixelFormat::I42010le => 3,
            PixelFormat::Nv12 | PixelFormat::P01010le => 2,
        }
    }
}

/// The YUV ↔ RGB matrix of a frame (`GstVideoColorMatrix`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Matrix {
    /// BT.601 (SD; also what an unspecified matrix means here).
    #[default]
    Bt601,
    /// BT.709 (HD).
    Bt709,
    /// BT.2020 non-constant luminance (UHD).
    Bt2020,
}

/// The value range of a YUV frame (`GstVideoColorRange`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Range {
    /// Y in 16..=235, Cb/Cr in 16..=240 (what decoders output).
    #[default]
    Limited,
    /// 0..=255 for all three.
    Full,
}

/// Where a 4:2:0 chroma sample sits relative to its 2×2 luma block
/// (`GstVideoChromaSite`); vertically always between the two rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Siting {
    /// Centred horizontally too (JPEG, MPEG-1; `chroma-site=jpeg`).
    #[default]
    Centre,
    /// On the left (even) luma column (MPEG-2, H.264, HEVC;
    /// `chroma-site=mpeg2`).
    Left,
}

/// How a YUV frame's values map to RGB (ignored by the packed RGB formats).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Colorimetry {
    pub matrix: Matrix,
    pub range: Range,
    pub siting: Siting,
}

/// A read-only frame. `planes[i]` starts at the first visible byte of plane `i`;
/// rows are `strides[i]` bytes apart. Unused planes are empty slices.
#[derive(Clone, Copy, Debug)]
pub struct FrameRef<'a> {
    pub format: PixelFormat,
    pub width: usize,
    pub height: usize,
    pub planes: [&'a [u8]; 3],
    pub strides: [usize; 3],
    /// YUV formats: the matrix and range of the values.
    pub colorimetry: Colorimetry,
}

/// A writable frame, same conventions as [`FrameRef`].
#[derive(Debug)]
pub struct FrameMut<'a> {
    pub format: PixelFormat,
    pub width: usize,
    pub height: usize,
    pub planes: [&'a mut [u8]; 3],
    pub strides: [usize; 3],
    /// YUV formats: the matrix and range to write.
    pub colorimetry: Colorimetry,
}
