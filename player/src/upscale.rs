//! `nawqsr upscale IN OUT`: super-resolve an image (PNG/JPEG/BMP) or a clip
//! (any container GStreamer decodes → .mp4 / .mkv, by OUT's extension; see
//! `transcode`). The output is written to a temporary file next to OUT and
//! renamed into place, so an error or Ctrl-C never leaves a partial file behind.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use nawqsr_codec::metrics::load_rgb;
use nawqsr_codec::runtime::{Codec, CodecConfig, Mode};

use crate::media::SrOptions;
use crate::transcode::{self, Container};

#[derive(clap::Args)]
pub struct Args {
    /// Input image, or clip (any container GStreamer decodes).
    pub input: PathBuf,
    /// Output image (.png, .jpg/.jpeg or .bmp) or clip (.mp4 or .mkv: H.264, audio re-encoded).
    pub output: PathBuf,
    /// ONNX SR model (default: the bundled assets/models/nawq_x{scale}.onnx).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Schedule file (hybrid mode).
    #[arg(long)]
    pub schedule: Option<PathBuf>,
    /// hybrid, int8, a16w8, fp32 or bicubic.
    #[arg(long, default_value = "hybrid")]
    pub mode: String,
    /// Upscaling factor: picks the bundled model (default 2); needed for bicubic without a model; checked against a given model.
    #[arg(long)]
    pub scale: Option<usize>,
    /// Worker threads (0 = all cores).
    #[arg(long, default_value_t = 0, value_parser = crate::media::parse_threads)]
    pub threads: usize,
    /// Clips: frame rate given to streams that carry no timing (H.264 elementary streams).
    #[arg(long, default_value_t = crate::media::DEFAULT_FPS)]
    pub fps: u32,
    #[command(flatten)]
    pub skip: crate::media::SkipArgs,
}

pub fn codec_config(
    model: Option<&PathBuf>,
    schedule: Option<&PathBuf>,
    mode: &str,
    scale: Option<usize>,
    threads: usize,
) -> Result<CodecConfig> {
    let mode = Mode::parse(mode).map_err(|e| anyhow::anyhow!("--mode: {e}"))?;
    crate::media::check_scale(scale)?;
    Ok(CodecConfig {
        model: model.cloned(),
        schedule: schedule.cloned(),
        mode,
        scale,
        threads,
        ..CodecConfig::default()
    })
}

fn image_format(p: &Path) -> Result<image::ImageFormat> {
    let ext = p
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    Ok(match ext.as_str() {
        "png" => image::ImageFormat::Png,
        "jpg" | "jpeg" => image::ImageFormat::Jpeg,
        "bmp" => image::ImageFormat::Bmp,
        _ => bail!(
            "{}: unsupported output extension '{ext}' (expected .png, .jpg, .jpeg, .bmp, .mp4 or .mkv)",
            p.display()
        ),
    })
}

pub fn run(a: Args) -> Result<()> {
    if let Some(container) = Container::from_path(&a.output) {
        return run_clip(a, container);
    }
    let fmt = image_format(&a.output)?;
    let mut cfg = codec_config(
        a.model.as_ref(),
        a.schedule.as_ref(),
        &a.mode,
        a.scale,
        a.threads,
    )?;
    cfg.routing = a.skip.routing;
    let codec = Codec::new(&cfg)?;
    let lr = load_rgb(&a.input)?;
    let t = std::time::Instant::now();
    let sr = codec.upscale_rgb(&lr)?;
    let dt = t.elapsed();
    let dir = crate::media::output_dir(&a.output)?;
    let tmp = tempfile::Builder::new()
        .prefix(".nawqsr-")
        .suffix(".partial")
        .tempfile_in(dir)
        .with_context(|| format!("{}: cannot create output", a.output.display()))?;
    sr.write_to(&mut std::io::BufWriter::new(tmp.as_file()), fmt)
        .with_context(|| format!("{}: cannot write image", a.output.display()))?;
    crate::media::publish(tmp, &a.output)
        .with_context(|| format!("{}: cannot write", a.output.display()))?;
    eprintln!(
        "{} {}x{} → {} {}x{} (×{}, mode {}, {:.1} ms)",
        a.input.display(),
        lr.width(),
        lr.height(),
        a.output.display(),
        sr.width(),
        sr.height(),
        codec.scale(),
        codec.mode().name(),
        dt.as_secs_f64() * 1e3
    );
    Ok(())
}

fn run_clip(a: Args, container: Container) -> Result<()> {
    let mode = Mode::parse(&a.mode).map_err(|e| anyhow::anyhow!("--mode: {e}"))?;
    let sr = SrOptions {
        model: a.model.clone(),
        schedule: a.schedule.clone(),
        mode,
        scale: a.scale,
        threads: a.threads,
        skip: a.skip,
    };
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let Some(s) = transcode::run(&a.input, &a.output, container, sr, a.fps, progress)? else {
        eprintln!(
            "{}: interrupted; {} not written",
            a.input.display(),
            a.output.display()
        );
        std::process::exit(130);
    };
    let size = |s: Option<(i32, i32)>| {
        s.map(|(w, h)| format!("{w}x{h}"))
            .unwrap_or_else(|| "?".into())
    };
    let t = &s.telemetry;
    eprintln!(
        "{} {} → {} {} ({} frames, {:.1} s, {:.2} fps; latency p50 {:.1} ms p99 {:.1} ms, mode {}, drops {}, switches {})",
        a.input.display(),
        size(s.in_size),
        a.output.display(),
        size(s.out_size),
        s.frames,
        s.seconds,
        s.frames as f64 / s.seconds.max(1e-9),
        t.percentile_ms(0.5),
        t.percentile_ms(0.99),
        t.mode.as_deref().unwrap_or(mode.name()),
        t.drops,
        t.switches
    );
    Ok(())
}
