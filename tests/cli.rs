//! End-to-end tests of the `nawqsr` binary: outputs, JSON contracts and the
//! one-line errors on bad input.
#[path = "../codec/tests/common/mod.rs"]
mod common;
#[allow(unused)] // only `fresh_plugin` is used here
mod support;

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
            "mean_piqe",
            "bicubic_psnr",
            "bicubic_piqe",
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
            let p = i["piqe"].as_f64().unwrap();
            assert!((0.0..=100.0).contains(&p), "{mode}: piqe {p}");
        }
        // The mean is the images' mean, and each image's PIQE is that of its
        // output as `nawqsr piqe` scores it (same function, checked there).
        let mean = imgs
            .iter()
            .map(|i| i["piqe"].as_f64().unwrap())
            .sum::<f64>()
            / 2.0;
        assert!(
            (v["mean_piqe"].as_f64().unwrap() - mean).abs() < 1e-9,
            "{v}"
        );
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

#[test]
fn version_names_the_kernel_level_and_the_bundled_models() {
    let o = nawqsr(&["--version"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.starts_with(&format!("nawqsr {}", env!("CARGO_PKG_VERSION"))),
        "{out}"
    );
    let level = out
        .lines()
        .find_map(|l| l.strip_prefix("kernel level: "))
        .unwrap_or_else(|| panic!("no kernel level line: {out}"));
    assert!(
        ["scalar", "avx2", "avx512vnni", "amx"].contains(&level),
        "{level}"
    );
    for s in 2..=4 {
        assert!(out.contains(&format!("nawq_x{s}.onnx (x{s}, ")), "{out}");
    }
}

/// The class of mistake issue 20 found (an error naming the wrong thing),
/// swept over the subcommands: each bad flag or path is named in one line.
#[test]
fn every_subcommand_names_the_bad_flag_or_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.png");
    let out = out.to_str().unwrap();
    let img = concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/sample_lr.png");
    let clip = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../assets/clips/city_320x180.mp4"
    );
    let cases: &[(&[&str], &[&str])] = &[
        (
            &[
                "calibrate",
                "--model",
                "/nx/m.onnx",
                "--scale",
                "2",
                "--out",
                out,
            ],
            &["/nx/m.onnx", "not found"],
        ),
        (
            &[
                "bench-model",
                "--model",
                "/nx/m.onnx",
                "--input-size",
                "32x32",
            ],
            &["/nx/m.onnx", "not found"],
        ),
        (
            &["bench", "/nx/clip.mp4", "--scale", "2"],
            &["/nx/clip.mp4"],
        ),
        (
            &["bench", clip, "--scale", "2", "--input-size", "10by10"],
            &["--input-size", "10by10", "WxH"],
        ),
        (
            &[
                "bench-model",
                "--model",
                "/nx/m.onnx",
                "--input-size",
                "5000000x10",
            ],
            &["--input-size", "1 to 65536"],
        ),
        (
            &["bench", clip, "--scale", "2", "--modes", "int4"],
            &["--modes", "int4"],
        ),
        (&["play", "--mode", "int4"], &["--mode", "int4"]),
        (
            &["upscale", img, out, "--scale", "5"],
            &["invalid scale 5", "expected 2, 3 or 4"],
        ),
        (&["upscale", img, "/tmp/o.xyz"], &["o.xyz", "extension"]),
        (
            &["upscale", img, "/nx/dir/o.png"],
            &["/nx/dir/o.png", "directory /nx/dir does not exist"],
        ),
        (
            &["upscale", img, out, "--schedule", "/nx/s.json"],
            &["/nx/s.json", "schedule"],
        ),
        (&["upscale", "/nx/in.png", out], &["/nx/in.png"]),
        (&["piqe", "/nx/a.png"], &["/nx/a.png"]),
        (&["bench-kernels", "--level", "avx9"], &["--level avx9"]),
    ];
    for (args, what) in cases {
        let o = nawqsr(args);
        assert_error(&o, what);
        assert!(!Path::new(out).exists(), "{args:?} left an output");
    }
    // Flag values clap checks exit 2 with its own message, still naming the flag
    // and the range, never a panic (threads=100000 used to abort in thread setup).
    for (args, what) in [
        (
            &["upscale", img, out, "--threads", "100000"][..],
            "--threads",
        ),
        (&["bench-model", "--input-size", "32x32"][..], "--model"),
    ] {
        let o = nawqsr(args);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {e}");
        assert!(e.starts_with("error:") && e.contains(what), "{args:?}: {e}");
        assert!(!e.contains("panicked"), "{e}");
    }
}

/// Issue 20: the binary and the plugin carry their models and schedules, so a
/// copy of both in a directory with nothing else works: `upscale` in hybrid
/// mode (bundled model + its schedule) and a gst-launch pipeline through the
/// copied plugin. No source file may derive a run-time path from the checkout.
#[test]
fn binary_and_plugin_work_from_an_empty_directory() {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    for crate_dir in ["codec/src", "plugins/src", "player/src"] {
        for f in walk(&root.join(crate_dir)) {
            let s = std::fs::read_to_string(&f).unwrap();
            // Only the code before a unit-test module counts.
            let code = s.split("#[cfg(test)]").next().unwrap();
            assert!(
                !code.contains("CARGO_MANIFEST_DIR"),
                "{}: derives a path from the checkout",
                f.display()
            );
        }
    }
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_nawqsr"));
    let so = support::fresh_plugin(exe.parent().unwrap())
        .unwrap_or_else(|| panic!("libgstnawqsr.so not built beside {}", exe.display()));
    let dir = tempfile::tempdir().unwrap();
    let (bin, plugin) = (dir.path().join("nawqsr"), dir.path().join("plugins"));
    std::fs::copy(&exe, &bin).unwrap();
    std::fs::create_dir(&plugin).unwrap();
    std::fs::copy(&so, plugin.join("libgstnawqsr.so")).unwrap();
    std::fs::copy(root.join("assets/sample_lr.png"), dir.path().join("in.png")).unwrap();
    let run = |cmd: &mut Command| {
        cmd.current_dir(dir.path())
            .env_remove("NAWQSR_MODELS")
            .env_remove("NAWQSR_SCHEDULES")
            .env("GST_PLUGIN_PATH", &plugin)
            .env("GST_REGISTRY", dir.path().join("registry.bin"))
            .output()
            .unwrap()
    };
    let o = run(Command::new(&bin).args(["upscale", "in.png", "out.png", "--scale", "2"]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("mode hybrid"), "{}", stderr(&o));
    let img = image::open(dir.path().join("out.png")).unwrap();
    assert_eq!((img.width(), img.height()), (320, 240));
    if Command::new("gst-launch-1.0")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipping the pipeline half: gst-launch-1.0 not found");
        return;
    }
    // The element comes from the copy (gst-inspect names its file), and a
    // pipeline through it with the bundled ×2 model in hybrid mode runs.
    let o = run(Command::new("gst-inspect-1.0").arg("nawqsr"));
    let info = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "gst-inspect-1.0 nawqsr: {}", stderr(&o));
    let file = info
        .lines()
        .find_map(|l| l.trim().strip_prefix("Filename"))
        .unwrap_or_default();
    assert!(file.contains(plugin.to_str().unwrap()), "{file}");
    let o = run(Command::new("gst-launch-1.0").args([
        "-q",
        "videotestsrc",
        "num-buffers=5",
        "!",
        "video/x-raw,width=64,height=48",
        "!",
        "nawqsr",
        "mode=hybrid",
        "!",
        "video/x-raw,width=128,height=96",
        "!",
        "fakesink",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

// ---- issue 19: profiler and latency-targeted calibration ----

fn bundled_x2_model() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../assets/models/nawq_x2.onnx"
    ))
}

#[test]
fn profile_writes_every_layer_edge_and_check() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("host-profile.json");
    let m = bundled_x2_model();
    let o = nawqsr(&[
        "profile",
        "--model",
        m.to_str().unwrap(),
        "--input-size",
        "48x32",
        "--frames",
        "2",
        "--rounds",
        "1",
        "--checks",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let layers = v["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 6, "nawq_x2 has 6 convs");
    assert_eq!(v["edges"].as_array().unwrap().len(), 5);
    // int8, a16w8, the schedule's hybrid and 2 random plans.
    let checks = v["check"].as_array().unwrap();
    assert_eq!(checks.len(), 5);
    for c in checks {
        assert!(c["measured_ms"].as_f64().unwrap() > 0.0);
        assert!(c["predicted_ms"].as_f64().unwrap() > 0.0, "{c}");
    }
    assert!(v["host"]["cpu"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(v["input"], serde_json::json!([48, 32]));
    // Switch costs come from a least-squares fit over mixed plans, one residual each.
    let fit = &v["switch_fit"];
    assert!(fit["plans"].as_u64().unwrap() >= 2, "{fit}");
    assert_eq!(
        fit["residual_ms"].as_array().unwrap().len() as u64,
        fit["plans"].as_u64().unwrap()
    );
    // The table names the worst error.
    assert!(String::from_utf8_lossy(&o.stdout).contains("worst |error|"));
}

#[test]
fn profile_bad_input_is_one_line() {
    let m = bundled_x2_model();
    let m = m.to_str().unwrap();
    assert_error(
        &nawqsr(&[
            "profile",
            "--model",
            m,
            "--input-size",
            "0x5",
            "--out",
            "/tmp/x.json",
        ]),
        &["--input-size"],
    );
    assert_error(
        &nawqsr(&[
            "profile",
            "--model",
            m,
            "--frames",
            "0",
            "--out",
            "/tmp/x.json",
        ]),
        &["--frames"],
    );
    assert_error(
        &nawqsr(&[
            "profile",
            "--model",
            "/nonexistent.onnx",
            "--out",
            "/tmp/x.json",
        ]),
        &["/nonexistent.onnx"],
    );
}

/// A few textured HR images, so calibration needs no ../shared.
fn calib_dir(dir: &Path) -> PathBuf {
    let d = dir.join("calib");
    std::fs::create_dir_all(&d).unwrap();
    for k in 0..3u32 {
        let img = image::RgbImage::from_fn(64, 64, |x, y| {
            let v = |a: u32| ((x * (3 + a + k) + y * (5 + 2 * a) + (x * y) / (k + 1)) % 256) as u8;
            image::Rgb([v(0), v(1), v(2)])
        });
        img.save(d.join(format!("img{k}.png"))).unwrap();
    }
    d
}

#[test]
fn calibrate_latency_target_writes_a_front_and_picks_a_plan_that_fits() {
    let dir = tempfile::tempdir().unwrap();
    let calib = calib_dir(dir.path());
    let out = dir.path().join("s.json");
    let m = bundled_x2_model();
    let o = nawqsr(&[
        "calibrate",
        "--model",
        m.to_str().unwrap(),
        "--scale",
        "2",
        "--calib",
        calib.to_str().unwrap(),
        "--calib-images",
        "3",
        "--max-side",
        "64",
        "--input-size",
        "48x32",
        "--profile-frames",
        "2",
        "--latency-target",
        "1000",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let pts = s["pareto"]["points"].as_array().unwrap();
    assert!(!pts.is_empty());
    let ms: Vec<f64> = pts
        .iter()
        .map(|p| p["predicted_ms"].as_f64().unwrap())
        .collect();
    let psnr: Vec<f64> = pts.iter().map(|p| p["psnr"].as_f64().unwrap()).collect();
    assert!(ms.windows(2).all(|w| w[0] <= w[1]), "{ms:?}");
    assert!(
        psnr.windows(2).all(|w| w[0] < w[1]),
        "dominated point kept: {psnr:?}"
    );
    assert_eq!(s["pareto"]["target_ms"], 1000.0);
    // A target above every plan picks the front's best plan, and the schedule
    // runs it: its layers carry that point's bits.
    let best = pts.last().unwrap();
    let layer_bits: Vec<u64> = s["layers"]
        .as_object()
        .unwrap()
        .values()
        .map(|l| l["bits"].as_u64().unwrap())
        .collect();
    let best_bits: Vec<u64> = best["bits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_u64().unwrap())
        .collect();
    assert_eq!(layer_bits, best_bits);
    assert_eq!(s["quality"]["calibration_psnr"], best["psnr"]);
    // The report compares the method with the baseline at each target.
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let targets = j["front"]["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 4);
    assert!(targets.iter().all(|t| t["lra_greedy"].is_object()));
    // The schedule loads and runs in hybrid mode.
    let o = nawqsr(&[
        "bench-model",
        "--model",
        m.to_str().unwrap(),
        "--mode",
        "hybrid",
        "--schedule",
        out.to_str().unwrap(),
        "--input-size",
        "32x24",
        "--runs",
        "1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn calibrate_latency_target_must_be_positive() {
    let m = bundled_x2_model();
    assert_error(
        &nawqsr(&[
            "calibrate",
            "--model",
            m.to_str().unwrap(),
            "--scale",
            "2",
            "--latency-target=0",
            "--out",
            "/tmp/x.json",
        ]),
        &["--latency-target"],
    );
}

/// Issue 15: `bench-model --json` reports the model's MACs per frame (the graph's
/// own count at that size), the per-thread peak measured in the same run for the
/// units the mode uses, and the efficiency they give; float modes have no peak.
#[test]
fn bench_model_json_reports_efficiency() {
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/models/nawq_x2.onnx");
    let graph = nawqsr_codec::model::import(Path::new(model)).unwrap();
    let gmac = graph.total_macs(48, 64) as f64 / 1e9;
    let mut peaks = std::collections::BTreeMap::new();
    for mode in ["int8", "a16w8", "hybrid", "fp32w8"] {
        let o = nawqsr(&[
            "bench-model",
            "--model",
            model,
            "--input-size",
            "64x48",
            "--mode",
            mode,
            "--threads",
            "2",
            "--runs",
            "3",
            "--json",
        ]);
        assert!(o.status.success(), "{mode}: {}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let got = v["gmac_per_frame"].as_f64().expect("gmac_per_frame");
        assert!(
            (got - gmac).abs() <= 1e-12 * gmac,
            "{mode}: {got} vs {gmac}"
        );
        if mode == "fp32w8" {
            assert!(v["peak_gmacs_per_thread"].is_null(), "{v}");
            assert!(v["efficiency"].is_null(), "{v}");
            continue;
        }
        let peak = v["peak_gmacs_per_thread"].as_f64().expect("peak");
        let eff = v["efficiency"].as_f64().expect("efficiency");
        assert!(peak > 0.0, "{mode}: {v}");
        assert!(eff > 0.0 && eff < 1.5, "{mode}: efficiency {eff}");
        // The definition, from the reported numbers.
        let threads = v["threads"].as_f64().unwrap();
        let fps = 1e3 / v["median_ms"].as_f64().unwrap();
        let want = got * fps / (threads * peak);
        assert!((eff - want).abs() <= 1e-9 * want, "{mode}: {eff} vs {want}");
        peaks.insert(mode, peak);
    }
    // A16W8 costs two INT8 MACs each, so its peak is the lower one, and the hybrid mix
    // (the bundled schedule has both) lies between them. Measured separately, so allow
    // the noise of a shared machine.
    let (p8, p16, ph) = (peaks["int8"], peaks["a16w8"], peaks["hybrid"]);
    assert!(p16 < 0.8 * p8, "int8 {p8}, a16w8 {p16}");
    assert!(
        ph > 0.8 * p16 && ph < 1.25 * p8,
        "hybrid {ph} vs {p16}..{p8}"
    );
    // The human line prints it too.
    let o = nawqsr(&[
        "bench-model",
        "--model",
        model,
        "--input-size",
        "64x48",
        "--runs",
        "1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("efficiency "), "{}", stderr(&o));
}

/// Issue 15: `bench-kernels --json` gives every shape's % of its unit's peak, as
/// the table does (scalar level and one model's shapes keep it short).
#[test]
fn bench_kernels_json_reports_pct_of_peak() {
    let o = nawqsr(&[
        "bench-kernels",
        "--level",
        "scalar",
        "--only",
        "nawq_x4",
        "--min-time",
        "0",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let level = &v["levels"][0];
    assert_eq!(level["level"], "scalar");
    let convs = level["convs"].as_array().unwrap();
    assert!(!convs.is_empty());
    assert!(convs.iter().all(|c| c["model"] == "nawq_x4"), "{v}");
    // The 3-channel first conv is among the shapes.
    assert!(convs.iter().any(|c| c["in_c"] == 3), "{v}");
    for c in convs {
        for (unit, gmacs, peak) in [
            ("int8", "int8_gmacs", "peak_int8_gmacs"),
            ("a16w8", "a16w8_gmacs", "peak_int16_gmacs"),
        ] {
            let pct = c["pct_of_peak"][unit].as_f64().expect("pct_of_peak");
            let want = 100.0 * c[gmacs].as_f64().unwrap() / level[peak].as_f64().unwrap();
            assert!(pct > 0.0 && (pct - want).abs() < 1e-9 * want, "{c}");
        }
    }
    let o = nawqsr(&["bench-kernels", "--only", "nawq_x9"]);
    assert_error(&o, &["--only nawq_x9"]);
}

/// Issue 18 item 4: `calibrate-routing` writes a threshold within the budget
/// into a schedule, `upscale --routing on` runs with it, and bad values name
/// their flag or file.
#[test]
fn calibrate_routing_writes_a_threshold_that_upscale_uses() {
    let dir = tempfile::tempdir().unwrap();
    let calib = calib_dir(dir.path());
    let sched = dir.path().join("s.json");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../schedules/nawq_x2.json"),
        &sched,
    )
    .unwrap();
    let json = dir.path().join("r.json");
    let (s, j) = (sched.to_str().unwrap(), json.to_str().unwrap());
    let o = nawqsr(&[
        "calibrate-routing",
        "--schedule",
        s,
        "--calib",
        calib.to_str().unwrap(),
        "--calib-images",
        "3",
        "--budget",
        "0.05",
        "--json",
        j,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert!(r["calibration_drop_db"].as_f64().unwrap() <= 0.05, "{r}");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&sched).unwrap()).unwrap();
    assert_eq!(v["routing"]["threshold"], r["threshold"]);
    assert_eq!(
        v["routing"]["calibration"]["images"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let img = concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/sample_lr.png");
    let out = dir.path().join("o.png");
    let o = nawqsr(&[
        "upscale",
        img,
        out.to_str().unwrap(),
        "--schedule",
        s,
        "--routing",
        "on",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.exists());
    let o = nawqsr(&["upscale", img, out.to_str().unwrap(), "--routing", "maybe"]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("--routing") && e.contains("on or off"), "{e}");
    assert_error(
        &nawqsr(&["calibrate-routing", "--schedule", "/nx/s.json"]),
        &["--schedule", "/nx/s.json"],
    );
    assert_error(
        &nawqsr(&["calibrate-routing", "--schedule", s, "--budget", "0"]),
        &["--budget"],
    );
}

/// Issue 16: `calibrate` produces a schedule for each replica of a published
/// architecture (RGB and luma, float partitions included: RFDN's strided
/// conv stays in float), and `upscale` runs it in hybrid mode.
#[test]
fn calibrate_and_hybrid_upscale_every_replica() {
    let dir = tempfile::tempdir().unwrap();
    let calib = calib_dir(dir.path());
    let img = concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/sample_lr.png");
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/test-models");
    for (m, s) in [("rfdn", "2"), ("fsrcnn", "2"), ("pan", "2"), ("espcn", "3")] {
        let model = models.join(format!("{m}.onnx"));
        let sched = dir.path().join(format!("{m}.json"));
        let o = nawqsr(&[
            "calibrate",
            "--model",
            model.to_str().unwrap(),
            "--scale",
            s,
            "--calib",
            calib.to_str().unwrap(),
            "--calib-images",
            "3",
            "--max-side",
            "64",
            "--out",
            sched.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{m}: {}", stderr(&o));
        let out = dir.path().join(format!("{m}.png"));
        let o = nawqsr(&[
            "upscale",
            img,
            out.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
            "--schedule",
            sched.to_str().unwrap(),
            "--mode",
            "hybrid",
        ]);
        assert!(o.status.success(), "{m}: {}", stderr(&o));
        let (lw, lh) = image::image_dimensions(img).unwrap();
        let k: u32 = s.parse().unwrap();
        assert_eq!(
            image::image_dimensions(&out).unwrap(),
            (k * lw, k * lh),
            "{m}"
        );
    }
}

/// Issue 16 item 2: the offline flow keeps a layer in float when even
/// A16W8 misses ε. The `outlier` test model's second conv reads an outlier
/// channel: `calibrate` writes it with bits 32, and hybrid `upscale` then
/// matches FP32 where A16W8 visibly does not.
#[test]
fn calibrate_keeps_a_layer_in_float_when_a16w8_misses_epsilon() {
    let dir = tempfile::tempdir().unwrap();
    let calib = calib_dir(dir.path());
    let img = concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/sample_lr.png");
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/test-models/outlier.onnx");
    let model = model.to_str().unwrap();
    let sched = dir.path().join("outlier.json");
    let o = nawqsr(&[
        "calibrate",
        "--model",
        model,
        "--scale",
        "2",
        "--calib",
        calib.to_str().unwrap(),
        "--calib-images",
        "3",
        "--max-side",
        "64",
        // These textured images make nearest-neighbour a poor upscaler, so
        // the outlier's noise costs less than on photographs (0.03 dB here,
        // 0.26 dB on T91/BSD200): ε is set under it.
        "--tolerance",
        "0.01",
        "--out",
        sched.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("kept in float [\"/b/Conv\"]"),
        "{}",
        stderr(&o)
    );
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&sched).unwrap()).unwrap();
    assert_eq!(s["layers"]["/b/Conv"]["bits"], 32, "{}", s["layers"]);
    assert_eq!(s["layers"]["/a/Conv"]["bits"], 8, "{}", s["layers"]);
    let run = |mode: &str, extra: &[&str]| {
        let out = dir.path().join(format!("{mode}.png"));
        let mut args = vec![
            "upscale",
            img,
            out.to_str().unwrap(),
            "--model",
            model,
            "--mode",
            mode,
        ];
        args.extend_from_slice(extra);
        let o = nawqsr(&args);
        assert!(o.status.success(), "{mode}: {}", stderr(&o));
        image::open(&out).unwrap().to_rgb8()
    };
    let fp32 = run("fp32", &[]);
    let hybrid = run("hybrid", &["--schedule", sched.to_str().unwrap()]);
    let a16 = run("a16w8", &[]);
    let mad = |a: &image::RgbImage| {
        a.as_raw()
            .iter()
            .zip(fp32.as_raw())
            .map(|(&x, &y)| (x as f64 - y as f64).abs())
            .sum::<f64>()
            / a.as_raw().len() as f64
    };
    assert!(mad(&hybrid) < 0.1, "hybrid vs fp32: {}", mad(&hybrid));
    assert!(mad(&a16) > 1.0, "a16w8 vs fp32: {}", mad(&a16));
}

/// `eval --json` of `model` ×2 in `mode` on the images of `data` (calibrated
/// on them too), with `extra` arguments.
fn eval_json(model: &Path, data: &Path, mode: &str, extra: &[&str]) -> Output {
    let (model, data) = (model.to_str().unwrap(), data.to_str().unwrap());
    let mut args = vec![
        "eval",
        "--model",
        model,
        "--dataset",
        data,
        "--scale",
        "2",
        "--mode",
        mode,
        "--calib",
        data,
        "--json",
    ];
    args.extend_from_slice(extra);
    nawqsr(&args)
}

/// `eval` scores a luma model (Y through the network, chroma bicubic, as the
/// codec runs it) in float and integer modes.
#[test]
fn eval_scores_a_luma_model() {
    let dir = tempfile::tempdir().unwrap();
    let data = calib_dir(dir.path());
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/test-models/ecbsr.onnx");
    let mut psnr = vec![];
    for mode in ["fp32", "int8"] {
        let o = eval_json(&model, &data, mode, &[]);
        assert!(o.status.success(), "{mode}: {}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let p = v["mean_psnr"].as_f64().unwrap();
        assert!(p.is_finite() && p > 5.0, "{mode}: {p}");
        psnr.push(p);
    }
    // The integer model stays near its float self (random weights, 3 images).
    assert!((psnr[0] - psnr[1]).abs() < 1.0, "{psnr:?}");
}

/// `eval --lr-bits`: a luma model scored on an 8- or 10-bit LR Y plane (the
/// 10-bit one through A16W8 input convs); the two differ, and anything else
/// is a one-line error.
#[test]
fn eval_lr_bits_scores_8_and_10_bit_planes() {
    let dir = tempfile::tempdir().unwrap();
    let data = calib_dir(dir.path());
    let luma = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/models/nawq_luma_x2.onnx");
    let rgb = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/models/nawq_x2.onnx");
    let eval = |model: &Path, bits: &str| eval_json(model, &data, "int8", &["--lr-bits", bits]);
    let psnr = |bits: &str| {
        let o = eval(&luma, bits);
        assert!(o.status.success(), "--lr-bits {bits}: {}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["mean_psnr"].as_f64().unwrap()
    };
    let (p8, p10) = (psnr("8"), psnr("10"));
    assert!(p8 > 20.0 && p10 > 20.0, "{p8} {p10}");
    assert!(p8 != p10, "8- and 10-bit planes scored alike: {p8}");
    let o = eval(&luma, "12");
    assert!(
        !o.status.success() && stderr(&o).contains("expected 8 or 10"),
        "{}",
        stderr(&o)
    );
    let o = eval(&rgb, "10");
    let e = stderr(&o);
    assert!(
        !o.status.success() && e.contains("--lr-bits 10: for luma models"),
        "{e}"
    );
    assert_eq!(e.trim().lines().count(), 1, "one line: {e}");
}
