//! `nawqsr bench-model`: one model on one synthetic frame, median ms/frame
//! after warm-up, through the same engine the codec runs.
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use nawqsr_codec::engine::{Engine, Plan};
use nawqsr_codec::kernels::CpuLevel;
use nawqsr_codec::kernels::bench::{Peak, measure_peak};
use nawqsr_codec::model::{self, reference::Fp32Reference};
use nawqsr_codec::quant::Bits;
use nawqsr_codec::runtime::codec::RuntimeOptions;
use nawqsr_codec::runtime::{Codec, CodecConfig, Mode};
use nawqsr_codec::schedule::ScheduleSource;
use serde_json::json;

use crate::efficiency::{Work, efficiency};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    model: PathBuf,
    /// LR frame size, WxH.
    #[arg(long, default_value = "320x180")]
    input_size: String,
    /// int8, a16w8, hybrid (--schedule, or the one found for the model), fp32w8, fp32
    /// (the engine's own float convs), or tract (the FP32 test reference, one thread).
    #[arg(long, default_value = "int8")]
    mode: String,
    #[arg(long)]
    schedule: Option<PathBuf>,
    /// Worker threads (0 = all cores).
    #[arg(long, default_value_t = 0, value_parser = crate::media::parse_threads)]
    threads: usize,
    /// Timed runs after 2 warm-up runs.
    #[arg(long, default_value_t = 9)]
    runs: usize,
    #[arg(long)]
    json: bool,
    /// codec: the runtime (patches, dispatcher, unit workers) — what users get;
    /// engine: the sequential whole-frame executor, with a per-layer-kind breakdown.
    #[arg(long, default_value = "codec")]
    path: String,
    /// LR patch rows for the codec path (0 = the codec's default).
    #[arg(long, default_value_t = 0)]
    patch_size: usize,
    /// Codec path only. tensor: f32 frame in, f32 out (the network alone); rgb: an
    /// RGB u8 frame in and out, with the conversions (what the element and
    /// `nawqsr upscale` do per frame)
    #[arg(long, default_value = "tensor")]
    io: String,
}

pub fn parse_size(s: &str) -> Result<(usize, usize)> {
    let bad = || anyhow::anyhow!("--input-size {s}: invalid (expected WxH, e.g. 320x180)");
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    let (w, h): (usize, usize) = (w.parse().map_err(|_| bad())?, h.parse().map_err(|_| bad())?);
    // The codec refuses frames past MAX_DIM per side; say so before allocating.
    let max = nawqsr_codec::runtime::MAX_DIM;
    if w == 0 || h == 0 || w > max || h > max {
        return Err(anyhow::anyhow!(
            "--input-size {s}: invalid (expected WxH, each 1 to {max}, e.g. 320x180)"
        ));
    }
    Ok((w, h))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn run(a: Args) -> Result<()> {
    let (w, h) = parse_size(&a.input_size)?;
    if a.runs == 0 {
        bail!("--runs 0: invalid (expected at least 1)");
    }
    // The profiler's frame, so bench-model and profile time the same input.
    let frame = nawqsr_codec::profiler::measure::test_frame(w, h);
    let level = CpuLevel::detect();
    let mut times = vec![];
    let threads;
    let work;
    // The peak before the timed runs as well as after them (`report`).
    let mut peak_before = None;
    if a.mode == "tract" {
        let r = Fp32Reference::load(&a.model)?;
        threads = 1;
        // MACs only: tract runs it, no integer unit (and models tract takes but the
        // importer refuses have no count).
        work = model::import(&a.model)
            .ok()
            .map(|g| Work::of(&g, None, h, w));
        let planar: Vec<f32> = (0..3)
            .flat_map(|c| {
                frame
                    .data
                    .iter()
                    .skip(c)
                    .step_by(3)
                    .copied()
                    .collect::<Vec<_>>()
            })
            .collect();
        for i in 0..a.runs + 2 {
            let t = Instant::now();
            r.run_planar(planar.clone(), h, w)?;
            if i >= 2 {
                times.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
    } else {
        let graph = model::import(&a.model)?;
        let e = Engine::new(graph, level, a.threads);
        threads = e.threads;
        // A luma model (FSRCNN, ESPCN) takes the frame's Y.
        let rgb = frame.to_rgb();
        let frame = e.graph.input_of(frame);
        let plan = match a.mode.as_str() {
            "fp32" => Plan::fp32(&e.graph),
            "fp32w8" => Plan::fp32w8(&e.graph),
            "int8" | "a16w8" => {
                let ranges = e.calibrate(std::slice::from_ref(&frame))?;
                Plan::uniform(
                    &e.graph,
                    &ranges,
                    if a.mode == "int8" {
                        Bits::B8
                    } else {
                        Bits::B16
                    },
                )
            }
            "hybrid" => {
                let sha = model::file_sha256(&a.model)?;
                let s = schedule_path(a.schedule.as_ref(), &sha, &a.model, &a.mode)?;
                s.load(&e.graph, &sha)?.plan(&e.graph)
            }
            m => bail!("--mode {m}: invalid (expected int8, a16w8, hybrid, fp32w8, fp32 or tract)"),
        };
        work = Some(Work::of(&e.graph, Some(&plan), h, w));
        peak_before = work
            .filter(Work::uses_integer_units)
            .map(|_| measure_peak(level));
        if a.path == "codec" {
            let cfg = CodecConfig {
                model: Some(a.model.clone()),
                mode: Mode::Int8,
                threads: a.threads,
                patch_size: a.patch_size,
                ..CodecConfig::default()
            };
            let codec = Codec::with_plan(
                &cfg,
                std::sync::Arc::new(e),
                plan,
                RuntimeOptions::default(),
            )?;
            for i in 0..a.runs + 2 {
                let t = Instant::now();
                match a.io.as_str() {
                    "tensor" => drop(codec.upscale_tensor(&frame)?),
                    "rgb" => drop(codec.upscale_rgb(&rgb)?),
                    io => bail!("--io {io}: invalid (expected tensor or rgb)"),
                }
                if i >= 2 {
                    times.push(t.elapsed().as_secs_f64() * 1e3);
                }
            }
            return report(&a, times, level, threads, w, h, work, peak_before);
        } else if a.path != "engine" {
            bail!("--path {}: invalid (expected codec or engine)", a.path);
        }
        let mut per_kind: std::collections::BTreeMap<&str, f64> = Default::default();
        for i in 0..a.runs + 2 {
            let t = Instant::now();
            e.run_observed(&plan, &frame, &mut |ev| {
                if let (nawqsr_codec::engine::Event::LayerDone { layer, secs }, true) = (ev, i >= 2)
                {
                    *per_kind.entry(e.graph.layers[layer].op.kind()).or_default() +=
                        secs * 1e3 / a.runs as f64;
                }
            })?;
            if i >= 2 {
                times.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
        if !a.json {
            let parts: Vec<String> = per_kind
                .iter()
                .map(|(k, v)| format!("{k} {v:.1}"))
                .collect();
            eprintln!("mean ms/frame per layer kind: {}", parts.join(", "));
        }
    }
    report(&a, times, level, threads, w, h, work, peak_before)
}

#[allow(clippy::too_many_arguments)]
fn report(
    a: &Args,
    times: Vec<f64>,
    level: CpuLevel,
    threads: usize,
    w: usize,
    h: usize,
    work: Option<Work>,
    peak_before: Option<Peak>,
) -> Result<()> {
    let mut sorted = times;
    let med = median(&mut sorted);
    let p90 = sorted[((sorted.len() as f64 * 0.9).ceil() as usize)
        .saturating_sub(1)
        .min(sorted.len() - 1)];
    // The peak is measured before and after the timed runs, in this process and on this
    // host, for the level the engine used (one thread; ~1.5 s for both units each time),
    // and the higher of the two taken per unit: a shared host's slow moment during one
    // measurement made a low peak, and the efficiency read high (70.7 % on a peak of 152
    // GMAC/s against the usual 225-235, BENCHMARKS "session 11").
    let peak = work.filter(Work::uses_integer_units).and_then(|wk| {
        let after = measure_peak(level);
        let best = match peak_before {
            Some(b) => Peak {
                int8_macs_per_s: b.int8_macs_per_s.max(after.int8_macs_per_s),
                int16_macs_per_s: b.int16_macs_per_s.max(after.int16_macs_per_s),
            },
            None => after,
        };
        wk.peak(&best)
    });
    let eff = work
        .zip(peak)
        .map(|(wk, p)| efficiency(wk.macs, 1e3 / med, threads, p));
    let gmac = work.map(|wk| wk.macs as f64 / 1e9);
    if a.json {
        println!(
            "{}",
            json!({"median_ms": med, "p90_ms": p90, "runs": a.runs, "mode": a.mode, "level": level.name(),
                "threads": threads, "input": [w, h], "model": a.model.display().to_string(), "path": a.path, "io": a.io,
                "gmac_per_frame": gmac, "peak_gmacs_per_thread": peak.map(|p| p / 1e9), "efficiency": eff})
        );
    } else {
        eprintln!(
            "{} {}x{} mode {} level {} threads {}: median {:.1} ms/frame ({:.1} fps), p90 {:.1} ms over {} runs",
            a.model.display(),
            w,
            h,
            a.mode,
            level.name(),
            threads,
            med,
            1e3 / med,
            p90,
            a.runs
        );
        if let (Some(g), Some(p), Some(e)) = (gmac, peak, eff) {
            eprintln!(
                "efficiency {:.1} % ({g:.3} GMAC/frame, peak {:.1} GMAC/s per thread × {threads})",
                100.0 * e,
                p / 1e9
            );
        }
    }
    Ok(())
}

/// `--schedule`, or else the model's schedule found by its hash (NAWQSR_SCHEDULES,
/// ./schedules, the built-in ones; shared by `bench-model` and `eval`); a one-line
/// error naming the model.
pub(crate) fn schedule_path(
    given: Option<&std::path::PathBuf>,
    sha: &str,
    model: &std::path::Path,
    mode: &str,
) -> anyhow::Result<ScheduleSource> {
    match given {
        Some(p) => Ok(ScheduleSource::File(p.clone())),
        None => nawqsr_codec::schedule::find_for_model(sha).ok_or_else(|| {
            anyhow::anyhow!(
                "--mode {mode}: no schedule for {} found (give --schedule FILE or run nawqsr calibrate)",
                model.display()
            )
        }),
    }
}
