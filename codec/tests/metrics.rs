//! The metrics reproduce MATLAB: the resize against LR images MATLAB made,
//! and the whole protocol against published bicubic baselines.
//! Needs ../shared (skipped with a one-line notice where it is absent).
use std::path::{Path, PathBuf};
use std::time::Instant;

use image::RgbImage;
use nawqsr_codec::metrics::{
    Plane, list_images, load_hr, load_rgb, make_lr, modcrop, sr_quality_on, upscale_bicubic,
};

fn shared() -> Option<PathBuf> {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared"));
    if p.is_dir() {
        Some(p)
    } else {
        println!("skipping: ../shared not found");
        None
    }
}

fn name(p: &Path) -> &str {
    p.file_name().and_then(|n| n.to_str()).unwrap_or_default()
}

/// (max |diff| over channels, pixels with any channel different).
fn compare(a: &RgbImage, b: &RgbImage) -> (u8, usize) {
    assert_eq!(a.dimensions(), b.dimensions());
    a.pixels().zip(b.pixels()).fold((0, 0), |(max, n), (p, q)| {
        let d =
            p.0.iter()
                .zip(q.0)
                .map(|(x, y)| x.abs_diff(y))
                .max()
                .unwrap_or(0);
        (max.max(d), n + usize::from(d > 0))
    })
}

#[test]
fn downscale_matches_matlab_lr() {
    let Some(shared) = shared() else { return };
    for scale in [2, 3, 4] {
        let dir = shared.join(format!("datasets/Set5_matlab_lr/x{scale}"));
        let files = list_images(&dir).unwrap();
        let hrs: Vec<&PathBuf> = files
            .iter()
            .filter(|p| name(p).ends_with("_HR.png"))
            .collect();
        assert_eq!(hrs.len(), 5, "{}: expected 5 HR images", dir.display());
        let (mut differ, mut total) = (0, 0);
        for hr_path in hrs {
            let lr_path = hr_path.with_file_name(name(hr_path).replace("_HR", "_LR"));
            let matlab = load_rgb(&lr_path).unwrap();
            let ours = make_lr(&modcrop(&load_rgb(hr_path).unwrap(), scale), scale);
            let (max, n) = compare(&ours, &matlab);
            let px = (matlab.width() * matlab.height()) as usize;
            println!(
                "x{scale} {}: max |diff| {max}, {n}/{px} pixels differ",
                name(&lr_path)
            );
            assert!(max <= 1, "{}: max |diff| {max} > 1 LSB", lr_path.display());
            differ += n;
            total += px;
        }
        println!("x{scale} Set5: {differ}/{total} pixels differ from MATLAB");
    }
}

/// Mean (PSNR, SSIM) of the bicubic baseline over a dataset, following the
/// protocol: modcrop, MATLAB downscale, MATLAB upscale, shave = scale. With
/// `classic_gray`, single-channel files are measured on their grey level as
/// the classic MATLAB table did, otherwise on Y of the replicated RGB.
fn bicubic_baseline(dir: &Path, scale: usize, classic_gray: bool) -> (f64, f64) {
    let files = list_images(dir).unwrap();
    let (mut p_sum, mut s_sum) = (0.0, 0.0);
    for f in &files {
        let (hr, plane) = load_hr(f).unwrap();
        let plane = if classic_gray { plane } else { Plane::Y };
        let hr = modcrop(&hr, scale);
        let sr = upscale_bicubic(&make_lr(&hr, scale), scale);
        let (p, s) = sr_quality_on(&sr, &hr, scale, plane).unwrap();
        p_sum += p;
        s_sum += s;
    }
    let n = files.len() as f64;
    (p_sum / n, s_sum / n)
}

/// The classic bicubic table (e.g. VDSR, IMDN, CARN papers). Set5 has no grey
/// image; Set14's bridge is measured on its grey level (see `Plane::Gray`).
#[test]
fn bicubic_baselines_match_published() {
    let Some(shared) = shared() else { return };
    let cases = [
        ("Set5", 4, 28.43),
        ("Set5", 2, 33.68),
        ("Set14", 2, 30.24),
        ("Set14", 4, 26.00),
    ];
    let mut failures = Vec::new();
    for (set, scale, published) in cases {
        let dir = shared.join("datasets").join(set);
        let (p, s) = bicubic_baseline(&dir, scale, true);
        let (p_y, s_y) = bicubic_baseline(&dir, scale, false);
        println!(
            "{set} x{scale} bicubic: PSNR {p:.4} dB (published {published:.2}), SSIM {s:.4}; \
             grey images on Y: {p_y:.4} dB, SSIM {s_y:.4}"
        );
        if (p - published).abs() > 0.01 {
            failures.push(format!(
                "{set} x{scale}: {p:.4} dB vs published {published:.2}"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
}

/// The codec's "bicubic" video mode runs this on every frame; print its speed.
#[test]
fn upscale_720p_speed() {
    let lr = RgbImage::from_fn(320, 180, |x, y| {
        image::Rgb([x as u8, y as u8, (x ^ y) as u8])
    });
    let mut out = upscale_bicubic(&lr, 4);
    let runs = 10;
    let t = Instant::now();
    for _ in 0..runs {
        out = upscale_bicubic(&lr, 4);
    }
    let ms = t.elapsed().as_secs_f64() * 1e3 / f64::from(runs);
    assert_eq!(out.dimensions(), (1280, 720));
    println!("upscale_bicubic 320x180 -> 1280x720: {ms:.2} ms/frame");
}

/// `eval::score_y` (luma models, issue 17) scores the given Y plane against
/// the HR image's Y: its own Y shifted by one code is 10·log10(255²) dB, and
/// a plane of the wrong size is an error naming the image.
#[test]
fn score_y_scores_the_plane_against_hr_y() {
    use nawqsr_codec::eval::{Sample, score_y};
    use nawqsr_codec::metrics::color::rgb_to_y;
    let hr = RgbImage::from_fn(48, 40, |x, y| {
        image::Rgb([(x * 5) as u8, (y * 6) as u8, ((x + y) * 2) as u8])
    });
    let s = Sample::from_hr("ramp".into(), &hr, 2);
    let y: Vec<f64> = rgb_to_y(&s.hr).iter().map(|v| v + 1.0).collect();
    let (w, h) = (s.hr.width() as usize, s.hr.height() as usize);
    let score = score_y(std::slice::from_ref(&s), 2, |_| Ok((y.clone(), w, h))).unwrap();
    let want = 10.0 * (255.0f64 * 255.0).log10();
    assert!(
        (score.mean_psnr - want).abs() < 1e-9,
        "{} vs {want}",
        score.mean_psnr
    );
    let err = score_y(std::slice::from_ref(&s), 2, |_| Ok((vec![0.0; 4], 2, 2))).unwrap_err();
    assert!(err.to_string().contains("ramp"), "{err}");
}
