//! Model import, graph lowering and the FP32 paths.
mod common;

use nawqsr_codec::Error;
use nawqsr_codec::engine::{Engine, Plan, Tensor};
use nawqsr_codec::kernels::CpuLevel;
use nawqsr_codec::model::{self, Op, reference::Fp32Reference};

fn test_image(w: u32, h: u32) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (x * 37 % 256) as u8,
            (y * 53 % 256) as u8,
            ((x * y) % 251) as u8,
        ])
    })
}

fn write_tmp(bytes: &[u8]) -> tempfile::NamedTempFile {
    let f = tempfile::Builder::new().suffix(".onnx").tempfile().unwrap();
    std::fs::write(f.path(), bytes).unwrap();
    f
}

#[test]
fn lowering_imdn_x4() {
    let Some(shared) = common::shared() else {
        return;
    };
    let g = model::import(&shared.join("models/IMDN_x4.onnx")).unwrap();
    let kinds = |k: &str| g.layers.iter().filter(|l| l.op.kind() == k).count();
    assert_eq!(g.scale, 4);
    assert_eq!(kinds("conv"), 46);
    // 6 IMDB blocks, each with a contrast-aware attention: one mean, one std.
    assert_eq!(kinds("global_avg_pool"), 6);
    assert_eq!(kinds("global_std"), 6);
    assert_eq!(kinds("mul_channel"), 6);
    assert_eq!(kinds("sigmoid"), 6);
    assert_eq!(kinds("depth_to_space"), 1);
    // The mean/std chains are folded: no shape arithmetic survives.
    assert_eq!(g.layers.len(), 46 + 25 + 18 + 7 + 6 + 6 + 6 + 6 + 6 + 1 + 7);
    // Parameters as published (715K) and MACs per LR pixel.
    assert!((714_000..716_000).contains(&g.params()), "{}", g.params());
    let conv_macs: u64 = g.conv_layers().iter().map(|&i| g.layer_macs(i, 1, 1)).sum();
    assert_eq!(
        conv_macs,
        g.params() as u64
            - g.layers
                .iter()
                .map(|l| if let Op::Conv(c) = &l.op {
                    c.out_c as u64
                } else {
                    0
                })
                .sum::<u64>()
    );
    eprintln!("{}", g.summary(180, 320));
}

#[test]
fn lowering_imdn_rtc_x2() {
    let Some(shared) = common::shared() else {
        return;
    };
    let g = model::import(&shared.join("models/IMDN_RTC_x2.onnx")).unwrap();
    assert_eq!(g.scale, 2);
    assert_eq!(g.conv_layers().len(), 28);
    assert!(
        g.layers.iter().all(|l| !l.op.is_global()),
        "IMDN-RTC has no frame-global op"
    );
    // 3×3 12→12 conv: 1296 MACs per pixel
    let first = &g.layers[g.conv_layers()[1]];
    let Op::Conv(c) = &first.op else {
        unreachable!()
    };
    assert_eq!((c.in_c, c.out_c, c.kh), (12, 12, 3));
    assert_eq!(g.layer_macs(g.conv_layers()[1], 10, 10), 1296 * 100);
}

/// Our float executor over the lowered graph reproduces tract's FP32 output:
/// the lowering is faithful.
#[test]
fn float_engine_matches_tract_on_every_model() {
    let Some(shared) = common::shared() else {
        return;
    };
    let img = test_image(23, 17);
    for m in ["IMDN_RTC_x2", "IMDN_x2", "IMDN_x3", "IMDN_x4"] {
        let path = shared.join(format!("models/{m}.onnx"));
        let r = Fp32Reference::load(&path).unwrap();
        let g = model::import(&path).unwrap();
        assert_eq!(g.scale, r.scale(), "{m}");
        let (w, h) = (img.width() as usize, img.height() as usize);
        let tract = r
            .run_planar(nawqsr_codec::model::reference::rgb_to_planar(&img), h, w)
            .unwrap();
        let e = Engine::new(g, CpuLevel::Scalar, 2);
        let ours = e
            .run(&Plan::fp32(&e.graph), &Tensor::from_rgb(&img))
            .unwrap();
        let (oh, ow) = (h * r.scale(), w * r.scale());
        let max = max_diff_hwc_chw(&ours.data, &tract, oh, ow);
        assert!(max < 2e-4, "{m}: max |ours − tract| = {max}");
    }
}

/// Largest |a − b| between an HWC RGB tensor and a CHW one of `h`×`w`.
fn max_diff_hwc_chw(hwc: &[f32], chw: &[f32], h: usize, w: usize) -> f32 {
    let mut max = 0f32;
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                max = max.max((hwc[(y * w + x) * 3 + c] - chw[c * h * w + y * w + x]).abs());
            }
        }
    }
    max
}

/// The project's own models: the anchor upsampler is folded into one
/// ShuffleAnchor layer, and the float engine still matches tract.
#[test]
fn bundled_models_fold_the_anchor_and_match_tract() {
    let img = test_image(23, 17);
    for s in [2, 3, 4] {
        let path =
            std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/models"))
                .join(format!("nawq_x{s}.onnx"));
        let g = model::import(&path).unwrap();
        assert_eq!(g.scale, s);
        let kinds: Vec<&str> = g.layers.iter().map(|l| l.op.kind()).collect();
        assert_eq!(kinds.last(), Some(&"shuffle_anchor"), "x{s}: {kinds:?}");
        assert!(
            !kinds.contains(&"concat") && !kinds.contains(&"add"),
            "x{s}: anchor not folded: {kinds:?}"
        );
        let r = Fp32Reference::load(&path).unwrap();
        let (w, h) = (img.width() as usize, img.height() as usize);
        let tract = r
            .run_planar(nawqsr_codec::model::reference::rgb_to_planar(&img), h, w)
            .unwrap();
        let e = Engine::new(g, CpuLevel::detect(), 2);
        let ours = e
            .run(&Plan::fp32(&e.graph), &Tensor::from_rgb(&img))
            .unwrap();
        let (oh, ow) = (h * s, w * s);
        let max = max_diff_hwc_chw(&ours.data, &tract, oh, ow);
        assert!(max < 2e-4, "x{s}: max |ours − tract| = {max}");
    }
}

#[test]
fn tiny_model_end_to_end() {
    let f = write_tmp(&common::tiny_sr(0));
    let g = model::import(f.path()).unwrap();
    assert_eq!(g.scale, 2);
    assert_eq!(g.layers.len(), 4);
    let r = Fp32Reference::load(f.path()).unwrap();
    assert_eq!(r.scale(), 2);
    let img = test_image(9, 7);
    let out = r.upscale(&img).unwrap();
    assert_eq!(out.dimensions(), (18, 14));
    let e = Engine::new(g, CpuLevel::detect(), 1);
    let ours = e
        .run(&Plan::fp32(&e.graph), &Tensor::from_rgb(&img))
        .unwrap()
        .to_rgb();
    let diff = ours
        .as_raw()
        .iter()
        .zip(out.as_raw())
        .map(|(a, b)| a.abs_diff(*b))
        .max()
        .unwrap();
    assert!(diff <= 1, "engine vs tract differ by {diff} LSB");
}

#[test]
fn missing_and_corrupt_models_are_named_errors() {
    let e = model::import(std::path::Path::new("/nonexistent/m.onnx"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("/nonexistent/m.onnx") && e.contains("not found"),
        "{e}"
    );
    let f = write_tmp(b"this is not protobuf \x00\xff\x13");
    let e = model::import(f.path()).unwrap_err().to_string();
    assert!(e.contains(&f.path().display().to_string()), "{e}");
    let e = Fp32Reference::load(f.path()).err().unwrap().to_string();
    assert!(e.contains(&f.path().display().to_string()), "{e}");
}

#[test]
fn non_sr_model_is_rejected() {
    // 3→5 channel conv: an image-to-features net, not RGB SR.
    let bytes = common::model_bytes(
        vec![common::node(
            "Conv",
            &["lr", "w"],
            &["sr"],
            vec![common::ints("kernel_shape", &[1, 1])],
        )],
        vec![common::tensor("w", &[5, 3, 1, 1], &[0.1; 15])],
        5,
    );
    let f = write_tmp(&bytes);
    // Both loaders refuse it at validation, naming the output and its channels.
    let e = model::import(f.path()).unwrap_err().to_string();
    assert!(
        e.contains("output 'sr' has 5 channels") && e.contains("expected 3"),
        "{e}"
    );
    let e = Fp32Reference::load(f.path()).err().unwrap().to_string();
    assert!(e.contains("output 'sr' has 5 channels"), "{e}");
}

#[test]
fn unsupported_op_names_op_and_node() {
    let bytes = common::model_bytes(
        vec![common::node("Softmax", &["lr"], &["sr"], vec![])],
        vec![],
        3,
    );
    let f = write_tmp(&bytes);
    match model::import(f.path()) {
        Err(Error::UnsupportedOp { op, node, .. }) => {
            assert_eq!(op, "Softmax");
            assert_eq!(node, "Softmax_sr");
        }
        other => panic!("expected UnsupportedOp, got {other:?}"),
    }
}
