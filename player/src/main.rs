//! `nawqsr`: evaluation, calibration, benchmarks, upscaling and the player.
//! Each subcommand is a thin layer over `nawqsr_codec`. Human-readable output
//! and progress go to stderr; `--json` writes one object to stdout.
mod bench;
mod bench_kernels;
mod bench_model;
mod calibrate;
mod calibrate_routing;
mod efficiency;
mod eval;
mod keys;
mod media;
mod piqe;
mod play;
mod profile;
mod transcode;
mod upscale;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "nawqsr",
    version,
    about = "NAWQ-SR hybrid-precision super-resolution on the CPU"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Evaluate a model on an SR dataset (Y PSNR/SSIM, shave = scale).
    Eval(eval::Args),
    /// Offline flow: choose per-layer wordlengths and DRE layers, write a schedule.
    Calibrate(calibrate::Args),
    /// Difficulty routing: calibrate a schedule's threshold for a PSNR budget.
    CalibrateRouting(calibrate_routing::Args),
    /// Peak MAC/s per CPU level and every IMDN conv shape as % of it.
    BenchKernels(bench_kernels::Args),
    /// Median ms/frame of one model on a synthetic frame.
    BenchModel(bench_model::Args),
    /// Super-resolve an image or a clip (.mp4/.mkv output).
    Upscale(upscale::Args),
    /// Throughput, latency and quality of every mode on recorded clips.
    Bench(bench::Args),
    /// Play a clip (or a built-in test source) with live SR, telemetry and A/B compare.
    Play(play::Args),
    /// No-reference PIQE score of images (0 best, 100 worst).
    Piqe(piqe::Args),
    /// Per-layer time on each unit and switch costs on this host (FYE-SR's profiler).
    Profile(profile::Args),
}

/// `nawqsr --version`: the version, then what this build runs on this CPU (the
/// kernel level detected, after `NAWQSR_CPU_LEVEL`) and the models compiled in.
fn long_version() -> String {
    use nawqsr_codec::model::bundled;
    let models: Vec<String> = bundled::builtin()
        .map(|(scale, name, bytes)| format!("{name} (x{scale}, {} KB)", bytes.div_ceil(1024)))
        .collect();
    let overrides = bundled::override_dirs();
    format!(
        "{}\nkernel level: {}\nbundled models: {}{}",
        env!("CARGO_PKG_VERSION"),
        nawqsr_codec::kernels::CpuLevel::detect().name(),
        models.join(", "),
        if overrides.is_empty() {
            String::new()
        } else {
            format!(
                "\nNAWQSR_MODELS overrides: {}",
                overrides
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(":")
            )
        }
    )
}

fn main() {
    // A closed stdout (`nawqsr eval --json | head`) ends the process quietly, as
    // with any Unix filter, instead of a panic in println!.
    #[cfg(unix)]
    // SAFETY: restores the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("NAWQSR_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    // Leaked once: clap keeps `let cmd = Cli::command().long_version(long_version());'static str` without its "string" feature.
    let cmd = Cli::command().long_version(&*Box::leak(long_version().into_boxed_str()));
    let cli = Cli::from_arg_matches(&cmd.get_matches()).unwrap_or_else(|e| e.exit());
    let res = match cli.cmd {
        Cmd::Eval(a) => eval::run(a),
        Cmd::Calibrate(a) => calibrate::run(a),
        Cmd::CalibrateRouting(a) => calibrate_routing::run(a),
        Cmd::Upscale(a) => upscale::run(a),
        Cmd::Play(a) => play::run(a),
        Cmd::Bench(a) => bench::run(a),
        Cmd::BenchKernels(a) => bench_kernels::run(a),
        Cmd::BenchModel(a) => bench_model::run(a),
        Cmd::Piqe(a) => piqe::run(a),
        Cmd::Profile(a) => profile::run(a),
    };
    if let Err(e) = res {
        // One line: the chain of causes, outermost first.
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
