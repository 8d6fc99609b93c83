//! The dispatcher (§4.3; the Q6 / NPU-controller role) and the two units' workers.
//!
//! The dispatcher's state (`Dispatcher`, behind a lock) owns the plan's
//! partitions, the frames in flight and the patch queue. It turns each frame
//! into a task graph of (layer, band) nodes (`engine::tiles`), and hands work
//! items to the **INT8** and **A16W8** units, one crossbeam queue each. A worker
//! that finishes an item records it and releases whatever it unblocked itself,
//! under the lock (`complete`), then usually finds its next item in its own
//! queue: no thread wakes per completion. The dispatcher thread takes jobs,
//! streams and shutdown from the API and starts frames. Scheduling is a
//! dependency-driven wavefront: the lowest band that can advance goes first, so
//! the top bands run deep into the network while lower bands are still at the
//! first layers, and up to `max_in_flight` frames overlap so that the units stay
//! busy across barriers (global pooling, DRE ranges).
//!
//! - **Partitions** (§4.3): runs of consecutive conv layers with the same
//!   bitwidth and DRE flag; the non-conv layers after a conv belong to its
//!   partition. A partition maps to the unit of its bitwidth.
//! - **Coalescing** (§4.3: "the scheduling of consecutive layers that need to
//!   interact with the same components is coalesced"): a work item carries a
//!   chain of nodes of one band and one partition — each next node's other
//!   dependencies already done — so a band crosses several layers in one hand-over.
//! - **RQU** (`rqu`): band min/max partials come back with the completions; the
//!   range barrier completes inline here; DRE bands then carry their ⟨s, z⟩.
//! - **Threads**: with 2 cores there are 2 workers; each has a home unit and
//!   pulls from the other unit's queue when its own is empty (ARCHITECTURE.md).
//!   A codec asked for "one worker per core" (threads = 0, the default) uses the
//!   process-wide pool, one worker per core shared by every codec in the
//!   process (several elements in a pipeline, several pipelines): a work item
//!   carries its owner (engine, plan, where its completion goes), so any worker
//!   runs any codec's items. An explicit thread count gets private workers.
//! - **Exact temporal reuse of streams** (issue 18; NEMO without its lossy
//!   anchors): with `reuse` on, each stream keeps its last finished frame's
//!   input and output bands; a new frame of the same size takes every output
//!   band whose receptive LR rows are bit-identical to that input and skips the
//!   nodes only those bands needed (`engine::tiles::reuse`). Comparing against
//!   the cached frame's own input keeps it exact whichever earlier frame the
//!   cache holds (frames overlap in flight). Synchronous jobs reuse in 2D
//!   patches one level up (`runtime::reuse`, `Codec::upscale_rgb`).
//! - **Failures**: a worker's error or panic (caught) fails its frame, which is
//!   reported to whoever waits for it; the dispatcher never hangs on it. If the
//!   dispatcher itself dies, every waiter is woken and sees an error.
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, select, unbounded};
use ringbuf::traits::{Consumer, Observer, Producer};
use ringbuf::{HeapCons, HeapProd};

use super::buffers::StreamShared;
use super::buffers::{InFrame, OutFrame, Timestamp, Upscaled};
use super::telemetry::{PartitionStats, Telemetry, Unit};
use crate::engine::tiles::{
    FrameInput, FrameTiles, NodeKind, Reused, Step, StepOut, TileGraph, changed_rows, run_steps,
};
use crate::engine::{ConvPlan, Engine, Plan, Tensor};
use crate::error::{Error, Result};
use crate::model::Op;
use crate::quant::Bits;

/// Longest chain of nodes in one work item.
const MAX_CHAIN: usize = 16;

/// How the runtime runs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RuntimeConfig {
    pub workers: usize,
    /// Use the process-wide worker pool (its size is one per core) instead
    /// of `workers` private ones.
    pub shared_pool: bool,
    /// LR rows per patch (band).
    pub rows: usize,
    pub max_in_flight: usize,
    pub coalesce: bool,
    /// Benchmark only: every conv starts its own partition, on alternating
    /// units (same arithmetic, more hand-overs) — measures the switch cost.
    pub split_partitions: bool,
    /// Exact temporal reuse of unchanged output bands in streams (module docs).
    pub reuse: bool,
}

/// A stream's last finished frame: what a later frame may take bands from.
struct ReuseCache {
    input: Arc<Tensor>,
    out: Upscaled,
}

/// Fault injection for tests: the next work item fails this way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Error = 1,
    Panic = 2,
}

/// What the dispatcher, the workers and the API share.
pub(crate) struct Shared {
    pub telemetry: Telemetry,
    fault: AtomicU8,
    /// False once the dispatcher has stopped (normally or not).
    pub alive: AtomicBool,
}

/// Read-only context of the workers and the dispatcher.
struct Ctx {
    engine: Arc<Engine>,
    plan: Arc<Plan>,
    /// Partition of every layer.
    part_of_layer: Vec<usize>,
    unit_of_part: Vec<Unit>,
}

impl Ctx {
    fn new(engine: Arc<Engine>, plan: Arc<Plan>, split: bool) -> (Ctx, Vec<PartitionStats>) {
        let g = &engine.graph;
        let key = |l: usize| match plan.convs[l] {
            ConvPlan::Quant { q, dre } => (q.bits == Bits::B16, dre),
            ConvPlan::Float => (false, false),
        };
        let mut part_of_layer = vec![0; g.layers.len()];
        let mut parts: Vec<PartitionStats> = Vec::new();
        let mut unit_of_part = Vec::new();
        let mut cur: Option<(bool, bool)> = None;
        for (l, layer) in g.layers.iter().enumerate() {
            if matches!(layer.op, Op::Conv(_)) {
                let k = key(l);
                if cur != Some(k) || split {
                    let unit = if split {
                        if parts.len().is_multiple_of(2) {
                            Unit::Int8
                        } else {
                            Unit::A16w8
                        }
                    } else if k.0 {
                        Unit::A16w8
                    } else {
                        Unit::Int8
                    };
                    // The first partition also owns the layers before its conv.
                    let first = if parts.is_empty() { 0 } else { l };
                    parts.push(PartitionStats {
                        index: parts.len(),
                        unit: unit.name(),
                        dre: k.1,
                        layers: (first, l),
                        time_s: 0.0,
                    });
                    unit_of_part.push(unit);
                    cur = Some(k);
                }
            }
            if parts.is_empty() {
                continue;
            }
            let p = parts.len() - 1;
            parts[p].layers.1 = l;
            part_of_layer[l] = p;
        }
        if parts.is_empty() {
            parts.push(PartitionStats {
                index: 0,
                unit: Unit::Int8.name(),
                dre: false,
                layers: (0, g.layers.len().saturating_sub(1)),
                time_s: 0.0,
            });
            unit_of_part.push(Unit::Int8);
        }
        (
            Ctx {
                engine,
                plan,
                part_of_layer,
                unit_of_part,
            },
            parts,
        )
    }

    fn part_of_node(&self, tg: &TileGraph, node: usize) -> usize {
        tg.nodes[node].layer().map_or(0, |l| self.part_of_layer[l])
    }
}

/// A work item: a chain of nodes of one frame for one unit.
/// Whose a work item is: the engine and plan it runs on, the runtime's shared
/// state, and where its completion goes.
struct Owner {
    ctx: Arc<Ctx>,
    shared: Arc<Shared>,
    /// The dispatcher's state: the worker that finishes an item records it
    /// and hands out what it unblocked itself (`complete`). Weak: the
    /// dispatcher thread owns it, and items outlive a stopped codec.
    core: Weak<Mutex<Dispatcher>>,
    /// Wakes the dispatcher thread (its shutdown waits for the last frame).
    wake: Sender<()>,
}

struct Item {
    owner: Arc<Owner>,
    frame: u64,
    tg: Arc<TileGraph>,
    steps: Vec<Step>,
    unit: Unit,
    ready_at: Instant,
    switch: bool,
}

struct Done {
    frame: u64,
    unit: Unit,
    result: Result<Vec<StepOut>>,
    started: Instant,
    busy: f64,
    /// Thread CPU time of the item (what the item cost, whatever the load).
    cpu: f64,
    ready_at: Instant,
    switch: bool,
    nodes: usize,
}

/// CPU time of the calling thread, in seconds.
fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// The end of a stream the dispatcher holds.
pub(crate) struct StreamLink {
    pub input: HeapCons<InFrame>,
    pub playback: HeapProd<OutFrame>,
    pub shared: Arc<StreamShared>,
}

/// A synchronous frame waiting to start: input, a luma frame's chroma, the
/// reply channel, when it was submitted.
type QueuedJob = (
    FrameInput,
    Option<super::luma::Chroma>,
    Sender<Result<Upscaled>>,
    Instant,
    bool,
);

/// A frame handed to the dispatcher ([`Runtime::submit`]).
pub struct Pending(Receiver<Result<Upscaled>>);

impl Pending {
    /// Waits for the frame.
    pub fn wait(self) -> Result<Upscaled> {
        self.0
            .recv()
            .map_err(|_| Error::Invalid("codec runtime stopped before the frame finished".into()))?
    }
}

pub(crate) enum Ctl {
    /// One synchronous frame.
    Job {
        input: FrameInput,
        /// A luma model's frame given as Y with its chroma (`luma`).
        chroma: Option<super::luma::Chroma>,
        /// The caller takes the u8 output bands only (`Runtime::run_bytes`).
        bytes_only: bool,
        reply: Sender<Result<Upscaled>>,
        submitted: Instant,
    },
    Open(StreamLink),
    /// Forget every cached frame (seek, flush, discontinuity).
    ResetReuse,
    Shutdown,
}

/// The dispatcher thread and the unit workers of one codec.
pub(crate) struct Runtime {
    ctl: Sender<Ctl>,
    wake: Sender<()>,
    dispatcher: Option<JoinHandle<()>>,
    workers: Vec<JoinHandle<()>>,
    pub shared: Arc<Shared>,
}

impl Runtime {
    pub fn start(engine: Arc<Engine>, plan: Arc<Plan>, cfg: RuntimeConfig) -> Result<Runtime> {
        steady_allocation();
        let (ctx, parts) = Ctx::new(engine, plan, cfg.split_partitions);
        let ctx = Arc::new(ctx);
        let shared = Arc::new(Shared {
            telemetry: Telemetry::default(),
            fault: AtomicU8::new(0),
            alive: AtomicBool::new(true),
        });
        shared.telemetry.set_partitions(parts);
        let (ctl_tx, ctl_rx) = unbounded();
        let (wake_tx, wake_rx) = crossbeam_channel::bounded(1);
        let spawn_err =
            |e: std::io::Error| Error::Invalid(format!("cannot start runtime thread: {e}"));
        let (queues, queue_rx, workers, pool_size) = if cfg.shared_pool {
            let p = shared_pool()?;
            (p.queues.clone(), p.queue_rx.clone(), Vec::new(), p.size)
        } else {
            let (tx, rx, handles) = start_workers(cfg.workers.max(1), "")?;
            let n = handles.len();
            (tx, rx, handles, n)
        };
        let core = Arc::new_cyclic(|core| {
            let owner = Arc::new(Owner {
                ctx: ctx.clone(),
                shared: shared.clone(),
                core: core.clone(),
                wake: wake_tx.clone(),
            });
            Mutex::new(Dispatcher {
                cfg: RuntimeConfig {
                    workers: pool_size,
                    ..cfg
                },
                owner,
                ctx,
                shared: shared.clone(),
                queues,
                queue_rx,
                frames: HashMap::new(),
                ready: BinaryHeap::new(),
                jobs: VecDeque::new(),
                streams: Vec::new(),
                rr: 0,
                next_id: 0,
                outstanding: 0,
                graphs: HashMap::new(),
                shutdown: false,
                busy_since: None,
            })
        });
        let thread_shared = shared.clone();
        let dispatcher = std::thread::Builder::new()
            .name("nawqsr-dispatcher".into())
            .spawn(move || run_dispatcher(core, ctl_rx, wake_rx, thread_shared))
            .map_err(spawn_err)?;
        Ok(Runtime {
            ctl: ctl_tx,
            wake: wake_tx,
            dispatcher: Some(dispatcher),
            workers,
            shared,
        })
    }

    /// Runs one frame through the dispatcher and waits for it.
    pub fn run(&self, input: Tensor) -> Result<Upscaled> {
        self.run_with(input, None)
    }

    fn run_with(&self, input: Tensor, chroma: Option<super::luma::Chroma>) -> Result<Upscaled> {
        self.submit(input, chroma, false)?.wait()
    }

    /// Runs one frame whose caller needs only its u8 output bands
    /// (`Upscaled::rgb`; the f32 bands come back as shapes without data):
    /// each f32 output band is freed as soon as its u8 form arrives, so a
    /// frame never holds its whole f32 output (issue 15 item 5).
    pub fn run_bytes(&self, input: impl Into<FrameInput>) -> Result<Upscaled> {
        self.submit(input, None, true)?.wait()
    }

    /// Hands one frame to the dispatcher and returns at once: the caller
    /// works beside the workers (a luma model's chroma planes) until
    /// [`Pending::wait`].
    pub fn submit(
        &self,
        input: impl Into<FrameInput>,
        chroma: Option<super::luma::Chroma>,
        bytes_only: bool,
    ) -> Result<Pending> {
        let (reply, rx) = crossbeam_channel::bounded(1);
        self.send(Ctl::Job {
            input: input.into(),
            chroma,
            bytes_only,
            reply,
            submitted: Instant::now(),
        })?;
        Ok(Pending(rx))
    }

    /// Runs several frames through the dispatcher at once (they overlap in
    /// flight) and waits for all of them; their callers take the u8 output
    /// bands only, as [`Runtime::run_bytes`]'s.
    pub fn run_many_bytes(&self, inputs: Vec<FrameInput>) -> Result<Vec<Upscaled>> {
        let rxs = inputs
            .into_iter()
            .map(|input| {
                let (reply, rx) = crossbeam_channel::bounded(1);
                self.send(Ctl::Job {
                    input,
                    chroma: None,
                    bytes_only: true,
                    reply,
                    submitted: Instant::now(),
                })
                .map(|_| rx)
            })
            .collect::<Result<Vec<_>>>()?;
        rxs.into_iter()
            .map(|rx| {
                rx.recv().map_err(|_| {
                    Error::Invalid("codec runtime stopped before the frame finished".into())
                })?
            })
            .collect()
    }

    pub fn send(&self, m: Ctl) -> Result<()> {
        self.ctl
            .send(m)
            .map_err(|_| Error::Invalid("codec runtime has stopped".into()))
    }

    /// Tells the dispatcher that a stream's buffers changed.
    pub fn wake(&self) {
        let _ = self.wake.try_send(());
    }

    pub fn inject_fault(&self, f: Fault) {
        self.shared.fault.store(f as u8, Ordering::SeqCst);
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let _ = self.ctl.send(Ctl::Shutdown);
        if let Some(h) = self.dispatcher.take() {
            let _ = h.join();
        }
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

/// The unit queues of a set of workers (senders, receivers) and their threads.
type Workers = ([Sender<Item>; 2], [Receiver<Item>; 2], Vec<JoinHandle<()>>);

/// Starts `n` workers on a fresh pair of unit queues; they exit when every
/// sender of both queues is gone.
fn start_workers(n: usize, tag: &str) -> Result<Workers> {
    let (q0, q1) = (unbounded(), unbounded());
    let rx = [q0.1, q1.1];
    let mut handles = Vec::new();
    for i in 0..n {
        // Home units alternate: with 2 workers, one per unit.
        let home = Unit::ALL[i % 2];
        let rx = rx.clone();
        let h = std::thread::Builder::new()
            .name(format!("nawqsr-{tag}{}-{i}", home.name()))
            .spawn(move || worker(i, home, rx))
            .map_err(|e| Error::Invalid(format!("cannot start runtime thread: {e}")))?;
        handles.push(h);
    }
    Ok(([q0.0, q1.0], rx, handles))
}

/// The process-wide pool: one worker per core, shared by every codec whose
/// thread count is "one per core". Started by the first such codec; its
/// workers live as long as the process (the static holds their queues).
struct Pool {
    queues: [Sender<Item>; 2],
    queue_rx: [Receiver<Item>; 2],
    size: usize,
}

fn shared_pool() -> Result<&'static Pool> {
    static POOL: std::sync::OnceLock<std::result::Result<Pool, String>> =
        std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        let n = crate::tensor::resolve_threads(0);
        let (queues, queue_rx, handles) = start_workers(n, "pool-").map_err(|e| e.to_string())?;
        // Detached: nothing joins the pool's workers.
        drop(handles);
        Ok(Pool {
            queues,
            queue_rx,
            size: n,
        })
    })
    .as_ref()
    .map_err(|e| Error::Invalid(e.clone()))
}

/// A unit worker: prefers its home queue, takes the other unit's work when idle.
fn worker(idx: usize, home: Unit, rx: [Receiver<Item>; 2]) {
    let (own, other) = (&rx[home as usize], &rx[1 - home as usize]);
    loop {
        let mut item = match own.try_recv().or_else(|_| other.try_recv()) {
            Ok(i) => i,
            Err(_) => {
                let r = select! {
                    recv(own) -> m => m,
                    recv(other) -> m => m,
                };
                match r {
                    Ok(i) => i,
                    Err(_) => return, // every dispatcher of these queues is gone
                }
            }
        };
        let owner = item.owner.clone();
        let (ctx, shared) = (&owner.ctx, &owner.shared);
        if !shared.alive.load(Ordering::SeqCst) {
            // Its codec stopped (shared pool): nobody waits for this item.
            continue;
        }
        let started = Instant::now();
        let cpu0 = thread_cpu_s();
        let _span = tracing::trace_span!(
            "work_item",
            worker = idx,
            unit = item.unit.name(),
            frame = item.frame,
            nodes = item.steps.len()
        )
        .entered();
        let fault = shared.fault.swap(0, Ordering::SeqCst);
        let result = catch_unwind(AssertUnwindSafe(|| {
            match fault {
                1 => return Err(Error::Invalid("injected worker fault".into())),
                2 => panic!("injected worker panic"),
                _ => {}
            }
            run_steps(&ctx.engine, &ctx.plan, &item.tg, &item.steps)
        }))
        .unwrap_or_else(|p| {
            Err(Error::Invalid(format!(
                "worker {idx} ({} unit) panicked: {}",
                home.name(),
                panic_message(&*p)
            )))
        });
        let busy = started.elapsed().as_secs_f64();
        let cpu = thread_cpu_s() - cpu0;
        let nodes = item.steps.len();
        // The steps hold the input chunks: let go of them before the dispatcher
        // hears of this item, so that the chunks it then releases are no
        // longer shared and their buffers go back to the pool (`tiles::recycle`).
        drop(std::mem::take(&mut item.steps));
        let d = Done {
            cpu,
            frame: item.frame,
            unit: item.unit,
            result,
            started,
            busy,
            ready_at: item.ready_at,
            switch: item.switch,
            nodes,
        };
        complete(&owner, d);
    }
}

/// A finished item, on the worker that ran it: records it and hands out
/// what it unblocked, under the dispatcher's lock, so that the next item is
/// usually in this worker's queue when it looks. A dispatcher thread woken
/// per completion cost ~530 context switches per nawq_x2 frame and 7 % of
/// the CPU in the kernel (BENCHMARKS, "The dispatcher's hand-offs").
fn complete(owner: &Owner, d: Done) {
    // Gone: that codec stopped meanwhile; others still need this worker.
    let Some(core) = owner.core.upgrade() else {
        return;
    };
    let r = catch_unwind(AssertUnwindSafe(|| {
        // Poisoned: the dispatcher died; its thread reports it.
        let Ok(mut disp) = core.lock() else {
            return false;
        };
        disp.on_done(d);
        disp.admit();
        disp.dispatch();
        disp.shutdown && disp.frames.is_empty()
    }));
    let wake = r.unwrap_or_else(|p| {
        tracing::error!("dispatcher panicked: {}", panic_message(&*p));
        owner.shared.alive.store(false, Ordering::SeqCst);
        true
    });
    if wake {
        let _ = owner.wake.try_send(());
    }
}

/// The dispatcher thread: takes jobs, streams and shutdown from the API and
/// starts frames; completions are handled by the workers (`complete`). On
/// exit, normal or not, every waiter is woken; dropping the dispatcher drops
/// pending replies, so synchronous callers get an error.
fn run_dispatcher(
    core: Arc<Mutex<Dispatcher>>,
    ctl: Receiver<Ctl>,
    wake: Receiver<()>,
    shared: Arc<Shared>,
) {
    let mut guard = ExitGuard {
        shared,
        streams: Vec::new(),
    };
    let r = catch_unwind(AssertUnwindSafe(|| {
        dispatcher_loop(&core, &ctl, &wake, &mut guard)
    }));
    if let Err(p) = r {
        tracing::error!("dispatcher panicked: {}", panic_message(&*p));
    }
}

fn dispatcher_loop(
    core: &Mutex<Dispatcher>,
    ctl: &Receiver<Ctl>,
    wake: &Receiver<()>,
    guard: &mut ExitGuard,
) {
    loop {
        {
            // Poisoned: a worker panicked in `complete`.
            let Ok(mut d) = core.lock() else { return };
            d.admit();
            d.dispatch();
            if d.shutdown && d.frames.is_empty() {
                return;
            }
        }
        select! {
            recv(ctl) -> m => {
                let Ok(mut d) = core.lock() else { return };
                match m {
                    Ok(Ctl::Job { input, chroma, bytes_only, reply, submitted }) => d.jobs.push_back((input, chroma, reply, submitted, bytes_only)),
                    Ok(Ctl::Open(link)) => {
                        guard.streams.push(link.shared.clone());
                        d.streams.push(Some(StreamState { link, in_flight: 0, next_emit: 0, reorder: BTreeMap::new(), cache: None }));
                    }
                    Ok(Ctl::ResetReuse) => {
                        for s in d.streams.iter_mut().flatten() {
                            s.cache = None;
                        }
                    }
                    Ok(Ctl::Shutdown) | Err(_) => d.shutdown = true,
                }
            },
            recv(wake) -> _ => {}
        }
    }
}

enum Origin {
    Sync(Sender<Result<Upscaled>>),
    Stream {
        link: usize,
        seq: u64,
        ts: Timestamp,
    },
}

struct Frame {
    ft: FrameTiles,
    /// A luma model's frame: the chroma to merge with its output (`luma`).
    chroma: Option<super::luma::Chroma>,
    /// The input, kept for the reuse cache (reuse on).
    input: Option<Arc<Tensor>>,
    origin: Origin,
    submitted: Instant,
    outstanding: usize,
    error: Option<Error>,
    macs: u64,
}

struct StreamState {
    link: StreamLink,
    /// Admitted and not yet in the playback buffer.
    in_flight: usize,
    next_emit: u64,
    reorder: BTreeMap<u64, OutFrame>,
    cache: Option<ReuseCache>,
}

/// Ready heap entry: (frame, band, layer, node, ready since); lowest first.
type Ready = Reverse<(u64, usize, usize, usize, Instant)>;

struct Dispatcher {
    cfg: RuntimeConfig,
    /// Carried by every item this dispatcher hands out.
    owner: Arc<Owner>,
    ctx: Arc<Ctx>,
    shared: Arc<Shared>,
    queues: [Sender<Item>; 2],
    queue_rx: [Receiver<Item>; 2],
    frames: HashMap<u64, Frame>,
    ready: BinaryHeap<Ready>,
    jobs: VecDeque<QueuedJob>,
    /// Open streams (None once closed and empty; indices stay stable).
    streams: Vec<Option<StreamState>>,
    rr: usize,
    next_id: u64,
    outstanding: usize,
    graphs: HashMap<(usize, usize), Arc<TileGraph>>,
    shutdown: bool,
    busy_since: Option<Instant>,
}

/// On exit (normal or panic): mark the runtime dead and wake every waiter.
struct ExitGuard {
    shared: Arc<Shared>,
    streams: Vec<Arc<StreamShared>>,
}

impl Drop for ExitGuard {
    fn drop(&mut self) {
        self.shared.alive.store(false, Ordering::SeqCst);
        for s in &self.streams {
            s.wake_all();
        }
    }
}

impl Dispatcher {
    fn tile_graph(&mut self, h: usize, w: usize) -> Result<Arc<TileGraph>> {
        if let Some(g) = self.graphs.get(&(h, w)) {
            return Ok(g.clone());
        }
        // Sizes seen: the frame's, and the sub-frames of 2D reuse (their
        // sizes are multiples of the patch side, so few).
        if self.graphs.len() >= 32 {
            self.graphs.clear();
        }
        let g = Arc::new(TileGraph::new(
            &self.ctx.engine,
            &self.ctx.plan,
            h,
            w,
            self.cfg.rows,
        )?);
        self.graphs.insert((h, w), g.clone());
        Ok(g)
    }

    /// Starts frames while fewer than `max_in_flight` are running: synchronous
    /// jobs first, then streams round-robin (a stream only when its playback
    /// buffer can take every frame it has in flight plus this one).
    fn admit(&mut self) {
        while self.frames.len() < self.cfg.max_in_flight && !self.shutdown {
            if let Some((input, chroma, reply, submitted, bytes_only)) = self.jobs.pop_front() {
                self.start(input, chroma, Origin::Sync(reply), submitted, bytes_only);
                continue;
            }
            let n = self.streams.len();
            let mut started = false;
            for k in 0..n {
                let i = (self.rr + k) % n;
                let Some(s) = &mut self.streams[i] else {
                    continue;
                };
                if s.link.shared.is_closed() || s.link.playback.vacant_len() <= s.in_flight {
                    continue;
                }
                let occupied = s.link.input.occupied_len();
                let Some(f) = s.link.input.try_pop() else {
                    continue;
                };
                s.in_flight += 1;
                s.link.shared.space.notify();
                self.shared
                    .telemetry
                    .buffers(occupied, s.link.playback.occupied_len());
                let InFrame {
                    seq,
                    input,
                    ts,
                    submitted,
                } = f;
                self.rr = i + 1;
                self.start(
                    input.into(),
                    None,
                    Origin::Stream { link: i, seq, ts },
                    submitted,
                    false,
                );
                started = true;
                break;
            }
            if !started {
                break;
            }
        }
        // Streams whose owner is gone and that hold nothing are dropped.
        for slot in &mut self.streams {
            if slot
                .as_ref()
                .is_some_and(|s| s.link.shared.is_closed() && s.in_flight == 0)
            {
                *slot = None;
            }
        }
    }

    fn start(
        &mut self,
        input: FrameInput,
        chroma: Option<super::luma::Chroma>,
        origin: Origin,
        submitted: Instant,
        bytes_only: bool,
    ) {
        let id = self.next_id;
        self.next_id += 1;
        let (h, w, c) = input.dims();
        let macs = self.ctx.engine.graph.total_macs(h, w);
        // A luma model runs on Y; the chroma of an RGB frame waits for its
        // output (`luma`). A YUV frame's Y comes alone: the caller resizes
        // its chroma planes (`Codec::upscale`).
        let split_here = self.ctx.engine.graph.is_luma() && c == 3;
        // (Streams hand whole frames: their row-band reuse compares them.)
        let (input, parts) = match input {
            FrameInput::Whole(t) => (Some(t), None),
            i if split_here => (Some(i.into_whole()), None),
            i => (None, Some(i)),
        };
        let chroma = chroma.or_else(|| {
            split_here.then(|| super::luma::Chroma::of(input.as_ref().expect("whole")))
        });
        let luma = chroma.is_some();
        let ft = self.tile_graph(h, w).and_then(|tg| match (&input, parts) {
            (_, Some(p)) => FrameTiles::of(tg, p),
            (Some(i), None) if split_here => FrameTiles::new(tg, &super::luma::y_of(i)),
            (Some(i), None) => FrameTiles::new(tg, i),
            (None, None) => unreachable!("the frame is whole or banded"),
        });
        if self.busy_since.is_none() {
            self.busy_since = Some(Instant::now());
        }
        match ft {
            Ok(mut ft) => {
                // A luma model's RGB frame is merged from its f32 Y bands.
                ft.bytes_only = bytes_only && !luma;
                // Streams reuse row bands here; synchronous jobs reuse 2D
                // patches in `Codec::upscale_rgb`.
                // (Not for luma models: the reuse cache holds network outputs.)
                let link = match origin {
                    Origin::Stream { link, .. } if self.cfg.reuse && !luma => Some(link),
                    _ => None,
                };
                let input = link.and(input).map(Arc::new);
                // A failed reuse (it cannot: same graph, same band count) is
                // reported as the frame's error, never as a wrong frame.
                let (reused, error) = match (&input, link) {
                    (Some(i), Some(link)) => match self.reuse(&mut ft, link, i) {
                        Ok(n) => (n, None),
                        Err(e) => (0, Some(e)),
                    },
                    _ => (0, None),
                };
                if input.is_some() {
                    let bands = ft.tg.chunks[ft.tg.output];
                    self.shared.telemetry.reuse(reused, bands);
                }
                let init = if error.is_none() {
                    ft.initial()
                } else {
                    Vec::new()
                };
                let finished = ft.is_finished() || error.is_some();
                self.frames.insert(
                    id,
                    Frame {
                        ft,
                        chroma,
                        input,
                        origin,
                        submitted,
                        outstanding: 0,
                        error,
                        macs,
                    },
                );
                if finished {
                    // Every band reused: nothing to run.
                    self.finish(id);
                } else {
                    self.release(id, init);
                }
            }
            Err(e) => {
                self.finish_origin(origin, submitted, Err(e), macs);
            }
        }
        self.shared.telemetry.queues([0, 0], self.frames.len());
    }

    /// Takes from stream `link`'s cached frame every output band whose
    /// receptive rows are unchanged; returns how many.
    fn reuse(&self, ft: &mut FrameTiles, link: usize, input: &Tensor) -> Result<usize> {
        let cache = self.streams[link].as_ref().and_then(|s| s.cache.as_ref());
        let Some(c) = cache else { return Ok(0) };
        let (a, b) = (&c.input, input);
        if (a.h, a.w, a.c) != (b.h, b.w, b.c) || c.out.chunks.len() != ft.tg.chunks[ft.tg.output] {
            return Ok(0);
        }
        let bands = ft.tg.reusable_bands(&changed_rows(a, b));
        let n = bands.iter().filter(|&&r| r).count();
        if n > 0 {
            ft.reuse(Reused {
                bands: &bands,
                chunks: &c.out.chunks,
                rgb: &c.out.rgb,
            })?;
        }
        Ok(n)
    }

    /// Queues `nodes` (now ready); range barriers complete inline (§4.3 RQU:
    /// the band partials are all in, the frame range is known).
    fn release(&mut self, id: u64, mut nodes: Vec<usize>) {
        let now = Instant::now();
        let Some(fr) = self.frames.get_mut(&id) else {
            return;
        };
        while let Some(n) = nodes.pop() {
            let tg = &fr.ft.tg;
            match tg.nodes[n].kind {
                NodeKind::Range { .. } => {
                    let t = Instant::now();
                    nodes.extend(fr.ft.complete_range(n));
                    self.shared.telemetry.dre_inline(t.elapsed().as_secs_f64());
                }
                _ => {
                    let (band, layer) = tg.priority(n);
                    self.ready.push(Reverse((id, band, layer, n, now)));
                }
            }
        }
    }

    /// Hands ready nodes to the units, keeping at most two items per worker
    /// outstanding so that priorities still steer the order.
    fn dispatch(&mut self) {
        let limit = 2 * self.cfg.workers.max(1);
        while self.outstanding < limit {
            let Some(Reverse((id, _, _, head, ready_at))) = self.ready.pop() else {
                break;
            };
            let Some(fr) = self.frames.get_mut(&id) else {
                continue;
            };
            if fr.error.is_some() {
                continue;
            }
            let tg = fr.ft.tg.clone();
            let part = self.ctx.part_of_node(&tg, head);
            let unit = self.ctx.unit_of_part[part];
            // A switch: an input of this item came from another partition.
            let switch = tg.nodes[head].deps.iter().any(|&d| {
                !matches!(tg.nodes[d].kind, NodeKind::Range { .. })
                    && self.ctx.part_of_node(&tg, d) != part
            });
            let mut chain = vec![head];
            let mut steps = vec![fr.ft.step(head, &[])];
            if let (true, Some(band)) = (self.cfg.coalesce, tg.nodes[head].band()) {
                while chain.len() < MAX_CHAIN {
                    let next = chain
                        .iter()
                        .flat_map(|&c| tg.nodes[c].consumers.iter().copied())
                        .filter(|&m| {
                            tg.nodes[m].band() == Some(band)
                                && self.ctx.part_of_node(&tg, m) == part
                                && fr.ft.ready_after(m, &chain)
                        })
                        .min_by_key(|&m| tg.nodes[m].layer());
                    let Some(m) = next else { break };
                    steps.push(fr.ft.step(m, &chain));
                    chain.push(m);
                }
            }
            fr.outstanding += 1;
            self.outstanding += 1;
            let item = Item {
                owner: self.owner.clone(),
                frame: id,
                tg,
                steps,
                unit,
                ready_at,
                switch,
            };
            if self.queues[unit as usize].send(item).is_err() {
                // Workers gone: nothing can finish.
                self.shutdown = true;
                return;
            }
        }
        self.shared.telemetry.queues(
            [self.queue_rx[0].len(), self.queue_rx[1].len()],
            self.frames.len(),
        );
    }

    fn on_done(&mut self, d: Done) {
        self.outstanding -= 1;
        let parts: Vec<(usize, f64)> = match &d.result {
            Ok(outs) => {
                let tg = self.frames.get(&d.frame).map(|f| f.ft.tg.clone());
                outs.iter()
                    .map(|o| {
                        (
                            tg.as_ref()
                                .map_or(0, |tg| self.ctx.part_of_node(tg, o.node)),
                            o.secs,
                        )
                    })
                    .collect()
            }
            Err(_) => Vec::new(),
        };
        let layers: Vec<(usize, f64)> = match (&d.result, self.frames.get(&d.frame)) {
            (Ok(outs), Some(f)) => outs
                .iter()
                .filter_map(|o| f.ft.tg.nodes[o.node].layer().map(|l| (l, o.secs)))
                .collect(),
            _ => Vec::new(),
        };
        let dre: f64 = d
            .result
            .as_ref()
            .map(|o| o.iter().map(|s| s.range_secs).sum())
            .unwrap_or(0.0);
        let latency = d
            .started
            .saturating_duration_since(d.ready_at)
            .as_secs_f64();
        self.shared.telemetry.item_done(
            d.unit, d.nodes, d.busy, d.cpu, &parts, &layers, dre, latency, d.switch,
        );
        let Some(fr) = self.frames.get_mut(&d.frame) else {
            return;
        };
        fr.outstanding -= 1;
        match d.result {
            Ok(outs) if fr.error.is_none() => {
                let mut ready = Vec::new();
                for o in outs {
                    ready.extend(fr.ft.complete(o));
                }
                self.release(d.frame, ready);
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!("frame {} failed: {e}", d.frame);
                fr.error.get_or_insert(e);
            }
        }
        let fr = &self.frames[&d.frame];
        if fr.ft.is_finished() || (fr.error.is_some() && fr.outstanding == 0) {
            self.finish(d.frame);
        }
    }

    fn finish(&mut self, id: u64) {
        let Some(mut fr) = self.frames.remove(&id) else {
            return;
        };
        let result = match fr.error.take() {
            Some(e) => Err(e),
            None => fr.ft.output_chunks().and_then(|chunks| {
                let (chunks, rgb) = match &fr.chroma {
                    Some(c) => c.merge(&chunks, self.ctx.engine.graph.scale),
                    None => (chunks, fr.ft.output_rgb()?),
                };
                Ok(Upscaled {
                    width: chunks[0].w,
                    height: chunks.iter().map(|t| t.h).sum(),
                    chunks,
                    rgb,
                })
            }),
        };
        if let (Some(input), Ok(out)) = (fr.input.take(), &result) {
            let cache = Some(ReuseCache {
                input,
                out: out.clone(),
            });
            if let Origin::Stream { link, .. } = &fr.origin
                && let Some(s) = &mut self.streams[*link]
            {
                s.cache = cache;
            }
        }
        if self.frames.is_empty()
            && let Some(t) = self.busy_since.take()
        {
            self.shared.telemetry.busy_wall(t.elapsed().as_secs_f64());
        }
        self.finish_origin(fr.origin, fr.submitted, result, fr.macs);
    }

    fn finish_origin(
        &mut self,
        origin: Origin,
        submitted: Instant,
        result: Result<Upscaled>,
        macs: u64,
    ) {
        let latency = submitted.elapsed();
        let ok = result.is_ok();
        self.shared
            .telemetry
            .frame_done(latency, ok, if ok { macs } else { 0 });
        tracing::debug!(latency_ms = latency.as_secs_f64() * 1e3, ok, "frame done");
        match origin {
            Origin::Sync(reply) => {
                let _ = reply.send(result);
            }
            Origin::Stream { link, seq, ts } => {
                let Some(s) = &mut self.streams[link] else {
                    return;
                };
                s.reorder.insert(seq, OutFrame { ts, result });
                // Frames leave in submission order (a later frame may finish first).
                while let Some(o) = s.reorder.remove(&s.next_emit) {
                    if s.link.playback.try_push(o).is_err() {
                        unreachable!("admission reserves playback space for every frame in flight");
                    }
                    s.next_emit += 1;
                    s.in_flight -= 1;
                }
                self.shared
                    .telemetry
                    .buffers(0, s.link.playback.occupied_len());
                s.link.shared.avail.notify();
            }
        }
    }
}

/// Every band allocates its output tensors (up to ~1 MB for an HR band) and frees
/// them a few steps later. glibc serves such sizes with fresh `mmap`s and trims
/// freed heap back to the kernel, so every frame paid page faults and page
/// zeroing again (measured: 17 % of worker time on nawq_x4, ~25 % faster
/// with the thresholds below). Raising the mmap and trim thresholds keeps that
/// memory in the process; peak RSS is bounded by the frames in flight anyway.
pub(crate) fn steady_allocation() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: mallopt only changes allocator tuning parameters; it is
            // called before this runtime allocates its working memory.
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
                libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
            }
        });
    }
}
