//! Pixel-format conversion between decoded video frames and the RGB images the
//! networks see (the "input frame buffer" and "playback buffer" edges of Fig. 3).
//!
//! - Packed RGB, RGBx and BGRx are copied (x is ignored on input, 255 on output).
//! - I420 and NV12 use the frame's [`Colorimetry`] (from the caps): BT.601,
//!   BT.709 or BT.2020, limited (Y 16..=235, Cb/Cr 16..=240) or full range.
//!   The default, BT.601 limited, is what decoders output for SD content and
//!   the matrix MATLAB's `rgb2ycbcr`/`ycbcr2rgb` use (../shared/README.md
//!   protocol); the fixed-point coefficients are derived from Kr, Kb and the
//!   range ([`ToRgb`], [`ToYuv`]) and equal MATLAB's for that default.
//! - Chroma is 4:2:0, **centre-sited** (JPEG/MPEG-1: each chroma sample sits in
//!   the middle of its 2×2 luma block) unless the frame's [`Siting`] says left
//!   (MPEG-2/H.264: on the even luma column, vertically centred); then the
//!   horizontal filters are [1, 2, 1]/4 down and "co-sited, then halfway" up.
//!   - Down (RGB → YUV): the 2×2 box average of the block's RGB, then the matrix
//!     (the matrix is linear, so this equals averaging per-pixel chroma).
//!   - Up (YUV → RGB): the separable triangle filter that centre siting implies
//!     (libjpeg's "fancy upsampling"): weights 3/4 and 1/4 of the nearest two chroma
//!     samples in each direction, edges replicated.
//! - Odd widths/heights: chroma planes are `ceil(w/2) × ceil(h/2)`; the last chroma
//!   column/row covers a single luma column/row, which is replicated for the box
//!   average.
//!
//! Arithmetic is integer fixed point (14-bit coefficients for YUV → RGB, 16-bit for
//! RGB → YUV, round half up). Every inner loop runs over one row with no per-pixel
//! branches (edges are handled by padding the row first) so that the compiler can
//! vectorise it.
use image::RgbImage;

use super::bicubic::Level;
use super::frame::{Colorimetry, FrameMut, FrameRef, Matrix, PixelFormat, Range, Siting};
use crate::error::{Error, Result};

/// YUV → RGB coefficients × 2^14, RGB → YUV × 2^16.
const YUV_SHIFT: u32 = 14;
const RGB_SHIFT: u32 = 16;

/// Kr, Kb of a matrix (Kg = 1 − Kr − Kb).
pub(crate) fn kr_kb(m: Matrix) -> (f64, f64) {
    match m {
        Matrix::Bt601 => (0.299, 0.114),
        Matrix::Bt709 => (0.2126, 0.0722),
        Matrix::Bt2020 => (0.2627, 0.0593),
    }
}

/// Luma and chroma scales (of 255) and the luma offset of a range.
fn range_scales(r: Range) -> (f64, f64, i32) {
    match r {
        Range::Limited => (219.0 / 255.0, 224.0 / 255.0, 16),
        Range::Full => (1.0, 1.0, 0),
    }
}

/// YUV → RGB in fixed point for one colorimetry:
/// R = ys·(Y − y0) + 2(1 − Kr)/cs·(Cr − 128),
/// G = ys·(Y − y0) − 2(1 − Kb)Kb/(Kg·cs)·(Cb − 128) − 2(1 − Kr)Kr/(Kg·cs)·(Cr − 128),
/// B = ys·(Y − y0) + 2(1 − Kb)/cs·(Cb − 128), with ys = 1/(luma scale). For
/// BT.601 limited range these are MATLAB's `ycbcr2rgb` (1.164383, 1.596027,
/// 0.391762, 0.812968, 2.017232).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ToRgb {
    y: i32,
    y0: i32,
    rv: i32,
    gu: i32,
    gv: i32,
    bu: i32,
}

impl ToRgb {
    fn of(c: Colorimetry) -> ToRgb {
        let (kr, kb) = kr_kb(c.matrix);
        let kg = 1.0 - kr - kb;
        let (ls, cs, y0) = range_scales(c.range);
        let q = |x: f64| (x * f64::from(1u32 << YUV_SHIFT)).round() as i32;
        ToRgb {
            y: q(1.0 / ls),
            y0,
            rv: q(2.0 * (1.0 - kr) / cs),
            gu: q(2.0 * (1.0 - kb) * kb / (kg * cs)),
            gv: q(2.0 * (1.0 - kr) * kr / (kg * cs)),
            bu: q(2.0 * (1.0 - kb) / cs),
        }
    }
}

/// RGB → YUV in fixed point for one colorimetry: Y = y0 + ls·(Kr R + Kg G +
/// Kb B), Cb = 128 + cs·(B − Y′)/(2(1 − Kb)), Cr = 128 + cs·(R − Y′)/(2(1 − Kr))
/// (Y′ the unscaled luma). The Cb and Cr rows sum to exactly 0 (G takes the
/// rounding), so every grey maps to Cb = Cr = 128. For BT.601 limited range
/// these are MATLAB's `rgb2ycbcr` (Y = 16 + (65.481 R + 128.553 G +
/// 24.966 B)/255, …).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ToYuv {
    y: [i32; 3],
    u: [i32; 3],
    v: [i32; 3],
    y0: i32,
}

impl ToYuv {
    fn of(c: Colorimetry) -> ToYuv {
        let (kr, kb) = kr_kb(c.matrix);
        let kg = 1.0 - kr - kb;
        let (ls, cs, y0) = range_scales(c.range);
        let q = |x: f64| (x * f64::from(1u32 << RGB_SHIFT)).round() as i32;
        let (ur, ub) = (q(-cs * kr / (2.0 * (1.0 - kb))), q(cs * 0.5));
        let (vr, vb) = (q(cs * 0.5), q(-cs * kb / (2.0 * (1.0 - kr))));
        ToYuv {
            y: [q(ls * kr), q(ls * kg), q(ls * kb)],
            u: [ur, -(ur + ub), ub],
            v: [vr, -(vr + vb), vb],
            y0,
        }
    }
}

/// Byte offsets of R, G, B and the pixel size of a packed format.
fn packed_layout(format: PixelFormat) -> Option<([usize; 3], usize)> {
    match format {
        PixelFormat::Rgb => Some(([0, 1, 2], 3)),
        PixelFormat::Rgbx => Some(([0, 1, 2], 4)),
        PixelFormat::Bgrx => Some(([2, 1, 0], 4)),
        PixelFormat::I420 | PixelFormat::Nv12 | PixelFormat::I42010le | PixelFormat::P01010le => {
            None
        }
    }
}

/// Largest frame side accepted (16K video is 15360 wide).
pub const MAX_DIM: usize = 1 << 16;

/// `(name, bytes per row, rows)` of every plane of a `width × height` frame.
fn plane_shapes(
    format: PixelFormat,
    width: usize,
    height: usize,
) -> Vec<(&'static str, usize, usize)> {
    let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
    match format {
        PixelFormat::Rgb => vec![("RGB", 3 * width, height)],
        PixelFormat::Rgbx => vec![("RGBx", 4 * width, height)],
        PixelFormat::Bgrx => vec![("BGRx", 4 * width, height)],
        PixelFormat::I420 => vec![("Y", width, height), ("U", cw, ch), ("V", cw, ch)],
        PixelFormat::Nv12 => vec![("Y", width, height), ("UV", 2 * cw, ch)],
        PixelFormat::I42010le => vec![
            ("Y", 2 * width, height),
            ("U", 2 * cw, ch),
            ("V", 2 * cw, ch),
        ],
        PixelFormat::P01010le => vec![("Y", 2 * width, height), ("UV", 4 * cw, ch)],
    }
}

/// Checks that every plane holds `rows` rows of `row_bytes` at its stride.
fn check_planes(
    format: PixelFormat,
    width: usize,
    height: usize,
    lens: [usize; 3],
    strides: [usize; 3],
) -> Result<()> {
    if width == 0 || height == 0 {
        return Err(Error::Invalid(format!(
            "{format:?} frame is {width}x{height}, expected a non-empty size"
        )));
    }
    // Far above any video size, and low enough that row sizes cannot overflow.
    if width > MAX_DIM || height > MAX_DIM {
        return Err(Error::Invalid(format!(
            "{format:?} frame is {width}x{height}, expected at most {MAX_DIM} per side"
        )));
    }
    for (i, (name, row_bytes, rows)) in plane_shapes(format, width, height).into_iter().enumerate()
    {
        let (len, stride) = (lens[i], strides[i]);
        if stride < row_bytes {
            return Err(Error::Invalid(format!(
                "{format:?} {width}x{height} plane {i} ({name}): stride {stride}, expected at least {row_bytes}"
            )));
        }
        // Checked: a stride near usize::MAX must not wrap to a small `need`.
        let need = stride
            .checked_mul(rows - 1)
            .and_then(|n| n.checked_add(row_bytes))
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "{format:?} {width}x{height} plane {i} ({name}): stride {stride} overflows the address space"
                ))
            })?;
        if len < need {
            return Err(Error::Invalid(format!(
                "{format:?} {width}x{height} plane {i} ({name}): {len} bytes, expected at least {need} ({rows} rows at stride {stride})"
            )));
        }
    }
    Ok(())
}

/// Checks `src`'s size and that its planes hold its rows.
pub fn check_frame(src: &FrameRef) -> Result<()> {
    check_planes(
        src.format,
        src.width,
        src.height,
        src.planes.map(<[u8]>::len),
        src.strides,
    )
}

/// Checks `dst`'s size and that its planes hold its rows.
pub fn check_frame_mut(dst: &FrameMut) -> Result<()> {
    let lens = [
        dst.planes[0].len(),
        dst.planes[1].len(),
        dst.planes[2].len(),
    ];
    check_planes(dst.format, dst.width, dst.height, lens, dst.strides)
}

/// Converts a frame to a tightly packed RGB image.
pub fn frame_to_rgb(src: &FrameRef) -> Result<RgbImage> {
    let (w, h) = (src.width, src.height);
    check_planes(src.format, w, h, src.planes.map(<[u8]>::len), src.strides)?;
    if src.format.is_10bit() {
        // RGB models see 8-bit RGB: round to 8 bits first (`planes::narrow`).
        let f8 = super::planes::narrow(src);
        return frame_to_rgb(&f8.as_ref(src.colorimetry));
    }
    let (w32, h32) = (dim_u32(w)?, dim_u32(h)?);
    let mut out = vec![0u8; 3 * w * h];
    let yuv = |layout: ChromaPlanes, out: &mut [u8]| {
        // Row slabs on several threads: each output row is the same function
        // of the frame whichever thread computes it.
        let rows = slab_rows(w, h);
        std::thread::scope(|s| {
            for (k, slab) in out.chunks_mut(3 * w * rows).enumerate() {
                let r = k * rows..((k + 1) * rows).min(h);
                if r.end == h {
                    yuv420_to_rgb(src, layout, r, slab);
                } else {
                    s.spawn(move || yuv420_to_rgb(src, layout, r, slab));
                }
            }
        });
    };
    match src.format {
        PixelFormat::I420 => yuv(ChromaPlanes::Planar, &mut out),
        PixelFormat::Nv12 => yuv(ChromaPlanes::Interleaved, &mut out),
        PixelFormat::I42010le | PixelFormat::P01010le => unreachable!("narrowed above"),
        packed => {
            let (off, bpp) = packed_layout(packed).expect("packed format");
            for (y, dst) in out.chunks_exact_mut(3 * w).enumerate() {
                let row = &src.planes[0][y * src.strides[0]..][..bpp * w];
                for (d, s) in dst.chunks_exact_mut(3).zip(row.chunks_exact(bpp)) {
                    d[0] = s[off[0]];
                    d[1] = s[off[1]];
                    d[2] = s[off[2]];
                }
            }
        }
    }
    Ok(RgbImage::from_raw(w32, h32, out).expect("buffer is 3·w·h bytes"))
}

/// Writes an RGB image into `dst`, which must have the same size.
pub fn rgb_to_frame(src: &RgbImage, dst: &mut FrameMut) -> Result<()> {
    let (w, h) = (src.width() as usize, src.height() as usize);
    if dst.width != w || dst.height != h {
        return Err(Error::Invalid(format!(
            "{:?} output frame is {}x{}, expected the image size {w}x{h}",
            dst.format, dst.width, dst.height
        )));
    }
    let lens = [
        dst.planes[0].len(),
        dst.planes[1].len(),
        dst.planes[2].len(),
    ];
    check_planes(dst.format, w, h, lens, dst.strides)?;
    if dst.format.is_10bit() {
        let mut f8 = super::planes::Frame8::new(dst.format, w, h);
        rgb_to_frame(src, &mut f8.as_mut(dst.colorimetry))?;
        super::planes::widen(&f8, dst);
        return Ok(());
    }
    let rgb = src.as_raw();
    match dst.format {
        PixelFormat::I420 | PixelFormat::Nv12 => rgb_to_yuv420_slabs(rgb, w, h, dst),
        packed => {
            let (off, bpp) = packed_layout(packed).expect("packed format");
            let stride = dst.strides[0];
            for (y, s) in rgb.chunks_exact(3 * w).enumerate() {
                write_packed_row(s, &mut dst.planes[0][y * stride..][..bpp * w], off, bpp);
            }
        }
    }
    Ok(())
}

/// Frames of at least this many pixels convert on several threads: below,
/// a thread's start (tens of µs) costs more than it saves.
const PAR_MIN_PIXELS: usize = 1 << 18;

/// Rows per slab (even, so 4:2:0 chroma rows never straddle two slabs):
/// the whole frame below [`PAR_MIN_PIXELS`], else one slab per core (at most
/// 4). The conversions sit between the workers' frames on the element's
/// streaming thread, so on 2 cores the second one would otherwise idle.
fn slab_rows(w: usize, h: usize) -> usize {
    let n = if w * h < PAR_MIN_PIXELS {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
    };
    h.div_ceil(n).next_multiple_of(2).max(2)
}

/// [`rgb_to_yuv420`] in row slabs on several threads ([`slab_rows`]): each
/// slab is a frame of its own whose chroma rows are exactly the frame's.
fn rgb_to_yuv420_slabs(rgb: &[u8], w: usize, h: usize, dst: &mut FrameMut) {
    let rows = slab_rows(w, h);
    let slabs: Vec<&[u8]> = rgb.chunks(3 * w * rows).collect();
    yuv420_from_slabs(&slabs, w, slabs.len(), dst);
}

/// Writes consecutive RGB row slabs (top to bottom, covering the frame, all
/// but the last of even height) into a 4:2:0 frame, `threads` groups of
/// consecutive slabs in parallel. Each slab converts as a frame of its own.
fn yuv420_from_slabs(slabs: &[&[u8]], w: usize, threads: usize, dst: &mut FrameMut) {
    let (format, strides, h, colorimetry) = (dst.format, dst.strides, dst.height, dst.colorimetry);
    let [p0, p1, p2] = &mut dst.planes;
    let mut rest: [&mut [u8]; 3] = [&mut **p0, &mut **p1, &mut **p2];
    let mut jobs: Vec<(&[u8], FrameMut)> = Vec::with_capacity(slabs.len());
    let mut y0 = 0;
    for slab in slabs {
        let hh = slab.len() / (3 * w);
        let last = y0 + hh == h;
        let mut take = |i: usize, n_rows: usize| {
            let plane = std::mem::take(&mut rest[i]);
            let n = if last {
                plane.len()
            } else {
                (n_rows * strides[i]).min(plane.len())
            };
            let (a, b) = plane.split_at_mut(n);
            rest[i] = b;
            a
        };
        let planes = [take(0, hh), take(1, hh / 2), take(2, hh / 2)];
        jobs.push((
            slab,
            FrameMut {
                format,
                width: w,
                height: hh,
                planes,
                strides,
                colorimetry,
            },
        ));
        y0 += hh;
    }
    let per = jobs.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|s| {
        let mut groups = jobs.chunks_mut(per).peekable();
        while let Some(g) = groups.next() {
            let mut run = move || {
                for (slab, f) in g.iter_mut() {
                    let hh = f.height;
                    rgb_to_yuv420(slab, w, hh, f);
                }
            };
            if groups.peek().is_none() {
                run();
            } else {
                s.spawn(run);
            }
        }
    });
}

/// Writes consecutive RGB row slabs (top to bottom, covering `dst`; the
/// network's output bands) into `dst` without joining them first. 4:2:0
/// formats need every slab but the last of even height; otherwise the slabs
/// are joined and converted as one image.
pub fn rgb_slabs_to_frame(slabs: &[&[u8]], w: usize, dst: &mut FrameMut) -> Result<()> {
    let h: usize = slabs.iter().map(|s| s.len() / (3 * w).max(1)).sum();
    if slabs.iter().any(|s| s.len() % (3 * w).max(1) != 0) || h != dst.height || w != dst.width {
        return Err(Error::Invalid(format!(
            "{:?} output frame is {}x{}, expected the slabs' size {w}x{h}",
            dst.format, dst.width, dst.height
        )));
    }
    let lens = [
        dst.planes[0].len(),
        dst.planes[1].len(),
        dst.planes[2].len(),
    ];
    check_planes(dst.format, w, h, lens, dst.strides)?;
    if dst.format.is_10bit() {
        let mut f8 = super::planes::Frame8::new(dst.format, w, h);
        rgb_slabs_to_frame(slabs, w, &mut f8.as_mut(dst.colorimetry))?;
        super::planes::widen(&f8, dst);
        return Ok(());
    }
    let odd = slabs
        .iter()
        .rev()
        .skip(1)
        .any(|s| (s.len() / (3 * w)) % 2 == 1);
    match dst.format {
        PixelFormat::I420 | PixelFormat::Nv12 if !odd => {
            let threads = h.div_ceil(slab_rows(w, h));
            yuv420_from_slabs(slabs, w, threads, dst);
            Ok(())
        }
        PixelFormat::I420 | PixelFormat::Nv12 => {
            let img = RgbImage::from_raw(dim_u32(w)?, dim_u32(h)?, slabs.concat())
                .expect("slabs are 3·w·h bytes");
            rgb_to_frame(&img, dst)
        }
        packed => {
            let (off, bpp) = packed_layout(packed).expect("packed format");
            let stride = dst.strides[0];
            let rows = slabs.iter().flat_map(|s| s.chunks_exact(3 * w));
            for (y, s) in rows.enumerate() {
                write_packed_row(s, &mut dst.planes[0][y * stride..][..bpp * w], off, bpp);
            }
            Ok(())
        }
    }
}

/// One RGB row into a packed row of `bpp` bytes per pixel (x = 255).
fn write_packed_row(s: &[u8], row: &mut [u8], off: [usize; 3], bpp: usize) {
    if bpp == 4 {
        for (d, s) in row.chunks_exact_mut(4).zip(s.chunks_exact(3)) {
            d[off[0]] = s[0];
            d[off[1]] = s[1];
            d[off[2]] = s[2];
            d[3] = 255;
        }
    } else {
        row.copy_from_slice(s);
    }
}

fn dim_u32(v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::Invalid(format!("frame dimension {v} exceeds u32")))
}

#[derive(Clone, Copy)]
enum ChromaPlanes {
    /// I420: U in plane 1, V in plane 2.
    Planar,
    /// NV12: U, V interleaved in plane 1.
    Interleaved,
}

/// Copies chroma row `cy` into `u`, `v` (length `cw + 2`), at indices `1..=cw`,
/// replicating the edge samples into indices 0 and `cw + 1`.
fn load_chroma_row(
    src: &FrameRef,
    layout: ChromaPlanes,
    cy: usize,
    cw: usize,
    u: &mut [i32],
    v: &mut [i32],
) {
    match layout {
        ChromaPlanes::Planar => {
            let ur = &src.planes[1][cy * src.strides[1]..][..cw];
            let vr = &src.planes[2][cy * src.strides[2]..][..cw];
            for ((du, dv), (&su, &sv)) in u[1..=cw]
                .iter_mut()
                .zip(&mut v[1..=cw])
                .zip(ur.iter().zip(vr))
            {
                *du = i32::from(su);
                *dv = i32::from(sv);
            }
        }
        ChromaPlanes::Interleaved => {
            let uv = &src.planes[1][cy * src.strides[1]..][..2 * cw];
            for ((du, dv), s) in u[1..=cw]
                .iter_mut()
                .zip(&mut v[1..=cw])
                .zip(uv.chunks_exact(2))
            {
                *du = i32::from(s[0]);
                *dv = i32::from(s[1]);
            }
        }
    }
    u[0] = u[1];
    v[0] = v[1];
    u[cw + 1] = u[cw];
    v[cw + 1] = v[cw];
}

/// Rows `rows` of the frame into `out` (those rows only), at the best level
/// this CPU runs ([`Level`]).
fn yuv420_to_rgb(
    src: &FrameRef,
    layout: ChromaPlanes,
    rows: std::ops::Range<usize>,
    out: &mut [u8],
) {
    #[cfg(target_arch = "x86_64")]
    if Level::detect() == Level::Avx2 {
        // SAFETY: the CPU has AVX2 (checked above).
        return unsafe { yuv420_to_rgb_avx2(src, layout, rows, out) };
    }
    yuv420_to_rgb_body(src, layout, rows, out)
}

/// The same code compiled for AVX2: the row loops vectorise 8 lanes wide
/// instead of baseline x86-64's 4, with the same integer arithmetic, so the
/// bytes equal the scalar build's.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn yuv420_to_rgb_avx2(
    src: &FrameRef,
    layout: ChromaPlanes,
    rows: std::ops::Range<usize>,
    out: &mut [u8],
) {
    yuv420_to_rgb_body(src, layout, rows, out)
}

#[inline(always)]
fn yuv420_to_rgb_body(
    src: &FrameRef,
    layout: ChromaPlanes,
    rows: std::ops::Range<usize>,
    out: &mut [u8],
) {
    let (w, h) = (src.width, src.height);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let k = ToRgb::of(src.colorimetry);
    // Two chroma rows (nearest, second nearest) with one replicated sample each side.
    let (mut u0, mut v0) = (vec![0i32; cw + 2], vec![0i32; cw + 2]);
    let (mut u1, mut v1) = (vec![0i32; cw + 2], vec![0i32; cw + 2]);
    // Vertically filtered chroma (×4) and the full-width result (×16).
    let (mut uvert, mut vvert) = (vec![0i32; cw + 2], vec![0i32; cw + 2]);
    let (mut urow, mut vrow) = (vec![0i32; 2 * cw], vec![0i32; 2 * cw]);
    for y in rows.clone() {
        // Centre siting: luma row y sits at chroma position (y − 0.5)/2, between
        // chroma row y/2 (weight 3/4) and y/2 ∓ 1 (weight 1/4), clamped at the edges.
        let cy = y / 2;
        let cy_far = if y % 2 == 0 {
            cy.saturating_sub(1)
        } else {
            (cy + 1).min(ch - 1)
        };
        load_chroma_row(src, layout, cy, cw, &mut u0, &mut v0);
        load_chroma_row(src, layout, cy_far, cw, &mut u1, &mut v1);
        for (o, (a, b)) in uvert.iter_mut().zip(u0.iter().zip(&u1)) {
            *o = 3 * a + b;
        }
        for (o, (a, b)) in vvert.iter_mut().zip(v0.iter().zip(&v1)) {
            *o = 3 * a + b;
        }
        // Horizontally: even x = 2i takes chroma i (3/4) and i − 1 (1/4); odd x = 2i + 1
        // takes i (3/4) and i + 1 (1/4). Padded index = chroma index + 1.
        match src.colorimetry.siting {
            Siting::Centre => {
                for (d, t) in urow.chunks_exact_mut(2).zip(uvert.windows(3)) {
                    d[0] = 3 * t[1] + t[0];
                    d[1] = 3 * t[1] + t[2];
                }
                for (d, t) in vrow.chunks_exact_mut(2).zip(vvert.windows(3)) {
                    d[0] = 3 * t[1] + t[0];
                    d[1] = 3 * t[1] + t[2];
                }
            }
            // Left siting: even x = 2i is chroma i itself, odd x = 2i + 1
            // halfway to chroma i + 1 (same ×4 gain).
            Siting::Left => {
                for (d, t) in urow.chunks_exact_mut(2).zip(uvert.windows(3)) {
                    d[0] = 4 * t[1];
                    d[1] = 2 * t[1] + 2 * t[2];
                }
                for (d, t) in vrow.chunks_exact_mut(2).zip(vvert.windows(3)) {
                    d[0] = 4 * t[1];
                    d[1] = 2 * t[1] + 2 * t[2];
                }
            }
        }
        let yrow = &src.planes[0][y * src.strides[0]..][..w];
        let dst = &mut out[3 * w * (y - rows.start)..][..3 * w];
        yuv_row_to_rgb(&k, yrow, &urow[..w], &vrow[..w], dst);
    }
}

/// One row: `u16x`, `v16x` are chroma × 16 (the upsampling filter's gain).
#[inline]
fn yuv_row_to_rgb(k: &ToRgb, yrow: &[u8], u16x: &[i32], v16x: &[i32], dst: &mut [u8]) {
    const ROUND: i32 = 1 << (YUV_SHIFT - 1);
    for (d, ((&y, &u), &v)) in dst.chunks_exact_mut(3).zip(yrow.iter().zip(u16x).zip(v16x)) {
        // (c16 + 8) >> 4 rounds the filtered chroma back to 8 bits.
        let u = ((u + 8) >> 4) - 128;
        let v = ((v + 8) >> 4) - 128;
        let yy = k.y * (i32::from(y) - k.y0) + ROUND;
        d[0] = ((yy + k.rv * v) >> YUV_SHIFT).clamp(0, 255) as u8;
        d[1] = ((yy - k.gu * u - k.gv * v) >> YUV_SHIFT).clamp(0, 255) as u8;
        d[2] = ((yy + k.bu * u) >> YUV_SHIFT).clamp(0, 255) as u8;
    }
}

/// Left-sited chroma sums of one RGB row added into `sums` (R, G, B):
/// sums[i] += p[2i − 1] + 2·p[2i] + p[2i + 1], columns outside the row
/// replicated from its edge. `eo` is scratch of 6·ceil(w/2).
#[inline(always)]
fn left_row_sums(row: &[u8], w: usize, eo: &mut [i32], sums: [&mut Vec<i32>; 3]) {
    let cw = w.div_ceil(2);
    let (e, o) = eo.split_at_mut(3 * cw);
    let pairs = row.chunks_exact(6);
    let tail = pairs.remainder();
    for (i, p) in pairs.enumerate() {
        for c in 0..3 {
            e[c * cw + i] = i32::from(p[c]);
            o[c * cw + i] = i32::from(p[3 + c]);
        }
    }
    if let [r, g, b] = *tail {
        // Odd width: column w (right of the last even one) is column w − 1.
        for (c, v) in [r, g, b].into_iter().enumerate() {
            e[c * cw + cw - 1] = i32::from(v);
            o[c * cw + cw - 1] = i32::from(v);
        }
    }
    for (c, s) in sums.into_iter().enumerate() {
        let (e, o) = (&e[c * cw..(c + 1) * cw], &o[c * cw..(c + 1) * cw]);
        // Column −1 is column 0.
        s[0] += 3 * e[0] + o[0];
        for (((d, &op), &ec), &oc) in s[1..]
            .iter_mut()
            .zip(&o[..cw - 1])
            .zip(&e[1..])
            .zip(&o[1..])
        {
            *d += op + 2 * ec + oc;
        }
    }
}

/// RGB rows into a 4:2:0 frame of the same size, at the best level this CPU
/// runs ([`Level`]).
fn rgb_to_yuv420(rgb: &[u8], w: usize, h: usize, dst: &mut FrameMut) {
    #[cfg(target_arch = "x86_64")]
    if Level::detect() == Level::Avx2 {
        // SAFETY: the CPU has AVX2 (checked above).
        return unsafe { rgb_to_yuv420_avx2(rgb, w, h, dst) };
    }
    rgb_to_yuv420_body(rgb, w, h, dst)
}

/// See [`yuv420_to_rgb_avx2`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn rgb_to_yuv420_avx2(rgb: &[u8], w: usize, h: usize, dst: &mut FrameMut) {
    rgb_to_yuv420_body(rgb, w, h, dst)
}

#[inline(always)]
fn rgb_to_yuv420_body(rgb: &[u8], w: usize, h: usize, dst: &mut FrameMut) {
    let k = ToYuv::of(dst.colorimetry);
    let [y_r, y_g, y_b] = k.y;
    let [u_r, u_g, u_b] = k.u;
    let [v_r, v_g, v_b] = k.v;
    let y_round: i32 = (k.y0 << RGB_SHIFT) + (1 << (RGB_SHIFT - 1));
    // Chroma of a sum of 4 pixels: 2 more bits of shift.
    const C_SHIFT: u32 = RGB_SHIFT + 2;
    const C_ROUND: i32 = (128 << C_SHIFT) + (1 << (C_SHIFT - 1));
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));

    let ystride = dst.strides[0];
    for (y, s) in rgb.chunks_exact(3 * w).enumerate() {
        let row = &mut dst.planes[0][y * ystride..][..w];
        for (d, p) in row.iter_mut().zip(s.chunks_exact(3)) {
            let v = y_r * i32::from(p[0]) + y_g * i32::from(p[1]) + y_b * i32::from(p[2]) + y_round;
            *d = (v >> RGB_SHIFT).clamp(0, 255) as u8;
        }
    }

    // Per chroma row: horizontal pair sums of R, G, B for the two luma rows (the
    // second is the first again on the last row of an odd height), then the matrix.
    let (mut sr, mut sg, mut sb) = (vec![0i32; cw], vec![0i32; cw], vec![0i32; cw]);
    let (mut urow, mut vrow) = (vec![0u8; cw], vec![0u8; cw]);
    let mut eo = vec![0i32; 6 * cw];
    for cy in 0..ch {
        sr.fill(0);
        sg.fill(0);
        sb.fill(0);
        for y in [2 * cy, (2 * cy + 1).min(h - 1)] {
            let row = &rgb[3 * w * y..][..3 * w];
            if dst.colorimetry.siting == Siting::Left {
                // Left siting: columns 2i − 1, 2i, 2i + 1 weighted 1, 2, 1
                // (edges replicated): the same total weight 8 over two rows
                // as the box's 4, counted by `shift` below. Even and odd
                // columns apart first, so both loops vectorise.
                left_row_sums(row, w, &mut eo, [&mut sr, &mut sg, &mut sb]);
                continue;
            }
            let pairs = row.chunks_exact(6);
            let tail = pairs.remainder();
            for (((r, g), b), p) in sr.iter_mut().zip(&mut sg).zip(&mut sb).zip(pairs) {
                *r += i32::from(p[0]) + i32::from(p[3]);
                *g += i32::from(p[1]) + i32::from(p[4]);
                *b += i32::from(p[2]) + i32::from(p[5]);
            }
            if let [r, g, b] = *tail {
                // Odd width: the last chroma column covers one luma column; replicate it.
                sr[cw - 1] += 2 * i32::from(r);
                sg[cw - 1] += 2 * i32::from(g);
                sb[cw - 1] += 2 * i32::from(b);
            }
        }
        let sums = sr.iter().zip(&sg).zip(&sb);
        let (shift, round) = if dst.colorimetry.siting == Siting::Left {
            (C_SHIFT + 1, (128 << (C_SHIFT + 1)) + (1 << C_SHIFT))
        } else {
            (C_SHIFT, C_ROUND)
        };
        for ((u, v), ((&r, &g), &b)) in urow.iter_mut().zip(&mut vrow).zip(sums) {
            *u = ((u_r * r + u_g * g + u_b * b + round) >> shift).clamp(0, 255) as u8;
            *v = ((v_r * r + v_g * g + v_b * b + round) >> shift).clamp(0, 255) as u8;
        }
        match dst.format {
            PixelFormat::I420 => {
                dst.planes[1][cy * dst.strides[1]..][..cw].copy_from_slice(&urow);
                dst.planes[2][cy * dst.strides[2]..][..cw].copy_from_slice(&vrow);
            }
            _ => {
                let uv = &mut dst.planes[1][cy * dst.strides[1]..][..2 * cw];
                for (d, (&u, &v)) in uv.chunks_exact_mut(2).zip(urow.iter().zip(&vrow)) {
                    d[0] = u;
                    d[1] = v;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An owned frame with chosen padding per row, for building FrameRef/FrameMut.
    struct Owned {
        format: PixelFormat,
        width: usize,
        height: usize,
        planes: [Vec<u8>; 3],
        strides: [usize; 3],
    }

    impl Owned {
        fn new(format: PixelFormat, width: usize, height: usize, pad: usize) -> Owned {
            let mut planes: [Vec<u8>; 3] = Default::default();
            let mut strides = [0; 3];
            for (i, (_, row_bytes, rows)) in
                plane_shapes(format, width, height).into_iter().enumerate()
            {
                strides[i] = row_bytes + pad;
                // Poison the padding so that reading it shows up in the result.
                planes[i] = vec![0xA5; strides[i] * rows];
            }
            Owned {
                format,
                width,
                height,
                planes,
                strides,
            }
        }

        fn as_ref(&self) -> FrameRef<'_> {
            FrameRef {
                format: self.format,
                width: self.width,
                height: self.height,
                planes: [&self.planes[0], &self.planes[1], &self.planes[2]],
                strides: self.strides,
                colorimetry: Colorimetry::default(),
            }
        }

        fn as_mut(&mut self) -> FrameMut<'_> {
            let [p0, p1, p2] = &mut self.planes;
            FrameMut {
                format: self.format,
                width: self.width,
                height: self.height,
                planes: [p0, p1, p2],
                strides: self.strides,
                colorimetry: Colorimetry::default(),
            }
        }
    }

    const ALL: [PixelFormat; 5] = [
        PixelFormat::Rgb,
        PixelFormat::Rgbx,
        PixelFormat::Bgrx,
        PixelFormat::I420,
        PixelFormat::Nv12,
    ];

    fn flat(w: u32, h: u32, c: [u8; 3]) -> RgbImage {
        RgbImage::from_pixel(w, h, image::Rgb(c))
    }

    /// A smooth image: slow gradients in all three channels.
    fn smooth(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(40 + 3 * x) as u8, (200 - 2 * y) as u8, (60 + x + y) as u8])
        })
    }

    /// Deterministic noise (an LCG), full range.
    fn noise(w: u32, h: u32) -> RgbImage {
        let mut s = 0x1234_5678u32;
        RgbImage::from_fn(w, h, |_, _| {
            let mut c = [0u8; 3];
            for v in &mut c {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                *v = (s >> 24) as u8;
            }
            image::Rgb(c)
        })
    }

    fn round_trip(img: &RgbImage, format: PixelFormat, pad: usize) -> RgbImage {
        let mut f = Owned::new(format, img.width() as usize, img.height() as usize, pad);
        rgb_to_frame(img, &mut f.as_mut()).unwrap();
        frame_to_rgb(&f.as_ref()).unwrap()
    }

    fn max_diff(a: &RgbImage, b: &RgbImage) -> u8 {
        assert_eq!(a.dimensions(), b.dimensions());
        a.as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(x, y)| x.abs_diff(*y))
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn packed_round_trip_is_exact() {
        let img = noise(17, 9);
        for f in [PixelFormat::Rgb, PixelFormat::Rgbx, PixelFormat::Bgrx] {
            for pad in [0, 5] {
                assert_eq!(round_trip(&img, f, pad), img, "{f:?} pad {pad}");
            }
        }
    }

    #[test]
    fn packed_layouts_and_padding_byte() {
        let img = flat(2, 1, [10, 20, 30]);
        let mut f = Owned::new(PixelFormat::Bgrx, 2, 1, 0);
        rgb_to_frame(&img, &mut f.as_mut()).unwrap();
        assert_eq!(f.planes[0], [30, 20, 10, 255, 30, 20, 10, 255]);
        let mut f = Owned::new(PixelFormat::Rgbx, 2, 1, 0);
        rgb_to_frame(&img, &mut f.as_mut()).unwrap();
        assert_eq!(f.planes[0], [10, 20, 30, 255, 10, 20, 30, 255]);
    }

    /// BT.601 limited range: black (16,128,128), white (235,128,128),
    /// red (81,90,240), green (145,54,34), blue (41,240,110).
    #[test]
    fn known_colours_bt601() {
        let cases = [
            ([0, 0, 0], [16, 128, 128]),
            ([255, 255, 255], [235, 128, 128]),
            ([255, 0, 0], [81, 90, 240]),
            ([0, 255, 0], [145, 54, 34]),
            ([0, 0, 255], [41, 240, 110]),
        ];
        for (rgb, yuv) in cases {
            for format in [PixelFormat::I420, PixelFormat::Nv12] {
                let mut f = Owned::new(format, 3, 3, 0);
                rgb_to_frame(&flat(3, 3, rgb), &mut f.as_mut()).unwrap();
                assert!(
                    f.planes[0].iter().all(|&y| y == yuv[0]),
                    "{format:?} {rgb:?} Y {:?}",
                    f.planes[0]
                );
                let (u, v) = match format {
                    PixelFormat::I420 => (f.planes[1][0], f.planes[2][0]),
                    _ => (f.planes[1][0], f.planes[1][1]),
                };
                assert_eq!([u, v], [yuv[1], yuv[2]], "{format:?} {rgb:?}");
                // And back: the primaries come back within 1 LSB.
                let back = frame_to_rgb(&f.as_ref()).unwrap();
                for p in back.pixels() {
                    for c in 0..3 {
                        assert!(
                            p.0[c].abs_diff(rgb[c]) <= 1,
                            "{format:?} {rgb:?} -> {:?}",
                            p.0
                        );
                    }
                }
            }
        }
    }

    /// Greys have neutral chroma, so only the 219-level luma quantisation remains: ±1.
    #[test]
    fn grey_round_trip_within_one() {
        let img = RgbImage::from_fn(256, 2, |x, _| image::Rgb([x as u8; 3]));
        for format in [PixelFormat::I420, PixelFormat::Nv12] {
            let back = round_trip(&img, format, 3);
            assert!(
                max_diff(&img, &back) <= 1,
                "{format:?}: {}",
                max_diff(&img, &back)
            );
        }
    }

    /// Smooth content survives 4:2:0 within 3 LSB (measured: 2).
    #[test]
    fn smooth_round_trip_within_three() {
        for (w, h) in [(32, 24), (33, 25), (1, 1), (2, 3), (7, 1)] {
            let img = smooth(w, h);
            for format in [PixelFormat::I420, PixelFormat::Nv12] {
                for pad in [0, 7] {
                    let back = round_trip(&img, format, pad);
                    let d = max_diff(&img, &back);
                    assert!(d <= 3, "{format:?} {w}x{h} pad {pad}: max diff {d}");
                }
            }
        }
    }

    /// YUV → RGB → YUV: luma of an in-gamut frame with flat 2×2 chroma comes back within 1.
    #[test]
    fn yuv_round_trip_luma() {
        let mut f = Owned::new(PixelFormat::I420, 16, 8, 4);
        for y in 0..8 {
            for x in 0..16 {
                f.planes[0][y * f.strides[0] + x] = (60 + 7 * x + 3 * y) as u8;
            }
        }
        for y in 0..4 {
            for x in 0..8 {
                f.planes[1][y * f.strides[1] + x] = 128;
                f.planes[2][y * f.strides[2] + x] = 128;
            }
        }
        let rgb = frame_to_rgb(&f.as_ref()).unwrap();
        let mut g = Owned::new(PixelFormat::I420, 16, 8, 0);
        rgb_to_frame(&rgb, &mut g.as_mut()).unwrap();
        for y in 0..8 {
            for x in 0..16 {
                let (a, b) = (
                    f.planes[0][y * f.strides[0] + x],
                    g.planes[0][y * g.strides[0] + x],
                );
                assert!(a.abs_diff(b) <= 1, "({x},{y}) {a} vs {b}");
            }
        }
    }

    #[test]
    fn i420_and_nv12_agree() {
        let img = noise(21, 13);
        assert_eq!(
            round_trip(&img, PixelFormat::I420, 0),
            round_trip(&img, PixelFormat::Nv12, 9)
        );
    }

    /// Flat colours stay flat through every format (odd sizes included).
    #[test]
    fn flat_colours_stay_flat() {
        for format in ALL {
            for c in [[0, 0, 0], [255, 255, 255], [200, 40, 90], [12, 180, 250]] {
                let back = round_trip(&flat(9, 7, c), format, 2);
                let first = back.get_pixel(0, 0).0;
                assert!(back.pixels().all(|p| p.0 == first), "{format:?} {c:?}");
                for ch in 0..3 {
                    assert!(
                        first[ch].abs_diff(c[ch]) <= 2,
                        "{format:?} {c:?} -> {first:?}"
                    );
                }
            }
        }
    }

    /// Strided planes: the padding bytes (poisoned with 0xA5) are never read into the
    /// image and never overwritten.
    #[test]
    fn strides_are_honoured() {
        let img = noise(10, 6);
        for format in ALL {
            let tight = round_trip(&img, format, 0);
            let padded = round_trip(&img, format, 13);
            assert_eq!(tight, padded, "{format:?}");
            let mut f = Owned::new(format, 10, 6, 13);
            rgb_to_frame(&img, &mut f.as_mut()).unwrap();
            for (i, (_, row_bytes, rows)) in plane_shapes(format, 10, 6).into_iter().enumerate() {
                for r in 0..rows {
                    let pad = &f.planes[i][r * f.strides[i] + row_bytes..(r + 1) * f.strides[i]];
                    assert!(
                        pad.iter().all(|&b| b == 0xA5),
                        "{format:?} plane {i} row {r}"
                    );
                }
            }
        }
    }

    /// A vertical luma edge at an even column stays exactly there in the Y plane and
    /// in the RGB image.
    #[test]
    fn edges_stay_put() {
        let img = RgbImage::from_fn(16, 4, |x, _| {
            image::Rgb(if x < 8 { [0; 3] } else { [255; 3] })
        });
        for format in ALL {
            let back = round_trip(&img, format, 0);
            for x in 0..16 {
                let v = back.get_pixel(x, 2).0[0];
                if x < 8 {
                    assert!(v <= 1, "{format:?} x {x}: {v}");
                } else {
                    assert!(v >= 254, "{format:?} x {x}: {v}");
                }
            }
        }
    }

    #[test]
    fn planes_too_small_are_one_line_errors() {
        let img = flat(8, 4, [1, 2, 3]);
        for format in ALL {
            let mut f = Owned::new(format, 8, 4, 0);
            let last = format.n_planes() - 1;
            f.planes[last].pop();
            let err = frame_to_rgb(&f.as_ref()).unwrap_err().to_string();
            assert!(
                err.contains(&format!("plane {last}")) && err.contains("expected at least"),
                "{err}"
            );
            assert!(!err.contains('\n'));
            let err = rgb_to_frame(&img, &mut f.as_mut()).unwrap_err().to_string();
            assert!(err.contains(&format!("plane {last}")), "{err}");
        }
        // Stride smaller than a row.
        let mut f = Owned::new(PixelFormat::Rgbx, 8, 4, 0);
        f.strides[0] = 31;
        let err = frame_to_rgb(&f.as_ref()).unwrap_err().to_string();
        assert!(err.contains("stride 31, expected at least 32"), "{err}");
        // Size mismatch and empty frames.
        let mut f = Owned::new(PixelFormat::Rgb, 4, 4, 0);
        let err = rgb_to_frame(&img, &mut f.as_mut()).unwrap_err().to_string();
        assert!(err.contains("expected the image size 8x4"), "{err}");
        let f = Owned::new(PixelFormat::I420, 0, 4, 0);
        assert!(frame_to_rgb(&f.as_ref()).is_err());
    }

    /// Frames above `PAR_MIN_PIXELS` convert in row slabs on several threads,
    /// at the CPU's best level: the same bytes as one baseline pass over the
    /// whole frame, both ways, I420 and NV12, odd height and padded rows
    /// included.
    #[test]
    fn slab_conversion_equals_one_pass() {
        for format in [PixelFormat::I420, PixelFormat::Nv12] {
            let (w, h) = (722, 401);
            assert!(w * h >= PAR_MIN_PIXELS);
            let mut f = Owned::new(format, w, h, 6);
            for (k, p) in f.planes.iter_mut().enumerate() {
                for (i, b) in p.iter_mut().enumerate() {
                    *b = ((i * 7 + k * 31) ^ (i / 13)) as u8;
                }
            }
            let layout = if format == PixelFormat::I420 {
                ChromaPlanes::Planar
            } else {
                ChromaPlanes::Interleaved
            };
            // Baseline x86-64 code in one pass: the reference for the slabs
            // and for the AVX2 build.
            let mut one = vec![0u8; 3 * w * h];
            yuv420_to_rgb_body(&f.as_ref(), layout, 0..h, &mut one);
            let rgb = frame_to_rgb(&f.as_ref()).unwrap();
            assert!(rgb.as_raw() == &one, "{format:?} to RGB");
            let (mut a, mut b) = (Owned::new(format, w, h, 6), Owned::new(format, w, h, 6));
            rgb_to_frame(&rgb, &mut a.as_mut()).unwrap();
            rgb_to_yuv420_body(rgb.as_raw(), w, h, &mut b.as_mut());
            assert!(a.planes == b.planes, "{format:?} from RGB");
        }
    }

    /// The network's output bands convert straight into the frame: the same
    /// bytes as joining them first, for every format, with an odd band
    /// (joined, then converted) and a small frame (one thread) too.
    #[test]
    fn slabs_to_frame_equals_the_joined_image() {
        for (w, heights) in [
            (700usize, vec![32usize, 32, 64, 300, 3]),
            (20, vec![4, 6, 2]),
            (30, vec![4, 5, 6]),
        ] {
            let h: usize = heights.iter().sum();
            let img = RgbImage::from_fn(w as u32, h as u32, |x, y| {
                image::Rgb([(x * 3 + y) as u8, (x ^ y) as u8, (y * 5) as u8])
            });
            let mut slabs = Vec::new();
            let mut at = 0;
            for r in &heights {
                slabs.push(&img.as_raw()[3 * w * at..3 * w * (at + r)]);
                at += r;
            }
            for format in [
                PixelFormat::I420,
                PixelFormat::Nv12,
                PixelFormat::Rgb,
                PixelFormat::Rgbx,
                PixelFormat::Bgrx,
            ] {
                let (mut a, mut b) = (Owned::new(format, w, h, 3), Owned::new(format, w, h, 3));
                rgb_slabs_to_frame(&slabs, w, &mut a.as_mut()).unwrap();
                rgb_to_frame(&img, &mut b.as_mut()).unwrap();
                assert!(a.planes == b.planes, "{format:?} {w}x{h} {heights:?}");
            }
            let mut small = Owned::new(PixelFormat::I420, w, h - 1, 3);
            assert!(rgb_slabs_to_frame(&slabs, w, &mut small.as_mut()).is_err());
        }
    }

    #[test]
    fn bt601_limited_coefficients_are_matlabs() {
        let c = Colorimetry::default();
        assert_eq!(
            ToRgb::of(c),
            ToRgb {
                y: 19077,
                y0: 16,
                rv: 26149,
                gu: 6419,
                gv: 13320,
                bu: 33050
            }
        );
        assert_eq!(
            ToYuv::of(c),
            ToYuv {
                y: [16829, 33039, 6416],
                u: [-9714, -19070, 28784],
                v: [28784, -24103, -4681],
                y0: 16
            }
        );
    }

    /// 75 % colour bars, 16 pixels wide each, coded with each colorimetry's
    /// definition (float, rounded): decoded with the frame's colorimetry
    /// every bar's interior is its RGB within 1; decoded as BT.601 limited
    /// (the old fixed assumption) some bar is far off; encoding back gives
    /// the coded bytes within 1.
    #[test]
    fn colour_bars_decode_with_the_frames_matrix() {
        // 75 % bars (full-scale bars saturate, so a wrong range hides there).
        let bars: [[u8; 3]; 8] = [
            [191, 191, 191],
            [191, 191, 0],
            [0, 191, 191],
            [0, 191, 0],
            [191, 0, 191],
            [191, 0, 0],
            [0, 0, 191],
            [0, 0, 0],
        ];
        for (matrix, range) in [
            (Matrix::Bt709, Range::Limited),
            (Matrix::Bt709, Range::Full),
            (Matrix::Bt2020, Range::Limited),
            (Matrix::Bt601, Range::Full),
        ] {
            let (kr, kb) = kr_kb(matrix);
            let (ls, cs, y0) = range_scales(range);
            let ycc = |p: [u8; 3]| {
                let [r, g, b] = p.map(|v| f64::from(v) / 255.0);
                let y = kr * r + (1.0 - kr - kb) * g + kb * b;
                let cb = (b - y) / (2.0 * (1.0 - kb));
                let cr = (r - y) / (2.0 * (1.0 - kr));
                [
                    (f64::from(y0) + 255.0 * ls * y).round() as u8,
                    (128.0 + 255.0 * cs * cb).round().clamp(0.0, 255.0) as u8,
                    (128.0 + 255.0 * cs * cr).round().clamp(0.0, 255.0) as u8,
                ]
            };
            let (w, h) = (16 * bars.len(), 4);
            let mut f = Owned::new(PixelFormat::I420, w, h, 0);
            for x in 0..w {
                let [y, u, v] = ycc(bars[x / 16]);
                for r in 0..h {
                    f.planes[0][r * w + x] = y;
                }
                for r in 0..h / 2 {
                    f.planes[1][r * (w / 2) + x / 2] = u;
                    f.planes[2][r * (w / 2) + x / 2] = v;
                }
            }
            let c = Colorimetry {
                matrix,
                range,
                ..Default::default()
            };
            let decode = |c: Colorimetry| {
                let mut r = f.as_ref();
                r.colorimetry = c;
                frame_to_rgb(&r).unwrap()
            };
            let rgb = decode(c);
            for (i, bar) in bars.iter().enumerate() {
                let p = rgb.get_pixel(16 * i as u32 + 8, 1).0;
                for ch in 0..3 {
                    assert!(
                        p[ch].abs_diff(bar[ch]) <= 1,
                        "{c:?} bar {i}: {p:?} for {bar:?}"
                    );
                }
            }
            // The same bytes read with BT.601 limited are other colours.
            let wrong = decode(Colorimetry::default());
            let off = (0..8)
                .map(|i| {
                    let p = wrong.get_pixel(16 * i + 8, 1).0;
                    (0..3)
                        .map(|ch| p[ch].abs_diff(bars[i as usize][ch]))
                        .max()
                        .unwrap()
                })
                .max()
                .unwrap();
            assert!(off > 10, "{c:?}: BT.601 limited decodes within {off}");
            // And back: encoding with the same colorimetry gives the bytes.
            let mut back = Owned::new(PixelFormat::I420, w, h, 0);
            let mut m = back.as_mut();
            m.colorimetry = c;
            rgb_to_frame(&rgb, &mut m).unwrap();
            for x in (8..w).step_by(16) {
                for p in 0..3 {
                    let (a, b) = if p == 0 {
                        (back.planes[0][w + x], f.planes[0][w + x])
                    } else {
                        (back.planes[p][x / 2], f.planes[p][x / 2])
                    };
                    assert!(a.abs_diff(b) <= 1, "{c:?} plane {p} x {x}: {a} vs {b}");
                }
            }
        }
    }

    /// Left (MPEG-2/H.264) siting: an even column takes its chroma sample
    /// itself, an odd one the mean of its two neighbours; encoding that image
    /// with left siting gives the samples back.
    #[test]
    fn left_siting_puts_chroma_on_even_columns() {
        let (w, h) = (16, 4);
        let left = Colorimetry {
            siting: Siting::Left,
            ..Default::default()
        };
        let chroma = |i: usize| (100 + 8 * i) as u8;
        let frame = |u: &dyn Fn(usize) -> u8| {
            let mut f = Owned::new(PixelFormat::I420, w, h, 0);
            f.planes[0].fill(120);
            f.planes[2].fill(128);
            for r in 0..h / 2 {
                for i in 0..w / 2 {
                    f.planes[1][r * (w / 2) + i] = u(i);
                }
            }
            f
        };
        let ramp = frame(&chroma);
        let mut r = ramp.as_ref();
        r.colorimetry = left;
        let rgb = frame_to_rgb(&r).unwrap();
        // What a flat frame of chroma c decodes to.
        let flat = |c: u8| {
            *frame_to_rgb(&frame(&|_| c).as_ref())
                .unwrap()
                .get_pixel(5, 1)
        };
        for i in 0..w / 2 - 1 {
            assert_eq!(
                *rgb.get_pixel(2 * i as u32, 1),
                flat(chroma(i)),
                "x = {}",
                2 * i
            );
            let mid = ((chroma(i) as u16 + chroma(i + 1) as u16) / 2) as u8;
            assert_eq!(
                *rgb.get_pixel(2 * i as u32 + 1, 1),
                flat(mid),
                "x = {}",
                2 * i + 1
            );
        }
        let mut back = Owned::new(PixelFormat::I420, w, h, 0);
        let mut m = back.as_mut();
        m.colorimetry = left;
        rgb_to_frame(&rgb, &mut m).unwrap();
        for i in 1..w / 2 - 1 {
            assert!(
                back.planes[1][i].abs_diff(chroma(i)) <= 1,
                "chroma {i}: {}",
                back.planes[1][i]
            );
        }
    }

    /// The vectorised left-sited sums equal the definition, odd width too.
    #[test]
    fn left_row_sums_equal_the_definition() {
        for w in [1usize, 2, 7, 16, 33] {
            let row: Vec<u8> = (0..3 * w).map(|i| (i * 37 % 251) as u8).collect();
            let cw = w.div_ceil(2);
            let mut eo = vec![0i32; 6 * cw];
            let (mut a, mut b, mut c) = (vec![1i32; cw], vec![2i32; cw], vec![3i32; cw]);
            left_row_sums(&row, w, &mut eo, [&mut a, &mut b, &mut c]);
            for i in 0..cw {
                let px = |x: usize, k: usize| i32::from(row[3 * x.min(w - 1) + k]);
                let x = 2 * i;
                let want = |k: usize| px(x.saturating_sub(1), k) + 2 * px(x, k) + px(x + 1, k);
                assert_eq!(
                    [a[i] - 1, b[i] - 2, c[i] - 3],
                    [want(0), want(1), want(2)],
                    "w {w} i {i}"
                );
            }
        }
    }
}
