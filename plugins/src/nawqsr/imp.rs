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
//!
//! This file is the element's shell (properties, pads, the BaseTransform
//! virtual methods); the work is in its rooms: `caps.rs` (caps mapping),
//! `controller.rs` (codecs and the precision ladder), `transform.rs` (one
//! frame through the codec), `telemetry.rs` (latency, stats), `qos.rs` (the
//! ladder's policy).
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::prelude::*;

use nawqsr_codec::model::bundled::Family;
use nawqsr_codec::runtime::Mode;

use super::caps::{self, FORMATS};
use super::controller::{Input, State};
use super::qos::{Ladder, LadderConfig};
use super::telemetry::{self, Timing};
use super::{NawqsrMode, NawqsrReuse, NawqsrRouting};

pub(super) static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
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
/// PIQE every 30 frames, within a 1 % time budget (`transform.rs`; measured in
/// BENCHMARKS.md "PIQE sampler"): cheap enough to be on by default.
const DEFAULT_PIQE_INTERVAL: u32 = 30;
/// Tolerant reuse: by default a channel change of up to 2 of 255 counts as
/// unchanged (its quality cost: BENCHMARKS.md "Temporal reuse").
const DEFAULT_REUSE_THRESHOLD: u32 = 2;
/// Side of temporal reuse's patches, the codec's measured default.
const DEFAULT_REUSE_PATCH: u32 = nawqsr_codec::runtime::codec::REUSE_PATCH as u32;

#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub(super) model: Option<PathBuf>,
    pub(super) schedule: Option<PathBuf>,
    pub(super) mode: NawqsrMode,
    pub(super) scale: u32,
    pub(super) patch_size: u32,
    pub(super) threads: u32,
    pub(super) stats_interval: u32,
    /// Deadline per frame (ms) for the front controller; 0 = frame interval − 15 %.
    pub(super) latency_target: f64,
    /// PIQE-sample every this many output frames (0 = off).
    pub(super) piqe_interval: u32,
    pub(super) reuse: NawqsrReuse,
    pub(super) reuse_threshold: u32,
    pub(super) reuse_patch: u32,
    pub(super) routing: NawqsrRouting,
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
            latency_target: 0.0,
            piqe_interval: DEFAULT_PIQE_INTERVAL,
            reuse: NawqsrReuse::default(),
            reuse_threshold: DEFAULT_REUSE_THRESHOLD,
            reuse_patch: DEFAULT_REUSE_PATCH,
            routing: NawqsrRouting::default(),
        }
    }
}

pub struct Nawqsr {
    pub(super) settings: Mutex<Settings>,
    pub(super) state: Mutex<Option<State>>,
    /// The precision ladder: fed by QoS events (src pad), read by `transform()`.
    /// Separate from `state` so that QoS events never wait for a frame.
    pub(super) ladder: Mutex<Ladder>,
    pub(super) timing: Mutex<Timing>,
    /// The scale of the loaded model (0 before `start()`), read by caps
    /// negotiation without taking the state lock.
    pub(super) scale: AtomicU32,
}

impl Nawqsr {
    fn negotiable_scales(&self) -> Vec<i32> {
        let started = self.scale.load(Ordering::Acquire);
        caps::negotiable_scales(&self.settings.lock().unwrap(), started)
    }

    pub(super) fn stats_message(
        &self,
        timing: &mut Timing,
        mode: Mode,
        plan: Option<telemetry::PlanInfo>,
    ) -> gst::Message {
        let s = telemetry::stats_structure(timing, mode, plan);
        gst::message::Element::builder(s).src(&*self.obj()).build()
    }

    pub(super) fn post(&self, msgs: Vec<gst::Message>) {
        for m in msgs {
            let _ = self.obj().post_message(m);
        }
    }
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
const READY_ONLY: [&str; 9] = [
    "model",
    "schedule",
    "scale",
    "patch-size",
    "threads",
    "reuse",
    "reuse-threshold",
    "reuse-patch",
    "routing",
];

impl ObjectImpl for Nawqsr {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("model")
                    .nick("Model")
                    .blurb(
                        "File path of the ONNX super-resolution model (one float32 1×3×H×W RGB input in [0, 1] \
                         and one 1×3×sH×sW output, or 1×1 luma in and out: FSRCNN-style models upscale Y and \
                         the chroma takes bicubic; s = 2, 3 or 4; finite weights; at most 1024 channels and \
                         15×15 kernels per conv); its upscaling factor sets the output size. Empty: the \
                         bundled model for the negotiated scale and format, compiled into the plugin: on YUV \
                         caps the luma model nawq_luma_x2/x3/x4 (Y through the network, chroma resized, the \
                         frame stays YUV, 10-bit kept), on RGB caps nawq_x2/x3/x4 (NAWQSR_MODELS, a directory \
                         list, overrides)",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("schedule")
                    .nick("Schedule")
                    .blurb(
                        "File path of the precision schedule (JSON, version 1: per-layer bitwidths and DRE flags, \
                         from 'nawqsr calibrate' for this model's SHA-256) used by mode=hybrid. Empty: the \
                         schedule found for the model by its hash in NAWQSR_SCHEDULES, ./schedules, or the ones \
                         compiled into the plugin (the bundled models' and IMDN's)",
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
                        "Upscaling factor, ×2 to ×4 (output width and height = scale × input), when no model is set: \
                         picks the bundled model (caps may still negotiate another of 2, 3, 4) or bicubic's factor. \
                         With a model, the model's own factor is used",
                    )
                    .minimum(2)
                    .maximum(4)
                    .default_value(DEFAULT_SCALE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("patch-size")
                    .nick("Patch size")
                    .blurb("Height in low-resolution pixel rows of the patches (row bands) the codec splits a frame into, \
                            0 to 4096 (0 = the codec's default, 16 rows)")
                    .maximum(4096)
                    .default_value(DEFAULT_PATCH_SIZE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("threads")
                    .nick("Threads")
                    .blurb("Worker threads of this element's codec, 0 to 256 (0 = one per core)")
                    .maximum(nawqsr_codec::runtime::MAX_THREADS as u32)
                    .default_value(DEFAULT_THREADS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("stats-interval")
                    .nick("Stats interval")
                    .blurb(
                        "Post a 'nawqsr-stats' element message (frames, fps, latency-p50-ms, \
                         latency-p99-ms, mode, drops, switches, plan, reused, routed, piqe, piqe-cost; with a \
                         latency front also plan-predicted-ms, plan-psnr, latency-target-ms) every \
                         this many output frames, 0 to 4294967295 (0 = off)",
                    )
                    .default_value(DEFAULT_STATS_INTERVAL)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("reuse", NawqsrReuse::default())
                    .nick("Temporal reuse")
                    .blurb(
                        "Temporal reuse: a low-resolution patch (reuse-patch, 16x16 by default) whose \
                         receptive field (the patch \
                         and the model's halo) is unchanged since the previous frame is taken from that \
                         frame instead of recomputed. exact: unchanged means bit-identical, so the output \
                         equals recomputing; tolerant: within reuse-threshold. Models with frame-global \
                         ops or DRE layers reuse only whole unchanged frames. Reported as 'reused' in \
                         'nawqsr-stats'; reset on flushes, discontinuities, caps and mode changes",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("reuse-threshold")
                    .nick("Reuse threshold")
                    .blurb(
                        "With reuse=tolerant: a low-resolution pixel counts as changed only when a colour \
                         channel moved by more than this, 1 to 255 (of 255); patches within it are taken \
                         from the previous frame (on a moving camera each frame still recomputes)",
                    )
                    .minimum(1)
                    .maximum(255)
                    .default_value(DEFAULT_REUSE_THRESHOLD)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("reuse-patch")
                    .nick("Reuse patch")
                    .blurb(
                        "Side of temporal reuse's square patches, in low-resolution pixels: smaller \
                         patches find more unchanged ones around scattered motion and cost more to \
                         compare; the default was measured on a video call and a static-camera clip",
                    )
                    .minimum(nawqsr_codec::runtime::codec::MIN_REUSE_PATCH as u32)
                    .maximum(nawqsr_codec::runtime::codec::MAX_REUSE_PATCH as u32)
                    .default_value(DEFAULT_REUSE_PATCH)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("routing", NawqsrRouting::default())
                    .nick("Difficulty routing")
                    .blurb(
                        "Difficulty routing (MobiSR): a 16x16 low-resolution patch whose luma gradient \
                         energy is under the schedule's calibrated threshold takes bicubic instead of \
                         the network, fading into network patches with no seam. The threshold is set \
                         offline for a PSNR budget (nawqsr calibrate-routing); a schedule without one \
                         is an error. Integer modes only. Reported as 'routed' in 'nawqsr-stats'",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("piqe-interval")
                    .nick("PIQE interval")
                    .blurb(
                        "Score every this many output frames with PIQE (no-reference, 0 best, \
                         100 worst) on a centred 256x256 crop, reported as 'piqe' in \
                         'nawqsr-stats' with its cost as 'piqe-cost' (samples are skipped while they \
                         would take over 1 % of the processing time), 0 to 4294967295 (0 = off)",
                    )
                    .default_value(DEFAULT_PIQE_INTERVAL)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecDouble::builder("latency-target")
                    .nick("Latency target")
                    .blurb(
                        "Deadline per frame in ms, 0 to 60000, for mode hybrid with a schedule that \
                         has a quality/latency front (nawqsr calibrate --pareto): the element moves \
                         along the front from measured frame times, posting \
                         'nawqsr-plan-switch' messages (0 = on live streams, the frame interval \
                         minus 15 %; otherwise no deadline)",
                    )
                    .minimum(0.0)
                    .maximum(60000.0)
                    .default_value(0.0)
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
            "latency-target" => {
                settings.latency_target = value.get().expect("type checked upstream")
            }
            "piqe-interval" => settings.piqe_interval = value.get().expect("type checked upstream"),
            "reuse" => settings.reuse = value.get().expect("type checked upstream"),
            "reuse-threshold" => {
                settings.reuse_threshold = value.get().expect("type checked upstream")
            }
            "reuse-patch" => settings.reuse_patch = value.get().expect("type checked upstream"),
            "routing" => settings.routing = value.get().expect("type checked upstream"),
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
            "latency-target" => settings.latency_target.to_value(),
            "piqe-interval" => settings.piqe_interval.to_value(),
            "reuse" => settings.reuse.to_value(),
            "reuse-threshold" => settings.reuse_threshold.to_value(),
            "reuse-patch" => settings.reuse_patch.to_value(),
            "routing" => settings.routing.to_value(),
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

impl BaseTransformImpl for Nawqsr {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::NeverInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = self.settings.lock().unwrap().clone();
        let mode: Mode = settings.mode.into();
        // Before caps, build for 8-bit YUV (what decoders give); `set_caps`
        // rebuilds for RGB and for 10-bit caps.
        let input = Input {
            family: Family::Luma,
            deep: false,
        };
        let codec = self
            .build_codec(&settings, mode, None, input)
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
            front: None,
            live: None,
            in_info: None,
            out_info: None,
            format: None,
            input,
            last_codec: 0,
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
        let other = caps::transform(direction, caps, &self.negotiable_scales(), filter);
        gst::debug!(
            CAT,
            imp = self,
            "transformed {caps} to {other} ({direction:?})"
        );
        Some(other)
    }

    fn fixate_caps(
        &self,
        direction: gst::PadDirection,
        caps: &gst::Caps,
        othercaps: gst::Caps,
    ) -> gst::Caps {
        let s = self.negotiable_scales()[0];
        let othercaps = caps::fixate_size(direction, caps, othercaps, s);
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
        let format = caps::common_format(&in_info, &out_info)
            .map_err(|e| gst::loggable_error!(CAT, "{e}"))?;
        // Without a model, caps may settle on another scale than the one started
        // with, or on RGB instead of YUV: switch to the bundled model (or
        // bicubic) for them.
        let (iw, ih, ow, oh) = (
            in_info.width(),
            in_info.height(),
            out_info.width(),
            out_info.height(),
        );
        let negotiated = if iw > 0 && ow % iw == 0 { ow / iw } else { 0 };
        let input = Input {
            family: if format.yuv420().is_some() {
                Family::Luma
            } else {
                Family::Rgb
            },
            deep: format.yuv420().is_some_and(|l| l.bits > 8),
        };
        // A new factor or family needs the bundled model for it (no `model`
        // set); a new depth only a new plan, whatever the model.
        let switch_model = (negotiated != s || input.family != state.input.family)
            && (2..=4).contains(&negotiated)
            && oh == ih * negotiated
            && state.settings.model.is_none();
        let s = if state.settings.mode != NawqsrMode::Bicubic
            && (switch_model || input.deep != state.input.deep)
        {
            let s = if switch_model { negotiated } else { s };
            let input = if switch_model {
                input
            } else {
                Input {
                    family: state.input.family,
                    deep: input.deep,
                }
            };
            let mode = state.active;
            let codec = self
                .build_codec(&state.settings, mode, Some(s as usize), input)
                .map_err(|e| gst::loggable_error!(CAT, "{}", e.text))?;
            gst::info!(
                CAT,
                imp = self,
                "negotiated ×{s} {input:?}: mode {}",
                mode.name()
            );
            state.codecs = vec![(mode, codec)];
            state.front = None;
            state.failed.clear();
            state.input = input;
            state.scale = s as usize;
            self.scale.store(s, Ordering::Release);
            s
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
        state.reset_reuse();
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
            if let Some(state) = self.state.lock().unwrap().as_ref() {
                state.reset_reuse();
            }
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
        self.transform_frame(inbuf, outbuf)
    }
}
