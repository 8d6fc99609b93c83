//! Runtime telemetry: what the dispatcher and the units report, summarised by
//! [`Stats`] (`Codec::stats()`). Fine-grained events also go to `tracing` spans
//! (`frame`, `work_item`), so a subscriber can reconstruct the schedule.
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

/// The NPU's two processing units (§5: INT8 → HVX, A16W8 → HTA).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Unit {
    Int8 = 0,
    A16w8 = 1,
}

impl Unit {
    pub const ALL: [Unit; 2] = [Unit::Int8, Unit::A16w8];

    pub fn name(self) -> &'static str {
        match self {
            Unit::Int8 => "int8",
            Unit::A16w8 => "a16w8",
        }
    }
}

/// Per-frame latency percentiles (milliseconds, submit → output ready).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Latency {
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct UnitStats {
    pub unit: &'static str,
    /// Work items executed (a coalesced item counts once).
    pub items: u64,
    /// Nodes (layer × band) executed.
    pub nodes: u64,
    /// Worker time spent on this unit's items.
    pub busy_s: f64,
    /// Largest number of items waiting in the unit's queue.
    pub queue_max: usize,
}

/// One partition of the plan: consecutive conv layers with the same bitwidth
/// and DRE flag (§4.3), plus the non-conv layers that follow them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PartitionStats {
    pub index: usize,
    pub unit: &'static str,
    pub dre: bool,
    /// First and last layer index.
    pub layers: (usize, usize),
    /// Worker time spent on its nodes, over all frames.
    pub time_s: f64,
}

/// A snapshot of the runtime's counters since the codec was built (or since
/// `reset_stats`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// Frames finished (successfully or not).
    pub frames: u64,
    /// Frames that ended in an error (their output is an error, not a frame).
    pub failed_frames: u64,
    /// Frames `try_submit` refused because the input buffer was full.
    pub rejected_frames: u64,
    pub latency: Latency,
    pub units: Vec<UnitStats>,
    pub partitions: Vec<PartitionStats>,
    /// Work items whose partition differs from the partition of the item
    /// that produced their input (a hand-over between units, §5.2).
    pub partition_switches: u64,
    /// Mean time from "ready" (its last dependency completed) to "started on a
    /// worker" of those items: the dispatcher round trip a switch costs.
    pub switch_latency_us: f64,
    /// Same, over all work items.
    pub dispatch_latency_us: f64,
    /// RQU work (§4.3): per-band min/max partials, the barrier combine and
    /// Eq. (1) — time summed over threads.
    pub dre_s: f64,
    /// `dre_s` over the total worker time.
    pub dre_fraction: f64,
    /// Worker (wall) time over all items.
    pub worker_s: f64,
    /// Worker thread CPU time over all items: the work itself, independent of
    /// other processes competing for the cores.
    pub worker_cpu_s: f64,
    /// Largest input-buffer / playback-buffer occupancy seen (streams).
    pub input_queue_max: usize,
    pub playback_queue_max: usize,
    /// Frames in flight in the dispatcher, at most.
    pub in_flight_max: usize,
    /// Network MACs per second of wall time with at least one frame in flight.
    pub macs_per_s: f64,
    /// Worker (wall) seconds per graph layer, summed over bands and threads
    /// (the RQU's range partials included): what `profiler` divides among the
    /// layers (FYE-SR's per-layer timing).
    pub layer_s: Vec<f64>,
    /// Temporal reuse: output patches taken from an earlier frame, and output
    /// patches of all frames counted (2D patches of `REUSE_PATCH` through the
    /// synchronous API, row bands through streams; frames run without reuse
    /// are not counted).
    pub reused_patches: u64,
    /// Difficulty routing: output patches that took the cheap path (of
    /// `patches`; reused patches are neither).
    pub routed_patches: u64,
    pub patches: u64,
    /// Luma models on YUV frames (issue 17): seconds spent resizing the
    /// chroma planes (on the caller's side, beside the workers), and frames.
    pub chroma_s: f64,
    pub chroma_frames: u64,
}

/// Running patch counts of the synchronous API (and streams' bands), for
/// per-frame deltas: see [`Stats::reused_patches`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PatchCounts {
    pub reused: u64,
    pub routed: u64,
    pub patches: u64,
}

impl PatchCounts {
    /// Counts since `earlier`.
    pub fn since(&self, earlier: &PatchCounts) -> PatchCounts {
        PatchCounts {
            reused: self.reused.saturating_sub(earlier.reused),
            routed: self.routed.saturating_sub(earlier.routed),
            patches: self.patches.saturating_sub(earlier.patches),
        }
    }
}

impl Stats {
    /// Fraction of output patches routed to the cheap path (0 when none were
    /// counted).
    pub fn routed_fraction(&self) -> f64 {
        if self.patches == 0 {
            0.0
        } else {
            self.routed_patches as f64 / self.patches as f64
        }
    }

    /// Fraction of output patches reused (0 when none were counted).
    pub fn reused_fraction(&self) -> f64 {
        if self.patches == 0 {
            0.0
        } else {
            self.reused_patches as f64 / self.patches as f64
        }
    }
}

/// Accumulators behind [`Stats`], shared by the dispatcher, the workers and
/// the streams.
#[derive(Default)]
pub(crate) struct Telemetry {
    inner: Mutex<Acc>,
}

#[derive(Default)]
struct Acc {
    frames: u64,
    failed: u64,
    rejected: u64,
    latencies: VecDeque<f64>,
    unit_items: [u64; 2],
    unit_nodes: [u64; 2],
    unit_busy: [f64; 2],
    unit_queue_max: [usize; 2],
    partition_time: Vec<f64>,
    partitions: Vec<PartitionStats>,
    switches: u64,
    switch_lat: f64,
    items: u64,
    dispatch_lat: f64,
    dre_s: f64,
    worker_s: f64,
    worker_cpu_s: f64,
    input_max: usize,
    playback_max: usize,
    in_flight_max: usize,
    macs: f64,
    busy_wall: f64,
    layer_s: Vec<f64>,
    reused_patches: u64,
    routed_patches: u64,
    patches: u64,
    chroma_s: f64,
    chroma_frames: u64,
}

/// Latency window: percentiles over the most recent frames.
const WINDOW: usize = 4096;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

impl Telemetry {
    fn with<R>(&self, f: impl FnOnce(&mut Acc) -> R) -> R {
        // A panic elsewhere must not disable telemetry: take the data anyway.
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    pub fn set_partitions(&self, parts: Vec<PartitionStats>) {
        self.with(|a| {
            a.partition_time = vec![0.0; parts.len()];
            a.partitions = parts;
        });
    }

    pub fn frame_done(&self, latency: Duration, ok: bool, macs: u64) {
        self.with(|a| {
            a.frames += 1;
            if !ok {
                a.failed += 1;
            }
            a.macs += macs as f64;
            if a.latencies.len() == WINDOW {
                a.latencies.pop_front();
            }
            a.latencies.push_back(latency.as_secs_f64() * 1e3);
        });
    }

    pub fn rejected(&self) {
        self.with(|a| a.rejected += 1);
    }

    #[allow(clippy::too_many_arguments)]
    pub fn item_done(
        &self,
        unit: Unit,
        nodes: usize,
        busy: f64,
        cpu: f64,
        per_partition: &[(usize, f64)],
        per_layer: &[(usize, f64)],
        dre: f64,
        dispatch_latency: f64,
        switch: bool,
    ) {
        self.with(|a| {
            let u = unit as usize;
            a.unit_items[u] += 1;
            a.unit_nodes[u] += nodes as u64;
            a.unit_busy[u] += busy;
            a.worker_s += busy;
            a.worker_cpu_s += cpu;
            a.dre_s += dre;
            for &(p, t) in per_partition {
                if let Some(x) = a.partition_time.get_mut(p) {
                    *x += t;
                }
            }
            for &(l, t) in per_layer {
                if a.layer_s.len() <= l {
                    a.layer_s.resize(l + 1, 0.0);
                }
                a.layer_s[l] += t;
            }
            a.items += 1;
            a.dispatch_lat += dispatch_latency;
            if switch {
                a.switches += 1;
                a.switch_lat += dispatch_latency;
            }
        });
    }

    pub fn dre_inline(&self, secs: f64) {
        self.with(|a| a.dre_s += secs);
    }

    pub fn queues(&self, unit_depth: [usize; 2], in_flight: usize) {
        self.with(|a| {
            for (m, d) in a.unit_queue_max.iter_mut().zip(unit_depth) {
                *m = (*m).max(d);
            }
            a.in_flight_max = a.in_flight_max.max(in_flight);
        });
    }

    pub fn buffers(&self, input: usize, playback: usize) {
        self.with(|a| {
            a.input_max = a.input_max.max(input);
            a.playback_max = a.playback_max.max(playback);
        });
    }

    pub fn reuse(&self, reused: usize, patches: usize) {
        self.with(|a| {
            a.reused_patches += reused as u64;
            a.patches += patches as u64;
        });
    }

    /// One frame's chroma resize (luma models on YUV frames).
    pub fn chroma(&self, secs: f64) {
        self.with(|a| {
            a.chroma_s += secs;
            a.chroma_frames += 1;
        });
    }

    /// Patches routed to the cheap path (counted with their frame's
    /// [`Telemetry::reuse`]).
    pub fn routed(&self, routed: usize) {
        self.with(|a| a.routed_patches += routed as u64);
    }

    /// Patch counts so far: cheap, for per-frame deltas.
    pub fn patch_counts(&self) -> PatchCounts {
        self.with(|a| PatchCounts {
            reused: a.reused_patches,
            routed: a.routed_patches,
            patches: a.patches,
        })
    }

    pub fn busy_wall(&self, secs: f64) {
        self.with(|a| a.busy_wall += secs);
    }

    pub fn reset(&self) {
        self.with(|a| {
            let parts = std::mem::take(&mut a.partitions);
            *a = Acc::default();
            a.partition_time = vec![0.0; parts.len()];
            a.partitions = parts;
        });
    }

    pub fn snapshot(&self) -> Stats {
        self.with(|a| {
            let mut lat: Vec<f64> = a.latencies.iter().copied().collect();
            lat.sort_by(f64::total_cmp);
            let mean = if lat.is_empty() {
                0.0
            } else {
                lat.iter().sum::<f64>() / lat.len() as f64
            };
            Stats {
                frames: a.frames,
                failed_frames: a.failed,
                rejected_frames: a.rejected,
                latency: Latency {
                    p50_ms: percentile(&lat, 0.50),
                    p95_ms: percentile(&lat, 0.95),
                    p99_ms: percentile(&lat, 0.99),
                    mean_ms: mean,
                },
                units: Unit::ALL
                    .iter()
                    .map(|&u| UnitStats {
                        unit: u.name(),
                        items: a.unit_items[u as usize],
                        nodes: a.unit_nodes[u as usize],
                        busy_s: a.unit_busy[u as usize],
                        queue_max: a.unit_queue_max[u as usize],
                    })
                    .collect(),
                partitions: a
                    .partitions
                    .iter()
                    .zip(&a.partition_time)
                    .map(|(p, &t)| PartitionStats {
                        time_s: t,
                        ..p.clone()
                    })
                    .collect(),
                partition_switches: a.switches,
                switch_latency_us: if a.switches > 0 {
                    a.switch_lat / a.switches as f64 * 1e6
                } else {
                    0.0
                },
                dispatch_latency_us: if a.items > 0 {
                    a.dispatch_lat / a.items as f64 * 1e6
                } else {
                    0.0
                },
                dre_s: a.dre_s,
                dre_fraction: if a.worker_s > 0.0 {
                    a.dre_s / a.worker_s
                } else {
                    0.0
                },
                worker_s: a.worker_s,
                worker_cpu_s: a.worker_cpu_s,
                input_queue_max: a.input_max,
                playback_queue_max: a.playback_max,
                in_flight_max: a.in_flight_max,
                macs_per_s: if a.busy_wall > 0.0 {
                    a.macs / a.busy_wall
                } else {
                    0.0
                },
                layer_s: a.layer_s.clone(),
                reused_patches: a.reused_patches,
                routed_patches: a.routed_patches,
                patches: a.patches,
                chroma_s: a.chroma_s,
                chroma_frames: a.chroma_frames,
            }
        })
    }
}
