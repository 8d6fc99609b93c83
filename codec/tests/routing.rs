//! Difficulty routing (issue 18 item 4): the routed frame is exactly the
//! composition calibration measures, however the hard patches were grouped
//! into sub-frames; temporal reuse stays exact with it; a schedule without a
//! calibrated threshold is a one-line error.
use image::{Rgb, RgbImage};
use nawqsr_codec::runtime::routing::{self, Grid};
use nawqsr_codec::runtime::{Codec, CodecConfig, Mode, bicubic};

/// A flat background (a soft vertical ramp) with a textured `bw`×`bh` block
/// at (`bx`, `by`): the block's patches are hard, the background's easy.
fn frame(w: u32, h: u32, (bx, by): (u32, u32), (bw, bh): (u32, u32)) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        if (bx..bx + bw).contains(&x) && (by..by + bh).contains(&y) {
            let v = ((x * 53) ^ (y * 29)) as u8;
            Rgb([v, v.wrapping_mul(7), 255 - v])
        } else {
            let v = 60 + (y / 8) as u8;
            Rgb([v, v + 20, v + 40])
        }
    })
}

fn codec(routing: bool, reuse: bool) -> Codec {
    Codec::new(&CodecConfig {
        scale: Some(2),
        mode: Mode::Hybrid,
        threads: 2,
        routing,
        reuse,
        ..Default::default()
    })
    .unwrap()
}

/// What the routed frame must be: `routing::compose` of the network's
/// whole-frame output (routing off) and bicubic.
fn expected(off: &Codec, lr: &RgbImage, threshold: f64) -> (RgbImage, usize) {
    let g = Grid {
        w: lr.width() as usize,
        h: lr.height() as usize,
        tile: nawqsr_codec::runtime::codec::REUSE_PATCH,
        s: 2,
    };
    let hard = routing::hard(&routing::scores(lr, g.tile), threshold);
    let easy = hard.iter().filter(|&&h| !h).count();
    let model = off.upscale_rgb(lr).unwrap();
    let bic = bicubic::upscale_rgb(lr, 2, 1);
    (routing::compose(&model, &bic, &g, &hard), easy)
}

#[test]
fn routed_frames_equal_the_composition_of_a_whole_frame_run() {
    let (on, off) = (codec(true, false), codec(false, false));
    let t = on
        .routing_threshold()
        .expect("the bundled x2 schedule is calibrated");
    assert!(t > 0.0);
    // One block, two blocks far apart (two sub-frames), a block on the
    // frame's edge.
    for blocks in [
        vec![((40, 30), (50, 40))],
        vec![((8, 8), (40, 30)), ((250, 150), (60, 40))],
        vec![((280, 0), (40, 60))],
    ] {
        let mut lr = frame(320, 192, (0, 0), (0, 0));
        for (at, size) in &blocks {
            let b = frame(320, 192, *at, *size);
            for (x, y, p) in b.enumerate_pixels() {
                if (at.0..at.0 + size.0).contains(&x) && (at.1..at.1 + size.1).contains(&y) {
                    lr.put_pixel(x, y, *p);
                }
            }
        }
        let before = on.patch_counts();
        let got = on.upscale_rgb(&lr).unwrap();
        let (want, easy) = expected(&off, &lr, t);
        assert!(
            got == want,
            "blocks {blocks:?}: routed frame differs from compose"
        );
        let c = on.patch_counts().since(&before);
        assert_eq!(c.routed as usize, easy, "blocks {blocks:?}");
        // Most of the frame is flat: most patches take bicubic.
        assert!(easy * 2 > c.patches as usize, "blocks {blocks:?}: {c:?}");
    }
}

#[test]
fn where_routing_does_not_pay_the_network_runs_everywhere() {
    let (on, off) = (codec(true, false), codec(false, false));
    // Textured everywhere but one patch: no sub-frame plan is cheaper than
    // the frame, so the output is the network's, bit for bit.
    let lr = frame(160, 96, (16, 0), (144, 96));
    let before = on.patch_counts();
    assert!(on.upscale_rgb(&lr).unwrap() == off.upscale_rgb(&lr).unwrap());
    assert_eq!(on.patch_counts().since(&before).routed, 0);
}

#[test]
fn routing_with_reuse_equals_routing_alone() {
    let (both, alone) = (codec(true, true), codec(true, false));
    // The block moves right 12 pixels a frame, stops, then the scene cuts to
    // a textured frame (routing stops paying) and back.
    let mut frames: Vec<RgbImage> = (0..5)
        .map(|k| frame(320, 192, (20 + 12 * k, 100), (48, 48)))
        .collect();
    frames.push(frames[4].clone());
    frames.push(frame(320, 192, (0, 0), (320, 192)));
    frames.push(frames[4].clone());
    frames.push(frames[4].clone());
    for (i, f) in frames.iter().enumerate() {
        assert!(
            both.upscale_rgb(f).unwrap() == alone.upscale_rgb(f).unwrap(),
            "frame {i}: reuse changed the routed output"
        );
    }
    let c = both.patch_counts();
    assert!(c.reused > c.patches / 3, "{c:?}");
    assert!(c.routed > 0, "{c:?}");
}

#[test]
fn routing_needs_a_calibrated_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let text = include_str!("../../schedules/nawq_x2.json");
    let mut v: serde_json::Value = serde_json::from_str(text).unwrap();
    v.as_object_mut().unwrap().remove("routing");
    let p = dir.path().join("no-routing.json");
    std::fs::write(&p, serde_json::to_string(&v).unwrap()).unwrap();
    let cfg = CodecConfig {
        scale: Some(2),
        schedule: Some(p.clone()),
        routing: true,
        ..Default::default()
    };
    let e = Codec::new(&cfg)
        .err()
        .expect("no routing field")
        .to_string();
    assert!(
        e.contains("no-routing.json") && e.contains("`routing`") && !e.contains('\n'),
        "{e}"
    );
    // Without routing the same schedule loads.
    Codec::new(&CodecConfig {
        routing: false,
        ..cfg.clone()
    })
    .unwrap();
    // A malformed threshold names the field.
    v["routing"] = serde_json::json!({
        "score": "luma-gradient-energy", "patch": 16, "threshold": -1.0,
        "budget_db": 0.05, "calibration_drop_db": 0.0, "calibration_routed": 0.0,
        "calibration": {"dirs": [], "seed": 1, "max_side": 256, "images": []}
    });
    std::fs::write(&p, serde_json::to_string(&v).unwrap()).unwrap();
    let e = Codec::new(&cfg).err().expect("bad threshold").to_string();
    assert!(e.contains("routing.threshold"), "{e}");
    // The float reference has no patches to route.
    let e = Codec::new(&CodecConfig {
        mode: Mode::Fp32,
        schedule: None,
        ..cfg
    })
    .err()
    .expect("fp32 routing")
    .to_string();
    assert!(e.contains("routing") && e.contains("fp32"), "{e}");
}
