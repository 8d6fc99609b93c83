//! The offline flow (Fig. 2): GetBOPs, QuantSR-WLopt (Alg. 1), LRA (Alg. 2),
//! DRE selection (Alg. 3) and the schedule file. Real-engine tests use
//! IMDN_RTC_x2 on three small calibration crops so they stay fast; they skip
//! with a notice when ../shared is absent.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use nawqsr_codec::engine::{Engine, Plan};
use nawqsr_codec::kernels::CpuLevel;
use nawqsr_codec::model::{self, Conv, Graph, Layer, Op, Spatial, ValueShape};
use nawqsr_codec::offline::lra::LraEntry;
use nawqsr_codec::offline::schedule::{self, CalibrationId};
use nawqsr_codec::offline::{
    self, Config, Evaluator, Options, Outcome, Schedule, bops, dre_select, wlopt,
};
use nawqsr_codec::quant::{Bits, WeightGranularity};

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared");
const EPS: f64 = 0.02;

fn shared() -> Option<PathBuf> {
    let p = PathBuf::from(SHARED);
    if p.join("models/IMDN_RTC_x2.onnx").is_file() {
        Some(p)
    } else {
        eprintln!("skipping: {SHARED} (models, datasets) not found");
        None
    }
}

fn rtc(shared: &Path) -> PathBuf {
    shared.join("models/IMDN_RTC_x2.onnx")
}

/// One calibration of IMDN_RTC_x2 on 3 crops, shared by the tests, with a tight
/// ε so that WLopt rejects some layers.
struct Run {
    outcome: Outcome,
    macs: Vec<u64>,
    /// Qualities re-measured after the fact, by configuration.
    requality: HashMap<String, f64>,
}

fn run() -> Option<&'static Run> {
    static RUN: OnceLock<Option<Run>> = OnceLock::new();
    RUN.get_or_init(|| {
        let shared = shared()?;
        let path = rtc(&shared);
        let graph = model::import(&path).expect("import");
        let engine = Engine::new(graph, CpuLevel::detect(), 1);
        let dirs = offline::default_calib_dirs(&shared);
        let samples = offline::calibration_set(&dirs, 2, 3, 7, 64).expect("calibration set");
        let mut ev = Evaluator::new(&engine, &samples, 0).expect("evaluator");
        let opts = Options {
            tolerance_db: EPS,
            energy: 0.125,
            model_path: path.clone(),
            model_sha256: model::file_sha256(&path).unwrap(),
            weights: WeightGranularity::PerChannel,
            calibration: CalibrationId {
                dirs: dirs.iter().map(|d| d.display().to_string()).collect(),
                seed: 7,
                max_side: 64,
                images: samples.iter().map(|s| s.name.clone()).collect(),
            },
        };
        let mut steps = 0;
        let outcome = offline::calibrate(&mut ev, &opts, &mut |_| steps += 1).expect("calibrate");
        let n = engine.graph.conv_layers().len();
        assert_eq!(
            steps,
            offline::calibrate_steps(n),
            "one progress report per evaluation"
        );
        // Re-measure the selected design from scratch (no memo).
        ev.clear_cache();
        let wl = Config::integer(outcome.wlopt.bits.clone(), vec![false; n]);
        let mut requality = HashMap::new();
        requality.insert("wlopt".to_string(), ev.quality(&wl).unwrap());
        let macs = bops::conv_macs(&engine.graph);
        Some(Run {
            outcome,
            macs,
            requality,
        })
    })
    .as_ref()
}

/// A two-conv graph: 3→4 3×3 then 4→2 1×1 on LR-sized maps.
fn tiny_graph() -> Graph {
    let conv = |in_c, out_c, k| {
        Op::Conv(Conv {
            in_c,
            out_c,
            kh: k,
            kw: k,
            stride: 1,
            dilation: 1,
            pads: [k / 2; 4],
            groups: 1,
            weights: vec![0.01; out_c * in_c * k * k],
            bias: vec![0.0; out_c],
        })
    };
    let img = |c| ValueShape {
        channels: c,
        spatial: Spatial::Image { factor: 1 },
    };
    Graph {
        layers: vec![
            Layer {
                name: "a".into(),
                op: conv(3, 4, 3),
                inputs: vec![0],
                outputs: vec![1],
            },
            Layer {
                name: "b".into(),
                op: conv(4, 2, 1),
                inputs: vec![1],
                outputs: vec![2],
            },
        ],
        values: vec![img(3), img(4), img(2)],
        value_names: vec!["lr".into(), "x".into(), "y".into()],
        input: 0,
        output: 2,
        scale: 1,
    }
}

#[test]
fn bops_by_hand_on_a_tiny_graph() {
    let g = tiny_graph();
    let px = (bops::REF_LR.0 * bops::REF_LR.1) as u64; // 57 600
    // a: 4·3·3·3 = 108 MACs per pixel; b: 2·4 = 8.
    assert_eq!(bops::conv_macs(&g), vec![108 * px, 8 * px]);
    assert_eq!(bops::conv_macs(&g), vec![6_220_800, 460_800]);
    let macs = bops::conv_macs(&g);
    assert_eq!(
        bops::bops(&macs, &[Bits::B8, Bits::B16]),
        6_220_800 + 2 * 460_800
    );
    assert_eq!(bops::bops(&macs, &[Bits::B16, Bits::B16]), 2 * 6_681_600);
    assert_eq!(bops::bops(&macs, &[Bits::B8, Bits::B8]), 6_681_600);
    // Float convs (FP32 activations) weigh 4.
    assert_eq!(bops::plan_bops(&g, &Plan::fp32w8(&g)), 4 * 6_681_600);
    let r = bops::reduction_vs_a16w8(&macs, &[Bits::B8, Bits::B16]);
    assert!((r - 13_363_200.0 / 7_142_400.0).abs() < 1e-12);
}

/// A synthetic quality oracle: each 8-bit layer costs a fixed amount of dB.
#[test]
fn wlopt_on_a_synthetic_oracle() {
    let macs = [10u64, 50, 50, 30, 5];
    let cost = [0.005, 0.06, 0.03, 0.05, 0.02];
    let mut q = |c: &Config| -> nawqsr_codec::Result<f64> {
        Ok(30.0
            - c.bits
                .iter()
                .zip(cost)
                .map(|(b, d)| if *b == Bits::B8 { d } else { 0.0 })
                .sum::<f64>())
    };
    let r = wlopt::wlopt(&mut q, &macs, 30.0, 0.1, &mut |_, _, _| {}).unwrap();
    // Order: 50 (pos 1), 50 (pos 2, tie keeps layer order), 30, 10, 5.
    assert_eq!(
        r.trace.iter().map(|s| s.pos).collect::<Vec<_>>(),
        vec![1, 2, 3, 0, 4]
    );
    // pos1 −0.06 ok; pos2 −0.09 ok; pos3 −0.14 no; pos0 −0.095 ok; pos4 −0.115 no.
    assert_eq!(
        r.trace.iter().map(|s| s.accepted).collect::<Vec<_>>(),
        vec![true, true, false, true, false]
    );
    assert_eq!(
        r.bits,
        vec![Bits::B8, Bits::B8, Bits::B8, Bits::B16, Bits::B16]
    );
    assert!((r.quality - 29.905).abs() < 1e-9);
    assert_eq!(r.bops, 10 + 50 + 50 + 2 * 30 + 2 * 5);
    check_heavier_first(&r, &macs, 30.0, 0.1);
}

/// The paper's property (§4.1): if a heavier layer a stayed at 16 bits while a
/// cheaper layer b went to 8, then a was tried first and violated ε.
fn check_heavier_first(r: &wlopt::WlResult, macs: &[u64], q_ref: f64, eps: f64) {
    let step: HashMap<usize, (usize, &wlopt::WlStep)> = r
        .trace
        .iter()
        .enumerate()
        .map(|(k, s)| (s.pos, (k, s)))
        .collect();
    assert_eq!(step.len(), macs.len(), "every layer examined exactly once");
    for a in 0..macs.len() {
        for b in 0..macs.len() {
            if r.bits[a] == Bits::B16 && r.bits[b] == Bits::B8 && macs[a] > macs[b] {
                let (ka, sa) = step[&a];
                let (kb, _) = step[&b];
                assert!(ka < kb, "heavier layer {a} examined after cheaper {b}");
                assert!(
                    !sa.accepted && q_ref - sa.quality > eps,
                    "layer {a} rejected without violating ε: {sa:?}"
                );
            }
        }
    }
}

#[test]
fn wlopt_meets_the_constraint_on_its_calibration_set() {
    let Some(run) = run() else { return };
    let o = &run.outcome;
    let wl = &o.wlopt;
    // The constraint of Eq. (2), on the reported and on a fresh measurement.
    assert!(
        o.q_ref - wl.quality <= EPS,
        "q_ref {} vs WLopt {}",
        o.q_ref,
        wl.quality
    );
    assert_eq!(
        run.requality["wlopt"], wl.quality,
        "memoised quality = fresh pass"
    );
    // Accepted steps are exactly the 8-bit layers, and each met ε when taken.
    for s in &wl.trace {
        assert_eq!(s.accepted, wl.bits[s.pos] == Bits::B8);
        assert_eq!(s.accepted, o.q_ref - s.quality <= EPS);
    }
    // Visited by decreasing BOPs.
    assert!(wl.trace.windows(2).all(|w| w[0].bops16 >= w[1].bops16));
    check_heavier_first(wl, &run.macs, o.q_ref, EPS);
    assert_eq!(wl.bops, bops::bops(&run.macs, &wl.bits));
    // Reference per §5: FP32W8 only if weight quantization alone costs ≥ ε.
    let expect = if o.fp32 - o.fp32w8 >= EPS {
        o.fp32w8
    } else {
        o.fp32
    };
    assert_eq!(o.q_ref, expect);
    eprintln!(
        "RTC_x2 ε={EPS}: {} of {} layers at 8 bits, BOPs ×{:.3}, q {:.4} (ref {:.4}), DRE {:?}",
        wl.bits.iter().filter(|b| **b == Bits::B8).count(),
        wl.bits.len(),
        wl.reduction,
        wl.quality,
        o.q_ref,
        o.dre
    );
}

#[test]
fn dre_selection_by_energy() {
    let e = |pos, drop| LraEntry {
        pos,
        quality: 0.0,
        drop,
    };
    // Sorted drops 0.3, 0.2, 0.1, 0, −0.1: energies .09 .13 .14 .14 .15.
    let sorted = vec![e(4, 0.3), e(0, 0.2), e(2, 0.1), e(1, 0.0), e(3, -0.1)];
    assert!(dre_select::select(&sorted, 0.0).is_empty());
    assert_eq!(
        dre_select::select(&sorted, 0.5),
        Vec::<usize>::new(),
        ".09/.15 = 0.6 > 0.5"
    );
    assert_eq!(dre_select::select(&sorted, 0.6), vec![4]);
    assert_eq!(dre_select::select(&sorted, 0.9), vec![4, 0]);
    assert_eq!(
        dre_select::select(&sorted, 1.0),
        vec![4, 0, 2, 3],
        "all but the zero drop"
    );
    assert!(dre_select::select(&[e(0, 0.0), e(1, 0.0)], 1.0).is_empty());

    let Some(run) = run() else { return };
    let lra = &run.outcome.lra;
    assert!(
        lra.windows(2).all(|w| w[0].drop >= w[1].drop),
        "LRA sorted by decreasing drop"
    );
    assert!(dre_select::select(lra, 0.0).is_empty());
    let mut all = dre_select::select(lra, 1.0);
    all.sort();
    let mut nonzero: Vec<usize> = lra
        .iter()
        .filter(|x| x.drop != 0.0)
        .map(|x| x.pos)
        .collect();
    nonzero.sort();
    assert_eq!(all, nonzero);
    // The scheduled DRE set is Alg. 3 at the schedule's K.
    assert_eq!(run.outcome.dre, dre_select::select(lra, 0.125));
}

/// JSON equality with numbers compared to 1e-12 relative.
fn json_close(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value as V;
    match (a, b) {
        (V::Number(x), V::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            (x - y).abs() <= 1e-12 * x.abs().max(y.abs())
        }
        (V::Array(x), V::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_close(p, q))
        }
        (V::Object(x), V::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_close(v, w)))
        }
        _ => a == b,
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn load_err(path: &Path, graph: &Graph, sha: &str) -> String {
    let e = Schedule::load(path, graph, sha)
        .expect_err("must be rejected")
        .to_string();
    assert!(!e.contains('\n'), "one line: {e}");
    assert!(
        e.contains(&path.display().to_string()),
        "names the file: {e}"
    );
    e
}

#[test]
fn schedule_round_trips_and_rejects_bad_files() {
    let Some(run) = run() else { return };
    let shared = shared().unwrap();
    let path = rtc(&shared);
    let graph = model::import(&path).unwrap();
    let sha = model::file_sha256(&path).unwrap();
    let s = &run.outcome.schedule;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rtc.json");
    s.save(&file).unwrap();
    s.save(&file).unwrap(); // overwrite in place
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("rtc.json")],
        "no temporary file left behind"
    );

    let back = Schedule::load(&file, &graph, &sha).unwrap();
    // f32 fields (s, z, ranges) round-trip exactly; serde_json's f64 parser
    // may be 1 ulp off on the informative f64 fields.
    assert_eq!(
        back.layers
            .iter()
            .map(|(k, l)| (k, l.bits, l.scale, l.zero, l.dre, l.range))
            .collect::<Vec<_>>(),
        s.layers
            .iter()
            .map(|(k, l)| (k, l.bits, l.scale, l.zero, l.dre, l.range))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        (
            &back.model,
            &back.calibration,
            &back.partitions,
            back.cost.bops
        ),
        (&s.model, &s.calibration, &s.partitions, s.cost.bops)
    );
    assert!(json_close(
        &serde_json::to_value(&back).unwrap(),
        &serde_json::to_value(s).unwrap()
    ));
    // The plan is ⟨b, s, z, d⟩ of the calibration run exactly.
    let engine = Engine::new(graph.clone(), CpuLevel::detect(), 1);
    let n = graph.conv_layers().len();
    let mut cfg = Config::integer(run.outcome.wlopt.bits.clone(), vec![false; n]);
    for &p in &run.outcome.dre {
        cfg.dre[p] = true;
    }
    let ranges = {
        let mut r = nawqsr_codec::engine::Ranges::empty(&graph);
        for (i, (_, l)) in graph.conv_layers().into_iter().zip(&s.layers) {
            r.observe(i, l.range[0], l.range[1]);
        }
        r
    };
    assert_eq!(back.plan(&graph), cfg.plan(&engine, &ranges));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("\"version\": 1"), "pretty and versioned");
    // Partitions: runs of equal (bits, dre) covering every conv once, in order.
    let flat: Vec<&str> = s
        .partitions
        .iter()
        .flat_map(|p| p.layers.iter().map(String::as_str))
        .collect();
    let convs: Vec<&str> = graph
        .conv_layers()
        .iter()
        .map(|&i| graph.layers[i].name.as_str())
        .collect();
    assert_eq!(flat, convs);
    assert!(
        s.partitions
            .windows(2)
            .all(|w| (w[0].bits, w[0].dre) != (w[1].bits, w[1].dre))
    );

    // Another model: hash differs.
    let x2 = shared.join("models/IMDN_x2.onnx");
    if x2.is_file() {
        let g2 = model::import(&x2).unwrap();
        let e = load_err(&file, &g2, &model::file_sha256(&x2).unwrap());
        assert!(e.contains("model.sha256"), "{e}");
    }
    // Same hash claimed, but the layer names differ.
    let first = &s.layers[0].0;
    let renamed = text.replacen(&format!("\"{first}\""), "\"/not/a/layer\"", 1);
    let e = load_err(&write(dir.path(), "renamed.json", &renamed), &graph, &sha);
    assert!(e.contains("layers./not/a/layer"), "{e}");
    // Truncated.
    let e = load_err(
        &write(dir.path(), "trunc.json", &text[..text.len() / 2]),
        &graph,
        &sha,
    );
    assert!(e.contains("truncated"), "{e}");
    let e = load_err(&write(dir.path(), "empty.json", ""), &graph, &sha);
    assert!(e.contains("truncated"), "{e}");
    // Wrong version.
    let e = load_err(
        &write(
            dir.path(),
            "v2.json",
            &text.replacen("\"version\": 1", "\"version\": 2", 1),
        ),
        &graph,
        &sha,
    );
    assert!(
        e.contains("field `version`") && e.contains("expected 1"),
        "{e}"
    );
    // A bad wordlength.
    let bad =
        text.replacen("\"bits\": 8", "\"bits\": 12", 1)
            .replacen("\"bits\": 16", "\"bits\": 12", 1);
    let e = load_err(&write(dir.path(), "bits.json", &bad), &graph, &sha);
    assert!(
        e.contains(".bits") && e.contains("expected 8, 16, or 32"),
        "{e}"
    );
    // A missing field inside a section.
    let e = load_err(
        &write(
            dir.path(),
            "nosha.json",
            &text.replacen("\"sha256\"", "\"sha\"", 1),
        ),
        &graph,
        &sha,
    );
    assert!(e.contains("field `model`"), "{e}");
    // Partitions that disagree with the layers.
    let flipped = text.replacen("\"dre\": false", "\"dre\": true", 1);
    let e = load_err(&write(dir.path(), "parts.json", &flipped), &graph, &sha);
    assert!(e.contains("field `partitions`"), "{e}");
    // Not JSON at all.
    let e = load_err(&write(dir.path(), "junk.json", "hello"), &graph, &sha);
    assert!(e.contains("malformed"), "{e}");
}

#[test]
fn schedule_partitions_by_hand() {
    let n = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let p = schedule::partitions(
        &n(&["a", "b", "c", "d", "e"]),
        &[8, 8, 16, 16, 8],
        &[false, false, false, true, true],
    );
    let got: Vec<(u32, bool, Vec<String>)> =
        p.into_iter().map(|p| (p.bits, p.dre, p.layers)).collect();
    assert_eq!(
        got,
        vec![
            (8, false, n(&["a", "b"])),
            (16, false, n(&["c"])),
            (16, true, n(&["d"])),
            (8, true, n(&["e"]))
        ]
    );
}

#[test]
fn baselines_on_a_synthetic_oracle() {
    use nawqsr_codec::offline::search;
    use std::time::Duration;
    let macs: Vec<u64> = (1..=12).map(|i| 10 * i).collect();
    // Each 8-bit layer costs 0.01 dB: any 10 of the 12 layers fit in ε = 0.1.
    let mut q = |c: &Config| -> nawqsr_codec::Result<f64> {
        Ok(30.0 - 0.01 * c.bits.iter().filter(|b| **b == Bits::B8).count() as f64)
    };
    let budget = Duration::from_millis(50);
    for r in [
        search::simulated_annealing(&mut q, &macs, 30.0, 0.1005, budget, 1).unwrap(),
        search::genetic(&mut q, &macs, 30.0, 0.1005, budget, 1).unwrap(),
    ] {
        let best = r.best.expect("uniform A16W8 is feasible");
        assert!(best.iter().filter(|b| **b == Bits::B8).count() <= 10);
        assert!((r.reduction - bops::reduction_vs_a16w8(&macs, &best)).abs() < 1e-12);
        assert!(r.reduction >= 1.0 && r.evaluations > 1);
    }
    // WLopt's optimum here: the 10 heaviest layers at 8 bits.
    let wl = wlopt::wlopt(&mut q, &macs, 30.0, 0.1005, &mut |_, _, _| {}).unwrap();
    assert_eq!(
        wl.bits.iter().take(2).collect::<Vec<_>>(),
        vec![&Bits::B16, &Bits::B16]
    );
    assert!(wl.bits.iter().skip(2).all(|b| *b == Bits::B8));
    // RandDRE: between 1 and n layers, reproducible per seed.
    for seed in 0..20 {
        let d = search::rand_dre(12, seed);
        assert!((1..=12).contains(&d.iter().filter(|x| **x).count()));
        assert_eq!(d, search::rand_dre(12, seed));
    }
}
