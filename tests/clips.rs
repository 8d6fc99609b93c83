//! End-to-end tests of `nawqsr upscale` on recorded clips (../shared/clips):
//! file → file frame accounting (every input frame in the output, same
//! timestamps, scaled size), Ctrl-C and errors leave no partial file.
//! Skipped with a one-line notice when ../shared is absent.
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;

#[macro_use]
mod support;

fn nawqsr(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nawqsr"))
        .args(args)
        .output()
        .expect("run nawqsr")
}

/// Frames of a decoded clip: (PTS in ns, width, height) in presentation order.
fn decode(path: &Path) -> Vec<(u64, i32, i32)> {
    gst::init().unwrap();
    let uri = gst::glib::filename_to_uri(path.canonicalize().unwrap(), None).unwrap();
    let pipeline = gst::parse::launch(&format!(
        "uridecodebin uri={uri} ! fakesink name=sink sync=false"
    ))
    .unwrap();
    let pipeline = pipeline.downcast::<gst::Pipeline>().unwrap();
    let frames = Arc::new(Mutex::new(Vec::new()));
    let f = frames.clone();
    let sink = pipeline.by_name("sink").unwrap();
    sink.static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            let caps = pad.current_caps().unwrap();
            let s = caps.structure(0).unwrap();
            let (w, h) = (
                s.get::<i32>("width").unwrap(),
                s.get::<i32>("height").unwrap(),
            );
            let pts = info
                .buffer()
                .unwrap()
                .pts()
                .expect("every frame has a PTS")
                .nseconds();
            f.lock().unwrap().push((pts, w, h));
            gst::PadProbeReturn::Ok
        });
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(60)) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("decoding {}: {}", path.display(), e.error()),
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    let mut v = frames.lock().unwrap().clone();
    v.sort_unstable();
    v
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Upscales `clip` ×2 (bicubic) to `out_name` and checks every frame is there
/// with its timestamp (to `tolerance_ns`: Matroska stores milliseconds) and twice the size.
fn check_transcode(clip: &str, out_name: &str, tolerance_ns: u64) {
    let shared = require_shared!();
    let input = shared.join("clips").join(clip);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(out_name);
    let o = nawqsr(&[
        "upscale",
        input.to_str().unwrap(),
        out.to_str().unwrap(),
        "--mode",
        "bicubic",
        "--scale",
        "2",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("60 frames"), "{err}");
    assert_eq!(
        entries(dir.path()),
        vec![out_name.to_string()],
        "only the output is left"
    );
    let (a, b) = (decode(&input), decode(&out));
    assert_eq!(a.len(), 60, "{clip} has 60 frames");
    assert_eq!(a.len(), b.len(), "frame count preserved");
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(
            x.0.abs_diff(y.0) <= tolerance_ns,
            "frame {i}: PTS {} in, {} out",
            x.0,
            y.0
        );
        assert_eq!((y.1, y.2), (2 * x.1, 2 * x.2), "frame {i}: size");
    }
}

#[test]
fn upscale_mp4_preserves_frame_count_and_pts() {
    check_transcode("foreman_cif.mp4", "foreman_x2.mp4", 0);
}

#[test]
fn upscale_webm_to_mkv_preserves_frame_count_and_pts() {
    check_transcode("foreman_cif.webm", "foreman_x2.mkv", 1_000_000);
}

#[test]
fn ctrl_c_during_upscale_leaves_no_partial_file() {
    let shared = require_shared!();
    // 299 frames of CIF: several seconds, so the interrupt lands mid-run.
    let input = shared.join("clips/foreman_cif_352x288.h264");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mkv");
    let child = Command::new(env!("CARGO_BIN_EXE_nawqsr"))
        .args([
            "upscale",
            input.to_str().unwrap(),
            out.to_str().unwrap(),
            "--mode",
            "bicubic",
            "--scale",
            "4",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the partial output exists, i.e. the pipeline is running.
    let t0 = Instant::now();
    while entries(dir.path()).is_empty() && t0.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(700));
    // SAFETY: signalling our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let t1 = Instant::now();
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        t1.elapsed() < Duration::from_secs(10),
        "exits promptly after Ctrl-C"
    );
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(
        entries(dir.path()),
        Vec::<String>::new(),
        "no partial output left: {err}"
    );
}

#[test]
fn bad_clips_give_one_line_errors_and_no_file() {
    let shared = require_shared!();
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.mp4");
    std::fs::write(&junk, b"this is not a video file at all").unwrap();
    let out = dir.path().join("out.mp4");
    let foreman = shared.join("clips/foreman_cif.mp4");
    let cases: [(&[&str], &str); 3] = [
        (
            &[
                junk.to_str().unwrap(),
                out.to_str().unwrap(),
                "--mode",
                "bicubic",
                "--scale",
                "2",
            ],
            "junk.mp4",
        ),
        (
            &[
                "/nonexistent/clip.mp4",
                out.to_str().unwrap(),
                "--mode",
                "bicubic",
                "--scale",
                "2",
            ],
            "clip.mp4",
        ),
        (
            &[
                foreman.to_str().unwrap(),
                out.to_str().unwrap(),
                "--mode",
                "int8",
                "--model",
                "/nonexistent/sr.onnx",
            ],
            "--model",
        ),
    ];
    for (args, what) in cases {
        let mut a = vec!["upscale"];
        a.extend_from_slice(args);
        let o = nawqsr(&a);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(lines.len(), 1, "{err}");
        assert!(lines[0].contains(what), "{what}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(
            entries(dir.path()),
            vec!["junk.mp4".to_string()],
            "no output or partial file"
        );
    }
}

/// The main job's clip (the project's own, no ../shared): hybrid ×2 through the
/// element, every frame out, and the closing telemetry line.
#[test]
fn the_projects_clip_upscales_with_a_telemetry_line() {
    let clip = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../assets/clips/city_320x180.mp4"
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("city_sr.mp4");
    let o = nawqsr(&["upscale", clip, out.to_str().unwrap(), "--scale", "2"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    for want in [
        "320x180 →",
        "640x360 (150 frames",
        "latency p50 ",
        " p99 ",
        "mode hybrid",
        "drops 0",
    ] {
        assert!(err.contains(want), "'{want}' missing: {err}");
    }
    let frames = decode(&out);
    assert_eq!(frames.len(), 150);
    assert!(frames.iter().all(|f| (f.1, f.2) == (640, 360)));
}

/// A truncated download: the error names the input and says what is wrong,
/// not the output (qtdemux's error was once taken for the muxer's).
#[test]
fn a_truncated_mp4_names_the_input() {
    let clip = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../assets/clips/city_320x180.mp4"
    );
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(clip).unwrap();
    let t = dir.path().join("t.mp4");
    // The moov box is at the end (mp4mux default): half the file has none.
    std::fs::write(&t, &bytes[..bytes.len() / 2]).unwrap();
    let out = dir.path().join("out.mp4");
    let o = nawqsr(&[
        "upscale",
        t.to_str().unwrap(),
        out.to_str().unwrap(),
        "--scale",
        "2",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains("t.mp4:") && !lines[0].contains("out.mp4"),
        "{err}"
    );
    assert!(lines[0].contains("truncated"), "{err}");
    assert_eq!(
        entries(dir.path()),
        vec!["t.mp4".to_string()],
        "no output or partial file"
    );
}

/// `bench --json` reports each mode's mean PIQE (issue 19), and the network
/// output scores better (lower) than bicubic on the project's clip.
#[test]
fn bench_reports_mean_piqe_per_mode() {
    let clip = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../assets/clips/city_320x180.mp4"
    );
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("b.json");
    let o = nawqsr(&[
        "bench",
        clip,
        "--scale",
        "2",
        "--modes",
        "bicubic,int8",
        "--frames",
        "4",
        "--json",
        json.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("| PIQE |"), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let modes = v["clips"][0]["modes"].as_array().unwrap();
    let piqe: Vec<f64> = modes
        .iter()
        .map(|m| m["mean_piqe"].as_f64().unwrap())
        .collect();
    assert!(piqe.iter().all(|p| (0.0..=100.0).contains(p)), "{piqe:?}");
    assert!(piqe[1] < piqe[0], "int8 {} vs bicubic {}", piqe[1], piqe[0]);
}
