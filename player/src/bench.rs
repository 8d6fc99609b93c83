//! `nawqsr bench CLIP...`: throughput and quality of every mode on recorded clips.
//!
//! Each clip is decoded once into memory (RGB, `--frames` caps it); with
//! `--input-size WxH` the frames are first downscaled with MATLAB's bicubic
//! (`metrics::imresize`) so that the decoded originals are the ground truth
//! (Y PSNR/SSIM, shave = scale, the §5 protocol). Then every mode runs the frames
//! through `Codec::upscale_rgb` back to back (or, `--paced`, each frame released
//! at its presentation time: a frame still running at its next frame's release
//! misses its deadline, a frame whose release comes after its own deadline
//! is dropped). Human output to stderr; `--json FILE` holds every number.
//!
//! `--yuv` runs the video path instead: each LR frame is made I420 (BT.601
//! limited range, centred chroma) before the clock starts, and `Codec::upscale`
//! takes and gives I420 as the element on YUV caps does; without `--model`
//! the bundled luma model runs (issue 17). Quality is scored on the output
//! converted back to RGB, after the clock.
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use gst::prelude::*;
use gst_video::prelude::*;
use image::RgbImage;
use nawqsr_codec::metrics::{imresize, sr_quality};
use nawqsr_codec::model::bundled::Family;
use nawqsr_codec::runtime::{Codec, CodecConfig, Mode};
use serde::Serialize;

use crate::media;

#[derive(clap::Args)]
pub struct Args {
    /// Clips (any container GStreamer decodes, or H.264 elementary streams).
    #[arg(required = true)]
    pub clips: Vec<PathBuf>,
    /// Modes, comma-separated (those lacking a model or schedule are skipped with a notice).
    #[arg(
        long,
        default_value = "bicubic,fp32,int8,a16w8,hybrid",
        value_delimiter = ','
    )]
    pub modes: Vec<String>,
    /// ONNX SR model (default: the bundled assets/models/nawq_x{scale}.onnx).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Schedule file (mode hybrid; default: the model's own from schedules/).
    #[arg(long)]
    pub schedule: Option<PathBuf>,
    /// Upscaling factor (bicubic without a model; else checked against the model).
    #[arg(long)]
    pub scale: Option<usize>,
    /// Downscale each frame to WxH first (MATLAB bicubic) and measure quality against the original.
    #[arg(long)]
    pub input_size: Option<String>,
    /// Release frames at the clip's frame rate and count deadline misses and drops.
    #[arg(long)]
    pub paced: bool,
    /// Use at most this many frames of each clip.
    #[arg(long)]
    pub frames: Option<usize>,
    /// Codec worker threads (0 = all cores).
    #[arg(long, default_value_t = 0, value_parser = crate::media::parse_threads)]
    pub threads: usize,
    /// Frame rate of streams that carry no timing (H.264 elementary streams).
    #[arg(long, default_value_t = media::DEFAULT_FPS)]
    pub fps: u32,
    #[command(flatten)]
    pub skip: crate::media::SkipArgs,
    /// Write every number as one JSON object to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// The video path: I420 frames in and out of the codec (the element's
    /// path on YUV caps); without --model, the bundled luma model.
    #[arg(long)]
    pub yuv: bool,
    /// Write a PNG: quality vs latency per mode, and latency histograms.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

#[derive(Serialize)]
struct Report {
    model: Option<String>,
    schedule: Option<String>,
    threads: usize,
    paced: bool,
    /// The video path (`--yuv`): I420 in and out of the codec.
    yuv: bool,
    clips: Vec<ClipReport>,
}

#[derive(Serialize)]
struct ClipReport {
    clip: String,
    frames: usize,
    fps: f64,
    original_size: [u32; 2],
    input_size: [u32; 2],
    output_size: [u32; 2],
    scale: usize,
    /// Quality is measured against the original frames (`--input-size`).
    ground_truth: bool,
    modes: Vec<ModeReport>,
    skipped: Vec<Skipped>,
}

#[derive(Serialize)]
struct Skipped {
    mode: String,
    reason: String,
}

#[derive(Serialize, Clone)]
struct LatencyMs {
    p50: f64,
    p95: f64,
    p99: f64,
    max: f64,
    mean: f64,
}

#[derive(Serialize)]
struct Paced {
    deadline_misses: usize,
    drops: usize,
}

#[derive(Serialize)]
struct Quality {
    mean_psnr: f64,
    mean_ssim: f64,
    psnr: Vec<f64>,
    ssim: Vec<f64>,
}

#[derive(Serialize)]
struct Partition {
    index: usize,
    unit: &'static str,
    dre: bool,
    layers: [usize; 2],
    ms_per_frame: f64,
}

#[derive(Serialize)]
struct ModeReport {
    mode: &'static str,
    /// Frames processed (in paced runs, without the drops).
    frames: usize,
    fps: f64,
    latency_ms: LatencyMs,
    /// Every frame's latency, in frame order.
    latencies_ms: Vec<f64>,
    paced: Option<Paced>,
    quality: Option<Quality>,
    /// Mean no-reference PIQE of the outputs (0 best, 100 worst); every frame,
    /// computed after its latency is taken. Not in paced runs (it would delay
    /// the next frame).
    mean_piqe: Option<f64>,
    partitions: Vec<Partition>,
    /// Worker time per unit and RQU (DRE) share, from `Codec::stats()`.
    unit_busy_ms_per_frame: Vec<(String, f64)>,
    dre_fraction: f64,
    /// Fraction of output patches reused from the previous frame.
    reused: f64,
    /// Fraction of output patches that took difficulty routing's cheap path.
    routed: f64,
    /// `--yuv` with a luma model: the chroma planes' resize per frame (on its
    /// own thread, beside the workers).
    #[serde(skip_serializing_if = "Option::is_none")]
    chroma_ms_per_frame: Option<f64>,
    /// Tolerant reuse: PSNR (RGB, over all frames) of the output against
    /// recomputing every frame; None for exact reuse or identical outputs.
    reuse_psnr_db: Option<f64>,
}

struct Clip {
    frames: Vec<RgbImage>,
    fps: f64,
}

/// Decodes up to `max` frames of `path` to RGB.
fn decode(path: &Path, max: Option<usize>, fps_default: u32) -> Result<Clip> {
    media::init()?;
    let name = path.display().to_string();
    let uri = media::to_uri(&name)?;
    let pipeline = gst::Pipeline::new();
    let src = media::make("uridecodebin")?;
    src.set_property("uri", &uri);
    let conv = media::make("videoconvert")?;
    let sink = gst_app::AppSink::builder()
        .caps(
            &gst::Caps::builder("video/x-raw")
                .field("format", "RGB")
                .build(),
        )
        .sync(false)
        .build();
    pipeline.add_many([&src, &conv, sink.upcast_ref()])?;
    conv.link(&sink)?;
    let conv_sink = conv.static_pad("sink").unwrap();
    src.connect_pad_added(move |_, pad| {
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        if caps
            .structure(0)
            .is_some_and(|s| s.name().starts_with("video/"))
            && !conv_sink.is_linked()
        {
            media::stamp_missing_timestamps(pad, fps_default);
            let _ = pad.link(&conv_sink);
        }
    });
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| anyhow!("{name}: cannot start decoding"))?;
    let bus = pipeline.bus().unwrap();
    let mut frames = Vec::new();
    let mut fps = 0.0;
    let max = max.unwrap_or(usize::MAX);
    let res: Result<()> = (|| loop {
        if frames.len() >= max {
            return Ok(());
        }
        if let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_mseconds(100)) {
            let caps = sample.caps().context("sample without caps")?;
            let info = gst_video::VideoInfo::from_caps(caps)?;
            if info.fps().numer() > 0 {
                fps = info.fps().numer() as f64 / info.fps().denom() as f64;
            }
            let buf = sample.buffer().context("sample without buffer")?;
            let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buf, &info)?;
            let (w, h) = (info.width(), info.height());
            let stride = frame.plane_stride()[0] as usize;
            let data = frame.plane_data(0)?;
            let mut img = RgbImage::new(w, h);
            for (y, row) in img.chunks_exact_mut(3 * w as usize).enumerate() {
                row.copy_from_slice(&data[y * stride..y * stride + 3 * w as usize]);
            }
            frames.push(img);
            continue;
        }
        if sink.is_eos() {
            return Ok(());
        }
        while let Some(m) = bus.pop_filtered(&[gst::MessageType::Error]) {
            if let gst::MessageView::Error(e) = m.view() {
                bail!("{name}: {}", media::error_line(e));
            }
        }
    })();
    let _ = pipeline.set_state(gst::State::Null);
    res?;
    if frames.is_empty() {
        bail!("{name}: no video frames");
    }
    Ok(Clip {
        frames,
        fps: if fps > 0.0 { fps } else { fps_default as f64 },
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn latency(lat: &[f64]) -> LatencyMs {
    let mut s = lat.to_vec();
    s.sort_by(f64::total_cmp);
    LatencyMs {
        p50: percentile(&s, 0.50),
        p95: percentile(&s, 0.95),
        p99: percentile(&s, 0.99),
        max: s.last().copied().unwrap_or(0.0),
        mean: if s.is_empty() {
            0.0
        } else {
            s.iter().sum::<f64>() / s.len() as f64
        },
    }
}

fn parse_size(s: &str) -> Result<(u32, u32)> {
    let (w, h) = crate::bench_model::parse_size(s)?;
    Ok((w as u32, h as u32))
}

/// A tightly packed I420 frame (BT.601 limited range, centred chroma).
struct I420 {
    w: usize,
    h: usize,
    planes: [Vec<u8>; 3],
}

impl I420 {
    fn new(w: usize, h: usize) -> I420 {
        let c = w.div_ceil(2) * h.div_ceil(2);
        I420 {
            w,
            h,
            planes: [vec![0; w * h], vec![0; c], vec![0; c]],
        }
    }

    fn strides(&self) -> [usize; 3] {
        [self.w, self.w.div_ceil(2), self.w.div_ceil(2)]
    }

    fn of(img: &RgbImage) -> Result<I420> {
        let mut f = I420::new(img.width() as usize, img.height() as usize);
        nawqsr_codec::runtime::color::rgb_to_frame(img, &mut f.frame_mut())?;
        Ok(f)
    }

    fn frame(&self) -> nawqsr_codec::runtime::FrameRef<'_> {
        nawqsr_codec::runtime::FrameRef {
            format: nawqsr_codec::runtime::PixelFormat::I420,
            width: self.w,
            height: self.h,
            planes: [&self.planes[0], &self.planes[1], &self.planes[2]],
            strides: self.strides(),
            colorimetry: Default::default(),
        }
    }

    fn frame_mut(&mut self) -> nawqsr_codec::runtime::FrameMut<'_> {
        let strides = self.strides();
        let [a, b, c] = &mut self.planes;
        nawqsr_codec::runtime::FrameMut {
            format: nawqsr_codec::runtime::PixelFormat::I420,
            width: self.w,
            height: self.h,
            planes: [a, b, c],
            strides,
            colorimetry: Default::default(),
        }
    }
}

/// One frame through the codec, timed: RGB in and out, or (`yuv`) the
/// frame's I420 form in and I420 out, converted to RGB after the clock.
struct Runner<'a> {
    codec: &'a Codec,
    yuv: Option<Vec<I420>>,
}

impl Runner<'_> {
    fn upscale(&self, lr: &[RgbImage], i: usize) -> Result<(RgbImage, f64)> {
        let t = Instant::now();
        match &self.yuv {
            None => {
                let sr = self.codec.upscale_rgb(&lr[i])?;
                Ok((sr, t.elapsed().as_secs_f64() * 1e3))
            }
            Some(frames) => {
                let s = self.codec.scale();
                let mut out = I420::new(frames[i].w * s, frames[i].h * s);
                self.codec
                    .upscale(&frames[i].frame(), &mut out.frame_mut())?;
                let ms = t.elapsed().as_secs_f64() * 1e3;
                Ok((
                    nawqsr_codec::runtime::color::frame_to_rgb(&out.frame())?,
                    ms,
                ))
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn run_mode(
    codec: &Codec,
    reference: Option<&Codec>,
    lr: &[RgbImage],
    hr: Option<&[RgbImage]>,
    fps: f64,
    paced: bool,
    yuv: bool,
) -> Result<ModeReport> {
    let scale = codec.scale();
    let runner = Runner {
        codec,
        yuv: yuv
            .then(|| lr.iter().map(I420::of).collect::<Result<Vec<_>>>())
            .transpose()?,
    };
    // One warm-up frame: first-touch allocations and thread start-up are not throughput.
    runner.upscale(lr, 0)?;
    codec.reset_stats();
    // The warm-up frame must not be reused by the first timed one.
    codec.reset_reuse();
    let mut lat = Vec::with_capacity(lr.len());
    let mut outputs: Vec<(usize, RgbImage)> = Vec::new();
    let (mut misses, mut drops) = (0, 0);
    let mut piqe_sum = 0.0;
    let (mut sq_err, mut samples) = (0.0f64, 0.0f64);
    let period = Duration::from_secs_f64(1.0 / fps);
    let t0 = Instant::now();
    for i in 0..lr.len() {
        if paced {
            let release = period * i as u32;
            let deadline = release + period;
            let now = t0.elapsed();
            if now >= deadline {
                drops += 1;
                continue;
            }
            if now < release {
                std::thread::sleep(release - now);
            }
        }
        let (sr, ms) = runner.upscale(lr, i)?;
        lat.push(ms);
        if !paced {
            piqe_sum += nawqsr_codec::metrics::piqe::piqe_rgb(&sr)?.score;
        }
        if paced && t0.elapsed() > period * (i as u32 + 1) {
            misses += 1;
        }
        if hr.is_some() {
            outputs.push((i, sr));
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    let mean_piqe = (!paced && !lat.is_empty()).then(|| piqe_sum / lat.len() as f64);
    let stats = codec.stats();
    // Tolerant reuse: the same frames again, untimed (reuse is deterministic
    // from a reset, so the outputs repeat), each against recomputing. Not in
    // the timed loop: the reference's work between frames would keep the
    // workers busy and change the timed frames' latency.
    if let Some(r) = reference {
        codec.reset_reuse();
        let full = Runner {
            codec: r,
            yuv: runner
                .yuv
                .as_ref()
                .map(|_| lr.iter().map(I420::of).collect::<Result<Vec<_>>>())
                .transpose()?,
        };
        for i in 0..lr.len() {
            let (sr, full) = (runner.upscale(lr, i)?.0, full.upscale(lr, i)?.0);
            sq_err += sr
                .as_raw()
                .iter()
                .zip(full.as_raw())
                .map(|(&p, &q)| (f64::from(p) - f64::from(q)).powi(2))
                .sum::<f64>();
            samples += sr.as_raw().len() as f64;
        }
    }
    let n = lat.len();
    let quality = match hr {
        Some(hr) => {
            let mut psnr = Vec::with_capacity(n);
            let mut ssim = Vec::with_capacity(n);
            for (i, sr) in &outputs {
                let (p, s) = sr_quality(sr, &hr[*i], scale)?;
                psnr.push(p);
                ssim.push(s);
            }
            Some(Quality {
                mean_psnr: psnr.iter().sum::<f64>() / psnr.len().max(1) as f64,
                mean_ssim: ssim.iter().sum::<f64>() / ssim.len().max(1) as f64,
                psnr,
                ssim,
            })
        }
        None => None,
    };
    let per_frame = |s: f64| s * 1e3 / n.max(1) as f64;
    Ok(ModeReport {
        mode: codec.mode().name(),
        frames: n,
        fps: if paced {
            n as f64 / wall
        } else {
            n as f64 / lat.iter().sum::<f64>().max(1e-9) * 1e3
        },
        latency_ms: latency(&lat),
        mean_piqe,
        latencies_ms: lat,
        paced: paced.then_some(Paced {
            deadline_misses: misses,
            drops,
        }),
        quality,
        partitions: stats
            .partitions
            .iter()
            .map(|p| Partition {
                index: p.index,
                unit: p.unit,
                dre: p.dre,
                layers: [p.layers.0, p.layers.1],
                ms_per_frame: per_frame(p.time_s),
            })
            .collect(),
        unit_busy_ms_per_frame: stats
            .units
            .iter()
            .map(|u| (u.unit.to_string(), per_frame(u.busy_s)))
            .collect(),
        dre_fraction: stats.dre_fraction,
        reused: stats.reused_fraction(),
        routed: stats.routed_fraction(),
        chroma_ms_per_frame: (stats.chroma_frames > 0)
            .then(|| stats.chroma_s * 1e3 / stats.chroma_frames as f64),
        // RGB PSNR over all frames (one MSE), None when identical.
        reuse_psnr_db: (reference.is_some() && sq_err > 0.0)
            .then(|| 10.0 * (255.0f64 * 255.0 * samples / sq_err).log10()),
    })
}

pub fn run(a: Args) -> Result<()> {
    let modes = a
        .modes
        .iter()
        .map(|m| Mode::parse(m.trim()).map_err(|e| anyhow!("--modes: {e}")))
        .collect::<Result<Vec<_>>>()?;
    if let Some(s) = a.scale
        && !(2..=4).contains(&s)
    {
        bail!("--scale: invalid scale {s} (expected 2, 3 or 4)");
    }
    let input_size = a.input_size.as_deref().map(parse_size).transpose()?;
    for (flag, p) in [("--model", &a.model), ("--schedule", &a.schedule)] {
        if let Some(p) = p {
            std::fs::File::open(p)
                .with_context(|| format!("{flag}: {}: cannot open", p.display()))?;
        }
    }
    // Codecs are built once and reused for every clip.
    let mut codecs: Vec<Codec> = Vec::new();
    let mut references: Vec<Option<Codec>> = Vec::new();
    let mut skipped: Vec<Skipped> = Vec::new();
    let mut model_scale = None;
    for &mode in &modes {
        let why = match mode {
            Mode::Bicubic => None,
            _ => None,
        };
        if let Some(reason) = why {
            eprintln!("mode {}: skipped ({reason})", mode.name());
            skipped.push(Skipped {
                mode: mode.name().into(),
                reason,
            });
            continue;
        }
        if mode == Mode::Bicubic {
            continue; // built below, once the scale is known
        }
        let (reuse, reuse_threshold) = a.skip.reuse.codec(a.skip.reuse_threshold);
        let cfg = CodecConfig {
            model: a.model.clone(),
            schedule: a.schedule.clone(),
            mode,
            // Without --model: the bundled model for --scale (×2 by default).
            scale: if a.model.is_none() { a.scale } else { None },
            threads: a.threads,
            reuse,
            reuse_threshold,
            reuse_patch: a.skip.reuse_patch,
            routing: a.skip.routing,
            family: if a.yuv { Family::Luma } else { Family::Rgb },
            ..CodecConfig::default()
        };
        // Tolerant reuse changes the output: measure it against recomputing.
        let reference = match a.skip.reuse {
            crate::media::Reuse::Tolerant => Some(Codec::new(&CodecConfig {
                reuse: false,
                reuse_threshold: 0,
                ..cfg.clone()
            })),
            _ => None,
        };
        let codec = match Codec::new(&cfg) {
            Ok(c) => c,
            // Hybrid without --schedule uses the model's schedule from schedules/, if any.
            Err(e) if mode == Mode::Hybrid && a.schedule.is_none() => {
                eprintln!("mode hybrid: skipped ({e})");
                skipped.push(Skipped {
                    mode: mode.name().into(),
                    reason: e.to_string(),
                });
                continue;
            }
            Err(e) => return Err(anyhow!(e).context(format!("mode {}", mode.name()))),
        };
        model_scale = Some(codec.scale());
        codecs.push(codec);
        references.push(reference.transpose()?);
    }
    let scale = match (model_scale, a.scale) {
        (Some(m), Some(s)) if m != s => bail!("--scale: {s}, but the model upscales ×{m}"),
        (Some(m), _) => m,
        (None, Some(s)) => s,
        (None, None) => bail!("--scale: needed without a model (expected 2, 3 or 4)"),
    };
    if modes.contains(&Mode::Bicubic) {
        let c = Codec::new(&CodecConfig {
            mode: Mode::Bicubic,
            scale: Some(scale),
            ..CodecConfig::default()
        })?;
        codecs.insert(0, c);
        references.insert(0, None);
    }
    if codecs.is_empty() {
        bail!("--modes: nothing to run");
    }

    let mut report = Report {
        model: a.model.as_ref().map(|p| p.display().to_string()),
        schedule: a.schedule.as_ref().map(|p| p.display().to_string()),
        threads: a.threads,
        paced: a.paced,
        yuv: a.yuv,
        clips: vec![],
    };
    for path in &a.clips {
        let t = Instant::now();
        let clip = decode(path, a.frames, a.fps)?;
        let (ow, oh) = clip.frames[0].dimensions();
        eprintln!(
            "{}: {} frames {}x{} at {:.2} fps decoded in {:.1} s",
            path.display(),
            clip.frames.len(),
            ow,
            oh,
            clip.fps,
            t.elapsed().as_secs_f64()
        );
        let (lr, hr): (Vec<RgbImage>, Option<&[RgbImage]>) = match input_size {
            Some((w, h)) => {
                let lr: Vec<RgbImage> = clip.frames.iter().map(|f| imresize(f, w, h)).collect();
                let gt = (w * scale as u32, h * scale as u32) == (ow, oh);
                if !gt {
                    eprintln!(
                        "{}: {w}x{h} ×{scale} = {}x{} is not the clip's {ow}x{oh}: quality not measured",
                        path.display(),
                        w * scale as u32,
                        h * scale as u32
                    );
                }
                (lr, gt.then_some(clip.frames.as_slice()))
            }
            None => (clip.frames.clone(), None),
        };
        let (iw, ih) = lr[0].dimensions();
        let mut modes_out = Vec::new();
        for (codec, reference) in codecs.iter().zip(&references) {
            let t = Instant::now();
            let r = run_mode(codec, reference.as_ref(), &lr, hr, clip.fps, a.paced, a.yuv)
                .with_context(|| format!("{}: mode {}", path.display(), codec.mode().name()))?;
            tracing::info!("mode {} took {:.1} s", r.mode, t.elapsed().as_secs_f64());
            modes_out.push(r);
        }
        let c = ClipReport {
            clip: path.display().to_string(),
            frames: lr.len(),
            fps: clip.fps,
            original_size: [ow, oh],
            input_size: [iw, ih],
            output_size: [iw * scale as u32, ih * scale as u32],
            scale,
            ground_truth: hr.is_some(),
            modes: modes_out,
            skipped: skipped
                .iter()
                .map(|s| Skipped {
                    mode: s.mode.clone(),
                    reason: s.reason.clone(),
                })
                .collect(),
        };
        print_table(&c, a.paced);
        report.clips.push(c);
    }
    if let Some(p) = &a.json {
        let s = serde_json::to_string_pretty(&report)?;
        write_atomic(p, s.as_bytes())?;
        eprintln!("json: {}", p.display());
    }
    if let Some(p) = &a.plot {
        plot(&report, p)?;
        eprintln!("plot: {}", p.display());
    }
    Ok(())
}

fn write_atomic(p: &Path, bytes: &[u8]) -> Result<()> {
    let dir = p
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".nawqsr-")
        .suffix(".partial")
        .tempfile_in(dir)
        .with_context(|| format!("{}: cannot create", p.display()))?;
    std::fs::write(tmp.path(), bytes).with_context(|| format!("{}: cannot write", p.display()))?;
    media::publish(tmp, p).with_context(|| format!("{}: cannot write", p.display()))
}

fn print_table(c: &ClipReport, paced: bool) {
    eprintln!(
        "\n{}: {} frames, {}x{} → {}x{} (×{}){}",
        c.clip,
        c.frames,
        c.input_size[0],
        c.input_size[1],
        c.output_size[0],
        c.output_size[1],
        c.scale,
        if c.ground_truth {
            format!(
                ", quality vs the {}x{} original",
                c.original_size[0], c.original_size[1]
            )
        } else {
            String::new()
        }
    );
    let mut head = "| mode | fps | p50 ms | p95 ms | p99 ms | max ms |".to_string();
    if paced {
        head.push_str(" misses | drops |");
    }
    if c.ground_truth {
        head.push_str(" PSNR dB | SSIM |");
    }
    if !paced {
        head.push_str(" PIQE |");
    }
    head.push_str(" reused | routed |");
    head.push_str(" per-partition ms/frame |");
    eprintln!("{head}");
    eprintln!(
        "{}",
        head.chars()
            .map(|ch| if ch == '|' { '|' } else { '-' })
            .collect::<String>()
    );
    for m in &c.modes {
        let l = &m.latency_ms;
        let mut row = format!(
            "| {} | {:.2} | {:.1} | {:.1} | {:.1} | {:.1} |",
            m.mode, m.fps, l.p50, l.p95, l.p99, l.max
        );
        if let Some(p) = &m.paced {
            row.push_str(&format!(" {} | {} |", p.deadline_misses, p.drops));
        }
        if let Some(q) = &m.quality {
            row.push_str(&format!(" {:.2} | {:.4} |", q.mean_psnr, q.mean_ssim));
        }
        if let Some(p) = m.mean_piqe {
            row.push_str(&format!(" {p:.2} |"));
        }
        row.push_str(&format!(
            " {:.0} % | {:.0} % |",
            100.0 * m.reused,
            100.0 * m.routed
        ));
        let parts: Vec<String> = m
            .partitions
            .iter()
            .map(|p| {
                format!(
                    "{}{}{}:{:.1}",
                    p.index,
                    if p.unit == "int8" { "i8" } else { "a16" },
                    if p.dre { "d" } else { "" },
                    p.ms_per_frame
                )
            })
            .collect();
        row.push_str(&format!(
            " {} |",
            if parts.is_empty() {
                "—".to_string()
            } else {
                parts.join(" ")
            }
        ));
        eprintln!("{row}");
    }
}

fn plot(report: &Report, path: &Path) -> Result<()> {
    use plotters::prelude::*;
    let Some(c) = report.clips.first() else {
        bail!("--plot: no clip")
    };
    let root = BitMapBackend::new(path, (1400, 560)).into_drawing_area();
    root.fill(&WHITE)
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let title = format!(
        "{} {}x{} → ×{} ({} frames)",
        Path::new(&c.clip)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
        c.input_size[0],
        c.input_size[1],
        c.scale,
        c.frames
    );
    let root = root
        .titled(&title, ("sans-serif", 24))
        .map_err(|e| anyhow!("{e}"))?;
    let (left, right) = root.split_horizontally(640);
    let err = |e: DrawingAreaErrorKind<_>| anyhow!("{}: {e:?}", path.display());
    let colors = [RED, BLUE, GREEN, MAGENTA, CYAN, BLACK];

    // Left: quality (or fps) against median latency, one point per mode.
    // Log latency: bicubic and FP32 differ by orders of magnitude.
    let lat_max = c
        .modes
        .iter()
        .map(|m| m.latency_ms.p99)
        .fold(0.1f64, f64::max)
        * 1.5;
    let lat_min = c
        .modes
        .iter()
        .map(|m| m.latency_ms.p50)
        .fold(f64::MAX, f64::min)
        .max(0.01)
        / 1.5;
    let (ylabel, ys): (&str, Vec<f64>) = if c.ground_truth {
        (
            "Y PSNR vs original (dB)",
            c.modes
                .iter()
                .map(|m| m.quality.as_ref().map_or(0.0, |q| q.mean_psnr))
                .collect(),
        )
    } else {
        ("frames per second", c.modes.iter().map(|m| m.fps).collect())
    };
    let (ylo, yhi) = ys
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &y| (lo.min(y), hi.max(y)));
    let pad = ((yhi - ylo) * 0.2).max(0.1);
    let mut chart = ChartBuilder::on(&left)
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .caption("quality vs latency (p50, bar to p99)", ("sans-serif", 18))
        .build_cartesian_2d((lat_min..lat_max).log_scale(), (ylo - pad)..(yhi + pad))
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("latency per frame (ms, log)")
        .y_desc(ylabel)
        .draw()
        .map_err(err)?;
    for (i, (m, &y)) in c.modes.iter().zip(&ys).enumerate() {
        let col = colors[i % colors.len()];
        chart
            .draw_series([PathElement::new(
                vec![(m.latency_ms.p50, y), (m.latency_ms.p99, y)],
                col.stroke_width(2),
            )])
            .map_err(err)?;
        chart
            .draw_series([Circle::new((m.latency_ms.p50, y), 7, col.filled())])
            .map_err(err)?
            .label(format!("{} ({:.1} fps)", m.mode, m.fps))
            .legend(move |(x, y)| Circle::new((x, y), 5, col.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(err)?;

    // Right: latency histograms (log-spaced bins, since modes differ by orders of magnitude).
    let all: Vec<f64> = c
        .modes
        .iter()
        .flat_map(|m| m.latencies_ms.iter().copied())
        .filter(|v| *v > 0.0)
        .collect();
    let lo = all
        .iter()
        .copied()
        .fold(f64::MAX, f64::min)
        .max(0.01)
        .log10()
        .floor();
    let hi = all
        .iter()
        .copied()
        .fold(0.0, f64::max)
        .max(0.02)
        .log10()
        .ceil()
        .max(lo + 1.0);
    let bins = 40usize;
    let width = (hi - lo) / bins as f64;
    let counts: Vec<Vec<usize>> = c
        .modes
        .iter()
        .map(|m| {
            let mut h = vec![0usize; bins];
            for &v in &m.latencies_ms {
                let b = (((v.max(1e-3).log10() - lo) / width) as usize).min(bins - 1);
                h[b] += 1;
            }
            h
        })
        .collect();
    let ymax = counts.iter().flatten().copied().max().unwrap_or(1).max(1);
    let mut hist = ChartBuilder::on(&right)
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(50)
        .caption("latency histogram", ("sans-serif", 18))
        .build_cartesian_2d(
            (10f64.powf(lo)..10f64.powf(hi)).log_scale(),
            0usize..ymax + 1,
        )
        .map_err(err)?;
    hist.configure_mesh()
        .x_desc("latency per frame (ms, log)")
        .y_desc("frames")
        .draw()
        .map_err(err)?;
    for (i, (m, h)) in c.modes.iter().zip(&counts).enumerate() {
        let col = colors[i % colors.len()];
        hist.draw_series(
            h.iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(b, &n)| {
                    let x0 = 10f64.powf(lo + b as f64 * width);
                    let x1 = 10f64.powf(lo + (b + 1) as f64 * width);
                    Rectangle::new([(x0, 0), (x1, n)], col.mix(0.45).filled())
                }),
        )
        .map_err(err)?
        .label(m.mode)
        .legend(move |(x, y)| {
            Rectangle::new([(x, y - 5), (x + 10, y + 5)], col.mix(0.45).filled())
        });
    }
    hist.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present()
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    Ok(())
}
