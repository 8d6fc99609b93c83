//! The controller: which codecs exist and which one runs. `start()` builds the
//! codec of the `mode` property; `set_caps()` rebuilds it when caps settle on
//! another scale; on every frame `reconcile_mode` brings the running codec in
//! line with the precision ladder (`qos.rs`, fed by QoS events) and the `mode`
//! property, building codecs as the ladder visits modes. Errors name the
//! property at fault (`BuildError`), and are mapped to GStreamer messages by the
//! caller.
use std::path::{Path, PathBuf};

use gst::subclass::prelude::*;

use nawqsr_codec::runtime::{Codec, CodecConfig, Mode, PixelFormat};

use super::imp::{CAT, Nawqsr, Settings};
use super::qos::{Ladder, LadderConfig};

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
    pub(super) in_info: Option<gst_video::VideoInfo>,
    pub(super) out_info: Option<gst_video::VideoInfo>,
    pub(super) format: Option<PixelFormat>,
}

impl State {
    pub(super) fn codec(&self) -> &Codec {
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

impl Nawqsr {
    /// Builds the codec for `mode` from `settings`; `scale` pins the factor (runtime
    /// fallbacks must keep the negotiated size). Errors name the property at fault.
    pub(super) fn build_codec(
        &self,
        settings: &Settings,
        mode: Mode,
        scale: Option<usize>,
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
        loop {
            let want = self.ladder.lock().unwrap().current();
            if want == state.active {
                break;
            }
            let built = state.codecs.iter().any(|(m, _)| *m == want);
            if !built && !state.failed.contains(&want) {
                // Not under the ladder lock: loading a model can take a while and QoS
                // events must not wait for it.
                match self.build_codec(&state.settings, want, Some(state.scale)) {
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
}
