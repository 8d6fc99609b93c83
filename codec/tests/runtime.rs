//! Neural Image Codec runtime (§4.3): patches bit-identical to whole frames,
//! thread-count independence, streaming buffers, error surfacing.
//!
//! `cargo test --release -p nawqsr-codec --test runtime`
//! Benchmarks: `cargo test --release -p nawqsr-codec --test runtime -- --ignored --nocapture bench_`
use std::path::PathBuf;
use std::sync::Arc;

use nawqsr_codec::engine::tiles::run_tiled;
use nawqsr_codec::engine::{Engine, Plan, Tensor};
use nawqsr_codec::kernels::CpuLevel;
use nawqsr_codec::model;
use nawqsr_codec::quant::Bits;

/// ../shared, or None (with a one-line notice) when it is absent.
fn shared() -> Option<PathBuf> {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared"));
    if p.join("models").is_dir() {
        Some(p)
    } else {
        eprintln!("skipping: ../shared not found");
        None
    }
}

fn model_path(name: &str) -> Option<PathBuf> {
    shared().map(|s| s.join("models").join(format!("{name}.onnx")))
}

/// A deterministic test image: gradients, edges and noise in [0, 1].
fn image(h: usize, w: usize, seed: u64) -> Tensor {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut data = Vec::with_capacity(h * w * 3);
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let noise = ((s >> 33) % 1000) as f32 / 1000.0;
                let base = ((x * (c + 1) + y * 3) % 97) as f32 / 97.0;
                let edge = if (x / 7 + y / 5) % 2 == 0 { 0.2 } else { 0.0 };
                data.push((0.6 * base + 0.2 * noise + edge).clamp(0.0, 1.0));
            }
        }
    }
    Tensor { h, w, c: 3, data }
}

fn engine(name: &str) -> Option<Arc<Engine>> {
    let p = model_path(name)?;
    let g = model::import(&p).expect("model imports");
    Some(Arc::new(Engine::new(g, CpuLevel::detect(), 2)))
}

/// A static plan: ranges calibrated on one image (so static and DRE layers mix).
fn plans(e: &Engine) -> Vec<(&'static str, Plan)> {
    let cal = image(24, 20, 7);
    let cal = match e.graph.is_luma() {
        true => nawqsr_codec::runtime::luma::y_of(&cal),
        false => cal,
    };
    let ranges = e.calibrate(&[cal]).expect("calibrates");
    let g = &e.graph;
    let int8 = Plan::uniform(g, &ranges, Bits::B8);
    // Alternate bitwidth and DRE per conv: every partition boundary kind.
    let convs = g.conv_layers();
    let mixed = Plan::per_layer(g, &ranges, |l| {
        let k = convs.iter().position(|&c| c == l).unwrap_or(0);
        Some((if k % 3 == 1 { Bits::B16 } else { Bits::B8 }, k % 4 == 2))
    });
    vec![
        ("int8", int8.clone()),
        ("a16w8", int8.with_bits(Bits::B16)),
        ("dre8", Plan::all_dre(g, Bits::B8)),
        ("mixed", mixed),
    ]
}

/// Bands of `rows` rows equal the whole frame, bit for bit, at every size.
fn assert_tiled_equals_whole(
    e: &Engine,
    plan: &Plan,
    label: &str,
    sizes: &[(usize, usize)],
    rows: &[usize],
) {
    for &(w, h) in sizes {
        let x = image(h, w, (w * 31 + h) as u64);
        let whole = e.run(plan, &x).expect("whole frame runs");
        for &r in rows {
            let t = run_tiled(e, plan, &x, r).expect("tiled runs");
            assert!(
                t == whole,
                "{label} {w}x{h} rows {r}: tiled output differs from whole frame"
            );
        }
    }
}

fn check_tiled(name: &str, sizes: &[(usize, usize)], rows: &[usize]) {
    let Some(e) = engine(name) else { return };
    for (pname, plan) in plans(&e) {
        assert_tiled_equals_whole(&e, &plan, &format!("{name} {pname}"), sizes, rows);
    }
}

#[test]
fn tiled_equals_whole_imdn_rtc_x2() {
    check_tiled(
        "IMDN_RTC_x2",
        &[(1, 1), (7, 5), (97, 61)],
        &[1, 3, 16, 1000],
    );
}

/// IMDN_x4 also has its seven residual adds done by the convs before them
/// (`tiles::residuals`: six blocks' `c5 + input`, then `LR_conv + fea`).
#[test]
fn tiled_equals_whole_imdn_x4() {
    if let Some(e) = engine("IMDN_x4") {
        for (pname, plan) in plans(&e) {
            let tg = nawqsr_codec::engine::tiles::TileGraph::new(&e, &plan, 9, 11, 4).unwrap();
            let fused: std::collections::BTreeSet<usize> = tg
                .nodes
                .iter()
                .filter(|n| n.residual)
                .filter_map(|n| n.layer())
                .collect();
            assert_eq!(
                fused.len(),
                7,
                "IMDN_x4 {pname}: residual adds done by convs"
            );
        }
    }
    check_tiled("IMDN_x4", &[(1, 1), (7, 5), (33, 19)], &[1, 4, 8]);
}

/// The project's own bundled model (assets/models), present in every clone.
fn bundled(name: &str) -> Arc<Engine> {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/models"))
        .join(format!("{name}.onnx"));
    let g = model::import(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    Arc::new(Engine::new(g, CpuLevel::detect(), 2))
}

/// Plain conv chains store the values between convs quantized (the producer's
/// epilogue writes the consumer's integers); the result must not change.
#[test]
fn tiled_equals_whole_bundled_plain_nets() {
    use nawqsr_codec::engine::tiles::TileGraph;
    for name in ["nawq_x2", "nawq_x3", "nawq_x4"] {
        let e = bundled(name);
        for (pname, plan) in plans(&e) {
            let tg = TileGraph::new(&e, &plan, 19, 23, 4).expect("task graph");
            let stored = tg.quantized.iter().flatten().count();
            if pname != "dre8" {
                assert!(
                    stored > 0,
                    "{name} {pname}: no value between convs is stored quantized"
                );
            }
            let label = format!("{name} {pname}");
            assert_tiled_equals_whole(&e, &plan, &label, &[(1, 1), (23, 19), (64, 9)], &[1, 4, 16]);
        }
    }
}

/// The nawq models' last conv also does their tail (`tiles::tails`): the
/// depth-to-space with the anchor, as f32 for a tensor caller and, for a
/// caller that keeps bytes, as u8 pixels written by the conv's epilogue
/// (`kernels::Output::Pixels`; the luma models' 4 to 16 channels, on the
/// narrow layouts, through `ops::shuffle_anchor_u8`). Both equal the whole
/// frame, on every level the host has, every plan kind, in bands of 1, 4
/// and 16 rows.
#[test]
fn tails_equal_the_whole_frame_as_tensors_and_bytes() {
    use nawqsr_codec::engine::tiles::{Pixels, TileGraph, run_tiled_bytes};
    for name in [
        "nawq_x2",
        "nawq_x3",
        "nawq_x4",
        "nawq_luma_x2",
        "nawq_luma_x4",
    ] {
        for level in CpuLevel::supported() {
            let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/models"))
                .join(format!("{name}.onnx"));
            let e = Engine::new(model::import(&p).unwrap(), level, 1);
            for (pname, plan) in plans(&e) {
                let tg = TileGraph::new(&e, &plan, 9, 11, 4).expect("task graph");
                assert!(
                    tg.nodes.iter().any(|n| n.tail.is_some()),
                    "{name} {pname}: the last conv does not do the tail"
                );
                for (w, h) in [(1, 1), (23, 19), (64, 9)] {
                    let x = image(h, w, (w * 7 + h) as u64);
                    let lr = x.to_rgb();
                    let (x, px) = if e.graph.is_luma() {
                        let g = image::GrayImage::from_fn(w as u32, h as u32, |x, y| {
                            image::Luma([lr.get_pixel(x, y).0[1]])
                        });
                        let t = Tensor {
                            h,
                            w,
                            c: 1,
                            data: g.as_raw().iter().map(|&v| f32::from(v) / 255.0).collect(),
                        };
                        (t, Pixels::Gray(Arc::new(g)))
                    } else {
                        (Tensor::from_rgb(&lr), Pixels::Rgb(Arc::new(lr)))
                    };
                    let want = e.run(&plan, &x).expect("whole frame");
                    let mut want8 = vec![0u8; want.data.len()];
                    nawqsr_codec::tensor::to_u8_pixels(&want.data, &mut want8);
                    for rows in [1, 4, 16] {
                        let label = format!("{name} {} {pname} {w}x{h} rows {rows}", level.name());
                        let t = run_tiled(&e, &plan, &x, rows).unwrap();
                        assert!(t == want, "{label}: tensor differs from the whole frame");
                        let b = run_tiled_bytes(&e, &plan, px.clone(), rows).unwrap();
                        assert!(b == want8, "{label}: bytes differ from the whole frame's");
                    }
                }
            }
        }
    }
}

/// An IMDN-style distillation step, self-contained: conv (+ PReLU) → split
/// → one part kept, one to the next conv → concat → a channel gate from the
/// concat's mean (IMDN's attention, shortened) → conv. `sizes` 16 + 16 of 32
/// channels is written by the conv part by part (`engine::ConvSplit`); 12 +
/// 20 would need a third 16-lane block and stays a split. The gate is applied
/// by its conv while it quantizes its input (`tiles::gates`) when that conv
/// is static; a second conv reads the concat itself (IMDN's conv over its
/// six blocks), and the two convs' outputs are summed (by the second conv's
/// epilogue, `tiles::residuals`).
fn split_graph(sizes: [usize; 2]) -> model::Graph {
    use model::{Activation, Conv, Layer, Op, Spatial, ValueShape};
    let mut seed = 0x5EED_u64;
    let mut rnd = move |n: usize, amp: f32| -> Vec<f32> {
        (0..n)
            .map(|_| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((seed >> 33) as f32 / (1u64 << 31) as f32 - 0.5) * 2.0 * amp
            })
            .collect()
    };
    let mut conv = |in_c: usize, out_c: usize| {
        Op::Conv(Conv {
            in_c,
            out_c,
            kh: 3,
            kw: 3,
            stride: 1,
            dilation: 1,
            pads: [1; 4],
            groups: 1,
            weights: rnd(out_c * in_c * 9, 0.3),
            bias: rnd(out_c, 0.1),
        })
    };
    let img = |c| ValueShape {
        channels: c,
        spatial: Spatial::Image { factor: 1 },
    };
    let layer = |name: &str, op, inputs: Vec<usize>, outputs: Vec<usize>| Layer {
        name: name.into(),
        op,
        inputs,
        outputs,
    };
    let slopes: Vec<f32> = (0..32).map(|c| 0.05 * (c % 5) as f32).collect();
    let (a, b, c) = (conv(3, 32), conv(sizes[1], 16), conv(sizes[0] + 16, 3));
    let d = conv(sizes[0] + 16, 3);
    model::Graph {
        layers: vec![
            layer("a", a, vec![0], vec![1]),
            layer("act", Op::Act(Activation::PRelu(slopes)), vec![1], vec![2]),
            layer("split", Op::Split(sizes.to_vec()), vec![2], vec![3, 4]),
            layer("b", b, vec![4], vec![5]),
            layer("cat", Op::Concat, vec![3, 5], vec![6]),
            layer("mean", Op::GlobalAvgPool, vec![6], vec![8]),
            layer("gate", Op::MulChannel, vec![6, 8], vec![9]),
            layer("c", c, vec![9], vec![7]),
            layer("d", d, vec![6], vec![10]),
            layer("sum", Op::Add, vec![7, 10], vec![11]),
        ],
        values: vec![
            img(3),
            img(32),
            img(32),
            img(sizes[0]),
            img(sizes[1]),
            img(16),
            img(sizes[0] + 16),
            img(3),
            ValueShape {
                channels: sizes[0] + 16,
                spatial: Spatial::Pooled,
            },
            img(sizes[0] + 16),
            img(3),
            img(3),
        ],
        value_names: (0..12).map(|v| format!("v{v}")).collect(),
        input: 0,
        output: 11,
        scale: 1,
    }
}

/// A conv's split parts (issue 15 item 3): the conv writes them, the part
/// read by the next conv is stored quantized, a static conv applies its
/// input's channel gate, and every plan's bands equal the whole frame (conv,
/// then split; the gate, then the conv) bit for bit. The concat is then read
/// in parts (`tiles::parted`), by the mean and by the gated conv.
#[test]
fn split_parts_written_by_the_conv_equal_the_whole_frame() {
    use nawqsr_codec::engine::tiles::TileGraph;
    for (sizes, fused) in [([16, 16], true), ([12, 20], false)] {
        let e = Engine::new(split_graph(sizes), CpuLevel::detect(), 2);
        for (pname, plan) in plans(&e) {
            let tg = TileGraph::new(&e, &plan, 19, 23, 4).expect("task graph");
            let split_nodes = tg.nodes.iter().filter(|n| n.layer() == Some(2)).count();
            assert_eq!(
                split_nodes == 0,
                fused,
                "{sizes:?} {pname}: split nodes {split_nodes}"
            );
            let gate_nodes = tg.nodes.iter().filter(|n| n.layer() == Some(6)).count();
            let cat_nodes = tg.nodes.iter().filter(|n| n.layer() == Some(4)).count();
            // The sum of the two convs: done by the later one (`tiles::residuals`),
            // whose residual is the earlier one's output.
            let sum_nodes = tg.nodes.iter().filter(|n| n.layer() == Some(9)).count();
            let d = tg.nodes.iter().filter(|n| n.layer() == Some(8));
            assert!(
                sum_nodes == 0 && d.clone().all(|n| n.residual && n.outputs == [11]),
                "{sizes:?} {pname}: conv d does the residual add"
            );
            if matches!(pname, "int8" | "a16w8") {
                assert_eq!(
                    gate_nodes, 0,
                    "{sizes:?} {pname}: the static conv applies the gate"
                );
                assert_eq!(
                    cat_nodes, 0,
                    "{sizes:?} {pname}: the concat is read in parts"
                );
            }
            if pname == "dre8" {
                assert!(
                    gate_nodes > 0,
                    "{sizes:?}: a DRE conv reads the gated value's range"
                );
            }
            if fused && pname == "int8" {
                assert!(
                    tg.quantized[4].is_some() && tg.quantized[3].is_none(),
                    "{sizes:?}: the part the conv reads is stored quantized, the concat's is f32"
                );
            }
            let label = format!("{sizes:?} {pname}");
            assert_tiled_equals_whole(&e, &plan, &label, &[(1, 1), (23, 19), (40, 9)], &[1, 3, 16]);
        }
    }
}

use nawqsr_codec::runtime::{
    Codec, CodecConfig, FrameRef, Mode, PixelFormat, RuntimeOptions, StreamConfig, Timestamp,
};

fn cfg(name: &str, mode: Mode, threads: usize, patch: usize) -> Option<CodecConfig> {
    Some(CodecConfig {
        model: Some(model_path(name)?),
        mode,
        threads,
        patch_size: patch,
        ..Default::default()
    })
}

/// The dispatcher path (patches, 1 and 2 workers, coalescing on and off,
/// 1 or 2 frames in flight) equals the whole-frame engine, bit for bit.
fn check_codec(name: &str, sizes: &[(usize, usize)], patches: &[usize]) {
    let Some(e) = engine(name) else { return };
    for (pname, plan) in plans(&e) {
        let wholes: Vec<(Tensor, Tensor)> = sizes
            .iter()
            .map(|&(w, h)| {
                let x = image(h, w, (w * 17 + h * 3) as u64);
                let y = e.run(&plan, &x).expect("whole frame runs");
                (x, y)
            })
            .collect();
        for &threads in &[1, 2] {
            for &patch in patches {
                for (coalesce, fl) in [(true, 2), (false, 1)] {
                    let c = cfg(name, Mode::Int8, threads, patch).unwrap();
                    let opts = RuntimeOptions {
                        max_in_flight: fl,
                        coalesce,
                        split_partitions: false,
                    };
                    let codec =
                        Codec::with_plan(&c, e.clone(), plan.clone(), opts).expect("codec starts");
                    for (x, y) in &wholes {
                        let t = codec.upscale_tensor(x).expect("codec runs");
                        assert!(
                            &t == y,
                            "{name} {pname} {}x{} threads {threads} patch {patch} coalesce {coalesce}: differs from whole frame",
                            x.w,
                            x.h
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn codec_equals_whole_imdn_rtc_x2() {
    check_codec(
        "IMDN_RTC_x2",
        &[(1, 1), (7, 5), (97, 61), (320, 180)],
        &[1, 7, 16, 64],
    );
}

#[test]
fn codec_equals_whole_imdn_x4() {
    check_codec("IMDN_x4", &[(1, 1), (7, 5), (41, 23)], &[3, 16]);
}

#[test]
fn codec_equals_whole_imdn_x2_x3() {
    check_codec("IMDN_x2", &[(7, 5), (29, 17)], &[4]);
    check_codec("IMDN_x3", &[(7, 5), (29, 17)], &[4]);
}

/// One 4K-ish frame through IMDN_RTC_x2 (int8, all-DRE) with the default patch.
#[test]
fn codec_equals_whole_4k_imdn_rtc_x2() {
    let Some(e) = engine("IMDN_RTC_x2") else {
        return;
    };
    let plan = Plan::all_dre(&e.graph, Bits::B8);
    let x = image(2160, 3840, 4);
    let y = e.run(&plan, &x).expect("whole frame runs");
    let codec = Codec::with_plan(
        &cfg("IMDN_RTC_x2", Mode::Int8, 2, 0).unwrap(),
        e.clone(),
        plan,
        RuntimeOptions::default(),
    )
    .expect("codec starts");
    assert!(
        codec.upscale_tensor(&x).expect("runs") == y,
        "4K frame differs from whole frame"
    );
}

/// `Codec::new` in int8/a16w8 without an explicit schedule uses the model's
/// calibrated schedule from schedules/ (its static ranges at the mode's
/// bitwidth, no DRE), or the all-DRE plan when there is none; the RGB path
/// equals the engine's output converted to RGB, in every pixel format.
#[test]
fn codec_modes_and_formats() {
    let Some(e) = engine("IMDN_RTC_x2") else {
        return;
    };
    for (mode, bits) in [(Mode::Int8, Bits::B8), (Mode::A16w8, Bits::B16)] {
        let codec = Codec::new(&cfg("IMDN_RTC_x2", mode, 2, 8).unwrap()).expect("codec builds");
        let model = std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/models/IMDN_RTC_x2.onnx"
        ));
        let sha = nawqsr_codec::model::file_sha256(model).unwrap();
        let expected = match nawqsr_codec::offline::schedule::find_for_model(&sha) {
            Some(p) => p
                .load(&e.graph, &sha)
                .unwrap()
                .plan_with(&e.graph, |_, _| false)
                .with_bits(bits),
            None => Plan::all_dre(&e.graph, bits),
        };
        assert_eq!(codec.plan(), Some(&expected));
        let x = image(21, 34, 9);
        let lr = x.to_rgb();
        let want = e
            .run(codec.plan().unwrap(), &Tensor::from_rgb(&lr))
            .unwrap()
            .to_rgb();
        assert_eq!(
            codec.upscale_rgb(&lr).unwrap(),
            want,
            "{mode:?} upscale_rgb"
        );
        // Packed RGB with a padded stride through `upscale`.
        let (w, h) = (lr.width() as usize, lr.height() as usize);
        let stride = 3 * w + 5;
        let mut src = vec![0u8; stride * h];
        for y in 0..h {
            src[y * stride..][..3 * w].copy_from_slice(&lr.as_raw()[y * 3 * w..][..3 * w]);
        }
        let f = FrameRef {
            format: PixelFormat::Rgb,
            width: w,
            height: h,
            planes: [&src, &[], &[]],
            strides: [stride, 0, 0],
            colorimetry: Default::default(),
        };
        let (ow, oh) = (2 * w, 2 * h);
        let mut out = vec![0u8; 3 * ow * oh];
        let mut dst = nawqsr_codec::runtime::FrameMut {
            format: PixelFormat::Rgb,
            width: ow,
            height: oh,
            planes: [&mut out, &mut [], &mut []],
            strides: [3 * ow, 0, 0],
            colorimetry: Default::default(),
        };
        codec.upscale(&f, &mut dst).unwrap();
        assert_eq!(
            out,
            want.as_raw().as_slice(),
            "{mode:?} upscale (strided RGB)"
        );
    }
    // Hybrid finds IMDN_RTC_x2's schedule by hash; IMDN_x3 has none: an error.
    let found = Codec::new(&cfg("IMDN_RTC_x2", Mode::Hybrid, 1, 0).unwrap());
    let sha = nawqsr_codec::model::file_sha256(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/models/IMDN_RTC_x2.onnx"
    )))
    .unwrap();
    assert_eq!(
        found.is_ok(),
        nawqsr_codec::offline::schedule::find_for_model(&sha).is_some()
    );
    let err = Codec::new(&cfg("IMDN_x3", Mode::Hybrid, 1, 0).unwrap())
        .err()
        .expect("hybrid without schedule");
    assert!(err.to_string().contains("schedule"), "{err}");
}

/// An I420 buffer of `h` rows at `stride` (chroma rows at stride / 2 + 1), deterministic bytes.
fn i420(h: usize, stride: usize, seed: u8) -> Vec<u8> {
    let ch = h.div_ceil(2);
    let cs = stride / 2 + 1;
    let mut v = vec![0u8; stride * h + 2 * cs * ch];
    for (i, b) in v.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31).wrapping_add(seed) / 2 + 40;
    }
    v
}

/// The frame an [`i420`] buffer holds.
fn i420_frame(buf: &[u8], w: usize, h: usize, stride: usize) -> FrameRef<'_> {
    let cs = stride / 2 + 1;
    let (y_len, c_len) = (stride * h, cs * h.div_ceil(2));
    FrameRef {
        format: PixelFormat::I420,
        width: w,
        height: h,
        planes: [
            &buf[..y_len],
            &buf[y_len..y_len + c_len],
            &buf[y_len + c_len..],
        ],
        strides: [stride, cs, cs],
        colorimetry: Default::default(),
    }
}

/// A codec dropped with frames in flight, nobody receiving: the workers
/// finish or drop those frames and the dispatcher thread exits (completions
/// are handled on the workers, under the dispatcher's lock, so the last one
/// must wake it), for private workers (2) and the shared pool (0). A hang
/// fails the test instead of stalling the suite.
#[test]
fn codec_dropped_with_frames_in_flight_stops() {
    let model = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/models"))
        .join("nawq_x2.onnx");
    for threads in [2, 0] {
        let (done, rx) = std::sync::mpsc::channel();
        let model = model.clone();
        std::thread::spawn(move || {
            let codec = Codec::new(&CodecConfig {
                model: Some(model),
                mode: Mode::Int8,
                threads,
                ..Default::default()
            })
            .expect("codec builds");
            let stream = codec
                .stream(StreamConfig {
                    input_capacity: 4,
                    playback_capacity: 4,
                })
                .expect("stream opens");
            let (w, h, stride) = (640, 360, 640);
            let buf = i420(h, stride, 3);
            for i in 0..4u64 {
                let f = i420_frame(&buf, w, h, stride);
                stream
                    .submit(&f, Timestamp::new(i * 40, 40))
                    .expect("submit");
            }
            drop(stream);
            drop(codec);
            let _ = done.send(());
        });
        assert!(
            rx.recv_timeout(std::time::Duration::from_secs(120)).is_ok(),
            "threads {threads}: dropping the codec with frames in flight did not return"
        );
    }
}

/// 1,000 small I420 frames, a slow consumer: bounded buffers, order and
/// timestamps kept, nothing lost, EOS drains everything.
#[test]
fn stream_thousand_frames_slow_consumer() {
    let Some(c) = cfg("IMDN_RTC_x2", Mode::Int8, 2, 4) else {
        return;
    };
    let codec = Codec::new(&c).expect("codec builds");
    let scfg = StreamConfig {
        input_capacity: 3,
        playback_capacity: 2,
    };
    let stream = codec.stream(scfg).expect("stream opens");
    let (w, h, stride) = (9, 7, 12);
    let n = 1000u64;
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..n {
                let buf = i420(h, stride, i as u8);
                let f = i420_frame(&buf, w, h, stride);
                stream
                    .submit(&f, Timestamp::new(1000 + i * 40, 40))
                    .expect("submit");
                assert!(
                    stream.pending() <= 3 + 2 + 2 + 1,
                    "pending {} exceeds buffers + in flight",
                    stream.pending()
                );
            }
            stream.eos();
        });
        let mut next = 0u64;
        while let Some(f) = stream.receive().expect("receive") {
            assert_eq!(f.seq, next);
            assert_eq!(
                f.ts,
                Timestamp::new(1000 + next * 40, 40),
                "timestamp of frame {next}"
            );
            assert_eq!((f.frame.width(), f.frame.height()), (2 * w, 2 * h));
            next += 1;
            if next.is_multiple_of(50) {
                // Slow consumer: the producer must wait, not grow memory.
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        assert_eq!(next, n, "frames lost");
    });
    let st = codec.stats();
    assert_eq!(st.frames, n);
    assert_eq!(st.failed_frames, 0);
    assert!(
        st.input_queue_max <= 3 && st.playback_queue_max <= 2,
        "{st:?}"
    );
    assert!(st.in_flight_max <= 2, "{st:?}");
}

/// An injected worker error and a worker panic surface as errors from
/// `upscale` and `receive`; the codec keeps working afterwards.
#[test]
fn worker_faults_surface_as_errors() {
    let Some(c) = cfg("IMDN_RTC_x2", Mode::Int8, 2, 4) else {
        return;
    };
    let codec = Codec::new(&c).expect("codec builds");
    let lr = image(12, 10, 1).to_rgb();
    let good = codec.upscale_rgb(&lr).expect("runs");
    for panic in [false, true] {
        codec.inject_fault(panic).unwrap();
        let r = codec.upscale_rgb(&lr);
        assert!(r.is_err(), "fault (panic {panic}) must surface");
        assert_eq!(codec.upscale_rgb(&lr).expect("recovers"), good);
    }
    let stream = codec.stream(StreamConfig::default()).unwrap();
    stream.submit_rgb(&lr, Timestamp::new(0, 1)).unwrap();
    assert!(stream.receive().unwrap().is_some());
    codec.inject_fault(true).unwrap();
    stream.submit_rgb(&lr, Timestamp::new(1, 1)).unwrap();
    stream.submit_rgb(&lr, Timestamp::new(2, 1)).unwrap();
    assert!(
        stream.receive().is_err(),
        "panicking frame surfaces from receive"
    );
    let last = stream.receive().unwrap().expect("next frame still arrives");
    assert_eq!(last.ts, Timestamp::new(2, 1));
    stream.eos();
    assert!(stream.receive().unwrap().is_none());
    assert_eq!(codec.stats().failed_frames, 3);
}

// ---------------------------------------------------------------------------
// Benchmarks (ignored; numbers for BENCHMARKS.md):
// cargo test --release -p nawqsr-codec --test runtime -- --ignored --nocapture --test-threads 1 bench_

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn thread_cpu_ms() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 * 1e-6
}

/// (median wall ms/frame, mean worker CPU ms/frame) of `runs` frames after 2
/// warm-ups. The host is shared, so the CPU time is the load-independent cost.
fn time_codec(codec: &Codec, x: &Tensor, runs: usize) -> (f64, f64) {
    for _ in 0..2 {
        codec.upscale_patches(x.clone()).unwrap();
    }
    codec.reset_stats();
    let wall = median(
        (0..runs)
            .map(|_| {
                let t = std::time::Instant::now();
                codec.upscale_patches(x.clone()).unwrap();
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect(),
    );
    (wall, codec.stats().worker_cpu_s * 1e3 / runs as f64)
}

/// Whole-frame engine on the calling thread (threads = 1): (wall, CPU) medians.
fn time_engine(e: &Engine, plan: &Plan, x: &Tensor, runs: usize) -> (f64, f64) {
    e.run(plan, x).unwrap();
    let (mut w, mut c) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let (t, c0) = (std::time::Instant::now(), thread_cpu_ms());
        e.run(plan, x).unwrap();
        w.push(t.elapsed().as_secs_f64() * 1e3);
        c.push(thread_cpu_ms() - c0);
    }
    (median(w), median(c))
}

fn engine_threads(name: &str, threads: usize) -> Option<Arc<Engine>> {
    let g = model::import(&model_path(name)?).unwrap();
    Some(Arc::new(Engine::new(g, CpuLevel::detect(), threads)))
}

fn codec_for(
    name: &str,
    e: &Arc<Engine>,
    plan: &Plan,
    threads: usize,
    patch: usize,
    opts: RuntimeOptions,
) -> Codec {
    Codec::with_plan(
        &cfg(name, Mode::Int8, threads, patch).unwrap(),
        e.clone(),
        plan.clone(),
        opts,
    )
    .unwrap()
}

/// Static plans: ranges calibrated on one synthetic frame of the benchmark size.
fn bench_plans(e: &Engine, x: &Tensor) -> Vec<(&'static str, Plan)> {
    let r = e.calibrate(std::slice::from_ref(x)).unwrap();
    let g = &e.graph;
    vec![
        ("int8", Plan::uniform(g, &r, Bits::B8)),
        ("a16w8", Plan::uniform(g, &r, Bits::B16)),
        ("int8-dre", Plan::all_dre(g, Bits::B8)),
        ("a16w8-dre", Plan::all_dre(g, Bits::B16)),
    ]
}

#[test]
#[ignore]
fn bench_throughput() {
    let runs = 7;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    eprintln!("load average at start: {}", load.trim());
    for (name, w, h) in [("IMDN_x4", 320, 180), ("IMDN_RTC_x2", 960, 540)] {
        let Some(e1) = engine_threads(name, 1) else {
            return;
        };
        let x = image(h, w, 3);
        let gmac = e1.graph.total_macs(h, w) as f64 / 1e9;
        eprintln!(
            "\n{name} {w}x{h} ({gmac:.2} GMAC/frame), median of {runs} after 2 warm-ups; wall ms/frame (CPU ms/frame)"
        );
        eprintln!(
            "{:<10} {:>18} {:>18} {:>18} {:>8} {:>12}",
            "plan", "whole-frame 1t", "codec 1 worker", "codec 2 workers", "scaling", "GMAC/s/core"
        );
        for (pname, plan) in bench_plans(&e1, &x) {
            let (ew, ec) = time_engine(&e1, &plan, &x, runs);
            let (c1w, c1c) = time_codec(
                &codec_for(name, &e1, &plan, 1, 0, RuntimeOptions::default()),
                &x,
                runs,
            );
            let (c2w, c2c) = time_codec(
                &codec_for(name, &e1, &plan, 2, 0, RuntimeOptions::default()),
                &x,
                runs,
            );
            eprintln!(
                "{pname:<10} {:>18} {:>18} {:>18} {:>7.2}x {:>12.1}",
                format!("{ew:.1} ({ec:.1})"),
                format!("{c1w:.1} ({c1c:.1})"),
                format!("{c2w:.1} ({c2c:.1})"),
                c1w / c2w,
                gmac / (c2c / 1e3)
            );
        }
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    eprintln!("load average at end: {}", load.trim());
}

#[test]
#[ignore]
fn bench_patch_size() {
    let runs = 5;
    for (name, w, h) in [("IMDN_x4", 320, 180), ("IMDN_RTC_x2", 960, 540)] {
        let Some(e) = engine_threads(name, 1) else {
            return;
        };
        let x = image(h, w, 3);
        let plan = bench_plans(&e, &x).remove(0).1;
        eprintln!(
            "\n{name} {w}x{h} int8 (static), 2 workers: patch rows -> wall ms/frame (worker CPU ms/frame), median of {runs}"
        );
        for rows in [2, 4, 8, 16, 32, 64, h] {
            let c = codec_for(name, &e, &plan, 2, rows, RuntimeOptions::default());
            let (wl, cpu) = time_codec(&c, &x, runs);
            eprintln!("  rows {rows:>4}: {wl:>8.1} ({cpu:.1})");
        }
    }
}

/// §5.2: DRE overhead and partition-switching overhead.
#[test]
#[ignore]
fn bench_overheads() {
    let runs = 7;
    for (name, w, h) in [("IMDN_x4", 320, 180), ("IMDN_RTC_x2", 960, 540)] {
        let Some(e) = engine_threads(name, 1) else {
            return;
        };
        let x = image(h, w, 3);
        let plans = bench_plans(&e, &x);
        eprintln!(
            "\n{name} {w}x{h}, 2 workers, median of {runs}; wall ms/frame (worker CPU ms/frame)"
        );
        for (stat, dre) in [(0, 2), (1, 3)] {
            let (sn, sp) = &plans[stat];
            let (dn, dp) = &plans[dre];
            let cs = codec_for(name, &e, sp, 2, 0, RuntimeOptions::default());
            let cd = codec_for(name, &e, dp, 2, 0, RuntimeOptions::default());
            let (tsw, tsc) = time_codec(&cs, &x, runs);
            let (tdw, tdc) = time_codec(&cd, &x, runs);
            let st = cd.stats();
            eprintln!(
                "  DRE on all convs: {sn} {tsw:.1} ({tsc:.1}) vs {dn} {tdw:.1} ({tdc:.1}): {:+.2} % wall, {:+.2} % CPU; RQU reductions {:.3} ms/frame = {:.2} % of worker time",
                (tdw / tsw - 1.0) * 100.0,
                (tdc / tsc - 1.0) * 100.0,
                st.dre_s * 1e3 / st.frames as f64,
                st.dre_fraction * 100.0
            );
        }
        let plan = &plans[0].1;
        let base = codec_for(name, &e, plan, 2, 0, RuntimeOptions::default());
        let split = codec_for(
            name,
            &e,
            plan,
            2,
            0,
            RuntimeOptions {
                split_partitions: true,
                ..Default::default()
            },
        );
        let (tbw, tbc) = time_codec(&base, &x, runs);
        let sb = base.stats();
        let (tsw, tsc) = time_codec(&split, &x, runs);
        let ss = split.stats();
        let extra = ss.partition_switches as f64 / ss.frames as f64
            - sb.partition_switches as f64 / sb.frames as f64;
        eprintln!(
            "  partitions {} -> {} (every conv its own, alternating units): {tbw:.1} ({tbc:.1}) -> {tsw:.1} ({tsc:.1}); {extra:.0} extra switches/frame: {:.1} us wall / {:.1} us CPU per switch ({:+.2} % / {:+.2} % of inference); dispatch latency at a switch {:.1} us (all items {:.1} us)",
            sb.partitions.len(),
            ss.partitions.len(),
            (tsw - tbw) * 1e3 / extra.max(1.0),
            (tsc - tbc) * 1e3 / extra.max(1.0),
            (tsw - tbw) / tbw * 100.0,
            (tsc - tbc) / tbc * 100.0,
            ss.switch_latency_us,
            ss.dispatch_latency_us
        );
        for u in &ss.units {
            eprintln!(
                "    unit {}: {} items, {} nodes, busy {:.2} s, queue max {}",
                u.unit, u.items, u.nodes, u.busy_s, u.queue_max
            );
        }
    }
}

/// Hybrid mode with the project's schedule (when present): the codec's patches
/// equal the whole-frame engine under the schedule's plan; int8/a16w8 with a
/// schedule use its static ranges without DRE.
#[test]
fn codec_hybrid_schedule_equals_whole() {
    for name in ["IMDN_RTC_x2", "IMDN_x4"] {
        let sched = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../schedules"))
            .join(format!("{name}.json"));
        let Some(mut c) = cfg(name, Mode::Hybrid, 2, 5) else {
            return;
        };
        if !sched.is_file() {
            eprintln!("skipping {name}: no schedule at {}", sched.display());
            continue;
        }
        c.schedule = Some(sched);
        let codec = match Codec::new(&c) {
            Ok(codec) => codec,
            Err(e) => panic!("{name}: hybrid codec with the bundled schedule: {e}"),
        };
        let e = codec.engine().unwrap().clone();
        let plan = codec.plan().unwrap().clone();
        let x = image(23, 37, 5);
        assert!(
            codec.upscale_tensor(&x).unwrap() == e.run(&plan, &x).unwrap(),
            "{name} hybrid"
        );
        for mode in [Mode::Int8, Mode::A16w8] {
            let codec = Codec::new(&CodecConfig { mode, ..c.clone() }).unwrap();
            let p = codec.plan().unwrap();
            assert!(
                (0..p.convs.len()).all(|i| !p.is_dre(i)),
                "{mode:?} with a schedule has no DRE"
            );
            assert!(
                codec.upscale_tensor(&x).unwrap() == e.run(p, &x).unwrap(),
                "{name} {mode:?}"
            );
        }
    }
}
