//! The fused epilogue, defined once. Every level performs exactly these f32 operations in exactly
//! this order (no FMA contraction, no reassociation), which is what makes the SIMD paths bit-exact
//! with the scalar specification:
//!
//! 1. dequantize the accumulator(s):
//!    - INT8:  `v = acc as f32` (round-to-nearest-even, as `cvtdq2ps`);
//!    - A16W8: `v = (acc_hi as f32) * 256.0 + (acc_lo as f32)` (exact multiply, then one add);
//! 2. `y = v * mult[oc] + offset[oc]` (a multiply, then an add: two roundings, never fused);
//! 3. activation: `Relu`: `if y < 0.0 { 0.0 } else { y }` (so -0.0 and NaN pass through, on every
//!    level); `Leaky(a)` / `PRelu(a[oc])`: `if y < 0.0 { y * a } else { y }`; then, for an
//!    [`Output::Plus`], the residual: `y = y + r` (one f32 add, the graph's `Add`);
//! 4. store: `F32` stores `y`; `U8`/`U16` requantize with `t = (y * scale).round_ties_even()`,
//!    `q = (t - zero).clamp(0.0, qmax)`, then cast (qmax = 255 or 65535; NaN ends as 0);
//!    `Pixels` adds the anchor (`y + a`, one f32 add) and stores
//!    [`crate::tensor::to_u8_pixel`] of the sum at its depth-to-space place.
//!
//! Rounding policy: **round half to even** (IEEE 754 roundTiesToEven, the default rounding mode,
//! what `vcvtps2dq` / `vroundps` / `vrndscaleps` do with RNE), in every int→float conversion and in
//! the requantization.
//!
//! The SIMD versions live next to their kernels (`avx2.rs`, `avx512.rs`) and quote these steps.

/// Output activation of a conv.
#[derive(Debug, Clone, PartialEq)]
pub enum Activation {
    None,
    Relu,
    Leaky(f32),
    /// One slope per output channel.
    PRelu(Vec<f32>),
}

/// Per-output-channel affine map and activation applied to the accumulators.
#[derive(Debug, Clone, Copy)]
pub struct Epilogue<'a> {
    /// Per output channel.
    pub mult: &'a [f32],
    /// Per output channel.
    pub offset: &'a [f32],
    pub act: &'a Activation,
}

/// Where and how the epilogue stores. `pixel_stride >= out_c` lets a conv write a channel slice of
/// a wider tensor (pass `&mut data[ch_offset..]`), e.g. for concat.
#[derive(Debug)]
pub enum Output<'a> {
    F32 {
        data: &'a mut [f32],
        pixel_stride: usize,
    },
    U8 {
        data: &'a mut [u8],
        pixel_stride: usize,
        scale: f32,
        zero: f32,
    },
    U16 {
        data: &'a mut [u16],
        pixel_stride: usize,
        scale: f32,
        zero: f32,
    },
    /// `out`, storing `y + residual[idx]` for element `idx` (indexed as `out`'s elements): a
    /// residual `Add` after the conv done by its epilogue (IMDN's blocks, `engine::tiles`).
    /// Not around `Pixels`, which adds its own anchor.
    Plus {
        residual: &'a [f32],
        out: Box<Output<'a>>,
    },
    /// The super-resolved rows as u8 pixels, the nawq models' tail (`Op::ShuffleAnchor`:
    /// depth-to-space of `block` S, DCR, plus an anchor, then `to_u8_pixel`) done by the
    /// epilogue, so no f32 HR band is written and read back. Output channel `(i·S + j)·C + c`
    /// of pixel (y, x) of the call's rows, plus `anchor[(y·width + x)·C + c]`, is byte
    /// `((S·y + i)·S·width + S·x + j)·C + c` of `data`; out_c = S·S·C.
    Pixels {
        data: &'a mut [u8],
        anchor: &'a [f32],
        block: usize,
        /// C: channels of an HR pixel and of the anchor.
        channels: usize,
        /// Pixels per output row (the conv's out_w).
        width: usize,
    },
}

impl Output<'_> {
    pub(crate) fn len_and_stride(&self) -> (usize, usize) {
        match self {
            Output::F32 { data, pixel_stride } => (data.len(), *pixel_stride),
            Output::U8 {
                data, pixel_stride, ..
            } => (data.len(), *pixel_stride),
            Output::U16 {
                data, pixel_stride, ..
            } => (data.len(), *pixel_stride),
            Output::Plus { out, .. } => out.len_and_stride(),
            // Element `p·out_c + oc` of [`Output::store`] is output channel oc of pixel p.
            Output::Pixels {
                data,
                block,
                channels,
                ..
            } => (data.len(), block * block * channels),
        }
    }

    pub(crate) fn pixel_stride(&self) -> usize {
        self.len_and_stride().1
    }

    /// Step 4 for one element at `idx`.
    #[inline]
    pub(crate) fn store(&mut self, idx: usize, y: f32) {
        match self {
            Output::F32 { data, .. } => data[idx] = y,
            Output::U8 {
                data, scale, zero, ..
            } => data[idx] = requantize(y, *scale, *zero, 255.0) as u8,
            Output::U16 {
                data, scale, zero, ..
            } => data[idx] = requantize(y, *scale, *zero, 65535.0) as u16,
            Output::Plus { residual, out } => out.store(idx, y + residual[idx]),
            Output::Pixels {
                data,
                anchor,
                block: s,
                channels: c,
                width,
            } => {
                let (s, c, w) = (*s, *c, *width);
                let (p, oc) = (idx / (s * s * c), idx % (s * s * c));
                let (y0, x0) = (p / w, p % w);
                let (i, j, ch) = (oc / (s * c), (oc / c) % s, oc % c);
                let at = ((s * y0 + i) * s * w + s * x0 + j) * c + ch;
                data[at] = crate::tensor::to_u8_pixel(y + anchor[p * c + ch]);
            }
        }
    }
}

/// Step 1, INT8.
#[inline]
pub fn dequant_u8(acc: i32) -> f32 {
    acc as f32
}

/// Step 1, A16W8: the multiply by 256 is exact; the add is the only rounding.
#[inline]
pub fn dequant_u16(acc_hi: i32, acc_lo: i32) -> f32 {
    (acc_hi as f32) * 256.0 + (acc_lo as f32)
}

/// Steps 2 and 3 for output channel `oc`.
#[inline]
pub fn affine_act(v: f32, oc: usize, epi: &Epilogue) -> f32 {
    let y = v * epi.mult[oc];
    let y = y + epi.offset[oc];
    match epi.act {
        Activation::None => y,
        Activation::Relu => {
            if y < 0.0 {
                0.0
            } else {
                y
            }
        }
        Activation::Leaky(a) => {
            if y < 0.0 {
                y * a
            } else {
                y
            }
        }
        Activation::PRelu(a) => {
            if y < 0.0 {
                y * a[oc]
            } else {
                y
            }
        }
    }
}

/// Step 4 (quantized outputs), before the cast: round half to even, shift, clamp.
/// The result is an integer-valued f32 in `0.0..=qmax`, or NaN (which casts to 0).
#[inline]
pub fn requantize(y: f32, scale: f32, zero: f32, qmax: f32) -> f32 {
    let t = (y * scale).round_ties_even();
    (t - zero).clamp(0.0, qmax)
}

/// The output as raw parts, for the SIMD epilogues (bounds were asserted by `check_args`).
#[derive(Clone, Copy)]
pub(crate) enum RawData {
    F32(*mut f32),
    U8(*mut u8),
    U16(*mut u16),
    Pixels(*mut u8),
}

#[derive(Clone, Copy)]
pub(crate) struct RawOutput {
    pub data: RawData,
    /// Elements between output pixels: for `Pixels`, 1 (the walk's output offset is then the
    /// pixel's index, from which the epilogue finds its HR place).
    pub pixel_stride: usize,
    pub scale: f32,
    pub zero: f32,
    /// [`Output::Plus`]: the residual, indexed as the output's elements (null: none).
    pub residual: *const f32,
    /// `Pixels` only: the anchor, S, C and the row width.
    pub anchor: *const f32,
    pub block: usize,
    pub channels: usize,
    pub width: usize,
}

impl RawOutput {
    /// A ReLU before this output's requantization changes no integer when
    /// its zero is 0, so the SIMD epilogues leave it out (one op per vector):
    /// a negative y (or −0.0) requantizes to `round(y·s) ≤ 0`, which the
    /// clamp at 0 takes to 0, as it takes the ReLU's 0; NaN casts to 0 either
    /// way. Post-ReLU values calibrate to ranges starting at 0, so their
    /// consumers' zero is 0 (Eq. 1).
    pub(crate) fn clamp_is_relu(&self) -> bool {
        matches!(self.data, RawData::U8(_) | RawData::U16(_))
            && self.zero == 0.0
            && self.residual.is_null()
    }

    /// `Pixels`: the runs one pixel's lanes `oc0..oc0 + lanes` (clipped to out_c) are stored
    /// as, each `(first lane - oc0, byte offset from the pixel's first HR byte, length)`: an HR
    /// row takes S·C consecutive channels. At most `MAX_RUNS` (S·C ≥ 3, lanes ≤ 64).
    pub(crate) fn pixel_runs(&self, oc0: usize, lanes: usize, out_c: usize) -> PixelRuns {
        let sc = self.block * self.channels;
        let hrow = sc * self.width;
        let end = (oc0 + lanes).min(out_c);
        let mut r = PixelRuns {
            n: 0,
            runs: [(0, 0, 0); MAX_RUNS],
        };
        let mut t = oc0 / sc;
        while t * sc < end {
            let (lo, hi) = ((t * sc).max(oc0), ((t + 1) * sc).min(end));
            r.runs[r.n] = (lo - oc0, t * hrow + lo - t * sc, hi - lo);
            r.n += 1;
            t += 1;
        }
        r
    }
}

/// Most runs of [`RawOutput::pixel_runs`]: ⌈64 / 3⌉ + 1.
pub(crate) const MAX_RUNS: usize = 24;

#[derive(Clone, Copy)]
pub(crate) struct PixelRuns {
    pub n: usize,
    pub runs: [(usize, usize, usize); MAX_RUNS],
}

impl Output<'_> {
    pub(crate) fn raw(&mut self) -> RawOutput {
        match self {
            Output::F32 { data, pixel_stride } => RawOutput {
                data: RawData::F32(data.as_mut_ptr()),
                pixel_stride: *pixel_stride,
                scale: 1.0,
                zero: 0.0,
                ..RawOutput::NONE
            },
            Output::U8 {
                data,
                pixel_stride,
                scale,
                zero,
            } => RawOutput {
                data: RawData::U8(data.as_mut_ptr()),
                pixel_stride: *pixel_stride,
                scale: *scale,
                zero: *zero,
                ..RawOutput::NONE
            },
            Output::U16 {
                data,
                pixel_stride,
                scale,
                zero,
            } => RawOutput {
                data: RawData::U16(data.as_mut_ptr()),
                pixel_stride: *pixel_stride,
                scale: *scale,
                zero: *zero,
                ..RawOutput::NONE
            },
            Output::Plus { residual, out } => RawOutput {
                residual: residual.as_ptr(),
                ..out.raw()
            },
            Output::Pixels {
                data,
                anchor,
                block,
                channels,
                width,
            } => RawOutput {
                data: RawData::Pixels(data.as_mut_ptr()),
                pixel_stride: 1,
                anchor: anchor.as_ptr(),
                block: *block,
                channels: *channels,
                width: *width,
                ..RawOutput::NONE
            },
        }
    }
}

impl RawOutput {
    const NONE: RawOutput = RawOutput {
        data: RawData::F32(std::ptr::null_mut()),
        pixel_stride: 0,
        scale: 1.0,
        zero: 0.0,
        residual: std::ptr::null(),
        anchor: std::ptr::null(),
        block: 0,
        channels: 0,
        width: 0,
    };
}
