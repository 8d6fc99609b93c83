//! Soak: a live 30 fps H.264 stream, encoded and decoded in-process, through
//! `nawqsr` (the bundled ×2 model, hybrid) to a synchronised sink, for
//! `NAWQSR_SOAK_MINUTES` (default 1: the CI version; `scripts/soak.sh` runs 30).
//!
//! Counts frames into and out of the element with pad probes and the drops
//! with the element's QOS messages; samples this process's RSS and open fds
//! every 10 s; prints exactly one summary line:
//!
//! ```text
//! soak: minutes M frames_in N frames_out N drops N rss_mb_at_1min X rss_mb_last Y rss_mb_max Z fds_first A fds_last B
//! ```
//!
//! Fails if a frame is lost beyond the counted drops, if the fd count grows,
//! or (runs of 5 minutes or more) if RSS grows by more than 2 MB after the
//! first minute. This is the only test of its binary, so the process's RSS and
//! fds are the stream's alone.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use gst::prelude::*;

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstnawqsr::plugin_register_static().expect("nawqsr plugin registers");
    });
}

fn rss_mb() -> f64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: f64 = s.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096.0 / (1024.0 * 1024.0)
}

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn count(pad: &gst::Pad) -> Arc<AtomicU64> {
    let n = Arc::new(AtomicU64::new(0));
    let c = n.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        c.fetch_add(1, Ordering::Relaxed);
        gst::PadProbeReturn::Ok
    });
    n
}

#[test]
fn soak_live_h264_through_nawqsr() {
    init();
    for f in ["x264enc", "avdec_h264", "h264parse"] {
        if gst::ElementFactory::find(f).is_none() {
            eprintln!(
                "skipping: GStreamer element {f} not installed (scripts/setup.sh installs it)"
            );
            return;
        }
    }
    let minutes: f64 = std::env::var("NAWQSR_SOAK_MINUTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    let p = gst::parse::launch(
        "videotestsrc is-live=true pattern=ball ! video/x-raw,format=I420,width=160,height=96,framerate=30/1 \
         ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 ! h264parse ! avdec_h264 \
         ! nawqsr name=sr threads=2 ! fakesink sync=true qos=true",
    )
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sr = p.by_name("sr").unwrap();
    let frames_in = count(&sr.static_pad("sink").unwrap());
    let frames_out = count(&sr.static_pad("src").unwrap());
    let bus = p.bus().unwrap();
    p.set_state(gst::State::Playing).unwrap();

    let t0 = Instant::now();
    let end = t0 + Duration::from_secs_f64(minutes * 60.0);
    let mut next_sample = t0 + Duration::from_secs(10);
    let (mut drops, mut rss_1min, mut rss_max) = (0u64, None, 0f64);
    let mut fds_first = None;
    let (mut rss_last, mut fds_last) = (rss_mb(), fds());
    while Instant::now() < end {
        if let Some(m) = bus.timed_pop(gst::ClockTime::from_mseconds(200)) {
            match m.view() {
                gst::MessageView::Error(e) => {
                    panic!("soak: {} ({:?})", e.error(), e.debug())
                }
                gst::MessageView::Qos(_) if m.src() == Some(sr.upcast_ref()) => drops += 1,
                _ => {}
            }
        }
        if Instant::now() >= next_sample {
            next_sample += Duration::from_secs(10);
            rss_last = rss_mb();
            fds_last = fds();
            rss_max = rss_max.max(rss_last);
            // The first sample is after 10 s of streaming: pools, codec and
            // decoder are set up by then.
            fds_first.get_or_insert(fds_last);
            if rss_1min.is_none() && t0.elapsed() >= Duration::from_secs(60) {
                rss_1min = Some(rss_last);
            }
        }
    }
    // EOS: every frame in the pipeline drains through the element.
    p.send_event(gst::event::Eos::new());
    loop {
        let m = bus
            .timed_pop(gst::ClockTime::from_seconds(30))
            .expect("soak: EOS within 30 s");
        match m.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("soak: {} ({:?})", e.error(), e.debug()),
            gst::MessageView::Qos(_) if m.src() == Some(sr.upcast_ref()) => drops += 1,
            _ => {}
        }
    }
    p.set_state(gst::State::Null).unwrap();
    let (i, o) = (
        frames_in.load(Ordering::Relaxed),
        frames_out.load(Ordering::Relaxed),
    );
    let rss_1min = rss_1min.unwrap_or(rss_last);
    let fds_first = fds_first.unwrap_or(fds_last);
    println!(
        "soak: minutes {minutes} frames_in {i} frames_out {o} drops {drops} rss_mb_at_1min {rss_1min:.1} \
         rss_mb_last {rss_last:.1} rss_mb_max {rss_max:.1} fds_first {fds_first} fds_last {fds_last}"
    );
    assert!(
        i as f64 >= minutes * 60.0 * 30.0 * 0.9,
        "soak: only {i} frames in"
    );
    assert_eq!(
        i,
        o + drops,
        "soak: frames lost beyond the counted QoS drops"
    );
    assert!(
        fds_last <= fds_first,
        "soak: fds grew from {fds_first} to {fds_last}"
    );
    if minutes >= 5.0 {
        assert!(
            rss_last - rss_1min <= 2.0,
            "soak: RSS grew {:.1} MB after the first minute",
            rss_last - rss_1min
        );
    }
}
