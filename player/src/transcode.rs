//! `nawqsr upscale IN OUT.{mp4,mkv}`: super-resolve a clip file to file.
//!
//! ```text
//! uridecodebin ─video─► [count, stamp] queue ► videoconvert ► nawqsr ► videoconvert ► I420 ► x264enc ─► [count] mux ► filesink (temp)
//!              ─audio─► queue ► audioconvert ► audioresample ► aac|vorbis encoder ──────────────────►
//! ```
//! - No frame is lost: frames are counted (with their PTS) where the decoder
//!   hands them over and where the muxer receives them; the two must agree, or
//!   the run fails. Nothing drops on the way: filesink does not synchronise, so
//!   no QoS events reach `nawqsr`, and no element rewrites timestamps (streams
//!   without any, H.264 elementary streams, are stamped at `--fps` first).
//! - The output goes to a temporary file next to OUT, renamed on success; an
//!   error or Ctrl-C removes it.
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use gst::prelude::*;

use crate::media::{self, SrOptions};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Container {
    Mp4,
    Mkv,
}

impl Container {
    /// The container for an output path, by extension; `None` for anything else.
    pub fn from_path(p: &Path) -> Option<Container> {
        match p.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "mp4" | "m4v" | "mov" => Some(Container::Mp4),
            "mkv" | "webm" => Some(Container::Mkv),
            _ => None,
        }
    }
    fn muxer(self) -> &'static str {
        match self {
            Container::Mp4 => "mp4mux",
            Container::Mkv => "matroskamux",
        }
    }
    fn audio_encoder(self) -> &'static str {
        match self {
            Container::Mp4 => "avenc_aac",
            Container::Mkv => "vorbisenc",
        }
    }
}

/// Running times (PTS through the pad's segment) of the frames that passed a
/// point of the pipeline. Running time, not raw PTS: x264enc (GstVideoEncoder)
/// offsets PTS and segment alike by 1000 h to keep DTS positive; what is
/// presented when does not change.
#[derive(Default)]
struct Tally {
    count: AtomicU64,
    pts: Mutex<Vec<Option<gst::ClockTime>>>,
}

impl Tally {
    fn probe(self: &Arc<Self>, pad: &gst::Pad) {
        let t = self.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            if let Some(b) = info.buffer() {
                let seg = pad.sticky_event::<gst::event::Segment>(0);
                let rt = b.pts().and_then(|pts| {
                    seg.as_ref()?
                        .segment()
                        .downcast_ref::<gst::ClockTime>()?
                        .to_running_time(pts)
                });
                t.pts.lock().unwrap().push(rt);
                t.count.fetch_add(1, Ordering::Relaxed);
            }
            gst::PadProbeReturn::Ok
        });
    }
    fn sorted(&self) -> Vec<Option<gst::ClockTime>> {
        let mut v = self.pts.lock().unwrap().clone();
        v.sort_unstable();
        v
    }
}

/// Everything the pad-added callback needs.
struct Graph {
    pipeline: gst::Pipeline,
    mux: gst::Element,
    sr: SrOptions,
    container: Container,
    fps: u32,
    decoded: Arc<Tally>,
    muxed: Arc<Tally>,
    have_video: bool,
    /// First error while linking (reported by the bus loop).
    error: Option<String>,
    in_caps: Option<gst::Caps>,
    sr_elem: Option<gst::Element>,
}

impl Graph {
    fn on_pad(&mut self, pad: &gst::Pad) -> Result<()> {
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let name = caps
            .structure(0)
            .map(|s| s.name().to_string())
            .unwrap_or_default();
        if name.starts_with("video/") && !self.have_video {
            self.have_video = true;
            self.in_caps = Some(caps.clone());
            media::stamp_missing_timestamps(pad, self.fps);
            self.decoded.probe(pad);
            let queue = media::make("queue")?;
            let conv_in = media::make("videoconvert")?;
            let sr = self.sr.element("sr")?;
            // One stats message per frame: the closing line's latency percentiles
            // are over every frame of the clip, not the element's last window.
            sr.set_property("stats-interval", 1u32);
            let conv_out = media::make("videoconvert")?;
            let filter = media::make("capsfilter")?;
            // x264's widely playable profiles take 4:2:0; without this videoconvert
            // may hand it 4:4:4 and produce High 4:4:4.
            filter.set_property(
                "caps",
                gst::Caps::builder("video/x-raw")
                    .field("format", "I420")
                    .build(),
            );
            let enc = media::make("x264enc")?;
            // Constant quality (SR output deserves more than the default bitrate),
            // fast enough not to dominate the run.
            enc.set_property_from_str("pass", "qual");
            enc.set_property("quantizer", 18u32);
            enc.set_property_from_str("speed-preset", "veryfast");
            let parse = media::make("h264parse")?;
            let elems = [queue, conv_in, sr.clone(), conv_out, filter, enc, parse];
            self.pipeline.add_many(&elems)?;
            gst::Element::link_many(&elems)?;
            for e in &elems {
                e.sync_state_with_parent()?;
            }
            let mux_pad = self
                .mux
                .request_pad_simple("video_%u")
                .context("muxer has no video pad")?;
            self.muxed.probe(&mux_pad);
            elems[6].static_pad("src").unwrap().link(&mux_pad)?;
            pad.link(&elems[0].static_pad("sink").unwrap())?;
            self.sr_elem = Some(sr);
        } else if name.starts_with("audio/") {
            let enc = self.container.audio_encoder();
            let elems = media::add_chain(
                &self.pipeline,
                pad,
                &["queue", "audioconvert", "audioresample", enc],
            )?;
            let mux_pad = self
                .mux
                .request_pad_simple("audio_%u")
                .context("muxer has no audio pad")?;
            elems[3].static_pad("src").unwrap().link(&mux_pad)?;
        } else {
            // Subtitles, a second video stream, data: not carried over.
            media::add_chain(&self.pipeline, pad, &["fakesink"])?;
        }
        Ok(())
    }
}

/// Frames per second from raw video caps (0 when unknown / variable).
fn caps_fps(caps: &gst::Caps) -> f64 {
    caps.structure(0)
        .and_then(|s| s.get::<gst::Fraction>("framerate").ok())
        .filter(|f| f.numer() > 0 && f.denom() > 0)
        .map(|f| f.numer() as f64 / f.denom() as f64)
        .unwrap_or(0.0)
}

fn caps_size(caps: &gst::Caps) -> Option<(i32, i32)> {
    let s = caps.structure(0)?;
    Some((s.get("width").ok()?, s.get("height").ok()?))
}

/// The element name of the output muxer.
const MUXER: &str = "outmux";

pub struct Summary {
    pub frames: u64,
    pub in_size: Option<(i32, i32)>,
    pub out_size: Option<(i32, i32)>,
    pub seconds: f64,
    /// The element's telemetry over the whole clip.
    pub telemetry: Telemetry,
}

/// What the `nawqsr-stats` messages (one per frame) said over a clip.
#[derive(Default)]
pub struct Telemetry {
    /// Processing time of each frame in the element, ms.
    pub latency_ms: Vec<f64>,
    /// The element's mode at the last frame (it may have stepped down under QoS).
    pub mode: Option<String>,
    pub drops: u64,
    pub switches: u64,
}

impl Telemetry {
    fn record(&mut self, s: &gst::StructureRef) {
        if let Ok(l) = s.get::<f64>("latency-p50-ms") {
            self.latency_ms.push(l);
        }
        if let Ok(m) = s.get::<&str>("mode") {
            self.mode = Some(m.to_owned());
        }
        self.drops = s.get::<u64>("drops").unwrap_or(self.drops);
        self.switches = s.get::<u64>("switches").unwrap_or(self.switches);
    }

    /// The `p`-quantile (0..1) of the per-frame latencies, ms (nearest rank).
    pub fn percentile_ms(&self, p: f64) -> f64 {
        let mut v = self.latency_ms.clone();
        if v.is_empty() {
            return 0.0;
        }
        v.sort_by(f64::total_cmp);
        let i = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
        v[i]
    }
}

/// Runs the transcode; `Ok(None)` when interrupted by Ctrl-C (nothing written).
pub fn run(
    input: &Path,
    output: &Path,
    container: Container,
    sr: SrOptions,
    fps: u32,
    progress: bool,
) -> Result<Option<Summary>> {
    media::init()?;
    sr.check()?;
    let in_name = input.display().to_string();
    let out_name = output.display().to_string();
    let uri = media::to_uri(&in_name)?;
    let dir = crate::media::output_dir(&output)?;
    let ext = output.extension().and_then(|e| e.to_str()).unwrap_or("tmp");
    let tmp = tempfile::Builder::new()
        .prefix(".nawqsr-")
        .suffix(&format!(".partial.{ext}"))
        .tempfile_in(dir)
        .with_context(|| format!("{out_name}: cannot create output"))?;

    let pipeline = gst::Pipeline::with_name("nawqsr-upscale");
    let src = media::make("uridecodebin")?;
    src.set_property("uri", &uri);
    // Named so that errors of the muxer (which name the output) are told apart
    // from the demuxer's inside uridecodebin (qtdemux, matroskademux: the input).
    let mux = media::make_named(container.muxer(), Some(MUXER))?;
    let sink = gst::ElementFactory::make("filesink")
        .name("out")
        .build()
        .context("filesink")?;
    sink.set_property("location", tmp.path().display().to_string());
    pipeline.add_many([&src, &mux, &sink])?;
    mux.link(&sink)?;

    let graph = Arc::new(Mutex::new(Graph {
        pipeline: pipeline.clone(),
        mux: mux.clone(),
        sr,
        container,
        fps,
        decoded: Arc::default(),
        muxed: Arc::default(),
        have_video: false,
        error: None,
        in_caps: None,
        sr_elem: None,
    }));
    {
        let g = graph.clone();
        src.connect_pad_added(move |_, pad| {
            let mut g = g.lock().unwrap();
            if let Err(e) = g.on_pad(pad) {
                g.error.get_or_insert(format!("{e:#}"));
                // Wake the bus loop, which reports the error.
                let _ = g.pipeline.post_message(gst::message::Application::new(
                    gst::Structure::new_empty("nawqsr-link-error"),
                ));
            }
        });
    }
    let interrupts = media::interrupts();
    let start_interrupts = interrupts.load(Ordering::SeqCst);
    let t0 = Instant::now();
    let telemetry = Arc::new(Mutex::new(Telemetry::default()));
    let result = drive(
        &pipeline,
        &graph,
        &telemetry,
        &in_name,
        &out_name,
        progress,
        || interrupts.load(Ordering::SeqCst) > start_interrupts,
    );
    // Read before NULL clears the negotiated caps.
    let out_size = {
        let g = graph.lock().unwrap();
        g.sr_elem
            .as_ref()
            .and_then(|e| e.static_pad("src"))
            .and_then(|p| p.current_caps())
            .as_ref()
            .and_then(caps_size)
    };
    let _ = pipeline.set_state(gst::State::Null);
    let outcome = result?;
    if !outcome {
        // Interrupted: `tmp` is dropped (deleted) here.
        return Ok(None);
    }
    let g = graph.lock().unwrap();
    let (decoded, muxed) = (g.decoded.sorted(), g.muxed.sorted());
    if !g.have_video {
        bail!("{in_name}: no video stream");
    }
    if decoded.len() != muxed.len() {
        bail!(
            "{in_name}: {} frames decoded but {} reached the muxer (frames were lost)",
            decoded.len(),
            muxed.len()
        );
    }
    if decoded != muxed {
        let i = decoded
            .iter()
            .zip(&muxed)
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        bail!(
            "{in_name}: timestamps changed on the way (frame {i}: decoded {:?}, muxed {:?})",
            decoded[i],
            muxed[i]
        );
    }
    let in_size = g.in_caps.as_ref().and_then(caps_size);
    media::publish(tmp, output).with_context(|| format!("{out_name}: cannot write"))?;
    Ok(Some(Summary {
        frames: decoded.len() as u64,
        in_size,
        out_size,
        seconds: t0.elapsed().as_secs_f64(),
        telemetry: std::mem::take(&mut *telemetry.lock().unwrap()),
    }))
}

/// How long a transcode may go without a bus message or a frame.
const STALL: std::time::Duration = std::time::Duration::from_secs(30);

/// The bus loop: `Ok(true)` at EOS, `Ok(false)` when interrupted.
fn drive(
    pipeline: &gst::Pipeline,
    graph: &Arc<Mutex<Graph>>,
    telemetry: &Mutex<Telemetry>,
    in_name: &str,
    out_name: &str,
    progress: bool,
    interrupted: impl Fn() -> bool,
) -> Result<bool> {
    let bus = pipeline.bus().unwrap();
    pipeline.set_state(gst::State::Playing).map_err(|_| {
        bus_error(&bus, in_name, out_name)
            .unwrap_or_else(|| anyhow!("{in_name}: cannot start the pipeline"))
    })?;
    let pb = if progress {
        indicatif::ProgressBar::new_spinner()
    } else {
        indicatif::ProgressBar::hidden()
    };
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {msg} {pos} frames ({per_sec}) [{elapsed_precise}]",
        )
        .unwrap(),
    );
    pb.set_message(in_name.to_owned());
    let mut total_known = false;
    let (muxed, decoded) = {
        let g = graph.lock().unwrap();
        (g.muxed.clone(), g.decoded.clone())
    };
    // A pipeline that goes quiet (no message, no frame decoded or muxed)
    // for this long is stuck: qtdemux was seen (about once in eight runs)
    // to pause on a truncated MP4 without posting its error. Report it
    // rather than wait forever.
    let mut last_activity = (Instant::now(), 0u64, 0u64);
    loop {
        let counts = (
            decoded.count.load(Ordering::Relaxed),
            muxed.count.load(Ordering::Relaxed),
        );
        if counts != (last_activity.1, last_activity.2) {
            last_activity = (Instant::now(), counts.0, counts.1);
        } else if last_activity.0.elapsed() > STALL {
            pb.finish_and_clear();
            return Err(anyhow!(
                "{in_name}: the pipeline stalled: no message and no frame for {} s \
                 (expected a complete media file with a video stream; is it truncated?)",
                STALL.as_secs()
            ));
        }
        if interrupted() {
            pb.abandon_with_message(format!("{in_name}: interrupted"));
            return Ok(false);
        }
        if let Some(err) = graph.lock().unwrap().error.take() {
            pb.finish_and_clear();
            // A failed state change (e.g. nawqsr refusing its settings in start())
            // posts the real reason on the bus: prefer it.
            return Err(
                bus_error(&bus, in_name, out_name).unwrap_or_else(|| anyhow!("{in_name}: {err}"))
            );
        }
        if !total_known
            && let Some(dur) = pipeline.query_duration::<gst::ClockTime>()
            && let Some(caps) = graph.lock().unwrap().in_caps.clone()
        {
            let fps = caps_fps(&caps);
            if fps > 0.0 {
                total_known = true;
                let total = (dur.seconds_f64() * fps).round() as u64;
                pb.set_length(total);
                pb.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{msg} [{bar:40}] {pos}/{len} frames ({per_sec}, eta {eta})",
                    )
                    .unwrap()
                    .progress_chars("=> "),
                );
            }
        }
        pb.set_position(muxed.count.load(Ordering::Relaxed));
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else {
            pb.tick();
            continue;
        };
        last_activity.0 = Instant::now();
        match msg.view() {
            gst::MessageView::Eos(_) => {
                pb.set_position(muxed.count.load(Ordering::Relaxed));
                pb.finish_and_clear();
                return Ok(true);
            }
            gst::MessageView::Error(e) => {
                pb.finish_and_clear();
                return Err(error_for(e, in_name, out_name));
            }
            gst::MessageView::Element(e) => {
                if let Some(s) = e.structure().filter(|s| s.name() == "nawqsr-stats") {
                    telemetry.lock().unwrap().record(s);
                }
            }
            _ => {}
        }
    }
}

/// A bus error as one line naming the file it is about: the output for the
/// sink and the muxer, else the input.
fn error_for(e: &gst::message::Error, in_name: &str, out_name: &str) -> anyhow::Error {
    let src = e.src().map(|s| s.name().to_string()).unwrap_or_default();
    let file = if src == "out" || src == MUXER {
        out_name
    } else {
        in_name
    };
    let line = media::error_line(e);
    // A demuxer or decoder refusing the input: say what the input should be
    // (a truncated download looks like this).
    let hint = if file == in_name
        && (line.contains("no playable streams") || line.contains("no known streams"))
    {
        " (expected a complete media file with a video stream; is it truncated?)"
    } else {
        ""
    };
    anyhow!("{file}: {line}{hint}")
}

fn bus_error(bus: &gst::Bus, in_name: &str, out_name: &str) -> Option<anyhow::Error> {
    while let Some(m) = bus.pop_filtered(&[gst::MessageType::Error]) {
        if let gst::MessageView::Error(e) = m.view() {
            return Some(error_for(e, in_name, out_name));
        }
    }
    None
}
