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

/// `codec` (×2) on an I420 frame of `w`×`h` planes `y, u, v` with
/// `colorimetry` (the output centre-sited): the output's Y, U and V planes.
fn upscale_i420(
    codec: &nawqsr_codec::runtime::Codec,
    (w, h): (usize, usize),
    [y, u, v]: [&[u8]; 3],
    colorimetry: nawqsr_codec::runtime::frame::Colorimetry,
) -> [Vec<u8>; 3] {
    use nawqsr_codec::runtime::frame::Siting;
    use nawqsr_codec::runtime::{FrameMut, FrameRef, PixelFormat};
    let src = FrameRef {
        format: PixelFormat::I420,
        width: w,
        height: h,
        planes: [y, u, v],
        strides: [w, w / 2, w / 2],
        colorimetry,
    };
    let (ow, oh) = (2 * w, 2 * h);
    let (mut oy, mut ou, mut ov) = (
        vec![0u8; ow * oh],
        vec![0u8; ow * oh / 4],
        vec![0u8; ow * oh / 4],
    );
    let mut dst = FrameMut {
        format: PixelFormat::I420,
        width: ow,
        height: oh,
        planes: [&mut oy, &mut ou, &mut ov],
        strides: [ow, ow / 2, ow / 2],
        colorimetry: nawqsr_codec::runtime::frame::Colorimetry {
            siting: Siting::Centre,
            ..colorimetry
        },
    };
    codec.upscale(&src, &mut dst).unwrap();
    [oy, ou, ov]
}

/// A luma model on a 4:2:0 frame takes the frame's own Y plane: the output
/// frame's Y is the network's output on exactly that plane, and a flat
/// chroma comes back flat through the frame's own matrix (BT.709 here).
#[test]
fn luma_models_take_y_straight_from_yuv_frames() {
    use nawqsr_codec::runtime::frame::{Colorimetry, Matrix, Range, Siting};
    use nawqsr_codec::runtime::{Codec, CodecConfig, Mode};
    let (w, h) = (36usize, 26usize);
    let (cw, ch) = (w / 2, h / 2);
    let yp: Vec<u8> = (0..w * h).map(|i| (40 + (i * 7) % 160) as u8).collect();
    let (up, vp) = (vec![110u8; cw * ch], vec![150u8; cw * ch]);
    let colorimetry = Colorimetry {
        matrix: Matrix::Bt709,
        range: Range::Limited,
        siting: Siting::Centre,
    };
    let codec = Codec::new(&CodecConfig {
        model: Some(dir().join("ecbsr.onnx")),
        mode: Mode::Fp32,
        threads: 2,
        ..Default::default()
    })
    .unwrap();
    let (ow, oh) = (2 * w, 2 * h);
    let [oy, ou, ov] = upscale_i420(&codec, (w, h), [&yp, &up, &vp], colorimetry);
    let y_in = Tensor {
        h,
        w,
        c: 1,
        data: yp.iter().map(|&v| v as f32 / 255.0).collect(),
    };
    let ysr = codec.upscale_tensor(&y_in).unwrap();
    let mut n = 0;
    for (i, (&got, &want)) in oy.iter().zip(&ysr.data).enumerate() {
        let want = want * 255.0;
        // With this chroma (Cb −18, Cr +22), B clips below Y ≈ 49 and R
        // above Y ≈ 201: there RGB cannot carry the value.
        if !(55.0..=185.0).contains(&want) {
            continue;
        }
        n += 1;
        assert!(
            (got as f32 - want).abs() <= 1.5,
            "Y pixel {i}: {got} vs {want}"
        );
    }
    assert!(n > oy.len() / 2, "only {n} pixels compared");
    // Chroma where the four luma pixels of the 2×2 block are carried.
    let mut m = 0;
    for cy in 0..oh / 2 {
        for cx in 0..ow / 2 {
            let inside = [(0, 0), (0, 1), (1, 0), (1, 1)].iter().all(|&(dy, dx)| {
                (55.0..=185.0).contains(&(ysr.data[(2 * cy + dy) * ow + 2 * cx + dx] * 255.0))
            });
            if inside {
                m += 1;
                let k = cy * ow / 2 + cx;
                assert!(
                    ou[k].abs_diff(110) <= 1 && ov[k].abs_diff(150) <= 1,
                    "U, V at {k}: {} {}",
                    ou[k],
                    ov[k]
                );
            }
        }
    }
    assert!(m > ou.len() / 4, "only {m} chroma samples compared");
}

/// Left-sited (MPEG-2/H.264) chroma in the luma path: resampled to the
/// centred positions first, so a left-sited ramp gives what the same ramp
/// moved a quarter sample gives centre-sited.
#[test]
fn luma_path_resamples_left_sited_chroma() {
    use nawqsr_codec::runtime::frame::{Colorimetry, Matrix, Range, Siting};
    use nawqsr_codec::runtime::{Codec, CodecConfig, Mode};
    let (w, h) = (32usize, 20usize);
    let (cw, ch) = (w / 2, h / 2);
    let yp = vec![120u8; w * h];
    // U rises by 4 per chroma column; its centred equivalent is U + 1
    // (0.75·U[i] + 0.25·U[i + 1]), except the last column (edge kept).
    let left: Vec<u8> = (0..cw * ch).map(|k| (96 + 4 * (k % cw)) as u8).collect();
    let centred: Vec<u8> = (0..cw * ch)
        .map(|k| {
            if k % cw == cw - 1 {
                left[k]
            } else {
                left[k] + 1
            }
        })
        .collect();
    let vp = vec![128u8; cw * ch];
    let codec = Codec::new(&CodecConfig {
        model: Some(dir().join("ecbsr.onnx")),
        mode: Mode::Fp32,
        threads: 1,
        ..Default::default()
    })
    .unwrap();
    let run = |u: &[u8], siting| {
        let c = Colorimetry {
            matrix: Matrix::Bt601,
            range: Range::Limited,
            siting,
        };
        let [_, ou, _] = upscale_i420(&codec, (w, h), [&yp, u, &vp], c);
        ou
    };
    let a = run(&left, Siting::Left);
    let b = run(&centred, Siting::Centre);
    let c = run(&left, Siting::Centre);
    assert_eq!(a, b, "left-sited ramp = its centred equivalent");
    assert_ne!(a, c, "siting is not ignored");
}
