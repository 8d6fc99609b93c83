//! Kernel correctness: the scalar kernel equals a naive reference written here from the spec
//! (plain loops, i64 accumulation), and every level the host supports equals the scalar kernel
//! bit for bit (f32 outputs compared by bits). A level the host has but the tests skipped is a
//! failure (`ensure_all_host_levels_tested`).
//!
//! Benchmark table: `cargo test --release -p nawqsr-codec --test kernels -- --ignored --nocapture bench_table`

use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::Mutex;

use nawqsr_codec::kernels::bench::{bench_conv, measure_peak};
use nawqsr_codec::kernels::{
    Activation, ConvGeom, CpuLevel, Epilogue, Output, PackedConv, amx_available, conv_u8,
    conv_u8_amx_model, conv_u16, conv_u16_amx_model,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// Levels the bit-exactness tests actually ran (checked by `ensure_all_host_levels_tested`).
static LEVELS_RUN: Mutex<BTreeSet<CpuLevel>> = Mutex::new(BTreeSet::new());

#[derive(Debug, Clone, Copy, PartialEq)]
enum OutKind {
    F32,
    U8 {
        scale: f32,
        zero: f32,
    },
    U16 {
        scale: f32,
        zero: f32,
    },
    /// `Output::Pixels` of depth-to-space block S (C = out_c / S²) with an anchor.
    Pixels {
        block: usize,
    },
}

/// What a conv writes: the whole output buffer (channels beyond out_c in each pixel must keep
/// their sentinel values: the kernels may only write their channel slice).
#[derive(Debug, Clone, PartialEq)]
enum OutBuf {
    F32(Vec<u32>),
    U8(Vec<u8>),
    U16(Vec<u16>),
}

/// One conv problem (tract `packed_packed.rs` style): geometry, data, epilogue, row range.
#[derive(Debug, Clone)]
struct ConvProblem {
    g: ConvGeom,
    u16_input: bool,
    in_ps: usize,
    out_ps: usize,
    /// u8 problems keep every value ≤ 255.
    input: Vec<u16>,
    pad: u16,
    /// ONNX order [out_c][in_c/groups][kh][kw].
    weights: Vec<i8>,
    mult: Vec<f32>,
    offset: Vec<f32>,
    act: Activation,
    out: OutKind,
    rows: Range<usize>,
    /// `Pixels`: C values per output pixel of every row (the call reads its rows').
    anchor: Vec<f32>,
    /// `Output::Plus`: added after the activation, indexed as the output's elements.
    residual: Option<Vec<f32>>,
}

/// Small deterministic generator for the bulk data (shapes come from proptest and shrink).
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn f32_in(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * (self.below(1 << 24) as f32 / (1 << 24) as f32)
    }
}

fn ceil_out(n: usize, pa: usize, pb: &mut usize, k: usize, d: usize) {
    let span = d * (k - 1) + 1;
    if n + pa + *pb < span {
        *pb = span - n - pa;
    }
}

impl ConvProblem {
    fn strategy() -> impl Strategy<Value = ConvProblem> {
        let group_mode = prop_oneof![
            3 => (1..=70usize, 1..=70usize).prop_map(|(ic, oc)| (1usize, ic, oc)),
            1 => (2..=4usize, 1..=12usize, 1..=6usize).prop_map(|(g, icpg, ocpg)| (g, g * icpg, g * ocpg)),
            1 => (1..=40usize, 1..=2usize).prop_map(|(c, m)| (c, c, c * m)), // depthwise (× multiplier)
        ];
        let ks = prop_oneof![Just(1usize), Just(3), Just(5)];
        (
            group_mode,
            (1..=11usize, 1..=11usize),
            (ks.clone(), ks),
            (1..=3usize, 1..=2usize),
            // Unpadded often: the VNNI path reads unpadded u8 inputs in place.
            prop_oneof![1 => Just((0, 0, 0, 0)), 2 => (0..=2usize, 0..=2usize, 0..=2usize, 0..=2usize)],
            (0..=3usize, 0..=3usize),
            (any::<bool>(), 0..3usize, 0..4usize),
            any::<u64>(),
        )
            .prop_map(
                |(
                    (groups, in_c, out_c),
                    (in_h, in_w),
                    (kh, kw),
                    (stride, dilation),
                    pads,
                    extra,
                    kinds,
                    seed,
                )| {
                    let (pad_top, pad_left, mut pad_bottom, mut pad_right) = pads;
                    ceil_out(in_h, pad_top, &mut pad_bottom, kh, dilation);
                    ceil_out(in_w, pad_left, &mut pad_right, kw, dilation);
                    let g = ConvGeom {
                        in_h,
                        in_w,
                        in_c,
                        out_c,
                        kh,
                        kw,
                        stride,
                        dilation,
                        pad_top,
                        pad_left,
                        pad_bottom,
                        pad_right,
                        groups,
                    };
                    let (u16_input, out_kind, act_kind) = kinds;
                    ConvProblem::random(
                        g,
                        u16_input,
                        in_c + extra.0,
                        out_c + extra.1,
                        out_kind,
                        act_kind,
                        seed,
                    )
                },
            )
    }

    #[allow(clippy::too_many_arguments)]
    fn random(
        g: ConvGeom,
        u16_input: bool,
        in_ps: usize,
        out_ps: usize,
        out_kind: usize,
        act_kind: usize,
        seed: u64,
    ) -> ConvProblem {
        let mut r = XorShift(seed | 1);
        let vmax = if u16_input { 65536 } else { 256 };
        let input = (0..g.in_h * g.in_w * in_ps)
            .map(|_| r.below(vmax) as u16)
            .collect();
        let pad = r.below(vmax) as u16;
        let k = g.kh * g.kw * g.in_c / g.groups;
        let weights = (0..g.out_c * k)
            .map(|_| (r.below(255) as i32 - 127) as i8)
            .collect();
        // Scale the accumulators to O(1..100) so requantization rounds and clamps both happen.
        let typical = 127.0 * (vmax as f32) * (k as f32).sqrt() / 4.0;
        let mult = (0..g.out_c)
            .map(|_| r.f32_in(0.3, 3.0) / typical * 50.0)
            .collect();
        let offset = (0..g.out_c).map(|_| r.f32_in(-20.0, 20.0)).collect();
        let act = match act_kind {
            0 => Activation::None,
            1 => Activation::Relu,
            2 => Activation::Leaky(r.f32_in(0.01, 0.3)),
            _ => Activation::PRelu((0..g.out_c).map(|_| r.f32_in(-0.5, 0.5)).collect()),
        };
        let out = match out_kind {
            0 => OutKind::F32,
            // A third with zero 0, where the SIMD epilogues leave a ReLU to the clamp.
            1 => OutKind::U8 {
                scale: r.f32_in(0.5, 4.0),
                zero: (r.below(3) > 0) as u8 as f32 * (r.below(200) as f32 - 100.0),
            },
            _ => OutKind::U16 {
                scale: r.f32_in(100.0, 1000.0),
                zero: (r.below(3) > 0) as u8 as f32 * (r.below(60000) as f32 - 30000.0),
            },
        };
        let out_h = g.out_h();
        let a = r.below(out_h as u64 + 1) as usize;
        let b = r.below(out_h as u64 + 1) as usize;
        let rows = if r.below(3) == 0 {
            0..out_h
        } else {
            a.min(b)..a.max(b)
        };
        ConvProblem {
            g,
            u16_input,
            in_ps,
            out_ps,
            input,
            pad,
            weights,
            mult,
            offset,
            act,
            out,
            rows,
            anchor: Vec::new(),
            residual: None,
        }
    }

    /// The problem with a residual added by the epilogue (`Output::Plus`): values of the
    /// outputs' size with NaN, ±0 and ±∞ among them.
    fn with_residual(mut self, seed: u64) -> ConvProblem {
        let mut r = XorShift(seed ^ 0x5A5A);
        let specials = [f32::NAN, -0.0, 0.0, f32::INFINITY, f32::NEG_INFINITY, 0.5];
        self.residual = Some(
            (0..self.out_len())
                .map(|_| match r.below(16) {
                    0 => specials[r.below(specials.len() as u64) as usize],
                    _ => r.f32_in(-30.0, 30.0),
                })
                .collect(),
        );
        self
    }

    /// A problem writing `Output::Pixels` of block `s`: outputs scaled to about -0.5..1.5 (so
    /// the clip, the rounding and the anchor all matter), anchors in -0.2..1.2 with NaN, ±0 and
    /// halfway values among them.
    fn pixels(g: ConvGeom, u16_input: bool, s: usize, act_kind: usize, seed: u64) -> ConvProblem {
        let mut p = ConvProblem::random(g, u16_input, g.in_c, g.out_c, 0, act_kind, seed);
        let c = g.out_c / (s * s);
        assert_eq!(c * s * s, g.out_c, "out_c = S²·C");
        p.out = OutKind::Pixels { block: s };
        p.out_ps = g.out_c;
        for (m, o) in p.mult.iter_mut().zip(p.offset.iter_mut()) {
            *m /= 50.0;
            *o = *o / 40.0 + 0.5;
        }
        let mut r = XorShift(seed ^ 0xA5A5);
        let specials = [f32::NAN, -0.0, 0.0, 0.5 / 255.0, 127.5 / 255.0, 2.0, -1.0];
        p.anchor = (0..g.out_h() * g.out_w() * c)
            .map(|_| match r.below(16) {
                0 => specials[r.below(specials.len() as u64) as usize],
                _ => r.f32_in(-0.2, 1.2),
            })
            .collect();
        p
    }

    fn anchor_rows(&self) -> &[f32] {
        let c = match self.out {
            OutKind::Pixels { block } => self.g.out_c / (block * block),
            _ => 0,
        };
        &self.anchor[self.rows.start * self.g.out_w() * c..]
    }

    fn out_len(&self) -> usize {
        self.rows.len() * self.g.out_w() * self.out_ps
    }

    fn sentinel(&self) -> OutBuf {
        let n = self.out_len();
        match self.out {
            OutKind::F32 => OutBuf::F32(vec![f32::NAN.to_bits() ^ 0x55; n]),
            OutKind::U8 { .. } | OutKind::Pixels { .. } => OutBuf::U8(vec![0xA5; n]),
            OutKind::U16 { .. } => OutBuf::U16(vec![0xA5A5; n]),
        }
    }

    /// The naive direct convolution from the spec: ONNX-order weights, i64 accumulation, the
    /// epilogue spelled out step by step.
    fn reference(&self) -> OutBuf {
        let g = &self.g;
        let (out_h, out_w) = (g.out_h(), g.out_w());
        assert!(self.rows.end <= out_h);
        let icpg = g.in_c / g.groups;
        let ocpg = g.out_c / g.groups;
        let mut buf = self.sentinel();
        for oy in self.rows.clone() {
            for ox in 0..out_w {
                for oc in 0..g.out_c {
                    let grp = oc / ocpg;
                    let (mut lo, mut hi) = (0i64, 0i64);
                    for ic in 0..icpg {
                        for ky in 0..g.kh {
                            for kx in 0..g.kw {
                                let w =
                                    self.weights[((oc * icpg + ic) * g.kh + ky) * g.kw + kx] as i64;
                                let iy =
                                    (oy * g.stride + ky * g.dilation) as i64 - g.pad_top as i64;
                                let ix =
                                    (ox * g.stride + kx * g.dilation) as i64 - g.pad_left as i64;
                                let x = if iy >= 0
                                    && iy < g.in_h as i64
                                    && ix >= 0
                                    && ix < g.in_w as i64
                                {
                                    self.input[(iy as usize * g.in_w + ix as usize) * self.in_ps
                                        + grp * icpg
                                        + ic]
                                } else {
                                    self.pad
                                } as i64;
                                if self.u16_input {
                                    lo += (x & 0xff) * w;
                                    hi += (x >> 8) * w;
                                } else {
                                    lo += x * w;
                                }
                            }
                        }
                    }
                    let lo = i32::try_from(lo).expect("exact i32 accumulation");
                    let hi = i32::try_from(hi).expect("exact i32 accumulation");
                    let v = if self.u16_input {
                        (hi as f32) * 256.0 + lo as f32
                    } else {
                        lo as f32
                    };
                    let mut y = v * self.mult[oc];
                    y += self.offset[oc];
                    let slope = match &self.act {
                        Activation::None => 1.0,
                        Activation::Relu => 0.0,
                        Activation::Leaky(a) => *a,
                        Activation::PRelu(a) => a[oc],
                    };
                    if y < 0.0 {
                        y = if matches!(self.act, Activation::Relu) {
                            0.0
                        } else {
                            y * slope
                        };
                    }
                    let at = ((oy - self.rows.start) * out_w + ox) * self.out_ps + oc;
                    if let Some(r) = &self.residual {
                        y += r[at];
                    }
                    let q = |scale: f32, zero: f32, qmax: f32| {
                        let t = (y * scale).round_ties_even();
                        let q = t - zero;
                        if q.is_nan() { 0.0 } else { q.clamp(0.0, qmax) }
                    };
                    match (&mut buf, self.out) {
                        (OutBuf::F32(b), _) => b[at] = y.to_bits(),
                        (OutBuf::U8(b), OutKind::U8 { scale, zero }) => {
                            b[at] = q(scale, zero, 255.0) as u8
                        }
                        (OutBuf::U16(b), OutKind::U16 { scale, zero }) => {
                            b[at] = q(scale, zero, 65535.0) as u16
                        }
                        (OutBuf::U8(b), OutKind::Pixels { block: s }) => {
                            // Depth-to-space (DCR) of pixel (oy, ox), plus the anchor.
                            let c = g.out_c / (s * s);
                            let (i, j, ch) = (oc / (s * c), (oc / c) % s, oc % c);
                            let y0 = oy - self.rows.start;
                            let a = self.anchor[(oy * out_w + ox) * c + ch];
                            let at = ((s * y0 + i) * s * out_w + s * ox + j) * c + ch;
                            b[at] = nawqsr_codec::tensor::to_u8_pixel(y + a);
                        }
                        _ => unreachable!(),
                    }
                }
            }
        }
        buf
    }

    fn run(&self, level: CpuLevel, w: &PackedConv) -> OutBuf {
        self.run_on(Kernel::Level(level), w)
    }

    fn run_on(&self, kernel: Kernel, w: &PackedConv) -> OutBuf {
        match (self.sentinel(), self.out) {
            (OutBuf::F32(b), _) => {
                let mut data: Vec<f32> = b.iter().map(|&x| f32::from_bits(x)).collect();
                self.call(
                    kernel,
                    w,
                    Output::F32 {
                        data: &mut data,
                        pixel_stride: self.out_ps,
                    },
                );
                OutBuf::F32(data.iter().map(|x| x.to_bits()).collect())
            }
            (OutBuf::U8(mut data), OutKind::U8 { scale, zero }) => {
                self.call(
                    kernel,
                    w,
                    Output::U8 {
                        data: &mut data,
                        pixel_stride: self.out_ps,
                        scale,
                        zero,
                    },
                );
                OutBuf::U8(data)
            }
            (OutBuf::U16(mut data), OutKind::U16 { scale, zero }) => {
                self.call(
                    kernel,
                    w,
                    Output::U16 {
                        data: &mut data,
                        pixel_stride: self.out_ps,
                        scale,
                        zero,
                    },
                );
                OutBuf::U16(data)
            }
            (OutBuf::U8(mut data), OutKind::Pixels { block }) => {
                self.call(
                    kernel,
                    w,
                    Output::Pixels {
                        data: &mut data,
                        anchor: self.anchor_rows(),
                        block,
                        channels: self.g.out_c / (block * block),
                        width: self.g.out_w(),
                    },
                );
                OutBuf::U8(data)
            }
            _ => unreachable!(),
        }
    }

    fn call(&self, kernel: Kernel, w: &PackedConv, out: Output) {
        let out = match &self.residual {
            Some(r) => Output::Plus {
                residual: r,
                out: Box::new(out),
            },
            None => out,
        };
        let epi = Epilogue {
            mult: &self.mult,
            offset: &self.offset,
            act: &self.act,
        };
        if let Kernel::AmxModel = kernel {
            let rows = self.rows.clone();
            if self.u16_input {
                conv_u16_amx_model(
                    &self.g,
                    &self.input,
                    self.in_ps,
                    self.pad,
                    w,
                    &epi,
                    rows,
                    out,
                );
            } else {
                let input: Vec<u8> = self.input.iter().map(|&x| x as u8).collect();
                conv_u8_amx_model(
                    &self.g,
                    &input,
                    self.in_ps,
                    self.pad as u8,
                    w,
                    &epi,
                    rows,
                    out,
                );
            }
            return;
        }
        let Kernel::Level(level) = kernel else {
            unreachable!()
        };
        if self.u16_input {
            conv_u16(
                level,
                &self.g,
                &self.input,
                self.in_ps,
                self.pad,
                w,
                &epi,
                self.rows.clone(),
                out,
            );
        } else {
            let input: Vec<u8> = self.input.iter().map(|&x| x as u8).collect();
            conv_u8(
                level,
                &self.g,
                &input,
                self.in_ps,
                self.pad as u8,
                w,
                &epi,
                self.rows.clone(),
                out,
            );
        }
    }

    fn packed(&self) -> PackedConv {
        let g = &self.g;
        PackedConv::new(
            &self.weights,
            g.out_c,
            g.in_c / g.groups,
            g.kh,
            g.kw,
            g.groups,
        )
    }

    /// Scalar == reference, and every supported level == scalar, bit for bit.
    fn check(&self) -> Result<(), TestCaseError> {
        let w = self.packed();
        let scalar = self.run(CpuLevel::Scalar, &w);
        prop_assert!(
            scalar == self.reference(),
            "scalar differs from the reference for {:?}",
            self.g
        );
        for level in CpuLevel::supported() {
            let got = self.run(level, &w);
            if got != scalar {
                let at = first_diff(&got, &scalar);
                return Err(TestCaseError::fail(format!(
                    "{level:?} differs from scalar at element {at:?} for {:?}",
                    self.g
                )));
            }
            LEVELS_RUN.lock().unwrap().insert(level);
        }
        // The AMX driver under the tile-unit model, on every host with AVX2 (its epilogue).
        if CpuLevel::host_max() >= CpuLevel::Avx2 {
            let got = self.run_on(Kernel::AmxModel, &w);
            if got != scalar {
                let at = first_diff(&got, &scalar);
                return Err(TestCaseError::fail(format!(
                    "the AMX driver (tile model) differs from scalar at element {at:?} for {:?}",
                    self.g
                )));
            }
        }
        Ok(())
    }
}

/// What computes a problem: a CPU level's kernels, or the AMX driver with the tile instructions
/// run by the software model of the tile unit (`conv_u8_amx_model`).
#[derive(Debug, Clone, Copy)]
enum Kernel {
    Level(CpuLevel),
    AmxModel,
}

fn first_diff(a: &OutBuf, b: &OutBuf) -> Option<(usize, String, String)> {
    fn d<T: PartialEq + std::fmt::Debug>(a: &[T], b: &[T]) -> Option<(usize, String, String)> {
        let i = a.iter().zip(b).position(|(x, y)| x != y)?;
        Some((i, format!("{:?}", a[i]), format!("{:?}", b[i])))
    }
    match (a, b) {
        (OutBuf::F32(a), OutBuf::F32(b)) => d(a, b),
        (OutBuf::U8(a), OutBuf::U8(b)) => d(a, b),
        (OutBuf::U16(a), OutBuf::U16(b)) => d(a, b),
        _ => None,
    }
}

#[test]
fn every_level_matches_scalar_and_scalar_matches_reference() {
    let mut runner = TestRunner::new(Config {
        cases: 400,
        ..Config::default()
    });
    runner.run(&ConvProblem::strategy(), |p| p.check()).unwrap();
}

/// Convs on 1–4 input channels with a spatial kernel, which the VNNI and AVX2 levels run as a
/// 1×1 conv over an im2col band (`pack::im2col`): every geometry (strides, dilations, uneven
/// pads, pixel strides past in_c, partial row ranges), u8 and u16, against scalar.
#[test]
fn few_channel_im2col_convs_match_scalar() {
    let mut runner = TestRunner::new(Config {
        cases: 300,
        ..Config::default()
    });
    // The general strategy's pieces, narrowed (filtering it would keep ~4 % of its cases).
    let strat = (
        1..=4usize,
        1..=40usize,
        (1..=9usize, 1..=13usize),
        (
            prop_oneof![Just(1usize), Just(3), Just(5)],
            prop_oneof![Just(1usize), Just(3), Just(5)],
        ),
        (1..=3usize, 1..=2usize),
        (0..=2usize, 0..=2usize, 0..=2usize, 0..=2usize),
        (0..=3usize, 0..=3usize),
        (any::<bool>(), 0..3usize, 0..4usize),
        any::<u64>(),
    )
        .prop_filter("spatial kernel", |t| t.3.0 * t.3.1 > 1)
        .prop_map(
            |(
                in_c,
                out_c,
                (in_h, in_w),
                (kh, kw),
                (stride, dilation),
                pads,
                extra,
                kinds,
                seed,
            )| {
                let (pad_top, pad_left, mut pad_bottom, mut pad_right) = pads;
                ceil_out(in_h, pad_top, &mut pad_bottom, kh, dilation);
                ceil_out(in_w, pad_left, &mut pad_right, kw, dilation);
                let g = ConvGeom {
                    in_h,
                    in_w,
                    in_c,
                    out_c,
                    kh,
                    kw,
                    stride,
                    dilation,
                    pad_top,
                    pad_left,
                    pad_bottom,
                    pad_right,
                    groups: 1,
                };
                let (u16_input, out_kind, act_kind) = kinds;
                ConvProblem::random(
                    g,
                    u16_input,
                    in_c + extra.0,
                    out_c + extra.1,
                    out_kind,
                    act_kind,
                    seed,
                )
            },
        );
    runner.run(&strat, |p| p.check()).unwrap();
}

/// The hot shapes at a small frame size, every output kind and activation, u8 and u16.
#[test]
fn hot_shapes_match_scalar() {
    let shapes = [
        (3, 64, 3),
        (64, 64, 3),
        (48, 64, 3),
        (48, 16, 3),
        (64, 64, 1),
        (64, 48, 3),
        (16, 27, 3),
        (12, 12, 3),
        (64, 12, 1),
        // im2col (1–3 input channels) on the VNNI path, paired and not.
        (1, 16, 3),
        (1, 64, 5),
        (2, 27, 3),
        (3, 12, 3),
        // More than 4 channel blocks (two AMX passes), K of several tiles.
        (32, 80, 3),
        (19, 70, 3),
        // Narrow outputs on the VNNI quad layout (1 and 2 lines; padded K; im2col; 1×1).
        (16, 4, 3),
        (32, 1, 3),
        (16, 8, 3),
        (12, 6, 3),
        (24, 7, 1),
        (1, 4, 3),
        (3, 3, 5),
    ];
    each_case(&shapes, 1, |g, u16_input, out_kind, seed| {
        let (ic, oc) = (g.in_c, g.out_c);
        ConvProblem::random(g, u16_input, ic, oc, out_kind, (seed % 4) as usize, seed)
    });
}

/// Every `(in_c, out_c, k)` shape at three small frame sizes, u8 and u16 input, each output
/// kind (F32, U8, U16), each case with its own seed: the problem `make` builds, checked.
fn each_case(
    shapes: &[(usize, usize, usize)],
    mut seed: u64,
    mut make: impl FnMut(ConvGeom, bool, usize, u64) -> ConvProblem,
) {
    for &(ic, oc, k) in shapes {
        for (h, w) in [(9, 23), (1, 1), (2, 37)] {
            for u16_input in [false, true] {
                for out_kind in 0..3 {
                    seed += 1;
                    let g = ConvGeom::same(h, w, ic, oc, k);
                    make(g, u16_input, out_kind, seed).check().unwrap();
                }
            }
        }
    }
}

/// A residual added by the epilogue (`Output::Plus`, IMDN's adds): every level and the AMX
/// driver equal scalar and the reference, f32 and quantized outputs, every activation, the
/// wide tiles and the narrow layouts (through f32), pixel strides past out_c.
#[test]
fn residual_outputs_match_scalar() {
    let shapes = [
        (64, 64, 1),
        (64, 64, 3),
        (16, 16, 3),
        (16, 12, 3),
        (3, 16, 3),
        (48, 70, 3),
        (16, 4, 3),
        (8, 3, 1),
    ];
    each_case(&shapes, 101, |g, u16_input, out_kind, seed| {
        let (ic, oc) = (g.in_c, g.out_c);
        let (extra, act) = ((seed % 3) as usize, (seed % 4) as usize);
        ConvProblem::random(g, u16_input, ic, oc + extra, out_kind, act, seed).with_residual(seed)
    });
}

/// The nawq models' tail in the epilogue (`Output::Pixels`: depth-to-space, anchor, u8): every
/// level, and the AMX driver, equal scalar and the definition. Blocks 2–4 on 3-channel pixels
/// (x2's 12 channels, x4's 48 in three blocks, more than 64 in two chunks), the first conv's
/// im2col shape, and 1- or 2-channel pixels (the narrow layouts, through f32).
#[test]
fn pixel_outputs_match_scalar() {
    let shapes = [
        (16, 2, 3, 3),
        (16, 4, 3, 3),
        (16, 3, 3, 3),
        (3, 2, 3, 3),
        (64, 4, 3, 1),
        (8, 5, 3, 3),
        (16, 2, 1, 3),
        (12, 2, 2, 3),
        (16, 2, 4, 3),
    ];
    let mut seed = 11u64;
    for (ic, s, c, k) in shapes {
        for (h, w) in [(9, 23), (1, 1), (2, 37), (5, 4)] {
            for u16_input in [false, true] {
                for act in [0, 1, 3] {
                    seed += 1;
                    let g = ConvGeom::same(h, w, ic, s * s * c, k);
                    ConvProblem::pixels(g, u16_input, s, act, seed)
                        .check()
                        .unwrap();
                }
            }
        }
    }
}

/// Power-of-two scales: the epilogue is exact, so the result must equal integer arithmetic
/// (round half to even of acc·2^-s, plus an integer offset, clamped).
#[test]
fn power_of_two_scales_are_exact() {
    let mut r = XorShift(7);
    for case in 0..60 {
        let (ic, oc) = (1 + r.below(40) as usize, 1 + r.below(40) as usize);
        let g = ConvGeom::same(
            1 + r.below(7) as usize,
            1 + r.below(9) as usize,
            ic,
            oc,
            [1, 3][case % 2],
        );
        let u16_input = case % 3 == 0;
        let mut p = ConvProblem::random(g, u16_input, ic, oc, 1 + case % 2, 0, r.next());
        p.rows = 0..g.out_h();
        if u16_input {
            // Keep |acc| < 2^24 so that hi·256 + lo is exact in f32 (K ≤ 360 here).
            p.input.iter_mut().for_each(|x| *x %= 4096);
            p.pad %= 4096;
            p.weights.iter_mut().for_each(|w| *w %= 4);
        }
        let shift = 4 + r.below(12) as i32;
        p.mult = vec![2f32.powi(-shift); oc];
        p.offset = (0..oc).map(|_| r.below(64) as f32 - 32.0).collect();
        p.out = match p.out {
            OutKind::U8 { .. } => OutKind::U8 {
                scale: 1.0,
                zero: -100.0,
            },
            _ => OutKind::U16 {
                scale: 1.0,
                zero: -30000.0,
            },
        };
        let (qmax, zero) = if matches!(p.out, OutKind::U8 { .. }) {
            (255i64, -100i64)
        } else {
            (65535, -30000)
        };
        let w = p.packed();
        let got = p.run(CpuLevel::Scalar, &w);
        // Integer-only expectation (independent of any float rounding).
        let acc = exact_accumulators(&p);
        let expect: Vec<i64> = acc
            .iter()
            .enumerate()
            .map(|(i, &a)| {
                let oc_i = i % oc;
                (round_half_even_shift(a + ((p.offset[oc_i] as i64) << shift), shift) - zero)
                    .clamp(0, qmax)
            })
            .collect();
        let got: Vec<i64> = match got {
            OutBuf::U8(b) => b.iter().map(|&x| x as i64).collect(),
            OutBuf::U16(b) => b.iter().map(|&x| x as i64).collect(),
            OutBuf::F32(_) => unreachable!(),
        };
        assert_eq!(got, expect, "case {case}: {g:?}");
        p.check().unwrap();
    }
}

/// acc·2^-shift rounded half to even, in integers.
fn round_half_even_shift(a: i64, shift: i32) -> i64 {
    let d = 1i64 << shift;
    let q = a.div_euclid(d);
    let r = a.rem_euclid(d);
    match (2 * r).cmp(&d) {
        std::cmp::Ordering::Less => q,
        std::cmp::Ordering::Greater => q + 1,
        std::cmp::Ordering::Equal => q + (q & 1),
    }
}

/// Full-range accumulators of a stride-1 groups-1 problem with all rows and out_ps == out_c.
fn exact_accumulators(p: &ConvProblem) -> Vec<i64> {
    let g = &p.g;
    let mut acc = Vec::new();
    for oy in 0..g.out_h() {
        for ox in 0..g.out_w() {
            for oc in 0..g.out_c {
                let mut s = 0i64;
                for ic in 0..g.in_c {
                    for ky in 0..g.kh {
                        for kx in 0..g.kw {
                            let iy = (oy + ky) as i64 - g.pad_top as i64;
                            let ix = (ox + kx) as i64 - g.pad_left as i64;
                            let x =
                                if iy >= 0 && iy < g.in_h as i64 && ix >= 0 && ix < g.in_w as i64 {
                                    p.input[(iy as usize * g.in_w + ix as usize) * p.in_ps + ic]
                                } else {
                                    p.pad
                                } as i64;
                            s += x * p.weights[((oc * g.in_c + ic) * g.kh + ky) * g.kw + kx] as i64;
                        }
                    }
                }
                acc.push(s);
            }
        }
    }
    acc
}

/// Ties round to even: a 1×1 conv with weight 1 and mult 0.5 gives y = x/2.
#[test]
fn requantization_ties_round_to_even() {
    let g = ConvGeom::same(1, 256, 1, 1, 1);
    let input: Vec<u8> = (0..=255).collect();
    let w = PackedConv::new(&[1], 1, 1, 1, 1, 1);
    let act = Activation::None;
    let epi = Epilogue {
        mult: &[0.5],
        offset: &[0.0],
        act: &act,
    };
    for level in CpuLevel::supported() {
        let mut out = vec![0u8; 256];
        conv_u8(
            level,
            &g,
            &input,
            1,
            0,
            &w,
            &epi,
            0..1,
            Output::U8 {
                data: &mut out,
                pixel_stride: 1,
                scale: 1.0,
                zero: 0.0,
            },
        );
        for (x, &got) in out.iter().enumerate() {
            let expect = round_half_even_shift(x as i64, 1) as u8;
            assert_eq!(got, expect, "{level:?}: {x}/2");
        }
        // 0.5 → 0, 1.5 → 2, 2.5 → 2, 3.5 → 4.
        assert_eq!(&out[1..8], &[0, 1, 2, 2, 2, 3, 4]);
    }
    // A16W8: x = 3·256 + 1 → v = 769, y = 384.5 → 384.
    let w16 = PackedConv::new(&[1], 1, 1, 1, 1, 1);
    for level in CpuLevel::supported() {
        let mut out = vec![0u16; 2];
        conv_u16(
            level,
            &ConvGeom::same(1, 2, 1, 1, 1),
            &[769, 771],
            1,
            0,
            &w16,
            &epi,
            0..1,
            Output::U16 {
                data: &mut out,
                pixel_stride: 1,
                scale: 1.0,
                zero: 0.0,
            },
        );
        assert_eq!(out, [384, 386], "{level:?}");
    }
}

/// The extreme accumulator magnitudes: all-255 input × all-±127 weights with a large K.
#[test]
fn extreme_accumulators_are_exact() {
    for (u16_input, wv) in [(false, 127i8), (false, -127), (true, 127), (true, -127)] {
        let g = ConvGeom::same(4, 5, 64, 20, 5);
        let mut p = ConvProblem::random(g, u16_input, 64, 20, 0, 0, 99);
        p.input
            .iter_mut()
            .for_each(|x| *x = if u16_input { 65535 } else { 255 });
        p.pad = if u16_input { 65535 } else { 255 };
        p.weights.iter_mut().for_each(|w| *w = wv);
        p.mult = vec![1.0; 20];
        p.offset = vec![0.0; 20];
        p.check().unwrap();
    }
}

/// -0.0 and NaN take the same path on every level: ReLU keeps -0.0 and NaN (`if y < 0`),
/// requantization sends NaN to 0.
#[test]
fn signed_zero_and_nan_are_consistent() {
    let g = ConvGeom::same(3, 17, 5, 20, 3);
    let w = PackedConv::new(&vec![0i8; 20 * 5 * 9], 20, 5, 3, 3, 1);
    let input = vec![7u8; 3 * 17 * 5];
    // acc = 0; 0 * (-1) = -0.0; -0.0 + -0.0 = -0.0 (channels 0..10); NaN mult (channels 10..20).
    let mult: Vec<f32> = (0..20)
        .map(|c| if c < 10 { -1.0 } else { f32::NAN })
        .collect();
    let offset = vec![-0.0f32; 20];
    for act in [Activation::Relu, Activation::Leaky(0.5), Activation::None] {
        let epi = Epilogue {
            mult: &mult,
            offset: &offset,
            act: &act,
        };
        for level in CpuLevel::supported() {
            let run = |out: Output| conv_u8(level, &g, &input, 5, 0, &w, &epi, 0..3, out);
            let mut out = vec![1.0f32; 3 * 17 * 20];
            run(Output::F32 {
                data: &mut out,
                pixel_stride: 20,
            });
            for (i, y) in out.iter().enumerate() {
                if i % 20 < 10 {
                    assert_eq!(y.to_bits(), (-0.0f32).to_bits(), "{level:?} {act:?}");
                } else {
                    assert!(y.is_nan(), "{level:?} {act:?}");
                }
            }
            // -0.0 requantizes to −zero; NaN to 0. With zero 0 the SIMD levels leave the
            // ReLU to the clamp (`clamp_is_relu`): every value 0.
            for zero in [-3.0f32, 0.0] {
                let mut q = vec![9u8; 3 * 17 * 20];
                run(Output::U8 {
                    data: &mut q,
                    pixel_stride: 20,
                    scale: 1.0,
                    zero,
                });
                for (i, &v) in q.iter().enumerate() {
                    let want = if i % 20 < 10 { -zero as u8 } else { 0 };
                    assert_eq!(v, want, "{level:?} {act:?}, zero {zero}");
                }
            }
        }
    }
}

/// Frames wide enough that the SIMD paths split the rows into several padded bands (the
/// property test's small images always fit in one), with row ranges starting mid-band.
/// Values past the integer range: a requantized value of 2³¹ or more (or +∞)
/// clamps to qmax on every level, as the scalar clamp does (the VNNI level
/// leaves that clamp to its stores' unsigned saturation, where such a value
/// arrives as 0x8000_0000), with and without a zero point, 8- and 16-bit.
#[test]
fn huge_values_clamp_at_qmax() {
    let specials = [
        1e10f32,
        f32::INFINITY,
        3e9,
        2147483648.0,
        2147483520.0,
        65535.5,
        70000.0,
        256.0,
        255.5,
        254.5,
        -1e10,
        f32::NEG_INFINITY,
        f32::NAN,
        -0.0,
        0.5,
        1.5,
    ];
    let oc = specials.len();
    let g = ConvGeom::same(2, 19, 4, oc, 3);
    let w = PackedConv::new(&vec![0i8; oc * 4 * 9], oc, 4, 3, 3, 1);
    let input = vec![9u8; 2 * 19 * 4];
    // acc = 0, so y = 0 · 1 + offset = offset.
    let mult = vec![1.0f32; oc];
    let act = Activation::None;
    let epi = Epilogue {
        mult: &mult,
        offset: &specials,
        act: &act,
    };
    let n = 2 * 19 * oc;
    for zero in [0.0f32, -2.0, 3.0] {
        let run8 = |level| {
            let mut q = vec![7u8; n];
            conv_u8(
                level,
                &g,
                &input,
                4,
                0,
                &w,
                &epi,
                0..2,
                Output::U8 {
                    data: &mut q,
                    pixel_stride: oc,
                    scale: 1.0,
                    zero,
                },
            );
            q
        };
        let run16 = |level| {
            let mut q = vec![7u16; n];
            conv_u8(
                level,
                &g,
                &input,
                4,
                0,
                &w,
                &epi,
                0..2,
                Output::U16 {
                    data: &mut q,
                    pixel_stride: oc,
                    scale: 1.0,
                    zero,
                },
            );
            q
        };
        let (want8, want16) = (run8(CpuLevel::Scalar), run16(CpuLevel::Scalar));
        assert_eq!(want8[0], 255, "1e10 clamps to 255");
        assert_eq!(want16[1], 65535, "+inf clamps to 65535");
        for level in CpuLevel::supported() {
            assert_eq!(run8(level), want8, "{level:?} u8, zero {zero}");
            assert_eq!(run16(level), want16, "{level:?} u16, zero {zero}");
        }
    }
}

#[test]
fn multi_band_frames_match_scalar() {
    let mut seed = 1000;
    for (ic, oc, k, stride, dilation) in [
        (64, 20, 3, 1, 1),
        (48, 16, 3, 2, 1),
        (24, 35, 5, 1, 2),
        (64, 64, 1, 1, 1),
        // The bundled models' first convs (im2col bands), and strided / dilated ones.
        (3, 16, 3, 1, 1),
        (3, 32, 3, 1, 1),
        (3, 24, 3, 2, 1),
        (1, 20, 5, 1, 2),
    ] {
        for u16_input in [false, true] {
            seed += 1;
            let p = (k / 2) * dilation;
            let g = ConvGeom {
                stride,
                dilation,
                pad_top: p,
                pad_left: p,
                pad_bottom: p,
                pad_right: p,
                ..ConvGeom::same(30, 300, ic, oc, k)
            };
            let mut prob = ConvProblem::random(
                g,
                u16_input,
                ic + 1,
                oc + 3,
                (seed % 3) as usize,
                (seed % 4) as usize,
                seed,
            );
            prob.rows = 3..g.out_h() - 2;
            prob.check().unwrap();
        }
    }
}

/// No input channels (K = 0: the epilogue of 0) and no output channels, on every level.
#[test]
fn degenerate_channel_counts() {
    for level in CpuLevel::supported() {
        let act = Activation::None;
        let g = ConvGeom::same(2, 3, 0, 4, 3);
        let w = PackedConv::new(&[], 4, 0, 3, 3, 1);
        let epi = Epilogue {
            mult: &[1.0; 4],
            offset: &[1.5, -2.0, 0.0, 7.0],
            act: &act,
        };
        let mut out = vec![9.0f32; 2 * 3 * 4];
        conv_u8(
            level,
            &g,
            &[],
            0,
            0,
            &w,
            &epi,
            0..2,
            Output::F32 {
                data: &mut out,
                pixel_stride: 4,
            },
        );
        assert!(
            out.chunks(4).all(|px| px == [1.5, -2.0, 0.0, 7.0]),
            "{level:?}"
        );
        let g = ConvGeom::same(2, 3, 5, 0, 3);
        let w = PackedConv::new(&[], 0, 5, 3, 3, 1);
        let epi = Epilogue {
            mult: &[],
            offset: &[],
            act: &act,
        };
        conv_u16(
            level,
            &g,
            &[0; 30],
            5,
            0,
            &w,
            &epi,
            0..2,
            Output::U16 {
                data: &mut [],
                pixel_stride: 0,
                scale: 1.0,
                zero: 0.0,
            },
        );
    }
}

/// Pinned regressions (`bug_N`) found by the property test go here.
#[test]
fn bug_1_one_by_one_image_depthwise() {
    let g = ConvGeom {
        groups: 5,
        ..ConvGeom::same(1, 1, 5, 10, 3)
    };
    ConvProblem::random(g, true, 7, 11, 2, 3, 5)
        .check()
        .unwrap();
}

#[test]
fn env_level_parsing() {
    assert_eq!(CpuLevel::parse("AVX2"), Some(CpuLevel::Avx2));
    assert_eq!(CpuLevel::parse("avx512vnni"), Some(CpuLevel::Avx512Vnni));
    assert_eq!(CpuLevel::parse("amx"), Some(CpuLevel::Amx));
    assert_eq!(CpuLevel::parse("scalar"), Some(CpuLevel::Scalar));
    assert_eq!(CpuLevel::parse("sse"), None);
    let host = CpuLevel::Avx512Vnni;
    assert_eq!(CpuLevel::lowered(host, Some("avx2")), CpuLevel::Avx2);
    assert_eq!(
        CpuLevel::lowered(host, Some("amx")),
        host,
        "may lower, never raise"
    );
    assert_eq!(CpuLevel::lowered(host, Some("bogus")), host);
    assert_eq!(CpuLevel::lowered(host, None), host);
    assert!(CpuLevel::detect() <= CpuLevel::host_max());
    assert!(CpuLevel::Scalar < CpuLevel::Avx2 && CpuLevel::Avx2 < CpuLevel::Avx512Vnni);
}

#[test]
fn packed_conv_reports_sums_and_memory() {
    let w: Vec<i8> = (0..2 * 3 * 9).map(|i| (i % 7) as i8 - 3).collect();
    let p = PackedConv::new(&w, 2, 3, 3, 3, 1);
    assert_eq!(
        p.wsum(),
        &[
            w[..27].iter().map(|&x| x as i32).sum::<i32>(),
            w[27..].iter().map(|&x| x as i32).sum()
        ]
    );
    assert!(p.bytes() >= w.len());
}

/// matrixmultiply's `ensure_target_features_tested`: every level this host has must be in
/// `supported()` and must have been run by the bit-exactness tests above.
#[test]
fn ensure_all_host_levels_tested() {
    // Run a few problems here too, so this test does not depend on test ordering.
    let mut runner = TestRunner::new(Config {
        cases: 24,
        ..Config::default()
    });
    runner.run(&ConvProblem::strategy(), |p| p.check()).unwrap();
    let ran = LEVELS_RUN.lock().unwrap().clone();
    let supported = CpuLevel::supported();
    let host_has = |l: CpuLevel| -> bool {
        match l {
            CpuLevel::Scalar => true,
            CpuLevel::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            CpuLevel::Avx512Vnni => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                    && std::arch::is_x86_feature_detected!("avx512vnni")
            }
            // AMX also needs the OS permission: only the detection itself can tell.
            CpuLevel::Amx => CpuLevel::host_max() == CpuLevel::Amx,
        }
    };
    for l in CpuLevel::ALL {
        if host_has(l) {
            assert!(
                supported.contains(&l),
                "host has {l:?} but supported() omits it"
            );
            assert!(
                ran.contains(&l),
                "host has {l:?} but the bit-exactness tests skipped it"
            );
            eprintln!(
                "kernel level {:<10} tested ({})",
                l.name(),
                l.kernel_description()
            );
        } else {
            assert!(
                !supported.contains(&l),
                "supported() lists {l:?} the host lacks"
            );
            eprintln!("kernel level {:<10} SKIPPED: this host lacks it", l.name());
        }
    }
}

/// `cargo test --release -p nawqsr-codec --test kernels -- --ignored --nocapture bench_table`
///
/// Single thread, 320×180, random data, ReLU, INT8 → u8 output, A16W8 → u16 output, timed in
/// thread CPU time. GMAC/s at the median run and at the best run; "% peak" compares the best run
/// with the level's peak (itself a best of three), the fairer pair on a shared machine.
#[test]
#[ignore]
fn bench_table() {
    let shapes = [
        (64, 64, 3),
        (48, 64, 3),
        (48, 16, 3),
        (64, 64, 1),
        (3, 64, 3),
        (64, 48, 3),
    ];
    println!(
        "| level | conv @320x180 | INT8 GMAC/s median (best) | INT8 % peak | A16W8 GMAC/s median (best) | A16W8 % peak16 | A16W8/INT8 time |"
    );
    println!("|---|---|---|---|---|---|---|");
    for level in CpuLevel::supported() {
        let peak = measure_peak(level);
        for (ic, oc, k) in shapes {
            let g = ConvGeom::same(180, 320, ic, oc, k);
            let b8 = bench_conv(level, &g, false, 0.5);
            let b16 = bench_conv(level, &g, true, 0.5);
            let best = |b: &nawqsr_codec::kernels::bench::ConvBench| b.macs as f64 / b.min_s / 1e9;
            println!(
                "| {} | {k}x{k} {ic}->{oc} | {:.1} ({:.1}) | {:.0} % | {:.1} ({:.1}) | {:.0} % | {:.2} |",
                level.name(),
                b8.gmacs,
                best(&b8),
                100.0 * best(&b8) * 1e9 / peak.int8_macs_per_s,
                b16.gmacs,
                best(&b16),
                100.0 * best(&b16) * 1e9 / peak.int16_macs_per_s,
                b16.median_s / b8.median_s
            );
        }
        println!(
            "| {} | peak (register-only loop) | {:.1} | | {:.1} | | |",
            level.name(),
            peak.int8_macs_per_s / 1e9,
            peak.int16_macs_per_s / 1e9
        );
    }
}

/// One conv for profiling: `KERNELS_BENCH=in_c,out_c,k,u16(0|1)[,level[,WxH]] cargo test
/// --release -p nawqsr-codec --test kernels -- --ignored --nocapture bench_one` (default
/// 320x180, 3 s).
#[test]
#[ignore]
fn bench_one() {
    let spec = std::env::var("KERNELS_BENCH").unwrap_or("64,64,3,0".into());
    let v: Vec<&str> = spec.split(',').collect();
    let usage = "KERNELS_BENCH=in_c,out_c,k,u16[,level[,WxH]]";
    let n = |i: usize| v[i].trim().parse::<usize>().expect(usage);
    let level = v
        .get(4)
        .map_or(CpuLevel::host_max(), |l| CpuLevel::parse(l).expect(usage));
    let (w, h) = v.get(5).map_or((320, 180), |s| {
        let (w, h) = s.split_once('x').expect(usage);
        (w.parse().expect(usage), h.parse().expect(usage))
    });
    let g = ConvGeom::same(h, w, n(0), n(1), n(2));
    let b = bench_conv(level, &g, n(3) == 1, 3.0);
    println!("{b:?}");
    println!(
        "median {:.1} GMAC/s, best {:.1} GMAC/s",
        b.gmacs,
        b.macs as f64 / b.min_s / 1e9
    );
}

/// On a CPU with AMX, the tile kernel must have passed its start-up self-test (hardware ==
/// software model), so that the AMX level is selected and the bit-exactness tests above run it.
#[test]
fn amx_hardware_passes_its_self_test() {
    if !amx_available() {
        eprintln!(
            "skipping: this CPU/OS has no AMX-INT8 (the AMX driver is tested under its model)"
        );
        return;
    }
    assert_eq!(
        CpuLevel::host_max(),
        CpuLevel::Amx,
        "AMX is present but the tile kernel disagreed with its software model at start-up"
    );
}
