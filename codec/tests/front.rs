//! The quality/latency front in schedules (issue 19): the `pareto` field loads
//! and is checked, every point runs bit-identical to the whole-frame engine
//! under its plan, and the profiler's measurements add up on a real runtime.
//!
//! `cargo test --release -p nawqsr-codec --test front`
use std::sync::Arc;

use nawqsr_codec::engine::{Engine, Tensor};
use nawqsr_codec::kernels::CpuLevel;
use nawqsr_codec::model::{self, bundled};
use nawqsr_codec::profiler::{ProfileModel, measure};
use nawqsr_codec::quant::Bits;
use nawqsr_codec::runtime::{Codec, CodecConfig, Mode};
use nawqsr_codec::schedule::{FrontPoint, Pareto, Schedule, find_for_model};

fn bundled_x2() -> (model::Graph, String, Schedule) {
    let m = bundled::load(2).unwrap();
    let g = model::import_bytes(&m).unwrap();
    let sha = m.sha256();
    let s = find_for_model(&sha).unwrap().load(&g, &sha).unwrap();
    (g, sha, s)
}

fn point(bits: Vec<u32>, ms: f64, psnr: f64) -> FrontPoint {
    let n = bits.len();
    FrontPoint {
        bits,
        dre: vec![false; n],
        predicted_ms: ms,
        psnr,
        piqe: None,
    }
}

fn with_front(s: &Schedule, points: Vec<FrontPoint>) -> Schedule {
    let mut s = s.clone();
    s.pareto = Some(Pareto {
        host: "test".into(),
        threads: 1,
        input: [32, 24],
        target_ms: None,
        points,
    });
    s
}

fn frame(w: usize, h: usize) -> Tensor {
    measure::test_frame(w, h)
}

#[test]
fn every_front_point_equals_the_engine_under_its_plan() {
    let (g, _, s) = bundled_x2();
    let n = g.conv_layers().len();
    let mixed: Vec<u32> = (0..n).map(|i| if i % 2 == 0 { 8 } else { 16 }).collect();
    let mut p1 = point(mixed, 2.0, 30.1);
    p1.dre[n - 1] = true;
    let sched = with_front(
        &s,
        vec![
            point(vec![8; n], 1.0, 30.0),
            p1,
            point(vec![16; n], 3.0, 30.2),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("front.json");
    sched.save(&f).unwrap();
    let codec = Codec::new(&CodecConfig {
        schedule: Some(f.clone()),
        mode: Mode::Hybrid,
        scale: Some(2),
        threads: 2,
        patch_size: 5,
        ..Default::default()
    })
    .unwrap();
    let front = codec.front().expect("the schedule's front is loaded");
    assert_eq!(front.points.len(), 3);
    let engine = Engine::with_granularity(g.clone(), CpuLevel::detect(), 1, sched.weights());
    let x = frame(37, 23);
    for k in 0..3 {
        let plan = sched.point_plan(&g, k).unwrap();
        let want = engine.run(&plan, &x).unwrap();
        let got = codec.at_point(k).unwrap().upscale_tensor(&x).unwrap();
        assert_eq!(got.data, want.data, "point {k} differs from the engine");
    }
    // Point 0 is uniform INT8 and point 2 uniform A16W8: their plans say so.
    let p0 = sched.point_plan(&g, 0).unwrap();
    assert!(g.conv_layers().iter().all(|&i| p0.bits(i) == 8));
    let e = codec.at_point(3).err().expect("no point 3").to_string();
    assert!(e.contains("front point 3"), "{e}");
}

#[test]
fn malformed_fronts_are_refused_naming_the_field() {
    let (g, sha, s) = bundled_x2();
    let n = g.conv_layers().len();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.json");
    let cases = [
        (
            vec![point(vec![8; n - 1], 1.0, 30.0)],
            "pareto.points[0].bits",
        ),
        (vec![point(vec![4; n], 1.0, 30.0)], "expected 8 or 16"),
        (
            vec![point(vec![8; n], 2.0, 30.0), point(vec![16; n], 1.0, 30.2)],
            "pareto.points[1].predicted_ms",
        ),
        (
            vec![point(vec![8; n], -1.0, 30.0)],
            "pareto.points[0].predicted_ms",
        ),
        // NaN is written as null: a type error, still naming the field.
        (vec![point(vec![8; n], f64::NAN, 30.0)], "field `pareto`"),
        (vec![], "pareto.points"),
    ];
    for (points, want) in cases {
        with_front(&s, points).save(&f).unwrap();
        let e = Schedule::load(&f, &g, &sha).unwrap_err().to_string();
        assert!(e.contains(want) && e.contains("bad.json"), "{want}: {e}");
    }
    // Without the field the schedule is as before (no front).
    s.save(&f).unwrap();
    assert!(Schedule::load(&f, &g, &sha).unwrap().pareto.is_none());
}

#[test]
fn profile_of_the_bundled_model_is_complete_and_adds_up() {
    let (g, sha, s) = bundled_x2();
    let n = g.conv_layers().len();
    let ranges = s.ranges(&g);
    let engine = Arc::new(Engine::with_granularity(
        g.clone(),
        CpuLevel::detect(),
        1,
        s.weights(),
    ));
    let cfg = measure::Config {
        width: 48,
        height: 32,
        threads: 2,
        frames: 2,
        warmup: 1,
        rounds: 2,
        fit_plans: 3,
        seed: 5,
    };
    let checks = vec![("int8".to_string(), vec![Bits::B8; n], vec![false; n])];
    let mut seen = 0;
    let p = measure::profile(
        &engine,
        &ranges,
        ProfileModel {
            file: "nawq_x2.onnx".into(),
            sha256: sha.clone(),
        },
        &cfg,
        &checks,
        &mut |_, _, _| seen += 1,
    )
    .unwrap();
    // 4 uniform plans, 3 fit plans, 1 check, each in 2 rounds.
    assert_eq!(seen, 2 * (4 + 3 + 1));
    assert_eq!(p.layers.len(), n);
    assert_eq!(p.edges.len(), n - 1);
    assert!(!p.host.cpu.is_empty() && p.host.level == CpuLevel::detect().name());
    assert!(p.layers.iter().all(|l| l.ms.int8 > 0.0 && l.ms.a16w8 > 0.0));
    // The segments add up to the measured uniform times (by construction of
    // the scaling), so the model reproduces both uniform plans exactly.
    let sum8: f64 = p.layers.iter().map(|l| l.ms.int8).sum();
    assert!((sum8 - p.uniform_ms.int8).abs() < 1e-9 * sum8.max(1.0));
    assert_eq!(p.predict(&vec![Bits::B8; n], &vec![false; n]), sum8);
    assert_eq!(p.check.len(), 1);
    assert!(p.check[0].measured_ms > 0.0);
    // The switch costs come from the fit plans: one per direction, on every
    // edge, and they explain the fit plans' left-over time by least squares.
    let fit = p.switch_fit.as_ref().expect("fitted switch costs");
    assert_eq!((fit.plans, fit.residual_ms.len()), (3, 3));
    let e0 = &p.edges[0];
    assert!(e0.up_ms.is_finite() && e0.down_ms.is_finite());
    assert!(
        p.edges
            .iter()
            .all(|e| (e.up_ms, e.down_ms) == (e0.up_ms, e0.down_ms))
    );
    // And it round-trips through its file format with the model's checks.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("p.json");
    p.save(&f).unwrap();
    let names: Vec<String> = g
        .conv_layers()
        .iter()
        .map(|&i| g.layers[i].name.clone())
        .collect();
    let back = nawqsr_codec::profiler::Profile::load(&f, &sha, &names).unwrap();
    // serde_json's float parsing may differ from the written value in the last
    // bit; everything else is exact.
    assert_eq!(
        (back.layers.len(), back.edges.len(), &back.host),
        (n, n - 1, &p.host)
    );
    assert!((back.uniform_ms.a16w8 - p.uniform_ms.a16w8).abs() <= 1e-12 * p.uniform_ms.a16w8);
}
