//! The execution schedule file: what the offline flow hands to the runtime
//! (Fig. 2 output, §4.3 dispatcher input).
//!
//! Versioned, pretty-printed JSON. It names the model it was made for (file
//! name and SHA-256 of the ONNX), holds every conv layer's ⟨b, s, z, d⟩ keyed by
//! layer name in execution order, and the partitions the dispatcher runs: runs
//! of consecutive conv layers with the same wordlength and DRE flag (§4.3; the
//! float ops between two convs do not break a run). It also records how it was
//! made (ε, K, reference quality, calibration set) and what it predicts (BOPs,
//! calibration PSNR), so a schedule can be audited without re-running it.
//!
//! It lives here, below both `offline` (which writes it: `offline::schedule`
//! builds one from a search result) and `runtime` (which reads it), so that
//! neither reaches into the other.
//!
//! Loading checks everything against the model and fails with one line naming
//! the file, the field and what was expected; saving is atomic.
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use crate::engine::{ConvPlan, Plan, Ranges};
use crate::error::{Error, Result};
use crate::model::Graph;
use crate::quant::{Bits, QParams, WeightGranularity};

/// The format version this code reads and writes.
pub const VERSION: u64 = 1;

/// Which model the ε constraint is measured against (§5 "NAWQ-SR Parameters").
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reference {
    /// The original model (the engine's FP32 plan).
    Fp32,
    /// The 8-bit-weights model, when weight quantization alone costs ≥ ε.
    Fp32w8,
}

/// Which model a schedule belongs to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelId {
    /// ONNX file name (informative; identity is the hash).
    pub file: String,
    /// SHA-256 of the ONNX file, hex.
    pub sha256: String,
    pub scale: usize,
    /// Weight quantizer granularity the ranges and qualities were measured with:
    /// "per-channel" or "per-tensor".
    pub weights: String,
}

/// Quality bookkeeping: mean Y-PSNR (dB) on the calibration set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualityInfo {
    /// "psnr_y": mean PSNR on BT.601 luma, shave = scale.
    pub metric: String,
    /// What ε is measured against (§5).
    pub reference: Reference,
    pub reference_psnr: f64,
    /// ε.
    pub tolerance_db: f64,
    pub fp32_psnr: f64,
    pub fp32w8_psnr: f64,
    pub a16w8_psnr: f64,
    /// The WLopt design with static ranges everywhere.
    pub without_dre_psnr: f64,
    /// The scheduled design (WLopt + DRE).
    pub calibration_psnr: f64,
}

/// The calibration set, enough to rebuild it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalibrationId {
    pub dirs: Vec<String>,
    pub seed: u64,
    /// HR centre crop, pixels per side at most.
    pub max_side: u32,
    pub images: Vec<String>,
}

/// Predicted cost (GetBOPs, §4.1) at a reference LR frame.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cost {
    /// LR width, height the BOPs are counted for.
    pub reference_lr: [usize; 2],
    pub bops: u64,
    pub bops_a16w8: u64,
    pub bops_int8: u64,
    pub reduction_vs_a16w8: f64,
}

/// How long the search took.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchInfo {
    pub wlopt_seconds: f64,
    pub total_seconds: f64,
    /// Engine passes over the calibration set (memoised repeats excluded).
    pub engine_passes: usize,
}

/// One conv layer's quantization q_l = ⟨b, s, z, d⟩ (§4.2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerQ {
    /// b_l: 8 (INT8 unit), 16 (A16W8 unit) or 32 (kept in float: a float
    /// partition, issue 16 item 2).
    pub bits: u32,
    /// s_l of Eq. (1) (static; replaced at run time when `dre`).
    pub scale: f32,
    /// z_l of Eq. (1).
    pub zero: f32,
    /// d_l: derive s, z from each input's actual range at run time.
    pub dre: bool,
    /// Calibrated input range [x̂_min, x̂_max] that s, z came from.
    pub range: [f32; 2],
    /// MACs at the reference LR frame.
    pub macs: u64,
    /// LRA quality drop (Alg. 2), dB.
    pub lra_drop_db: Option<f64>,
}

/// A run of consecutive conv layers the dispatcher schedules as one unit (§4.3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partition {
    pub bits: u32,
    pub dre: bool,
    pub layers: Vec<String>,
}

/// One plan on the quality/latency front (FYE-SR's dual of Eq. 2: the best
/// quality for a latency target).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrontPoint {
    /// b_l per conv layer, in execution order (8 or 16).
    pub bits: Vec<u32>,
    /// d_l per conv layer.
    pub dre: Vec<bool>,
    /// Profiled wall time per frame at [`Pareto::input`] on the profiled host.
    pub predicted_ms: f64,
    /// Mean Y-PSNR on the calibration set (dB).
    pub psnr: f64,
    /// Mean PIQE of the outputs on the calibration set (lower is better), when
    /// measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub piqe: Option<f64>,
}

/// The quality/latency Pareto front of a schedule (`calibrate --pareto` or
/// `--latency-target`): the plans the element moves along under a deadline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pareto {
    /// CPU model and kernel level the times were profiled on.
    pub host: String,
    pub threads: usize,
    /// LR size the times are for, [width, height].
    pub input: [usize; 2],
    /// The target the schedule's own plan was chosen for, if any (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ms: Option<f64>,
    /// By increasing predicted time (and so increasing PSNR: dominated plans
    /// are dropped).
    pub points: Vec<FrontPoint>,
}

/// Difficulty routing's calibration (issue 18 item 4, MobiSR; written by
/// `nawqsr calibrate-routing`, read by `runtime::routing` through the codec).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Routing {
    /// The difficulty score: [`ROUTING_SCORE`].
    pub score: String,
    /// Patch side in LR pixels (the runtime checks it is its own).
    pub patch: usize,
    /// Patches scoring below this take the cheap path (bicubic).
    pub threshold: f64,
    /// The PSNR budget (dB) it was calibrated for: mean drop over the
    /// calibration images against the network everywhere.
    pub budget_db: f64,
    /// What the calibration measured at `threshold`: the mean PSNR drop (dB)
    /// and the share of patches routed.
    pub calibration_drop_db: f64,
    pub calibration_routed: f64,
    pub calibration: CalibrationId,
}

/// The only score this build computes (`runtime::routing::scores`).
pub const ROUTING_SCORE: &str = "luma-gradient-energy";

/// A schedule file.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Schedule {
    pub version: u64,
    pub model: ModelId,
    /// K of Alg. 3.
    pub energy_threshold: f64,
    pub quality: QualityInfo,
    pub calibration: CalibrationId,
    pub cost: Cost,
    pub search: SearchInfo,
    /// Conv layers in execution order, written as a JSON object keyed by name.
    #[serde(serialize_with = "ordered_map")]
    pub layers: Vec<(String, LayerQ)>,
    pub partitions: Vec<Partition>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pareto: Option<Pareto>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing: Option<Routing>,
}

fn ordered_map<S: Serializer>(
    layers: &[(String, LayerQ)],
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(Some(layers.len()))?;
    for (k, v) in layers {
        m.serialize_entry(k, v)?;
    }
    m.end()
}

pub fn granularity_name(g: WeightGranularity) -> &'static str {
    match g {
        WeightGranularity::PerChannel => "per-channel",
        WeightGranularity::PerTensor => "per-tensor",
    }
}

/// Partitions of §4.3 for conv layers `names` with their (bits, dre).
pub fn partitions(names: &[String], bits: &[u32], dre: &[bool]) -> Vec<Partition> {
    let mut out: Vec<Partition> = Vec::new();
    for ((name, &b), &d) in names.iter().zip(bits).zip(dre) {
        match out.last_mut() {
            Some(p) if p.bits == b && p.dre == d => p.layers.push(name.clone()),
            _ => out.push(Partition {
                bits: b,
                dre: d,
                layers: vec![name.clone()],
            }),
        }
    }
    out
}

impl Schedule {
    /// The weight granularity the schedule was measured with.
    pub fn weights(&self) -> WeightGranularity {
        if self.model.weights == "per-tensor" {
            WeightGranularity::PerTensor
        } else {
            WeightGranularity::PerChannel
        }
    }

    /// The engine plan: every conv on the unit of its b_l with the stored s, z
    /// and DRE flag.
    pub fn plan(&self, graph: &Graph) -> Plan {
        self.plan_with(graph, |_, d| d)
    }

    /// Like [`Schedule::plan`] with the DRE flags replaced by
    /// `dre(conv_position, scheduled_flag)` (Table 2's "w/o DRE" and RandDRE).
    /// Conv layers the schedule does not name (only possible for a graph it was
    /// not loaded against) run in float.
    pub fn plan_with(&self, graph: &Graph, dre: impl Fn(usize, bool) -> bool) -> Plan {
        let by_name: HashMap<&str, &LayerQ> =
            self.layers.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let mut plan = Plan::fp32w8(graph);
        for (p, i) in graph.conv_layers().into_iter().enumerate() {
            // A conv that changes the map's size stays in float (a float
            // partition: the integer units run "same" convs only).
            let same = matches!(&graph.layers[i].op, crate::model::Op::Conv(c) if c.is_same());
            if let Some(l) = by_name
                .get(graph.layers[i].name.as_str())
                .filter(|l| same && l.bits != 32)
            {
                let bits = if l.bits == 8 { Bits::B8 } else { Bits::B16 };
                plan.convs[i] = ConvPlan::Quant {
                    q: QParams {
                        bits,
                        scale: l.scale,
                        zero: l.zero,
                    },
                    dre: dre(p, l.dre),
                };
            }
        }
        plan
    }

    /// The calibrated static input ranges the schedule's ⟨s, z⟩ came from, as
    /// engine [`Ranges`] (what the offline flow measured its configurations with).
    pub fn ranges(&self, graph: &Graph) -> Ranges {
        let by_name: HashMap<&str, &LayerQ> =
            self.layers.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let mut r = Ranges::empty(graph);
        for i in graph.conv_layers() {
            if let Some(l) = by_name.get(graph.layers[i].name.as_str()) {
                r.0[i] = Some((l.range[0], l.range[1]));
            }
        }
        r
    }

    /// Wordlength per conv position.
    pub fn bits(&self) -> Vec<Bits> {
        self.layers
            .iter()
            .map(|(_, l)| if l.bits == 8 { Bits::B8 } else { Bits::B16 })
            .collect()
    }

    /// Writes pretty JSON atomically: a temporary file in the same directory,
    /// flushed to disk, then renamed over `path`, so an interrupted write never
    /// leaves a partial schedule.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::file(path, format!("cannot serialize: {e}")))?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = path
            .file_name()
            .ok_or_else(|| Error::file(path, "not a file path (expected …/NAME.json)"))?;
        let tmp = dir.join(format!(
            ".{}.tmp{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::file(path, format!("cannot write schedule: {e}"))
        })
    }

    /// Reads a schedule and checks it against `graph` (the imported model whose
    /// ONNX has SHA-256 `model_sha256`).
    pub fn load(path: &Path, graph: &Graph, model_sha256: &str) -> Result<Schedule> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::file(path, format!("cannot read schedule: {e}")))?;
        Schedule::parse(path, &text, graph, model_sha256)
    }

    /// As [`Schedule::load`], from text (a file's, or a built-in schedule's);
    /// errors name `path`.
    pub fn parse(path: &Path, text: &str, graph: &Graph, model_sha256: &str) -> Result<Schedule> {
        let fail = |field: &str, msg: String| Error::file(path, format!("field `{field}`: {msg}"));
        let v: Value = serde_json::from_str(&text).map_err(|e| {
            let what = if e.is_eof() { "truncated" } else { "malformed JSON" };
            Error::file(path, format!("{what} at line {} column {} (expected a complete schedule JSON object, version {VERSION})", e.line(), e.column()))
        })?;
        let Value::Object(obj) = v else {
            return Err(Error::file(
                path,
                format!("expected a JSON object (schedule version {VERSION})"),
            ));
        };
        match obj.get("version") {
            None => return Err(fail("version", format!("missing (expected {VERSION})"))),
            Some(Value::Number(n)) if n.as_u64() == Some(VERSION) => {}
            Some(x) => {
                return Err(fail(
                    "version",
                    format!("is {x} (expected {VERSION}; this build reads version {VERSION} only)"),
                ));
            }
        }
        const FIELDS: [&str; 11] = [
            "version",
            "model",
            "energy_threshold",
            "quality",
            "calibration",
            "cost",
            "search",
            "layers",
            "partitions",
            "pareto",
            "routing",
        ];
        if let Some(k) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(fail(
                k,
                format!("unknown field (expected one of {})", FIELDS.join(", ")),
            ));
        }
        fn field<T: DeserializeOwned>(
            obj: &serde_json::Map<String, Value>,
            name: &str,
            path: &Path,
        ) -> Result<T> {
            let v = obj
                .get(name)
                .ok_or_else(|| Error::file(path, format!("field `{name}`: missing")))?;
            serde_json::from_value(v.clone())
                .map_err(|e| Error::file(path, format!("field `{name}`: {e}")))
        }
        let model: ModelId = field(&obj, "model", path)?;
        let energy_threshold: f64 = field(&obj, "energy_threshold", path)?;
        let quality: QualityInfo = field(&obj, "quality", path)?;
        let calibration: CalibrationId = field(&obj, "calibration", path)?;
        let cost: Cost = field(&obj, "cost", path)?;
        let search: SearchInfo = field(&obj, "search", path)?;
        let partitions: Vec<Partition> = field(&obj, "partitions", path)?;

        // The model identity.
        if model.sha256 != model_sha256 {
            return Err(fail(
                "model.sha256",
                format!(
                    "schedule was made for {} ({}), expected this model's {model_sha256}",
                    model.file,
                    short(&model.sha256)
                ),
            ));
        }
        if model.scale != graph.scale {
            return Err(fail(
                "model.scale",
                format!(
                    "is {} (expected {}, the model's scale)",
                    model.scale, graph.scale
                ),
            ));
        }
        if !["per-channel", "per-tensor"].contains(&model.weights.as_str()) {
            return Err(fail(
                "model.weights",
                format!(
                    "is \"{}\" (expected \"per-channel\" or \"per-tensor\")",
                    model.weights
                ),
            ));
        }
        if !(0.0..=1.0).contains(&energy_threshold) {
            return Err(fail(
                "energy_threshold",
                format!("is {energy_threshold} (expected 0 ≤ K ≤ 1)"),
            ));
        }

        // Layers: exactly the model's conv layers, each with a valid ⟨b, s, z, d⟩.
        let Some(Value::Object(lmap)) = obj.get("layers") else {
            return Err(fail(
                "layers",
                "missing or not an object (expected conv layer name → {bits, scale, zero, dre, …})"
                    .into(),
            ));
        };
        let convs = graph.conv_layers();
        let names: Vec<&str> = convs
            .iter()
            .map(|&i| graph.layers[i].name.as_str())
            .collect();
        if let Some(k) = lmap.keys().find(|k| !names.contains(&k.as_str())) {
            return Err(fail(
                &format!("layers.{k}"),
                "the model has no conv layer of this name (schedule made for another model?)"
                    .into(),
            ));
        }
        let mut layers = Vec::with_capacity(names.len());
        for name in &names {
            let f = format!("layers.{name}");
            let v = lmap
                .get(*name)
                .ok_or_else(|| fail(&f, "missing (the model has this conv layer)".into()))?;
            let l: LayerQ =
                serde_json::from_value(v.clone()).map_err(|e| fail(&f, e.to_string()))?;
            if ![8, 16, 32].contains(&l.bits) {
                return Err(fail(
                    &format!("{f}.bits"),
                    format!("is {} (expected 8, 16, or 32 for a float layer)", l.bits),
                ));
            }
            if !(l.scale.is_finite() && l.scale > 0.0) {
                return Err(fail(
                    &format!("{f}.scale"),
                    format!("is {} (expected a finite positive number)", l.scale),
                ));
            }
            if !(l.zero.is_finite() && l.zero.fract() == 0.0) {
                return Err(fail(
                    &format!("{f}.zero"),
                    format!("is {} (expected a finite integer)", l.zero),
                ));
            }
            layers.push((name.to_string(), l));
        }

        // Partitions must be what the layers imply (the dispatcher trusts them).
        let owned: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let bits: Vec<u32> = layers.iter().map(|(_, l)| l.bits).collect();
        let dre: Vec<bool> = layers.iter().map(|(_, l)| l.dre).collect();
        let expected = self::partitions(&owned, &bits, &dre);
        if partitions != expected {
            return Err(fail(
                "partitions",
                format!(
                    "do not match the layers' bits and dre flags (expected {} runs of consecutive conv layers, found {})",
                    expected.len(),
                    partitions.len()
                ),
            ));
        }
        let pareto: Option<Pareto> = match obj.get("pareto") {
            None => None,
            Some(_) => Some(field(&obj, "pareto", path)?),
        };
        if let Some(pf) = &pareto {
            check_pareto(pf, names.len()).map_err(|(f, m)| fail(&f, m))?;
        }
        let routing: Option<Routing> = match obj.get("routing") {
            None => None,
            Some(_) => Some(field(&obj, "routing", path)?),
        };
        if let Some(r) = &routing {
            if r.score != ROUTING_SCORE {
                return Err(fail(
                    "routing.score",
                    format!("is \"{}\" (expected \"{ROUTING_SCORE}\")", r.score),
                ));
            }
            if r.patch == 0 {
                return Err(fail("routing.patch", "is 0 (expected a side ≥ 1)".into()));
            }
            if !(r.threshold.is_finite() && r.threshold >= 0.0) {
                return Err(fail(
                    "routing.threshold",
                    format!("is {} (expected a finite number ≥ 0)", r.threshold),
                ));
            }
        }
        Ok(Schedule {
            version: VERSION,
            model,
            energy_threshold,
            quality,
            calibration,
            cost,
            search,
            layers,
            partitions,
            pareto,
            routing,
        })
    }

    /// The engine plan of front point `k`: its bits and DRE flags with Eq. (1)
    /// from the calibrated ranges (as the offline flow measured it).
    pub fn point_plan(&self, graph: &Graph, k: usize) -> Option<Plan> {
        let p = self.pareto.as_ref()?.points.get(k)?;
        let bits: Vec<Bits> = p
            .bits
            .iter()
            .map(|&b| if b == 8 { Bits::B8 } else { Bits::B16 })
            .collect();
        Some(Plan::per_conv(graph, &self.ranges(graph), &bits, &p.dre))
    }
}

/// The front's invariants (what the element trusts): every point names every
/// conv layer, bits are 8 or 16, times finite, positive and increasing.
fn check_pareto(p: &Pareto, convs: usize) -> std::result::Result<(), (String, String)> {
    if p.points.is_empty() {
        return Err((
            "pareto.points".into(),
            "empty (expected at least one plan)".into(),
        ));
    }
    let mut last = 0.0;
    for (k, pt) in p.points.iter().enumerate() {
        let f = |x: &str| format!("pareto.points[{k}].{x}");
        if pt.bits.len() != convs || pt.dre.len() != convs {
            return Err((
                f("bits"),
                format!(
                    "{} bits and {} dre flags (expected {convs}, one per conv layer)",
                    pt.bits.len(),
                    pt.dre.len()
                ),
            ));
        }
        if let Some(b) = pt.bits.iter().find(|&&b| b != 8 && b != 16) {
            return Err((f("bits"), format!("contains {b} (expected 8 or 16)")));
        }
        if !(pt.predicted_ms.is_finite() && pt.predicted_ms > 0.0) {
            return Err((
                f("predicted_ms"),
                format!("is {} (expected a finite time > 0)", pt.predicted_ms),
            ));
        }
        if pt.predicted_ms < last {
            return Err((
                f("predicted_ms"),
                "points must be sorted by increasing predicted time".into(),
            ));
        }
        last = pt.predicted_ms;
    }
    Ok(())
}

fn short(h: &str) -> String {
    h.chars().take(12).collect::<String>() + "…"
}

/// The project's schedules compiled into the codec (the bundled models' and the
/// ../shared IMDN models', ≈ 50 KB), so that hybrid mode finds them without the
/// checkout. Found, like files, by the model SHA-256 inside them.
const EMBEDDED: [(&str, &str); 9] = [
    ("nawq_x2.json", include_str!("../../schedules/nawq_x2.json")),
    ("nawq_x3.json", include_str!("../../schedules/nawq_x3.json")),
    ("nawq_x4.json", include_str!("../../schedules/nawq_x4.json")),
    (
        "nawq_luma_x2.json",
        include_str!("../../schedules/nawq_luma_x2.json"),
    ),
    (
        "nawq_luma_x3.json",
        include_str!("../../schedules/nawq_luma_x3.json"),
    ),
    (
        "nawq_luma_x4.json",
        include_str!("../../schedules/nawq_luma_x4.json"),
    ),
    ("IMDN_x2.json", include_str!("../../schedules/IMDN_x2.json")),
    ("IMDN_x4.json", include_str!("../../schedules/IMDN_x4.json")),
    (
        "IMDN_RTC_x2.json",
        include_str!("../../schedules/IMDN_RTC_x2.json"),
    ),
];

/// Where a model's default schedule was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScheduleSource {
    File(std::path::PathBuf),
    /// A built-in schedule (its file name in the project's `schedules/`).
    Builtin {
        name: &'static str,
        text: &'static str,
    },
}

impl ScheduleSource {
    /// The name errors and logs give it: the file's path, or `built-in:NAME.json`.
    pub fn label(&self) -> std::path::PathBuf {
        match self {
            ScheduleSource::File(p) => p.clone(),
            ScheduleSource::Builtin { name, .. } => format!("built-in:{name}").into(),
        }
    }

    /// Reads and checks it against `graph` (see [`Schedule::load`]).
    pub fn load(&self, graph: &Graph, model_sha256: &str) -> Result<Schedule> {
        match self {
            ScheduleSource::File(p) => Schedule::load(p, graph, model_sha256),
            ScheduleSource::Builtin { text, .. } => {
                Schedule::parse(&self.label(), text, graph, model_sha256)
            }
        }
    }
}

/// File names of the built-in schedules.
pub fn builtin_names() -> impl Iterator<Item = &'static str> {
    EMBEDDED.iter().map(|&(n, _)| n)
}

fn made_for(text: &str, model_sha256: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text)
        .is_ok_and(|v| v.pointer("/model/sha256").and_then(|s| s.as_str()) == Some(model_sha256))
}

/// Directories searched for a model's default schedule before the built-in
/// ones, in order: the `NAWQSR_SCHEDULES` environment variable (`:`-separated),
/// then `./schedules` (where `nawqsr calibrate` writes in a checkout).
pub fn schedule_dirs() -> Vec<std::path::PathBuf> {
    let mut dirs: Vec<std::path::PathBuf> = std::env::var_os("NAWQSR_SCHEDULES")
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default();
    dirs.push("schedules".into());
    dirs
}

/// The first schedule made for the model with SHA-256 `model_sha256`: in
/// [`schedule_dirs`] (files that are not schedules are skipped), then among the
/// built-in ones.
pub fn find_for_model(model_sha256: &str) -> Option<ScheduleSource> {
    for dir in schedule_dirs() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<_> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        for f in files {
            if std::fs::read_to_string(&f).is_ok_and(|t| made_for(&t, model_sha256)) {
                return Some(ScheduleSource::File(f));
            }
        }
    }
    EMBEDDED
        .iter()
        .find(|(_, text)| made_for(text, model_sha256))
        .map(|&(name, text)| ScheduleSource::Builtin { name, text })
}
