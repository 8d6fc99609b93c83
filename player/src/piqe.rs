//! `nawqsr piqe IMAGE...`: the no-reference PIQE score (Venkatanath et al., NCC 2015; FYE-SR's
//! perceptual metric) of each image, on MATLAB's `rgb2gray` plane (`codec::metrics::piqe`).
//! 0 is best, 100 worst.
use std::path::PathBuf;

use anyhow::{Context, Result};

#[derive(clap::Args)]
pub struct Args {
    /// Images to score (PNG, JPEG or BMP).
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// One JSON object on stdout: {"images": [{"name", "piqe"}], "mean_piqe"}.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<()> {
    let mut scores = Vec::with_capacity(a.images.len());
    for p in &a.images {
        let img = image::open(p)
            .with_context(|| format!("{}: not a readable image", p.display()))?
            .to_rgb8();
        let s = nawqsr_codec::metrics::piqe_rgb(&img)
            .with_context(|| format!("{}: PIQE failed", p.display()))?;
        scores.push((p.display().to_string(), s.score));
    }
    let mean = scores.iter().map(|s| s.1).sum::<f64>() / scores.len() as f64;
    if a.json {
        let images: Vec<_> = scores
            .iter()
            .map(|(n, s)| serde_json::json!({"name": n, "piqe": s}))
            .collect();
        println!(
            "{}",
            serde_json::json!({"images": images, "mean_piqe": mean})
        );
    } else {
        for (n, s) in &scores {
            println!("{s:8.3}  {n}");
        }
        println!("{mean:8.3}  mean of {}", scores.len());
    }
    Ok(())
}
