//! `nawqsr profile`: FYE-SR's SR timing profiler on this host — every conv
//! layer's time on each unit, every edge's switch cost, and a check of the
//! summed prediction against whole-model runs (`codec::profiler`).
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use nawqsr_codec::engine::Engine;
use nawqsr_codec::kernels::CpuLevel;
use nawqsr_codec::model;
use nawqsr_codec::profiler::{ProfileModel, measure};
use nawqsr_codec::quant::Bits;

#[derive(clap::Args)]
pub struct Args {
    /// ONNX SR model.
    #[arg(long)]
    model: PathBuf,
    /// LR frame size, WxH: the size the times hold for.
    #[arg(long, default_value = "320x180")]
    input_size: String,
    /// Schedule whose calibrated static ranges the plans use (default: the one
    /// found for the model); its hybrid plan is also checked.
    #[arg(long)]
    schedule: Option<PathBuf>,
    /// Worker threads (0 = all cores).
    #[arg(long, default_value_t = 0, value_parser = crate::media::parse_threads)]
    threads: usize,
    /// Timed frames per plan (median kept), spread over the rounds.
    #[arg(long, default_value_t = 9)]
    frames: usize,
    /// Interleaved rounds the frames are spread over (each plan's runtime is
    /// started once per round).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Random mixed plans measured after building the model, to check it.
    #[arg(long, default_value_t = 4)]
    checks: usize,
    /// Random mixed plans (in runs, from long to short) the switch costs are
    /// fitted to.
    #[arg(long, default_value_t = 6)]
    fit_plans: usize,
    /// Seed of the random check plans (the fit plans use another stream).
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Profile to write (JSON).
    #[arg(long)]
    out: PathBuf,
    /// The profile on stdout as JSON too.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<()> {
    let (w, h) = crate::bench_model::parse_size(&a.input_size)?;
    if a.frames == 0 || a.frames > 1000 {
        bail!("--frames {}: invalid (expected 1 to 1000)", a.frames);
    }
    crate::media::output_dir(&a.out)?;
    let bytes = model::ModelBytes::read(&a.model)?;
    let graph = model::import_bytes(&bytes)?;
    let sha = bytes.sha256();
    let src = crate::bench_model::schedule_path(a.schedule.as_ref(), &sha, &a.model, "int8")
        .context("the profiler needs the calibrated ranges of a schedule")?;
    let sched = src.load(&graph, &sha)?;
    let ranges = sched.ranges(&graph);
    let n = graph.conv_layers().len();
    let threads = nawqsr_codec::engine::resolve_threads(a.threads);
    let engine = Arc::new(Engine::with_granularity(
        graph,
        CpuLevel::detect(),
        1,
        sched.weights(),
    ));
    // Check plans: the uniform ones again (fresh runs, not the ones the model
    // was built from), the schedule's hybrid, and seeded random mixes.
    let mut checks: Vec<(String, Vec<Bits>, Vec<bool>)> = vec![
        ("int8".into(), vec![Bits::B8; n], vec![false; n]),
        ("a16w8".into(), vec![Bits::B16; n], vec![false; n]),
        (
            "hybrid (schedule)".into(),
            sched.bits(),
            sched.layers.iter().map(|(_, l)| l.dre).collect(),
        ),
    ];
    let mut rng = measure::PlanRng::new(a.seed);
    for k in 0..a.checks {
        checks.push((format!("random {k}"), rng.mix(n), vec![false; n]));
    }
    let cfg = measure::Config {
        width: w,
        height: h,
        threads,
        frames: a.frames,
        // Per round and plan: the runtime's first frame pays for thread start
        // and first-touch allocation.
        warmup: 1,
        rounds: a.rounds,
        fit_plans: a.fit_plans,
        // Another stream than the checks': the model never sees them.
        seed: a.seed ^ 0x5EED_F17,
    };
    let model_id = ProfileModel {
        file: a
            .model
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
        sha256: sha,
    };
    let prof = measure::profile(
        &engine,
        &ranges,
        model_id,
        &cfg,
        &checks,
        &mut |what, i, of| {
            eprint!("\rprofiling {:>3}/{of}: {what:<60}", i + 1);
        },
    )?;
    eprintln!();
    prof.save(&a.out)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&prof)?);
        return Ok(());
    }
    println!(
        "{} at {w}x{h}, {} threads, {} ({}); {} frames per plan",
        prof.model.file, prof.host.threads, prof.host.cpu, prof.host.level, prof.frames
    );
    println!(
        "uniform: int8 {:.2} ms, a16w8 {:.2} ms",
        prof.uniform_ms.int8, prof.uniform_ms.a16w8
    );
    println!(
        "{:<28} {:>9} {:>9} {:>9} {:>9}",
        "layer", "int8", "a16w8", "+dre8", "+dre16"
    );
    for l in &prof.layers {
        println!(
            "{:<28} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
            l.name, l.ms.int8, l.ms.a16w8, l.dre_extra_ms.int8, l.dre_extra_ms.a16w8
        );
    }
    if let (Some(e), Some(f)) = (prof.edges.first(), &prof.switch_fit) {
        let left: Vec<String> = f.residual_ms.iter().map(|r| format!("{r:.1}")).collect();
        println!(
            "switch cost per edge: int8→a16w8 {:.3} ms, a16w8→int8 {:.3} ms \
             (least squares over {} mixed plans; their ms over the segment sums: {})",
            e.up_ms,
            e.down_ms,
            f.plans,
            left.join(", ")
        );
    }
    println!(
        "{:<20} {:>10} {:>10} {:>8}",
        "check plan", "predicted", "measured", "error"
    );
    for c in &prof.check {
        println!(
            "{:<20} {:>10.2} {:>10.2} {:>7.1}%",
            c.plan,
            c.predicted_ms,
            c.measured_ms,
            c.error * 100.0
        );
    }
    let worst = prof.check.iter().map(|c| c.error.abs()).fold(0.0, f64::max);
    println!(
        "worst |error| {:.1} %; wrote {}",
        worst * 100.0,
        a.out.display()
    );
    Ok(())
}
