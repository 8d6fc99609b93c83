//! PIQE against pypiqe (MATLAB piqe.m's numpy port) on the values that
//! tools/piqe_reference.py stored in data/piqe/reference.json: the committed
//! synthetic images always, Set5/Set14 HR and their derived LR/bicubic/SR
//! images when ../shared is present.
//!
//! Both sides score the same MATLAB `rgb2gray` plane, so what is compared is
//! the PIQE algorithm itself. Measured (2026-12-03): the 9 committed images
//! agree within 0.0074 points; of 62 Set5/Set14 HR, LR ×4, bicubic ×4 and SR
//! images, 51 agree within 0.01, the mean |diff| is 0.068 and the worst 1.20
//! (Set14 pepper LR, 1/4 of the pixels, so one 16×16 block whose activity or
//! edge test flips moves the score by ~1 point). The residual is not yet
//! explained (candidates: OpenCV's float blur vs our f64 separable one near the
//! 0.1 thresholds); hence a per-image tolerance of 1.5 points on the shared
//! images with a mean bound of 0.15, and 0.05 on the committed ones.
use std::path::Path;

use nawqsr_codec::engine::{Engine, Plan, Tensor};
use nawqsr_codec::eval::Sample;
use nawqsr_codec::kernels::CpuLevel;
use nawqsr_codec::metrics::{list_images, load_rgb, piqe_rgb, upscale_bicubic};
use nawqsr_codec::model;
use nawqsr_codec::quant::Bits;

mod common;

const TOL_COMMITTED: f64 = 0.05;
const TOL_SHARED: f64 = 1.5;
const TOL_SHARED_MEAN: f64 = 0.15;

fn reference() -> Vec<(String, String, f64)> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/piqe/reference.json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    v["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["image"].as_str().unwrap().to_string(),
                e["source"].as_str().unwrap().to_string(),
                e["piqe"].as_f64().unwrap(),
            )
        })
        .collect()
}

fn check(name: &str, ours: f64, theirs: f64, worst: &mut f64, tol: f64) {
    let d = (ours - theirs).abs();
    *worst = worst.max(d);
    assert!(
        d <= tol,
        "{name}: PIQE {ours:.4}, pypiqe {theirs:.4} (|diff| {d:.4} > {tol})"
    );
}

#[test]
fn committed_images_match_pypiqe() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut worst = 0.0f64;
    let mut n = 0;
    let mut scores = Vec::new();
    for (img, _, r) in reference().into_iter().filter(|e| e.1 == "committed") {
        let p = piqe_rgb(&load_rgb(&dir.join(&img)).unwrap()).unwrap();
        check(&img, p.score, r, &mut worst, TOL_COMMITTED);
        scores.push((img, p.score));
        n += 1;
    }
    assert!(n >= 8, "expected the committed synthetic images, found {n}");
    // The scores must separate the distortions (not all 100 or all equal).
    let first = scores[0].1;
    assert!(
        scores.iter().any(|s| (s.1 - first).abs() > 5.0),
        "{scores:?}"
    );
    println!("{n} committed images: max |PIQE − pypiqe| = {worst:.6}");
}

/// The derived images of examples/piqe_inputs.rs, rebuilt the same way.
fn derived(shared: &Path) -> Vec<(String, image::RgbImage)> {
    let engine = Engine::new(
        model::import_bytes(&model::bundled::load(4).unwrap()).unwrap(),
        CpuLevel::detect(),
        1,
    );
    let plan = Plan::all_dre(&engine.graph, Bits::B8);
    let mut out = Vec::new();
    for set in ["Set5", "Set14"] {
        for p in list_images(&shared.join("datasets").join(set)).unwrap() {
            let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
            let s = Sample::from_hr(stem.clone(), &load_rgb(&p).unwrap(), 4);
            out.push((format!("{set}/{stem}"), load_rgb(&p).unwrap()));
            out.push((format!("{set}_{stem}_bicubic4"), upscale_bicubic(&s.lr, 4)));
            if set == "Set5" {
                let sr = engine
                    .run(&plan, &Tensor::from_rgb(&s.lr))
                    .unwrap()
                    .to_rgb();
                out.push((format!("{set}_{stem}_nawq4"), sr));
            }
            out.push((format!("{set}_{stem}_lr4"), s.lr));
        }
    }
    out
}

#[test]
fn shared_images_match_pypiqe() {
    let Some(shared) = common::shared() else {
        return;
    };
    let refs = reference();
    let mut worst = 0.0f64;
    let mut n = 0;
    let mut sum = 0.0;
    for (name, img) in derived(&shared) {
        let r = refs.iter().find(|e| e.0 == name).unwrap_or_else(|| {
            panic!("{name}: no reference value (rerun tools/piqe_reference.py)")
        });
        let ours = piqe_rgb(&img).unwrap().score;
        println!("{name}: {ours:.4} vs {:.4}", r.2);
        check(&name, ours, r.2, &mut worst, TOL_SHARED);
        sum += (ours - r.2).abs();
        n += 1;
    }
    let mean = sum / n as f64;
    assert!(
        mean <= TOL_SHARED_MEAN,
        "mean |PIQE − pypiqe| {mean:.4} > {TOL_SHARED_MEAN}"
    );
    assert!(
        n >= 50,
        "expected Set5+Set14 HR, LR, bicubic and SR, found {n}"
    );
    println!("{n} shared/derived images: max |PIQE − pypiqe| = {worst:.6}");
}
