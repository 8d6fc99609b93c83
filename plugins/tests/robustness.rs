//! Robustness of the `nawqsr` element in real pipelines: caps renegotiation
//! mid-stream, repeated state cycling, several instances in one process,
//! flushing seeks, EOS, and frame accounting (every input frame is output or a
//! QoS drop with its QOS message). Small frames and `mode=bicubic` or the
//! bundled ×2 model keep them fast; every wait is bounded.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use gst::prelude::*;

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstnawqsr::plugin_register_static().expect("nawqsr plugin registers");
    });
}

fn pipeline(desc: &str) -> gst::Pipeline {
    init();
    gst::parse::launch(desc)
        .unwrap_or_else(|e| panic!("{desc}: {e}"))
        .downcast::<gst::Pipeline>()
        .unwrap()
}

/// Counts buffers through a pad.
fn count_buffers(pad: &gst::Pad) -> Arc<AtomicU64> {
    let n = Arc::new(AtomicU64::new(0));
    let c = n.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        c.fetch_add(1, Ordering::Relaxed);
        gst::PadProbeReturn::Ok
    });
    n
}

/// Records (format, width, height) of the caps of every buffer through a pad.
fn record_sizes(pad: &gst::Pad) -> Arc<Mutex<Vec<(String, u32, u32)>>> {
    let v = Arc::new(Mutex::new(Vec::new()));
    let r = v.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, _| {
        let caps = pad.current_caps().expect("caps before buffers");
        let info = gst_video::VideoInfo::from_caps(&caps).unwrap();
        r.lock().unwrap().push((
            info.format().to_str().to_string(),
            info.width(),
            info.height(),
        ));
        gst::PadProbeReturn::Ok
    });
    v
}

/// Waits for EOS (or fails on an error or after `secs`).
fn wait_eos(p: &gst::Pipeline, secs: u64, what: &str) {
    let msg = p
        .bus()
        .unwrap()
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(secs),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .unwrap_or_else(|| panic!("{what}: no EOS within {secs} s"));
    if let gst::MessageView::Error(e) = msg.view() {
        panic!("{what}: {} ({:?})", e.error(), e.debug());
    }
}

fn wait_until(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "{what}: not within {secs} s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn caps_change_mid_stream_resizes_every_frame() {
    let p = pipeline(
        "videotestsrc pattern=ball ! capsfilter name=cf caps=video/x-raw,format=I420,width=320,height=180,framerate=30/1 \
         ! nawqsr name=sr mode=bicubic scale=2 ! fakesink name=sink sync=false",
    );
    let sr = p.by_name("sr").unwrap();
    let ins = record_sizes(&sr.static_pad("sink").unwrap());
    let outs = record_sizes(&sr.static_pad("src").unwrap());
    let cf = p.by_name("cf").unwrap();
    p.set_state(gst::State::Playing).unwrap();
    let steps = [
        ("I420", 320, 180),
        ("I420", 640, 360),
        ("RGB", 640, 360),
        ("NV12", 160, 90),
        ("RGB", 320, 180),
    ];
    for (i, (f, w, h)) in steps.into_iter().enumerate() {
        if i > 0 {
            let caps = gst::Caps::builder("video/x-raw")
                .field("format", f)
                .field("width", w as i32)
                .field("height", h as i32)
                .field("framerate", gst::Fraction::new(30, 1))
                .build();
            cf.set_property("caps", &caps);
        }
        // At least 3 frames at the new size have come out.
        wait_until(60, &format!("frames at {f} {w}x{h}"), || {
            outs.lock()
                .unwrap()
                .iter()
                .filter(|o| **o == (f.to_string(), 2 * w, 2 * h))
                .count()
                >= 3
        });
    }
    p.send_event(gst::event::Eos::new());
    wait_eos(&p, 30, "caps changes");
    p.set_state(gst::State::Null).unwrap();
    let (ins, outs) = (ins.lock().unwrap().clone(), outs.lock().unwrap().clone());
    assert_eq!(ins.len(), outs.len(), "one output per input frame");
    for (k, (i, o)) in ins.iter().zip(&outs).enumerate() {
        assert_eq!(
            (&o.0, o.1, o.2),
            (&i.0, 2 * i.1, 2 * i.2),
            "frame {k}: output {o:?} for input {i:?}"
        );
    }
    let sizes: std::collections::BTreeSet<_> = ins.iter().collect();
    assert_eq!(
        sizes.len(),
        steps.len(),
        "every step was streamed: {sizes:?}"
    );
}

#[test]
fn playing_null_playing_100_times_with_the_bundled_model() {
    // The bundled ×2 model (hybrid, its schedule) starts worker threads: a leak
    // per cycle would show in /proc/self/task.
    let p = pipeline(
        "videotestsrc is-live=true ! video/x-raw,format=I420,width=48,height=32,framerate=100/1 \
         ! nawqsr name=sr threads=2 ! fakesink sync=false",
    );
    let out = count_buffers(&p.by_name("sr").unwrap().static_pad("src").unwrap());
    let mut first = None;
    let t = Instant::now();
    for cycle in 0..100 {
        let before = out.load(Ordering::Relaxed);
        p.set_state(gst::State::Playing).unwrap();
        wait_until(60, &format!("cycle {cycle}: a frame out"), || {
            out.load(Ordering::Relaxed) > before
        });
        if let Some(m) = p.bus().unwrap().pop_filtered(&[gst::MessageType::Error]) {
            panic!("cycle {cycle}: {m:?}");
        }
        assert_eq!(
            p.set_state(gst::State::Null).unwrap(),
            gst::StateChangeSuccess::Success,
            "cycle {cycle}: NULL"
        );
        // Steady state after the first cycles (lazily started pools, caches).
        if cycle == 4 {
            first = Some((threads(), fds()));
        }
        assert!(
            t.elapsed() < Duration::from_secs(240),
            "cycle {cycle}: 100 cycles should not take minutes (deadlock?)"
        );
    }
    let (t0, f0) = first.unwrap();
    let (t1, f1) = (threads(), fds());
    println!("state cycling: threads {t0} → {t1}, fds {f0} → {f1} after 100 cycles");
    assert!(t1 <= t0, "threads grew from {t0} to {t1} over 95 cycles");
    assert!(f1 <= f0, "fds grew from {f0} to {f1} over 95 cycles");
}

#[test]
fn four_instances_on_a_tee_and_two_pipelines_at_once() {
    init();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let baseline = threads();
    let branch = |i: usize| {
        format!(
            "t. ! queue ! nawqsr name=sr{i} ! video/x-raw,width=128,height=96 ! fakesink name=sink{i} sync=false "
        )
    };
    let desc = format!(
        "videotestsrc num-buffers=40 ! video/x-raw,format=I420,width=64,height=48,framerate=30/1 ! tee name=t {}",
        (0..4).map(branch).collect::<String>()
    );
    let pipes = [pipeline(&desc), pipeline(&desc)];
    let counts: Vec<Vec<(Arc<AtomicU64>, Arc<AtomicU64>)>> = pipes
        .iter()
        .map(|p| {
            (0..4)
                .map(|i| {
                    let sr = p.by_name(&format!("sr{i}")).unwrap();
                    (
                        count_buffers(&sr.static_pad("sink").unwrap()),
                        count_buffers(&sr.static_pad("src").unwrap()),
                    )
                })
                .collect()
        })
        .collect();
    for p in &pipes {
        p.set_state(gst::State::Playing).unwrap();
    }
    // Sample the thread count while both run.
    let max_threads = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (m, s) = (max_threads.clone(), stop.clone());
        std::thread::spawn(move || {
            while s.load(Ordering::Relaxed) == 0 {
                m.fetch_max(threads() as u64, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    for (k, p) in pipes.iter().enumerate() {
        wait_eos(p, 120, &format!("pipeline {k}"));
    }
    stop.store(1, Ordering::Relaxed);
    sampler.join().unwrap();
    for p in &pipes {
        p.set_state(gst::State::Null).unwrap();
    }
    for (k, c) in counts.iter().enumerate() {
        for (i, (inp, out)) in c.iter().enumerate() {
            assert_eq!(
                inp.load(Ordering::Relaxed),
                40,
                "pipeline {k} sr{i}: frames in"
            );
            assert_eq!(
                out.load(Ordering::Relaxed),
                40,
                "pipeline {k} sr{i}: frames out"
            );
        }
    }
    // 8 instances, threads = 0 (the default): every codec uses the process-wide
    // pool of one worker per core, plus its own dispatcher thread. GStreamer
    // adds one streaming thread per queue and source. What must not happen is
    // workers per instance (8 × cores) or growth per frame or caps.
    let peak = max_threads.load(Ordering::Relaxed) as usize;
    let instances = 8;
    let streaming = 2 * (4 + 1) + 4; // queues + sources per pipeline, plus bus/clock helpers
    let bound = baseline + cores + instances + streaming;
    println!(
        "8 instances in 2 pipelines: {peak} threads at peak (baseline {baseline}, {cores} cores, bound {bound})"
    );
    assert!(peak <= bound, "{peak} threads (expected at most {bound})");
}

#[test]
fn flushing_seeks_while_playing_then_eos_delivers_every_frame_of_the_segment() {
    let p = pipeline(
        "videotestsrc ! video/x-raw,format=I420,width=32,height=24,framerate=30/1 \
         ! nawqsr name=sr mode=bicubic ! queue ! fakesink name=sink sync=false",
    );
    let sink = p.by_name("sink").unwrap();
    let pts = Arc::new(Mutex::new(Vec::<gst::ClockTime>::new()));
    {
        let pts = pts.clone();
        sink.static_pad("sink")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                if let Some(b) = info.buffer() {
                    pts.lock().unwrap().push(b.pts().unwrap());
                }
                gst::PadProbeReturn::Ok
            });
    }
    p.set_state(gst::State::Paused).unwrap();
    p.state(gst::ClockTime::from_seconds(30)).0.unwrap();
    p.set_state(gst::State::Playing).unwrap();
    let seek = |start: u64, stop: Option<u64>| {
        p.seek(
            1.0,
            gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE,
            gst::SeekType::Set,
            gst::ClockTime::from_mseconds(start),
            if stop.is_some() {
                gst::SeekType::Set
            } else {
                gst::SeekType::None
            },
            stop.map(gst::ClockTime::from_mseconds),
        )
        .unwrap();
    };
    for start in [5000u64, 1000, 20000, 300] {
        let n = pts.lock().unwrap().len();
        seek(start, None);
        wait_until(30, &format!("frames after a seek to {start} ms"), || {
            pts.lock()
                .unwrap()
                .iter()
                .skip(n)
                .any(|t| t.mseconds() >= start + 100)
        });
    }
    // A last seek with a stop: exactly its frames, then EOS.
    let n = pts.lock().unwrap().len();
    seek(2000, Some(3000));
    wait_eos(&p, 30, "seek to [2 s, 3 s]");
    p.set_state(gst::State::Null).unwrap();
    let after: Vec<u64> = pts.lock().unwrap()[n..]
        .iter()
        .map(|t| t.mseconds())
        .collect();
    // Frames still in flight before the flush may have arrived just before the
    // new segment's: keep only the frames from the first one at 2 s.
    let start = after
        .iter()
        .position(|&t| t == 2000)
        .expect("the first frame at 2 s");
    let seg: Vec<u64> = after[start..].to_vec();
    let expect: Vec<u64> = (60..90).map(|i| i * 1000 / 30).collect();
    assert_eq!(
        seg, expect,
        "every frame of [2 s, 3 s) once, in order, before EOS"
    );
}

#[test]
fn every_input_frame_is_output_or_a_counted_qos_drop() {
    // A live source and a sink that runs late (identity sleeps 45 ms per frame
    // at 30 fps): the sink's QoS events make the element drop late frames.
    let p = pipeline(
        "videotestsrc is-live=true num-buffers=120 ! video/x-raw,format=I420,width=32,height=24,framerate=30/1 \
         ! nawqsr name=sr mode=bicubic stats-interval=1 ! identity sleep-time=45000 ! fakesink sync=true qos=true",
    );
    let sr = p.by_name("sr").unwrap();
    let frames_in = count_buffers(&sr.static_pad("sink").unwrap());
    let frames_out = count_buffers(&sr.static_pad("src").unwrap());
    let bus = p.bus().unwrap();
    p.set_state(gst::State::Playing).unwrap();
    let (mut qos_msgs, mut qos_dropped, mut stats_drops) = (0u64, 0u64, 0u64);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "no EOS within 120 s");
        let Some(m) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else {
            continue;
        };
        match m.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("{} ({:?})", e.error(), e.debug()),
            gst::MessageView::Qos(q) if m.src() == Some(sr.upcast_ref()) => {
                qos_msgs += 1;
                if let (_, gst::GenericFormattedValue::Buffers(Some(d))) = q.stats() {
                    qos_dropped = qos_dropped.max(*d);
                }
            }
            gst::MessageView::Element(e) if m.src() == Some(sr.upcast_ref()) => {
                if let Some(s) = e.structure()
                    && s.name() == "nawqsr-stats"
                {
                    stats_drops = s.get::<u64>("drops").unwrap();
                }
            }
            _ => {}
        }
    }
    p.set_state(gst::State::Null).unwrap();
    let (i, o) = (
        frames_in.load(Ordering::Relaxed),
        frames_out.load(Ordering::Relaxed),
    );
    println!(
        "accounting: {i} in, {o} out, {qos_msgs} QOS messages (dropped {qos_dropped}), stats drops {stats_drops}"
    );
    assert_eq!(i, 120, "frames into the element");
    assert!(
        qos_msgs > 0,
        "a sink 50 % behind real time makes the element drop frames"
    );
    assert_eq!(qos_msgs, qos_dropped, "one QOS message per drop");
    assert_eq!(i, o + qos_msgs, "every frame is output or a QoS drop");
    // The last stats message may precede the last drop; it never over-counts.
    assert!(
        stats_drops <= qos_msgs && stats_drops > 0,
        "stats drops {stats_drops}"
    );
}
