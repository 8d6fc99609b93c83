//! Packing: weights once at load (one layout per level the host supports), activations per call
//! into small padded "bands" that the micro-kernels can read without any bounds or padding logic.

use super::{CpuLevel, Src};

/// Largest reduction length K = kh·kw·in_c/groups for which the i32 accumulation is exact:
/// |acc| ≤ 255·127·K ≤ 2^31 − 1 for K ≤ 66,000 (255·127·66,000 = 2,137,410,000). This holds for
/// the u8 path and for each byte slice of the u16 path, which accumulate separately.
pub const MAX_K: usize = 66_000;

/// One 64-byte line of VNNI-packed weights: 16 output channels × 4 consecutive K values.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub(crate) struct Line64(pub [i8; 64]);

/// One 32-byte line of AVX2-packed weights: 8 output channels × 2 consecutive K values, as i16.
#[derive(Clone, Copy)]
#[repr(C, align(32))]
pub(crate) struct Line32(pub [i16; 16]);

/// Weights for `vpdpbusd`: K runs tap by tap (ky, kx), and within a tap over the input channels
/// padded with zeros to `cp` (a multiple of 4). Line `(kq, ocb)` holds, for the 16 output channels
/// `ocb*16..`, the 4 K values `kq*4..kq*4+4`: `lines[kq * nb + ocb].0[lane*4 + j]`.
///
/// [`VnniLayout::Plain`]: as above, any `out_c`.
///
/// [`VnniLayout::Paired`] (out_c ≤ 16 and `cp` a multiple of 8): K runs in octets, two lines per octet `o`, line
/// `(o, b)` lane `2c + h` holding channel `8b + c`'s K values `o*8 + h*4..+4`
/// (`lines[o * 2 + b].0[(2c + h)*4 + j]`, `nb` = 2). One 8-byte input broadcast then feeds two
/// `vpdpbusd` covering 16 channels × 8 K, halving the broadcasts a 16-channel conv needs (its
/// single-block kernel is otherwise load-bound); lane pairs are summed before the epilogue.
///
/// [`VnniLayout::Quad`] (out_c ≤ 8 where it needs fewer `vpdpbusd` than paired, see [`quad_pays`]): K runs
/// in 16-byte chunks, `nb` = ⌈out_c / 4⌉ lines per chunk `s`, line `(s, j)` lane `4c + d`
/// holding channel `4j + c`'s K values `s*16 + d*4..+4` (`lines[s * nb + j].0[(4c + d)*4 + b]`).
/// One 16-byte input broadcast (`vbroadcasti32x4`) then feeds one `vpdpbusd` per 4 channels:
/// a 16→4 conv (a luma ×2 model's last layer) does 1 instead of 4 per 16 K bytes. Each
/// 128-bit lane's 4 partial sums are added before the epilogue.
///
/// `im2col`: packed as a 1×1 conv over an im2col band (`fill_im2col`), `cp` then being the
/// band's values per pixel (kh·kw·in_c padded).
pub(crate) struct VnniPack {
    pub cp: usize,
    pub nb: usize,
    pub layout: VnniLayout,
    pub im2col: bool,
    pub lines: Vec<Line64>,
}

/// How a [`VnniPack`] lays K and the output channels out in its lines (its docs give each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VnniLayout {
    Plain,
    Paired,
    Quad,
}

impl VnniLayout {
    /// K bytes per step of a tile's flat K loop (`avx512::Args::koffs`): one 8-byte broadcast
    /// (paired) or 16-byte one (quad); 0 for plain, whose tiles walk the taps' runs.
    pub(crate) fn k_step(self) -> usize {
        match self {
            VnniLayout::Plain => 0,
            VnniLayout::Paired => 8,
            VnniLayout::Quad => 16,
        }
    }
}

/// Whether the `quad` layout beats the others for `out_c` channels over `picpg` K values per
/// tap: `vpdpbusd` per pixel and tap are ⌈out_c/4⌉ per 16 padded bytes for quad, against 4 per
/// 16 (channels padded to 16, inputs to 8) for paired and ⌈out_c/16⌉ per 4 bytes for plain.
/// At most 8 channels: its per-pixel epilogue (the lane sums) costs about as much as the dot
/// products, so at 12 channels it lost to paired (3×3 16→12 at 960×540, one Zen 4 thread:
/// 9.4 ms against 7.8; 16→8: 7.2 against 7.7; 16→4: 4.4 against 7.8).
pub(crate) fn quad_pays(out_c: usize, picpg: usize) -> bool {
    let cost = |quantum: usize, per_16: usize| picpg.div_ceil(quantum) * quantum * per_16;
    out_c <= 8 && cost(16, out_c.div_ceil(4)) < cost(8, 4)
}

/// Weights for the AVX2 `vpmaddwd` kernel: as [`VnniPack`] but with K grouped by 2 and 8 output
/// channels per line, widened to i16: `lines[kp * nb + ocb].0[lane*2 + j]`.
///
/// `paired` (out_c ≤ 4, `cp` a multiple of 4): K runs in quads, one line per quad `s`, lane
/// `2c + h` holding channel c's K values `s*4 + h*2..+2` (`lines[s].0[(2c + h)*2 + j]`, `nb` =
/// 1). One 8-byte broadcast (4 i16) then feeds one `vpmaddwd` covering 4 channels × 4 K instead
/// of 8 lanes of which 4 are padding; lane pairs are summed before the epilogue.
pub(crate) struct Avx2Pack {
    pub cp: usize,
    pub nb: usize,
    pub paired: bool,
    /// As [`VnniPack::im2col`].
    pub im2col: bool,
    pub lines: Vec<Line32>,
}

/// Whether a conv (groups = 1) runs on an im2col band on the VNNI and AVX2 levels: few input
/// channels and a spatial kernel. In a plain band a 3-channel pixel is padded to 4 and a
/// 3×3 conv's K runs 9 taps of 4 (36 values, 27 useful, one broadcast per 4); in the im2col
/// band each output pixel holds its 27 (tap, channel) values contiguously, padded once to the
/// K quantum, and the conv is a 1×1 conv over it. Sums of the same exact integer products, so
/// the accumulators, hence the results, are identical.
pub(crate) fn im2col(icpg: usize, taps: usize) -> bool {
    icpg <= 4 && taps > 1
}

/// Weights for the AMX tile kernel (`amx.rs`) as K-quad rows: `lines[cb * kq + q]` lane n,
/// byte j = weight of channel `cb·16 + n`
/// at K index `4q + j`, K = tap·cp + input channel (zero for channels past in_c).
pub(crate) struct AmxPack {
    /// Input channels padded to a multiple of 4 (the band's pixel pitch).
    pub cp: usize,
    /// K quads per channel block (taps · cp / 4).
    pub kq: usize,
    /// 16-channel blocks.
    pub cb: usize,
    pub lines: Vec<Line64>,
}

impl AmxPack {
    /// From the scalar layout `[oc][tap][ic]` (`icpg` input channels, `taps` = kh·kw).
    pub fn new(scalar: &[i8], out_c: usize, icpg: usize, taps: usize) -> AmxPack {
        let cp = icpg.div_ceil(4) * 4;
        let kq = taps * cp / 4;
        let cb = out_c.div_ceil(16);
        let mut lines = vec![Line64([0; 64]); cb * kq];
        for oc in 0..out_c {
            for t in 0..taps {
                for ic in 0..icpg {
                    let kk = t * cp + ic;
                    lines[(oc / 16) * kq + kk / 4].0[(oc % 16) * 4 + kk % 4] =
                        scalar[(oc * taps + t) * icpg + ic];
                }
            }
        }
        AmxPack { cp, kq, cb, lines }
    }

    /// The B rows of channel block `cb` from K quad `q` on (stride 64).
    pub(crate) fn quads(&self, cb: usize, q: usize) -> *const u8 {
        self.lines[cb * self.kq + q..].as_ptr().cast()
    }
}

/// i8 weights in ONNX order `[out_c][in_c/groups][kh][kw]`, symmetric (values in -127..=127),
/// packed once at load for every level the host supports. Shared by the INT8 and the A16W8 unit
/// (no extra memory for 16-bit activations, §4.3).
pub struct PackedConv {
    pub(crate) out_c: usize,
    pub(crate) in_c_per_group: usize,
    pub(crate) kh: usize,
    pub(crate) kw: usize,
    pub(crate) groups: usize,
    /// Scalar layout `[oc][ky][kx][ic]`: channel-last like the activations.
    pub(crate) scalar: Vec<i8>,
    wsum: Vec<i32>,
    pub(crate) avx2: Option<Avx2Pack>,
    pub(crate) vnni: Option<VnniPack>,
    #[cfg(target_arch = "x86_64")]
    pub(crate) amx: Option<AmxPack>,
}

impl std::fmt::Debug for PackedConv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedConv")
            .field("out_c", &self.out_c)
            .field("in_c_per_group", &self.in_c_per_group)
            .field("kh", &self.kh)
            .field("kw", &self.kw)
            .field("groups", &self.groups)
            .field("avx2", &self.avx2.is_some())
            .field("vnni", &self.vnni.is_some())
            .field("amx", &(self.amx_bytes() > 0))
            .finish()
    }
}

impl PackedConv {
    /// Packs ONNX-order weights. Panics if the slice length does not match, a weight is -128
    /// (weights are symmetric), or K exceeds [`MAX_K`].
    pub fn new(
        weights: &[i8],
        out_c: usize,
        in_c_per_group: usize,
        kh: usize,
        kw: usize,
        groups: usize,
    ) -> PackedConv {
        Self::new_for(weights, out_c, in_c_per_group, kh, kw, groups, None)
    }

    /// Like [`PackedConv::new`], but with `only = Some(level)` keeps just the
    /// scalar layout and the one `level` runs (the engine runs one level: holding
    /// every level's copy would triple the model memory). Calling a kernel at a
    /// level whose layout was not packed panics.
    #[allow(clippy::too_many_arguments)]
    pub fn new_for(
        weights: &[i8],
        out_c: usize,
        in_c_per_group: usize,
        kh: usize,
        kw: usize,
        groups: usize,
        only: Option<CpuLevel>,
    ) -> PackedConv {
        assert!(
            groups >= 1 && out_c.is_multiple_of(groups),
            "groups {groups} must divide out_c {out_c}"
        );
        assert_eq!(
            weights.len(),
            out_c * in_c_per_group * kh * kw,
            "weights must be [out_c={out_c}][in_c/groups={in_c_per_group}][kh={kh}][kw={kw}]"
        );
        assert!(
            weights.iter().all(|&w| w != i8::MIN),
            "weights must be symmetric i8 (-127..=127)"
        );
        let k = in_c_per_group * kh * kw;
        assert!(
            k <= MAX_K,
            "K = {k} exceeds {MAX_K}: the i32 accumulation would not be exact"
        );

        let icpg = in_c_per_group;
        let onnx = |oc: usize, ic: usize, ky: usize, kx: usize| {
            weights[((oc * icpg + ic) * kh + ky) * kw + kx]
        };
        let mut scalar = Vec::with_capacity(weights.len());
        for oc in 0..out_c {
            for ky in 0..kh {
                for kx in 0..kw {
                    for ic in 0..icpg {
                        scalar.push(onnx(oc, ic, ky, kx));
                    }
                }
            }
        }
        let wsum = (0..out_c)
            .map(|oc| {
                weights[oc * k..(oc + 1) * k]
                    .iter()
                    .map(|&w| w as i32)
                    .sum()
            })
            .collect();

        // SIMD layouts only for what they run: groups == 1 on a host that has the level.
        let host = CpuLevel::host_max();
        let simd = groups == 1 && out_c > 0 && k > 0;
        let taps = kh * kw;
        // The SIMD layouts see the conv as `ptaps` taps of `picpg` channels with weight
        // `wt(oc, t, ic)`. A few-channel conv (see `im2col`) is packed as a 1×1 conv whose
        // channels are the (tap, channel) pairs in tap order, K index t·icpg + ic: the order
        // `fill_im2col` writes them in.
        let im2col = simd && im2col(icpg, taps);
        let (ptaps, picpg) = if im2col { (1, k) } else { (taps, icpg) };
        let wt = |oc: usize, t: usize, ic: usize| {
            let (t, ic) = if im2col {
                (ic / icpg, ic % icpg)
            } else {
                (t, ic)
            };
            onnx(oc, ic, t / kw, t % kw)
        };
        let vnni = (simd
            && host >= CpuLevel::Avx512Vnni
            && only.is_none_or(|l| l == CpuLevel::Avx512Vnni))
        .then(|| {
            if quad_pays(out_c, picpg) {
                let cp = picpg.div_ceil(16) * 16;
                let nb = out_c.div_ceil(4);
                let mut lines = vec![Line64([0; 64]); ptaps * cp / 16 * nb];
                for oc in 0..out_c {
                    for t in 0..ptaps {
                        for ic in 0..picpg {
                            let kk = t * cp + ic;
                            let (s, d, b) = (kk / 16, (kk / 4) % 4, kk % 4);
                            lines[s * nb + oc / 4].0[(4 * (oc % 4) + d) * 4 + b] = wt(oc, t, ic);
                        }
                    }
                }
                return VnniPack {
                    cp,
                    nb,
                    layout: VnniLayout::Quad,
                    im2col,
                    lines,
                };
            }
            // An im2col band pads K to the octet when ≤ 16 channels, so the paired layout
            // (two vpdpbusd per broadcast) applies: 27 → 32, four 8-byte broadcasts per pixel.
            let quantum = if im2col && out_c <= 16 { 8 } else { 4 };
            let cp = picpg.div_ceil(quantum) * quantum;
            let kq = ptaps * cp / 4;
            if out_c <= 16 && cp.is_multiple_of(8) {
                let mut lines = vec![Line64([0; 64]); kq];
                for oc in 0..out_c {
                    for t in 0..ptaps {
                        for ic in 0..picpg {
                            let kk = t * cp + ic;
                            let (o, h, j) = (kk / 8, (kk / 4) % 2, kk % 4);
                            lines[o * 2 + oc / 8].0[(2 * (oc % 8) + h) * 4 + j] = wt(oc, t, ic);
                        }
                    }
                }
                return VnniPack {
                    cp,
                    nb: 2,
                    layout: VnniLayout::Paired,
                    im2col,
                    lines,
                };
            }
            let nb = out_c.div_ceil(16);
            let mut lines = vec![Line64([0; 64]); kq * nb];
            for oc in 0..out_c {
                for t in 0..ptaps {
                    for ic in 0..picpg {
                        let kk = t * cp + ic;
                        lines[(kk / 4) * nb + oc / 16].0[(oc % 16) * 4 + kk % 4] = wt(oc, t, ic);
                    }
                }
            }
            VnniPack {
                cp,
                nb,
                layout: VnniLayout::Plain,
                im2col,
                lines,
            }
        });
        let avx2 = (simd && host >= CpuLevel::Avx2 && only.is_none_or(|l| l == CpuLevel::Avx2))
            .then(|| {
                if out_c <= 4 {
                    let cp = picpg.div_ceil(4) * 4;
                    let mut lines = vec![Line32([0; 16]); ptaps * cp / 4];
                    for oc in 0..out_c {
                        for t in 0..ptaps {
                            for ic in 0..picpg {
                                let kk = t * cp + ic;
                                let (s, h, j) = (kk / 4, (kk / 2) % 2, kk % 2);
                                lines[s].0[(2 * oc + h) * 2 + j] = wt(oc, t, ic) as i16;
                            }
                        }
                    }
                    return Avx2Pack {
                        cp,
                        nb: 1,
                        paired: true,
                        im2col,
                        lines,
                    };
                }
                let cp = picpg.div_ceil(2) * 2;
                let kp = ptaps * cp / 2;
                let nb = out_c.div_ceil(8);
                let mut lines = vec![Line32([0; 16]); kp * nb];
                for oc in 0..out_c {
                    for t in 0..ptaps {
                        for ic in 0..picpg {
                            let kk = t * cp + ic;
                            lines[(kk / 2) * nb + oc / 8].0[(oc % 8) * 2 + kk % 2] =
                                wt(oc, t, ic) as i16;
                        }
                    }
                }
                Avx2Pack {
                    cp,
                    nb,
                    paired: false,
                    im2col,
                    lines,
                }
            });
        #[cfg(target_arch = "x86_64")]
        let amx = (simd && host >= CpuLevel::Amx && only.is_none_or(|l| l == CpuLevel::Amx))
            .then(|| AmxPack::new(&scalar, out_c, icpg, taps));
        PackedConv {
            out_c,
            in_c_per_group,
            kh,
            kw,
            groups,
            scalar,
            wsum,
            avx2,
            vnni,
            #[cfg(target_arch = "x86_64")]
            amx,
        }
    }

    /// Σ of each output channel's weights, for zero-point correction.
    pub fn wsum(&self) -> &[i32] {
        &self.wsum
    }

    /// Bytes held by all layouts (for the model-memory report).
    pub fn bytes(&self) -> usize {
        self.scalar.len()
            + self.wsum.len() * 4
            + self.vnni.as_ref().map_or(0, |p| p.lines.len() * 64)
            + self.avx2.as_ref().map_or(0, |p| p.lines.len() * 32)
            + self.amx_bytes()
    }

    fn amx_bytes(&self) -> usize {
        #[cfg(target_arch = "x86_64")]
        return self.amx.as_ref().map_or(0, |p| p.lines.len() * 64);
        #[cfg(not(target_arch = "x86_64"))]
        0
    }

    pub fn out_c(&self) -> usize {
        self.out_c
    }

    pub fn in_c_per_group(&self) -> usize {
        self.in_c_per_group
    }
}

/// A padded copy of the input rows one band of output rows needs, channel-padded to `cp`.
/// Element (i, j, c) sits at `(i * wp + j) * cp + c`; row i ↔ input row `iy0 + i`, column j ↔
/// input column `j - pad_left`. Taps outside the image read the pad value, channels
/// `in_c..cp` read 0 (their weights are 0 too).
pub(crate) struct Band {
    pub wp: usize,
    pub cp: usize,
}

impl Band {
    /// Columns of the band (the input columns the output row touches, incl. padding).
    pub fn width(g: &super::ConvGeom) -> usize {
        (g.out_w() - 1) * g.stride + (g.kw - 1) * g.dilation + 1
    }

    /// Input rows needed for `n` output rows.
    pub fn height(g: &super::ConvGeom, n: usize) -> usize {
        (n - 1) * g.stride + (g.kh - 1) * g.dilation + 1
    }
}

/// Fills `lo` (and `hi` for u16 input: low bytes in `lo`, high bytes in `hi`) with the band for
/// output rows `oy0..oy0+n`. `conv` maps a byte (0..=255) to the plane's element type.
/// Works row by row: padding pixels, then the interior span, which is one flat (vectorisable)
/// loop when the input pixels are dense and need no channel padding.
#[allow(clippy::too_many_arguments)]
pub(crate) fn fill_band<T: Copy + Default>(
    g: &super::ConvGeom,
    src: Src,
    in_ps: usize,
    cp: usize,
    oy0: usize,
    n: usize,
    lo: &mut Vec<T>,
    hi: &mut Vec<T>,
    conv: impl Fn(u8) -> T,
) -> Band {
    let wp = Band::width(g);
    let hp = Band::height(g, n);
    let len = hp * wp * cp;
    let two = matches!(src, Src::U16 { .. });
    // Every element of the first `len` is overwritten below, so only grow (no memset per call).
    if lo.len() < len {
        lo.resize(len, T::default());
    }
    if two && hi.len() < len {
        hi.resize(len, T::default());
    }
    let in_c = g.in_c;
    let (pad_lo, pad_hi) = match src {
        Src::U8 { pad, .. } => (conv(pad), conv(0)),
        Src::U16 { pad, .. } => (conv(pad as u8), conv((pad >> 8) as u8)),
    };
    let zero = conv(0);
    // Pixels of a band row that read input columns (the rest is left/right padding).
    let j0 = g.pad_left.min(wp);
    let j1 = (g.pad_left + g.in_w).clamp(j0, wp);
    let dense = cp == in_c && in_ps == in_c;
    // Element loops with a per-channel select rather than `fill`: with a few channels per
    // pixel (RGB: in_c = 3, cp = 4) `fill` becomes one memset call per pixel.
    let pad_pixels = |plane: &mut [T], pad: T| {
        for px in plane.chunks_exact_mut(cp) {
            for (c, o) in px.iter_mut().enumerate() {
                *o = if c < in_c { pad } else { zero };
            }
        }
    };
    for i in 0..hp {
        let row = i * wp * cp..(i + 1) * wp * cp;
        // Input row of band row i (may be outside the image: then the whole row is padding).
        let iy = (oy0 * g.stride + i) as isize - g.pad_top as isize;
        if iy < 0 || iy as usize >= g.in_h || j0 == j1 {
            pad_pixels(&mut lo[row.clone()], pad_lo);
            if two {
                pad_pixels(&mut hi[row], pad_hi);
            }
            continue;
        }
        let (left, inner, right) = (
            row.start..row.start + j0 * cp,
            row.start + j0 * cp..row.start + j1 * cp,
            row.start + j1 * cp..row.end,
        );
        pad_pixels(&mut lo[left.clone()], pad_lo);
        pad_pixels(&mut lo[right.clone()], pad_lo);
        if two {
            pad_pixels(&mut hi[left], pad_hi);
            pad_pixels(&mut hi[right], pad_hi);
        }
        // First input element of the interior span, and its length in input elements.
        let s0 = (iy as usize * g.in_w + (j0 - g.pad_left)) * in_ps;
        let npx = j1 - j0;
        match src {
            Src::U8 { data, .. } => {
                let d = &mut lo[inner];
                if dense {
                    for (o, &x) in d.iter_mut().zip(&data[s0..s0 + npx * in_c]) {
                        *o = conv(x);
                    }
                } else {
                    for (k, px) in d.chunks_exact_mut(cp).enumerate() {
                        let sp = &data[s0 + k * in_ps..s0 + k * in_ps + in_c];
                        for (c, o) in px.iter_mut().enumerate() {
                            *o = if c < in_c { conv(sp[c]) } else { zero };
                        }
                    }
                }
            }
            Src::U16 { data, .. } => {
                let (dl, dh) = (&mut lo[inner.clone()], &mut hi[inner]);
                if dense {
                    for ((l, h), &x) in dl
                        .iter_mut()
                        .zip(dh.iter_mut())
                        .zip(&data[s0..s0 + npx * in_c])
                    {
                        *l = conv(x as u8);
                        *h = conv((x >> 8) as u8);
                    }
                } else {
                    for (k, (pl, ph)) in dl
                        .chunks_exact_mut(cp)
                        .zip(dh.chunks_exact_mut(cp))
                        .enumerate()
                    {
                        let sp = &data[s0 + k * in_ps..s0 + k * in_ps + in_c];
                        for (c, (l, h)) in pl.iter_mut().zip(ph.iter_mut()).enumerate() {
                            let x = if c < in_c { sp[c] } else { 0 };
                            *l = conv(x as u8);
                            *h = conv((x >> 8) as u8);
                        }
                    }
                }
            }
        }
    }
    Band { wp, cp }
}

/// Fills `lo` (and `hi` for u16 input, as [`fill_band`]) with the im2col band of output rows
/// `oy0..oy0+n`: output pixel p (row-major over the band's rows) holds at `p·kp + t·in_c + c`
/// the input value tap t = ky·kw + kx reads for channel c, the pad value where that tap falls
/// outside the image (what the plain band holds there, so the products are the same), and 0 in
/// `kh·kw·in_c..kp` (their weights are 0). Returns the walk over it: a 1×1 conv with pixel
/// pitch `kp` and one tap run.
///
/// Two passes: `fill_band` writes the plain band unpadded (`cp = in_c`) into `plain_*`, where
/// the kw taps of a row are adjacent (dilation 1), then each pixel's kh runs of kw·in_c values
/// are copied out. A run of ≤ [`RUN`] values is copied as a fixed [`RUN`]-value block (a few
/// vector moves rather than a per-value loop or a `memcpy` call, which made the fill cost more
/// than the conv); the overhang lands in the next run or pixel, which are written after it, and
/// in the slack both buffers carry.
#[allow(clippy::too_many_arguments)]
pub(crate) fn fill_im2col<T: Copy + Default>(
    g: &super::ConvGeom,
    src: Src,
    in_ps: usize,
    kp: usize,
    oy0: usize,
    n: usize,
    out_ps: usize,
    out_row0: usize,
    (lo, hi): (&mut Vec<T>, &mut Vec<T>),
    (plain_lo, plain_hi): (&mut Vec<T>, &mut Vec<T>),
    conv: impl Fn(u8) -> T + Copy,
) -> BandWalk {
    let out_w = g.out_w();
    let in_c = g.in_c;
    let two = matches!(src, Src::U16 { .. });
    let band = fill_band(g, src, in_ps, in_c, oy0, n, plain_lo, plain_hi, conv);
    let len = n * out_w * kp;
    let row_pitch = band.wp * in_c;
    // Slack: the block copies may read and write up to RUN values past a run's end.
    let grow = |v: &mut Vec<T>, need: usize| {
        if v.len() < need {
            v.resize(need, T::default());
        }
    };
    let plain_len = row_pitch * Band::height(g, n) + RUN;
    grow(plain_lo, plain_len);
    grow(lo, len + RUN);
    if two {
        grow(plain_hi, plain_len);
        grow(hi, len + RUN);
    }
    let k = g.kh * g.kw * in_c;
    let run = g.kw * in_c;
    let block = g.dilation == 1 && run <= RUN;
    let zero = conv(0);
    let planes: &mut [(&mut Vec<T>, &Vec<T>)] = if two {
        &mut [(lo, &*plain_lo), (hi, &*plain_hi)]
    } else {
        &mut [(lo, &*plain_lo)]
    };
    let zeros = [zero; RUN];
    for (dst, plain) in planes.iter_mut() {
        if !block {
            for p in 0..n * out_w {
                let (r, ox) = (p / out_w, p % out_w);
                let at = p * kp;
                for ky in 0..g.kh {
                    let s0 = (r * g.stride + ky * g.dilation) * row_pitch + ox * g.stride * in_c;
                    for kx in 0..g.kw {
                        let s = s0 + kx * g.dilation * in_c;
                        let d = at + (ky * g.kw + kx) * in_c;
                        dst[d..d + in_c].copy_from_slice(&plain[s..s + in_c]);
                    }
                }
                dst[at + k..at + kp].fill(zero);
            }
            continue;
        }
        // Every block read starts at most at the last pixel's last run, every block write at
        // most at the last pixel's tail: both within the buffers grown above (RUN of slack).
        let last = (n - 1) * out_w + out_w - 1;
        let (r, ox) = (last / out_w, last % out_w);
        let s_max = (r * g.stride + (g.kh - 1)) * row_pitch + ox * g.stride * in_c;
        assert!(s_max + RUN <= plain.len() && last * kp + k.max(kp - RUN) + RUN <= dst.len());
        // The tail block covers the whole tail.
        assert!(kp - k <= RUN);
        let (d, sp) = (dst.as_mut_ptr(), plain.as_ptr());
        // An RGB 3×3 conv on bytes (the bundled models' first conv): each pixel's 27 values
        // and zero tail built in four u64 words, stored without overlap. The 16-byte block
        // copies overlapped each other and split cache lines, and made the fill 38 % of
        // that conv's time (3→16 at 960×540, one Zen 4 thread, perf).
        // SAFETY (the check): T is one byte and `zero` is the byte 0.
        let rgb3x3 = size_of::<T>() == 1
            && unsafe { *(&zero as *const T as *const u8) } == 0
            && (g.kh, run, k) == (3, 9, 27)
            && (kp == 28 || kp == 32);
        if rgb3x3 {
            let d = d.cast::<u8>();
            let sp = sp.cast::<u8>();
            for r in 0..n {
                for ox in 0..out_w {
                    let at = (r * out_w + ox) * kp;
                    let s0 = r * g.stride * row_pitch + ox * g.stride * in_c;
                    // SAFETY: each row read is 9 bytes at s0 + ky·row_pitch ≤ s_max (asserted
                    // with RUN of slack above), and the writes cover exactly this pixel's kp
                    // bytes (at + kp ≤ dst.len(), asserted above); T is one byte.
                    unsafe {
                        let row = |ky: usize| {
                            let p = sp.add(s0 + ky * row_pitch);
                            let lo = u64::from_le(p.cast::<u64>().read_unaligned());
                            (lo, u64::from(*p.add(8)))
                        };
                        let ((a, a8), (b, b8), (c, c8)) = (row(0), row(1), row(2));
                        // Little-endian bytes: a0..a7 | a8 b0..b6 | b7 b8 c0..c5 | c6 c7 c8 0….
                        let w = [
                            a,
                            a8 | (b << 8),
                            (b >> 56) | (b8 << 8) | (c << 16),
                            (c >> 48) | (c8 << 16),
                        ];
                        let o = d.add(at);
                        for (i, &w) in w.iter().enumerate().take(3) {
                            o.add(8 * i).cast::<u64>().write_unaligned(w.to_le());
                        }
                        if kp == 32 {
                            o.add(24).cast::<u64>().write_unaligned(w[3].to_le());
                        } else {
                            o.add(24)
                                .cast::<u32>()
                                .write_unaligned((w[3] as u32).to_le());
                        }
                    }
                }
            }
            continue;
        }
        for r in 0..n {
            for ox in 0..out_w {
                let at = (r * out_w + ox) * kp;
                let s0 = r * g.stride * row_pitch + ox * g.stride * in_c;
                // SAFETY: the asserts above bound every offset (s0 + ky·row_pitch ≤ s_max,
                // at + ky·run and at + k ≤ last·kp + kp); the writes of one pixel overlap only
                // its own and the next pixel's values, which are written after them.
                unsafe {
                    for ky in 0..g.kh {
                        let blk = sp
                            .add(s0 + ky * row_pitch)
                            .cast::<[T; RUN]>()
                            .read_unaligned();
                        d.add(at + ky * run).cast::<[T; RUN]>().write_unaligned(blk);
                    }
                    d.add(at + k).cast::<[T; RUN]>().write_unaligned(zeros);
                }
            }
        }
    }
    BandWalk {
        out_w,
        stride: 1,
        row_pitch: out_w * kp,
        pix_pitch: kp,
        out_ps,
        out_row0,
        next: Default::default(),
    }
}

/// Values per block copy in [`fill_im2col`]: covers a 3×3 kernel's row of 3 (9) or 4 (12)
/// channels and a 5×5 one's of 3 (15).
const RUN: usize = 16;

/// Output rows per im2col band (`kp` values of `elem` bytes per output pixel), sized like
/// [`band_rows`].
pub(crate) fn im2col_rows(g: &super::ConvGeom, kp: usize, elem: usize, rows: usize) -> usize {
    let row_bytes = g.out_w() * kp * elem;
    (BAND_BYTES / row_bytes.max(1)).clamp(1, rows.max(1))
}

/// Bytes of padded input per band and plane: sized to stay in L2 next to the weights, so the
/// halo rows re-copied between bands cost little while the micro-kernel reads hit cache.
const BAND_BYTES: usize = 192 * 1024;

/// How the SIMD drivers walk one band: pixel `p` of the band (row-major over the band's output
/// rows) reads the band at `pix(p) + taps[t] + c` and writes the output at `out_at(p) + oc`.
/// A packed band has `pix_pitch = cp`, `row_pitch = wp·cp`; an input read in place (no padding
/// needed) has `pix_pitch = in_pixel_stride`, `row_pitch = in_w·in_pixel_stride`.
pub(crate) struct BandWalk {
    pub out_w: usize,
    pub stride: usize,
    pub row_pitch: usize,
    pub pix_pitch: usize,
    pub out_ps: usize,
    /// Output row of the band's first row, relative to `rows.start` of the call.
    pub out_row0: usize,
    /// Where the last `pixels` call ended: (pixel, its row, its column), so that the tiles'
    /// in-order calls skip the division (see `pixels`).
    pub next: std::cell::Cell<(usize, usize, usize)>,
}

impl BandWalk {
    /// The walk over a packed band (`fill_band`) of output rows starting `out_row0` rows into the
    /// call's range, writing pixels `out_ps` elements apart.
    pub fn over_band(g: &super::ConvGeom, band: &Band, out_ps: usize, out_row0: usize) -> BandWalk {
        BandWalk {
            out_w: g.out_w(),
            stride: g.stride,
            row_pitch: band.wp * band.cp,
            pix_pitch: band.cp,
            out_ps,
            out_row0,
            next: Default::default(),
        }
    }

    #[inline]
    pub fn pix(&self, p: usize) -> usize {
        let (r, x) = (p / self.out_w, p % self.out_w);
        (r * self.row_pitch + x * self.pix_pitch) * self.stride
    }

    /// `[pix(p0), …, pix(p0 + MR − 1)]` with one division: the tiles used to call `pix` per
    /// pixel, and that division (~26 cycles) cost as much as the dot products of a 3-channel
    /// or 16-channel conv's pixel. An im2col band (row pitch = out_w · pixel pitch) needs none.
    // Always: called once per tile from the `#[target_feature]` kernels, where
    // a plain `#[inline]` was left out of line (3 % of nawq_x2's samples).
    #[inline(always)]
    pub fn pixels<const MR: usize>(&self, p0: usize) -> [usize; MR] {
        let mut at = [0usize; MR];
        if self.row_pitch == self.out_w * self.pix_pitch {
            for (i, a) in at.iter_mut().enumerate() {
                *a = (p0 + i) * self.pix_pitch * self.stride;
            }
            return at;
        }
        // Tiles walk a band's pixels in order, so the row and column usually continue from the
        // last call; the division (~26 cycles, as much as a 10-pixel 16-channel tile's epilogue)
        // is only for a jump.
        let (np, nr, nx) = self.next.get();
        let (mut r, mut x) = if np == p0 {
            (nr, nx)
        } else {
            (p0 / self.out_w, p0 % self.out_w)
        };
        for a in at.iter_mut() {
            *a = (r * self.row_pitch + x * self.pix_pitch) * self.stride;
            x += 1;
            if x == self.out_w {
                x = 0;
                r += 1;
            }
        }
        self.next.set((p0 + MR, r, x));
        at
    }

    #[inline(always)]
    pub fn out_at(&self, p: usize) -> usize {
        (self.out_row0 * self.out_w + p) * self.out_ps
    }

    /// The kh·kw taps as runs `(offset, len)` in elements, each tap covering `cp` elements:
    /// taps whose inputs are adjacent (kx, kx+1 with dilation 1 in a band, whose K ranges are
    /// adjacent in the packed weights too) merge into one run, so the micro-kernel's K loop
    /// runs kw·cp long instead of cp (a 3→64 conv: 3 runs of 12 instead of 9 of 4).
    pub fn tap_runs(&self, g: &super::ConvGeom, cp: usize) -> Vec<(usize, usize)> {
        let mut runs: Vec<(usize, usize)> = Vec::with_capacity(g.kh * g.kw);
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let off = ky * g.dilation * self.row_pitch + kx * g.dilation * self.pix_pitch;
                match runs.last_mut() {
                    Some((o, len)) if *o + *len == off => *len += cp,
                    _ => runs.push((off, cp)),
                }
            }
        }
        runs
    }
}

/// Output rows per band for a plane of `elem` bytes per value.
pub(crate) fn band_rows(g: &super::ConvGeom, cp: usize, elem: usize, rows: usize) -> usize {
    let row_bytes = Band::width(g) * cp * elem * g.stride;
    (BAND_BYTES / row_bytes.max(1)).clamp(1, rows.max(1))
}
