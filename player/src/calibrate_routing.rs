//! `nawqsr calibrate-routing`: difficulty routing's threshold (issue 18 item
//! 4, MobiSR) for a PSNR budget, measured on training images with the
//! runtime's own network output and composition (`runtime::routing`), and
//! written into the schedule's `routing` field. `--check DIR` then measures
//! the result on held-out images: PSNR and time with routing on and off,
//! interleaved.
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use nawqsr_codec::eval::Sample;
use nawqsr_codec::metrics::{self, images};
use nawqsr_codec::model::{self, ModelBytes, bundled};
use nawqsr_codec::offline;
use nawqsr_codec::runtime::codec::REUSE_PATCH;
use nawqsr_codec::runtime::routing::{self, CalibImage};
use nawqsr_codec::runtime::{Codec, CodecConfig, Mode, bicubic};
use nawqsr_codec::schedule::{CalibrationId, ROUTING_SCORE, Routing, Schedule};
use serde_json::json;

#[derive(clap::Args)]
pub struct Args {
    /// Schedule to calibrate for (hybrid mode); its `routing` field is
    /// replaced, atomically, unless --out names another file.
    #[arg(long)]
    schedule: PathBuf,
    /// ONNX model the schedule was made for (default: the bundled model of the
    /// schedule's scale).
    #[arg(long)]
    model: Option<PathBuf>,
    /// PSNR budget in dB: the mean drop over the calibration images against
    /// the network everywhere.
    #[arg(long, default_value_t = 0.05)]
    budget: f64,
    /// Directories of HR training images (default: ../shared/datasets/train/T91
    /// and BSD200, disjoint from Set5/Set14).
    #[arg(long)]
    calib: Vec<PathBuf>,
    /// Images sampled from them.
    #[arg(long, default_value_t = 40)]
    calib_images: usize,
    #[arg(long, default_value_t = 0x5eed)]
    seed: u64,
    /// HR centre crop of each image, pixels per side at most.
    #[arg(long, default_value_t = 480)]
    max_side: u32,
    /// Write the schedule here instead of over --schedule.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Then measure on every image of this directory (e.g. Set14): Y PSNR
    /// with routing on and off, and their time, interleaved.
    #[arg(long)]
    check: Option<PathBuf>,
    /// Timed rounds per image for --check.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Codec worker threads (0 = all cores).
    #[arg(long, default_value_t = 0, value_parser = crate::media::parse_threads)]
    threads: usize,
    /// Write the numbers as one JSON object to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

pub fn run(a: Args) -> Result<()> {
    if !(a.budget.is_finite() && a.budget > 0.0) {
        bail!("--budget: {} (expected a positive number of dB)", a.budget);
    }
    let text = std::fs::read_to_string(&a.schedule)
        .with_context(|| format!("--schedule: {}: cannot read", a.schedule.display()))?;
    let scale = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["model"]["scale"].as_u64())
        .with_context(|| {
            format!(
                "--schedule: {}: field `model.scale`: missing (expected a schedule file)",
                a.schedule.display()
            )
        })? as usize;
    let bytes = match &a.model {
        Some(p) => ModelBytes::read(p)?,
        None => bundled::load(scale)?,
    };
    let graph = model::import_bytes(&bytes)?;
    let mut sched = Schedule::load(&a.schedule, &graph, &bytes.sha256())?;
    let dirs = if a.calib.is_empty() {
        offline::default_calib_dirs(&PathBuf::from("../shared"))
    } else {
        a.calib.clone()
    };
    if let Some(d) = dirs.iter().find(|d| !d.is_dir()) {
        bail!(
            "--calib: {} not found (expected a directory of training images)",
            d.display()
        );
    }
    let samples: Vec<Sample> =
        offline::calibration_set(&dirs, scale, a.calib_images, a.seed, a.max_side)
            .with_context(|| format!("--calib {dirs:?}"))?;
    let cfg = CodecConfig {
        model: a.model.clone(),
        schedule: Some(a.schedule.clone()),
        mode: Mode::Hybrid,
        scale: Some(scale),
        threads: a.threads,
        ..CodecConfig::default()
    };
    let full = Codec::new(&cfg)?;
    let t0 = Instant::now();
    let mut imgs = Vec::with_capacity(samples.len());
    for s in &samples {
        let model = full.upscale_rgb(&s.lr)?;
        let bic = bicubic::upscale_rgb(&s.lr, scale, 1);
        imgs.push(CalibImage::new(
            &s.hr,
            &s.lr,
            model,
            bic,
            REUSE_PATCH,
            scale,
        ));
    }
    let c = routing::calibrate(&imgs, a.budget);
    eprintln!(
        "routing: threshold {:.2} routes {:.1} % of patches at a mean drop of {:.4} dB (budget {} dB) on {} calibration images ({:.1} s)",
        c.threshold,
        100.0 * c.routed,
        c.drop_db,
        a.budget,
        samples.len(),
        t0.elapsed().as_secs_f64()
    );
    // What any executor must still run the network on at this threshold
    // (`routing::covered`): the bound on routing's speed-up.
    let halo = full.halo().unwrap_or(0);
    let share = |r: usize| {
        let (mut px, mut n) = (0.0, 0.0);
        for im in &imgs {
            let area = (im.grid.w * im.grid.h) as f64;
            px += area * routing::covered(&im.grid, &routing::hard(&im.scores, c.threshold), r);
            n += area;
        }
        px / n.max(1.0)
    };
    let (near, far) = (share(routing::BLEND), share(routing::BLEND + halo));
    eprintln!(
        "routing: the network must still cover {:.1} % of the LR pixels (hard patches and fades) to {:.1} % (grown by the {halo}-pixel halo): speed-up at most x{:.2} to x{:.2}, before scoring and bicubic",
        100.0 * near,
        100.0 * far,
        1.0 / near.max(1e-9),
        1.0 / far.max(1e-9)
    );
    sched.routing = Some(Routing {
        score: ROUTING_SCORE.into(),
        patch: REUSE_PATCH,
        threshold: c.threshold,
        budget_db: a.budget,
        calibration_drop_db: c.drop_db,
        calibration_routed: c.routed,
        calibration: CalibrationId {
            dirs: dirs.iter().map(|d| d.display().to_string()).collect(),
            seed: a.seed,
            max_side: a.max_side,
            images: samples.iter().map(|s| s.name.clone()).collect(),
        },
    });
    let out = a.out.clone().unwrap_or_else(|| a.schedule.clone());
    sched.save(&out)?;
    eprintln!("wrote {}", out.display());
    let check = match &a.check {
        Some(dir) => Some(check(&a, dir, &out, scale)?),
        None => None,
    };
    if let Some(p) = &a.json {
        let v = json!({
            "threshold": c.threshold,
            "budget_db": a.budget,
            "calibration_drop_db": c.drop_db,
            "calibration_routed": c.routed,
            "calibration_images": samples.len(),
            "covered_fades": near,
            "covered_halo": far,
            "check": check,
        });
        std::fs::write(p, serde_json::to_string_pretty(&v)? + "\n")
            .with_context(|| format!("--json: {}: cannot write", p.display()))?;
    }
    Ok(())
}

/// Routing on and off over every image of `dir`: Y PSNR against the HR
/// original, and the upscale time (median of `rounds` interleaved runs per
/// image). Also checks that the runtime's routed frame is the composition
/// calibration measured.
fn check(a: &Args, dir: &PathBuf, schedule: &PathBuf, scale: usize) -> Result<serde_json::Value> {
    let cfg = CodecConfig {
        model: a.model.clone(),
        schedule: Some(schedule.clone()),
        mode: Mode::Hybrid,
        scale: Some(scale),
        threads: a.threads,
        ..CodecConfig::default()
    };
    let off = Codec::new(&cfg)?;
    let on = Codec::new(&CodecConfig {
        routing: true,
        ..cfg
    })?;
    let threshold = on.routing_threshold().unwrap_or(0.0);
    let paths = images::list_images(dir).with_context(|| format!("--check {}", dir.display()))?;
    if paths.is_empty() {
        bail!(
            "--check: {}: no images (expected PNG/JPEG/BMP files)",
            dir.display()
        );
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut rows = Vec::new();
    let (mut t_on, mut t_off, mut p_on, mut p_off, mut routed) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for p in &paths {
        let (hr, _) = images::load_hr(p)?;
        let s = Sample::from_hr(p.display().to_string(), &hr, scale);
        let full = off.upscale_rgb(&s.lr)?;
        let ours = on.upscale_rgb(&s.lr)?;
        let bic = bicubic::upscale_rgb(&s.lr, scale, 1);
        let img = CalibImage::new(&s.hr, &s.lr, full.clone(), bic, REUSE_PATCH, scale);
        let hard = routing::hard(&img.scores, threshold);
        let want = routing::compose(&full, &img.bic, &img.grid, &hard);
        // Routed as calibrated, or (where routing would not pay) the network
        // everywhere.
        if ours != want && ours != full {
            bail!(
                "{}: the routed frame differs from the composition calibration measures (a bug)",
                p.display()
            );
        }
        let (mut a_on, mut a_off) = (Vec::new(), Vec::new());
        for _ in 0..a.rounds.max(1) {
            let t = Instant::now();
            off.upscale_rgb(&s.lr)?;
            a_off.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            on.upscale_rgb(&s.lr)?;
            a_on.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let (ms_on, ms_off) = (median(&mut a_on), median(&mut a_off));
        let (q_off, _) = metrics::sr_quality(&full, &s.hr, scale)?;
        let (q_on, _) = metrics::sr_quality(&ours, &s.hr, scale)?;
        let r = if ours == want && ours != full {
            hard.iter().filter(|&&h| !h).count() as f64 / hard.len() as f64
        } else {
            0.0
        };
        eprintln!(
            "{}: PSNR {q_on:.3} dB routed / {q_off:.3} full ({:+.3}), {ms_on:.1} / {ms_off:.1} ms (x{:.2}), {:.0} % routed",
            p.file_name().unwrap_or_default().to_string_lossy(),
            q_on - q_off,
            ms_off / ms_on,
            100.0 * r
        );
        rows.push(json!({
            "image": p.display().to_string(),
            "psnr_routed": q_on, "psnr_full": q_off,
            "ms_routed": ms_on, "ms_full": ms_off, "routed": r,
        }));
        (t_on, t_off, p_on, p_off, routed) = (
            t_on + ms_on,
            t_off + ms_off,
            p_on + q_on,
            p_off + q_off,
            routed + r,
        );
    }
    let n = paths.len() as f64;
    eprintln!(
        "{}: mean PSNR {:.3} dB routed / {:.3} full ({:+.3} dB); {:.1} % routed; images/s x{:.2} ({:.1} / {:.1} ms per image, medians of {} interleaved rounds)",
        dir.display(),
        p_on / n,
        p_off / n,
        (p_on - p_off) / n,
        100.0 * routed / n,
        t_off / t_on,
        t_on / n,
        t_off / n,
        a.rounds.max(1)
    );
    Ok(json!({
        "dir": dir.display().to_string(),
        "mean_psnr_routed": p_on / n, "mean_psnr_full": p_off / n,
        "speedup": t_off / t_on, "routed": routed / n,
        "images": rows,
    }))
}
