//! `nawqsr play [URI|FILE]`: the desktop player.
//!
//! ```text
//! uridecodebin | videotestsrc+textoverlay
//!   ► queue (input frame buffer) ► videoconvert ► I420 ► tee ─► queue ► nawqsr "sr" ► videobox ×2 (AYUV) ► compositor.sink_1 (top)
//!                                                         └─► queue ► nawqsr "bic" (bicubic) ──► compositor.sink_0
//!   compositor ► queue (playback buffer) ► labels ► telemetry overlay ► videoconvert ► autovideosink
//!                                                                                     | x264enc ► matroskamux ► file (headless)
//! audio (when present) ► queue ► audioconvert ► audioresample ► autoaudiosink | vorbisenc ► matroskamux
//! ```
//! - The SR branch covers the bicubic one entirely; split-screen A/B (`c`) makes
//!   the left half of the SR frame transparent, so the left half shows
//!   the bicubic branch of the same frame. Both branches see every frame; no
//!   timestamp is rewritten (streams without any are stamped, `media`).
//! - Telemetry: `nawqsr-stats` messages of "sr" feed the overlay (`i`), and
//!   stderr when headless.
//! - Keys from the window (navigation events) and stdin (`keys`). Ctrl-C sends
//!   EOS and waits for it (a second one stops at once); exit 0.
//! - Without a display it runs headless: the composed output goes to an MKV.
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use gst::prelude::*;
use nawqsr_codec::runtime::Mode;

use crate::keys::{self, Key};
use crate::media::{self, SrOptions};

/// The built-in source: small enough for any mode on a laptop.
const TEST_W: i32 = 320;
const TEST_H: i32 = 180;
const TEST_FPS: i32 = 30;
/// Headless runs of the built-in source stop after this many seconds.
const DEFAULT_TEST_DURATION: f64 = 5.0;
/// Frames between two telemetry messages of the element.
const STATS_INTERVAL: u32 = 15;

#[derive(clap::Args)]
pub struct Args {
    /// URI or file to play; without one, a built-in 320×180 30 fps test source.
    pub input: Option<String>,
    /// ONNX SR model (default: the bundled assets/models/nawq_x{scale}.onnx).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Schedule file (enables mode hybrid).
    #[arg(long)]
    pub schedule: Option<PathBuf>,
    /// Start mode: hybrid, int8, a16w8, fp32 or bicubic (default: hybrid, except
    /// int8 for a given model without --schedule).
    #[arg(long)]
    pub mode: Option<String>,
    /// Upscaling factor: picks the bundled model (default 2).
    #[arg(long)]
    pub scale: Option<usize>,
    /// Codec worker threads (0 = all cores).
    #[arg(long, default_value_t = 0, value_parser = crate::media::parse_threads)]
    pub threads: usize,
    #[command(flatten)]
    pub skip: crate::media::SkipArgs,
    /// Run without a window even when a display is available.
    #[arg(long)]
    pub headless: bool,
    /// Headless output (H.264 in Matroska).
    #[arg(long, default_value = "nawqsr-play.mkv")]
    pub output: PathBuf,
    /// Stop after this many seconds of stream time (headless default: 5 for the
    /// built-in source, else to the end).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Start in split-screen A/B compare (`c`).
    #[arg(long)]
    pub compare: bool,
    /// Start with the telemetry overlay hidden (`i`).
    #[arg(long)]
    pub no_info: bool,
    /// Save the composed frame (overlays included) as PNG after --screenshot-frame frames.
    #[arg(long)]
    pub screenshot: Option<PathBuf>,
    #[arg(long, default_value_t = 30)]
    pub screenshot_frame: u64,
    /// Hold the chosen mode: QoS events do not reach the SR element, so it neither
    /// drops late frames nor steps to a faster mode (playback may fall behind).
    #[arg(long)]
    pub no_qos: bool,
    /// Frame rate given to streams that carry no timing (H.264 elementary streams).
    #[arg(long, default_value_t = media::DEFAULT_FPS)]
    pub fps: u32,
}

/// The elements the keys act on.
struct Player {
    pipeline: gst::Pipeline,
    sr: gst::Element,
    crop: gst::Element,
    unbox: gst::Element,
    label_l: gst::Element,
    label_r: gst::Element,
    info: gst::Element,
    /// Network modes `m` cycles through.
    modes: Vec<Mode>,
    /// The mode SR runs when on.
    mode: Mode,
    /// The mode the element reports running (the QoS ladder may step down).
    running: Option<String>,
    sr_on: bool,
    compare: bool,
    /// Compare was asked for before the output size was known.
    compare_pending: bool,
    paused: bool,
    headless: bool,
}

pub fn run(a: Args) -> Result<()> {
    media::init()?;
    let mode = match &a.mode {
        Some(m) => Mode::parse(m).map_err(|e| anyhow!("--mode: {e}"))?,
        None if a.model.is_none() => Mode::Hybrid,
        None if a.schedule.is_some() => Mode::Hybrid,
        None => Mode::Int8,
    };
    let scale = match (a.scale, &a.model) {
        (None, None) => Some(2),
        (s, _) => s,
    };
    let sr_opts = SrOptions {
        model: a.model.clone(),
        schedule: a.schedule.clone(),
        mode,
        scale,
        threads: a.threads,
        skip: a.skip,
    };
    sr_opts.check()?;
    let headless = a.headless || !media::have_display();
    if headless && !a.headless {
        eprintln!(
            "no display ($DISPLAY / $WAYLAND_DISPLAY unset): running headless, writing {}",
            a.output.display()
        );
    }
    let duration = a
        .duration
        .or((headless && a.input.is_none()).then_some(DEFAULT_TEST_DURATION));
    if let Some(d) = duration
        && (d.is_nan() || d <= 0.0)
    {
        bail!("--duration: {d} (expected a positive number of seconds)");
    }
    let (key_tx, key_rx) = mpsc::channel::<Key>();
    let (shot_tx, shot_rx) = mpsc::channel::<gst::Sample>();
    let mut player = build(&a, &sr_opts, headless, duration, key_tx.clone(), shot_tx)?;
    // Hybrid without --schedule takes the model's schedule from schedules/ when
    // there is one; if not, the element reports the mode unavailable and stays put.
    player.modes = vec![Mode::Hybrid, Mode::Int8, Mode::A16w8, Mode::Fp32];
    player.info.set_property("silent", a.no_info);
    player.compare_pending = a.compare;

    let _term = keys::RawTerminal::new();
    keys::spawn_stdin(key_tx);
    if !headless {
        eprintln!(
            "keys: space pause · s SR on/off · c split-screen A/B · m mode · i telemetry · ←/→ seek 5 s · q/Esc quit"
        );
    }
    let res = main_loop(
        &mut player,
        &key_rx,
        &shot_rx,
        duration,
        a.screenshot.as_deref(),
    );
    let _ = player.pipeline.set_state(gst::State::Null);
    res
}

fn textoverlay(
    name: &str,
    text: &str,
    halign: &str,
    valign: &str,
    font: &str,
) -> Result<gst::Element> {
    let t = media::make_named("textoverlay", Some(name))?;
    t.set_property("text", text);
    t.set_property_from_str("halignment", halign);
    t.set_property_from_str("valignment", valign);
    t.set_property("font-desc", font);
    t.set_property("shaded-background", true);
    Ok(t)
}

fn build(
    a: &Args,
    sr_opts: &SrOptions,
    headless: bool,
    duration: Option<f64>,
    key_tx: mpsc::Sender<Key>,
    shot_tx: mpsc::Sender<gst::Sample>,
) -> Result<Player> {
    let pipeline = gst::Pipeline::with_name("nawqsr-play");
    let in_queue = gst::ElementFactory::make("queue")
        .name("input-buffer")
        .build()?;
    let conv_in = media::make("videoconvert")?;
    let i420 = media::make("capsfilter")?;
    // One format for both branches and the compositor: what decoders give.
    i420.set_property(
        "caps",
        gst::Caps::builder("video/x-raw")
            .field("format", "I420")
            .build(),
    );
    let tee = media::make("tee")?;
    let q_sr = media::make("queue")?;
    let sr = sr_opts.element("sr")?;
    sr.set_property("stats-interval", STATS_INTERVAL);

    // Split-screen without a size change at the compositor: the first box crops
    // the left half away, the second puts it back as a transparent border, so the
    // compositor's pad stays W×H (a pad changing size was seen to leave the
    // compositor at the old size plus the new offset).
    let crop = media::make("videobox")?;
    let unbox = media::make("videobox")?;
    unbox.set_property("border-alpha", 0f64);
    let ayuv = media::make("capsfilter")?;
    ayuv.set_property(
        "caps",
        gst::Caps::builder("video/x-raw")
            .field("format", "AYUV")
            .build(),
    );
    let q_bic = media::make("queue")?;
    let bic = SrOptions {
        mode: Mode::Bicubic,
        ..sr_opts.clone()
    }
    .element("bic")?;
    let comp = media::make("compositor")?;
    // Where a branch has no frame (dropped as late), black rather than a checkerboard.
    comp.set_property_from_str("background", "black");
    // QoS from the sink goes to the SR element (its drops and precision ladder
    // are the answer to lateness), not to the compositor: the compositor would
    // drop nearly every composed frame once SR falls behind, freezing the
    // window. With --no-qos nobody sees it.
    {
        let sr_src = sr.static_pad("src").unwrap();
        let forward = !a.no_qos;
        comp.static_pad("src").unwrap().add_probe(
            gst::PadProbeType::EVENT_UPSTREAM,
            move |_, info| match info.event() {
                Some(e) if e.type_() == gst::EventType::Qos => {
                    if forward {
                        sr_src.send_event(e.clone());
                    }
                    gst::PadProbeReturn::Handled
                }
                _ => gst::PadProbeReturn::Ok,
            },
        );
    }
    let play_queue = gst::ElementFactory::make("queue")
        .name("playback-buffer")
        .build()?;
    let label_l = textoverlay("label-l", "bicubic", "left", "top", "Sans Bold 14")?;
    let label_r = textoverlay("label-r", "SR", "right", "top", "Sans Bold 14")?;
    label_l.set_property("silent", true);
    label_r.set_property("silent", true);
    let info = textoverlay("info", "nawqsr", "left", "bottom", "Monospace 10")?;
    info.set_property_from_str("line-alignment", "left");
    let conv_out = media::make("videoconvert")?;
    pipeline.add_many([
        &in_queue,
        &conv_in,
        &i420,
        &tee,
        &q_sr,
        &sr,
        &crop,
        &unbox,
        &ayuv,
        &q_bic,
        &bic,
        &comp,
        &play_queue,
        &label_l,
        &label_r,
        &info,
        &conv_out,
    ])?;
    gst::Element::link_many([&in_queue, &conv_in, &i420, &tee])?;
    gst::Element::link_many([&tee, &q_sr, &sr, &crop, &unbox, &ayuv])?;
    gst::Element::link_many([&tee, &q_bic, &bic])?;
    let bottom = comp
        .request_pad_simple("sink_%u")
        .context("compositor pad")?;
    bottom.set_property("zorder", 0u32);
    bic.static_pad("src").unwrap().link(&bottom)?;
    let top = comp
        .request_pad_simple("sink_%u")
        .context("compositor pad")?;
    top.set_property("zorder", 1u32);
    ayuv.static_pad("src").unwrap().link(&top)?;
    gst::Element::link_many([&comp, &play_queue, &label_l, &label_r, &info, &conv_out])?;

    // The sink end: a window, or an encoder and a file.
    let mux = if headless {
        let i420_out = media::make("capsfilter")?;
        i420_out.set_property(
            "caps",
            gst::Caps::builder("video/x-raw")
                .field("format", "I420")
                .build(),
        );
        let enc = media::make("x264enc")?;
        enc.set_property_from_str("speed-preset", "ultrafast");
        enc.set_property_from_str("pass", "qual");
        enc.set_property("quantizer", 20u32);
        let mux = media::make("matroskamux")?;
        let sink = gst::ElementFactory::make("filesink").name("out").build()?;
        sink.set_property("location", a.output.display().to_string());
        pipeline.add_many([&i420_out, &enc, &mux, &sink])?;
        gst::Element::link_many([&conv_out, &i420_out, &enc, &mux, &sink])?;
        Some(mux)
    } else {
        let sink = media::make_named("autovideosink", Some("video-sink"))?;
        if a.no_qos
            && let Some(bin) = sink.downcast_ref::<gst::Bin>()
        {
            // Show every frame, late or not.
            bin.connect_element_added(|_, e| {
                if e.find_property("max-lateness").is_some() {
                    e.set_property("max-lateness", -1i64);
                }
                if e.find_property("qos").is_some() {
                    e.set_property("qos", false);
                }
            });
        }
        pipeline.add(&sink)?;
        conv_out.link(&sink)?;
        None
    };

    // Keys pressed in the video window travel upstream as navigation events.
    {
        let tx = key_tx.clone();
        conv_out.static_pad("src").unwrap().add_probe(
            gst::PadProbeType::EVENT_UPSTREAM,
            move |_, info| {
                if let Some(ev) = info.event()
                    && ev.type_() == gst::EventType::Navigation
                    && let Some(s) = ev.structure()
                    && s.get::<&str>("event").ok() == Some("key-press")
                    && let Ok(name) = s.get::<&str>("key")
                    && let Some(k) = keys::from_name(name)
                {
                    let _ = tx.send(k);
                }
                gst::PadProbeReturn::Ok
            },
        );
    }
    // Screenshot: the composed frame as it enters the last conversion.
    if a.screenshot.is_some() {
        let n = a.screenshot_frame.max(1);
        let seen = std::sync::atomic::AtomicU64::new(0);
        conv_out.static_pad("sink").unwrap().add_probe(
            gst::PadProbeType::BUFFER,
            move |pad, info| {
                if seen.fetch_add(1, Ordering::Relaxed) + 1 == n
                    && let (Some(buf), Some(caps)) = (info.buffer(), pad.current_caps())
                {
                    let _ = shot_tx.send(gst::Sample::builder().buffer(buf).caps(&caps).build());
                }
                gst::PadProbeReturn::Ok
            },
        );
    }

    // The source.
    match &a.input {
        None => {
            let src = media::make("videotestsrc")?;
            // A moving zone plate: every frequency up to Nyquist, the hardest case
            // for an upscaler, and aliasing shows at once.
            src.set_property_from_str("pattern", "zone-plate");
            src.set_property("kx2", 40i32);
            src.set_property("ky2", 40i32);
            src.set_property("kt", 1i32);
            if let Some(d) = duration {
                src.set_property("num-buffers", (d * TEST_FPS as f64).round().max(1.0) as i32);
            }
            let caps = media::make("capsfilter")?;
            caps.set_property(
                "caps",
                gst::Caps::builder("video/x-raw")
                    .field("width", TEST_W)
                    .field("height", TEST_H)
                    .field("framerate", gst::Fraction::new(TEST_FPS, 1))
                    .build(),
            );
            let text = textoverlay(
                "moving-text",
                "NAWQ-SR  320×180",
                "position",
                "position",
                "Sans Bold 16",
            )?;
            text.set_property("ypos", 0.5f64);
            pipeline.add_many([&src, &caps, &text])?;
            gst::Element::link_many([&src, &caps, &text, &in_queue])?;
            // The text crosses the frame every 4 s, driven by the frames' own PTS.
            let t = text.clone();
            text.static_pad("video_sink").unwrap().add_probe(
                gst::PadProbeType::BUFFER,
                move |_, info| {
                    if let Some(pts) = info.buffer().and_then(|b| b.pts()) {
                        let x = (pts.seconds_f64() / 4.0).fract();
                        t.set_property("xpos", 0.1 + 0.8 * x);
                    }
                    gst::PadProbeReturn::Ok
                },
            );
        }
        Some(input) => {
            let uri = media::to_uri(input)?;
            let src = media::make("uridecodebin")?;
            src.set_property("uri", &uri);
            pipeline.add(&src)?;
            let pipeline_w = pipeline.downgrade();
            let in_sink = in_queue.static_pad("sink").unwrap();
            let fps = a.fps;
            src.connect_pad_added(move |_, pad| {
                let Some(pipeline) = pipeline_w.upgrade() else {
                    return;
                };
                if let Err(e) = link_decoded(&pipeline, pad, &in_sink, mux.as_ref(), fps) {
                    let _ = pipeline.post_message(
                        gst::message::Application::builder(
                            gst::Structure::builder("nawqsr-link-error")
                                .field("error", format!("{e:#}"))
                                .build(),
                        )
                        .build(),
                    );
                }
            });
        }
    }
    Ok(Player {
        pipeline,
        sr,
        crop,
        unbox,
        label_l,
        label_r,
        info,
        modes: vec![],
        mode: sr_opts.mode,
        running: None,
        sr_on: true,
        compare: false,
        compare_pending: false,
        paused: false,
        headless,
    })
}

/// Links one decoded stream: the first video stream into the player, audio to
/// the speakers (or the file), anything else to a fakesink.
fn link_decoded(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    video_sink: &gst::Pad,
    mux: Option<&gst::Element>,
    fps: u32,
) -> Result<()> {
    let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
    let name = caps
        .structure(0)
        .map(|s| s.name().to_string())
        .unwrap_or_default();
    let chain = |names: &[&str]| media::add_chain(pipeline, pad, names);
    if name.starts_with("video/") && !video_sink.is_linked() {
        media::stamp_missing_timestamps(pad, fps);
        pad.link(video_sink)?;
    } else if name.starts_with("audio/") {
        match mux {
            Some(mux) => {
                let elems = chain(&["queue", "audioconvert", "audioresample", "vorbisenc"])?;
                let mp = mux
                    .request_pad_simple("audio_%u")
                    .context("matroskamux audio pad")?;
                elems[3].static_pad("src").unwrap().link(&mp)?;
            }
            None => {
                chain(&["queue", "audioconvert", "audioresample", "autoaudiosink"])?;
            }
        }
    } else {
        chain(&["fakesink"])?;
    }
    Ok(())
}

impl Player {
    /// Output width once negotiated.
    fn out_width(&self) -> Option<i32> {
        let caps = self.sr.static_pad("src")?.current_caps()?;
        caps.structure(0)?.get::<i32>("width").ok()
    }

    fn set_compare(&mut self, on: bool) {
        let Some(w) = self.out_width() else {
            self.compare_pending = on;
            return;
        };
        self.compare_pending = false;
        self.compare = on;
        // Even, so that 4:2:0 chroma is cropped on a sample boundary.
        let half = if on { (w / 2) & !1 } else { 0 };
        self.crop.set_property("left", half);
        self.unbox.set_property("left", -half);
        self.label_l.set_property("silent", !on);
        self.label_r.set_property("silent", !on);
        self.update_label();
    }

    fn update_label(&self) {
        let asked = if self.sr_on { self.mode.name() } else { "off" };
        let text = match self.running.as_deref() {
            Some(r) if r != asked && (self.sr_on || r != "bicubic") => {
                format!("SR {r} (asked {asked})")
            }
            _ if !self.sr_on => "SR off (bicubic)".to_string(),
            _ => format!("SR {asked}"),
        };
        self.label_r.set_property("text", text);
    }

    fn apply_mode(&self) {
        let m = if self.sr_on { self.mode } else { Mode::Bicubic };
        self.sr.set_property_from_str("mode", m.name());
        self.update_label();
    }

    fn key(&mut self, k: Key) -> Result<bool> {
        match k {
            Key::Quit => return Ok(false),
            Key::Pause => {
                self.paused = !self.paused;
                let st = if self.paused {
                    gst::State::Paused
                } else {
                    gst::State::Playing
                };
                self.pipeline.set_state(st).context("pause")?;
                eprintln!("{}", if self.paused { "paused" } else { "playing" });
            }
            Key::ToggleSr => {
                if self.mode == Mode::Bicubic {
                    eprintln!("SR: running bicubic (--mode bicubic); press m for a network mode");
                } else {
                    self.sr_on = !self.sr_on;
                    self.apply_mode();
                    eprintln!("SR {}", if self.sr_on { "on" } else { "off (bicubic)" });
                }
            }
            Key::Compare => {
                let on = !(self.compare || self.compare_pending);
                self.set_compare(on);
                eprintln!(
                    "split-screen A/B {}",
                    if on {
                        "on (left bicubic, right SR)"
                    } else {
                        "off"
                    }
                );
            }
            Key::CycleMode => {
                if self.modes.is_empty() {
                    eprintln!("mode: no network mode available");
                } else {
                    let i = self
                        .modes
                        .iter()
                        .position(|&m| m == self.mode)
                        .map_or(0, |i| (i + 1) % self.modes.len());
                    self.mode = self.modes[i];
                    self.sr_on = true;
                    self.apply_mode();
                    eprintln!("mode {}", self.mode.name());
                }
            }
            Key::Info => {
                let silent: bool = self.info.property("silent");
                self.info.set_property("silent", !silent);
            }
            Key::Seek(s) => {
                if let Some(pos) = self.pipeline.query_position::<gst::ClockTime>() {
                    let step = gst::ClockTime::from_seconds(s.unsigned_abs());
                    let to = if s < 0 {
                        pos.saturating_sub(step)
                    } else {
                        pos + step
                    };
                    let flags = gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT;
                    if self.pipeline.seek_simple(flags, to).is_err() {
                        eprintln!("seek: not seekable");
                    }
                }
            }
        }
        Ok(true)
    }
}

fn telemetry_line(s: &gst::StructureRef) -> String {
    let f = |k: &str| s.get::<f64>(k).unwrap_or(0.0);
    format!(
        "{} {:5.1} fps  drops {}  reused {:.0} %  routed {:.0} %\nlatency p50 {:.1} ms p99 {:.1} ms  frames {}",
        s.get::<&str>("mode").unwrap_or("?"),
        f("fps"),
        s.get::<u64>("drops").unwrap_or(0),
        100.0 * f("reused"),
        100.0 * f("routed"),
        f("latency-p50-ms"),
        f("latency-p99-ms"),
        s.get::<u64>("frames").unwrap_or(0),
    )
}

fn main_loop(
    p: &mut Player,
    keys: &mpsc::Receiver<Key>,
    shots: &mpsc::Receiver<gst::Sample>,
    duration: Option<f64>,
    screenshot: Option<&std::path::Path>,
) -> Result<()> {
    let bus = p.pipeline.bus().unwrap();
    let interrupts = media::interrupts();
    let seen_interrupts = interrupts.load(Ordering::SeqCst);
    if p.pipeline.set_state(gst::State::Playing).is_err() {
        while let Some(m) = bus.pop_filtered(&[gst::MessageType::Error]) {
            if let gst::MessageView::Error(e) = m.view() {
                bail!("{}", media::error_line(e));
            }
        }
        bail!("cannot start the pipeline");
    }
    let t0 = Instant::now();
    let mut eos_sent: Option<Instant> = None;
    let mut last_stats = None;
    let send_eos = |p: &Player, why: &str, eos_sent: &mut Option<Instant>| {
        if eos_sent.is_none() {
            if !why.is_empty() {
                eprintln!("{why}: finishing");
            }
            // A paused pipeline would never deliver the EOS.
            let _ = p.pipeline.set_state(gst::State::Playing);
            p.pipeline.send_event(gst::event::Eos::new());
            *eos_sent = Some(Instant::now());
        }
    };
    loop {
        let n = interrupts.load(Ordering::SeqCst) - seen_interrupts;
        if n >= 2 {
            eprintln!("interrupted twice: stopping now");
            break;
        }
        if n == 1 {
            send_eos(p, "Ctrl-C", &mut eos_sent);
        }
        if let Some(t) = eos_sent
            && t.elapsed() > Duration::from_secs(10)
        {
            eprintln!("EOS did not come through within 10 s: stopping");
            break;
        }
        let mut quit = false;
        while let Ok(k) = keys.try_recv() {
            if !p.key(k)? {
                // Quit: headless, let the file be finalised; a window just closes.
                if p.headless {
                    send_eos(p, "quit", &mut eos_sent);
                } else {
                    quit = true;
                }
            }
        }
        if quit {
            break;
        }
        if p.compare_pending {
            p.set_compare(true);
        }
        if let Some(d) = duration
            && eos_sent.is_none()
            && p.pipeline
                .query_position::<gst::ClockTime>()
                .is_some_and(|pos| pos.seconds_f64() >= d)
        {
            send_eos(p, "", &mut eos_sent);
        }
        if let (Ok(sample), Some(path)) = (shots.try_recv(), screenshot) {
            save_png(&sample, path)?;
            eprintln!("screenshot: {}", path.display());
        }
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(50)) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => {
                // Closing the window is a way to quit.
                if e.src()
                    .is_some_and(|s| s.path_string().contains("video-sink"))
                    && e.error().message().contains("closed")
                {
                    break;
                }
                bail!("{}", media::error_line(e));
            }
            gst::MessageView::Application(m) => {
                if let Some(s) = m.structure()
                    && s.name() == "nawqsr-link-error"
                {
                    bail!("{}", s.get::<String>("error").unwrap_or_default());
                }
            }
            gst::MessageView::Element(m) => {
                if let Some(s) = m.structure()
                    && m.src().is_some_and(|s| s.name() == "sr")
                {
                    if s.name() == "nawqsr-stats" {
                        let line = telemetry_line(s);
                        p.info.set_property("text", &line);
                        if let Ok(m) = s.get::<&str>("mode")
                            && p.running.as_deref() != Some(m)
                        {
                            p.running = Some(m.to_string());
                            p.update_label();
                        }
                        if p.headless {
                            eprintln!("{}", line.replace('\n', "  "));
                        }
                        last_stats = Some(line);
                    } else if s.name() == "nawqsr-mode-switch" {
                        p.running = s.get::<&str>("to").ok().map(str::to_string);
                        p.update_label();
                        eprintln!(
                            "mode switch {} → {}",
                            s.get::<&str>("from").unwrap_or("?"),
                            s.get::<&str>("to").unwrap_or("?")
                        );
                    }
                }
            }
            _ => {}
        }
    }
    // A screenshot taken in the last frames.
    if let (Ok(sample), Some(path)) = (shots.try_recv(), screenshot) {
        save_png(&sample, path)?;
        eprintln!("screenshot: {}", path.display());
    }
    eprintln!(
        "played {:.1} s{}",
        t0.elapsed().as_secs_f64(),
        last_stats
            .map(|l| format!("; last: {}", l.replace('\n', "  ")))
            .unwrap_or_default()
    );
    Ok(())
}

fn save_png(sample: &gst::Sample, path: &std::path::Path) -> Result<()> {
    let png = gst_video::convert_sample(
        sample,
        &gst::Caps::new_empty_simple("image/png"),
        Some(gst::ClockTime::from_seconds(5)),
    )
    .map_err(|e| anyhow!("{}: cannot convert the frame: {e}", path.display()))?;
    let buf = png.buffer().context("no PNG data")?;
    let map = buf.map_readable()?;
    std::fs::write(path, map.as_slice())
        .with_context(|| format!("{}: cannot write", path.display()))
}
