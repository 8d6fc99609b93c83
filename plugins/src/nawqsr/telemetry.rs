//! Telemetry of the element: per-frame processing times for the latency query
//! (a median over the last frames) and the `nawqsr-stats` element message
//! (frames, fps, latency percentiles, mode, QoS drops, mode switches).
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use nawqsr_codec::runtime::Mode;

/// Frames whose processing times answer the latency query (a median over them).
pub(super) const LATENCY_WINDOW: usize = 32;
/// Frames measured before the element tells the pipeline its latency changed.
pub(super) const LATENCY_MIN_SAMPLES: usize = 8;

/// Processing times and counters for the latency query and the stats messages.
#[derive(Default)]
pub(super) struct Timing {
    /// The last `LATENCY_WINDOW` per-frame processing times.
    pub(super) recent: VecDeque<Duration>,
    /// Times since the last stats message, and when that window started.
    pub(super) window: Vec<Duration>,
    pub(super) window_start: Option<Instant>,
    pub(super) frames: u64,
    pub(super) drops: u64,
    pub(super) switches: u64,
    /// What the last latency query answered (our share only).
    pub(super) reported: Option<Duration>,
    /// The latest PIQE sample of an output frame, and the time all samples and
    /// all frames took, for the sampler's measured cost.
    pub(super) piqe: Option<f64>,
    pub(super) piqe_time: Duration,
    pub(super) frame_time: Duration,
    /// Output patches reused, and all output patches, since the last stats
    /// message.
    pub(super) window_reused: u64,
    /// ... and taken by difficulty routing's cheap path.
    pub(super) window_routed: u64,
    pub(super) window_patches: u64,
}

impl Timing {
    pub(super) fn median(&self) -> Duration {
        let mut v: Vec<Duration> = self.recent.iter().copied().collect();
        v.sort_unstable();
        v.get(v.len() / 2).copied().unwrap_or_default()
    }

    pub(super) fn record(&mut self, dt: Duration) {
        if self.recent.len() == LATENCY_WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(dt);
        self.window.push(dt);
        self.frames += 1;
        self.frame_time += dt;
    }

    /// True when the pipeline should re-query latency: the median grew by more
    /// than 25 % (and 1 ms) over what the last latency query answered, or fell
    /// below half of it. Small swings are not worth a re-configuration of a live
    /// pipeline; answering a little high only adds delay, answering low drops frames.
    pub(super) fn latency_changed(&self) -> bool {
        let Some(reported) = self.reported else {
            return false;
        };
        if self.recent.len() < LATENCY_MIN_SAMPLES {
            return false;
        }
        let m = self.median();
        let grew = m > reported + Duration::from_millis(1) && m * 4 > reported * 5;
        let fell = m * 2 < reported;
        grew || fell
    }
}

fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1e3
}

/// The `nawqsr-stats` structure for the frames since the last one; starts the
/// next window.
/// The front point running (when the deadline controller is on).
#[derive(Clone, Copy, Debug)]
pub(super) struct PlanInfo {
    pub(super) point: usize,
    pub(super) predicted_ms: f64,
    pub(super) psnr: f64,
    pub(super) target_ms: f64,
}

pub(super) fn stats_structure(
    timing: &mut Timing,
    mode: Mode,
    plan: Option<PlanInfo>,
) -> gst::Structure {
    let mut times = std::mem::take(&mut timing.window);
    times.sort_unstable();
    let elapsed = timing
        .window_start
        .map(|t| t.elapsed().as_secs_f64())
        .unwrap_or(0.0);
    let fps = if elapsed > 0.0 {
        times.len() as f64 / elapsed
    } else {
        0.0
    };
    timing.window_start = Some(Instant::now());
    let (reused, routed, patches) = (
        timing.window_reused,
        timing.window_routed,
        timing.window_patches,
    );
    (
        timing.window_reused,
        timing.window_routed,
        timing.window_patches,
    ) = (0, 0, 0);
    let share = |n: u64| {
        if patches == 0 {
            0.0
        } else {
            n as f64 / patches as f64
        }
    };
    let b = gst::Structure::builder("nawqsr-stats");
    // On the front: which point (-1: none), its profiled ms and PSNR, the target.
    let b = match plan {
        Some(p) => b
            .field("plan", p.point as i32)
            .field("plan-predicted-ms", p.predicted_ms)
            .field("plan-psnr", p.psnr)
            .field("latency-target-ms", p.target_ms),
        None => b.field("plan", -1i32),
    };
    b.field("frames", timing.frames)
        .field("fps", fps)
        .field("latency-p50-ms", percentile_ms(&times, 0.5))
        .field("latency-p99-ms", percentile_ms(&times, 0.99))
        .field("mode", mode.name())
        .field("drops", timing.drops)
        .field("switches", timing.switches)
        // Temporal reuse: the fraction of output patches taken from the
        // previous frame in this window.
        .field("reused", share(reused))
        // Difficulty routing: the fraction that took the cheap path.
        .field("routed", share(routed))
        // PIQE of the latest sampled output (−1: none yet or sampling off) and
        // the sampler's time as a fraction of the frames' processing time.
        .field("piqe", timing.piqe.unwrap_or(-1.0))
        .field(
            "piqe-cost",
            if timing.frame_time.is_zero() {
                0.0
            } else {
                timing.piqe_time.as_secs_f64() / timing.frame_time.as_secs_f64()
            },
        )
        .build()
}
