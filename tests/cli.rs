//! End-to-end tests of the `nawqsr` binary: outputs, JSON contracts and the
//! one-line errors on bad input.
#[path = "../codec/tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn nawqsr(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nawqsr"))
        .args(args)
        .output()
        .expect("run nawqsr")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A failing run: non-zero exit, one `error:` line naming `what`, no panic.
fn assert_error(o: &Output, what: &[&str]) {
    let e = stderr(o);
    assert!(!o.status.success(), "expected failure, got success: {e}");
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(!e.contains("panicked"), "{e}");
    let lines: Vec<&str> = e.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "one error line expected: {e}");
    for w in what {
        assert!(
            lines[0].contains(w),
            "error line should mention '{w}': {}",
            lines[0]
        );
    }
}

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tiny.onnx"), common::tiny_sr(1)).unwrap();
        let ds = dir.path().join("ds");
        std::fs::create_dir(&ds).unwrap();
        for (i, (w, h)) in [(40u32, 32u32), (35, 33)].into_iter().enumerate() {
            let img = image::RgbImage::from_fn(w, h, |x, y| {
                image::Rgb([(x * 9) as u8, (y * 13) as u8, ((x + y) * 5) as u8])
            });
            img.save(ds.join(format!("img{i}.png"))).unwrap();
        }
        std::fs::create_dir(dir.path().join("empty")).unwrap();
        std::fs::write(
            dir.path().join("corrupt.onnx"),
            b"\x08\x07garbage\xff\xff\xff",
        )
        .unwrap();
        Fixture { dir }
    }
    fn p(&self, rel: &str) -> String {
        self.dir.path().join(rel).display().to_string()
    }
}

#[test]
fn eval_json_contract() {
    let f = Fixture::new();
    for mode in ["fp32", "fp32w8", "int8", "a16w8", "bicubic"] {
        let o = nawqsr(&[
            "eval",
            "--model",
            &f.p("tiny.onnx"),
            "--dataset",
            &f.p("ds"),
            "--scale",
            "2",
            "--mode",
            mode,
            "--calib",
            &f.p("ds"),
            "--json",
        ]);
        assert!(o.status.success(), "{mode}: {}", stderr(&o));
        let v: serde_json::Value =
            serde_json::from_slice(&o.stdout).expect("stdout is one JSON object");
        for k in [
            "model",
            "mode",
            "scale",
            "mean_psnr",
            "mean_ssim",
            "bicubic_psnr",
            "images",
        ] {
            assert!(v.get(k).is_some(), "{mode}: missing {k}: {v}");
        }
        assert_eq!(v["mode"], mode);
        assert_eq!(v["scale"], 2);
        let imgs = v["images"].as_array().unwrap();
        assert_eq!(imgs.len(), 2);
        for i in imgs {
            assert!(i["psnr"].as_f64().unwrap().is_finite() && i["ssim"].as_f64().unwrap() <= 1.0);
            assert!(i["name"].as_str().unwrap().starts_with("img"));
        }
    }
}

#[test]
fn eval_reproduces_published_imdn_x4_fp32() {
    let Some(shared) = common::shared() else {
        return;
    };
    let m = shared.join("models/IMDN_x4.onnx");
    let o = nawqsr(&[
        "eval",
        "--model",
        m.to_str().unwrap(),
        "--dataset",
        shared.join("datasets/Set5").to_str().unwrap(),
        "--scale",
        "4",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let (p, s, b) = (
        v["mean_psnr"].as_f64().unwrap(),
        v["mean_ssim"].as_f64().unwrap(),
        v["bicubic_psnr"].as_f64().unwrap(),
    );
    assert!((p - 32.21).abs() <= 0.01, "PSNR {p}");
    assert!((s - 0.8948).abs() <= 0.0005, "SSIM {s}");
    assert!((b - 28.43).abs() <= 0.01, "bicubic {b}");
}

/// `eval --mode hybrid` without --schedule uses the model's schedule from
/// schedules/ (here the bundled nawq_x2's), and names the model when it has none.
#[test]
fn eval_hybrid_finds_the_models_schedule() {
    let f = Fixture::new();
    let eval = |model: &str| {
        nawqsr(&[
            "eval",
            "--model",
            model,
            "--dataset",
            &f.p("ds"),
            "--scale",
            "2",
            "--mode",
            "hybrid",
            "--json",
        ])
    };
    let bundled = concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/models/nawq_x2.onnx");
    let o = eval(bundled);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["mode"], "hybrid", "{j}");
    assert!(j["mean_psnr"].as_f64().unwrap() > 10.0, "{j}");
    assert_error(
        &eval(&f.p("tiny.onnx")),
        &["hybrid", "schedule", "tiny.onnx"],
    );
}

#[test]
fn bad_inputs_give_one_line_errors() {
    let f = Fixture::new();
    let base = |model: &str, ds: &str, scale: &str| {
        nawqsr(&[
            "eval",
            "--model",
            model,
            "--dataset",
            ds,
            "--scale",
            scale,
            "--mode",
            "fp32",
        ])
    };
    assert_error(
        &base(&f.p("missing.onnx"), &f.p("ds"), "2"),
        &["missing.onnx", "not found"],
    );
    assert_error(
        &base(&f.p("corrupt.onnx"), &f.p("ds"), "2"),
        &["corrupt.onnx"],
    );
    assert_error(&base(&f.p("tiny.onnx"), &f.p("empty"), "2"), &["empty"]);
    assert_error(&base(&f.p("tiny.onnx"), &f.p("nope"), "2"), &["nope"]);
    assert_error(
        &base(&f.p("tiny.onnx"), &f.p("ds"), "3"),
        &["--scale 3", "×2"],
    );
    assert_error(
        &base(&f.p("tiny.onnx"), &f.p("ds"), "5"),
        &["--scale 5", "expected 2, 3 or 4"],
    );
    let o = nawqsr(&[
        "eval",
        "--model",
        &f.p("tiny.onnx"),
        "--dataset",
        &f.p("ds"),
        "--scale",
        "2",
        "--mode",
        "int4",
    ]);
    assert_error(&o, &["--mode int4"]);
    // A model that is not image-to-image SR: 3 → 5 channels.
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
    std::fs::write(f.dir.path().join("feat.onnx"), bytes).unwrap();
    assert_error(
        &base(&f.p("feat.onnx"), &f.p("ds"), "2"),
        &["feat.onnx", "RGB"],
    );
    // Same, through the integer engine's importer.
    let o = nawqsr(&[
        "eval",
        "--model",
        &f.p("feat.onnx"),
        "--dataset",
        &f.p("ds"),
        "--scale",
        "2",
        "--mode",
        "int8",
        "--calib",
        &f.p("ds"),
    ]);
    assert_error(&o, &["feat.onnx", "channels"]);
    // A corrupt image in the dataset.
    std::fs::write(
        f.dir.path().join("ds/zz_broken.png"),
        b"\x89PNG\r\n\x1a\nnope",
    )
    .unwrap();
    assert_error(
        &base(&f.p("tiny.onnx"), &f.p("ds"), "2"),
        &["zz_broken.png"],
    );
}

#[test]
fn upscale_image_writes_scaled_output_and_no_partial_on_error() {
    let f = Fixture::new();
    let out = f.dir.path().join("out.png");
    let o = nawqsr(&[
        "upscale",
        &f.p("ds/img0.png"),
        out.to_str().unwrap(),
        "--model",
        &f.p("tiny.onnx"),
        "--mode",
        "fp32",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(image::image_dimensions(&out).unwrap(), (80, 64));
    // bicubic without a model
    let o = nawqsr(&[
        "upscale",
        &f.p("ds/img1.png"),
        out.to_str().unwrap(),
        "--mode",
        "bicubic",
        "--scale",
        "3",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(image::image_dimensions(&out).unwrap(), (105, 99));
    // errors leave nothing behind
    let bad = f.dir.path().join("bad.png");
    let o = nawqsr(&[
        "upscale",
        &f.p("ds/img0.png"),
        bad.to_str().unwrap(),
        "--model",
        &f.p("corrupt.onnx"),
        "--mode",
        "fp32",
    ]);
    assert_error(&o, &["corrupt.onnx"]);
    assert!(!bad.exists());
    let o = nawqsr(&[
        "upscale",
        &f.p("ds/img0.png"),
        f.p("out.gif").as_str(),
        "--mode",
        "bicubic",
        "--scale",
        "2",
    ]);
    assert_error(&o, &["out.gif", "extension"]);
    let leftovers: Vec<PathBuf> = std::fs::read_dir(f.dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| is_partial(p))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn is_partial(p: &Path) -> bool {
    p.to_string_lossy().ends_with(".partial")
}

/// Without --schedule, hybrid mode finds the model's calibrated schedule in
/// schedules/ by the model's hash; a model with none gets a one-line error.
#[test]
fn hybrid_finds_the_models_schedule() {
    let Some(shared) = common::shared() else {
        return;
    };
    let f = Fixture::new();
    let out = f.dir.path().join("h.png");
    let m4 = shared.join("models/IMDN_RTC_x2.onnx");
    let o = nawqsr(&[
        "upscale",
        &f.p("ds/img0.png"),
        out.to_str().unwrap(),
        "--model",
        m4.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("mode hybrid"), "{}", stderr(&o));
    assert_eq!(image::image_dimensions(&out).unwrap(), (80, 64));
    let o = nawqsr(&[
        "upscale",
        &f.p("ds/img0.png"),
        out.to_str().unwrap(),
        "--model",
        &f.p("tiny.onnx"),
    ]);
    assert_error(&o, &["hybrid", "schedule"]);
}

/// `nawqsr piqe`: the JSON contract, the scores equal the library's (and so the committed
/// pypiqe references `codec/tests/piqe.rs` checks), and a missing image is named.
#[test]
fn piqe_scores_images_and_names_a_missing_one() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../codec/tests/data/piqe");
    let (a, b) = (data.join("noise_s40.png"), data.join("smooth.png"));
    let o = nawqsr(&["piqe", "--json", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let imgs = v["images"].as_array().expect("images");
    assert_eq!(imgs.len(), 2);
    let want: Vec<f64> = [&a, &b]
        .iter()
        .map(|p| {
            let img = image::open(p).unwrap().to_rgb8();
            nawqsr_codec::metrics::piqe_rgb(&img).unwrap().score
        })
        .collect();
    for (i, w) in want.iter().enumerate() {
        assert_eq!(imgs[i]["piqe"].as_f64().unwrap(), *w);
    }
    assert_ne!(
        want[0], want[1],
        "noise and smooth images must score differently"
    );
    let mean = v["mean_piqe"].as_f64().unwrap();
    assert!((mean - (want[0] + want[1]) / 2.0).abs() < 1e-12);
    let o = nawqsr(&["piqe", "no/such.png"]);
    assert_error(&o, &["no/such.png", "not a readable image"]);
}
