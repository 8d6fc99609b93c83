//! The controller: which codecs exist and which one runs. `start()` builds the
//! codec of the `mode` property; `set_caps()` rebuilds it when caps settle on
//! another scale; on every frame `reconcile_mode` brings the running codec in
//! line with the precision ladder (`qos.rs`, fed by QoS events) and the `mode`
//! property, building codecs as the ladder visits modes. Errors name the
//! property at fault (`BuildError`), and are mapped to GStreamer messages by the
//! caller.
use std::path::{Path, PathBuf};

use gst::subclass::prelude::*;

use nawqsr_codec::model::bundled::Family;
use nawqsr_codec::runtime::{Codec, CodecConfig, Mode, PixelFormat};

use super::deadline::{Deadline, DeadlineConfig};
use super::imp::{CAT, Nawqsr, Settings};
use super::qos::{Ladder, LadderConfig};
use super::telemetry::PlanInfo;

/// Built in `start()` (codec) and `set_caps()` (video infos), dropped in `stop()`.
pub(super) struct State {
    /// Settings the codecs were built from (model, schedule, patch size, threads).
    pub(super) settings: Settings,
    pub(super) scale: usize,
    /// Codecs built so far, one per mode the ladder visited; `active` is in here.
    pub(super) codecs: Vec<(Mode, Codec)>,
    pub(super) active: Mode,
    /// Modes whose codec failed to build: never retried.
    pub(super) failed: Vec<Mode>,
    /// Hybrid with a schedule that has a quality/latency front: the deadline
    /// controller and the front's codecs (built as it visits them).
    pub(super) front: Option<FrontState>,
    /// Whether upstream is live (asked once, on the first frame): the default
    /// `latency-target` applies only to live streams, which must keep real
    /// time; a file transcode has no deadline and keeps the best plan.
    pub(super) live: Option<bool>,
    pub(super) in_info: Option<gst_video::VideoInfo>,
    pub(super) out_info: Option<gst_video::VideoInfo>,
    pub(super) format: Option<PixelFormat>,
    /// What the codecs were built for: see [`Input`].
    pub(super) input: Input,
    /// The codec that ran the last frame (its address), to reset temporal
    /// reuse when another takes over.
    pub(super) last_codec: usize,
}

/// The front's codecs and the deadline controller over them.
pub(super) struct FrontState {
    /// A deadline applies (the property, or a live stream): until then the
    /// schedule's own plan runs.
    pub(super) steering: bool,
    pub(super) deadline: Deadline,
    pub(super) points: Vec<Option<Codec>>,
    pub(super) predicted: Vec<f64>,
    pub(super) psnr: Vec<f64>,
}

impl State {
    /// Every built codec forgets its reuse cache (flush, discontinuity, caps,
    /// a switch of mode or plan): a codec that ran earlier holds an old frame.
    pub(super) fn reset_reuse(&self) {
        let points = self.front.iter().flat_map(|f| f.points.iter().flatten());
        for c in self.codecs.iter().map(|(_, c)| c).chain(points) {
            c.reset_reuse();
        }
    }

    pub(super) fn codec(&self) -> &Codec {
        if self.active == Mode::Hybrid
            && let Some(f) = self.front.as_ref().filter(|f| f.steering)
            && let Some(Some(c)) = f.points.get(f.deadline.current())
        {
            return c;
        }
        &self
            .codecs
            .iter()
            .find(|(m, _)| *m == self.active)
            .expect("active codec is built")
            .1
    }
}

/// Why a codec could not be built: the GStreamer error kind and a one-line text
/// naming the property at fault.
pub(super) struct BuildError {
    pub(super) kind: gst::ResourceError,
    pub(super) text: String,
}

impl BuildError {
    pub(super) fn settings(text: String) -> BuildError {
        BuildError {
            kind: gst::ResourceError::Settings,
            text,
        }
    }

    pub(super) fn error_msg(&self) -> gst::ErrorMessage {
        gst::error_msg!(self.kind, ("{}", self.text))
    }
}

/// What the caps say about the frames the codecs are built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Input {
    /// The bundled family (no `model` set): luma for YUV caps (the default,
    /// before caps: decoders give YUV), RGB for RGB.
    pub family: Family,
    /// Frames deeper than 8 bits (10-bit caps): `CodecConfig::deep_input`.
    pub deep: bool,
}

impl Nawqsr {
    /// Builds the codec for `mode` from `settings`; `scale` pins the factor (runtime
    /// fallbacks must keep the negotiated size); `input` picks the bundled
    /// model when no `model` is set, and the input convs' unit for 10-bit frames.
    /// Errors name the property at fault.
    pub(super) fn build_codec(
        &self,
        settings: &Settings,
        mode: Mode,
        scale: Option<usize>,
        input: Input,
    ) -> Result<Codec, BuildError> {
        let check_readable = |prop: &str, p: &Path| {
            std::fs::File::open(p).map(drop).map_err(|e| BuildError {
                kind: gst::ResourceError::OpenRead,
                text: format!("property {prop}: cannot open '{}': {e}", p.display()),
            })
        };
        if let Some(p) = &settings.model {
            check_readable("model", p)?;
        }
        if let Some(p) = &settings.schedule {
            check_readable("schedule", p)?;
        }
        let base = CodecConfig {
            model: settings.model.clone(),
            schedule: settings.schedule.clone(),
            mode,
            scale: None,
            threads: settings.threads as usize,
            patch_size: settings.patch_size as usize,
            reuse: settings.reuse != super::NawqsrReuse::Off,
            reuse_threshold: if settings.reuse == super::NawqsrReuse::Tolerant {
                settings.reuse_threshold as u8
            } else {
                0
            },
            reuse_patch: settings.reuse_patch as usize,
            routing: settings.routing == super::NawqsrRouting::On,
            family: input.family,
            deep_input: input.deep,
        };
        let scale = match (mode, scale, &settings.model) {
            (_, Some(s), _) => Some(s),
            (_, None, None) => Some(settings.scale as usize),
            // Bicubic with a model: the model decides the factor; load it to learn it.
            (Mode::Bicubic, None, Some(_)) => Some(
                Codec::new(&CodecConfig {
                    mode: Mode::Fp32,
                    ..base.clone()
                })
                .map_err(|e| self.codec_error(&settings.schedule, e))?
                .scale(),
            ),
            (_, None, Some(_)) => None,
        };
        // A given model decides the factor; bicubic and the bundled models are told.
        let cfg = CodecConfig {
            scale: if mode == Mode::Bicubic || settings.model.is_none() {
                scale
            } else {
                None
            },
            ..base
        };
        let codec = Codec::new(&cfg).map_err(|e| self.codec_error(&settings.schedule, e))?;
        if let Some(s) = scale
            && codec.scale() != s
        {
            return Err(BuildError::settings(format!(
                "property model: mode {} upscales ×{}, but the stream is negotiated at ×{s}",
                mode.name(),
                codec.scale()
            )));
        }
        Ok(codec)
    }

    /// Maps a codec error to the property it is about.
    fn codec_error(&self, schedule: &Option<PathBuf>, e: nawqsr_codec::Error) -> BuildError {
        use nawqsr_codec::Error;
        let prop = match &e {
            Error::File { path, .. } if Some(path) == schedule.as_ref() => "schedule",
            Error::Model { .. }
            | Error::File { .. }
            | Error::UnsupportedOp { .. }
            | Error::Scale(_) => "model",
            // The codec's free-text errors at build time are about the mode and what
            // it needs (e.g. "mode hybrid needs a schedule").
            Error::Invalid(msg) if msg.contains("schedule") => "schedule",
            Error::Invalid(_) => "mode",
        };
        BuildError::settings(format!("property {prop}: {e}"))
    }

    /// Brings `state.active` in line with the ladder (and the `mode` property,
    /// which may change while playing), building codecs as needed. Returns the
    /// messages to post once the state lock is released.
    pub(super) fn reconcile_mode(&self, state: &mut State, user_mode: Mode) -> Vec<gst::Message> {
        let mut msgs = Vec::new();
        {
            let mut ladder = self.ladder.lock().unwrap();
            if ladder.ceiling() != user_mode {
                gst::info!(
                    CAT,
                    imp = self,
                    "mode property changed to {}",
                    user_mode.name()
                );
                *ladder = Ladder::new(user_mode, LadderConfig::default());
                for &m in &state.failed {
                    ladder.mark_unavailable(m);
                }
            }
        }
        self.ensure_front(state);
        loop {
            let want = self.ladder.lock().unwrap().current();
            if want == state.active {
                break;
            }
            let built = state.codecs.iter().any(|(m, _)| *m == want);
            if !built && !state.failed.contains(&want) {
                // Not under the ladder lock: loading a model can take a while and QoS
                // events must not wait for it.
                match self.build_codec(&state.settings, want, Some(state.scale), state.input) {
                    Ok(codec) => state.codecs.push((want, codec)),
                    Err(err) => {
                        gst::warning!(
                            CAT,
                            imp = self,
                            "mode {} unavailable: {}",
                            want.name(),
                            err.text
                        );
                        // The user asked for this mode (while playing): say why it is
                        // not running. Fallbacks of the ladder stay in the debug log.
                        if want == user_mode {
                            msgs.push(
                                gst::message::Warning::builder(err.kind, &err.text)
                                    .src(&*self.obj())
                                    .build(),
                            );
                        }
                        state.failed.push(want);
                    }
                }
            }
            if state.failed.contains(&want) {
                let mut ladder = self.ladder.lock().unwrap();
                ladder.mark_unavailable(want);
                if ladder.current() == want {
                    // Nowhere else to go: keep running the active codec.
                    break;
                }
                continue;
            }
            let from = state.active;
            state.active = want;
            self.ensure_front(state);
            self.timing.lock().unwrap().switches += 1;
            gst::info!(
                CAT,
                imp = self,
                "mode switch {} -> {}",
                from.name(),
                want.name()
            );
            let s = gst::Structure::builder("nawqsr-mode-switch")
                .field("from", from.name())
                .field("to", want.name())
                .build();
            msgs.push(gst::message::Element::builder(s).src(&*self.obj()).build());
        }
        msgs
    }

    /// Hybrid's codec has a front: start the deadline controller at its best
    /// point (once).
    pub(super) fn ensure_front(&self, state: &mut State) {
        if state.front.is_some() || state.active != Mode::Hybrid {
            return;
        }
        let Some((_, hybrid)) = state.codecs.iter().find(|(m, _)| *m == Mode::Hybrid) else {
            return;
        };
        let Some(front) = hybrid.front() else {
            return;
        };
        let predicted: Vec<f64> = front.points.iter().map(|p| p.predicted_ms).collect();
        let psnr: Vec<f64> = front.points.iter().map(|p| p.psnr).collect();
        let best = predicted.len() - 1;
        let mut points: Vec<Option<Codec>> = (0..predicted.len()).map(|_| None).collect();
        match hybrid.at_point(best) {
            Ok(c) => points[best] = Some(c),
            Err(e) => {
                gst::warning!(CAT, imp = self, "front point {best} unavailable: {e}");
                return;
            }
        }
        gst::info!(
            CAT,
            imp = self,
            "deadline control on a front of {} plans ({:.2}–{:.2} ms profiled on {})",
            predicted.len(),
            predicted[0],
            predicted[best],
            front.host
        );
        state.front = Some(FrontState {
            steering: false,
            deadline: Deadline::new(predicted.clone(), best, best, DeadlineConfig::default()),
            points,
            predicted,
            psnr,
        });
    }

    /// The running front point, for the stats.
    pub(super) fn plan_info(state: &State, target_ms: f64) -> Option<PlanInfo> {
        let f = state
            .front
            .as_ref()
            .filter(|_| state.active == Mode::Hybrid)?;
        let k = f.deadline.current();
        Some(PlanInfo {
            point: k,
            predicted_ms: f.predicted[k],
            psnr: f.psnr[k],
            target_ms,
        })
    }

    /// One frame of hybrid on the front took `ms`: let the deadline controller
    /// move, building the new point's codec if needed. Returns the message to
    /// post (`nawqsr-plan-switch`, naming both plans).
    pub(super) fn steer(&self, state: &mut State, ms: f64, target_ms: f64) -> Option<gst::Message> {
        if state.active != Mode::Hybrid {
            return None;
        }
        let hybrid = state
            .codecs
            .iter()
            .find(|(m, _)| *m == Mode::Hybrid)
            .map(|(_, c)| c)?;
        let f = state.front.as_mut()?;
        if !f.steering {
            // The frame just measured ran the schedule's own plan: nothing to
            // learn the ratio from. Start on the front's best plan.
            f.steering = true;
            return None;
        }
        let sw = f.deadline.observe(ms, target_ms)?;
        if f.points[sw.to].is_none() {
            match hybrid.at_point(sw.to) {
                Ok(c) => f.points[sw.to] = Some(c),
                Err(e) => {
                    // Cannot happen for a validated schedule; stay where we were.
                    gst::warning!(CAT, imp = self, "front point {} unavailable: {e}", sw.to);
                    f.deadline = Deadline::new(
                        f.predicted.clone(),
                        sw.from,
                        f.predicted.len() - 1,
                        DeadlineConfig::default(),
                    );
                    return None;
                }
            }
        }
        self.timing.lock().unwrap().switches += 1;
        gst::info!(
            CAT,
            imp = self,
            "plan switch {} ({:.2} ms, {:.4} dB) -> {} ({:.2} ms, {:.4} dB), target {target_ms:.2} ms, frame {ms:.2} ms",
            sw.from,
            f.predicted[sw.from],
            f.psnr[sw.from],
            sw.to,
            f.predicted[sw.to],
            f.psnr[sw.to]
        );
        let s = gst::Structure::builder("nawqsr-plan-switch")
            .field("from", sw.from as u32)
            .field("to", sw.to as u32)
            .field("from-predicted-ms", f.predicted[sw.from])
            .field("to-predicted-ms", f.predicted[sw.to])
            .field("from-psnr", f.psnr[sw.from])
            .field("to-psnr", f.psnr[sw.to])
            .field("target-ms", target_ms)
            .field("frame-ms", ms)
            .build();
        Some(gst::message::Element::builder(s).src(&*self.obj()).build())
    }
}
