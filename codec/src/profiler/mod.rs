//! FYE-SR's *SR timing profiler* and its cost model, on our units.
//!
//! FYE-SR (MobiCom'24, §4) predicts a split's latency as
//! `T = Σ_i [α_i t_i^N + (1 − α_i) t_i^G] + Σ_i switch costs`: each layer's
//! measured time on the processor it runs on, plus a measured cost wherever two
//! consecutive layers run on different processors. Here the processors are the
//! INT8 and A16W8 units (FP32 partitions join once the any-model work lands), and
//! the "data-format converter" is the producer's epilogue writing the consumer's
//! format, so a switch costs what the dispatcher hand-over and the format change
//! cost — measured, not assumed.
//!
//! - [`Profile`]: the `host-profile.json` file (`nawqsr profile`), with the host
//!   it was measured on.
//! - [`Profile::predict`]: T(P) for any per-layer (bits, DRE) assignment.
//! - [`measure`]: the measurements, on the real runtime (bands, dispatcher,
//!   workers), at one input size and thread count.
//!
//! Layer times are *segment* times: a conv plus the non-conv layers after it up
//! to the next conv (IMDN's split/concat/attention, the anchor upsampler), since
//! those run in float whatever the precision and belong to no unit.
pub mod measure;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::quant::Bits;

/// Version of the profile file format.
pub const VERSION: u64 = 2;

/// The machine a profile was measured on: predictions hold only there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Host {
    /// `model name` from /proc/cpuinfo (or "unknown").
    pub cpu: String,
    /// Kernel level in use (`CpuLevel::name`).
    pub level: String,
    /// Worker threads of the measured runtime.
    pub threads: usize,
}

impl Host {
    pub fn this(level: crate::kernels::CpuLevel, threads: usize) -> Host {
        Host {
            cpu: cpu_model(),
            level: level.name().to_string(),
            threads,
        }
    }
}

/// The CPU's marketing name, for the record.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// A value per unit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerUnit {
    pub int8: f64,
    pub a16w8: f64,
}

impl PerUnit {
    pub fn get(&self, b: Bits) -> f64 {
        match b {
            Bits::B8 => self.int8,
            Bits::B16 => self.a16w8,
        }
    }
}

/// One conv layer's segment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerTime {
    pub name: String,
    /// Segment wall time per frame on each unit, static ranges (ms).
    pub ms: PerUnit,
    /// Extra time when the layer uses run-time DRE (§4.2: f32 input, range
    /// partials, the barrier), per unit (ms; may be slightly negative: noise).
    pub dre_extra_ms: PerUnit,
}

/// The switch between conv `from` and the next conv `to` (FYE-SR's
/// inter-processor switch cost), in ms: what a plan switching there costs over
/// the sum of its layers' times. `measure` fits one cost per direction over
/// whole mixed plans and stores it on every edge ([`SwitchFit`]); the format
/// keeps one entry per edge so that a finer model can fill it. Negative where
/// the producer writing the narrower format saves more than the hand-over
/// costs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeCost {
    pub from: String,
    pub to: String,
    /// `from` on INT8, `to` on A16W8.
    pub up_ms: f64,
    /// `from` on A16W8, `to` on INT8.
    pub down_ms: f64,
}

/// How the edges' switch costs were obtained: a least-squares fit over whole
/// mixed plans (`measure`), with what each plan left over after its segments.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchFit {
    /// Random mixed plans measured for the fit.
    pub plans: usize,
    /// Their seed (`measure::PlanRng`).
    pub seed: u64,
    /// Measured − segment sum of each (ms): what the fitted costs explain.
    pub residual_ms: Vec<f64>,
}

/// A plan the profiler measured after building the model, to show how well the
/// sum predicts the whole.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    pub plan: String,
    /// 8 or 16 per conv layer.
    pub bits: Vec<u32>,
    pub dre: Vec<bool>,
    pub predicted_ms: f64,
    pub measured_ms: f64,
    /// (predicted − measured) / measured.
    pub error: f64,
}

/// The model a profile belongs to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileModel {
    pub file: String,
    pub sha256: String,
}

/// `host-profile.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub version: u64,
    pub host: Host,
    pub model: ProfileModel,
    /// LR input size, [width, height].
    pub input: [usize; 2],
    /// Timed frames per measured plan (after warm-up); times are medians.
    pub frames: usize,
    /// Measured wall time per frame of the uniform plans (ms).
    pub uniform_ms: PerUnit,
    /// Conv layers in execution order.
    pub layers: Vec<LayerTime>,
    /// Between consecutive conv layers: `layers.len() − 1` entries.
    pub edges: Vec<EdgeCost>,
    /// How the edge costs were fitted (absent in hand-made profiles).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switch_fit: Option<SwitchFit>,
    /// Predicted vs measured on plans not used to build the model.
    pub check: Vec<Check>,
}

impl Profile {
    /// Predicted wall time per frame (ms) of a plan given as per-conv bits and
    /// DRE flags: Σ segment times + DRE extras + a switch cost at each change of
    /// unit (FYE-SR's T).
    ///
    /// A switch cost may be negative, and that is real: the producer's epilogue
    /// writes the consumer's format (FYE-SR's data-format converter), so an
    /// A16W8 layer feeding an INT8 one writes u8 instead of u16 and saves time.
    /// DRE extras enter at ≥ 0 (a range pass never saves time; a negative
    /// difference is noise). The total is kept ≥ half the uniform INT8 time,
    /// a guard for tiny frames where differences of sub-millisecond
    /// measurements are mostly noise.
    pub fn predict(&self, bits: &[Bits], dre: &[bool]) -> f64 {
        let mut t = 0.0;
        for (i, l) in self.layers.iter().enumerate() {
            let b = bits.get(i).copied().unwrap_or(Bits::B8);
            t += l.ms.get(b);
            if dre.get(i).copied().unwrap_or(false) {
                t += l.dre_extra_ms.get(b).max(0.0);
            }
        }
        for (k, e) in self.edges.iter().enumerate() {
            match (bits.get(k), bits.get(k + 1)) {
                (Some(Bits::B8), Some(Bits::B16)) => t += e.up_ms,
                (Some(Bits::B16), Some(Bits::B8)) => t += e.down_ms,
                _ => {}
            }
        }
        t.max(0.5 * self.uniform_ms.int8)
    }

    /// Reads and checks a profile written for `model_sha256` with `convs` conv
    /// layers. Errors name the file and the field.
    pub fn load(path: &std::path::Path, model_sha256: &str, convs: &[String]) -> Result<Profile> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::file(path, format!("cannot read profile: {e}")))?;
        let p: Profile = serde_json::from_str(&text).map_err(|e| {
            Error::file(
                path,
                format!("{e} (expected a profile written by `nawqsr profile`, version {VERSION})"),
            )
        })?;
        let fail = |field: &str, msg: String| Error::file(path, format!("field `{field}`: {msg}"));
        if p.version != VERSION {
            return Err(fail(
                "version",
                format!("is {} (expected {VERSION})", p.version),
            ));
        }
        if p.model.sha256 != model_sha256 {
            return Err(fail(
                "model.sha256",
                format!(
                    "profile was measured for {} ({}), expected this model's {model_sha256}",
                    p.model.file, p.model.sha256
                ),
            ));
        }
        let names: Vec<&str> = p.layers.iter().map(|l| l.name.as_str()).collect();
        if names != convs.iter().map(String::as_str).collect::<Vec<_>>() {
            return Err(fail(
                "layers",
                format!(
                    "{} entries that do not match the model's {} conv layers in order",
                    p.layers.len(),
                    convs.len()
                ),
            ));
        }
        if p.edges.len() + 1 != p.layers.len().max(1) {
            return Err(fail(
                "edges",
                format!(
                    "{} entries (expected {})",
                    p.edges.len(),
                    p.layers.len().saturating_sub(1)
                ),
            ));
        }
        let finite = |x: f64| x.is_finite();
        for (i, l) in p.layers.iter().enumerate() {
            if ![
                l.ms.int8,
                l.ms.a16w8,
                l.dre_extra_ms.int8,
                l.dre_extra_ms.a16w8,
            ]
            .into_iter()
            .all(finite)
                || l.ms.int8 < 0.0
                || l.ms.a16w8 < 0.0
            {
                return Err(fail(
                    &format!("layers[{i}]"),
                    "times must be finite and ≥ 0 ms".into(),
                ));
            }
        }
        if p.edges
            .iter()
            .any(|e| !(e.up_ms.is_finite() && e.down_ms.is_finite()))
        {
            return Err(fail("edges", "times must be finite".into()));
        }
        Ok(p)
    }

    pub fn save(&self, path: &std::path::Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::file(path, format!("cannot serialize: {e}")))?;
        std::fs::write(path, text + "\n")
            .map_err(|e| Error::file(path, format!("cannot write profile: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile() -> Profile {
        let layer = |n: &str, a: f64, b: f64| LayerTime {
            name: n.into(),
            ms: PerUnit { int8: a, a16w8: b },
            dre_extra_ms: PerUnit {
                int8: 0.5,
                a16w8: 1.0,
            },
        };
        Profile {
            version: VERSION,
            host: Host {
                cpu: "test".into(),
                level: "scalar".into(),
                threads: 1,
            },
            model: ProfileModel {
                file: "m.onnx".into(),
                sha256: "00".into(),
            },
            input: [8, 8],
            frames: 1,
            uniform_ms: PerUnit {
                int8: 6.0,
                a16w8: 11.0,
            },
            layers: vec![
                layer("a", 1.0, 2.0),
                layer("b", 2.0, 4.0),
                layer("c", 3.0, 5.0),
            ],
            edges: vec![
                EdgeCost {
                    from: "a".into(),
                    to: "b".into(),
                    up_ms: 0.25,
                    down_ms: 0.125,
                },
                EdgeCost {
                    from: "b".into(),
                    to: "c".into(),
                    up_ms: 0.5,
                    down_ms: 0.75,
                },
            ],
            switch_fit: None,
            check: vec![],
        }
    }

    #[test]
    fn prediction_sums_layers_dre_and_switches() {
        let p = profile();
        use Bits::{B8, B16};
        assert_eq!(p.predict(&[B8, B8, B8], &[false; 3]), 6.0);
        assert_eq!(p.predict(&[B16, B16, B16], &[false; 3]), 11.0);
        // a@16 → b@8 (down 0.125) → c@16 (up 0.5).
        assert_eq!(
            p.predict(&[B16, B8, B16], &[false; 3]),
            2.0 + 2.0 + 5.0 + 0.625
        );
        // DRE on b at 8 bits adds its int8 extra.
        assert_eq!(p.predict(&[B8, B8, B8], &[false, true, false]), 6.5);
        // A negative switch cost (writing the narrower format) counts; a
        // negative DRE extra does not; the total stays ≥ half of INT8's.
        let mut q = p.clone();
        q.edges[0].down_ms = -0.5;
        assert_eq!(
            q.predict(&[B16, B8, B8], &[false; 3]),
            2.0 + 2.0 + 3.0 - 0.5
        );
        q.layers[1].dre_extra_ms.int8 = -1.0;
        assert_eq!(q.predict(&[B8, B8, B8], &[false, true, false]), 6.0);
        q.edges[0].down_ms = -100.0;
        assert_eq!(q.predict(&[B16, B8, B8], &[false; 3]), 3.0);
    }

    #[test]
    fn load_rejects_another_model_and_wrong_layers() {
        let dir = std::env::temp_dir().join(format!("nawqsr-profile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("p.json");
        profile().save(&f).unwrap();
        let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        assert!(Profile::load(&f, "00", &names).is_ok());
        let e = Profile::load(&f, "11", &names).unwrap_err().to_string();
        assert!(e.contains("model.sha256"), "{e}");
        let e = Profile::load(&f, "00", &names[..2])
            .unwrap_err()
            .to_string();
        assert!(e.contains("`layers`"), "{e}");
        std::fs::write(&f, "{").unwrap();
        let e = Profile::load(&f, "00", &names).unwrap_err().to_string();
        assert!(e.contains("p.json"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
