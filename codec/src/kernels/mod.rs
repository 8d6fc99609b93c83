//! Integer convolution kernels: the arithmetic of the emulated NPU's two units (§4.3, §5).
//!
//! - The **INT8 unit** ([`conv_u8`]): u8 activations × i8 weights, exact i32 accumulation.
//! - The **A16W8 unit** ([`conv_u16`]): u16 activations × i8 weights, byte-sliced
//!   (x = hi·256 + lo), i.e. two u8×i8 accumulations with the *same* packed weights, so it costs
//!   exactly 2× the INT8 work and needs no extra weight memory (§4.3: "NAWQ-SR shares the weights
//!   between the activation wordlength representations").
//!
//! Both finish with one fused epilogue ([`epilogue`]) that is defined once and performed with the
//! same f32 operations in the same order on every level, so every level is bit-exact with
//! [`CpuLevel::Scalar`] (checked by `codec/tests/kernels.rs` on every level the host has).
//!
//! This module knows nothing about models: it multiplies packed integer blocks and applies
//! epilogues. Layout is HWC (channel-last): element (y, x, c) at `(y*w + x)*pixel_stride + c`.
//!
//! Levels and their kernels. Numbers: single thread, 320×180, from
//! `cargo test --release -p nawqsr-codec --test kernels -- --ignored --nocapture bench_table`
//! on the 2-core AVX-512 VNNI Xeon dev host (median GMAC/s; the host was shared, ±10 %):
//! - `Scalar`: [`scalar`], the specification. Plain loops; handles every geometry. ~3 GMAC/s.
//! - `Avx2`: [`avx2`], u8 → i16 widening + `vpmaddwd` (exact; `vpmaddubsw` would saturate to i16
//!   since 255·127·2 > 32767), 4 pixels × 16 output channels per micro-kernel. 3×3 64→64:
//!   67 GMAC/s INT8 of a 75 GMAC/s `vpmaddwd`+`vpaddd` peak.
//! - `Avx512Vnni`: [`avx512`], `vpdpbusd` (non-saturating), 4-byte input broadcast × 16 output
//!   channels per zmm, tiles 6 px × 64 ch, 8 × 48, 10 × 32, for ≤ 16 channels 10 px × 16 ch
//!   on paired K octets, and for ≤ 8 channels 12 px × 4 (or 8) ch on 16-byte K chunks ("quad":
//!   each 128-bit lane one channel, its 4 partial sums added before a 4-pixel epilogue). 3×3 64→64: 354 GMAC/s INT8 (best run 385) of a 427 GMAC/s `vpdpbusd`
//!   peak, 186 GMAC/s A16W8; 1×1 64→64: 208 GMAC/s (there K = 64 and the epilogue, ~12 vector
//!   ops per 16 outputs, costs about as much as the dot products).
//! - `Amx`: [`amx`], `tdpbusd` on 16 × 64 tiles (16 pixels of a row read straight from the band
//!   × up to 64 channels per pass), AVX2 epilogue. Detected by CPUID + Linux `arch_prctl(ARCH_REQ_XCOMP_PERM)`.
//!   **No development host had AMX**: the driver runs on every AVX2 host under a software model
//!   of the tile unit ([`conv_u8_amx_model`], tested against scalar), and on an AMX host the
//!   hardware must match that model on a self-test before the level is selected.
//!
//! Grouped convolutions (groups > 1, incl. depthwise) run the scalar body on every level: the
//! models on the hot path use groups = 1, and the scalar body is the specification.

pub mod bench;
pub mod epilogue;
mod pack;
mod scalar;

#[cfg(target_arch = "x86_64")]
mod amx;
#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;

use std::ops::Range;
use std::sync::OnceLock;

pub use epilogue::{Activation, Epilogue, Output};
pub use pack::PackedConv;

/// Instruction-set level of a kernel path. Ordered: a host that has a level has all lower ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CpuLevel {
    Scalar,
    Avx2,
    Avx512Vnni,
    /// Intel AMX (tile + int8) with the OS permission granted, and the tile kernel's self-test
    /// passed.
    Amx,
}

/// Environment variable that may *lower* the detected level (never raise it).
pub const CPU_LEVEL_ENV: &str = "NAWQSR_CPU_LEVEL";

impl CpuLevel {
    pub const ALL: [CpuLevel; 4] = [
        CpuLevel::Scalar,
        CpuLevel::Avx2,
        CpuLevel::Avx512Vnni,
        CpuLevel::Amx,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CpuLevel::Scalar => "scalar",
            CpuLevel::Avx2 => "avx2",
            CpuLevel::Avx512Vnni => "avx512vnni",
            CpuLevel::Amx => "amx",
        }
    }

    /// Parses the names accepted by `NAWQSR_CPU_LEVEL` (case-insensitive).
    pub fn parse(s: &str) -> Option<CpuLevel> {
        let s = s.trim().to_ascii_lowercase();
        CpuLevel::ALL.into_iter().find(|l| l.name() == s)
    }

    /// The highest level this host can run (cached).
    pub fn host_max() -> CpuLevel {
        static HOST: OnceLock<CpuLevel> = OnceLock::new();
        *HOST.get_or_init(detect_host)
    }

    /// The level to use: [`CpuLevel::host_max`], lowered by `NAWQSR_CPU_LEVEL` if set
    /// (`scalar|avx2|avx512vnni|amx`; a value above the host max is capped, an unknown value is
    /// ignored with a warning). Decided and logged once per process.
    pub fn detect() -> CpuLevel {
        static LEVEL: OnceLock<CpuLevel> = OnceLock::new();
        *LEVEL.get_or_init(|| {
            let host = CpuLevel::host_max();
            let env = std::env::var(CPU_LEVEL_ENV).ok();
            let level = CpuLevel::lowered(host, env.as_deref());
            tracing::info!(
                "kernels: host max {}, using {} ({})",
                host.name(),
                level.name(),
                level.kernel_description()
            );
            level
        })
    }

    /// `host` lowered by an optional `NAWQSR_CPU_LEVEL` value: a lower level is taken, a higher
    /// one is capped at `host`, an unknown one is ignored; both of the latter warn.
    pub fn lowered(host: CpuLevel, env: Option<&str>) -> CpuLevel {
        let Some(v) = env else { return host };
        match CpuLevel::parse(v) {
            Some(req) if req <= host => req,
            Some(_) => {
                tracing::warn!(
                    "{CPU_LEVEL_ENV}={v}: the host only has {}, keeping it (the variable may only \
                     lower the level)",
                    host.name()
                );
                host
            }
            None => {
                tracing::warn!(
                    "{CPU_LEVEL_ENV}={v} ignored (expected scalar, avx2, avx512vnni or amx)"
                );
                host
            }
        }
    }

    /// Every level this host can run, ascending (the bit-exactness tests iterate over these).
    pub fn supported() -> Vec<CpuLevel> {
        let host = CpuLevel::host_max();
        CpuLevel::ALL.into_iter().filter(|l| *l <= host).collect()
    }

    /// Which kernels a level actually runs.
    pub fn kernel_description(self) -> &'static str {
        match self {
            CpuLevel::Scalar => "scalar reference kernels",
            CpuLevel::Avx2 => "AVX2 vpmaddwd kernels",
            CpuLevel::Avx512Vnni => "AVX-512 VNNI vpdpbusd kernels",
            CpuLevel::Amx => "AMX-INT8 tdpbusd kernels (AVX2 epilogue)",
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn detect_host() -> CpuLevel {
    let avx2 = std::arch::is_x86_feature_detected!("avx2");
    let vnni = avx2
        && std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vl")
        && std::arch::is_x86_feature_detected!("avx512vnni");
    if !avx2 {
        return CpuLevel::Scalar;
    }
    if !vnni {
        return CpuLevel::Avx2;
    }
    // SAFETY: `amx_usable` checked the CPUID bits and obtained the XTILEDATA permission, and
    // AVX2 is present (checked above).
    let amx = amx_usable();
    if amx && unsafe { amx::hardware_matches_model() } {
        CpuLevel::Amx
    } else {
        if amx {
            // Never seen on a development host (none had AMX): kept as a guard, not a path.
            tracing::warn!(
                "kernels: the AMX tile kernel disagrees with its software model on this CPU; \
                 using AVX-512 VNNI (please report)"
            );
        }
        CpuLevel::Avx512Vnni
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect_host() -> CpuLevel {
    CpuLevel::Scalar
}

/// Whether this CPU and OS offer AMX-INT8 (CPUID bits and the Linux XTILEDATA permission),
/// whatever the self-test decided: with `CpuLevel::host_max() < Amx` on such a host, the tile
/// kernel disagreed with its model (a test turns that into a failure).
pub fn amx_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx2") && amx_usable();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// AMX needs the CPU bits (CPUID.(EAX=7,ECX=0):EDX bit 24 AMX-TILE, bit 25 AMX-INT8) *and*, on
/// Linux, permission to use the XTILEDATA state component (`arch_prctl(ARCH_REQ_XCOMP_PERM, 18)`),
/// which the kernel refuses when it (or the hypervisor) does not enable AMX.
#[cfg(target_arch = "x86_64")]
fn amx_usable() -> bool {
    // CPUID leaf 7 exists whenever AVX2 was detected (the caller only gets here after that).
    let leaf7 = std::arch::x86_64::__cpuid_count(7, 0);
    let tile = leaf7.edx & (1 << 24) != 0;
    let int8 = leaf7.edx & (1 << 25) != 0;
    tile && int8 && amx_os_permission()
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn amx_os_permission() -> bool {
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: arch_prctl(ARCH_REQ_XCOMP_PERM) only asks the kernel for permission to use an
    // extended state component; it takes two integers and touches no memory of ours.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        )
    };
    rc == 0
}

#[cfg(all(target_arch = "x86_64", not(target_os = "linux")))]
fn amx_os_permission() -> bool {
    false
}

/// Geometry of one 2-D convolution over an HWC tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConvGeom {
    pub in_h: usize,
    pub in_w: usize,
    /// Total input channels (all groups).
    pub in_c: usize,
    /// Total output channels (all groups).
    pub out_c: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub dilation: usize,
    pub pad_top: usize,
    pub pad_left: usize,
    pub pad_bottom: usize,
    pub pad_right: usize,
    pub groups: usize,
}

impl ConvGeom {
    /// A stride-1, dilation-1, groups-1 conv with "same" padding for odd kernels.
    pub fn same(in_h: usize, in_w: usize, in_c: usize, out_c: usize, k: usize) -> ConvGeom {
        let p = k / 2;
        ConvGeom {
            in_h,
            in_w,
            in_c,
            out_c,
            kh: k,
            kw: k,
            stride: 1,
            dilation: 1,
            pad_top: p,
            pad_left: p,
            pad_bottom: p,
            pad_right: p,
            groups: 1,
        }
    }

    fn out_len(n: usize, pa: usize, pb: usize, k: usize, s: usize, d: usize) -> usize {
        let span = d * (k - 1) + 1;
        let padded = n + pa + pb;
        if padded < span {
            0
        } else {
            (padded - span) / s + 1
        }
    }

    pub fn out_h(&self) -> usize {
        Self::out_len(
            self.in_h,
            self.pad_top,
            self.pad_bottom,
            self.kh,
            self.stride,
            self.dilation,
        )
    }

    pub fn out_w(&self) -> usize {
        Self::out_len(
            self.in_w,
            self.pad_left,
            self.pad_right,
            self.kw,
            self.stride,
            self.dilation,
        )
    }

    /// Multiply-accumulates of the whole output.
    pub fn macs(&self) -> u64 {
        (self.out_h() * self.out_w()) as u64
            * self.out_c as u64
            * (self.in_c / self.groups.max(1)) as u64
            * (self.kh * self.kw) as u64
    }
}

/// The input of one call: which unit's activations.
#[derive(Clone, Copy)]
pub(crate) enum Src<'a> {
    U8 { data: &'a [u8], pad: u8 },
    U16 { data: &'a [u16], pad: u16 },
}

/// INT8 unit: u8 input × i8 weights, exact i32 accumulation, fused epilogue. Computes output rows
/// `rows` (a sub-range of `0..out_h`, so callers can split work across threads and patches); `out`
/// holds exactly those rows (row r of the range at offset `(r - rows.start) * out_w * pixel_stride`).
///
/// `pad` is the quantized value of real 0 (padded taps read it). Panics if `level` is above
/// [`CpuLevel::host_max`] or if any slice is too short for the geometry.
#[allow(clippy::too_many_arguments)]
pub fn conv_u8(
    level: CpuLevel,
    g: &ConvGeom,
    input: &[u8],
    in_pixel_stride: usize,
    pad: u8,
    w: &PackedConv,
    epi: &Epilogue,
    rows: Range<usize>,
    out: Output,
) {
    run(
        Backend::Level(level),
        g,
        Src::U8 { data: input, pad },
        in_pixel_stride,
        w,
        epi,
        rows,
        out,
    );
}

/// A16W8 unit: u16 input × i8 weights. Byte-sliced: x = hi·256 + lo with hi, lo in 0..=255, two
/// u8×i8 accumulations with the same packed weights (exactly 2× the INT8 work, and the same kernel
/// on every level). Epilogue input: `(acc_hi as f32) * 256.0 + (acc_lo as f32)`.
#[allow(clippy::too_many_arguments)]
pub fn conv_u16(
    level: CpuLevel,
    g: &ConvGeom,
    input: &[u16],
    in_pixel_stride: usize,
    pad: u16,
    w: &PackedConv,
    epi: &Epilogue,
    rows: Range<usize>,
    out: Output,
) {
    run(
        Backend::Level(level),
        g,
        Src::U16 { data: input, pad },
        in_pixel_stride,
        w,
        epi,
        rows,
        out,
    );
}

/// What computes a call: a CPU level's kernels, or (tests) the AMX driver with its tile
/// instructions run by the software model of the tile unit.
#[derive(Clone, Copy)]
enum Backend {
    Level(CpuLevel),
    #[cfg(target_arch = "x86_64")]
    AmxModel,
}

#[allow(clippy::too_many_arguments)]
fn run(
    backend: Backend,
    g: &ConvGeom,
    src: Src,
    in_ps: usize,
    w: &PackedConv,
    epi: &Epilogue,
    rows: Range<usize>,
    mut out: Output,
) {
    let level = match backend {
        Backend::Level(l) => l,
        // The model's driver finishes with the AVX2 epilogue.
        #[cfg(target_arch = "x86_64")]
        Backend::AmxModel => CpuLevel::Avx2,
    };
    check_args(level, g, src, in_ps, w, epi, &rows, &out);
    if rows.is_empty() || g.out_w() == 0 {
        return;
    }
    // Grouped convs (incl. depthwise) take the scalar body on every level (see module docs), and
    // so do degenerate ones (no input or output channels), for which nothing SIMD is packed.
    if g.groups != 1 || g.in_c == 0 || g.out_c == 0 {
        return scalar::conv(g, src, in_ps, w, epi, rows, &mut out);
    }
    if !in_epilogue(backend, w, &out) {
        return through_f32(backend, g, src, in_ps, w, epi, rows, out);
    }
    match backend {
        Backend::Level(CpuLevel::Scalar) => scalar::conv(g, src, in_ps, w, epi, rows, &mut out),
        #[cfg(target_arch = "x86_64")]
        Backend::Level(CpuLevel::Avx2) => avx2::conv(g, src, in_ps, w, epi, rows, &mut out),
        #[cfg(target_arch = "x86_64")]
        Backend::Level(CpuLevel::Avx512Vnni) => avx512::conv(g, src, in_ps, w, epi, rows, &mut out),
        #[cfg(target_arch = "x86_64")]
        Backend::Level(CpuLevel::Amx) => {
            let p = w
                .amx
                .as_ref()
                .expect("AMX weights are packed whenever the host has AMX");
            amx::conv(&mut amx::HwTiles, g, src, in_ps, p, epi, rows, &mut out)
        }
        #[cfg(target_arch = "x86_64")]
        Backend::AmxModel => {
            // Packed here: the host (no AMX) did not pack this layout at load.
            let p = pack::AmxPack::new(&w.scalar, g.out_c, g.in_c, g.kh * g.kw);
            amx::conv(
                &mut amx::EmuTiles::new(),
                g,
                src,
                in_ps,
                &p,
                epi,
                rows,
                &mut out,
            )
        }
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!("check_args caps the level at the host max"),
    }
}

/// Whether `backend`'s epilogue writes `out` itself: every output on the scalar
/// specification; [`Output::Pixels`] and [`Output::Plus`] on the VNNI and AVX2 tiles of 16
/// (8) channels (`writes_pixels`, `wide_tiles`). The narrow layouts (VNNI quad, AVX2
/// paired: ≤ 8 channels) and AMX take [`through_f32`] for those.
fn in_epilogue(backend: Backend, w: &PackedConv, out: &Output) -> bool {
    let Backend::Level(level) = backend else {
        return !matches!(out, Output::Pixels { .. } | Output::Plus { .. });
    };
    match out {
        Output::Pixels {
            block, channels, ..
        } => writes_pixels(level, w, *block, *channels),
        Output::Plus { .. } => wide_tiles(level, w),
        _ => true,
    }
}

/// The levels whose epilogue adds a residual and writes pixels: the scalar specification,
/// and the VNNI and AVX2 tiles of 16 (8) channels.
fn wide_tiles(level: CpuLevel, w: &PackedConv) -> bool {
    match level {
        CpuLevel::Scalar => true,
        #[cfg(target_arch = "x86_64")]
        CpuLevel::Avx512Vnni => w
            .vnni
            .as_ref()
            .is_some_and(|p| p.layout != pack::VnniLayout::Quad),
        #[cfg(target_arch = "x86_64")]
        CpuLevel::Avx2 => w.avx2.as_ref().is_some_and(|p| !p.paired),
        _ => false,
    }
}

/// Whether `level`'s epilogue writes [`Output::Pixels`] of `block` and `channels` for these
/// weights itself (other calls convert f32 rows, slower than a caller's own pass over them):
/// the wide tiles, with HR runs of at least 3 bytes (`RawOutput::pixel_runs`) and, on AVX2,
/// an anchor of at most 8 channels (one 8-lane permute).
pub fn writes_pixels(level: CpuLevel, w: &PackedConv, block: usize, channels: usize) -> bool {
    let simd = level != CpuLevel::Scalar;
    wide_tiles(level, w)
        && (!simd || block * channels >= 3)
        && (level != CpuLevel::Avx2 || channels <= 8)
}

/// An output the kernel's epilogue does not write ([`in_epilogue`]): the f32 rows, a few at a
/// time so that they stay in cache, then the rest of the epilogue on them: `Output::store`
/// (a `Plus`'s residual, then its output's step 4) or, for pixels, [`pixels_of_rows`].
#[allow(clippy::too_many_arguments)]
fn through_f32(
    backend: Backend,
    g: &ConvGeom,
    src: Src,
    in_ps: usize,
    w: &PackedConv,
    epi: &Epilogue,
    rows: Range<usize>,
    mut out: Output,
) {
    let (out_w, oc) = (g.out_w(), g.out_c);
    // Pixels' f32 rows are dense; a `Plus` keeps its output's indexing.
    let ps = match out {
        Output::Pixels { .. } => oc,
        _ => out.pixel_stride(),
    };
    let step = (16384 / (out_w * ps).max(1)).max(1);
    let mut f = vec![0f32; step.min(rows.len()) * out_w * ps];
    let mut r0 = rows.start;
    while r0 < rows.end {
        let r1 = (r0 + step).min(rows.end);
        let n = (r1 - r0) * out_w * ps;
        run(
            backend,
            g,
            src,
            in_ps,
            w,
            epi,
            r0..r1,
            Output::F32 {
                data: &mut f[..n],
                pixel_stride: ps,
            },
        );
        let y0 = r0 - rows.start;
        if let Output::Pixels {
            data,
            anchor,
            block: s,
            channels: c,
            ..
        } = &mut out
        {
            let (s, c) = (*s, *c);
            pixels_of_rows(
                &f[..n],
                &anchor[y0 * out_w * c..],
                &mut data[y0 * s * s * out_w * c..],
                s,
                c,
                out_w,
            );
        } else {
            for p in 0..(r1 - r0) * out_w {
                for ch in 0..oc {
                    out.store((y0 * out_w + p) * ps + ch, f[p * ps + ch]);
                }
            }
        }
        r0 = r1;
    }
}

/// Step 4 of [`Output::Pixels`] on f32 rows `f` (out_w pixels of S·S·C values each), anchors
/// and HR rows from their first: `Output::store`'s arithmetic, in loops over the HR rows in
/// order (no division per element).
fn pixels_of_rows(f: &[f32], anchor: &[f32], hr: &mut [u8], s: usize, c: usize, w: usize) {
    let oc = s * s * c;
    for (y, (px_row, an_row)) in f
        .chunks_exact(w * oc)
        .zip(anchor.chunks_exact(w * c))
        .enumerate()
    {
        for i in 0..s {
            let dst = &mut hr[(s * y + i) * s * w * c..][..s * w * c];
            for ((d, px), an) in dst
                .chunks_exact_mut(s * c)
                .zip(px_row.chunks_exact(oc))
                .zip(an_row.chunks_exact(c))
            {
                let px = &px[i * s * c..][..s * c];
                for ((d, v), a) in d.iter_mut().zip(px).zip(an.iter().cycle()) {
                    *d = crate::tensor::to_u8_pixel(v + a);
                }
            }
        }
    }
}

/// The AMX kernel's driver (packing, band, blocking, epilogue) with the tile
/// instructions executed by a software model of the tile unit instead of the CPU: how the AMX
/// path is tested on hosts without AMX. Same contract as [`conv_u8`]; needs AVX2 (the epilogue's
/// level), panics without it. Slow (the model is plain loops): for tests only.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
pub fn conv_u8_amx_model(
    g: &ConvGeom,
    input: &[u8],
    in_pixel_stride: usize,
    pad: u8,
    w: &PackedConv,
    epi: &Epilogue,
    rows: Range<usize>,
    out: Output,
) {
    run(
        Backend::AmxModel,
        g,
        Src::U8 { data: input, pad },
        in_pixel_stride,
        w,
        epi,
        rows,
        out,
    );
}

/// [`conv_u16`] through the AMX driver and the tile-unit model (see [`conv_u8_amx_model`]).
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
pub fn conv_u16_amx_model(
    g: &ConvGeom,
    input: &[u16],
    in_pixel_stride: usize,
    pad: u16,
    w: &PackedConv,
    epi: &Epilogue,
    rows: Range<usize>,
    out: Output,
) {
    run(
        Backend::AmxModel,
        g,
        Src::U16 { data: input, pad },
        in_pixel_stride,
        w,
        epi,
        rows,
        out,
    );
}

/// Every precondition the SIMD paths rely on for memory safety is asserted here, once per call.
#[allow(clippy::too_many_arguments)]
fn check_args(
    level: CpuLevel,
    g: &ConvGeom,
    src: Src,
    in_ps: usize,
    w: &PackedConv,
    epi: &Epilogue,
    rows: &Range<usize>,
    out: &Output,
) {
    assert!(
        level <= CpuLevel::host_max(),
        "kernel level {} requested but this host only has {}",
        level.name(),
        CpuLevel::host_max().name()
    );
    assert!(
        g.stride >= 1 && g.dilation >= 1 && g.kh >= 1 && g.kw >= 1,
        "invalid geometry {g:?}"
    );
    assert!(
        g.groups >= 1 && g.in_c.is_multiple_of(g.groups) && g.out_c.is_multiple_of(g.groups),
        "groups {} must divide in_c {} and out_c {}",
        g.groups,
        g.in_c,
        g.out_c
    );
    assert!(
        w.out_c == g.out_c
            && w.in_c_per_group * g.groups == g.in_c
            && w.kh == g.kh
            && w.kw == g.kw
            && w.groups == g.groups,
        "packed weights ({}x{}x{}x{}, groups {}) do not match geometry {g:?}",
        w.out_c,
        w.in_c_per_group,
        w.kh,
        w.kw,
        w.groups
    );
    assert!(
        rows.start <= rows.end && rows.end <= g.out_h(),
        "rows {rows:?} outside 0..{}",
        g.out_h()
    );
    assert!(
        in_ps >= g.in_c,
        "input pixel stride {in_ps} < in_c {}",
        g.in_c
    );
    let in_len = match src {
        Src::U8 { data, .. } => data.len(),
        Src::U16 { data, .. } => data.len(),
    };
    let in_pix = g.in_h * g.in_w;
    if in_pix > 0 {
        let need = (in_pix - 1) * in_ps + g.in_c;
        assert!(
            in_len >= need,
            "input has {in_len} elements, geometry needs {need}"
        );
    }
    assert!(
        epi.mult.len() >= g.out_c && epi.offset.len() >= g.out_c,
        "epilogue mult/offset need {} channels (have {}/{})",
        g.out_c,
        epi.mult.len(),
        epi.offset.len()
    );
    if let Activation::PRelu(s) = epi.act {
        assert!(
            s.len() >= g.out_c,
            "PRelu needs {} slopes, has {}",
            g.out_c,
            s.len()
        );
    }
    if let Output::Pixels {
        anchor,
        block,
        channels,
        width,
        ..
    } = out
    {
        assert!(
            *block >= 1 && *channels >= 1 && *channels <= 16 && block * block * channels == g.out_c,
            "pixel output of block {block} and {channels} channels needs block²·channels = out_c {}",
            g.out_c
        );
        assert!(
            *width == g.out_w(),
            "pixel output width {width} != out_w {}",
            g.out_w()
        );
        let need = rows.len() * g.out_w() * channels;
        assert!(
            anchor.len() >= need,
            "anchor has {} values, rows {rows:?} need {need}",
            anchor.len()
        );
    }
    if let Output::Plus {
        residual,
        out: inner,
    } = out
    {
        assert!(
            !matches!(**inner, Output::Pixels { .. } | Output::Plus { .. }),
            "a residual is added to an f32 or quantized output"
        );
        let n_pix = rows.len() * g.out_w();
        let need = n_pix.saturating_sub(1) * inner.pixel_stride() + g.out_c;
        assert!(
            n_pix == 0 || residual.len() >= need,
            "residual has {} values, rows {rows:?} need {need}",
            residual.len()
        );
    }
    let (out_len, out_ps) = out.len_and_stride();
    assert!(
        out_ps >= g.out_c,
        "output pixel stride {out_ps} < out_c {}",
        g.out_c
    );
    let n_pix = rows.len() * g.out_w();
    if n_pix > 0 {
        let need = (n_pix - 1) * out_ps + g.out_c;
        assert!(
            out_len >= need,
            "output has {out_len} elements, rows {rows:?} need {need}"
        );
    }
}
