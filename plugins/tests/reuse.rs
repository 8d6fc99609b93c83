//! Exact temporal reuse through the element (issue 18): on real decoded clips,
//! every output frame with `reuse=exact` is bit-identical to `reuse=off`.
//! Difficulty routing through the element: flat patches are routed and
//! reported, and reuse stays exact with it.
use std::collections::hash_map::DefaultHasher;
use std::hash::Hasher;
use std::sync::{Arc, Mutex, Once};

use gst::prelude::*;

#[macro_use]
#[path = "../../tests/support/mod.rs"]
mod support;

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstnawqsr::plugin_register_static().expect("nawqsr plugin registers");
    });
}

/// Per output frame: a hash of its bytes; and the mean `reused` of the stats
/// messages.
fn run(desc: &str) -> (Vec<u64>, f64) {
    let (h, reused, _) = run_stats(desc);
    (h, reused)
}

/// [`run`], also with the mean `routed`.
fn run_stats(desc: &str) -> (Vec<u64>, f64, f64) {
    init();
    let pipeline = gst::parse::launch(desc)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let hashes = Arc::new(Mutex::new(Vec::new()));
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    let h = hashes.clone();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let map = sample.buffer().unwrap().map_readable().unwrap();
                let mut hasher = DefaultHasher::new();
                hasher.write(&map);
                h.lock().unwrap().push(hasher.finish());
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let (mut reused, mut routed) = (Vec::new(), Vec::new());
    loop {
        let msg = bus
            .timed_pop(gst::ClockTime::from_seconds(300))
            .expect("EOS or error within 300 s");
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("{desc}: {} ({:?})", e.error(), e.debug()),
            gst::MessageView::Element(e) => {
                if let Some(s) = e.structure().filter(|s| s.name() == "nawqsr-stats") {
                    reused.push(s.get::<f64>("reused").unwrap());
                    routed.push(s.get::<f64>("routed").unwrap());
                }
            }
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    let hashes = hashes.lock().unwrap().clone();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    (hashes, mean(&reused), mean(&routed))
}

#[test]
fn routing_routes_flat_patches_and_reuse_stays_exact_with_it() {
    // The ball pattern: a flat background, one moving ball.
    let line = |routing: &str, reuse: &str| {
        format!(
            "videotestsrc num-buffers=8 pattern=ball ! video/x-raw,format=I420,width=320,height=192 \
             ! nawqsr routing={routing} reuse={reuse} stats-interval=4 ! appsink name=sink sync=false"
        )
    };
    let (alone, _, routed) = run_stats(&line("on", "off"));
    let (both, reused, routed_too) = run_stats(&line("on", "exact"));
    let (off, _, none) = run_stats(&line("off", "off"));
    assert_eq!(alone.len(), 8);
    assert_eq!(alone, both, "reuse changed the routed frames");
    assert!(routed > 0.5, "routed {routed}");
    assert!(reused > 0.3, "reused {reused}");
    assert!(routed_too <= routed, "{routed_too} {routed}");
    assert_eq!(none, 0.0);
    assert_ne!(alone, off, "routing changed nothing");
}

#[test]
fn reuse_is_bit_exact_on_every_clip() {
    let shared = require_shared!();
    let project = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/clips");
    let mut clips: Vec<(std::path::PathBuf, Option<usize>)> = [
        ("container_qcif_176x144.h264", None),
        ("foreman_cif_352x288.h264", None),
        // 720p ×2 is the slow one: its first 90 frames.
        ("flower_720p.h264", Some(90)),
        ("foreman_cif.mp4", None),
        ("foreman_cif_hevc.mp4", None),
        ("foreman_cif.webm", None),
    ]
    .into_iter()
    .map(|(c, n)| (shared.join("clips").join(c), n))
    .collect();
    for c in ["city_320x180.mp4", "call_320x180.mp4"] {
        if project.join(c).exists() {
            clips.push((project.join(c), None));
        }
    }
    for (clip, limit) in clips {
        let limit = limit.map_or(String::new(), |n| format!("identity eos-after={n} ! "));
        let line = |reuse: &str| {
            format!(
                "filesrc location={} ! decodebin ! {limit}videoconvert ! video/x-raw,format=I420 \
                 ! nawqsr reuse={reuse} stats-interval=10 ! appsink name=sink sync=false",
                clip.display()
            )
        };
        let (on, reused) = run(&line("exact"));
        let (off, none) = run(&line("off"));
        let name = clip.file_name().unwrap().to_string_lossy();
        eprintln!(
            "{name}: {} frames, {:.1} % of patches reused",
            on.len(),
            100.0 * reused
        );
        assert!(!on.is_empty(), "{name}: no frames");
        assert_eq!(on.len(), off.len(), "{name}: frame count");
        for (i, (a, b)) in on.iter().zip(&off).enumerate() {
            assert_eq!(a, b, "{name}: frame {i} differs with reuse on");
        }
        assert_eq!(none, 0.0, "{name}: reuse=off reused");
        // Static cameras: some patches never change; the call's background
        // (skip blocks) most of them.
        let least = match &*name {
            n if n.starts_with("call") => 0.5,
            n if n.starts_with("container") => 0.01,
            _ => 0.0,
        };
        assert!(reused >= least, "{name}: only {reused} reused");
    }
}

/// `reuse-patch` sets the side of the reuse patches: every side gives the
/// frames `reuse=off` gives, and the share reused depends on the side (the
/// project's own video-call clip, so this runs in every clone; whole, since
/// a decoder stopped early by `identity eos-after` drains a different last
/// frame from run to run).
#[test]
fn reuse_patch_sets_the_patch_side_and_stays_exact() {
    let clip =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/clips/call_320x180.mp4");
    let line = |reuse: &str| {
        format!(
            "filesrc location={} ! decodebin ! videoconvert ! video/x-raw,format=I420 \
             ! nawqsr {reuse} stats-interval=10 ! appsink name=sink sync=false",
            clip.display()
        )
    };
    let (off, _) = run(&line("reuse=off"));
    assert!(off.len() >= 100, "{} frames", off.len());
    let mut shares = Vec::new();
    for side in [8, 64] {
        let (on, reused) = run(&line(&format!("reuse=exact reuse-patch={side}")));
        assert!(
            on == off,
            "reuse-patch={side}: frames differ from reuse=off"
        );
        shares.push(reused);
    }
    // The default side (16) reuses ~75 % here (`reuse_is_bit_exact_on_every_clip`).
    assert!(
        shares[0] > 0.5 && shares[0] > shares[1],
        "8-pixel patches should find more unchanged ones than 64-pixel ones: {shares:?}"
    );
}
