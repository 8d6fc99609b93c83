//! Fuzz harnesses on stable Rust, run as ordinary tests: (a) the ONNX importer,
//! (b) the schedule parser, (c) frames (format × size × stride × plane length)
//! through `Codec::upscale`.
//!
//! Each harness mutates a seed corpus (`codec/fuzz-corpus/`, plus the bundled
//! models and schedules) for a time budget and fails on any panic that escapes
//! the codec, any error that carries `validate::PANIC_MARK` from our own code
//! (a caught panic is still a bug), and — for frames — on a valid frame that is
//! refused or whose output depends on its strides. Hangs: a watchdog aborts the
//! process when one input runs longer than `NAWQSR_FUZZ_HANG_SECS` (default 60),
//! after writing the input to `target/fuzz-crashes/`. Memory: bounded by the
//! shape limits of `model::validate`.
//!
//! - `NAWQSR_FUZZ_SECS`: seconds per harness (default 20).
//! - `NAWQSR_FUZZ_SEED`: RNG seed (default fixed, so CI is reproducible; the
//!   seed is printed).
//! - Crashing inputs are written to `target/fuzz-crashes/<harness>-<n>.bin`; add
//!   them to `codec/fuzz-corpus/<harness>/` once fixed.
//!
//! ```text
//! NAWQSR_FUZZ_SECS=600 nice -n 10 cargo test --release -p nawqsr-codec --test fuzz -- --nocapture
//! ```
mod common;

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nawqsr_codec::model::validate::PANIC_MARK;
use nawqsr_codec::runtime::{Codec, CodecConfig, FrameMut, FrameRef, Mode, PixelFormat};
use prost::Message;
use tract_onnx::pb;

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// xorshift64*: small, fast, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

const INTERESTING_I64: [i64; 14] = [
    0,
    1,
    -1,
    2,
    3,
    7,
    255,
    1025,
    65536,
    i32::MAX as i64,
    i32::MIN as i64,
    i64::MAX,
    i64::MIN,
    1 << 40,
];
const INTERESTING_F32: [f32; 8] = [
    f32::NAN,
    f32::INFINITY,
    f32::NEG_INFINITY,
    0.0,
    -0.0,
    1e38,
    -1e38,
    1e-45,
];

/// Byte-level mutations (AFL's havoc, simplified): 1–8 stacked edits.
fn mutate_bytes(rng: &mut Rng, input: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut d = input.to_vec();
    for _ in 0..1 + rng.below(8) {
        let len = d.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                d[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                d[i] = *rng.pick(&[0u8, 1, 0x7f, 0x80, 0xff, 0x40]);
            }
            2 if len >= 8 => {
                let i = rng.below(len - 7);
                let v = *rng.pick(&INTERESTING_I64);
                let b = v.to_le_bytes();
                let n = *rng.pick(&[1usize, 2, 4, 8]);
                d[i..i + n].copy_from_slice(&b[..n]);
            }
            3 if len >= 4 => {
                let i = rng.below(len - 3);
                d[i..i + 4].copy_from_slice(&rng.pick(&INTERESTING_F32).to_le_bytes());
            }
            4 if len > 1 => {
                let a = rng.below(len);
                let n = 1 + rng.below((len - a).min(64));
                d.drain(a..a + n);
            }
            5 if len > 1 => {
                let a = rng.below(len);
                let n = 1 + rng.below((len - a).min(64));
                let chunk = d[a..a + n].to_vec();
                let at = rng.below(len);
                d.splice(at..at, chunk);
            }
            6 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                d.splice(at..at, bytes);
            }
            7 if len > 0 => d.truncate(rng.below(len)),
            8 => {
                // Splice: our head, another seed's tail.
                let other = rng.pick(corpus);
                if !other.is_empty() && len > 0 {
                    let a = rng.below(len);
                    let b = rng.below(other.len());
                    d.truncate(a);
                    d.extend_from_slice(&other[b..]);
                }
            }
            _ => {}
        }
    }
    d
}

thread_local! {
    /// The last panic message of this thread (the hook records, does not print).
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
    /// Whether this thread is inside one fuzz input (only then is a panic quiet:
    /// the harness's own final assertion must still print).
    static IN_INPUT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// A panic hook that stays quiet inside a fuzz input (thousands of expected,
/// caught panics would flood the log) and records the message and location.
fn quiet_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_INPUT.with(|f| f.get()) {
                let loc = info
                    .location()
                    .map(|l| format!("{}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{info} ({loc})")));
            } else {
                default(info);
            }
        }));
    });
}

/// Aborts the process if one input runs too long (a hang), after saving it.
struct Watchdog {
    /// Start of the current input in ms since the epoch (0: idle).
    started: Arc<AtomicU64>,
    input: Arc<Mutex<Vec<u8>>>,
    done: Arc<AtomicU64>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

impl Watchdog {
    fn new(name: &'static str) -> Watchdog {
        let w = Watchdog {
            started: Arc::new(AtomicU64::new(0)),
            input: Arc::new(Mutex::new(Vec::new())),
            done: Arc::new(AtomicU64::new(0)),
        };
        let limit = env_u64("NAWQSR_FUZZ_HANG_SECS", 60) * 1000;
        let (started, input, done) = (w.started.clone(), w.input.clone(), w.done.clone());
        std::thread::spawn(move || {
            while done.load(Ordering::Relaxed) == 0 {
                std::thread::sleep(Duration::from_millis(500));
                let t = started.load(Ordering::Relaxed);
                if t != 0 && now_ms().saturating_sub(t) > limit {
                    let p = save(name, "hang", &input.lock().unwrap());
                    eprintln!(
                        "fuzz {name}: an input ran over {} s (a hang); saved to {}",
                        limit / 1000,
                        p.display()
                    );
                    std::process::abort();
                }
            }
        });
        w
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.done.store(1, Ordering::Relaxed);
    }
}

fn save(name: &str, kind: &str, data: &[u8]) -> PathBuf {
    let dir = root().join("target/fuzz-crashes");
    let _ = std::fs::create_dir_all(&dir);
    let mut i = 0;
    loop {
        let p = dir.join(format!("{name}-{kind}-{i}.bin"));
        if !p.exists() {
            let _ = std::fs::write(&p, data);
            return p;
        }
        i += 1;
    }
}

/// What one execution found.
#[derive(Default)]
struct Tally {
    execs: u64,
    ok: u64,
    errors: u64,
    /// Panics of a dependency (tract) caught at the codec boundary: reported,
    /// not failures (the boundary is there for them).
    dependency_panics: u64,
    bugs: Vec<String>,
}

/// The outcome of one input: accepted, refused with an error, or a bug.
enum Verdict {
    Ok,
    Refused,
    DependencyPanic,
    Bug(String),
}

/// Runs `exec` on mutated inputs for the budget; fails on any bug.
fn run_harness(
    name: &'static str,
    seeds: Vec<Vec<u8>>,
    mutate: impl Fn(&mut Rng, &[u8], &[Vec<u8>]) -> Vec<u8>,
    exec: impl Fn(&[u8]) -> Verdict,
) {
    quiet_panics();
    assert!(!seeds.is_empty(), "fuzz {name}: empty seed corpus");
    let secs = env_u64("NAWQSR_FUZZ_SECS", 20);
    let seed = env_u64("NAWQSR_FUZZ_SEED", 0x6e61_7771_7372_0021);
    let mut rng = Rng(seed | 1);
    let dog = Watchdog::new(name);
    let mut t = Tally::default();
    let deadline = Instant::now() + Duration::from_secs(secs);
    // The seeds themselves first, then mutants of them.
    let mut queue: Vec<Vec<u8>> = seeds.clone();
    while Instant::now() < deadline || !queue.is_empty() {
        let input = match queue.pop() {
            Some(s) => s,
            None => {
                let base = rng.pick(&seeds).clone();
                mutate(&mut rng, &base, &seeds)
            }
        };
        *dog.input.lock().unwrap() = input.clone();
        dog.started.store(now_ms(), Ordering::Relaxed);
        IN_INPUT.with(|f| f.set(true));
        let caught = catch_unwind(AssertUnwindSafe(|| exec(&input)));
        IN_INPUT.with(|f| f.set(false));
        let v = caught.unwrap_or_else(|_| {
            Verdict::Bug(format!(
                "panic: {}",
                LAST_PANIC
                    .with(|p| p.borrow_mut().take())
                    .unwrap_or_default()
            ))
        });
        dog.started.store(0, Ordering::Relaxed);
        t.execs += 1;
        match v {
            Verdict::Ok => t.ok += 1,
            Verdict::Refused => t.errors += 1,
            Verdict::DependencyPanic => t.dependency_panics += 1,
            Verdict::Bug(what) => {
                if t.bugs.len() < 20 {
                    let p = save(name, "crash", &input);
                    t.bugs.push(format!("{what} [input {}]", p.display()));
                }
            }
        }
    }
    println!(
        "fuzz {name}: {} executions in {secs} s (seed {seed:#x}): {} accepted, {} refused with an error, \
         {} dependency panics caught, {} bugs",
        t.execs,
        t.ok,
        t.errors,
        t.dependency_panics,
        t.bugs.len()
    );
    assert!(
        t.bugs.is_empty(),
        "fuzz {name}: {} bugs:\n{}",
        t.bugs.len(),
        t.bugs.join("\n")
    );
}

fn corpus_dir(name: &str) -> Vec<Vec<u8>> {
    let dir = root().join("codec/fuzz-corpus").join(name);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    files.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

/// Classifies a codec error: a caught panic is a bug when it is ours, a
/// dependency panic when it came out of tract.
fn judge(e: &nawqsr_codec::Error) -> Verdict {
    let s = e.to_string();
    if !s.contains(PANIC_MARK) {
        return Verdict::Refused;
    }
    if s.contains("tract") {
        Verdict::DependencyPanic
    } else {
        Verdict::Bug(s)
    }
}

// ---------------------------------------------------------------- (a) ONNX

/// Structural mutations of a decoded ModelProto: the places the importer reads.
fn mutate_onnx(rng: &mut Rng, input: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
    if rng.chance(3) {
        return mutate_bytes(rng, input, corpus);
    }
    let Ok(mut m) = pb::ModelProto::decode(input) else {
        return mutate_bytes(rng, input, corpus);
    };
    let Some(g) = m.graph.as_mut() else {
        return mutate_bytes(rng, input, corpus);
    };
    const OPS: [&str; 16] = [
        "Conv",
        "Relu",
        "LeakyRelu",
        "PRelu",
        "Sigmoid",
        "Add",
        "Mul",
        "Split",
        "Concat",
        "GlobalAveragePool",
        "ReduceSum",
        "DepthToSpace",
        "Constant",
        "Identity",
        "MaxPool",
        "Pow",
    ];
    for _ in 0..1 + rng.below(3) {
        match rng.below(10) {
            0 if !g.initializer.is_empty() => {
                let i = rng.below(g.initializer.len());
                let t = &mut g.initializer[i];
                if !t.dims.is_empty() {
                    let d = rng.below(t.dims.len());
                    t.dims[d] = if rng.chance(2) {
                        *rng.pick(&INTERESTING_I64)
                    } else {
                        t.dims[d] + rng.below(5) as i64 - 2
                    };
                } else {
                    t.dims.push(rng.below(4) as i64);
                }
            }
            1 if !g.initializer.is_empty() => {
                let i = rng.below(g.initializer.len());
                let t = &mut g.initializer[i];
                if !t.float_data.is_empty() {
                    let j = rng.below(t.float_data.len());
                    t.float_data[j] = *rng.pick(&INTERESTING_F32);
                } else if t.raw_data.len() >= 4 {
                    let j = rng.below(t.raw_data.len() / 4) * 4;
                    t.raw_data[j..j + 4].copy_from_slice(&rng.pick(&INTERESTING_F32).to_le_bytes());
                }
            }
            2 if !g.initializer.is_empty() => {
                let i = rng.below(g.initializer.len());
                let t = &mut g.initializer[i];
                match rng.below(3) {
                    0 => t.data_type = *rng.pick(&[0, 1, 2, 6, 7, 10, 11, 16]),
                    1 => {
                        let n = rng.below(t.float_data.len() + 1);
                        t.float_data.truncate(n);
                    }
                    _ => {
                        let n = rng.below(t.raw_data.len() + 1);
                        t.raw_data.truncate(n);
                    }
                }
            }
            3 if !g.node.is_empty() => {
                let i = rng.below(g.node.len());
                g.node[i].op_type = rng.pick(&OPS).to_string();
            }
            4 if !g.node.is_empty() => {
                let i = rng.below(g.node.len());
                let n = &mut g.node[i];
                if n.attribute.is_empty() {
                    n.attribute.push(pb::AttributeProto {
                        name: rng
                            .pick(&[
                                "pads",
                                "kernel_shape",
                                "dilations",
                                "group",
                                "blocksize",
                                "axis",
                                "strides",
                            ])
                            .to_string(),
                        i: *rng.pick(&INTERESTING_I64),
                        r#type: 2,
                        ..Default::default()
                    });
                } else {
                    let a = rng.below(n.attribute.len());
                    let at = &mut n.attribute[a];
                    if !at.ints.is_empty() {
                        let k = rng.below(at.ints.len());
                        at.ints[k] = *rng.pick(&INTERESTING_I64);
                        if rng.chance(4) {
                            at.ints.pop();
                        }
                    } else if rng.chance(2) {
                        at.i = *rng.pick(&INTERESTING_I64);
                    } else {
                        at.f = *rng.pick(&INTERESTING_F32);
                    }
                }
            }
            5 if !g.node.is_empty() => {
                let i = rng.below(g.node.len());
                let n = &mut g.node[i];
                if !n.input.is_empty() {
                    let k = rng.below(n.input.len());
                    match rng.below(3) {
                        0 => {
                            n.input.remove(k);
                        }
                        1 => n.input[k] = "nowhere".into(),
                        _ => n.input[k] = String::new(),
                    }
                }
            }
            6 if !g.node.is_empty() => {
                let i = rng.below(g.node.len());
                if rng.chance(2) {
                    g.node.remove(i);
                } else {
                    let n = g.node[i].clone();
                    let at = rng.below(g.node.len());
                    g.node.insert(at, n);
                }
            }
            7 => match rng.below(4) {
                0 if !g.output.is_empty() => g.output[0].name = "nowhere".into(),
                1 => {
                    if let Some(o) = g.output.first().cloned() {
                        g.output.push(o)
                    }
                }
                2 if !g.input.is_empty() => {
                    g.input.remove(0);
                }
                _ => {
                    if let Some(i) = g.input.first().cloned() {
                        g.input.push(pb::ValueInfoProto {
                            name: "extra".into(),
                            ..i
                        })
                    }
                }
            },
            8 if !g.node.is_empty() && g.node.len() > 1 => {
                // Re-wire: a node reads another's output.
                let i = rng.below(g.node.len());
                let j = rng.below(g.node.len());
                if let (Some(o), false) = (
                    g.node[j].output.first().cloned(),
                    g.node[i].input.is_empty(),
                ) {
                    let k = rng.below(g.node[i].input.len());
                    g.node[i].input[k] = o;
                }
            }
            _ => {
                // Input/output value info: ranks and channels.
                let v = if rng.chance(2) {
                    g.input.first_mut()
                } else {
                    g.output.first_mut()
                };
                if let Some(pb::TypeProto {
                    value: Some(pb::type_proto::Value::TensorType(t)),
                    ..
                }) = v.and_then(|v| v.r#type.as_mut())
                    && let Some(s) = t.shape.as_mut()
                {
                    use pb::tensor_shape_proto::{Dimension, dimension::Value};
                    if rng.chance(2) && !s.dim.is_empty() {
                        s.dim.pop();
                    } else if !s.dim.is_empty() {
                        let k = rng.below(s.dim.len());
                        s.dim[k] = Dimension {
                            value: Some(Value::DimValue(*rng.pick(&INTERESTING_I64))),
                            ..Default::default()
                        };
                    }
                }
            }
        }
    }
    m.encode_to_vec()
}

fn onnx_seeds() -> Vec<Vec<u8>> {
    let mut seeds = corpus_dir("onnx");
    seeds.push(common::tiny_sr(1));
    if let Ok(b) = std::fs::read(root().join("assets/models/nawq_x2.onnx")) {
        seeds.push(b);
    }
    seeds
}

#[test]
fn fuzz_onnx_importer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.onnx");
    let n = std::sync::atomic::AtomicU64::new(0);
    run_harness("onnx", onnx_seeds(), mutate_onnx, |bytes| {
        std::fs::write(&path, bytes).unwrap();
        let k = n.fetch_add(1, Ordering::Relaxed);
        match nawqsr_codec::model::import(&path) {
            Ok(g) => {
                if !(2..=4).contains(&g.scale) {
                    return Verdict::Bug(format!("imported a ×{} model", g.scale));
                }
                // Now and then the FP32 reference too: tract behind the boundary.
                if k % 64 == 0
                    && let Err(e) = nawqsr_codec::model::reference::Fp32Reference::load(&path)
                {
                    return judge(&e);
                }
                Verdict::Ok
            }
            Err(e) => judge(&e),
        }
    });
}

// ---------------------------------------------------------------- (b) schedules

/// Structural mutations of a schedule's JSON: one random leaf or container.
fn mutate_json(rng: &mut Rng, input: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
    use serde_json::Value;
    if rng.chance(3) {
        return mutate_bytes(rng, input, corpus);
    }
    let Ok(mut v) = serde_json::from_slice::<Value>(input) else {
        return mutate_bytes(rng, input, corpus);
    };
    fn count(v: &Value) -> usize {
        1 + match v {
            Value::Array(a) => a.iter().map(count).sum(),
            Value::Object(o) => o.values().map(count).sum(),
            _ => 0,
        }
    }
    fn nth(v: &mut Value, n: &mut usize) -> Option<*mut Value> {
        if *n == 0 {
            return Some(v as *mut Value);
        }
        *n -= 1;
        match v {
            Value::Array(a) => a.iter_mut().find_map(|x| nth(x, n)),
            Value::Object(o) => o.values_mut().find_map(|x| nth(x, n)),
            _ => None,
        }
    }
    for _ in 0..1 + rng.below(3) {
        let mut k = rng.below(count(&v));
        let Some(p) = nth(&mut v, &mut k) else { break };
        // SAFETY: `p` points into `v`, which is alive and not otherwise borrowed here.
        let x = unsafe { &mut *p };
        let nums: [Value; 10] = [
            0.into(),
            1.into(),
            (-1).into(),
            16.into(),
            8.into(),
            255.into(),
            u64::MAX.into(),
            i64::MIN.into(),
            1e300.into(),
            (-0.5).into(),
        ];
        *x = match (rng.below(6), x.clone()) {
            (0 | 1, _) => rng.pick(&nums).clone(),
            (2, Value::Array(mut a)) if !a.is_empty() => {
                let i = rng.below(a.len());
                if rng.chance(2) {
                    a.remove(i);
                } else {
                    let e = a[i].clone();
                    a.push(e);
                }
                Value::Array(a)
            }
            (3, Value::Object(mut o)) if !o.is_empty() => {
                let key = o.keys().nth(rng.below(o.len())).unwrap().clone();
                o.remove(&key);
                Value::Object(o)
            }
            (4, _) => rng
                .pick(&[
                    Value::Null,
                    Value::Bool(true),
                    Value::String("x".into()),
                    Value::Array(vec![]),
                    Value::Object(Default::default()),
                ])
                .clone(),
            (_, Value::String(_)) => Value::String(
                rng.pick(&["", "int8", "a16w8", "per-tensor", "per-channel", "nan"])
                    .to_string(),
            ),
            (_, other) => other,
        };
    }
    serde_json::to_vec(&v).unwrap()
}

#[test]
fn fuzz_schedule_parser() {
    use nawqsr_codec::offline::schedule::Schedule;
    let model = root().join("assets/models/nawq_x2.onnx");
    let sched = root().join("schedules/nawq_x2.json");
    if !model.is_file() || !sched.is_file() {
        panic!("the bundled nawq_x2 model and schedule are part of the repository");
    }
    let graph = nawqsr_codec::model::import(&model).unwrap();
    let sha = nawqsr_codec::model::file_sha256(&model).unwrap();
    let mut seeds = corpus_dir("schedule");
    // Every schedule file (schedules/fronts/ holds more, with a `pareto` field).
    let dirs = [root().join("schedules"), root().join("schedules/fronts")];
    for d in dirs.iter().filter(|d| d.is_dir()) {
        for f in std::fs::read_dir(d).unwrap() {
            let p = f.unwrap().path();
            if p.is_file() {
                seeds.push(std::fs::read(p).unwrap());
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    run_harness("schedule", seeds, mutate_json, |bytes| {
        std::fs::write(&path, bytes).unwrap();
        match Schedule::load(&path, &graph, &sha) {
            Ok(s) => {
                // A schedule that loads must give plans for the graph it was checked against.
                let p = s.plan(&graph);
                let q = s.plan_with(&graph, |_, _| false);
                drop((p, q));
                Verdict::Ok
            }
            Err(e) => judge(&e),
        }
    });
}

// ---------------------------------------------------------------- (c) frames

const FORMATS: [PixelFormat; 7] = [
    PixelFormat::Rgb,
    PixelFormat::Rgbx,
    PixelFormat::Bgrx,
    PixelFormat::I420,
    PixelFormat::Nv12,
    PixelFormat::I42010le,
    PixelFormat::P01010le,
];

/// (row bytes, rows) of each plane, as GStreamer lays them out.
fn planes(f: PixelFormat, w: usize, h: usize) -> Vec<(usize, usize)> {
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    match f {
        PixelFormat::Rgb => vec![(3 * w, h)],
        PixelFormat::Rgbx | PixelFormat::Bgrx => vec![(4 * w, h)],
        PixelFormat::I420 => vec![(w, h), (cw, ch), (cw, ch)],
        PixelFormat::Nv12 => vec![(w, h), (2 * cw, ch)],
        PixelFormat::I42010le => vec![(2 * w, h), (2 * cw, ch), (2 * cw, ch)],
        PixelFormat::P01010le => vec![(2 * w, h), (4 * cw, ch)],
    }
}

/// One frame case: sizes, strides and plane lengths, sometimes wrong on purpose.
struct Case {
    format: PixelFormat,
    w: usize,
    h: usize,
    strides: [usize; 3],
    data: [Vec<u8>; 3],
    out_w: usize,
    out_h: usize,
    out_strides: [usize; 3],
    out_lens: [usize; 3],
    /// Everything consistent: the codec must accept it.
    valid: bool,
}

fn make_case(rng: &mut Rng, scale: usize) -> Case {
    let format = *rng.pick(&FORMATS);
    let dim = |rng: &mut Rng| match rng.below(12) {
        0 => 0,
        1 => *rng.pick(&[usize::MAX, usize::MAX / 3, 1 << 31, 1 << 20]),
        _ => 1 + rng.below(24),
    };
    let (w, h) = (dim(rng), dim(rng));
    let mut valid = (1..=1 << 16).contains(&w) && (1..=1 << 16).contains(&h);
    let mut strides = [0; 3];
    let mut data: [Vec<u8>; 3] = Default::default();
    let lay = if valid { planes(format, w, h) } else { vec![] };
    for i in 0..3 {
        let (row, rows) = lay.get(i).copied().unwrap_or((0, 0));
        strides[i] = match rng.below(8) {
            0 if row > 0 => row - 1 - rng.below(row.min(3)),
            1 => *rng.pick(&[0usize, usize::MAX, 1 << 40]),
            2..=4 => row + rng.below(64),
            _ => row,
        };
        let used = i < lay.len();
        // Bytes the plane needs; None: more than we allocate (1 MiB), or overflow.
        let need = if used {
            strides[i]
                .checked_mul(rows - 1)
                .and_then(|n| n.checked_add(row))
                .filter(|&n| n <= 1 << 20)
        } else {
            Some(64)
        };
        if used && (strides[i] < row || need.is_none()) {
            valid = false;
        }
        let need = need.unwrap_or(64);
        let len = match rng.below(10) {
            0 => need.saturating_sub(1 + rng.below(8)),
            1 => 0,
            _ => need + rng.below(32),
        };
        if used && len < need {
            valid = false;
        }
        data[i] = (0..len).map(|_| rng.next() as u8).collect();
    }
    let (mut out_w, mut out_h) = (w.wrapping_mul(scale), h.wrapping_mul(scale));
    if rng.chance(12) {
        out_w = out_w.wrapping_add(1);
        valid = false;
    }
    if rng.chance(12) {
        out_h = out_h.wrapping_sub(scale);
        valid = false;
    }
    let mut out_strides = [0; 3];
    let mut out_lens = [0; 3];
    let olay = if valid {
        planes(format, out_w, out_h)
    } else {
        vec![]
    };
    for i in 0..3 {
        let (row, rows) = olay.get(i).copied().unwrap_or((0, 0));
        out_strides[i] = if rng.chance(10) {
            row / 2
        } else {
            row + rng.below(16)
        };
        let need = if rows > 0 {
            out_strides[i] * (rows - 1) + row
        } else {
            64
        };
        out_lens[i] = if rng.chance(10) { need / 2 } else { need };
        if i < olay.len() && (out_strides[i] < row || out_lens[i] < need) {
            valid = false;
        }
    }
    Case {
        format,
        w,
        h,
        strides,
        data,
        out_w,
        out_h,
        out_strides,
        out_lens,
        valid,
    }
}

/// Runs a case into freshly allocated output planes; returns the visible bytes
/// of each output plane on success.
fn run_case(
    codec: &Codec,
    c: &Case,
    strides: [usize; 3],
    data: [&[u8]; 3],
) -> nawqsr_codec::Result<Vec<Vec<u8>>> {
    let src = FrameRef {
        format: c.format,
        width: c.w,
        height: c.h,
        planes: data,
        strides,
        colorimetry: Default::default(),
    };
    let mut bufs: Vec<Vec<u8>> = c.out_lens.iter().map(|&n| vec![0u8; n]).collect();
    let [a, b, d] = &mut bufs[..] else {
        unreachable!()
    };
    let mut dst = FrameMut {
        format: c.format,
        width: c.out_w,
        height: c.out_h,
        planes: [a, b, d],
        strides: c.out_strides,
        colorimetry: Default::default(),
    };
    codec.upscale(&src, &mut dst)?;
    Ok(planes(c.format, c.out_w, c.out_h)
        .iter()
        .enumerate()
        .map(|(i, &(row, rows))| {
            (0..rows)
                .flat_map(|y| bufs[i][y * c.out_strides[i]..][..row].to_vec())
                .collect()
        })
        .collect())
}

#[test]
fn fuzz_frames_through_codec_upscale() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.onnx");
    std::fs::write(&model, common::tiny_sr(3)).unwrap();
    let int8 = Codec::new(&CodecConfig {
        model: Some(model),
        mode: Mode::Int8,
        threads: 1,
        ..Default::default()
    })
    .unwrap();
    let bicubic = Codec::new(&CodecConfig {
        mode: Mode::Bicubic,
        scale: Some(3),
        ..Default::default()
    })
    .unwrap();
    let codecs = [&int8, &bicubic];
    // Inputs are generated, not mutated: the seed of each case is its input.
    // Plus the inputs that once crashed (codec/fuzz-corpus/frames: the stride
    // overflow in color::check_planes, 2026-12-03), kept as regressions.
    let mut seeds: Vec<Vec<u8>> = (0u64..16).map(|i| i.to_le_bytes().to_vec()).collect();
    seeds.extend(corpus_dir("frames").into_iter().filter(|s| s.len() == 8));
    run_harness(
        "frames",
        seeds,
        |rng, _, _| rng.next().to_le_bytes().to_vec(),
        |bytes| {
            let mut rng = Rng(u64::from_le_bytes(bytes.try_into().unwrap()) | 1);
            let codec = codecs[rng.below(2)];
            let c = make_case(&mut rng, codec.scale());
            let data = [&c.data[0][..], &c.data[1][..], &c.data[2][..]];
            match run_case(codec, &c, c.strides, data) {
                Err(e) if c.valid => Verdict::Bug(format!(
                    "a valid {:?} {}x{} frame (strides {:?}) was refused: {e}",
                    c.format, c.w, c.h, c.strides
                )),
                Err(e) => judge(&e),
                Ok(_) if !c.valid => Verdict::Bug(format!(
                    "an invalid {:?} {}x{} frame (strides {:?}, lens {:?}, out {}x{} {:?} {:?}) was accepted",
                    c.format,
                    c.w,
                    c.h,
                    c.strides,
                    c.data.iter().map(Vec::len).collect::<Vec<_>>(),
                    c.out_w,
                    c.out_h,
                    c.out_strides,
                    c.out_lens
                )),
                Ok(out) => {
                    // The same pixels packed tightly must give the same output.
                    let packed: Vec<Vec<u8>> = planes(c.format, c.w, c.h)
                        .iter()
                        .enumerate()
                        .map(|(i, &(row, rows))| {
                            (0..rows)
                                .flat_map(|y| c.data[i][y * c.strides[i]..][..row].to_vec())
                                .collect()
                        })
                        .collect();
                    let mut s = [0; 3];
                    let mut d: [&[u8]; 3] = [&[]; 3];
                    for (i, p) in packed.iter().enumerate() {
                        s[i] = planes(c.format, c.w, c.h)[i].0;
                        d[i] = p;
                    }
                    match run_case(codec, &c, s, d) {
                        Ok(o) if o == out => Verdict::Ok,
                        Ok(_) => Verdict::Bug(format!(
                            "{:?} {}x{}: output depends on the input strides {:?}",
                            c.format, c.w, c.h, c.strides
                        )),
                        Err(e) => Verdict::Bug(format!("packed twin refused: {e}")),
                    }
                }
            }
        },
    );
}

/// Not a harness: keeps `Path` in use for the corpus writer below.
#[test]
#[ignore = "writes codec/fuzz-corpus/onnx (run once when the seed models change)"]
fn write_onnx_corpus() {
    let dir: &Path = &root().join("codec/fuzz-corpus/onnx");
    std::fs::create_dir_all(dir).unwrap();
    for seed in [1u32, 2] {
        std::fs::write(
            dir.join(format!("tiny_sr_{seed}.onnx")),
            common::tiny_sr(seed),
        )
        .unwrap();
    }
}
