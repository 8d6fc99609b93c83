//! `calibrate --latency-target / --pareto`: the quality/latency front on top
//! of the offline flow (`offline::front`), with a host profile, PIQE per
//! point, and the baseline compared in the same run.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use nawqsr_codec::engine::{Engine, Tensor};
use nawqsr_codec::eval::Sample;
use nawqsr_codec::metrics::piqe;
use nawqsr_codec::offline::front::{self, Candidate};
use nawqsr_codec::offline::schedule::{FrontPoint, Pareto, Schedule};
use nawqsr_codec::offline::{Config, Evaluator, Outcome};
use nawqsr_codec::profiler::{Profile, ProfileModel, measure};
use nawqsr_codec::quant::Bits;
use serde_json::{Value, json};

pub struct Args<'a> {
    pub target_ms: Option<f64>,
    pub profile: Option<PathBuf>,
    pub input: (usize, usize),
    pub frames: usize,
    pub threads: usize,
    pub samples: &'a [Sample],
    pub model_sha256: &'a str,
    pub model_file: &'a Path,
    /// Measure the plan chosen for each target on the runtime.
    pub verify: bool,
}

/// Mean PIQE of the plan's outputs over the calibration images.
fn mean_piqe(engine: &Engine, ev: &Evaluator, c: &Config, samples: &[Sample]) -> Result<f64> {
    let ranges = ev.ranges().context("ranges observed")?;
    let plan = c.plan(engine, ranges);
    let mut sum = 0.0;
    for s in samples {
        let out = engine.run(&plan, &Tensor::from_rgb(&s.lr))?;
        sum += piqe::piqe_rgb(&out.to_rgb())?.score;
    }
    Ok(sum / samples.len().max(1) as f64)
}

fn eights(c: &Config) -> usize {
    c.bits.iter().filter(|&&b| b == Bits::B8).count()
}

/// Builds the front, picks the plan for the target (if any), and returns the
/// schedule to write plus a JSON report.
pub fn run(ev: &mut Evaluator, out: &Outcome, a: &Args) -> Result<(Schedule, Value)> {
    let engine = ev.engine();
    let g = &engine.graph;
    let names: Vec<String> = g
        .conv_layers()
        .iter()
        .map(|&i| g.layers[i].name.clone())
        .collect();
    let ranges = ev.ranges().context("ranges observed")?.clone();
    let e = Arc::new(Engine::with_granularity(
        g.clone(),
        engine.level,
        1,
        out.schedule.weights(),
    ));
    let mcfg = |w: usize, h: usize, threads: usize| measure::Config {
        width: w,
        height: h,
        threads,
        frames: a.frames.max(1),
        warmup: 1,
        rounds: 3,
        fit_plans: 6,
        seed: 7 ^ 0x5EED_F17,
    };
    let profile = match &a.profile {
        Some(p) => Profile::load(p, a.model_sha256, &names)?,
        None => {
            let threads = nawqsr_codec::engine::resolve_threads(a.threads);
            let cfg = mcfg(a.input.0, a.input.1, threads);
            let model = ProfileModel {
                file: a
                    .model_file
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                sha256: a.model_sha256.to_string(),
            };
            measure::profile(&e, &ranges, model, &cfg, &[], &mut |what, i, of| {
                eprint!("\rprofiling {:>3}/{of}: {what:<50}", i + 1)
            })?
        }
    };
    eprintln!(
        "\nprofile: {} ({}), {} threads, {}x{}: int8 {:.2} ms, a16w8 {:.2} ms",
        profile.host.cpu,
        profile.host.level,
        profile.host.threads,
        profile.input[0],
        profile.input[1],
        profile.uniform_ms.int8,
        profile.uniform_ms.a16w8
    );
    let f = front::build(ev, &profile, &out.lra, &out.dre, &mut |i, of| {
        eprint!("\rfront {:>3}/{of}", i + 1)
    })?;
    eprintln!();
    let mut points = Vec::with_capacity(f.points.len());
    for c in &f.points {
        let piqe = mean_piqe(engine, ev, &c.config, a.samples)?;
        points.push(FrontPoint {
            bits: c.config.bits.iter().map(|b| b.bits()).collect(),
            dre: c.config.dre.clone(),
            predicted_ms: c.predicted_ms,
            psnr: c.psnr,
            piqe: Some(piqe),
        });
    }
    eprintln!(
        "{:>4} {:>12} {:>10} {:>8} {:>8} {:>5}",
        "pt", "predicted ms", "PSNR dB", "PIQE", "8-bit", "DRE"
    );
    for (k, (p, c)) in points.iter().zip(&f.points).enumerate() {
        eprintln!(
            "{k:>4} {:>12.2} {:>10.4} {:>8.2} {:>5}/{:<2} {:>5}",
            p.predicted_ms,
            p.psnr,
            p.piqe.unwrap_or(f64::NAN),
            eights(&c.config),
            names.len(),
            c.config.dre.iter().filter(|&&d| d).count()
        );
    }
    // The method against the baseline and the uniform modes at a few targets
    // between the INT8 and A16W8 times (and at the requested one).
    let base = front::pareto(f.baseline.clone());
    let uniform = |b: Bits| {
        f.baseline
            .iter()
            .find(|c| c.config.bits.iter().all(|&x| x == b))
    };
    let (t8, t16) = (profile.uniform_ms.int8, profile.uniform_ms.a16w8);
    let mut targets: Vec<f64> = [0.25, 0.5, 0.75]
        .iter()
        .map(|q| t8 + q * (t16 - t8))
        .collect();
    targets.extend(a.target_ms);
    let mut cmp = Vec::new();
    eprintln!(
        "{:>10} {:>22} {:>22} {:>22}",
        "target ms", "LRA-greedy (ms, dB)", "cost-greedy (ms, dB)", "best uniform (ms, dB)"
    );
    for &t in &targets {
        let m = front::choose(&f.points, t);
        let b = front::choose(&base, t);
        let u = [Bits::B16, Bits::B8]
            .into_iter()
            .filter_map(uniform)
            .find(|c| c.predicted_ms <= t);
        let fmt = |c: Option<&Candidate>| {
            c.map_or("-".to_string(), |c| {
                format!("{:.2}, {:.4}", c.predicted_ms, c.psnr)
            })
        };
        // --verify: the chosen plan's real time on the runtime, at the
        // profile's size and threads.
        let measured = match (a.verify, m) {
            (true, Some(c)) => {
                let cfg = mcfg(profile.input[0], profile.input[1], profile.host.threads);
                let frame = measure::test_frame(cfg.width, cfg.height);
                Some(measure::measure_plan(&e, c.config.plan(&e, &ranges), &frame, &cfg)?.ms)
            }
            _ => None,
        };
        eprintln!(
            "{t:>10.2} {:>22} {:>22} {:>22}{}",
            fmt(m),
            fmt(b),
            fmt(u),
            measured.map_or(String::new(), |ms| format!(
                "   measured {ms:.2} ms ({:+.1} % of target)",
                (ms / t - 1.0) * 100.0
            ))
        );
        let j = |c: Option<&Candidate>| {
            c.map(|c| json!({"predicted_ms": c.predicted_ms, "psnr": c.psnr, "bits": c.config.bits.iter().map(|b| b.bits()).collect::<Vec<_>>(), "dre": c.config.dre}))
        };
        cmp.push(
            json!({"target_ms": t, "lra_greedy": j(m), "cost_greedy": j(b), "best_uniform": j(u), "measured_ms": measured}),
        );
    }
    let mut sched = out.schedule.clone();
    let mut chosen = Value::Null;
    if let Some(t) = a.target_ms {
        let c = front::choose(&f.points, t).context("the front has a point")?;
        if c.predicted_ms > t {
            eprintln!(
                "warning: no plan fits {t} ms at {}x{}; the fastest ({:.2} ms) is used",
                profile.input[0], profile.input[1], c.predicted_ms
            );
        }
        sched = sched.with_config(&c.config);
        sched.quality.calibration_psnr = c.psnr;
        eprintln!(
            "latency target {t} ms: plan of {:.2} ms predicted, {:.4} dB, {}/{} layers at 8 bits",
            c.predicted_ms,
            c.psnr,
            eights(&c.config),
            names.len()
        );
        chosen = json!({"predicted_ms": c.predicted_ms, "psnr": c.psnr});
    }
    sched.pareto = Some(Pareto {
        host: format!("{} ({})", profile.host.cpu, profile.host.level),
        threads: profile.host.threads,
        input: profile.input,
        target_ms: a.target_ms,
        points: points.clone(),
    });
    let cand = |c: &Candidate| json!({"predicted_ms": c.predicted_ms, "psnr": c.psnr, "layers_8bit": eights(&c.config), "dre_layers": c.config.dre.iter().filter(|&&d| d).count()});
    let report = json!({
        "profile": {"host": profile.host.cpu, "level": profile.host.level, "threads": profile.host.threads, "input": profile.input, "int8_ms": t8, "a16w8_ms": t16},
        "points": points,
        "lra_greedy": f.method.iter().map(cand).collect::<Vec<_>>(),
        "cost_greedy": f.baseline.iter().map(cand).collect::<Vec<_>>(),
        "targets": cmp,
        "chosen": chosen,
    });
    Ok((sched, report))
}
