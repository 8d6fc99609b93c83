//! Exact temporal reuse (issue 18): with reuse on, every frame equals the frame
//! computed with reuse off, bit for bit, while unchanged patches are really
//! taken from the previous frame (the telemetry counts them).
mod common;

use image::{Rgb, RgbImage};
use nawqsr_codec::runtime::{Codec, CodecConfig, Mode, StreamConfig, Timestamp};

/// A textured static background with a bright 10×10 block that moves along the
/// bottom rows (a video call: most rows never change), then a repeat of the
/// last frame (a frame-global model can only reuse whole frames), then a
/// scene cut.
fn clip(w: u32, h: u32) -> Vec<RgbImage> {
    let bg = RgbImage::from_fn(w, h, |x, y| {
        let v = (x * 37 + y * 91 + (x * y) % 13) as u8;
        Rgb([v, v.wrapping_mul(3), 255 - v])
    });
    let mut frames = Vec::new();
    for k in 0..6u32 {
        let mut f = bg.clone();
        for y in h - 12..h - 2 {
            for x in 3 * k..3 * k + 10 {
                f.put_pixel(x % w, y, Rgb([250, 250, 20]));
            }
        }
        frames.push(f);
    }
    frames.push(frames.last().unwrap().clone());
    frames.push(RgbImage::from_fn(w, h, |x, y| {
        Rgb([(x * 5) as u8, (y * 7) as u8, ((x + y) * 3) as u8])
    }));
    frames
}

fn codec(model: Option<std::path::PathBuf>, mode: Mode, reuse: bool) -> Codec {
    Codec::new(&CodecConfig {
        scale: model.is_none().then_some(2),
        model,
        mode,
        threads: 2,
        patch_size: 8,
        reuse,
        ..Default::default()
    })
    .unwrap()
}

/// Runs `frames` through both codecs synchronously and as a stream; asserts
/// equal outputs; returns the reuse codec's (reused bands, bands) of the
/// synchronous run. In the stream, frames overlap in flight, so a frame may
/// compare against the one before its predecessor: `stream_reuses` says
/// whether the clip must still reuse something there.
fn compare(on: &Codec, off: &Codec, frames: &[RgbImage], stream_reuses: bool) -> (u64, u64) {
    for (i, f) in frames.iter().enumerate() {
        let a = on.upscale_rgb(f).unwrap();
        let b = off.upscale_rgb(f).unwrap();
        assert!(a == b, "frame {i}: reuse changed the output");
    }
    let c = on.patch_counts();
    let sync = (c.reused, c.patches);
    // The stream path keeps its own cache (frames overlap in flight).
    let s = on.stream(StreamConfig::default()).unwrap();
    let mut outs = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        s.submit_rgb(f, Timestamp::new(i as u64, 1)).unwrap();
        while let Some(o) = s.try_receive().unwrap() {
            outs.push(o);
        }
    }
    s.eos();
    while let Some(o) = s.receive().unwrap() {
        outs.push(o);
    }
    assert_eq!(outs.len(), frames.len());
    for (i, (o, f)) in outs.into_iter().zip(frames).enumerate() {
        let a = o.frame.to_rgb();
        assert!(
            a == off.upscale_rgb(f).unwrap(),
            "stream frame {i}: reuse changed the output"
        );
    }
    let c = on.patch_counts();
    let all = (c.reused, c.patches);
    assert!(
        all.0 > sync.0 || !stream_reuses,
        "the stream reused nothing: {sync:?} then {all:?}"
    );
    sync
}

#[test]
fn plain_chain_reuses_unchanged_bands_exactly() {
    let frames = clip(160, 96);
    for mode in [Mode::Hybrid, Mode::Int8, Mode::A16w8] {
        let (on, off) = (codec(None, mode, true), codec(None, mode, false));
        let (reused, bands) = compare(&on, &off, &frames, true);
        // 10×6 patches of 16 a frame; frames 1–5 keep all but the few the
        // block's old and new places reach with the halo (6), frame 6 keeps
        // all.
        assert_eq!(bands, 60 * frames.len() as u64, "mode {}", mode.name());
        assert!(
            reused >= 5 * 48 + 60,
            "mode {}: {reused} of {bands} reused",
            mode.name()
        );
        assert_eq!(off.patch_counts().reused, 0, "reuse off reused");
    }
}

/// Other patch sides (`CodecConfig::reuse_patch`) stay exact and count
/// their own grid; sides out of range are a one-line error.
#[test]
fn reuse_patch_side_is_configurable_and_exact() {
    let frames = clip(160, 96);
    let off = codec(None, Mode::Hybrid, false);
    for side in [8usize, 40] {
        let on = Codec::new(&CodecConfig {
            scale: Some(2),
            mode: Mode::Hybrid,
            threads: 2,
            patch_size: 8,
            reuse: true,
            reuse_patch: side,
            ..Default::default()
        })
        .unwrap();
        for (i, f) in frames.iter().enumerate() {
            assert!(
                on.upscale_rgb(f).unwrap() == off.upscale_rgb(f).unwrap(),
                "side {side}, frame {i}: reuse changed the output"
            );
        }
        let c = on.patch_counts();
        let grid = (160usize.div_ceil(side) * 96usize.div_ceil(side) * frames.len()) as u64;
        assert_eq!(c.patches, grid, "side {side}: patches counted");
        // 8: all but the block's surroundings; 40: three patch rows, two of
        // them within the halo of the block, so mostly the repeated frame.
        let least = if side == 8 {
            c.patches / 2
        } else {
            c.patches / 10
        };
        assert!(
            c.reused > least,
            "side {side}: {} of {} reused",
            c.reused,
            c.patches
        );
    }
    for bad in [2usize, 300] {
        let err = Codec::new(&CodecConfig {
            scale: Some(2),
            mode: Mode::Int8,
            reuse: true,
            reuse_patch: bad,
            ..Default::default()
        })
        .err()
        .expect("patch side out of range");
        assert!(
            err.to_string()
                .contains(&format!("reuse patch {bad} (expected 4 to 256")),
            "{err}"
        );
    }
}

#[test]
fn reset_forgets_the_previous_frame() {
    let frames = clip(64, 48);
    let on = codec(None, Mode::Hybrid, true);
    on.upscale_rgb(&frames[0]).unwrap();
    on.reset_reuse();
    let before = on.patch_counts().reused;
    on.upscale_rgb(&frames[0]).unwrap();
    assert_eq!(on.patch_counts().reused, before, "reused after a reset");
    on.upscale_rgb(&frames[0]).unwrap();
    let after = on.patch_counts().reused;
    assert_eq!(after - before, 12, "an identical frame reuses every patch");
}

#[test]
fn frame_global_models_reuse_only_whole_frames() {
    let Some(shared) = common::shared() else {
        eprintln!("skipping: ../shared not found");
        return;
    };
    // IMDN's channel attention pools the whole frame (IMDN_RTC has none).
    let model = shared.join("models/IMDN_x2.onnx");
    let frames = clip(160, 96);
    for mode in [Mode::Hybrid, Mode::Int8] {
        let on = codec(Some(model.clone()), mode, true);
        let off = codec(Some(model.clone()), mode, false);
        let (reused, _) = compare(&on, &off, &frames, false);
        // Only the repeated frame (10×6 patches of 16) is reused, where a
        // plain chain reuses most patches of every frame.
        assert_eq!(reused, 60, "mode {}", mode.name());
    }
}

#[test]
fn tolerant_reuse_skips_small_changes_and_stays_close() {
    // The background flickers by ±1 (as a decoder's rounding can); the block
    // moves as before.
    let mut frames = clip(160, 96);
    frames.truncate(6);
    for (k, f) in frames.iter_mut().enumerate() {
        for (i, p) in f.pixels_mut().enumerate() {
            if (i + k) % 7 == 0 {
                p[1] = p[1].saturating_add(1);
            }
        }
    }
    let exact = codec(None, Mode::Hybrid, true);
    let off = codec(None, Mode::Hybrid, false);
    let tolerant = Codec::new(&CodecConfig {
        scale: Some(2),
        mode: Mode::Hybrid,
        threads: 2,
        reuse: true,
        reuse_threshold: 2,
        ..Default::default()
    })
    .unwrap();
    let (mut se, mut n) = (0.0f64, 0.0f64);
    for f in &frames {
        let full = off.upscale_rgb(f).unwrap();
        assert!(
            exact.upscale_rgb(f).unwrap() == full,
            "exact reuse changed the output"
        );
        let t = tolerant.upscale_rgb(f).unwrap();
        for (&a, &b) in t.as_raw().iter().zip(full.as_raw()) {
            se += (f64::from(a) - f64::from(b)).powi(2);
            n += 1.0;
        }
    }
    let (e, t) = (exact.patch_counts().reused, tolerant.patch_counts().reused);
    // The flicker leaves exact reuse nothing; tolerant reuse takes most
    // patches of frames 1–5.
    assert_eq!(e, 0, "exact reuse took flickering patches");
    assert!(t >= 5 * 48, "tolerant reused only {t}");
    let psnr = 10.0 * (255.0f64 * 255.0 * n / se.max(1e-9)).log10();
    assert!(
        psnr > 40.0,
        "tolerant output is {psnr:.1} dB from recomputing"
    );
}

/// Issue 17 with issue 18: a luma model on YUV frames (the bundled default
/// for video) reuses patches of the Y plane, and every output frame (Y, U
/// and V) equals the frame computed with reuse off, bit for bit.
#[test]
fn luma_models_reuse_on_yuv_frames_exactly() {
    use nawqsr_codec::model::bundled::Family;
    use nawqsr_codec::runtime::color::rgb_to_frame;
    use nawqsr_codec::runtime::{FrameMut, FrameRef, PixelFormat};
    let (w, h) = (128usize, 96usize);
    let mk = |reuse| {
        Codec::new(&CodecConfig {
            scale: Some(2),
            mode: Mode::Int8,
            threads: 2,
            patch_size: 8,
            reuse,
            family: Family::Luma,
            ..Default::default()
        })
        .unwrap()
    };
    let (on, off) = (mk(true), mk(false));
    let i420 = |img: &RgbImage| {
        let c = w / 2 * (h / 2);
        let (mut y, mut u, mut v) = (vec![0u8; w * h], vec![0u8; c], vec![0u8; c]);
        rgb_to_frame(
            img,
            &mut FrameMut {
                format: PixelFormat::I420,
                width: w,
                height: h,
                planes: [&mut y, &mut u, &mut v],
                strides: [w, w / 2, w / 2],
                colorimetry: Default::default(),
            },
        )
        .unwrap();
        [y, u, v]
    };
    let run = |codec: &Codec, p: &[Vec<u8>; 3]| {
        let (ow, oh) = (2 * w, 2 * h);
        let c = ow / 2 * (oh / 2);
        let (mut y, mut u, mut v) = (vec![0u8; ow * oh], vec![0u8; c], vec![0u8; c]);
        codec
            .upscale(
                &FrameRef {
                    format: PixelFormat::I420,
                    width: w,
                    height: h,
                    planes: [&p[0], &p[1], &p[2]],
                    strides: [w, w / 2, w / 2],
                    colorimetry: Default::default(),
                },
                &mut FrameMut {
                    format: PixelFormat::I420,
                    width: ow,
                    height: oh,
                    planes: [&mut y, &mut u, &mut v],
                    strides: [ow, ow / 2, ow / 2],
                    colorimetry: Default::default(),
                },
            )
            .unwrap();
        [y, u, v]
    };
    for (i, f) in clip(w as u32, h as u32).iter().enumerate() {
        let p = i420(f);
        assert!(
            run(&on, &p) == run(&off, &p),
            "frame {i}: reuse changed the output"
        );
    }
    let c = on.patch_counts();
    assert!(
        c.reused > c.patches / 4,
        "reused {} of {} patches",
        c.reused,
        c.patches
    );
    assert_eq!(off.patch_counts().reused, 0);
}
