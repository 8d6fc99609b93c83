//! AMX-INT8 kernel: the INT8 unit on Intel's tile matrix engine (the closest thing an x86 CPU has
//! to the paper's NPU matrix unit, §5). One `tdpbusd` is C[16 × 16 i32] += A[16 × 64 u8] ·
//! B[16 × 64 i8], 16,384 exact u8 × i8 MACs (no saturation: products are summed in i32).
//!
//! Data layout (the VNNI layout of the AVX-512 path, read by tiles):
//! - **B** ([`AmxPack`], packed once at load): per 16-output-channel block, one 64-byte row per
//!   K quad (16 channels × 4 K values, the quad layout `tdpbusd` reads); K runs tap by tap over
//!   the input channels padded to `cp` (a multiple of 4). Any run of up to 16 quads is a B tile
//!   (stride 64).
//! - **A** straight from the padded band, no copy: 16 consecutive output pixels of one output row
//!   read their taps at a constant pixel pitch, so one `tileloadd` with stride = pitch loads the
//!   16 pixels × (up to) 64 bytes of one tap run. A tap run (kw·cp bytes for a stride-1 3×3 conv)
//!   is split into 64-byte chunks (tiles 4/5) and a shorter last chunk (tiles 6/7, configured
//!   per call). A block at the end of a row reads past the row into the band's slack; those
//!   rows of C are garbage and never stored.
//! - **C**: tiles 0–3 hold up to 64 output channels of the 16 pixels.
//!
//! The i32 tiles are stored and finished by the AVX2 epilogue (`avx2::avx2_epilogue`: every AMX
//! CPU has AVX2), the same f32 operations in the same order as every other level, so the AMX
//! level is bit-exact with the scalar kernel. The A16W8 unit runs the kernel on the low-byte and
//! the high-byte planes and combines them as every level does: `hi·256 + lo` in f32.
//!
//! **Testing without AMX.** No development host had AMX. The driver is generic over
//! [`TileUnit`]: [`HwTiles`] executes the instructions; [`EmuTiles`] is a software model of the
//! tile unit written from the Intel SDM's pseudocode for `LDTILECFG`, `TILELOADD`, `TDPBUSD` and
//! `TILESTORED`, including their shape checks (#GP/#UD conditions become panics). Packing, band reads,
//! blocking and epilogue run under the model on every AVX2 host (`codec/tests/kernels.rs`
//! compares it with the scalar kernel on every problem); the instructions themselves run only on
//! an AMX host, where [`hardware_matches_model`] compares the two before the level is selected.

use std::arch::x86_64::*;
use std::cell::RefCell;
use std::ops::Range;

use super::avx2::avx2_epilogue;
use super::epilogue::RawOutput;
use super::pack::{AmxPack, Band, BandWalk, band_rows, fill_band};
use super::{ConvGeom, Epilogue, Output, Src};

/// Tile rows (pixels per block) and the most bytes per row (K values per chunk).
const ROWS: usize = 16;
const COLSB: usize = 64;
/// C tiles: up to 4 blocks of 16 output channels per pass (tiles 0–3).
const MAX_C_TILES: usize = 4;
/// A and B for 64-byte chunks, and for the shorter last chunk of a tap run.
const TILE_A: usize = 4;
const TILE_B: usize = 5;
const TILE_A_REM: usize = 6;
const TILE_B_REM: usize = 7;

/// The 64-byte `LDTILECFG` operand (palette 1).
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C, align(64))]
pub(crate) struct TileCfg {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    /// Bytes per row of tiles 0..16 (only 0..8 exist in palette 1).
    colsb: [u16; 16],
    rows: [u8; 16],
}

impl TileCfg {
    /// Tiles 0–5 at 16 rows × 64 bytes; with `rem` (the last chunk of a tap run, a multiple of
    /// 4 below 64) also A' = tile 6 at 16 × rem and B' = tile 7 at rem/4 × 64.
    fn new(rem: usize) -> TileCfg {
        assert!(
            rem < COLSB && rem.is_multiple_of(4),
            "chunk remainder {rem}"
        );
        let mut c = TileCfg {
            palette: 1,
            start_row: 0,
            reserved: [0; 14],
            colsb: [0; 16],
            rows: [0; 16],
        };
        for t in 0..=TILE_B {
            c.colsb[t] = COLSB as u16;
            c.rows[t] = ROWS as u8;
        }
        if rem > 0 {
            c.colsb[TILE_A_REM] = rem as u16;
            c.rows[TILE_A_REM] = ROWS as u8;
            c.colsb[TILE_B_REM] = COLSB as u16;
            c.rows[TILE_B_REM] = (rem / 4) as u8;
        }
        c
    }
}

/// The tile operations the driver uses. Tile indices are 0..8; `dpbusd(c, a, b)` is
/// `tdpbusd tmm{c}, tmm{a}, tmm{b}` with c in 0..4 and (a, b) = (4, 5) or (6, 7).
///
/// # Safety
/// Implementations read `rows × colsb` bytes from `base + r·stride` (load) or write them
/// (store); callers guarantee those bytes are valid.
pub(crate) trait TileUnit {
    unsafe fn configure(&mut self, cfg: &TileCfg);
    unsafe fn zero(&mut self, t: usize);
    unsafe fn load(&mut self, t: usize, base: *const u8, stride: usize);
    unsafe fn dpbusd(&mut self, c: usize, a: usize, b: usize);
    unsafe fn store(&mut self, t: usize, base: *mut u8, stride: usize);
    unsafe fn release(&mut self);
}

/// The CPU's tile unit. Only valid on a host where [`super::CpuLevel::Amx`] was detected (CPUID
/// bits and the Linux XTILEDATA permission).
pub(crate) struct HwTiles;

/// `$m!(t)` for a runtime tile index, as a literal register name (asm has no tile operands).
macro_rules! for_tile {
    ($t:expr, $m:ident) => {
        match $t {
            0 => $m!("0"),
            1 => $m!("1"),
            2 => $m!("2"),
            3 => $m!("3"),
            4 => $m!("4"),
            5 => $m!("5"),
            6 => $m!("6"),
            7 => $m!("7"),
            _ => unreachable!("palette 1 has tiles 0..8"),
        }
    };
}

impl TileUnit for HwTiles {
    unsafe fn configure(&mut self, cfg: &TileCfg) {
        // SAFETY: the caller's contract (AMX host); cfg is a valid palette-1 configuration.
        unsafe {
            std::arch::asm!("ldtilecfg [{0}]", in(reg) cfg as *const TileCfg, options(nostack, readonly))
        };
    }

    unsafe fn zero(&mut self, t: usize) {
        macro_rules! z {
            ($n:literal) => {
                // SAFETY: AMX host, tile configured.
                unsafe { std::arch::asm!(concat!("tilezero tmm", $n), options(nostack, nomem)) }
            };
        }
        for_tile!(t, z)
    }

    unsafe fn load(&mut self, t: usize, base: *const u8, stride: usize) {
        macro_rules! l {
            ($n:literal) => {
                // SAFETY: the trait's contract: 16 rows of 64 bytes at base + r·stride are valid.
                unsafe {
                    std::arch::asm!(
                        concat!("tileloadd tmm", $n, ", [{b} + {s}*1]"),
                        b = in(reg) base,
                        s = in(reg) stride,
                        options(nostack, readonly)
                    )
                }
            };
        }
        for_tile!(t, l)
    }

    unsafe fn dpbusd(&mut self, c: usize, a: usize, b: usize) {
        macro_rules! d {
            ($c:literal, $a:literal, $b:literal) => {
                // SAFETY: AMX host, tiles configured with agreeing shapes (TileCfg::new).
                unsafe {
                    std::arch::asm!(
                        concat!("tdpbusd tmm", $c, ", tmm", $a, ", tmm", $b),
                        options(nostack, nomem)
                    )
                }
            };
        }
        match (c, a, b) {
            (0, 4, 5) => d!("0", "4", "5"),
            (1, 4, 5) => d!("1", "4", "5"),
            (2, 4, 5) => d!("2", "4", "5"),
            (3, 4, 5) => d!("3", "4", "5"),
            (0, 6, 7) => d!("0", "6", "7"),
            (1, 6, 7) => d!("1", "6", "7"),
            (2, 6, 7) => d!("2", "6", "7"),
            (3, 6, 7) => d!("3", "6", "7"),
            _ => unreachable!("C tiles are 0..4, A/B are 4/5 or 6/7"),
        }
    }

    unsafe fn store(&mut self, t: usize, base: *mut u8, stride: usize) {
        macro_rules! s {
            ($n:literal) => {
                // SAFETY: the trait's contract: 16 rows of 64 bytes at base + r·stride are writable.
                unsafe {
                    std::arch::asm!(
                        concat!("tilestored [{b} + {s}*1], tmm", $n),
                        b = in(reg) base,
                        s = in(reg) stride,
                        options(nostack)
                    )
                }
            };
        }
        for_tile!(t, s)
    }

    unsafe fn release(&mut self) {
        // SAFETY: AMX host; releasing the tile state has no operands.
        unsafe { std::arch::asm!("tilerelease", options(nostack, nomem)) };
    }
}

/// A software model of the tile unit (Intel SDM vol. 2, `LDTILECFG`, `TILELOADD`, `TILESTORED`,
/// `TILEZERO`, `TDPBUSD`): 8 tiles of up to 16 × 64 bytes and the configuration's shapes. The
/// conditions under which the CPU faults are panics here, so a driver that would fault on
/// hardware fails its tests.
pub(crate) struct EmuTiles {
    cfg: Option<TileCfg>,
    t: [[u8; ROWS * COLSB]; 8],
}

impl EmuTiles {
    pub fn new() -> EmuTiles {
        EmuTiles {
            cfg: None,
            t: [[0; ROWS * COLSB]; 8],
        }
    }

    /// (rows, colsb) of a configured tile.
    fn shape(&self, t: usize) -> (usize, usize) {
        let c = self
            .cfg
            .as_ref()
            .expect("tile instruction before LDTILECFG (#UD)");
        assert!(t < 8, "tile {t} does not exist in palette 1");
        let (r, b) = (c.rows[t] as usize, c.colsb[t] as usize);
        assert!(r > 0 && b > 0, "tile {t} is not configured (#UD)");
        (r, b)
    }
}

impl TileUnit for EmuTiles {
    unsafe fn configure(&mut self, cfg: &TileCfg) {
        // LDTILECFG #GP conditions for palette 1.
        assert_eq!(cfg.palette, 1, "palette must be 1");
        assert_eq!(cfg.start_row, 0, "start_row must be 0 outside a restart");
        assert!(
            cfg.reserved.iter().all(|&b| b == 0),
            "reserved bytes must be 0"
        );
        for t in 0..16 {
            let (r, b) = (cfg.rows[t] as usize, cfg.colsb[t] as usize);
            if t >= 8 {
                assert!(r == 0 && b == 0, "tile {t} does not exist in palette 1");
            }
            assert!(
                r <= ROWS && b <= COLSB,
                "tile {t}: {r} rows × {b} bytes exceeds 16 × 64"
            );
            assert_eq!(
                r == 0,
                b == 0,
                "tile {t}: rows and colsb must both be 0 or neither"
            );
        }
        self.cfg = Some(*cfg);
        self.t = [[0; ROWS * COLSB]; 8];
    }

    unsafe fn zero(&mut self, t: usize) {
        self.shape(t);
        self.t[t] = [0; ROWS * COLSB];
    }

    unsafe fn load(&mut self, t: usize, base: *const u8, stride: usize) {
        let (r, b) = self.shape(t);
        self.t[t] = [0; ROWS * COLSB];
        for i in 0..r {
            // SAFETY: the trait's contract.
            let src = unsafe { std::slice::from_raw_parts(base.add(i * stride), b) };
            self.t[t][i * COLSB..i * COLSB + b].copy_from_slice(src);
        }
    }

    unsafe fn dpbusd(&mut self, c: usize, ta: usize, tb: usize) {
        let (cr, cb) = self.shape(c);
        let (ar, ab) = self.shape(ta);
        let (br, bb) = self.shape(tb);
        // TDPBUSD #UD conditions: distinct tiles, and shapes that agree.
        assert!(
            c != ta && c != tb && ta != tb,
            "TDPBUSD operands must be distinct tiles"
        );
        assert!(cb % 4 == 0 && ab % 4 == 0, "colsb must be a multiple of 4");
        assert_eq!(
            ab / 4,
            br,
            "A's K quads ({}) must equal B's rows ({br})",
            ab / 4
        );
        assert_eq!(cb, bb, "C and B must have the same colsb");
        assert_eq!(cr, ar, "C and A must have the same rows");
        let (a, b) = (&self.t[ta], &self.t[tb]);
        let mut out = self.t[c];
        for m in 0..cr {
            for n in 0..cb / 4 {
                let at = m * COLSB + 4 * n;
                let mut acc = i32::from_le_bytes(out[at..at + 4].try_into().unwrap());
                for k in 0..ab / 4 {
                    for j in 0..4 {
                        let x = a[m * COLSB + 4 * k + j] as i32;
                        let w = b[k * COLSB + 4 * n + j] as i8 as i32;
                        acc = acc.wrapping_add(x * w);
                    }
                }
                out[at..at + 4].copy_from_slice(&acc.to_le_bytes());
            }
        }
        self.t[c] = out;
    }

    unsafe fn store(&mut self, t: usize, base: *mut u8, stride: usize) {
        let (r, b) = self.shape(t);
        for i in 0..r {
            // SAFETY: the trait's contract.
            let dst = unsafe { std::slice::from_raw_parts_mut(base.add(i * stride), b) };
            dst.copy_from_slice(&self.t[t][i * COLSB..i * COLSB + b]);
        }
    }

    unsafe fn release(&mut self) {
        self.cfg = None;
    }
}

thread_local! {
    /// Padded input bands as bytes (low bytes / u8 input, and high bytes for u16 input).
    static BANDS: RefCell<(Vec<u8>, Vec<u8>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Runs the kernel through `unit`. Preconditions: `check_args` passed, groups == 1, AVX2 present.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv<U: TileUnit>(
    unit: &mut U,
    g: &ConvGeom,
    src: Src,
    in_ps: usize,
    p: &AmxPack,
    epi: &Epilogue,
    rows: Range<usize>,
    out: &mut Output,
) {
    let cp = p.cp;
    assert_eq!(
        p.kq * 4,
        g.kh * g.kw * cp,
        "AMX pack does not match the geometry"
    );
    let out_w = g.out_w();
    let two = matches!(src, Src::U16 { .. });
    // Consecutive output pixels of a row are this many bytes apart in the band: the A stride.
    let ts = cp * g.stride;
    let mut c_lo = vec![0i32; ROWS * 16 * MAX_C_TILES];
    let mut c_hi = if two { c_lo.clone() } else { Vec::new() };
    let n_band = band_rows(g, cp, 1, rows.len());
    let raw = out.raw();
    BANDS.with(|b| {
        let (lo, hi) = &mut *b.borrow_mut();
        let mut configured = None;
        let mut oy0 = rows.start;
        while oy0 < rows.end {
            let n = n_band.min(rows.end - oy0);
            let band = fill_band(g, src, in_ps, cp, oy0, n, lo, hi, |x| x);
            // Slack past the band for the garbage rows of a row's last, partial block (at most
            // 15 pixels past the last real one).
            let need = Band::height(g, n) * band.wp * cp + ROWS * ts;
            for plane in [&mut *lo, &mut *hi].into_iter().take(1 + two as usize) {
                if plane.len() < need {
                    plane.resize(need, 0);
                }
            }
            let walk = BandWalk::over_band(g, &band, raw.pixel_stride, oy0 - rows.start);
            let taps = walk.tap_runs(g, cp);
            // Every run has the same length (kw·cp, cp with dilation, or all K when runs merge),
            // hence one configuration: 64-byte chunks and one shorter last chunk.
            let len = taps[0].1;
            assert!(
                taps.iter().all(|t| t.1 == len),
                "tap runs of unequal length"
            );
            let rem = len % COLSB;
            if configured != Some(rem) {
                // SAFETY: a valid palette-1 configuration (TileCfg::new checks rem).
                unsafe { unit.configure(&TileCfg::new(rem)) };
                configured = Some(rem);
            }
            // The furthest byte any block reads, relative to its first pixel.
            let reach = (ROWS - 1) * ts + taps.iter().map(|t| t.0 + t.1).max().unwrap_or(0);
            for r in 0..n {
                let mut x0 = 0;
                while x0 < out_w {
                    let m = ROWS.min(out_w - x0);
                    let p0 = r * out_w + x0;
                    let base = walk.pix(p0);
                    assert!(base + reach <= lo.len(), "AMX block reads past the band");
                    let mut cb0 = 0;
                    while cb0 < p.cb {
                        let nc = MAX_C_TILES.min(p.cb - cb0);
                        // SAFETY: every A load reads 16 rows at `ts` apart within base + reach
                        // (asserted in bounds); B rows stay within the channel block's kq quads;
                        // C is 16 × nc·16 i32.
                        unsafe {
                            let a = lo.as_ptr().add(base);
                            multiply(unit, a, ts, &taps, p, cb0, nc, &mut c_lo);
                            if two {
                                let a = hi.as_ptr().add(base);
                                multiply(unit, a, ts, &taps, p, cb0, nc, &mut c_hi);
                            }
                        }
                        let c_hi = two.then_some(&c_hi[..]);
                        // SAFETY: AVX2 is present (precondition); output offsets are in bounds
                        // (check_args sized the output for every pixel of `rows`).
                        unsafe {
                            finish(&c_lo, c_hi, nc, cb0 * 16, m, p0, &walk, g.out_c, epi, &raw)
                        };
                        cb0 += nc;
                    }
                    x0 += m;
                }
            }
            oy0 += n;
        }
        if configured.is_some() {
            // SAFETY: pairs with `configure` above.
            unsafe { unit.release() };
        }
    });
}

/// C tiles 0..nc = A · B for channel blocks cb0..cb0+nc over all K, stored to `c` as
/// `[16 pixels][nc·16 channels]` i32. A row i is pixel i of the block: `a + i·ts`, read per tap
/// run in 64-byte chunks (tiles 4/5) and a shorter last chunk (tiles 6/7).
///
/// # Safety
/// Every A chunk (16 rows of ≤ 64 bytes, `ts` apart, at `a + off + c0`) is readable; `c` holds
/// at least 16 · nc · 16 values; the unit is configured for this run length.
#[allow(clippy::too_many_arguments)]
unsafe fn multiply<U: TileUnit>(
    unit: &mut U,
    a: *const u8,
    ts: usize,
    taps: &[(usize, usize)],
    p: &AmxPack,
    cb0: usize,
    nc: usize,
    c: &mut [i32],
) {
    debug_assert!(c.len() >= ROWS * nc * 16);
    // SAFETY: the function's contract; B reads quads q.. of blocks cb0 + j < p.cb, and the runs
    // cover exactly kq quads.
    unsafe {
        for j in 0..nc {
            unit.zero(j);
        }
        let mut q = 0;
        for &(off, len) in taps {
            let mut c0 = 0;
            while c0 < len {
                let chunk = COLSB.min(len - c0);
                let (ta, tb) = if chunk == COLSB {
                    (TILE_A, TILE_B)
                } else {
                    (TILE_A_REM, TILE_B_REM)
                };
                unit.load(ta, a.add(off + c0), ts);
                for j in 0..nc {
                    unit.load(tb, p.quads(cb0 + j, q), COLSB);
                    unit.dpbusd(j, ta, tb);
                }
                c0 += chunk;
                q += chunk / 4;
            }
        }
        debug_assert_eq!(q, p.kq);
        for j in 0..nc {
            unit.store(j, c.as_mut_ptr().add(j * 16).cast(), nc * 64);
        }
    }
}

/// The epilogue for `m` pixels × the channels `oc0..min(out_c, oc0 + nc·16)` of the stored C
/// tiles (`c_hi`: the high-byte plane of A16W8), 8 channels at a time.
///
/// # Safety
/// AVX2 present; `raw` is valid for every output offset `walk.out_at(p0 + i) + oc`, oc < out_c.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2")]
unsafe fn finish(
    c_lo: &[i32],
    c_hi: Option<&[i32]>,
    nc: usize,
    oc0: usize,
    m: usize,
    p0: usize,
    walk: &BandWalk,
    out_c: usize,
    epi: &Epilogue,
    raw: &RawOutput,
) {
    let row = nc * 16;
    let blocks = (out_c - oc0).min(row).div_ceil(8);
    let k256 = _mm256_set1_ps(256.0);
    // Epilogue step 1 for 8 channels of pixel i (as in every kernel: INT8 `acc as f32`, A16W8
    // `(hi as f32) * 256.0 + (lo as f32)`).
    let v = |i: usize, b: usize| {
        let at = i * row + b * 8;
        // SAFETY: at + 8 <= 16 · row (b < blocks <= row / 8).
        let lo = unsafe { _mm256_loadu_si256(c_lo.as_ptr().add(at).cast()) };
        let lo = _mm256_cvtepi32_ps(lo);
        match c_hi {
            None => lo,
            Some(h) => {
                // SAFETY: as above.
                let hi = unsafe { _mm256_loadu_si256(h.as_ptr().add(at).cast()) };
                _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(hi), k256), lo)
            }
        }
    };
    // 4 pixels × 16 channels per epilogue call where possible (its per-call constants and
    // matches amortized as in the AVX2 kernel's main tile), then the remainders.
    let mut b = 0;
    while b < blocks {
        let pair = b + 2 <= blocks;
        let mut i = 0;
        // SAFETY (all calls): the function's contract; channels oc0 + 8b.. < out_c are stored
        // (the epilogue masks the lanes past out_c).
        unsafe {
            while i + 4 <= m && pair {
                let out: [usize; 4] = std::array::from_fn(|k| walk.out_at(p0 + i + k));
                let v4 = [
                    [v(i, b), v(i, b + 1)],
                    [v(i + 1, b), v(i + 1, b + 1)],
                    [v(i + 2, b), v(i + 2, b + 1)],
                    [v(i + 3, b), v(i + 3, b + 1)],
                ];
                avx2_epilogue::<4, 2>(v4, oc0 + 8 * b, out_c, epi, raw, &out);
                i += 4;
            }
            while i < m {
                let out = [walk.out_at(p0 + i)];
                if pair {
                    avx2_epilogue::<1, 2>(
                        [[v(i, b), v(i, b + 1)]],
                        oc0 + 8 * b,
                        out_c,
                        epi,
                        raw,
                        &out,
                    );
                } else {
                    avx2_epilogue::<1, 1>([[v(i, b)]], oc0 + 8 * b, out_c, epi, raw, &out);
                }
                i += 1;
            }
        }
        b += if pair { 2 } else { 1 };
    }
}

/// On an AMX host: the hardware tiles give the same outputs as [`EmuTiles`] on a small INT8 and
/// A16W8 conv (odd sizes, partial pixel, channel and K blocks, more than 4 channel blocks). Run
/// once before the AMX level is selected; `false` keeps the host on AVX-512 VNNI.
///
/// # Safety
/// Only call on a host with AMX-TILE, AMX-INT8, AVX2 and the XTILEDATA permission granted.
pub(crate) unsafe fn hardware_matches_model() -> bool {
    let t = SelfTest::new();
    let p = t.pack();
    let rows = 0..t.g.out_h();
    let hw = t.outputs(|g, src, out| {
        conv(
            &mut HwTiles,
            g,
            src,
            g.in_c,
            &p,
            &t.epi(),
            rows.clone(),
            out,
        )
    });
    hw == t.model_outputs()
}

/// The self-test's problem (built without `PackedConv`, which asks for the host level that the
/// self-test is deciding).
struct SelfTest {
    g: ConvGeom,
    /// Scalar layout `[oc][ky][kx][ic]`.
    weights: Vec<i8>,
    input: Vec<u16>,
    mult: Vec<f32>,
    offset: Vec<f32>,
}

impl SelfTest {
    fn new() -> SelfTest {
        let g = ConvGeom::same(5, 21, 27, 70, 3);
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        SelfTest {
            weights: (0..g.out_c * g.kh * g.kw * g.in_c)
                .map(|_| ((next() % 255) as i32 - 127) as i8)
                .collect(),
            input: (0..g.in_h * g.in_w * g.in_c)
                .map(|_| next() as u16)
                .collect(),
            mult: (0..g.out_c).map(|c| 1.0 / (64.0 + c as f32)).collect(),
            offset: (0..g.out_c).map(|c| c as f32 - 30.0).collect(),
            g,
        }
    }

    fn epi(&self) -> Epilogue<'_> {
        Epilogue {
            mult: &self.mult,
            offset: &self.offset,
            act: &super::Activation::Relu,
        }
    }

    fn pack(&self) -> AmxPack {
        AmxPack::new(
            &self.weights,
            self.g.out_c,
            self.g.in_c,
            self.g.kh * self.g.kw,
        )
    }

    /// [`SelfTest::outputs`] of the driver under the tile-unit model.
    fn model_outputs(&self) -> Vec<u32> {
        let p = self.pack();
        let rows = 0..self.g.out_h();
        self.outputs(|g, src, out| {
            conv(
                &mut EmuTiles::new(),
                g,
                src,
                g.in_c,
                &p,
                &self.epi(),
                rows.clone(),
                out,
            )
        })
    }

    /// The f32 outputs (as bits) of `kernel` on the u8 problem, then on the u16 problem.
    fn outputs(&self, mut kernel: impl FnMut(&ConvGeom, Src, &mut Output)) -> Vec<u32> {
        let n = self.g.out_h() * self.g.out_w() * self.g.out_c;
        let input8: Vec<u8> = self.input.iter().map(|&v| v as u8).collect();
        let (mut a, mut b) = (vec![0f32; n], vec![0f32; n]);
        let ps = self.g.out_c;
        let u8_src = Src::U8 {
            data: &input8,
            pad: 3,
        };
        kernel(
            &self.g,
            u8_src,
            &mut Output::F32 {
                data: &mut a,
                pixel_stride: ps,
            },
        );
        let u16_src = Src::U16 {
            data: &self.input,
            pad: 700,
        };
        kernel(
            &self.g,
            u16_src,
            &mut Output::F32 {
                data: &mut b,
                pixel_stride: ps,
            },
        );
        a.into_iter().chain(b).map(f32::to_bits).collect()
    }
}

/// The `tdpbusd` peak for `nawqsr bench-kernels`: 4 independent accumulator tiles, A and B
/// resident, `iters` × 4 instructions. Returns the u8 MACs done (u16 MACs with `u16_mix`: the
/// A16W8 unit needs two byte-plane products per MAC).
///
/// # Safety
/// AMX host with the XTILEDATA permission (the `Amx` level was detected).
pub(crate) unsafe fn peak(u16_mix: bool, iters: u64) -> u64 {
    let a = [1u8; ROWS * COLSB];
    let mut u = HwTiles;
    // SAFETY: the caller's contract; A and B read 16 × 64 bytes of `a`.
    unsafe {
        u.configure(&TileCfg::new(0));
        u.load(TILE_A, a.as_ptr(), COLSB);
        u.load(TILE_B, a.as_ptr(), COLSB);
        for c in 0..MAX_C_TILES {
            u.zero(c);
        }
        for _ in 0..iters.max(1) {
            for c in 0..MAX_C_TILES {
                u.dpbusd(c, TILE_A, TILE_B);
            }
        }
        u.release();
    }
    let macs = iters.max(1) * (MAX_C_TILES * ROWS * 16 * COLSB) as u64;
    if u16_mix { macs / 2 } else { macs }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The LDTILECFG operand layout of the SDM: palette at byte 0, colsb (u16) from byte 16,
    /// rows from byte 48, 64 bytes in all.
    #[test]
    fn tile_config_layout_is_the_sdm_one() {
        let c = TileCfg::new(0);
        assert_eq!(std::mem::size_of::<TileCfg>(), 64);
        // SAFETY: TileCfg is 64 bytes of plain integers (repr C, no padding: 1+1+14+32+16).
        let b: [u8; 64] = unsafe { std::mem::transmute(c) };
        assert_eq!(b[0], 1);
        for t in 0..16 {
            let used = t <= TILE_B;
            assert_eq!(
                u16::from_le_bytes([b[16 + 2 * t], b[17 + 2 * t]]),
                if used { 64 } else { 0 }
            );
            assert_eq!(b[48 + t], if used { 16 } else { 0 });
        }
    }

    /// The model's TDPBUSD against a plain u8 × i8 matrix product (A 16 × 64, B as 16 quads ×
    /// 16 channels): C[m][n] = Σ_k A[m][k] · W[n][k].
    #[test]
    fn model_dpbusd_is_a_u8_i8_matrix_product() {
        let a: Vec<u8> = (0..16 * 64).map(|i| (i * 37 % 256) as u8).collect();
        let w: Vec<i8> = (0..16 * 64)
            .map(|i: i32| ((i * 53 % 255) - 127) as i8)
            .collect(); // [n][k]
        let mut b = [0u8; 1024];
        for n in 0..16 {
            for k in 0..64 {
                b[(k / 4) * 64 + n * 4 + k % 4] = w[n * 64 + k] as u8;
            }
        }
        let mut c = [7i32; 256];
        let mut u = EmuTiles::new();
        // SAFETY: all buffers are 16 rows × 64 bytes at the strides given.
        unsafe {
            u.configure(&TileCfg::new(0));
            u.load(0, c.as_ptr().cast(), 64);
            u.load(TILE_A, a.as_ptr(), 64);
            u.load(TILE_B, b.as_ptr(), 64);
            u.dpbusd(0, TILE_A, TILE_B);
            u.store(0, c.as_mut_ptr().cast(), 64);
        }
        for m in 0..16 {
            for n in 0..16 {
                let want: i32 = 7
                    + (0..64)
                        .map(|k| a[m * 64 + k] as i32 * w[n * 64 + k] as i32)
                        .sum::<i32>();
                assert_eq!(c[m * 16 + n], want, "C[{m}][{n}]");
            }
        }
    }

    /// The self-test's problem (what an AMX host runs before selecting the level) is valid and
    /// the model computes it as the scalar kernel does.
    #[test]
    fn self_test_problem_matches_scalar_under_the_model() {
        if crate::kernels::CpuLevel::host_max() < crate::kernels::CpuLevel::Avx2 {
            eprintln!("skipping: no AVX2 (the AMX driver's epilogue)");
            return;
        }
        let t = SelfTest::new();
        let g = t.g;
        let (taps, ic) = (g.kh * g.kw, g.in_c);
        // Scalar layout [oc][tap][ic] → ONNX [oc][ic][ky][kx].
        let mut onnx = vec![0i8; t.weights.len()];
        for oc in 0..g.out_c {
            for tap in 0..taps {
                for c in 0..ic {
                    onnx[(oc * ic + c) * taps + tap] = t.weights[(oc * taps + tap) * ic + c];
                }
            }
        }
        let w = crate::kernels::PackedConv::new(&onnx, g.out_c, ic, g.kh, g.kw, 1);
        assert_eq!(w.scalar, t.weights);
        let rows = 0..g.out_h();
        let model = t.model_outputs();
        let scalar = t.outputs(|g, src, out| {
            crate::kernels::scalar::conv(g, src, g.in_c, &w, &t.epi(), rows.clone(), out)
        });
        assert_eq!(model, scalar);
        assert!(
            model.iter().any(|&b| b != 0),
            "the problem must produce nonzero outputs"
        );
    }

    /// A tile unit that does nothing: times the driver's own work (band packing, epilogue).
    struct NullTiles;
    impl TileUnit for NullTiles {
        unsafe fn configure(&mut self, _: &TileCfg) {}
        unsafe fn zero(&mut self, _: usize) {}
        unsafe fn load(&mut self, _: usize, _: *const u8, _: usize) {}
        unsafe fn dpbusd(&mut self, _: usize, _: usize, _: usize) {}
        unsafe fn store(&mut self, _: usize, _: *mut u8, _: usize) {}
        unsafe fn release(&mut self) {}
    }

    /// The AMX driver's non-tile work per conv of the bundled models' shapes (one thread, best
    /// of 5): a lower bound on the AMX level's time, measurable on any AVX2 host.
    /// `cargo test --release -p nawqsr-codec --lib driver_overhead -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn driver_overhead() {
        for (h, w, ic, oc) in [
            (540, 960, 16, 16),
            (540, 960, 3, 16),
            (180, 320, 32, 32),
            (360, 640, 32, 27),
        ] {
            let g = ConvGeom::same(h, w, ic, oc, 3);
            let k = 9 * ic;
            let p = AmxPack::new(&vec![1i8; oc * k], oc, ic, 9);
            let input = vec![7u8; h * w * ic];
            let (mult, offset) = (vec![0.5f32; oc], vec![0.0f32; oc]);
            let epi = Epilogue {
                mult: &mult,
                offset: &offset,
                act: &super::super::Activation::Relu,
            };
            let mut out = vec![0u8; h * w * oc];
            let best = (0..5)
                .map(|_| {
                    let t = std::time::Instant::now();
                    let o = Output::U8 {
                        data: &mut out,
                        pixel_stride: oc,
                        scale: 1.0,
                        zero: 0.0,
                    };
                    let mut o = o;
                    conv(
                        &mut NullTiles,
                        &g,
                        Src::U8 {
                            data: &input,
                            pad: 0,
                        },
                        ic,
                        &p,
                        &epi,
                        0..h,
                        &mut o,
                    );
                    t.elapsed().as_secs_f64()
                })
                .fold(f64::INFINITY, f64::min);
            let macs = g.macs() as f64;
            println!(
                "{w}x{h} 3x3 {ic}->{oc}: driver without tiles {:.2} ms ({:.0} GMAC/s bound)",
                best * 1e3,
                macs / best / 1e9
            );
        }
    }

    #[test]
    #[should_panic(expected = "exceeds 16 × 64")]
    fn model_faults_on_an_oversized_tile() {
        let mut c = TileCfg::new(0);
        c.rows[0] = 17;
        // SAFETY: configure reads only the config.
        unsafe { EmuTiles::new().configure(&c) };
    }

    #[test]
    #[should_panic(expected = "must equal B's rows")]
    fn model_faults_on_mismatched_shapes() {
        let mut c = TileCfg::new(0);
        c.rows[TILE_B] = 8;
        let mut u = EmuTiles::new();
        // SAFETY: no memory is touched before the shape check.
        unsafe {
            u.configure(&c);
            u.dpbusd(0, TILE_A, TILE_B);
        }
    }

    #[test]
    #[should_panic(expected = "before LDTILECFG")]
    fn model_faults_without_a_configuration() {
        // SAFETY: no memory is touched before the check.
        unsafe { EmuTiles::new().zero(0) };
    }
}
