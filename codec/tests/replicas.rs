//! Issue 16: published SR architectures brought as ONNX. The replicas in
//! `assets/test-models` (made by `tools/replicas/replicas.py`: random weights,
//! exported as the authors' code exports) each ship one ONNX Runtime output.
//! For each: the FP32 engine equals ONNX Runtime within 1e-4, every mode
//! runs, and the band executor equals the whole frame bit for bit.
use std::path::{Path, PathBuf};

use nawqsr_codec::engine::tiles::run_tiled;
use nawqsr_codec::engine::{Engine, Plan, Tensor};
use nawqsr_codec::kernels::CpuLevel;
use nawqsr_codec::model::import;
use nawqsr_codec::quant::Bits;

pub const REPLICAS: [&str; 9] = [
    "carn_m",
    "pan",
    "rfdn",
    "fsrcnn",
    "xlsr",
    "espcn",
    "ecbsr",
    "opzoo",
    "shuffle_rt",
];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/test-models")
}

/// One NCHW tensor of an `.io.bin` file, as HWC.
fn read_tensor(b: &[u8], at: &mut usize) -> Tensor {
    let u = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap()) as usize;
    let (c, h, w) = (u(*at), u(*at + 4), u(*at + 8));
    *at += 12;
    let f: Vec<f32> = b[*at..*at + 4 * c * h * w]
        .chunks_exact(4)
        .map(|x| f32::from_le_bytes(x.try_into().unwrap()))
        .collect();
    *at += 4 * c * h * w;
    let mut data = vec![0f32; c * h * w];
    for ch in 0..c {
        for p in 0..h * w {
            data[p * c + ch] = f[ch * h * w + p];
        }
    }
    Tensor { h, w, c, data }
}

fn io(name: &str) -> (Tensor, Tensor) {
    let b = std::fs::read(dir().join(format!("{name}.io.bin"))).expect("io.bin shipped");
    let mut at = 0;
    let x = read_tensor(&b, &mut at);
    let y = read_tensor(&b, &mut at);
    (x, y)
}

fn engine(name: &str) -> Engine {
    let g = import(&dir().join(format!("{name}.onnx")))
        .unwrap_or_else(|e| panic!("{name}: import failed: {e}"));
    Engine::new(g, CpuLevel::detect(), 2)
}

#[test]
fn fp32_equals_onnx_runtime() {
    for name in REPLICAS {
        let e = engine(name);
        let (x, want) = io(name);
        let got = e.run(&Plan::fp32(&e.graph), &x).unwrap();
        assert_eq!(
            (got.h, got.w, got.c),
            (want.h, want.w, want.c),
            "{name}: shape"
        );
        let worst = got
            .data
            .iter()
            .zip(&want.data)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        eprintln!("{name}: max |nawqsr fp32 − ORT| = {worst:.2e}");
        assert!(worst < 1e-4, "{name}: max abs difference {worst}");
    }
}

#[test]
fn every_mode_runs_and_bands_equal_the_whole_frame() {
    for name in REPLICAS {
        let e = engine(name);
        let (x, want) = io(name);
        let ranges = e.calibrate(std::slice::from_ref(&x)).unwrap();
        let int8 = Plan::uniform(&e.graph, &ranges, Bits::B8);
        let plans = [
            ("fp32", Plan::fp32(&e.graph)),
            ("fp32w8", Plan::fp32w8(&e.graph)),
            ("a16w8", int8.with_bits(Bits::B16)),
            ("dre", Plan::all_dre(&e.graph, Bits::B8)),
            ("int8", int8),
        ];
        for (mode, plan) in plans {
            let whole = e.run(&plan, &x).unwrap();
            assert_eq!((whole.h, whole.w, whole.c), (want.h, want.w, want.c));
            assert!(whole.data.iter().all(|v| v.is_finite()), "{name} {mode}");
            // Integer modes stay near the float output (random weights: a loose
            // bound that still catches a wrong layout or a wrong op).
            let err = whole
                .data
                .iter()
                .zip(&want.data)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            let span = want.data.iter().fold(0f32, |m, v| m.max(v.abs()));
            assert!(
                err <= 0.25 * span.max(0.1),
                "{name} {mode}: max error {err} (span {span})"
            );
            for rows in [1, 5, 8] {
                let banded = run_tiled(&e, &plan, &x, rows).unwrap();
                assert!(
                    banded
                        .data
                        .iter()
                        .zip(&whole.data)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{name} {mode}: bands of {rows} rows differ from the whole frame"
                );
            }
        }
    }
}

#[test]
fn a_frame_smaller_than_the_pooling_windows_is_an_error() {
    let e = engine("rfdn");
    let x = Tensor::zeros(8, 8, 3);
    let err = e.run(&Plan::fp32(&e.graph), &x).unwrap_err().to_string();
    assert!(err.contains("too small"), "{err}");
}

/// A luma model (ECBSR: its residual keeps Y in range) in the codec: the output's Y is the network's
/// output on the input's Y, and its chroma is the input's, bicubic-upscaled.
#[test]
fn luma_models_upscale_y_and_take_bicubic_chroma() {
    use nawqsr_codec::metrics::imresize::imresize_plane;
    use nawqsr_codec::runtime::{Codec, CodecConfig, Mode, luma};
    let (w, h) = (37u32, 29u32);
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (x * 7 % 256) as u8,
            (y * 9 % 256) as u8,
            ((x + y) * 5 % 256) as u8,
        ])
    });
    for mode in [Mode::Fp32, Mode::Int8] {
        let codec = Codec::new(&CodecConfig {
            model: Some(dir().join("ecbsr.onnx")),
            mode,
            threads: 2,
            patch_size: 8,
            ..Default::default()
        })
        .unwrap();
        let out = codec.upscale_rgb(&img).unwrap();
        assert_eq!(out.dimensions(), (2 * w, 2 * h));
        let lr = Tensor::from_rgb(&img);
        let ysr = codec.upscale_tensor(&luma::y_of(&lr)).unwrap();
        let (ow, oh) = (2 * w as usize, 2 * h as usize);
        let cb_lr: Vec<f32> = lr
            .data
            .chunks_exact(3)
            .map(|p| (128.0 - 37.797 * p[0] - 74.203 * p[1] + 112.0 * p[2]) / 255.0)
            .collect();
        let cb_up = imresize_plane(&cb_lr, w as usize, h as usize, ow, oh);
        let (mut worst_y, mut worst_cb, mut n) = (0f32, 0f32, 0usize);
        for (i, p) in out.pixels().enumerate() {
            let [r, g, b] = p.0.map(|v| v as f32 / 255.0);
            let y = 16.0 + 65.481 * r + 128.553 * g + 24.966 * b;
            let cb = 128.0 - 37.797 * r - 74.203 * g + 112.0 * b;
            // Pixels whose RGB clipped to 0 or 255 cannot carry their Y and Cb.
            if p.0.iter().any(|&v| v == 0 || v == 255) {
                continue;
            }
            n += 1;
            worst_y = worst_y.max((y - ysr.data[i] * 255.0).abs());
            worst_cb = worst_cb.max((cb - cb_up[i] * 255.0).abs());
        }
        assert!(n > ow * oh / 4, "{mode:?}: only {n} unclipped pixels");
        assert!(
            worst_y < 1.0 && worst_cb < 1.5,
            "{mode:?}: Y off by {worst_y}, Cb by {worst_cb}"
        );
    }
}

/// A `w`×`h` 4:2:0 frame of `format` holding `y` and `u`, `v` (values of
/// the format's depth), padded rows; and the same size ×2, empty.
struct Yuv {
    format: nawqsr_codec::runtime::PixelFormat,
    w: usize,
    h: usize,
    planes: [Vec<u8>; 3],
    strides: [usize; 3],
}

impl Yuv {
    fn new(format: nawqsr_codec::runtime::PixelFormat, w: usize, h: usize) -> Yuv {
        let l = format.yuv420().unwrap();
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let pad = 8;
        let strides = if l.interleaved {
            [l.bytes * w + pad, 2 * l.bytes * cw + pad, 0]
        } else {
            [l.bytes * w + pad, l.bytes * cw + pad, l.bytes * cw + pad]
        };
        Yuv {
            format,
            w,
            h,
            planes: [
                vec![0; strides[0] * h],
                vec![0; strides[1] * ch],
                vec![0; strides[2] * ch],
            ],
            strides,
        }
    }

    fn frame(
        &self,
        c: nawqsr_codec::runtime::frame::Colorimetry,
    ) -> nawqsr_codec::runtime::FrameRef<'_> {
        nawqsr_codec::runtime::FrameRef {
            format: self.format,
            width: self.w,
            height: self.h,
            planes: [&self.planes[0], &self.planes[1], &self.planes[2]],
            strides: self.strides,
            colorimetry: c,
        }
    }

    fn frame_mut(
        &mut self,
        c: nawqsr_codec::runtime::frame::Colorimetry,
    ) -> nawqsr_codec::runtime::FrameMut<'_> {
        let [a, b, d] = &mut self.planes;
        nawqsr_codec::runtime::FrameMut {
            format: self.format,
            width: self.w,
            height: self.h,
            planes: [a, b, d],
            strides: self.strides,
            colorimetry: c,
        }
    }

    fn set(&mut self, comp: nawqsr_codec::runtime::planes::Comp, f: impl Fn(usize, usize) -> f32) {
        use nawqsr_codec::runtime::planes::{comp_size, write_row};
        let l = self.format.yuv420().unwrap();
        let (cw, ch) = comp_size(comp, self.w, self.h);
        let mut dst = self.frame_mut(Default::default());
        for r in 0..ch {
            let row: Vec<f32> = (0..cw).map(|x| f(x, r)).collect();
            write_row(&mut dst, l, comp, r, &row);
        }
    }

    fn get(&self, comp: nawqsr_codec::runtime::planes::Comp) -> Vec<f32> {
        use nawqsr_codec::runtime::planes::{comp_size, read_row};
        let l = self.format.yuv420().unwrap();
        let (cw, ch) = comp_size(comp, self.w, self.h);
        let src = self.frame(Default::default());
        let mut out = vec![0f32; cw * ch];
        for (r, row) in out.chunks_exact_mut(cw).enumerate() {
            read_row(&src, l, comp, r, row);
        }
        out
    }
}

/// Issue 17: a luma model keeps a 4:2:0 frame YUV, in every 8- and 10-bit
/// layout: the output's Y is the network's output on exactly the frame's Y
/// plane (Y / 255, a 10-bit Y / 1020, written back at the frame's depth),
/// and U and V are the chroma resizer's output on the input planes with the
/// frame's siting, with no colour matrix between (a flat chroma stays flat).
#[test]
fn luma_models_keep_yuv_frames_yuv() {
    use nawqsr_codec::runtime::chroma::ChromaResizer;
    use nawqsr_codec::runtime::frame::{Colorimetry, Matrix, Range, Siting};
    use nawqsr_codec::runtime::planes::Comp;
    use nawqsr_codec::runtime::{Codec, CodecConfig, Mode, PixelFormat};
    let (w, h) = (36usize, 26usize);
    let (ow, oh) = (2 * w, 2 * h);
    for mode in [Mode::Fp32, Mode::Int8] {
        let codec = Codec::new(&CodecConfig {
            model: Some(dir().join("ecbsr.onnx")),
            mode,
            threads: 2,
            patch_size: 8,
            ..Default::default()
        })
        .unwrap();
        for format in [
            PixelFormat::I420,
            PixelFormat::Nv12,
            PixelFormat::I42010le,
            PixelFormat::P01010le,
        ] {
            let l = format.yuv420().unwrap();
            let k = l.per_8bit();
            for siting in [Siting::Centre, Siting::Left] {
                let c = Colorimetry {
                    matrix: Matrix::Bt709,
                    range: Range::Limited,
                    siting,
                };
                let mut src = Yuv::new(format, w, h);
                // A 10-bit Y that is no multiple of 4 shows all 10 bits are read.
                src.set(Comp::Y, |x, y| {
                    (40.0 + ((x * 7 + y * 13) % 160) as f32) * k + (x % 3) as f32 * (k - 1.0) / 3.0
                });
                src.set(Comp::U, |_, _| 110.0 * k);
                src.set(Comp::V, |x, y| (96 + 4 * x + y) as f32 * k);
                let mut dst = Yuv::new(format, ow, oh);
                codec.upscale(&src.frame(c), &mut dst.frame_mut(c)).unwrap();

                let y_in = Tensor {
                    h,
                    w,
                    c: 1,
                    data: src.get(Comp::Y).iter().map(|&v| v / (255.0 * k)).collect(),
                };
                let want: Vec<f32> = codec
                    .upscale_tensor(&y_in)
                    .unwrap()
                    .data
                    .iter()
                    .map(|&v| {
                        if l.bits == 8 {
                            f32::from(nawqsr_codec::tensor::to_u8_pixel(v))
                        } else {
                            nawqsr_codec::runtime::planes::quantize(v * 1020.0, 1023.0) as f32
                        }
                    })
                    .collect();
                assert_eq!(dst.get(Comp::Y), want, "{mode:?} {format:?} {siting:?}: Y");
                if l.bits == 10 {
                    assert!(
                        dst.get(Comp::Y).iter().any(|&v| v % 4.0 != 0.0),
                        "{format:?}: 10 bits kept"
                    );
                }
                assert!(
                    dst.get(Comp::U).iter().all(|&v| v == 110.0 * k),
                    "{format:?}: flat U stays flat"
                );
                let z = ChromaResizer::new(w, h, 2, siting);
                let (cw, _) = z.in_size();
                let (zw, zh) = z.out_size();
                let vin = src.get(Comp::V);
                let mut vwant = vec![0f32; zw * zh];
                z.run(
                    |r, row| row.copy_from_slice(&vin[r * cw..][..cw]),
                    |r, row| {
                        for (o, &v) in vwant[r * zw..][..zw].iter_mut().zip(row) {
                            *o = nawqsr_codec::runtime::planes::quantize(v, l.max()) as f32;
                        }
                    },
                );
                assert_eq!(dst.get(Comp::V), vwant, "{mode:?} {format:?} {siting:?}: V");
            }
        }
    }
}

/// `CodecConfig::deep_input` (10-bit caps, issue 17): the convs that read the
/// frame run on A16W8, the rest as planned; a 10-bit Y then reaches the
/// network with all its bits (a ramp of single 10-bit codes gives another
/// output than the INT8 first conv, which sees 256 levels), and the frame's
/// Y is still exactly the codec's network output on the plane.
#[test]
fn deep_input_runs_the_input_convs_on_a16w8() {
    use nawqsr_codec::runtime::frame::Colorimetry;
    use nawqsr_codec::runtime::planes::Comp;
    use nawqsr_codec::runtime::{Codec, CodecConfig, Mode, PixelFormat};
    let (w, h) = (40usize, 24usize);
    let build = |deep_input| {
        Codec::new(&CodecConfig {
            model: Some(dir().join("ecbsr.onnx")),
            mode: Mode::Int8,
            threads: 2,
            patch_size: 8,
            deep_input,
            ..Default::default()
        })
        .unwrap()
    };
    let (c8, c10) = (build(false), build(true));
    let g = &c10.engine().unwrap().graph;
    let (p8, p10) = (c8.plan().unwrap(), c10.plan().unwrap());
    let mut moved = 0;
    for (i, l) in g.layers.iter().enumerate() {
        if !matches!(l.op, nawqsr_codec::model::Op::Conv(_)) {
            continue;
        }
        assert_eq!(p8.bits(i), 8, "layer {i}: INT8 plan");
        let reads_input = l.inputs.contains(&g.input);
        assert_eq!(p10.bits(i), if reads_input { 16 } else { 8 }, "layer {i}");
        moved += reads_input as usize;
    }
    assert!(moved > 0, "some conv reads the input");

    let format = PixelFormat::I42010le;
    let c = Colorimetry::default();
    let mut src = Yuv::new(format, w, h);
    // Single 10-bit codes apart: 8-bit input quantization merges neighbours.
    src.set(Comp::Y, |x, y| (300 + x + 2 * y) as f32);
    src.set(Comp::U, |_, _| 512.0);
    src.set(Comp::V, |_, _| 512.0);
    let run = |codec: &Codec| {
        let mut dst = Yuv::new(format, 2 * w, 2 * h);
        codec.upscale(&src.frame(c), &mut dst.frame_mut(c)).unwrap();
        dst.get(Comp::Y)
    };
    let (y8, y10) = (run(&c8), run(&c10));
    assert_ne!(y8, y10, "the A16W8 input conv sees more than 256 levels");
    let y_in = Tensor {
        h,
        w,
        c: 1,
        data: src.get(Comp::Y).iter().map(|&v| v / 1020.0).collect(),
    };
    let want: Vec<f32> = c10
        .upscale_tensor(&y_in)
        .unwrap()
        .data
        .iter()
        .map(|&v| nawqsr_codec::runtime::planes::quantize(v * 1020.0, 1023.0) as f32)
        .collect();
    assert_eq!(y10, want, "Y is the deep plan's network output");
}

/// The two sitings place the chroma differently (the resizer's own tests
/// check where), and a full-range frame's Y goes through the network in
/// studio range and comes back full range: a flat mid-grey stays that grey.
#[test]
fn luma_path_follows_siting_and_range() {
    use nawqsr_codec::runtime::frame::{Colorimetry, Range, Siting};
    use nawqsr_codec::runtime::planes::Comp;
    use nawqsr_codec::runtime::{Codec, CodecConfig, Mode, PixelFormat};
    let (w, h) = (32usize, 20usize);
    let codec = Codec::new(&CodecConfig {
        model: Some(dir().join("ecbsr.onnx")),
        mode: Mode::Fp32,
        threads: 1,
        ..Default::default()
    })
    .unwrap();
    let mut src = Yuv::new(PixelFormat::I420, w, h);
    src.set(Comp::Y, |_, _| 128.0);
    src.set(Comp::U, |x, _| (96 + 4 * x) as f32);
    src.set(Comp::V, |_, _| 128.0);
    let run = |siting, range| {
        let c = Colorimetry {
            siting,
            range,
            ..Default::default()
        };
        let mut dst = Yuv::new(PixelFormat::I420, 2 * w, 2 * h);
        codec.upscale(&src.frame(c), &mut dst.frame_mut(c)).unwrap();
        dst
    };
    let (a, b) = (
        run(Siting::Left, Range::Limited),
        run(Siting::Centre, Range::Limited),
    );
    assert_ne!(a.get(Comp::U), b.get(Comp::U), "siting is not ignored");
    // The flat 128 through the network: in studio range and back, equal to
    // the limited-range run's Y mapped to full range.
    let full = run(Siting::Centre, Range::Full).get(Comp::Y);
    let y_in = Tensor {
        h,
        w,
        c: 1,
        data: vec![(16.0 + 128.0 / 255.0 * 219.0) / 255.0; w * h],
    };
    let net = codec.upscale_tensor(&y_in).unwrap();
    for (i, (&got, &v)) in full.iter().zip(&net.data).enumerate() {
        let want =
            nawqsr_codec::runtime::planes::quantize((v * 255.0 - 16.0) / 219.0 * 255.0, 255.0)
                as f32;
        assert_eq!(got, want, "Y {i}");
    }
}
