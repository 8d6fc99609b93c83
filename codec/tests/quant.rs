//! The quantized engine: integer units against float, exact cases, invariance.
mod common;

use nawqsr_codec::engine::ops::FloatConv;
use nawqsr_codec::engine::{Engine, Plan, Tensor};
use nawqsr_codec::kernels::{self, CpuLevel};
use nawqsr_codec::model::{self, Conv};
use nawqsr_codec::quant::{Bits, QParams, WeightGranularity};
use nawqsr_codec::units::QConv;

fn conv(in_c: usize, out_c: usize, k: usize, seed: u32) -> Conv {
    let r = |n: usize, s: u32| -> Vec<f32> {
        (0..n as u32)
            .map(|i| {
                ((i.wrapping_mul(2654435761).wrapping_add(s * 7919)) % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    };
    Conv {
        in_c,
        out_c,
        kh: k,
        kw: k,
        stride: 1,
        dilation: 1,
        pads: [k / 2; 4],
        groups: 1,
        weights: r(out_c * in_c * k * k, seed)
            .iter()
            .map(|v| v * 0.2)
            .collect(),
        bias: r(out_c, seed + 1),
    }
}

fn input(h: usize, w: usize, c: usize, lo: f32, hi: f32) -> Tensor {
    let data = (0..h * w * c)
        .map(|i| lo + (hi - lo) * (((i * 7919 + 13) % 1009) as f32 / 1008.0))
        .collect();
    Tensor { h, w, c, data }
}

/// The integer conv equals the float conv on the dequantized input and
/// weights, up to the i32 bias rounding (≤ ½ accumulator unit) and f32 rounding.
#[test]
fn units_match_float_on_dequantized_operands() {
    for bits in [Bits::B8, Bits::B16] {
        for (ic, oc, k) in [(3, 16, 3), (16, 12, 1), (12, 27, 3), (64, 48, 3)] {
            let c = conv(ic, oc, k, (ic * oc) as u32);
            let q = QConv::new(&c, WeightGranularity::PerChannel);
            let x = input(9, 11, ic, -0.7, 1.9);
            let qp = QParams::from_range(-0.7, 1.9, bits);
            let xhat = Tensor {
                data: x
                    .data
                    .iter()
                    .map(|&v| qp.dequantize(qp.quantize(v)))
                    .collect(),
                ..x.clone()
            };
            let reference = FloatConv::new(&c, &q.weights.dequantized()).run(&xhat, None, 1);
            for level in CpuLevel::supported() {
                let y = q.run(level, &x, &qp, &kernels::Activation::None, 2);
                for (i, (a, b)) in y.data.iter().zip(&reference.data).enumerate() {
                    let oc_i = i % oc;
                    let unit = q.weights.scale[oc_i] / qp.scale; // one accumulator unit
                    let tol = 0.5 * unit + 1e-4 * b.abs().max(1.0) * (ic * k * k) as f32 / 64.0;
                    assert!(
                        (a - b).abs() <= tol,
                        "{bits:?} {level:?} ic{ic} oc{oc} k{k}: {a} vs {b} (tol {tol})"
                    );
                }
            }
        }
    }
}

/// Power-of-two scales: every operand is exactly representable, so the
/// integer path reproduces the float result exactly.
#[test]
fn power_of_two_scales_are_exact() {
    let mut c = conv(8, 8, 3, 5);
    // weights k/64 with |k| ≤ 127 and one weight of each channel = ±127/64, so s_w = 1/64 exactly
    for (i, w) in c.weights.iter_mut().enumerate() {
        *w = (((i * 37) % 255) as f32 - 127.0) / 64.0;
    }
    for o in 0..8 {
        c.weights[o * 72] = 127.0 / 64.0;
        c.bias[o] = (o as f32 - 4.0) / 8.0;
    }
    let q = QConv::new(&c, WeightGranularity::PerChannel);
    assert!(q.weights.scale.iter().all(|&s| s == 1.0 / 64.0));
    let qp = QParams {
        bits: Bits::B8,
        scale: 32.0,
        zero: -64.0,
    }; // x = (q − 64)/32 ∈ [−2, 5.97]
    let x = Tensor {
        h: 5,
        w: 6,
        c: 8,
        data: (0..240)
            .map(|i| ((i * 11 % 256) as f32 - 64.0) / 32.0)
            .collect(),
    };
    let reference = FloatConv::new(&c, &c.weights).run(&x, None, 1);
    for level in CpuLevel::supported() {
        let y = q.run(level, &x, &qp, &kernels::Activation::None, 1);
        assert_eq!(y.data, reference.data, "{level:?}");
    }
}

/// Results do not depend on the number of threads or on the order rows are
/// processed in.
#[test]
fn engine_is_thread_count_invariant() {
    let Some(shared) = common::shared() else {
        return;
    };
    let g = model::import(&shared.join("models/IMDN_RTC_x2.onnx")).unwrap();
    let img = input(37, 29, 3, 0.0, 1.0);
    let e1 = Engine::new(g.clone(), CpuLevel::detect(), 1);
    let e2 = Engine::new(g, CpuLevel::detect(), 2);
    let ranges = e1.calibrate(std::slice::from_ref(&img)).unwrap();
    for bits in [Bits::B8, Bits::B16] {
        let p = Plan::uniform(&e1.graph, &ranges, bits);
        assert_eq!(
            e1.run(&p, &img).unwrap(),
            e2.run(&p, &img).unwrap(),
            "{bits:?}"
        );
    }
}

/// The three modes order as they should on a real model: A16W8 is closer to
/// FP32 than INT8, both are close, and DRE on every layer is no worse than a
/// static A16W8 far from its calibration data.
#[test]
fn quantized_modes_track_fp32() {
    let Some(shared) = common::shared() else {
        return;
    };
    let g = model::import(&shared.join("models/IMDN_RTC_x2.onnx")).unwrap();
    let e = Engine::new(g, CpuLevel::detect(), 2);
    // A natural image: synthetic noise patterns exaggerate quantization error.
    let bird = nawqsr_codec::metrics::load_rgb(&shared.join("datasets/Set5/bird.png")).unwrap();
    let img = Tensor::from_rgb(&image::imageops::crop_imm(&bird, 100, 100, 64, 48).to_image());
    let ranges = e.calibrate(std::slice::from_ref(&img)).unwrap();
    let fp = e.run(&Plan::fp32(&e.graph), &img).unwrap();
    let err = |p: &Plan| {
        let y = e.run(p, &img).unwrap();
        (y.data
            .iter()
            .zip(&fp.data)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum::<f64>()
            / y.data.len() as f64)
            .sqrt()
    };
    let w8 = err(&Plan::fp32w8(&e.graph));
    let i8 = err(&Plan::uniform(&e.graph, &ranges, Bits::B8));
    let a16 = err(&Plan::uniform(&e.graph, &ranges, Bits::B16));
    eprintln!("rms error vs fp32: fp32w8 {w8:.2e} int8 {i8:.2e} a16w8 {a16:.2e}");
    assert!(a16 < i8, "A16W8 {a16} should beat INT8 {i8}");
    assert!(a16 <= w8 * 1.05 + 1e-5, "A16W8 {a16} ≈ FP32W8 {w8}");
    assert!(i8 < 0.01, "INT8 rms error {i8} on [0,1] pixels");
}

#[test]
fn model_memory_is_8bit_weights_once() {
    let Some(shared) = common::shared() else {
        return;
    };
    let g = model::import(&shared.join("models/IMDN_x4.onnx")).unwrap();
    let params = g.params();
    let e = Engine::new(g, CpuLevel::detect(), 1);
    let bytes = e.model_bytes();
    eprintln!(
        "IMDN_x4: {params} params, integer model {} KB",
        bytes / 1024
    );
    // One i8 weight per parameter, shared by both units (plus per-level packed copies, reported).
    let weights: usize = e
        .graph
        .conv_layers()
        .iter()
        .map(|&i| e.qconv(i).unwrap().weights.q.len())
        .sum();
    let fp32_weights: usize = e
        .graph
        .conv_layers()
        .iter()
        .map(|&i| match &e.graph.layers[i].op {
            nawqsr_codec::model::Op::Conv(c) => c.weights.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(weights, fp32_weights);
    assert!(
        bytes > weights,
        "packed size {bytes} must include the weights"
    );
}

/// Where an integer conv's time goes (run with --ignored --nocapture).
#[test]
#[ignore]
fn profile_unit_conv() {
    let c = conv(64, 64, 3, 1);
    let q = QConv::new(&c, WeightGranularity::PerChannel);
    let x = input(180, 320, 64, -0.5, 2.0);
    let qp = QParams::from_range(-0.5, 2.0, Bits::B8);
    for threads in [1, 2] {
        let t = std::time::Instant::now();
        for _ in 0..5 {
            let mut xq = vec![0u8; x.data.len()];
            nawqsr_codec::quant::params::quantize_u8(&x.data, &qp, &mut xq);
            std::hint::black_box(&xq);
        }
        let tq = t.elapsed().as_secs_f64() / 5.0;
        let t = std::time::Instant::now();
        for _ in 0..5 {
            std::hint::black_box(q.run(
                CpuLevel::detect(),
                &x,
                &qp,
                &kernels::Activation::Leaky(0.05),
                threads,
            ));
        }
        let tr = t.elapsed().as_secs_f64() / 5.0;
        eprintln!(
            "threads {threads}: quantize {:.1} ms, unit run {:.1} ms ({:.0} GMAC/s)",
            tq * 1e3,
            tr * 1e3,
            180.0 * 320.0 * 64.0 * 576.0 / tr / 1e9
        );
    }
}
