//! The offline flow of Fig. 2: given a weights-quantized model, a calibration
//! set and a quality-drop tolerance ε, choose each conv layer's activation
//! wordlength (QuantSR-WLopt, Alg. 1, [`wlopt`]), rank the layers by their
//! resilience to 8 bits (LRA, Alg. 2, [`lra`]), mark the least resilient ones
//! for run-time dynamic range estimation (Alg. 3, [`dre_select`]) and write the
//! result as an execution schedule ([`schedule`]).
//!
//! - [`bops`]: GetBOPs, the cost estimator of Eq. (2).
//! - [`search`]: the baselines of Table 1 (simulated annealing, genetic
//!   algorithm) and Table 2 (RandDRE).
//!
//! Quality is always measured with the real integer engine (ARCHITECTURE.md
//! "What calibration measures is what users get"): mean Y-PSNR over the
//! calibration set, shave = scale. The [`Evaluator`] keeps the LR tensors and
//! HR luma planes, runs the images in parallel (one image per core: the float
//! ops between convs are single-threaded, so image-level parallelism keeps both
//! cores busy) and memoises each configuration's quality, so that LRA reuses
//! the WLopt step that differs from uniform A16W8 in one layer.
pub mod bops;
pub mod dre_select;
pub mod float;
pub mod front;
pub mod lra;
pub mod schedule;
pub mod search;
pub mod wlopt;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::seq::index::sample;

pub use schedule::Schedule;

use crate::engine::{Engine, Plan, Ranges, Tensor};
use crate::error::{Error, Result};
use crate::eval::Sample;
use crate::metrics::{self, images};
use crate::quant::params::min_max;
use crate::quant::{Bits, WeightGranularity};

/// One design point: per conv layer (in `Graph::conv_layers()` order) the
/// activation wordlength b_l and the DRE flag d_l (§4.2 q_l = ⟨b, s, z, d⟩; s
/// and z follow from b and the static ranges by Eq. 1).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Config {
    pub bits: Vec<Bits>,
    pub dre: Vec<bool>,
    /// Convs kept in float: the third precision (issue 16 item 2; FYE-SR's
    /// FP32 partitions). Float activations, the same 8-bit weights
    /// dequantized (FP32W8); `bits` and `dre` are ignored for them.
    pub float: Vec<bool>,
}

impl Config {
    pub fn uniform(n: usize, bits: Bits) -> Config {
        Config {
            bits: vec![bits; n],
            dre: vec![false; n],
            float: vec![false; n],
        }
    }

    /// `bits` and `dre` as given, no float layer.
    pub fn integer(bits: Vec<Bits>, dre: Vec<bool>) -> Config {
        let n = bits.len();
        Config {
            bits,
            dre,
            float: vec![false; n],
        }
    }

    /// This config with the layers of `float` kept in float.
    pub fn with_float(&self, float: &[bool]) -> Config {
        Config {
            float: self
                .float
                .iter()
                .zip(float)
                .map(|(&a, &b)| a || b)
                .collect(),
            ..self.clone()
        }
    }

    /// The activation wordlength of each conv for BOPs: 32 for float ones.
    pub fn wordlengths(&self) -> Vec<u32> {
        self.bits
            .iter()
            .zip(&self.float)
            .map(|(b, &f)| if f { 32 } else { b.bits() })
            .collect()
    }

    /// The engine plan: every conv on its integer unit with Eq. (1) parameters
    /// from `ranges` (the §4.1 UpdateScale&ZeroPoint for a new b_l), or in
    /// float where `float`.
    pub fn plan(&self, engine: &Engine, ranges: &Ranges) -> Plan {
        let mut plan = Plan::per_conv(&engine.graph, ranges, &self.bits, &self.dre);
        for (p, i) in engine.graph.conv_layers().into_iter().enumerate() {
            if self.float.get(p).copied().unwrap_or(false) {
                plan.convs[i] = crate::engine::ConvPlan::Float;
            }
        }
        plan
    }
}

/// The quality oracle the algorithms call: GetQuality(m(b), D_calib).
pub type Quality<'a> = dyn FnMut(&Config) -> Result<f64> + 'a;

pub use crate::schedule::Reference;

/// GetQuality on a calibration set with the integer engine.
pub struct Evaluator<'a> {
    engine: &'a Engine,
    lrs: Vec<Tensor>,
    hr_y: Vec<Vec<f64>>,
    hr_dims: Vec<(u32, u32)>,
    /// Images in decreasing size, so the parallel workers finish together.
    order: Vec<usize>,
    scale: usize,
    workers: usize,
    ranges: Option<Ranges>,
    cache: HashMap<Config, f64>,
    /// Engine passes over the calibration set (cache misses).
    pub passes: usize,
    pub cache_hits: usize,
}

impl<'a> Evaluator<'a> {
    /// `engine` should be built with 1 thread: the evaluator runs `workers`
    /// images at a time (0 = all cores).
    pub fn new(engine: &'a Engine, samples: &[Sample], workers: usize) -> Result<Evaluator<'a>> {
        if samples.is_empty() {
            return Err(Error::Invalid(
                "calibration set is empty (expected at least one image)".into(),
            ));
        }
        let scale = engine.graph.scale;
        // A luma model (FSRCNN, ESPCN) sees the Y of rgb2ycbcr, as in training.
        let lrs: Vec<Tensor> = samples
            .iter()
            .map(|s| engine.graph.input_of(Tensor::from_rgb(&s.lr)))
            .collect();
        for s in samples {
            let (w, h) = s.hr.dimensions();
            if w as usize <= 2 * scale || h as usize <= 2 * scale {
                return Err(Error::Invalid(format!(
                    "calibration image {} is {w}x{h} (expected more than {} pixels per side after shaving)",
                    s.name,
                    2 * scale
                )));
            }
        }
        let mut order: Vec<usize> = (0..samples.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(lrs[i].h * lrs[i].w));
        Ok(Evaluator {
            engine,
            hr_y: samples.iter().map(|s| metrics::rgb_to_y(&s.hr)).collect(),
            hr_dims: samples.iter().map(|s| s.hr.dimensions()).collect(),
            lrs,
            order,
            scale,
            workers: crate::engine::resolve_threads(workers),
            ranges: None,
            cache: HashMap::new(),
            passes: 0,
            cache_hits: 0,
        })
    }

    pub fn engine(&self) -> &'a Engine {
        self.engine
    }

    pub fn images(&self) -> usize {
        self.lrs.len()
    }

    /// Mean Y-PSNR of a float plan (FP32 or FP32W8); with `observe`, also the
    /// static ranges of every conv input (§4.1 InitScales&ZeroPoints) from the
    /// same pass, which the integer configurations then use.
    pub fn float_quality(&mut self, plan: &Plan, observe: bool) -> Result<f64> {
        let (q, r) = self.run(plan, observe)?;
        if observe {
            self.ranges = r;
        }
        Ok(q)
    }

    /// The static ranges, once [`Evaluator::float_quality`] observed them.
    pub fn ranges(&self) -> Option<&Ranges> {
        self.ranges.as_ref()
    }

    pub fn set_ranges(&mut self, r: Ranges) {
        self.ranges = Some(r);
    }

    /// GetQuality(m(b)) for an integer configuration, memoised.
    pub fn quality(&mut self, c: &Config) -> Result<f64> {
        if let Some(&q) = self.cache.get(c) {
            self.cache_hits += 1;
            return Ok(q);
        }
        let ranges = self.ranges.as_ref().ok_or_else(|| {
            Error::Invalid(
                "offline: quality of an integer plan before the ranges were observed".into(),
            )
        })?;
        let plan = c.plan(self.engine, ranges);
        let (q, _) = self.run(&plan, false)?;
        self.cache.insert(c.clone(), q);
        Ok(q)
    }

    /// Forget memoised qualities (each search baseline starts from scratch).
    pub fn clear_cache(&mut self) {
        self.cache.clear();
    }

    /// Memoise a quality measured earlier (e.g. uniform A16W8, which every
    /// search starts from and WLopt also gets for free).
    pub fn remember(&mut self, c: Config, q: f64) {
        self.cache.insert(c, q);
    }

    fn run(&mut self, plan: &Plan, observe: bool) -> Result<(f64, Option<Ranges>)> {
        self.passes += 1;
        let n = self.lrs.len();
        let next = AtomicUsize::new(0);
        let this = &*self;
        type WorkerOut = Result<(Vec<(usize, f64)>, Ranges)>;
        let outs: Vec<WorkerOut> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..this.workers.clamp(1, n))
                .map(|_| {
                    s.spawn(|| -> WorkerOut {
                        let mut psnrs = Vec::new();
                        let mut ranges = Ranges::empty(&this.engine.graph);
                        loop {
                            let k = next.fetch_add(1, Ordering::Relaxed);
                            if k >= n {
                                break;
                            }
                            let i = this.order[k];
                            let y = if observe {
                                this.engine.run_observed(plan, &this.lrs[i], &mut |e| {
                                    if let crate::engine::Event::ConvInput { layer, x } = e {
                                        let (lo, hi) = min_max(&x.data);
                                        ranges.observe(layer, lo, hi);
                                    }
                                })?
                            } else {
                                this.engine.run(plan, &this.lrs[i])?
                            };
                            psnrs.push((i, this.psnr(i, &y)?));
                        }
                        Ok((psnrs, ranges))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("calibration worker panicked"))
                .collect()
        });
        let mut psnr = vec![0.0; n];
        let mut ranges = Ranges::empty(&self.engine.graph);
        for o in outs {
            let (p, r) = o?;
            for (i, v) in p {
                psnr[i] = v;
            }
            for (layer, r) in r.0.iter().enumerate() {
                if let Some((lo, hi)) = *r {
                    ranges.observe(layer, lo, hi);
                }
            }
        }
        // Summed in image order so the mean does not depend on scheduling.
        let mean = psnr.iter().sum::<f64>() / n as f64;
        Ok((mean, observe.then_some(ranges)))
    }

    /// Y PSNR of the network output `sr` (RGB, or a luma model's Y) against HR.
    fn psnr(&self, i: usize, sr: &Tensor) -> Result<f64> {
        let (w, h) = self.hr_dims[i];
        if (sr.w, sr.h) != (w as usize, h as usize) {
            return Err(Error::Invalid(format!(
                "calibration image {i}: output {}x{}, HR {w}x{h} (expected equal sizes)",
                sr.w, sr.h
            )));
        }
        let y = if sr.c == 1 {
            // The 8-bit Y plane a luma model's output becomes.
            sr.data
                .iter()
                .map(|&v| f64::from(crate::tensor::to_u8_pixel(v)))
                .collect()
        } else {
            metrics::rgb_to_y(&sr.to_rgb())
        };
        Ok(metrics::psnr(
            &y,
            &self.hr_y[i],
            w as usize,
            h as usize,
            self.scale,
        ))
    }
}

/// The default calibration directories under `shared` (T91 + BSD200): training
/// images, disjoint from every evaluation set.
pub fn default_calib_dirs(shared: &Path) -> Vec<PathBuf> {
    vec![
        shared.join("datasets/train/T91"),
        shared.join("datasets/train/BSD200"),
    ]
}

/// `n` images drawn uniformly without replacement with `seed` from the union
/// of `dirs` (§5 "sampled randomly with uniform probability"), each
/// centre-cropped to at most `max_side` HR pixels to bound calibration time,
/// modcropped, with its MATLAB-bicubic LR.
pub fn calibration_set(
    dirs: &[PathBuf],
    scale: usize,
    n: usize,
    seed: u64,
    max_side: u32,
) -> Result<Vec<Sample>> {
    if !(2..=4).contains(&scale) {
        return Err(Error::Scale(scale));
    }
    let mut all = Vec::new();
    for d in dirs {
        all.extend(images::list_images(d)?);
    }
    if all.is_empty() {
        return Err(Error::Invalid(format!(
            "calibration directories {dirs:?} hold no images (expected PNG, JPEG or BMP)"
        )));
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut idx = sample(&mut rng, all.len(), n.min(all.len())).into_vec();
    idx.sort();
    idx.iter()
        .map(|&i| {
            let hr = images::load_rgb(&all[i])?;
            let (w, h) = (hr.width().min(max_side), hr.height().min(max_side));
            let crop =
                image::imageops::crop_imm(&hr, (hr.width() - w) / 2, (hr.height() - h) / 2, w, h)
                    .to_image();
            let name = all[i]
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            Ok(Sample::from_hr(name, &crop, scale))
        })
        .collect()
}

/// Inputs of [`calibrate`] besides the evaluator.
#[derive(Clone, Debug)]
pub struct Options {
    /// ε in dB (Eq. 2).
    pub tolerance_db: f64,
    /// K ∈ [0, 1] (Alg. 3).
    pub energy: f64,
    /// Model file (its name and SHA-256 go into the schedule).
    pub model_path: PathBuf,
    pub model_sha256: String,
    pub weights: WeightGranularity,
    pub calibration: schedule::CalibrationId,
}

/// Progress of [`calibrate`], one report per quality evaluation.
#[derive(Clone, Debug)]
pub struct Progress<'a> {
    /// "reference", "wlopt", "lra" or "dre".
    pub stage: &'static str,
    /// Conv layer being examined (WLopt, LRA), if any.
    pub layer: Option<&'a str>,
    /// Index within the stage and the stage's length.
    pub index: usize,
    pub of: usize,
    /// Quality just measured (dB).
    pub quality: f64,
    /// BOPs reduction vs uniform A16W8 of the best design so far.
    pub reduction: f64,
}

/// What [`calibrate`] found: the schedule plus the intermediate results the
/// reports and tests look at.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub schedule: Schedule,
    /// The float partitions chosen before WLopt (none when A16W8 meets ε).
    pub float: float::FloatResult,
    pub wlopt: wlopt::WlResult,
    pub lra: Vec<lra::LraEntry>,
    /// Conv positions selected for DRE.
    pub dre: Vec<usize>,
    pub fp32: f64,
    pub fp32w8: f64,
    pub a16w8: f64,
    pub reference: Reference,
    pub q_ref: f64,
    /// Quality of the final configuration (WLopt bits + DRE).
    pub final_quality: f64,
    pub elapsed: Duration,
}

/// Number of quality evaluations [`calibrate`] reports for `n` conv layers
/// (FP32, FP32W8, A16W8, WLopt's n, LRA's n, the final design).
pub fn calibrate_steps(n: usize) -> usize {
    2 * n + 4
}

/// The whole offline flow of Fig. 2 on the evaluator's calibration set.
pub fn calibrate(
    ev: &mut Evaluator,
    opts: &Options,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Outcome> {
    if !(opts.tolerance_db.is_finite() && opts.tolerance_db >= 0.0) {
        return Err(Error::Invalid(format!(
            "tolerance {} dB (expected a finite value ≥ 0)",
            opts.tolerance_db
        )));
    }
    if !(0.0..=1.0).contains(&opts.energy) {
        return Err(Error::Invalid(format!(
            "energy threshold K = {} (expected 0 ≤ K ≤ 1)",
            opts.energy
        )));
    }
    let start = Instant::now();
    let graph = &ev.engine().graph;
    let convs = graph.conv_layers();
    let names: Vec<String> = convs
        .iter()
        .map(|&i| graph.layers[i].name.clone())
        .collect();
    let n = convs.len();
    let macs = bops::conv_macs(graph);
    let a16 = Config::uniform(n, Bits::B16);
    let mut report = |stage, layer: Option<&str>, index, of, quality, reduction| {
        progress(&Progress {
            stage,
            layer,
            index,
            of,
            quality,
            reduction,
        })
    };

    // Reference qualities. FP32W8 also yields the static ranges (Alg. 1 line 3).
    let fp32 = ev.float_quality(&Plan::fp32(&ev.engine().graph), false)?;
    report("reference", None, 0, 3, fp32, 1.0);
    let fp32w8 = ev.float_quality(&Plan::fp32w8(&ev.engine().graph), true)?;
    report("reference", None, 1, 3, fp32w8, 1.0);
    let a16w8 = ev.quality(&a16)?;
    report("reference", None, 2, 3, a16w8, 1.0);
    // §5: ε is measured against FP32W8 where weight quantization alone already
    // costs the whole budget (the paper: ≥ 0.1 dB with ε = 0.1), else FP32.
    let (reference, q_ref) = if fp32 - fp32w8 >= opts.tolerance_db {
        (Reference::Fp32w8, fp32w8)
    } else {
        (Reference::Fp32, fp32)
    };

    // Float partitions (issue 16 item 2): where uniform A16W8 already misses
    // ε, the layers whose 16-bit activations cost the most stay in float;
    // WLopt, LRA and DRE then work on the others (the oracle keeps the float
    // set in every configuration they build).
    let float = {
        let mut q = |c: &Config| ev.quality(c);
        float::rescue(&mut q, n, q_ref, opts.tolerance_db, &mut |pos, k, q| {
            report("float", Some(&names[pos]), k, n, q, 1.0)
        })?
    };
    let keep = float.float.clone();

    // Alg. 1.
    let wl = {
        let mut q = |c: &Config| ev.quality(&c.with_float(&keep));
        wlopt::wlopt(
            &mut q,
            &macs,
            q_ref,
            opts.tolerance_db,
            &mut |s: &wlopt::WlStep, k, best| {
                report("wlopt", Some(&names[s.pos]), k, n, s.quality, best)
            },
        )?
    };

    // Alg. 2: q_ref − q_w-quant^drop is FP32W8's quality whichever reference ε uses.
    let lra = {
        let mut q = |c: &Config| ev.quality(&c.with_float(&keep));
        lra::lra(&mut q, n, q_ref, q_ref - fp32w8, &mut |pos, k, q| {
            report("lra", Some(&names[pos]), k, n, q, wl.reduction)
        })?
    };

    // Alg. 3 on the WLopt design (never on a float layer: it has no range to estimate).
    let dre: Vec<usize> = dre_select::select(&lra, opts.energy)
        .into_iter()
        .filter(|&p| !keep[p])
        .collect();
    let mut fin = Config {
        bits: wl.bits.clone(),
        dre: vec![false; n],
        float: float.float.clone(),
    };
    for &p in &dre {
        fin.dre[p] = true;
    }
    let final_quality = ev.quality(&fin)?;
    report("dre", None, 0, 1, final_quality, wl.reduction);

    let ranges = ev.ranges().cloned().expect("observed with FP32W8");
    let drops: HashMap<usize, f64> = lra.iter().map(|e| (e.pos, e.drop)).collect();
    let schedule = Schedule::build(schedule::BuildInputs {
        graph: &ev.engine().graph,
        ranges: &ranges,
        config: &fin,
        macs: &macs,
        lra_drops: &drops,
        opts,
        quality: schedule::QualityInfo {
            metric: "psnr_y".into(),
            reference,
            reference_psnr: q_ref,
            tolerance_db: opts.tolerance_db,
            fp32_psnr: fp32,
            fp32w8_psnr: fp32w8,
            a16w8_psnr: a16w8,
            without_dre_psnr: wl.quality,
            calibration_psnr: final_quality,
        },
        search: schedule::SearchInfo {
            wlopt_seconds: wl.elapsed.as_secs_f64(),
            total_seconds: start.elapsed().as_secs_f64(),
            engine_passes: ev.passes,
        },
    });
    Ok(Outcome {
        schedule,
        float,
        wlopt: wl,
        lra,
        dre,
        fp32,
        fp32w8,
        a16w8,
        reference,
        q_ref,
        final_quality,
        elapsed: start.elapsed(),
    })
}
