//! `nawqsr calibrate`: the offline flow of Fig. 2 (WLopt, LRA, DRE selection)
//! on a calibration set, writing an execution schedule. Optionally runs the
//! Table 1 baselines (simulated annealing, genetic algorithm) with WLopt's
//! wall-clock time as their budget.
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use nawqsr_codec::engine::Engine;
use nawqsr_codec::kernels::CpuLevel;
use nawqsr_codec::model;
use nawqsr_codec::offline::{self, Config, Evaluator, Options, bops, dre_select, schedule, search};
use nawqsr_codec::quant::{Bits, WeightGranularity};
use serde_json::json;

#[derive(clap::Args)]
pub struct Args {
    /// ONNX SR model.
    #[arg(long)]
    model: PathBuf,
    /// Directory of calibration HR images; repeat to sample from several
    /// (default: ../shared/datasets/train/T91 and BSD200, disjoint from Set5/Set14).
    #[arg(long)]
    calib: Vec<PathBuf>,
    /// Images sampled (uniformly, without replacement) from the calibration directories.
    #[arg(long, default_value_t = 10)]
    calib_images: usize,
    /// Seed of the calibration sample.
    #[arg(long, default_value_t = 0x5eed)]
    seed: u64,
    /// HR centre crop of each calibration image, pixels per side at most.
    #[arg(long, default_value_t = 256)]
    max_side: u32,
    /// Upscaling factor; must match the model.
    #[arg(long)]
    scale: usize,
    /// Quality-drop tolerance ε in dB (Eq. 2).
    #[arg(long, default_value_t = 0.1)]
    tolerance: f64,
    /// Energy concentration threshold K ∈ [0, 1] for DRE layer selection (Alg. 3).
    #[arg(long, default_value_t = 0.125)]
    energy: f64,
    /// Also report the calibration PSNR of the DRE selection at each of these K
    /// (comma-separated), on the same wordlengths: the grid §5 tunes K with.
    #[arg(long, value_delimiter = ',')]
    energy_grid: Vec<f64>,
    /// Schedule file to write (atomically).
    #[arg(long)]
    out: PathBuf,
    /// 8-bit weight scales: per-channel (default) or per-tensor.
    #[arg(long, default_value = "per-channel")]
    weights: String,
    /// Worker threads (0 = all cores); calibration images run in parallel.
    #[arg(long, default_value_t = 0, value_parser = crate::media::parse_threads)]
    threads: usize,
    /// Also run simulated annealing and the genetic algorithm this many times
    /// each, with WLopt's run time as budget (Table 1).
    #[arg(long, default_value_t = 0)]
    baselines: usize,
    /// Latency target in ms per frame (FYE-SR): the schedule's plan becomes the
    /// best-PSNR plan of the quality/latency front whose profiled time fits it,
    /// and the front is stored in the schedule.
    #[arg(long)]
    latency_target: Option<f64>,
    /// Store the whole quality/latency Pareto front in the schedule (the plans
    /// the element moves along under its `latency-target`).
    #[arg(long)]
    pareto: bool,
    /// Host profile (`nawqsr profile`) the times come from; default: profile
    /// this host now at --input-size.
    #[arg(long)]
    profile: Option<PathBuf>,
    /// LR frame size the latency target is for, WxH (without --profile).
    #[arg(long, default_value = "960x540")]
    input_size: String,
    /// With --pareto / --latency-target: run the plan chosen for each reported
    /// target on the runtime and print its measured time next to the target.
    #[arg(long)]
    verify: bool,
    /// Profiled frames per plan (without --profile).
    #[arg(long, default_value_t = 9)]
    profile_frames: usize,
    /// One JSON object on stdout.
    #[arg(long)]
    json: bool,
}

mod latency;

pub fn run(a: Args) -> Result<()> {
    if !(2..=4).contains(&a.scale) {
        bail!("--scale {}: invalid (expected 2, 3 or 4)", a.scale);
    }
    if !(0.0..=1.0).contains(&a.energy) {
        bail!("--energy {}: invalid (expected 0 ≤ K ≤ 1)", a.energy);
    }
    if !(a.tolerance.is_finite() && a.tolerance >= 0.0) {
        bail!(
            "--tolerance {}: invalid (expected a finite value ≥ 0 dB)",
            a.tolerance
        );
    }
    if let Some(t) = a.latency_target
        && !(t.is_finite() && t > 0.0)
    {
        bail!("--latency-target {t}: invalid (expected a time in ms > 0)");
    }
    let input_size = crate::bench_model::parse_size(&a.input_size)?;
    let weights = match a.weights.as_str() {
        "per-channel" => WeightGranularity::PerChannel,
        "per-tensor" => WeightGranularity::PerTensor,
        w => bail!("--weights {w}: invalid (expected per-channel or per-tensor)"),
    };
    let t0 = Instant::now();
    let graph = model::import(&a.model)?;
    if graph.scale != a.scale {
        bail!(
            "--scale {}: model {} upscales ×{}",
            a.scale,
            a.model.display(),
            graph.scale
        );
    }
    let sha = model::file_sha256(&a.model)?;
    let dirs = if a.calib.is_empty() {
        offline::default_calib_dirs(&PathBuf::from("../shared"))
    } else {
        a.calib.clone()
    };
    let samples = offline::calibration_set(&dirs, a.scale, a.calib_images, a.seed, a.max_side)
        .with_context(|| {
            format!(
                "--calib {}",
                dirs.iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
    // One engine thread: the evaluator runs one calibration image per core.
    let engine = Engine::with_granularity(graph, CpuLevel::detect(), 1, weights);
    let mut ev = Evaluator::new(&engine, &samples, a.threads)?;
    let n = engine.graph.conv_layers().len();
    let names: Vec<String> = engine
        .graph
        .conv_layers()
        .iter()
        .map(|&i| engine.graph.layers[i].name.clone())
        .collect();
    eprintln!(
        "calibrating {} (×{}, {n} conv layers) on {} images of {} with ε = {} dB, K = {}",
        a.model.display(),
        a.scale,
        samples.len(),
        dirs.iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(" + "),
        a.tolerance,
        a.energy
    );

    let opts = Options {
        tolerance_db: a.tolerance,
        energy: a.energy,
        model_path: a.model.clone(),
        model_sha256: sha,
        weights,
        calibration: schedule::CalibrationId {
            dirs: dirs.iter().map(|d| d.display().to_string()).collect(),
            seed: a.seed,
            max_side: a.max_side,
            images: samples.iter().map(|s| s.name.clone()).collect(),
        },
    };
    let bar = ProgressBar::new(offline::calibrate_steps(n) as u64);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg} (ETA {eta})")
            .expect("static template")
            .progress_chars("=> "),
    );
    let out = offline::calibrate(&mut ev, &opts, &mut |p| {
        let layer = p.layer.map(|l| format!(" {l}")).unwrap_or_default();
        bar.set_message(format!(
            "{} {}/{}{layer}: {:.4} dB, BOPs ×{:.3}",
            p.stage,
            p.index + 1,
            p.of,
            p.quality,
            p.reduction
        ));
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    let (schedule, front_json) = if a.latency_target.is_some() || a.pareto {
        let (s, j) = latency::run(
            &mut ev,
            &out,
            &latency::Args {
                target_ms: a.latency_target,
                profile: a.profile.clone(),
                input: input_size,
                frames: a.profile_frames,
                threads: a.threads,
                samples: &samples,
                model_sha256: &opts.model_sha256,
                model_file: &a.model,
                verify: a.verify,
            },
        )?;
        (s, Some(j))
    } else {
        (out.schedule.clone(), None)
    };
    schedule.save(&a.out)?;
    let s = &schedule;
    let n8 = out
        .wlopt
        .bits
        .iter()
        .zip(&out.float.float)
        .filter(|&(&b, &f)| b == Bits::B8 && !f)
        .count();
    let float_names: Vec<&str> = (0..n)
        .filter(|&p| out.float.float[p])
        .map(|p| names[p].as_str())
        .collect();
    let dre_names: Vec<&str> = out.dre.iter().map(|&p| names[p].as_str()).collect();
    eprintln!(
        "calibration PSNR: FP32 {:.4}, FP32W8 {:.4}, A16W8 {:.4} → reference {:?} {:.4} dB (ε {} dB)",
        out.fp32, out.fp32w8, out.a16w8, out.reference, out.q_ref, a.tolerance
    );
    if !out.float.trace.is_empty() {
        // A16W8 missed ε: the float partitions chosen before WLopt.
        eprintln!(
            "float: A16W8 misses ε; {} layers kept in float {:?} → {:.4} dB",
            float_names.len(),
            float_names,
            out.float.quality
        );
    }
    eprintln!(
        "WLopt: {n8}/{n} layers at 8 bits, {:.4} dB, BOPs reduction vs A16W8 ×{:.3} ({:.1} s)",
        out.wlopt.quality,
        s.cost.reduction_vs_a16w8,
        out.wlopt.elapsed.as_secs_f64()
    );
    eprintln!(
        "DRE (K = {}): {} layers {:?} → {:.4} dB",
        a.energy,
        out.dre.len(),
        dre_names,
        out.final_quality
    );
    eprintln!(
        "wrote {} ({} partitions) in {:.1} s ({} engine passes)",
        a.out.display(),
        s.partitions.len(),
        t0.elapsed().as_secs_f64(),
        ev.passes
    );

    // §5: K is tuned by a grid; one extra pass per K on the WLopt wordlengths.
    let mut grid = Vec::new();
    for &k in &a.energy_grid {
        if !(0.0..=1.0).contains(&k) {
            bail!("--energy-grid {k}: invalid (expected 0 ≤ K ≤ 1)");
        }
        let sel = dre_select::select(&out.lra, k);
        let mut c = Config {
            bits: out.wlopt.bits.clone(),
            dre: vec![false; n],
            float: out.float.float.clone(),
        };
        for &p in &sel {
            c.dre[p] = true;
        }
        let q = ev.quality(&c)?;
        eprintln!(
            "K = {k}: {} DRE layers → {q:.4} dB ({:+.4} dB vs w/o DRE)",
            sel.len(),
            q - out.wlopt.quality
        );
        grid.push(json!({"energy": k, "dre_layers": sel.len(), "psnr": q}));
    }

    // Table 1: the same budget as WLopt's pass, cache cleared for each run.
    let mut baselines = Vec::new();
    if a.baselines > 0 {
        let macs = bops::conv_macs(&engine.graph);
        let a16 = Config::uniform(n, Bits::B16);
        let budget = out.wlopt.elapsed;
        for (name, which) in [("sa", 0), ("ga", 1)] {
            let mut runs = Vec::new();
            for r in 0..a.baselines {
                ev.clear_cache();
                ev.remember(a16.clone(), out.a16w8);
                let mut q = |c: &Config| ev.quality(c);
                let seed = 1000 + r as u64;
                let res = if which == 0 {
                    search::simulated_annealing(
                        &mut q,
                        &macs,
                        out.q_ref,
                        a.tolerance,
                        budget,
                        seed,
                    )?
                } else {
                    search::genetic(&mut q, &macs, out.q_ref, a.tolerance, budget, seed)?
                };
                eprintln!(
                    "{name} run {}: BOPs reduction ×{:.3} ({} evaluations, {:.1} s{})",
                    r + 1,
                    res.reduction,
                    res.evaluations,
                    res.elapsed.as_secs_f64(),
                    if res.best.is_none() {
                        ", no feasible design"
                    } else {
                        ""
                    }
                );
                runs.push(json!({"reduction": res.reduction, "evaluations": res.evaluations, "seconds": res.elapsed.as_secs_f64(), "feasible": res.best.is_some()}));
            }
            let mean = runs
                .iter()
                .map(|r| r["reduction"].as_f64().unwrap_or(1.0))
                .sum::<f64>()
                / runs.len() as f64;
            eprintln!(
                "{name}: mean BOPs reduction ×{mean:.3} over {} runs (WLopt ×{:.3})",
                runs.len(),
                out.wlopt.reduction
            );
            baselines.push(json!({"method": name, "mean_reduction": mean, "runs": runs}));
        }
    }

    if a.json {
        let obj = json!({
            "model": a.model.display().to_string(),
            "schedule": a.out.display().to_string(),
            "scale": a.scale,
            "tolerance_db": a.tolerance,
            "energy": a.energy,
            "calibration_images": samples.len(),
            "reference": out.reference,
            "reference_psnr": out.q_ref,
            "fp32_psnr": out.fp32,
            "fp32w8_psnr": out.fp32w8,
            "a16w8_psnr": out.a16w8,
            "without_dre_psnr": out.wlopt.quality,
            "calibration_psnr": out.final_quality,
            "layers_8bit": n8,
            "conv_layers": n,
            "dre_layers": dre_names,
            "bops": s.cost.bops,
            "bops_a16w8": s.cost.bops_a16w8,
            "reduction_vs_a16w8": s.cost.reduction_vs_a16w8,
            "wlopt_seconds": out.wlopt.elapsed.as_secs_f64(),
            "calibrate_seconds": out.elapsed.as_secs_f64(),
            "wlopt_trace": out.wlopt.trace.iter().map(|t| json!({"layer": names[t.pos], "quality": t.quality, "accepted": t.accepted})).collect::<Vec<_>>(),
            "lra": out.lra.iter().map(|e| json!({"layer": names[e.pos], "drop_db": e.drop})).collect::<Vec<_>>(),
            "energy_grid": grid,
            "baselines": baselines,
            "front": front_json,
        });
        println!("{obj}");
    }
    Ok(())
}
