//! End-to-end tests of `nawqsr play` and `nawqsr bench`: the player starts and
//! stops headless (no display) and under Xvfb (skipped when xvfb-run is absent),
//! quits on `q` from stdin, on Ctrl-C and at EOS; bench's JSON schema.
//! Tests needing ../shared skip with a one-line notice when it is absent.
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

#[macro_use]
mod support;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_nawqsr")
}

/// `nawqsr args…` without a display; `stdin_script`: (delay, bytes) written in order.
fn run(cmd: &mut Command, stdin_script: &[(u64, &[u8])], timeout: Duration) -> (Output, Duration) {
    let t0 = Instant::now();
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for (delay, bytes) in stdin_script {
        std::thread::sleep(Duration::from_millis(*delay));
        let _ = stdin.write_all(bytes);
        let _ = stdin.flush();
    }
    // Keep stdin open (a closed stdin is not a quit).
    let waiter = std::thread::spawn(move || child.wait_with_output().unwrap());
    while !waiter.is_finished() {
        assert!(
            t0.elapsed() < timeout,
            "nawqsr did not exit within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(stdin);
    (waiter.join().unwrap(), t0.elapsed())
}

fn headless(args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.args(args)
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY");
    c
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_clean(o: &Output) {
    let e = err(o);
    assert_eq!(o.status.code(), Some(0), "{e}");
    assert!(!e.contains("panicked") && !e.contains("CRITICAL"), "{e}");
}

#[test]
fn headless_test_source_writes_a_file_and_telemetry() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("play.mkv");
    let (o, _) = run(
        &mut headless(&[
            "play",
            "--duration",
            "1",
            "--output",
            out.to_str().unwrap(),
            "--compare",
        ]),
        &[],
        Duration::from_secs(60),
    );
    assert_clean(&o);
    let e = err(&o);
    assert!(e.contains("no display") && e.contains("headless"), "{e}");
    assert!(
        e.contains("fps") && e.contains("p99"),
        "telemetry lines on stderr: {e}"
    );
    assert!(std::fs::metadata(&out).unwrap().len() > 1000, "{e}");
}

#[test]
fn headless_clip_plays_to_eos() {
    let shared = require_shared!();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("play.mkv");
    let clip = shared.join("clips/foreman_cif.mp4");
    let (o, _) = run(
        &mut headless(&[
            "play",
            clip.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ]),
        &[],
        Duration::from_secs(90),
    );
    assert_clean(&o);
    assert!(err(&o).contains("played"), "{}", err(&o));
    assert!(out.exists());
}

#[test]
fn headless_quits_on_q_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("play.mkv");
    let (o, took) = run(
        &mut headless(&[
            "play",
            "--duration",
            "300",
            "--output",
            out.to_str().unwrap(),
        ]),
        &[(1500, b"i"), (300, b"q")],
        Duration::from_secs(60),
    );
    assert_clean(&o);
    assert!(err(&o).contains("quit"), "{}", err(&o));
    assert!(took < Duration::from_secs(30), "{took:?}");
    assert!(out.exists());
}

#[test]
fn headless_ctrl_c_finishes_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("play.mkv");
    let child = headless(&[
        "play",
        "--duration",
        "300",
        "--output",
        out.to_str().unwrap(),
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_millis(2000));
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let t = Instant::now();
    let o = child.wait_with_output().unwrap();
    assert_clean(&o);
    assert!(err(&o).contains("Ctrl-C"), "{}", err(&o));
    assert!(t.elapsed() < Duration::from_secs(15));
    assert!(
        std::fs::metadata(&out).unwrap().len() > 1000,
        "the file is finalised"
    );
}

fn have_xvfb() -> bool {
    Command::new("xvfb-run")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Runs under `xvfb-run -a`, one Xvfb at a time (concurrent `-a` servers race
/// for a display number: CI once saw "Could not open display"); retried up to
/// three times when Xvfb itself failed to come up, which is not our failure.
fn xvfb(args: &[&str], script: &[(u64, &[u8])], timeout: Duration) -> Output {
    static ONE_SERVER: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _serial = ONE_SERVER.lock().unwrap_or_else(|p| p.into_inner());
    let mut last = None;
    for attempt in 0..4 {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(500 * attempt));
        }
        let mut c = Command::new("xvfb-run");
        c.args(["-a", "-s", "-screen 0 1280x800x24", bin()])
            .args(args);
        let (o, _) = run(&mut c, script, timeout);
        if !err(&o).contains("Could not open display") {
            return o;
        }
        last = Some(o);
    }
    last.unwrap()
}

#[test]
fn xvfb_window_quits_on_q() {
    if !have_xvfb() {
        eprintln!("skipped: xvfb-run is absent");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let shot = dir.path().join("shot.png");
    let o = xvfb(
        &[
            "play",
            "--compare",
            "--screenshot",
            shot.to_str().unwrap(),
            "--screenshot-frame",
            "10",
        ],
        &[
            (3000, b"c"),
            (300, b"c"),
            (300, b"s"),
            (300, b"m"),
            (300, b"q"),
        ],
        Duration::from_secs(60),
    );
    assert_clean(&o);
    let e = err(&o);
    assert!(!e.contains("headless"), "a window, not headless: {e}");
    assert!(e.contains("split-screen"), "{e}");
    let png = image::open(&shot).expect("screenshot is a PNG");
    assert_eq!((png.width(), png.height()), (640, 360), "320×180 ×2");
}

#[test]
fn xvfb_window_stops_at_eos() {
    let shared = require_shared!();
    if !have_xvfb() {
        eprintln!("skipped: xvfb-run is absent");
        return;
    }
    let clip = shared.join("clips/foreman_cif.mp4");
    let o = xvfb(
        &["play", clip.to_str().unwrap(), "--scale", "2"],
        &[],
        Duration::from_secs(90),
    );
    assert_clean(&o);
    assert!(err(&o).contains("played"), "{}", err(&o));
}

#[test]
fn bench_json_schema() {
    let shared = require_shared!();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let plot = dir.path().join("bench.png");
    let clip = shared.join("clips/foreman_cif.mp4");
    let model = shared.join("models/IMDN_RTC_x2.onnx");
    let o = Command::new(bin())
        .args([
            "bench",
            clip.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
            "--modes",
            "bicubic,int8",
        ])
        .args(["--frames", "3", "--input-size", "176x144", "--paced"])
        .args([
            "--json",
            json.to_str().unwrap(),
            "--plot",
            plot.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let e = err(&o);
    assert_clean(&o);
    assert!(o.stdout.is_empty(), "human output goes to stderr");
    assert!(e.contains("| mode |"), "{e}");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let clips = v["clips"].as_array().unwrap();
    assert_eq!(clips.len(), 1);
    let c = &clips[0];
    assert_eq!(c["frames"], 3);
    assert_eq!(c["scale"], 2);
    assert_eq!(c["input_size"], serde_json::json!([176, 144]));
    assert_eq!(c["output_size"], serde_json::json!([352, 288]));
    assert_eq!(c["ground_truth"], true);
    assert!(c["skipped"].is_array());
    let modes = c["modes"].as_array().unwrap();
    assert_eq!(
        modes
            .iter()
            .map(|m| m["mode"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["bicubic", "int8"]
    );
    for m in modes {
        assert!(m["fps"].as_f64().unwrap() > 0.0, "{m}");
        for k in ["p50", "p95", "p99", "max", "mean"] {
            assert!(m["latency_ms"][k].as_f64().unwrap() > 0.0, "{k}: {m}");
        }
        let paced = &m["paced"];
        let done = m["frames"].as_u64().unwrap();
        assert_eq!(done + paced["drops"].as_u64().unwrap(), 3, "{m}");
        assert!(paced["deadline_misses"].as_u64().unwrap() <= done);
        assert_eq!(m["latencies_ms"].as_array().unwrap().len() as u64, done);
        let q = &m["quality"];
        assert_eq!(q["psnr"].as_array().unwrap().len() as u64, done);
        let psnr = q["mean_psnr"].as_f64().unwrap();
        assert!((25.0..60.0).contains(&psnr), "{psnr}");
        assert!(q["mean_ssim"].as_f64().unwrap() <= 1.0);
        assert!(m["partitions"].is_array());
    }
    assert!(
        !modes[1]["partitions"].as_array().unwrap().is_empty(),
        "int8 reports its partitions"
    );
    assert!(image::open(&plot).is_ok(), "the plot is a PNG");
}
