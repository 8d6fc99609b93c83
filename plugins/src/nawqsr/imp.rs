//! `GstNawqsr`: a `GstBaseTransform` that upscales every raw video frame ×scale
//! with `nawqsr_codec::runtime::Codec`.
//!
//! - Never in place: the output frame is `scale` times larger than the input.
//! - Caps: the same format on both pads (RGB, RGBx, BGRx, I420, NV12: what
//!   decoders and `videoconvert` give, and what the codec converts itself, so no
//!   extra conversion element is needed); src width/height = scale × sink.
//! - Buffers are mapped as video frames, so `GstVideoMeta` strides (decoders pad
//!   their planes) are honoured on input, and on output when downstream allows it.
//! - QoS: BaseTransform drops frames that are already late and posts the QOS
//!   message; the element counts the drops and drives the precision ladder
//!   (`qos.rs`) with the proportions of the QoS events.
//! - Latency: the measured median per-frame processing time is added to upstream's.
//! - Telemetry: a `nawqsr-stats` element message every `stats-interval` frames.
use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::prelude::*;

use nawqsr_codec::runtime::{Codec, CodecConfig, FrameMut, FrameRef, Mode, PixelFormat};

use super::NawqsrMode;
use super::qos::{Ladder, LadderConfig};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "nawqsr",
        gst::DebugColorFlags::empty(),
        Some("NAWQ-SR super-resolution"),
    )
});

const DEFAULT_MODE: NawqsrMode = NawqsrMode::Hybrid;
const DEFAULT_SCALE: u32 = 2;
const DEFAULT_PATCH_SIZE: u32 = 0;
const DEFAULT_THREADS: u32 = 0;
const DEFAULT_STATS_INTERVAL: u32 = 0;

/// Frames whose processing times answer the latency query (a median over them).
const LATENCY_WINDOW: usize = 32;
/// Frames measured before the element tells the pipeline its latency changed.
const LATENCY_MIN_SAMPLES: usize = 8;

/// Formats on both pads: the codec's `PixelFormat`s.
const FORMATS: [gst_video::VideoFormat; 5] = [
    gst_video::VideoFormat::Rgb,
    gst_video::VideoFormat::Rgbx,
    gst_video::VideoFormat::Bgrx,
    gst_video::VideoFormat::I420,
    gst_video::VideoFormat::Nv12,
];

fn pixel_format(f: gst_video::VideoFormat) -> Option<PixelFormat> {
    Some(match f {
        gst_video::VideoFormat::Rgb => PixelFormat::Rgb,
        gst_video::VideoFormat::Rgbx => PixelFormat::Rgbx,
        gst_video::VideoFormat::Bgrx => PixelFormat::Bgrx,
        gst_video::VideoFormat::I420 => PixelFormat::I420,
        gst_video::VideoFormat::Nv12 => PixelFormat::Nv12,
        _ => return None,
    })
}

#[derive(Debug, Clone)]
struct Settings {
    model: Option<PathBuf>,
    schedule: Option<PathBuf>,
    mode: NawqsrMode,
    scale: u32,
    patch_size: u32,
    threads: u32,
    stats_interval: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            model: None,
            schedule: None,
            mode: DEFAULT_MODE,
            scale: DEFAULT_SCALE,
            patch_size: DEFAULT_PATCH_SIZE,
            threads: DEFAULT_THREADS,
            stats_interval: DEFAULT_STATS_INTERVAL,
        }
    }
}

/// Built in `start()` (codec) and `set_caps()` (video infos), dropped in `stop()`.
struct State {
    /// Settings the codecs were built from (model, schedule, patch size, threads).
    settings: Settings,
    scale: usize,
    /// Codecs built so far, one per mode the ladder visited; `active` is in here.
    codecs: Vec<(Mode, Codec)>,
    active: Mode,
    /// Modes whose codec failed to build: never retried.
    failed: Vec<Mode>,
    in_info: Option<gst_video::VideoInfo>,
    out_info: Option<gst_video::VideoInfo>,
    format: Option<PixelFormat>,
}

impl State {
    fn codec(&self) -> &Codec {
        &self
            .codecs
            .iter()
            .find(|(m, _)| *m == self.active)
            .expect("active codec is built")
            .1
    }
}

/// Processing times and counters for the latency query and the stats messages.
#[derive(Default)]
struct Timing {
    /// The last `LATENCY_WINDOW` per-frame processing times.
    recent: VecDeque<Duration>,
    /// Times since the last stats message, and when that window started.
    window: Vec<Duration>,
    window_start: Option<Instant>,
    frames: u64,
    drops: u64,
    switches: u64,
    /// What the last latency query answered (our share only).
    reported: Option<Duration>,
}

impl Timing {
    fn median(&self) -> Duration {
        let mut v: Vec<Duration> = self.recent.iter().copied().collect();
        v.sort_unstable();
        v.get(v.len() / 2).copied().unwrap_or_default()
    }

    fn record(&mut self, dt: Duration) {
        if self.recent.len() == LATENCY_WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(dt);
        self.window.push(dt);
        self.frames += 1;
    }

    /// True when the pipeline should re-query latency: the median grew by more
    /// than 25 % (and 1 ms) over what the last latency query answered, or fell
    /// below half of it. Small swings are not worth a re-configuration of a live
    /// pipeline; answering a little high only adds delay, answering low drops frames.
    fn latency_changed(&self) -> bool {
        let Some(reported) = self.reported else {
            return false;
        };
        if self.recent.len() < LATENCY_MIN_SAMPLES {
            return false;
        }
        let m = self.median();
        let grew = m > reported + Duration::from_millis(1) && m * 4 > reported * 5;
        let fell = m * 2 < reported;
        grew || fell
    }
}

fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1e3
}

/// Why a codec could not be built: the GStreamer error kind and a one-line text
/// naming the property at fault.
struct BuildError {
    kind: gst::ResourceError,
    text: String,
}

impl BuildError {
    fn settings(text: String) -> BuildError {
        BuildError {
            kind: gst::ResourceError::Settings,
            text,
        }
    }

    fn error_msg(&self) -> gst::ErrorMessage {
        gst::error_msg!(self.kind, ("{}", self.text))
    }
}

pub struct Nawqsr {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    /// The precision ladder: fed by QoS events (src pad), read by `transform()`.
    /// Separate from `state` so that QoS events never wait for a frame.
    ladder: Mutex<Ladder>,
    timing: Mutex<Timing>,
    /// The scale of the loaded model (0 before `start()`), read by caps
    /// negotiation without taking the state lock.
    scale: AtomicU32,
}

impl Default for Nawqsr {
    fn default() -> Self {
        Nawqsr {
            settings: Mutex::new(Settings::default()),
            state: Mutex::new(None),
            ladder: Mutex::new(Ladder::new(DEFAULT_MODE.into(), LadderConfig::default())),
            timing: Mutex::new(Timing::default()),
            scale: AtomicU32::new(0),
        }
    }
}

#[glib::object_subclass]
impl ObjectSubclass for Nawqsr {
    const NAME: &'static str = "GstNawqsr";
    type Type = super::Nawqsr;
    type ParentType = gst_base::BaseTransform;
}

/// Properties that configure the codec: changing them needs a new `start()`.
const READY_ONLY: [&str; 5] = ["model", "schedule", "scale", "patch-size", "threads"];

impl ObjectImpl for Nawqsr {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("model")
                    .nick("Model")
                    .blurb(
                        "Path to the ONNX super-resolution model (input 'lr': float32 NCHW RGB in [0,1]); \
                         its upscaling factor sets the output size. Empty: the project's bundled model \
                         (assets/models/nawq_x2/x3/x4.onnx) for the negotiated scale",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("schedule")
                    .nick("Schedule")
                    .blurb(
                        "Path to the precision schedule (per-layer bitwidths and DRE flags, from \
                         'nawqsr calibrate') used by mode=hybrid. Empty: the codec's default for the model",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("mode", DEFAULT_MODE)
                    .nick("Mode")
                    .blurb(
                        "Precision plan. Under sustained QoS lateness the element steps to faster modes \
                         (fp32 > a16w8 > hybrid > int8 > bicubic), never above this one, and back up \
                         when there is headroom",
                    )
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("scale")
                    .nick("Scale")
                    .blurb(
                        "Upscaling factor when no model is set: picks the bundled model (caps may still \
                         negotiate another of 2, 3, 4) or bicubic's factor. With a model, the model's factor is used",
                    )
                    .minimum(2)
                    .maximum(4)
                    .default_value(DEFAULT_SCALE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("patch-size")
                    .nick("Patch size")
                    .blurb("Size in low-resolution pixels of the patches (row bands) the codec splits a frame into (0 = the codec's default)")
                    .maximum(4096)
                    .default_value(DEFAULT_PATCH_SIZE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("threads")
                    .nick("Threads")
                    .blurb("Worker threads of the codec (0 = one per core)")
                    .maximum(256)
                    .default_value(DEFAULT_THREADS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("stats-interval")
                    .nick("Stats interval")
                    .blurb(
                        "Post a 'nawqsr-stats' element message (frames, fps, latency-p50-ms, \
                         latency-p99-ms, mode, drops, switches) every this many frames (0 = off)",
                    )
                    .default_value(DEFAULT_STATS_INTERVAL)
                    .mutable_playing()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let name = pspec.name();
        if READY_ONLY.contains(&name) && self.obj().current_state() > gst::State::Ready {
            gst::warning!(
                CAT,
                imp = self,
                "property {name} can only be changed in the NULL or READY state; ignored"
            );
            gst::element_imp_warning!(
                self,
                gst::LibraryError::Settings,
                ("property {name} can only be changed in the NULL or READY state; the new value is ignored")
            );
            return;
        }
        let mut settings = self.settings.lock().unwrap();
        let path = |v: &glib::Value| {
            v.get::<Option<String>>()
                .expect("type checked upstream")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
        };
        match name {
            "model" => settings.model = path(value),
            "schedule" => settings.schedule = path(value),
            "mode" => settings.mode = value.get().expect("type checked upstream"),
            "scale" => settings.scale = value.get().expect("type checked upstream"),
            "patch-size" => settings.patch_size = value.get().expect("type checked upstream"),
            "threads" => settings.threads = value.get().expect("type checked upstream"),
            "stats-interval" => {
                settings.stats_interval = value.get().expect("type checked upstream")
            }
            _ => unimplemented!(),
        }
        gst::info!(CAT, imp = self, "property {name} set: {settings:?}");
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let settings = self.settings.lock().unwrap();
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string()).to_value();
        match pspec.name() {
            "model" => path(&settings.model),
            "schedule" => path(&settings.schedule),
            "mode" => settings.mode.to_value(),
            "scale" => settings.scale.to_value(),
            "patch-size" => settings.patch_size.to_value(),
            "threads" => settings.threads.to_value(),
            "stats-interval" => settings.stats_interval.to_value(),
            _ => unimplemented!(),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        // Drop frames that are already late before spending the network on them
        // (BaseTransform's default submit_input_buffer does the check).
        self.obj().set_qos(true);
    }
}

impl GstObjectImpl for Nawqsr {}

impl ElementImpl for Nawqsr {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static ELEMENT_METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "NAWQ-SR super-resolution",
                "Filter/Effect/Converter/Video/Scaler",
                "Upscales raw video x2, x3 or x4 with a hybrid-precision quantized SR network (NAWQ-SR), \
                 stepping to faster precisions under QoS pressure",
                "nawqsr developers",
            )
        });
        Some(&*ELEMENT_METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            // Same formats on both pads: the codec converts to RGB and back itself.
            // Sizes are left open here; transform_caps ties src = scale × sink.
            let caps = gst_video::VideoCapsBuilder::new()
                .format_list(FORMATS)
                .build();
            vec![
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &caps,
                )
                .unwrap(),
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &caps,
                )
                .unwrap(),
            ]
        });
        PAD_TEMPLATES.as_ref()
    }
}

/// Which way a width/height is rewritten.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dir {
    /// sink → src: multiply.
    Up,
    /// src → sink: divide, keeping only sizes that are exact multiples.
    Down,
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Maps one size through ×s (Up) or ÷s (Down). `None`: no size on the other side.
fn map_size(v: &glib::SendValue, s: i32, dir: Dir) -> Option<glib::SendValue> {
    let s64 = i64::from(s);
    if let Ok(x) = v.get::<i32>() {
        return match dir {
            Dir::Up => x.checked_mul(s).map(|x| x.to_send_value()),
            Dir::Down => (x % s == 0).then(|| (x / s).to_send_value()),
        };
    }
    if let Ok(r) = v.get::<gst::IntRange<i32>>() {
        let (min, max, step) = (
            i64::from(r.min()),
            i64::from(r.max()),
            i64::from(r.step()).max(1),
        );
        let (min, max, step) = match dir {
            // {s·x}: a range with s times the step. GStreamer needs min and max to be
            // multiples of the step; the top is clamped to the largest representable one.
            Dir::Up => {
                let step = step * s64;
                let top = (max * s64).min(i64::from(i32::MAX));
                (min * s64, top - top.rem_euclid(step), step)
            }
            // x with s·x in [min, max] and s·x a multiple of step: x is a multiple of
            // k = step / gcd(s, step).
            Dir::Down => {
                let k = step / gcd(s64, step);
                let lo = (min + s64 - 1).div_euclid(s64);
                let lo = lo + (k - lo.rem_euclid(k)) % k;
                let hi = max.div_euclid(s64);
                (lo, hi - hi.rem_euclid(k), k)
            }
        };
        if min > max || min > i64::from(i32::MAX) {
            return None;
        }
        let (min, max, step) = (min as i32, max as i32, step as i32);
        return Some(if min == max {
            min.to_send_value()
        } else if step == 1 {
            gst::IntRange::new(min, max).to_send_value()
        } else {
            gst::IntRange::with_step(min, max, step).to_send_value()
        });
    }
    if let Ok(list) = v.get::<gst::List>() {
        let out: Vec<glib::SendValue> = list.iter().filter_map(|x| map_size(x, s, dir)).collect();
        return match out.len() {
            0 => None,
            1 => out.into_iter().next(),
            _ => Some(gst::List::from_values(out).to_send_value()),
        };
    }
    // Anything else (not a size we understand) cannot be mapped.
    None
}

/// Rewrites width and height of every structure of `caps` for each scale in
/// `scales`, dropping structures that have no counterpart. framerate,
/// pixel-aspect-ratio (the same factor on both axes keeps it), format and
/// colorimetry are kept as they are.
fn scale_caps(caps: &gst::Caps, scales: &[i32], dir: Dir) -> gst::Caps {
    let mut out = gst::Caps::new_empty();
    for &s in scales {
        for (st, features) in caps.iter_with_features() {
            let mut st = st.to_owned();
            let mut ok = true;
            for field in ["width", "height"] {
                // A missing field means "any size", which stays "any size".
                if let Ok(v) = st.value(field) {
                    match map_size(v, s, dir) {
                        Some(v) => st.set_value(field, v),
                        None => ok = false,
                    }
                }
            }
            if ok {
                out.merge_structure_full(st, Some(features.to_owned()));
            }
        }
    }
    out
}

impl Nawqsr {
    /// Scales caps negotiation may use: the model's once started; before that,
    /// the `scale` property if it decides (bicubic, no model), else all three
    /// with the property's first (the model's factor is not known yet).
    fn negotiable_scales(&self) -> Vec<i32> {
        let s = self.scale.load(Ordering::Acquire) as i32;
        let settings = self.settings.lock().unwrap();
        // Bicubic without a model: the property decides. A given model: its own
        // factor. The bundled models serve every scale, the current one first.
        if settings.mode == NawqsrMode::Bicubic && settings.model.is_none() {
            return vec![if s != 0 { s } else { settings.scale as i32 }];
        }
        if s != 0 && settings.model.is_some() {
            return vec![s];
        }
        let first = if s != 0 { s } else { settings.scale as i32 };
        let mut v = vec![first];
        v.extend([2, 3, 4].into_iter().filter(|&x| x != first));
        v
    }

    /// Builds the codec for `mode` from `settings`; `scale` pins the factor (runtime
    /// fallbacks must keep the negotiated size). Errors name the property at fault.
    fn build_codec(
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
    fn reconcile_mode(&self, state: &mut State, user_mode: Mode) -> Vec<gst::Message> {
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

    fn stats_message(&self, timing: &mut Timing, mode: Mode) -> gst::Message {
        let mut times = std::mem::take(&mut timing.window);
        times.sort_unstable();
        let elapsed = timing
            .window_start
            .map(|t| t.elapsed().as_secs_f64())
            .unwrap_or(0.0);
        let fps = if elapsed > 0.0 {
            times.len() as f64 / elapsed
        } else {
            0.0
        };
        timing.window_start = Some(Instant::now());
        let s = gst::Structure::builder("nawqsr-stats")
            .field("frames", timing.frames)
            .field("fps", fps)
            .field("latency-p50-ms", percentile_ms(&times, 0.5))
            .field("latency-p99-ms", percentile_ms(&times, 0.99))
            .field("mode", mode.name())
            .field("drops", timing.drops)
            .field("switches", timing.switches)
            .build();
        gst::message::Element::builder(s).src(&*self.obj()).build()
    }

    fn post(&self, msgs: Vec<gst::Message>) {
        for m in msgs {
            let _ = self.obj().post_message(m);
        }
    }
}

/// Borrows the planes of a mapped frame in the codec's terms.
fn frame_ref<'a>(
    frame: &'a gst_video::VideoFrameRef<&gst::BufferRef>,
    format: PixelFormat,
) -> Result<FrameRef<'a>, String> {
    let mut planes: [&[u8]; 3] = [&[]; 3];
    let mut strides = [0usize; 3];
    for i in 0..frame.n_planes() as usize {
        planes[i] = frame
            .plane_data(i as u32)
            .map_err(|e| format!("input plane {i}: {e}"))?;
        strides[i] = usize::try_from(frame.plane_stride()[i])
            .map_err(|_| format!("input plane {i}: negative stride"))?;
    }
    Ok(FrameRef {
        format,
        width: frame.width() as usize,
        height: frame.height() as usize,
        planes,
        strides,
    })
}

fn frame_mut<'a>(
    frame: &'a mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
    format: PixelFormat,
) -> Result<FrameMut<'a>, String> {
    let (width, height, n) = (
        frame.width() as usize,
        frame.height() as usize,
        frame.n_planes() as usize,
    );
    let mut strides = [0usize; 3];
    for (i, s) in strides.iter_mut().enumerate().take(n) {
        *s = usize::try_from(frame.plane_stride()[i])
            .map_err(|_| format!("output plane {i}: negative stride"))?;
    }
    let [p0, p1, p2, _] = frame.planes_data_mut();
    Ok(FrameMut {
        format,
        width,
        height,
        planes: [p0, p1, p2],
        strides,
    })
}

impl BaseTransformImpl for Nawqsr {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::NeverInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = self.settings.lock().unwrap().clone();
        let mode: Mode = settings.mode.into();
        let codec = self
            .build_codec(&settings, mode, None)
            .map_err(|e| e.error_msg())?;
        let scale = codec.scale();
        self.scale.store(scale as u32, Ordering::Release);
        *self.ladder.lock().unwrap() = Ladder::new(mode, LadderConfig::default());
        *self.timing.lock().unwrap() = Timing::default();
        gst::info!(
            CAT,
            imp = self,
            "started: mode {}, ×{scale}, model {:?}",
            mode.name(),
            settings.model
        );
        *self.state.lock().unwrap() = Some(State {
            settings,
            scale,
            codecs: vec![(mode, codec)],
            active: mode,
            failed: Vec::new(),
            in_info: None,
            out_info: None,
            format: None,
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        let _ = self.state.lock().unwrap().take();
        self.scale.store(0, Ordering::Release);
        gst::info!(CAT, imp = self, "stopped");
        Ok(())
    }

    fn transform_caps(
        &self,
        direction: gst::PadDirection,
        caps: &gst::Caps,
        filter: Option<&gst::Caps>,
    ) -> Option<gst::Caps> {
        let other = if caps.is_any() {
            caps.clone()
        } else {
            let dir = if direction == gst::PadDirection::Sink {
                Dir::Up
            } else {
                Dir::Down
            };
            scale_caps(caps, &self.negotiable_scales(), dir)
        };
        gst::debug!(
            CAT,
            imp = self,
            "transformed {caps} to {other} ({direction:?})"
        );
        Some(match filter {
            Some(filter) => filter.intersect_with_mode(&other, gst::CapsIntersectMode::First),
            None => other,
        })
    }

    fn fixate_caps(
        &self,
        direction: gst::PadDirection,
        caps: &gst::Caps,
        othercaps: gst::Caps,
    ) -> gst::Caps {
        // Prefer exactly ×scale (or ÷scale): downstream may offer ranges.
        let s = self.negotiable_scales()[0];
        let mut othercaps = othercaps;
        othercaps.truncate();
        if let (Some(ours), Some(other)) =
            (caps.structure(0), othercaps.make_mut().structure_mut(0))
        {
            for field in ["width", "height"] {
                if let Ok(v) = ours.get::<i32>(field) {
                    let target = if direction == gst::PadDirection::Sink {
                        v.saturating_mul(s)
                    } else {
                        v / s
                    };
                    other.fixate_field_nearest_int(field, target);
                }
            }
        }
        self.parent_fixate_caps(direction, caps, othercaps)
    }

    fn set_caps(&self, incaps: &gst::Caps, outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let in_info = gst_video::VideoInfo::from_caps(incaps)
            .map_err(|_| gst::loggable_error!(CAT, "cannot parse input caps {incaps}"))?;
        let out_info = gst_video::VideoInfo::from_caps(outcaps)
            .map_err(|_| gst::loggable_error!(CAT, "cannot parse output caps {outcaps}"))?;
        let mut guard = self.state.lock().unwrap();
        let state = guard
            .as_mut()
            .ok_or_else(|| gst::loggable_error!(CAT, "caps set before start()"))?;
        let s = state.scale as u32;
        if in_info.format() != out_info.format() {
            return Err(gst::loggable_error!(
                CAT,
                "input format {:?} and output format {:?} differ (expected the same)",
                in_info.format(),
                out_info.format()
            ));
        }
        let format = pixel_format(in_info.format()).ok_or_else(|| {
            gst::loggable_error!(CAT, "unsupported format {:?}", in_info.format())
        })?;
        // Without a model, caps may settle on another scale than the one started
        // with: switch to the bundled model (or bicubic) for it.
        let (iw, ih, ow, oh) = (
            in_info.width(),
            in_info.height(),
            out_info.width(),
            out_info.height(),
        );
        let negotiated = if iw > 0 && ow % iw == 0 { ow / iw } else { 0 };
        let s = if negotiated != s
            && (2..=4).contains(&negotiated)
            && oh == ih * negotiated
            && state.settings.model.is_none()
            && state.settings.mode != NawqsrMode::Bicubic
        {
            let mode = state.active;
            let codec = self
                .build_codec(&state.settings, mode, Some(negotiated as usize))
                .map_err(|e| gst::loggable_error!(CAT, "{}", e.text))?;
            gst::info!(
                CAT,
                imp = self,
                "negotiated ×{negotiated}: mode {}",
                mode.name()
            );
            state.codecs = vec![(mode, codec)];
            state.failed.clear();
            state.scale = negotiated as usize;
            self.scale.store(negotiated, Ordering::Release);
            negotiated
        } else {
            s
        };
        if out_info.width() != in_info.width() * s || out_info.height() != in_info.height() * s {
            return Err(gst::loggable_error!(
                CAT,
                "output {}x{} is not ×{s} of input {}x{}",
                out_info.width(),
                out_info.height(),
                in_info.width(),
                in_info.height()
            ));
        }
        gst::debug!(CAT, imp = self, "configured {incaps} -> {outcaps}");
        state.in_info = Some(in_info);
        state.out_info = Some(out_info);
        state.format = Some(format);
        Ok(())
    }

    fn unit_size(&self, caps: &gst::Caps) -> Option<usize> {
        gst_video::VideoInfo::from_caps(caps)
            .map(|info| info.size())
            .ok()
    }

    // Input buffers may be larger than a frame (decoders pad their planes and say
    // so with a GstVideoMeta), so the output size depends only on the output caps.
    fn transform_size(
        &self,
        _direction: gst::PadDirection,
        _caps: &gst::Caps,
        _size: usize,
        othercaps: &gst::Caps,
    ) -> Option<usize> {
        gst_video::VideoInfo::from_caps(othercaps)
            .map(|info| info.size())
            .ok()
    }

    fn propose_allocation(
        &self,
        decide_query: Option<&gst::query::Allocation>,
        query: &mut gst::query::Allocation,
    ) -> Result<(), gst::LoggableError> {
        self.parent_propose_allocation(decide_query, query)?;
        // Input frames are mapped with gst_video_frame_map, which follows
        // GstVideoMeta: upstream may hand us planes with any strides and offsets.
        if query
            .find_allocation_meta::<gst_video::VideoMeta>()
            .is_none()
        {
            query.add_allocation_meta::<gst_video::VideoMeta>(None);
        }
        Ok(())
    }

    fn decide_allocation(
        &self,
        query: &mut gst::query::Allocation,
    ) -> Result<(), gst::LoggableError> {
        let (caps, _) = query.get_owned();
        let caps =
            caps.ok_or_else(|| gst::loggable_error!(CAT, "allocation query without caps"))?;
        let info = gst_video::VideoInfo::from_caps(&caps)
            .map_err(|_| gst::loggable_error!(CAT, "cannot parse allocation caps {caps}"))?;
        let (pool, size, min, max, update) = match query.allocation_pools().next() {
            Some((pool, size, min, max)) => (pool, size, min, max, true),
            None => (None, 0, 0, 0, false),
        };
        // Downstream's pool if it has one (it may hand out special memory), else a
        // video pool, which lays planes out and attaches GstVideoMeta.
        let pool = pool.unwrap_or_else(|| gst_video::VideoBufferPool::new().upcast());
        let size = size.max(info.size() as u32);
        let mut config = pool.config();
        config.set_params(Some(&caps), size, min, max);
        // Only promise GstVideoMeta when downstream reads it: otherwise it assumes
        // the default strides for these caps.
        if query
            .find_allocation_meta::<gst_video::VideoMeta>()
            .is_some()
        {
            config.add_option(gst_video::BUFFER_POOL_OPTION_VIDEO_META);
        }
        if pool.set_config(config).is_err() {
            let config = pool.config();
            config
                .validate_params(Some(&caps), size, min, max)
                .map_err(|e| gst::loggable_error!(CAT, "buffer pool rejects {caps}: {e}"))?;
        }
        if update {
            query.set_nth_allocation_pool(0, Some(&pool), size, min, max);
        } else {
            query.add_allocation_pool(Some(&pool), size, min, max);
        }
        self.parent_decide_allocation(query)
    }

    fn src_event(&self, event: gst::Event) -> bool {
        if let gst::EventView::Qos(q) = event.view() {
            let (kind, proportion, diff, ts) = q.get();
            let switch = self.ladder.lock().unwrap().observe(proportion);
            gst::debug!(
                CAT,
                imp = self,
                "QoS {kind:?} proportion {proportion:.3} diff {diff} at {ts:?}"
            );
            if let Some(s) = switch {
                // Applied by transform() on the next frame, where the codecs live.
                gst::info!(
                    CAT,
                    imp = self,
                    "QoS asks for mode {} -> {}",
                    s.from.name(),
                    s.to.name()
                );
            }
        }
        self.parent_src_event(event)
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        if let gst::EventView::FlushStop(_) = event.view() {
            self.ladder.lock().unwrap().reset_streaks();
        }
        self.parent_sink_event(event)
    }

    fn query(&self, direction: gst::PadDirection, query: &mut gst::QueryRef) -> bool {
        let ret = BaseTransformImplExt::parent_query(self, direction, query);
        if ret
            && direction == gst::PadDirection::Src
            && let gst::QueryViewMut::Latency(q) = query.view_mut()
        {
            // Each frame leaves `ours` after it arrived: add it to upstream's.
            let ours = {
                let mut timing = self.timing.lock().unwrap();
                let m = timing.median();
                timing.reported = Some(m);
                m
            };
            let ours = gst::ClockTime::from_nseconds(ours.as_nanos() as u64);
            let (live, min, max) = q.result();
            gst::debug!(
                CAT,
                imp = self,
                "latency: upstream {min}..{max:?} + ours {ours}"
            );
            q.set(live, min + ours, max.map(|m| m + ours));
        }
        ret
    }

    fn submit_input_buffer(
        &self,
        is_discont: bool,
        inbuf: gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let ret = self.parent_submit_input_buffer(is_discont, inbuf);
        // The parent dropped a late buffer (and posted the QOS message): count it.
        if ret == Ok(gst_base::BASE_TRANSFORM_FLOW_DROPPED) {
            self.timing.lock().unwrap().drops += 1;
        }
        ret
    }

    fn transform(
        &self,
        inbuf: &gst::Buffer,
        outbuf: &mut gst::BufferRef,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let (user_mode, stats_interval) = {
            let s = self.settings.lock().unwrap();
            (Mode::from(s.mode), s.stats_interval)
        };
        let mut guard = self.state.lock().unwrap();
        let Some(state) = guard.as_mut() else {
            gst::element_imp_error!(self, gst::CoreError::Negotiation, ("not started"));
            return Err(gst::FlowError::NotNegotiated);
        };
        let mut msgs = self.reconcile_mode(state, user_mode);
        let (Some(in_info), Some(out_info), Some(format)) =
            (&state.in_info, &state.out_info, state.format)
        else {
            drop(guard);
            self.post(msgs);
            gst::element_imp_error!(self, gst::CoreError::Negotiation, ("no caps negotiated"));
            return Err(gst::FlowError::NotNegotiated);
        };
        let fps = in_info.fps();

        let fail = |what: String| {
            gst::error!(CAT, imp = self, "{what}");
            gst::element_imp_error!(self, gst::StreamError::Failed, ("{what}"));
            gst::FlowError::Error
        };
        let in_frame = gst_video::VideoFrameRef::from_buffer_ref_readable(inbuf.as_ref(), in_info)
            .map_err(|e| {
                fail(format!(
                    "cannot map the input buffer as {:?}: {e}",
                    in_info.format()
                ))
            })?;
        let mut out_frame = gst_video::VideoFrameRef::from_buffer_ref_writable(outbuf, out_info)
            .map_err(|e| {
                fail(format!(
                    "cannot map the output buffer as {:?}: {e}",
                    out_info.format()
                ))
            })?;
        let src = frame_ref(&in_frame, format).map_err(fail)?;
        let mut dst = frame_mut(&mut out_frame, format).map_err(fail)?;

        let t0 = Instant::now();
        let codec = state.codec();
        // The codec must not take the streaming thread down with it.
        let result = catch_unwind(AssertUnwindSafe(|| codec.upscale(&src, &mut dst)));
        let dt = t0.elapsed();
        let mode = state.active;
        drop(guard);

        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                self.post(msgs);
                return Err(fail(format!("mode {}: upscaling failed: {e}", mode.name())));
            }
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                self.post(msgs);
                return Err(fail(format!(
                    "mode {}: the codec panicked: {what}",
                    mode.name()
                )));
            }
        }

        // How much of the frame interval this mode used: the ladder's measure of
        // whether stepping up into it again can keep up.
        let interval = if fps.numer() > 0 {
            Some(f64::from(fps.denom()) / f64::from(fps.numer()))
        } else {
            inbuf.duration().map(|d| d.nseconds() as f64 / 1e9)
        };
        let interval = interval.filter(|&s| s > 0.0);
        if let Some(interval) = interval {
            self.ladder
                .lock()
                .unwrap()
                .record_cost(mode, dt.as_secs_f64() / interval);
        }

        let latency_changed = {
            let mut timing = self.timing.lock().unwrap();
            if timing.window_start.is_none() {
                timing.window_start = Some(t0);
            }
            timing.record(dt);
            gst::trace!(
                CAT,
                imp = self,
                "frame {} in {dt:?} ({})",
                timing.frames,
                mode.name()
            );
            if stats_interval > 0 && timing.frames.is_multiple_of(u64::from(stats_interval)) {
                msgs.push(self.stats_message(&mut timing, mode));
            }
            let changed = timing.latency_changed();
            if changed {
                // Tell the pipeline once; the next latency query updates `reported`.
                timing.reported = None;
            }
            changed
        };
        if latency_changed {
            msgs.push(gst::message::Latency::builder().src(&*self.obj()).build());
        }
        self.post(msgs);
        Ok(gst::FlowSuccess::Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(v: impl ToSendValue, s: i32, dir: Dir) -> Option<glib::SendValue> {
        map_size(&v.to_send_value(), s, dir)
    }

    #[test]
    fn fixed_sizes() {
        gst::init().unwrap();
        assert_eq!(map(352, 2, Dir::Up).unwrap().get::<i32>().unwrap(), 704);
        assert_eq!(map(704, 2, Dir::Down).unwrap().get::<i32>().unwrap(), 352);
        // 705 is not ×2 of anything; i32::MAX has no ×2.
        assert!(map(705, 2, Dir::Down).is_none());
        assert!(map(i32::MAX, 2, Dir::Up).is_none());
    }

    #[test]
    fn ranges_keep_exactly_the_reachable_sizes() {
        gst::init().unwrap();
        let r = |v: glib::SendValue| v.get::<gst::IntRange<i32>>().unwrap();
        // Up: every multiple of s in the scaled range; the top is clamped to i32.
        let up = r(map(gst::IntRange::new(1, i32::MAX), 3, Dir::Up).unwrap());
        assert_eq!((up.min(), up.step()), (3, 3));
        assert_eq!(up.max(), i32::MAX - i32::MAX % 3);
        // Down: [7, 21] ÷ 2 → [4, 10].
        assert_eq!(
            r(map(gst::IntRange::new(7, 21), 2, Dir::Down).unwrap()),
            gst::IntRange::new(4, 10)
        );
        // Down with a step: s·x must be a multiple of 4 → x even.
        let d = r(map(gst::IntRange::with_step(8, 40, 4), 2, Dir::Down).unwrap());
        assert_eq!(d, gst::IntRange::with_step(4, 20, 2));
        // A range that only contains one reachable size becomes that size.
        assert_eq!(
            map(gst::IntRange::new(9, 11), 5, Dir::Down)
                .unwrap()
                .get::<i32>()
                .unwrap(),
            2
        );
        // And one with none is dropped.
        assert!(map(gst::IntRange::new(11, 14), 5, Dir::Down).is_none());
    }

    #[test]
    fn lists_map_element_wise() {
        gst::init().unwrap();
        let l = gst::List::new([96i32, 97, 144]);
        let down: Vec<i32> = map(l.clone(), 2, Dir::Down)
            .unwrap()
            .get::<gst::List>()
            .unwrap()
            .iter()
            .map(|v| v.get().unwrap())
            .collect();
        assert_eq!(down, [48, 72]);
        assert_eq!(
            map(gst::List::new([97i32, 144]), 2, Dir::Down)
                .unwrap()
                .get::<i32>()
                .unwrap(),
            72
        );
        assert!(map(gst::List::new([97i32]), 2, Dir::Down).is_none());
        let up = map(l, 4, Dir::Up).unwrap().get::<gst::List>().unwrap();
        assert_eq!(up.as_slice().len(), 3);
    }

    #[test]
    fn scale_caps_offers_every_scale_in_order() {
        gst::init().unwrap();
        let caps = gst::Caps::builder("video/x-raw")
            .field("width", 10i32)
            .field("height", 6i32)
            .build();
        let out = scale_caps(&caps, &[3, 2], Dir::Up);
        let widths: Vec<i32> = out.iter().map(|s| s.get::<i32>("width").unwrap()).collect();
        assert_eq!(widths, [30, 20]);
        // src → sink for a size that no scale reaches: empty caps, so negotiation fails early.
        let caps = gst::Caps::builder("video/x-raw")
            .field("width", 7i32)
            .field("height", 6i32)
            .build();
        assert!(scale_caps(&caps, &[2], Dir::Down).is_empty());
    }
}
