//! Kernel benchmarks for `nawqsr bench-kernels` and the `bench_table` test: the peak of each
//! level's dot-product instruction mix (register-only loops), and single-thread conv timings.
//!
//! The table: `cargo test --release -p nawqsr-codec --test kernels -- --ignored --nocapture bench_table`

use std::hint::black_box;
use std::time::Instant;

use super::{Activation, ConvGeom, CpuLevel, Epilogue, Output, PackedConv, conv_u8, conv_u16};

/// Multiply-accumulates per second of a level's inner-loop instruction mix, one thread.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Peak {
    /// u8 × i8 MACs/s.
    pub int8_macs_per_s: f64,
    /// u16 × i8 MACs/s of the byte-sliced mix (each u16 MAC is two u8 × i8 MACs).
    pub int16_macs_per_s: f64,
}

/// One conv timing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConvBench {
    pub level: CpuLevel,
    pub u16_input: bool,
    /// Median time of one full-frame conv (thread CPU time, see `thread_seconds`).
    pub median_s: f64,
    /// Fastest run.
    pub min_s: f64,
    /// MACs of one conv.
    pub macs: u64,
    /// Billions of MACs per second at the median.
    pub gmacs: f64,
    pub runs: usize,
}

/// Loop iterations are calibrated so each measurement takes about this long.
const PEAK_SECONDS: f64 = 0.2;

/// Seconds of CPU time this thread has run. The benchmarks time with it rather than the wall
/// clock: the dev host is shared (2 cores, other builds running), and a descheduled thread's
/// wall time measures the other processes. On an idle machine the two agree.
fn thread_seconds() -> f64 {
    #[cfg(target_os = "linux")]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec through the valid pointer it is given.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        if rc == 0 {
            return ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9;
        }
    }
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

/// Peak of the level's dot-product instruction, in a register-only loop on one thread:
/// `tdpbusd` on 4 accumulator tiles (AMX), `vpdpbusd` (AVX-512 VNNI), `vpmaddwd` + `vpaddd` (AVX2),
/// and a plain i32 dot-product loop as the compiler builds it for the scalar kernel.
/// The 16-bit figure runs the byte-sliced mix (separate low/high accumulators) and counts
/// u16 MACs, so it is measured, not assumed to be half.
pub fn measure_peak(level: CpuLevel) -> Peak {
    assert!(
        level <= CpuLevel::host_max(),
        "{} is above this host's {}",
        level.name(),
        CpuLevel::host_max().name()
    );
    let int8 = rate(|n| peak_loop(level, false, n));
    let int16 = rate(|n| peak_loop(level, true, n));
    Peak {
        int8_macs_per_s: int8,
        int16_macs_per_s: int16,
    }
}

/// Runs `f(iters)` (which returns the MACs it did) with iterations calibrated so one run takes
/// about [`PEAK_SECONDS`]; returns the best of three runs (the machine may be shared, and the
/// best run is the one least disturbed).
fn rate(f: impl Fn(u64) -> u64) -> f64 {
    let mut iters = 1u64 << 12;
    loop {
        let t = thread_seconds();
        f(iters);
        let dt = thread_seconds() - t;
        if dt > PEAK_SECONDS / 16.0 {
            iters = ((iters as f64) * PEAK_SECONDS / dt).max(1.0) as u64;
            break;
        }
        iters *= 4;
    }
    (0..3)
        .map(|_| {
            let t = thread_seconds();
            let macs = f(iters);
            macs as f64 / (thread_seconds() - t)
        })
        .fold(0.0, f64::max)
}

/// One peak measurement: `iters` iterations; returns the (u8 or u16) MACs performed.
fn peak_loop(level: CpuLevel, u16_mix: bool, iters: u64) -> u64 {
    match level {
        CpuLevel::Scalar => scalar_peak(u16_mix, iters),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `measure_peak` asserted the host has this level (AVX2).
        CpuLevel::Avx2 => unsafe { avx2_peak(u16_mix, iters) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `measure_peak` asserted the host has this level (AVX-512 VNNI).
        CpuLevel::Avx512Vnni => unsafe { avx512vnni_peak(u16_mix, iters) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `measure_peak` asserted the host has this level (AMX, permission granted).
        CpuLevel::Amx => unsafe { super::amx::peak(u16_mix, iters) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!(),
    }
}

/// The scalar kernel's inner loop: a 64-long u8·i8 dot product into i32, on L1-resident data.
fn scalar_peak(u16_mix: bool, iters: u64) -> u64 {
    let x: [u8; 64] = std::array::from_fn(|i| (i * 37 % 251) as u8);
    let xh: [u8; 64] = std::array::from_fn(|i| (i * 11 % 253) as u8);
    let w: [i8; 64] = std::array::from_fn(|i| (i as i32 * 13 % 255 - 127) as i8);
    let mut acc = 0i32;
    for _ in 0..iters {
        let (x, xh, w) = black_box((&x, &xh, &w));
        acc = acc.wrapping_add(
            x.iter()
                .zip(w)
                .map(|(&a, &b)| a as i32 * b as i32)
                .sum::<i32>(),
        );
        if u16_mix {
            acc = acc.wrapping_add(
                xh.iter()
                    .zip(w)
                    .map(|(&a, &b)| a as i32 * b as i32)
                    .sum::<i32>(),
            );
        }
    }
    black_box(acc);
    iters * 64
}

/// 12 independent `vpmaddwd` + `vpaddd` chains (8 i32 lanes × 2 products each): the AVX2
/// kernel's instruction mix. u16 mix: the same instructions, 6 low-byte and 6 high-byte chains.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn avx2_peak(u16_mix: bool, iters: u64) -> u64 {
    // SAFETY: register-only loop, touches no memory; every register it writes is declared.
    unsafe {
        std::arch::asm!(
            "2:",
            "vpmaddwd ymm12, ymm14, ymm15",
            "vpaddd ymm0, ymm0, ymm12",
            "vpmaddwd ymm13, ymm14, ymm15",
            "vpaddd ymm1, ymm1, ymm13",
            "vpmaddwd ymm12, ymm14, ymm15",
            "vpaddd ymm2, ymm2, ymm12",
            "vpmaddwd ymm13, ymm14, ymm15",
            "vpaddd ymm3, ymm3, ymm13",
            "vpmaddwd ymm12, ymm14, ymm15",
            "vpaddd ymm4, ymm4, ymm12",
            "vpmaddwd ymm13, ymm14, ymm15",
            "vpaddd ymm5, ymm5, ymm13",
            "vpmaddwd ymm12, ymm14, ymm15",
            "vpaddd ymm6, ymm6, ymm12",
            "vpmaddwd ymm13, ymm14, ymm15",
            "vpaddd ymm7, ymm7, ymm13",
            "vpmaddwd ymm12, ymm14, ymm15",
            "vpaddd ymm8, ymm8, ymm12",
            "vpmaddwd ymm13, ymm14, ymm15",
            "vpaddd ymm9, ymm9, ymm13",
            "vpmaddwd ymm12, ymm14, ymm15",
            "vpaddd ymm10, ymm10, ymm12",
            "vpmaddwd ymm13, ymm14, ymm15",
            "vpaddd ymm11, ymm11, ymm13",
            "dec {n}",
            "jnz 2b",
            n = inout(reg) iters.max(1) => _,
            out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _,
            out("ymm4") _, out("ymm5") _, out("ymm6") _, out("ymm7") _,
            out("ymm8") _, out("ymm9") _, out("ymm10") _, out("ymm11") _,
            out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _,
            options(nomem, nostack),
        );
    }
    // 12 vpmaddwd × 16 products: 192 u8 MACs, or 96 u16 MACs in the byte-sliced mix.
    iters.max(1) * if u16_mix { 96 } else { 192 }
}

/// 16 independent `vpdpbusd` chains (16 i32 lanes × 4 products each). u16 mix: the same
/// instruction count, half the chains on the low-byte input, half on the high-byte input.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn avx512vnni_peak(u16_mix: bool, iters: u64) -> u64 {
    // SAFETY: register-only loop, touches no memory; every register it writes is declared.
    unsafe {
        std::arch::asm!(
            "2:",
            "vpdpbusd zmm0, zmm16, zmm18",
            "vpdpbusd zmm1, zmm17, zmm18",
            "vpdpbusd zmm2, zmm16, zmm19",
            "vpdpbusd zmm3, zmm17, zmm19",
            "vpdpbusd zmm4, zmm16, zmm20",
            "vpdpbusd zmm5, zmm17, zmm20",
            "vpdpbusd zmm6, zmm16, zmm21",
            "vpdpbusd zmm7, zmm17, zmm21",
            "vpdpbusd zmm8, zmm16, zmm18",
            "vpdpbusd zmm9, zmm17, zmm18",
            "vpdpbusd zmm10, zmm16, zmm19",
            "vpdpbusd zmm11, zmm17, zmm19",
            "vpdpbusd zmm12, zmm16, zmm20",
            "vpdpbusd zmm13, zmm17, zmm20",
            "vpdpbusd zmm14, zmm16, zmm21",
            "vpdpbusd zmm15, zmm17, zmm21",
            "dec {n}",
            "jnz 2b",
            n = inout(reg) iters.max(1) => _,
            out("zmm0") _, out("zmm1") _, out("zmm2") _, out("zmm3") _,
            out("zmm4") _, out("zmm5") _, out("zmm6") _, out("zmm7") _,
            out("zmm8") _, out("zmm9") _, out("zmm10") _, out("zmm11") _,
            out("zmm12") _, out("zmm13") _, out("zmm14") _, out("zmm15") _,
            out("zmm16") _, out("zmm17") _, out("zmm18") _, out("zmm19") _,
            out("zmm20") _, out("zmm21") _,
            options(nomem, nostack),
        );
    }
    // 16 vpdpbusd × 64 products: 1024 u8 MACs, or 512 u16 MACs (zmm16 = low, zmm17 = high bytes).
    iters.max(1) * if u16_mix { 512 } else { 1024 }
}

/// Median time of `g` (all output rows) on random data, single thread, repeated for at least
/// `min_time_s` (and at least 3 runs). INT8 writes u8, A16W8 writes u16, both with ReLU, as the
/// engine's layers do.
pub fn bench_conv(level: CpuLevel, g: &ConvGeom, u16_input: bool, min_time_s: f64) -> ConvBench {
    let mut r = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        r
    };
    let icpg = g.in_c / g.groups;
    let weights: Vec<i8> = (0..g.out_c * icpg * g.kh * g.kw)
        .map(|_| ((next() % 255) as i32 - 127) as i8)
        .collect();
    let w = PackedConv::new(&weights, g.out_c, icpg, g.kh, g.kw, g.groups);
    let n_in = g.in_h * g.in_w * g.in_c;
    let n_out = g.out_h() * g.out_w() * g.out_c;
    let mult = vec![1.0 / 4096.0; g.out_c];
    let offset = vec![3.0; g.out_c];
    let act = Activation::Relu;
    let epi = Epilogue {
        mult: &mult,
        offset: &offset,
        act: &act,
    };
    let rows = 0..g.out_h();
    let in8: Vec<u8>;
    let in16: Vec<u16>;
    let mut out8 = vec![0u8; n_out];
    let mut out16 = vec![0u16; n_out];
    let mut once: Box<dyn FnMut()> = if u16_input {
        in16 = (0..n_in).map(|_| next() as u16).collect();
        Box::new(|| {
            let out = Output::U16 {
                data: &mut out16,
                pixel_stride: g.out_c,
                scale: 1.0,
                zero: 0.0,
            };
            conv_u16(level, g, &in16, g.in_c, 0, &w, &epi, rows.clone(), out);
        })
    } else {
        in8 = (0..n_in).map(|_| next() as u8).collect();
        Box::new(|| {
            let out = Output::U8 {
                data: &mut out8,
                pixel_stride: g.out_c,
                scale: 1.0,
                zero: 0.0,
            };
            conv_u8(level, g, &in8, g.in_c, 0, &w, &epi, rows.clone(), out);
        })
    };
    once(); // warm-up: scratch buffers, caches, page faults
    let start = Instant::now();
    let mut times = Vec::new();
    while times.len() < 3 || start.elapsed().as_secs_f64() < min_time_s {
        let t = thread_seconds();
        once();
        times.push(thread_seconds() - t);
    }
    times.sort_by(f64::total_cmp);
    let median_s = times[times.len() / 2];
    let macs = g.macs();
    ConvBench {
        level,
        u16_input,
        median_s,
        min_s: times[0],
        macs,
        gmacs: macs as f64 / median_s / 1e9,
        runs: times.len(),
    }
}

/// Peak f32 multiply-accumulates per second of the host's widest fused
/// multiply-add (`vfmadd231ps` on zmm with AVX-512F, on ymm with AVX2+FMA,
/// else scalar `mul_add`), in a register-only loop on one thread: the
/// denominator of the float conv kernel's % of peak (issue 16 item 4).
pub fn measure_f32_peak() -> (&'static str, f64) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F was just detected.
            return ("avx512f", rate(|n| unsafe { fma_peak_avx512(n) }));
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: AVX2 and FMA were just detected.
            return ("avx2+fma", rate(|n| unsafe { fma_peak_avx2(n) }));
        }
    }
    ("scalar", rate(fma_peak_scalar))
}

fn fma_peak_scalar(iters: u64) -> u64 {
    let mut acc = [0f32; 8];
    let (x, w) = (black_box(1.0001f32), black_box(0.9999f32));
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = x.mul_add(w, *a);
        }
    }
    black_box(acc);
    iters * 8
}

/// 16 independent `vfmadd231ps` zmm chains: 256 f32 MACs per iteration.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fma_peak_avx512(iters: u64) -> u64 {
    // SAFETY: register-only loop, touches no memory; every register it writes is declared.
    unsafe {
        std::arch::asm!(
            "2:",
            "vfmadd231ps zmm0, zmm16, zmm17",
            "vfmadd231ps zmm1, zmm16, zmm17",
            "vfmadd231ps zmm2, zmm16, zmm17",
            "vfmadd231ps zmm3, zmm16, zmm17",
            "vfmadd231ps zmm4, zmm16, zmm17",
            "vfmadd231ps zmm5, zmm16, zmm17",
            "vfmadd231ps zmm6, zmm16, zmm17",
            "vfmadd231ps zmm7, zmm16, zmm17",
            "vfmadd231ps zmm8, zmm16, zmm17",
            "vfmadd231ps zmm9, zmm16, zmm17",
            "vfmadd231ps zmm10, zmm16, zmm17",
            "vfmadd231ps zmm11, zmm16, zmm17",
            "vfmadd231ps zmm12, zmm16, zmm17",
            "vfmadd231ps zmm13, zmm16, zmm17",
            "vfmadd231ps zmm14, zmm16, zmm17",
            "vfmadd231ps zmm15, zmm16, zmm17",
            "dec {n}",
            "jnz 2b",
            n = inout(reg) iters.max(1) => _,
            out("zmm0") _, out("zmm1") _, out("zmm2") _, out("zmm3") _,
            out("zmm4") _, out("zmm5") _, out("zmm6") _, out("zmm7") _,
            out("zmm8") _, out("zmm9") _, out("zmm10") _, out("zmm11") _,
            out("zmm12") _, out("zmm13") _, out("zmm14") _, out("zmm15") _,
            out("zmm16") _, out("zmm17") _,
            options(nomem, nostack),
        );
    }
    iters.max(1) * 256
}

/// 12 independent `vfmadd231ps` ymm chains: 96 f32 MACs per iteration.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_peak_avx2(iters: u64) -> u64 {
    // SAFETY: register-only loop, touches no memory; every register it writes is declared.
    unsafe {
        std::arch::asm!(
            "2:",
            "vfmadd231ps ymm0, ymm14, ymm15",
            "vfmadd231ps ymm1, ymm14, ymm15",
            "vfmadd231ps ymm2, ymm14, ymm15",
            "vfmadd231ps ymm3, ymm14, ymm15",
            "vfmadd231ps ymm4, ymm14, ymm15",
            "vfmadd231ps ymm5, ymm14, ymm15",
            "vfmadd231ps ymm6, ymm14, ymm15",
            "vfmadd231ps ymm7, ymm14, ymm15",
            "vfmadd231ps ymm8, ymm14, ymm15",
            "vfmadd231ps ymm9, ymm14, ymm15",
            "vfmadd231ps ymm10, ymm14, ymm15",
            "vfmadd231ps ymm11, ymm14, ymm15",
            "dec {n}",
            "jnz 2b",
            n = inout(reg) iters.max(1) => _,
            out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _,
            out("ymm4") _, out("ymm5") _, out("ymm6") _, out("ymm7") _,
            out("ymm8") _, out("ymm9") _, out("ymm10") _, out("ymm11") _,
            out("ymm14") _, out("ymm15") _,
            options(nomem, nostack),
        );
    }
    iters.max(1) * 96
}

/// Median seconds (thread CPU time) of the float conv kernel on `g` (same
/// padding, random data, one thread, no activation), repeated for at least
/// `min_time_s` and 3 runs; and the GMAC/s at that median.
pub fn bench_float_conv(g: &ConvGeom, min_time_s: f64) -> (f64, f64) {
    use crate::engine::ops::FloatConv;
    use crate::model::Conv;
    let (k, ic, oc) = (g.kh, g.in_c, g.out_c);
    let conv = Conv {
        in_c: ic,
        out_c: oc,
        kh: k,
        kw: g.kw,
        stride: 1,
        dilation: 1,
        pads: [k / 2, g.kw / 2, k - 1 - k / 2, g.kw - 1 - g.kw / 2],
        groups: 1,
        weights: (0..oc * ic * k * g.kw)
            .map(|i| ((i * 7919) % 97) as f32 / 97.0 - 0.5)
            .collect(),
        bias: vec![0.01; oc],
    };
    let f = FloatConv::new(&conv, &conv.weights);
    let x = crate::tensor::Tensor {
        h: g.in_h,
        w: g.in_w,
        c: ic,
        data: (0..g.in_h * g.in_w * ic)
            .map(|i| ((i * 31) % 53) as f32 / 53.0)
            .collect(),
    };
    let macs = (g.in_h * g.in_w * oc * ic * k * g.kw) as f64;
    let mut times = vec![];
    let start = thread_seconds();
    while times.len() < 3 || thread_seconds() - start < min_time_s {
        let t = thread_seconds();
        black_box(f.run(&x, None, 1));
        times.push(thread_seconds() - t);
    }
    times.sort_by(f64::total_cmp);
    let med = times[times.len() / 2];
    (med, macs / med / 1e9)
}
