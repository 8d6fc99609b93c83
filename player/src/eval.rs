//! `nawqsr eval`: per-image and mean PSNR/SSIM of a model in one precision mode,
//! next to the bicubic baseline.
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use nawqsr_codec::engine::{Engine, Plan, Tensor};
use nawqsr_codec::eval::{self, Sample, Score};
use nawqsr_codec::kernels::CpuLevel;
use nawqsr_codec::metrics::upscale_bicubic;
use nawqsr_codec::model::{self, reference::Fp32Reference};
use nawqsr_codec::offline::{self, search};
use nawqsr_codec::quant::{Bits, WeightGranularity};
use serde_json::json;

#[derive(clap::Args)]
pub struct Args {
    /// ONNX SR model (input `lr` NCHW RGB in [0,1]).
    #[arg(long)]
    model: PathBuf,
    /// Directory of HR images (LR is made with MATLAB-compatible bicubic).
    #[arg(long)]
    dataset: PathBuf,
    /// Upscaling factor; must match the model.
    #[arg(long)]
    scale: usize,
    /// fp32 (tract reference), fp32w8, int8, a16w8, hybrid (--schedule, or the model's in schedules/),
    /// hybrid-nodre (its DRE flags off), randdre (its bitwidths, random DRE
    /// layers, mean of 10 runs), bicubic.
    #[arg(long, default_value = "fp32")]
    mode: String,
    /// Calibration images for static activation ranges (default: 10 images of
    /// ../shared/datasets/train sampled with a fixed seed).
    #[arg(long)]
    calib: Option<PathBuf>,
    /// 8-bit weight scales: per-channel (default) or per-tensor (the paper's setting).
    #[arg(long, default_value = "per-channel")]
    weights: String,
    /// Schedule file for --mode hybrid, hybrid-nodre and randdre (`nawqsr calibrate`;
    /// default: the one in schedules/ made for the model, found by its hash).
    #[arg(long)]
    schedule: Option<PathBuf>,
    /// Worker threads (0 = all cores).
    #[arg(long, default_value_t = 0, value_parser = crate::media::parse_threads)]
    threads: usize,
    /// Luma models in the engine modes: the LR is a Y plane of this many
    /// bits (8 or 10), the HR's Y downscaled in floating point and rounded,
    /// as a decoder hands a video frame; at 10 the convs that read it run on
    /// A16W8, as in the element on 10-bit caps. Default: the protocol's LR
    /// (the Y of the 8-bit bicubic RGB, unrounded).
    #[arg(long, value_parser = parse_lr_bits)]
    lr_bits: Option<u32>,
    /// One JSON object on stdout instead of the table.
    #[arg(long)]
    json: bool,
}

fn parse_lr_bits(s: &str) -> std::result::Result<u32, String> {
    match s {
        "8" => Ok(8),
        "10" => Ok(10),
        _ => Err(format!("invalid value '{s}' (expected 8 or 10)")),
    }
}

/// Calibration set for the static ranges: every image of `dir`, or 10 images
/// sampled with a fixed seed from ../shared/datasets/train (T91 + BSD200, as
/// `nawqsr calibrate` does), ≤ 256-pixel centre crops.
pub fn calibration_set(dir: Option<&PathBuf>, scale: usize) -> Result<Vec<Sample>> {
    let (dirs, n) = match dir {
        Some(d) => (vec![d.clone()], usize::MAX),
        None => {
            let dirs = offline::default_calib_dirs(std::path::Path::new("../shared"));
            if let Some(d) = dirs.iter().find(|d| !d.is_dir()) {
                bail!(
                    "--calib: default {} not found (expected a directory of training images; pass --calib DIR)",
                    d.display()
                );
            }
            (dirs, 10)
        }
    };
    offline::calibration_set(&dirs, scale, n, 0x5eed, 256)
        .with_context(|| format!("--calib {dirs:?}"))
}

pub fn run(a: Args) -> Result<()> {
    if !(2..=4).contains(&a.scale) {
        bail!("--scale {}: invalid (expected 2, 3 or 4)", a.scale);
    }
    // The model is checked before the dataset is read: its errors come first.
    enum Runner {
        Bicubic,
        Tract(Fp32Reference),
        Engine(Engine, Plan),
        /// Several plans on the same engine, scores averaged (RandDRE).
        EngineRuns(Engine, Vec<Plan>),
    }
    let runner = match a.mode.as_str() {
        "bicubic" => Runner::Bicubic,
        "fp32" => {
            let graph = model::import(&a.model);
            match graph {
                // A luma model runs on the engine's float path (tract, the
                // RGB reference, takes RGB models only).
                Ok(graph) if graph.is_luma() => {
                    check_scale(graph.scale, a.scale, &a)?;
                    let engine = Engine::new(graph, CpuLevel::detect(), a.threads);
                    let plan = Plan::fp32(&engine.graph);
                    Runner::Engine(engine, plan)
                }
                // The importer may refuse a model tract runs: tract decides.
                _ => {
                    let r = Fp32Reference::load(&a.model)?;
                    check_scale(r.scale(), a.scale, &a)?;
                    Runner::Tract(r)
                }
            }
        }
        "fp32w8" | "int8" | "a16w8" => {
            let graph = model::import(&a.model)?;
            check_scale(graph.scale, a.scale, &a)?;
            let gran = match a.weights.as_str() {
                "per-channel" => WeightGranularity::PerChannel,
                "per-tensor" => WeightGranularity::PerTensor,
                w => bail!("--weights {w}: invalid (expected per-channel or per-tensor)"),
            };
            let engine = Engine::with_granularity(graph, CpuLevel::detect(), a.threads, gran);
            let plan = match a.mode.as_str() {
                "fp32w8" => Plan::fp32w8(&engine.graph),
                m => {
                    let calib = calibration_set(a.calib.as_ref(), a.scale)?;
                    let lrs: Vec<Tensor> = calib
                        .iter()
                        .map(|s| engine.graph.input_of(Tensor::from_rgb(&s.lr)))
                        .collect();
                    let ranges = engine.calibrate(&lrs)?;
                    Plan::uniform(
                        &engine.graph,
                        &ranges,
                        if m == "int8" { Bits::B8 } else { Bits::B16 },
                    )
                }
            };
            Runner::Engine(engine, plan)
        }
        "hybrid" | "hybrid-nodre" | "randdre" => {
            // Without --schedule, the model's schedule in schedules/ (found by its
            // hash), as upscale, bench-model and the element do.
            let sha = model::file_sha256(&a.model)?;
            let path =
                crate::bench_model::schedule_path(a.schedule.as_ref(), &sha, &a.model, &a.mode)?;
            let graph = model::import(&a.model)?;
            check_scale(graph.scale, a.scale, &a)?;
            let sched = path.load(&graph, &sha)?;
            // The schedule's s, z were calibrated with its weight quantizer.
            let engine =
                Engine::with_granularity(graph, CpuLevel::detect(), a.threads, sched.weights());
            match a.mode.as_str() {
                "hybrid" => {
                    let plan = sched.plan(&engine.graph);
                    Runner::Engine(engine, plan)
                }
                "hybrid-nodre" => {
                    let plan = sched.plan_with(&engine.graph, |_, _| false);
                    Runner::Engine(engine, plan)
                }
                // §5.2 RandDRE: the schedule's bitwidths, random DRE layers, mean of 10 runs.
                _ => {
                    let n = engine.graph.conv_layers().len();
                    let plans = (0..10u64)
                        .map(|seed| {
                            let d = search::rand_dre(n, seed);
                            sched.plan_with(&engine.graph, |p, _| d[p])
                        })
                        .collect();
                    Runner::EngineRuns(engine, plans)
                }
            }
        }
        m => bail!(
            "--mode {m}: invalid (expected fp32, fp32w8, int8, a16w8, hybrid, hybrid-nodre, randdre or bicubic)"
        ),
    };
    if let Some(bits) = a.lr_bits {
        let luma_engine = match &runner {
            Runner::Engine(e, _) | Runner::EngineRuns(e, _) => e.graph.is_luma(),
            _ => false,
        };
        if !luma_engine {
            bail!(
                "--lr-bits {bits}: for luma models in the engine modes (expected a 1-channel model and --mode fp32w8, int8, a16w8 or a hybrid mode)"
            );
        }
    }
    let samples =
        eval::load_dataset(&a.dataset, a.scale).with_context(|| "--dataset".to_string())?;
    let bicubic = eval::score(&samples, a.scale, |lr| Ok(upscale_bicubic(lr, a.scale)))?;
    let score: Score = match &runner {
        Runner::Bicubic => bicubic.clone(),
        Runner::Tract(r) => eval::score(&samples, a.scale, |lr| r.upscale(lr))?,
        Runner::Engine(engine, plan) => score_engine(engine, plan, &samples, a.scale, a.lr_bits)?,
        Runner::EngineRuns(engine, plans) => {
            let runs = plans
                .iter()
                .map(|plan| score_engine(engine, plan, &samples, a.scale, a.lr_bits))
                .collect::<Result<Vec<Score>, _>>()?;
            mean_of(&runs)
        }
    };
    if a.json {
        let obj = json!({
            "model": a.model.display().to_string(),
            "mode": a.mode,
            "scale": a.scale,
            "mean_psnr": score.mean_psnr,
            "mean_ssim": score.mean_ssim,
            "mean_piqe": score.mean_piqe,
            "bicubic_psnr": bicubic.mean_psnr,
            "bicubic_ssim": bicubic.mean_ssim,
            "bicubic_piqe": bicubic.mean_piqe,
            "images": score.images,
        });
        println!("{obj}");
    } else {
        eprintln!(
            "{:<16} {:>9} {:>8} {:>7}   {:>9} {:>8} {:>7}",
            "image", "PSNR", "SSIM", "PIQE", "bicubic", "SSIM", "PIQE"
        );
        for (s, b) in score.images.iter().zip(&bicubic.images) {
            eprintln!(
                "{:<16} {:>9.4} {:>8.4} {:>7.2}   {:>9.4} {:>8.4} {:>7.2}",
                s.name, s.psnr, s.ssim, s.piqe, b.psnr, b.ssim, b.piqe
            );
        }
        eprintln!(
            "{:<16} {:>9.4} {:>8.4} {:>7.2}   {:>9.4} {:>8.4} {:>7.2}   ({} ×{}, mode {})",
            "mean",
            score.mean_psnr,
            score.mean_ssim,
            score.mean_piqe,
            bicubic.mean_psnr,
            bicubic.mean_ssim,
            bicubic.mean_piqe,
            a.model.display(),
            a.scale,
            a.mode
        );
    }
    Ok(())
}

/// Per-image and overall means over several runs of the same images.
fn mean_of(runs: &[Score]) -> Score {
    let k = runs.len() as f64;
    let mut out = runs[0].clone();
    for (i, img) in out.images.iter_mut().enumerate() {
        img.psnr = runs.iter().map(|r| r.images[i].psnr).sum::<f64>() / k;
        img.ssim = runs.iter().map(|r| r.images[i].ssim).sum::<f64>() / k;
        img.piqe = runs.iter().map(|r| r.images[i].piqe).sum::<f64>() / k;
    }
    out.mean_psnr = runs.iter().map(|r| r.mean_psnr).sum::<f64>() / k;
    out.mean_ssim = runs.iter().map(|r| r.mean_ssim).sum::<f64>() / k;
    out.mean_piqe = runs.iter().map(|r| r.mean_piqe).sum::<f64>() / k;
    out
}

/// The LR Y plane a `bits`-bit video frame of `s` would hold: the HR's
/// MATLAB Y (studio range, 0..=255 scale) downscaled by MATLAB bicubic in
/// floating point, rounded to steps of 2^(8 − bits), as the network's input
/// (÷ 255).
fn lr_plane(s: &eval::Sample, bits: u32) -> Tensor {
    let (w, h) = (s.hr.width() as usize, s.hr.height() as usize);
    let (lw, lh) = (s.lr.width() as usize, s.lr.height() as usize);
    let y: Vec<f32> = nawqsr_codec::metrics::color::rgb_to_y(&s.hr)
        .into_iter()
        .map(|v| v as f32)
        .collect();
    let small = nawqsr_codec::metrics::imresize::imresize_plane(&y, w, h, lw, lh);
    let steps = (1u32 << (bits - 8)) as f32;
    Tensor {
        h: lh,
        w: lw,
        c: 1,
        data: small
            .into_iter()
            .map(|v| ((v * steps).round() / steps).clamp(0.0, 255.0) / 255.0)
            .collect(),
    }
}

fn check_scale(model_scale: usize, want: usize, a: &Args) -> Result<()> {
    if model_scale != want {
        bail!(
            "--scale {want}: model {} upscales ×{model_scale}",
            a.model.display()
        );
    }
    Ok(())
}

/// The engine's score on `samples`: RGB models on their RGB output; a luma
/// model (FSRCNN, ESPCN, the bundled nawq_luma) on its own output plane, MATLAB
/// Y in, the network's Y out rounded to 8 bits as a video frame's Y plane is
/// (`eval::score_y`): the protocol's Y PSNR, no RGB rounding between.
///
/// `lr_bits` (luma models): the LR is the HR's Y downscaled in floating
/// point and rounded to that many bits ([`lr_plane`]); at 10 bits the convs
/// that read it run on A16W8 (`Plan::with_input_bits`).
fn score_engine(
    engine: &Engine,
    plan: &Plan,
    samples: &[eval::Sample],
    scale: usize,
    lr_bits: Option<u32>,
) -> nawqsr_codec::error::Result<Score> {
    if !engine.graph.is_luma() {
        return eval::score(samples, scale, |lr| {
            Ok(engine.run(plan, &Tensor::from_rgb(lr))?.to_rgb())
        });
    }
    let deep;
    let plan = match lr_bits {
        Some(b) if b > 8 => {
            deep = plan.with_input_bits(&engine.graph, Bits::B16);
            &deep
        }
        _ => plan,
    };
    let mut planes = samples.iter().map(|s| lr_bits.map(|b| lr_plane(s, b)));
    eval::score_y(samples, scale, |lr| {
        let x = match planes.next().flatten() {
            Some(y) => y,
            None => engine.graph.input_of(Tensor::from_rgb(lr)),
        };
        let y = engine.run(plan, &x)?;
        let plane = y
            .data
            .iter()
            .map(|&v| f64::from(nawqsr_codec::tensor::to_u8_pixel(v)))
            .collect();
        Ok((plane, y.w, y.h))
    })
}
