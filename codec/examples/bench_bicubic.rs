//! Times the MATLAB-compatible f64 bicubic (`metrics::imresize::upscale_bicubic`)
//! against the fixed-point one (`runtime::bicubic`, 1 and 2 threads) and prints
//! one markdown table row per case (median of N runs).
//!
//! `cargo run --release -p nawqsr-codec --example bench_bicubic [-- RUNS]`
use std::time::Instant;

use image::RgbImage;
use nawqsr_codec::metrics::imresize::upscale_bicubic;
use nawqsr_codec::runtime::bicubic::{Level, upscale_rgb};

fn median_ms(runs: usize, mut f: impl FnMut() -> RgbImage) -> f64 {
    let mut t: Vec<f64> = (0..runs)
        .map(|_| {
            let t0 = Instant::now();
            std::hint::black_box(f());
            t0.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("RUNS is a number"))
        .unwrap_or(21);
    let mut seed = 0x2545f4914f6cdd1du64;
    println!("level {:?}, median of {runs} runs", Level::detect());
    println!(
        "| case | reference ms | fast 1 thread ms | fast 2 threads ms | speed-up (1 / 2 threads) |"
    );
    println!("|---|---|---|---|---|");
    for (w, h, s) in [(640u32, 360u32, 2usize), (320, 180, 4), (352, 288, 2)] {
        let img = RgbImage::from_fn(w, h, |x, y| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let n = (seed % 16) as u32;
            image::Rgb([
                ((x + n) % 256) as u8,
                ((y * 2 + n) % 256) as u8,
                ((x + y + n) % 256) as u8,
            ])
        });
        let reference = median_ms(runs, || upscale_bicubic(&img, s));
        let fast1 = median_ms(runs, || upscale_rgb(&img, s, 1));
        let fast2 = median_ms(runs, || upscale_rgb(&img, s, 2));
        assert!(upscale_rgb(&img, s, 2) == upscale_bicubic(&img, s) || s == 3);
        println!(
            "| {w}×{h} → {}×{} ×{s} | {reference:.2} | {fast1:.2} | {fast2:.2} | {:.1}× / {:.1}× |",
            w as usize * s,
            h as usize * s,
            reference / fast1,
            reference / fast2
        );
    }
}
