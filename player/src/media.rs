//! GStreamer plumbing shared by `upscale` (clips), `play` and `bench`: init and
//! static registration of the `nawqsr` element, URIs, one-line bus errors,
//! Ctrl-C, and timestamps for streams that arrive without them.
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once, OnceLock};

use anyhow::{Context, Result, anyhow, bail};
use gst::prelude::*;

/// Frame rate assumed for streams whose caps say `framerate=0/1` (H.264 Annex-B
/// elementary streams such as ../shared/clips/*.h264 carry no timing): the
/// recorded CIF/QCIF/720p test sequences are 30 fps material.
pub const DEFAULT_FPS: u32 = 30;

/// `gst::init()` plus the statically linked `nawqsr` element, once per process.
pub fn init() -> Result<()> {
    static INIT: OnceLock<Result<(), String>> = OnceLock::new();
    INIT.get_or_init(|| {
        gst::init().map_err(|e| format!("cannot initialise GStreamer: {e}"))?;
        gstnawqsr::plugin_register_static()
            .map_err(|e| format!("cannot register the nawqsr element: {e}"))
    })
    .clone()
    .map_err(|e| anyhow!(e))
}

/// A URI for a command-line argument: URIs pass through, paths must exist.
pub fn to_uri(arg: &str) -> Result<String> {
    let is_uri = arg.split_once("://").is_some_and(|(scheme, _)| {
        scheme.len() > 1
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    if is_uri {
        return Ok(arg.to_owned());
    }
    let p = Path::new(arg);
    let abs = p
        .canonicalize()
        .with_context(|| format!("{arg}: cannot open"))?;
    if !abs.is_file() {
        bail!("{arg}: not a file");
    }
    Ok(gst::glib::filename_to_uri(&abs, None)
        .with_context(|| format!("{arg}: cannot make a URI"))?
        .to_string())
}

/// Makes an element from a factory that must be installed; the error names the
/// GStreamer package that usually provides it.
pub fn make(factory: &str) -> Result<gst::Element> {
    make_named(factory, None)
}

/// [`make`] with an element name.
pub fn make_named(factory: &str, name: Option<&str>) -> Result<gst::Element> {
    gst::ElementFactory::make(factory)
        .name_if_some(name)
        .build()
        .map_err(|_| {
            let pkg = match factory {
                "x264enc" => " (gstreamer1.0-plugins-ugly)",
                "avdec_h264" | "avenc_aac" => " (gstreamer1.0-libav)",
                "mp4mux" | "matroskamux" | "autovideosink" | "videobox" | "videocrop" => {
                    " (gstreamer1.0-plugins-good)"
                }
                "compositor" | "textoverlay" | "videoconvert" | "videotestsrc" | "vorbisenc" => {
                    " (gstreamer1.0-plugins-base)"
                }
                _ => "",
            };
            anyhow!("GStreamer element '{factory}' is not installed{pkg}")
        })
}

/// One line for a bus error: the message, the element and the debug detail.
pub fn error_line(err: &gst::message::Error) -> String {
    let src = err.src().map(|s| s.name().to_string()).unwrap_or_default();
    let mut s = format!("{} ({src})", err.error());
    if let Some(d) = err.debug() {
        // The detail's first line is a source location ("file.c(123): fn (): /path");
        // a line after it, when there is one, says more.
        if let Some(last) = d
            .lines()
            .skip(1)
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .last()
        {
            s.push_str(": ");
            s.push_str(last);
        }
    }
    s.replace('\n', " ")
}

/// Ctrl-C, counted. The handler is installed once per process; each caller
/// polls the counter (a second Ctrl-C lets callers stop harder).
pub fn interrupts() -> &'static AtomicUsize {
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if let Err(e) = ctrlc::set_handler(|| {
            COUNT.fetch_add(1, Ordering::SeqCst);
        }) {
            tracing::warn!("cannot install the Ctrl-C handler: {e}");
        }
    });
    &COUNT
}

/// Gives timestamps to a raw video stream that has none.
///
/// H.264 elementary streams decode with `framerate=0/1` and a PTS on the first
/// frame only, which neither muxers nor synchronised sinks accept. For such
/// streams (and only those) the probe sets the caps' frame rate to `fps` and
/// stamps every frame without a PTS with first PTS + n / fps. Streams that carry
/// timestamps are left untouched.
pub fn stamp_missing_timestamps(pad: &gst::Pad, fps: u32) {
    #[derive(Default)]
    struct St {
        active: bool,
        base: Option<gst::ClockTime>,
        n: u64,
    }
    let st = Arc::new(Mutex::new(St::default()));
    let fps = fps.max(1) as u64;
    pad.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
        move |_, info| {
            let mut st = st.lock().unwrap();
            match info.data.as_mut() {
                Some(gst::PadProbeData::Event(ev)) => match ev.view() {
                    gst::EventView::Caps(c) => {
                        let caps = c.caps();
                        let rate = caps
                            .structure(0)
                            .and_then(|s| s.get::<gst::Fraction>("framerate").ok());
                        if rate.is_some_and(|r| r.numer() == 0) {
                            st.active = true;
                            let mut caps = caps.to_owned();
                            caps.make_mut()
                                .set("framerate", gst::Fraction::new(fps as i32, 1));
                            *ev = gst::event::Caps::builder(&caps).seqnum(ev.seqnum()).build();
                        }
                    }
                    gst::EventView::FlushStop(_) | gst::EventView::Segment(_) => {
                        st.base = None;
                        st.n = 0;
                    }
                    _ => {}
                },
                Some(gst::PadProbeData::Buffer(buf)) if st.active => {
                    let dur = gst::ClockTime::SECOND
                        .mul_div_floor(1, fps)
                        .unwrap_or(gst::ClockTime::ZERO);
                    let b = buf.make_mut();
                    match (b.pts(), st.base) {
                        (Some(pts), _) => {
                            st.base = Some(pts);
                            st.n = 0;
                        }
                        (None, base) => {
                            let base = base.unwrap_or(gst::ClockTime::ZERO);
                            st.base = Some(base);
                            b.set_pts(
                                base + gst::ClockTime::SECOND
                                    .mul_div_floor(st.n, fps)
                                    .unwrap_or_default(),
                            );
                        }
                    }
                    if b.duration().is_none() {
                        b.set_duration(dur);
                    }
                    st.n += 1;
                }
                _ => {}
            }
            gst::PadProbeReturn::Ok
        },
    );
}

/// Whether a display is available for a video window.
pub fn have_display() -> bool {
    ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
}

/// Without `--model`, network modes run the bundled model for `--scale` (×2 by
/// default; built into the codec): a scale it has none for is an invalid scale,
/// named with the flag.
/// The directory an output file goes to (its temporary file is made there), or
/// an error naming the output when that directory does not exist.
pub fn output_dir(output: &Path) -> Result<&Path> {
    let dir = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        anyhow::bail!(
            "{}: cannot create output: directory {} does not exist",
            output.display(),
            dir.display()
        );
    }
    Ok(dir)
}

/// `--threads N`: 0 (one per core) up to the codec's limit.
pub fn parse_threads(s: &str) -> std::result::Result<usize, String> {
    let max = nawqsr_codec::runtime::MAX_THREADS;
    match s.parse::<usize>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(format!("'{s}' (expected 0 to {max}; 0 = one per core)")),
    }
}

pub fn check_scale(scale: Option<usize>) -> Result<()> {
    if let Some(s) = scale
        && !(2..=4).contains(&s)
    {
        bail!("--scale: invalid scale {s} (expected 2, 3 or 4)");
    }
    Ok(())
}

/// What the `nawqsr` element is built from (the CLI's --model/--schedule/--mode/--scale/--threads).
#[derive(Clone, Debug, Default)]
pub struct SrOptions {
    pub model: Option<std::path::PathBuf>,
    pub schedule: Option<std::path::PathBuf>,
    pub mode: nawqsr_codec::runtime::Mode,
    pub scale: Option<usize>,
    pub threads: usize,
    /// Temporal reuse and routing (the element's `reuse`, `reuse-threshold`
    /// and `routing`).
    pub skip: SkipArgs,
}

/// `--reuse`, `--reuse-threshold` and `--routing`: the work the codec may
/// skip, the same flags on `upscale`, `play` and `bench`.
#[derive(clap::Args, Clone, Copy, Debug)]
pub struct SkipArgs {
    /// Temporal reuse, `exact` (patches whose inputs are unchanged since the
    /// previous frame are not recomputed; same output), `tolerant` (unchanged
    /// within --reuse-threshold; `bench` reports `reuse_psnr_db` against
    /// recomputing) or `off`. Clips only.
    #[arg(long, default_value = "exact", value_parser = parse_reuse)]
    pub reuse: Reuse,
    /// With `--reuse tolerant`: a pixel counts as changed when a channel
    /// moved by more than this (1 to 255).
    #[arg(long, default_value = "2", value_parser = parse_reuse_threshold)]
    pub reuse_threshold: u8,
    /// Side of temporal reuse's square patches in LR pixels (4 to 256):
    /// smaller finds more unchanged patches around scattered motion.
    #[arg(long, default_value = "16", value_parser = parse_reuse_patch)]
    pub reuse_patch: usize,
    /// Difficulty routing, `on` or `off`: patches under the schedule's
    /// calibrated gradient-energy threshold take bicubic instead of the
    /// network (`routed` in reports; `nawqsr calibrate-routing` sets it).
    #[arg(long, default_value = "off", value_parser = parse_routing, action = clap::ArgAction::Set)]
    pub routing: bool,
}

impl Default for SkipArgs {
    fn default() -> Self {
        SkipArgs {
            reuse: Reuse::Exact,
            reuse_threshold: 2,
            reuse_patch: nawqsr_codec::runtime::codec::REUSE_PATCH,
            routing: false,
        }
    }
}

/// `--reuse`: temporal reuse of unchanged patches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reuse {
    Off,
    /// Bit-identical inputs only: the output equals recomputing.
    #[default]
    Exact,
    /// Inputs within `--reuse-threshold`: the output changes slightly.
    Tolerant,
}

impl Reuse {
    pub fn nick(self) -> &'static str {
        match self {
            Reuse::Off => "off",
            Reuse::Exact => "exact",
            Reuse::Tolerant => "tolerant",
        }
    }

    /// The codec's (reuse, reuse_threshold) for this setting.
    pub fn codec(self, threshold: u8) -> (bool, u8) {
        match self {
            Reuse::Off => (false, 0),
            Reuse::Exact => (true, 0),
            Reuse::Tolerant => (true, threshold),
        }
    }
}

pub fn parse_reuse(s: &str) -> std::result::Result<Reuse, String> {
    match s {
        "exact" => Ok(Reuse::Exact),
        "off" => Ok(Reuse::Off),
        "tolerant" => Ok(Reuse::Tolerant),
        _ => Err(format!(
            "invalid value '{s}' (expected exact, tolerant or off)"
        )),
    }
}

/// `--routing`: on or off.
pub fn parse_routing(s: &str) -> std::result::Result<bool, String> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("invalid value '{s}' (expected on or off)")),
    }
}

/// `--reuse-patch`: the codec's range of patch sides.
pub fn parse_reuse_patch(s: &str) -> std::result::Result<usize, String> {
    use nawqsr_codec::runtime::codec::{MAX_REUSE_PATCH, MIN_REUSE_PATCH};
    match s.parse::<usize>() {
        Ok(p) if (MIN_REUSE_PATCH..=MAX_REUSE_PATCH).contains(&p) => Ok(p),
        _ => Err(format!(
            "invalid value '{s}' (expected {MIN_REUSE_PATCH} to {MAX_REUSE_PATCH} LR pixels)"
        )),
    }
}

/// `--reuse-threshold`: 1 to 255.
pub fn parse_reuse_threshold(s: &str) -> std::result::Result<u8, String> {
    match s.parse::<u8>() {
        Ok(t) if t >= 1 => Ok(t),
        _ => Err(format!("invalid value '{s}' (expected 1 to 255)")),
    }
}

impl SrOptions {
    /// Checks what the element would only find out in `start()`, with the CLI's
    /// flag names in the message.
    pub fn check(&self) -> Result<()> {
        use nawqsr_codec::runtime::Mode;
        check_scale(self.scale)?;
        if self.mode == Mode::Bicubic && self.model.is_none() && self.scale.is_none() {
            bail!("--scale: bicubic without a model needs a scale (expected 2, 3 or 4)");
        }
        if let Some(s) = self.scale
            && !(2..=4).contains(&s)
        {
            bail!("--scale: invalid scale {s} (expected 2, 3 or 4)");
        }
        for (flag, p) in [("--model", &self.model), ("--schedule", &self.schedule)] {
            if let Some(p) = p {
                std::fs::File::open(p)
                    .with_context(|| format!("{flag}: {}: cannot open", p.display()))?;
            }
        }
        Ok(())
    }

    /// A configured `nawqsr` element named `name`.
    pub fn element(&self, name: &str) -> Result<gst::Element> {
        let e = gst::ElementFactory::make("nawqsr")
            .name(name)
            .build()
            .context("cannot create the nawqsr element")?;
        if let Some(m) = &self.model {
            e.set_property("model", m.display().to_string());
        }
        if let Some(s) = &self.schedule {
            e.set_property("schedule", s.display().to_string());
        }
        if let Some(s) = self.scale {
            e.set_property("scale", s as u32);
        }
        e.set_property("threads", self.threads as u32);
        e.set_property_from_str("mode", self.mode.name());
        let k = &self.skip;
        e.set_property_from_str("reuse", k.reuse.nick());
        if k.reuse == Reuse::Tolerant {
            e.set_property("reuse-threshold", u32::from(k.reuse_threshold.max(1)));
        }
        e.set_property("reuse-patch", k.reuse_patch as u32);
        e.set_property_from_str("routing", if k.routing { "on" } else { "off" });
        Ok(e)
    }
}

/// Renames a finished temporary file to `dest`, with the permissions of an
/// ordinary new file (tempfile creates 0600).
pub fn publish(tmp: tempfile::NamedTempFile, dest: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // SAFETY: umask only reads and restores the process's file mode mask.
        let mask = unsafe {
            let m = libc::umask(0o022);
            libc::umask(m);
            m
        };
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o666 & !(mask as u32)))?;
    }
    tmp.persist(dest).map(drop).map_err(|e| e.error)
}

/// Adds `names` to `pipeline` as a linked chain fed by `src`, in the
/// pipeline's state (for pads that appear while it runs).
pub fn add_chain(
    pipeline: &gst::Pipeline,
    src: &gst::Pad,
    names: &[&str],
) -> Result<Vec<gst::Element>> {
    let elems = names.iter().map(|n| make(n)).collect::<Result<Vec<_>>>()?;
    pipeline.add_many(&elems)?;
    gst::Element::link_many(&elems)?;
    for e in &elems {
        e.sync_state_with_parent()?;
    }
    src.link(&elems[0].static_pad("sink").unwrap())?;
    Ok(elems)
}
