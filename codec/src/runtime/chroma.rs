//! The chroma planes of a 4:2:0 frame, resized for a luma model (issue 17):
//! the network upscales Y, and U and V go straight from their plane size to
//! the output's, with no colour matrix on the way (ffmpeg `sr`, mpv FSRCNNX
//! and RAISR do the same).
//!
//! A separable cubic (Keys, a = −½, MATLAB's `imresize` kernel), replicating
//! the edge samples. Sample positions follow the frame's chroma siting on
//! both sides, since the output carries the input's colorimetry: vertically a
//! 4:2:0 chroma sample sits between its two luma rows; horizontally between
//! its two luma columns (`Siting::Centre`) or on the even one
//! (`Siting::Left`, MPEG-2/H.264). A position is mapped through luma
//! coordinates, so odd frame sizes (chroma planes of ⌈w/2⌉) need no special
//! case.
//!
//! Numerics: f32, each output sample summed in a fixed order (horizontal taps
//! 0..4, then vertical taps 0..4), rounded half away from zero and clamped to
//! the format's range by the caller's writer. No explicit SIMD: the vertical
//! pass vectorises across a row without changing any sum.
use super::frame::Siting;

/// Four taps of one output sample: the input indices (edge-clamped) and
/// their weights.
#[derive(Clone, Copy, Debug)]
struct Tap {
    idx: [u32; 4],
    w: [f32; 4],
    /// The unclamped index of tap 0 (−2 ≤ start; a padded row holds it).
    start: i64,
}

/// Keys' cubic convolution kernel with a = −½.
fn cubic(t: f64) -> f64 {
    let t = t.abs();
    if t <= 1.0 {
        (1.5 * t - 2.5) * t * t + 1.0
    } else if t < 2.0 {
        ((-0.5 * t + 2.5) * t - 4.0) * t + 2.0
    } else {
        0.0
    }
}

/// Taps for `n_out` samples at input positions j + φ[k] for output
/// i = s·j + k (in input sample units, 0 = the centre of the first): the
/// positions of an integer scale repeat with period s, so every output of a
/// phase gets the very same weights.
fn taps(n_in: usize, n_out: usize, phase: &[f64]) -> Vec<Tap> {
    let last = n_in as i64 - 1;
    let s = phase.len();
    (0..n_out)
        .map(|i| {
            let f = phase[i % s];
            let j0 = (i / s) as i64 + f.floor() as i64 - 1;
            let frac = f - f.floor();
            let mut tap = Tap {
                idx: [0; 4],
                w: [0.0; 4],
                start: j0,
            };
            let mut sum = 0.0;
            let mut w = [0.0f64; 4];
            for (k, wk) in w.iter_mut().enumerate() {
                *wk = cubic(frac + 1.0 - k as f64);
                sum += *wk;
            }
            for (k, (i, wt)) in tap.idx.iter_mut().zip(&mut tap.w).enumerate() {
                *i = (j0 + k as i64).clamp(0, last) as u32;
                // The kernel's weights sum to 1 at every phase; divide anyway
                // so a flat plane stays exactly flat after f32 rounding.
                *wt = (w[k] / sum) as f32;
            }
            tap
        })
        .collect()
}

/// Replicated samples on each side of a padded input row: the clamped taps
/// of the edges read the same values from the padding, so every output of
/// a row runs the same unclamped loop.
const PAD: usize = 3;

/// A resizer from one chroma plane size to another, for a luma scale `s`.
pub struct ChromaResizer {
    in_w: usize,
    in_h: usize,
    scale: usize,
    cols: Vec<Tap>,
    rows: Vec<Tap>,
}

impl ChromaResizer {
    /// Chroma planes of a `luma_w`×`luma_h` 4:2:0 frame to those of the
    /// ×`scale` frame.
    pub fn new(luma_w: usize, luma_h: usize, scale: usize, siting: Siting) -> ChromaResizer {
        let (in_w, in_h) = (luma_w.div_ceil(2), luma_h.div_ceil(2));
        let (out_w, out_h) = ((luma_w * scale).div_ceil(2), (luma_h * scale).div_ceil(2));
        let s = scale as f64;
        // Chroma sample j sits at luma x = 2j + 1 (centred) or 2j + ½ (left),
        // pixel edges at integers. Output sample i's position, divided by the
        // scale, gives the input luma position; solve for j.
        let off = match siting {
            Siting::Centre => 1.0,
            Siting::Left => 0.5,
        };
        // Output i = s·j + k sits at j + φ[k].
        let phases = |off: f64| -> Vec<f64> {
            (0..scale)
                .map(|k| ((2.0 * k as f64 + off) / s - off) / 2.0)
                .collect()
        };
        let cols = taps(in_w, out_w, &phases(off));
        let rows = taps(in_h, out_h, &phases(1.0));
        ChromaResizer {
            in_w,
            in_h,
            scale,
            cols,
            rows,
        }
    }

    /// Output plane size.
    pub fn out_size(&self) -> (usize, usize) {
        (self.cols.len(), self.rows.len())
    }

    /// Input plane size.
    pub fn in_size(&self) -> (usize, usize) {
        (self.in_w, self.in_h)
    }

    /// Resizes one plane: `read(r, row)` fills input row `r` (`in_w` samples),
    /// `write(r, row)` takes output row `r` (`out_w` samples, unrounded).
    pub fn run(&self, read: impl Fn(usize, &mut [f32]), mut write: impl FnMut(usize, &[f32])) {
        let out_w = self.cols.len();
        let n = self.in_w;
        let mut src = vec![0f32; n + 2 * PAD];
        let mut tmp = vec![0f32; n + 2 * PAD];
        // Horizontal pass over every input row once.
        let mut mid = vec![0f32; self.in_h * out_w];
        for (r, m) in mid.chunks_exact_mut(out_w).enumerate() {
            read(r, &mut src[PAD..PAD + n]);
            let (first, last) = (src[PAD], src[PAD + n - 1]);
            src[..PAD].fill(first);
            src[PAD + n..].fill(last);
            horizontal(&self.cols, self.scale, &src, m, &mut tmp);
        }
        let mut out = vec![0f32; out_w];
        for (r, t) in self.rows.iter().enumerate() {
            let row = |k: usize| &mid[t.idx[k] as usize * out_w..][..out_w];
            vertical(t.w, [row(0), row(1), row(2), row(3)], &mut out);
            write(r, &out);
        }
    }
}

/// One padded row through the horizontal taps: ((w0·a + w1·b) + w2·c) + w3·d,
/// the clamped taps read from the padding. Phase by phase (the outputs
/// i = s·j + k share weights and read consecutive inputs as j runs), each
/// phase a vector loop into `tmp`, then interleaved into `out`.
fn horizontal(cols: &[Tap], s: usize, src: &[f32], out: &mut [f32], tmp: &mut [f32]) {
    for k in 0..s.min(out.len()) {
        let t = &cols[k];
        // Unclamped index of tap 0 of output k, in the padded row.
        let base = (t.start + PAD as i64) as usize;
        let count = (out.len() - k).div_ceil(s);
        phase(t.w, &src[base..base + count + 3], &mut tmp[..count]);
        for (j, &v) in tmp[..count].iter().enumerate() {
            out[s * j + k] = v;
        }
    }
}

/// `out[j] = Σ_t w[t]·src[j + t]`, built for AVX2 too (same bits).
fn phase(w: [f32; 4], src: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is present (checked).
        return unsafe { phase_avx2(w, src, out) };
    }
    phase_body(w, src, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn phase_avx2(w: [f32; 4], src: &[f32], out: &mut [f32]) {
    phase_body(w, src, out)
}

#[inline(always)]
fn phase_body(w: [f32; 4], src: &[f32], out: &mut [f32]) {
    let n = out.len();
    let (a, b, c, d) = (&src[..n], &src[1..n + 1], &src[2..n + 2], &src[3..n + 3]);
    for i in 0..n {
        out[i] = w[0] * a[i] + w[1] * b[i] + w[2] * c[i] + w[3] * d[i];
    }
}

/// Four rows into one, element by element in the same order as
/// [`horizontal`]. Compiled a second time with AVX2 (8 lanes instead of
/// baseline x86-64's 4) and chosen at run time: Rust never fuses a multiply
/// and an add, so both builds give the same bits.
fn vertical(w: [f32; 4], rows: [&[f32]; 4], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is present (checked).
        return unsafe { vertical_avx2(w, rows, out) };
    }
    vertical_body(w, rows, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn vertical_avx2(w: [f32; 4], rows: [&[f32]; 4], out: &mut [f32]) {
    vertical_body(w, rows, out)
}

#[inline(always)]
fn vertical_body(w: [f32; 4], [a, b, c, d]: [&[f32]; 4], out: &mut [f32]) {
    let n = out.len();
    let (a, b, c, d) = (&a[..n], &b[..n], &c[..n], &d[..n]);
    for i in 0..n {
        out[i] = w[0] * a[i] + w[1] * b[i] + w[2] * c[i] + w[3] * d[i];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resize(p: &[f32], w: usize, h: usize, s: usize, siting: Siting) -> (Vec<f32>, usize) {
        let z = ChromaResizer::new(2 * w, 2 * h, s, siting);
        assert_eq!(z.in_size(), (w, h));
        let (ow, oh) = z.out_size();
        let mut out = vec![0f32; ow * oh];
        z.run(
            |r, row| row.copy_from_slice(&p[r * w..][..w]),
            |r, row| out[r * ow..][..ow].copy_from_slice(row),
        );
        (out, ow)
    }

    #[test]
    fn flat_stays_flat_and_sizes_follow_the_luma() {
        for s in 2..=4 {
            for siting in [Siting::Centre, Siting::Left] {
                let (out, ow) = resize(&[77.0; 35], 7, 5, s, siting);
                assert_eq!(ow, 7 * s);
                assert_eq!(out.len(), 7 * s * 5 * s);
                assert!(out.iter().all(|&v| v == 77.0), "×{s} {siting:?}");
            }
        }
        // Odd luma: 5×3 luma has 3×2 chroma, ×3 is 15×9 luma, 8×5 chroma.
        let z = ChromaResizer::new(5, 3, 3, Siting::Left);
        assert_eq!((z.in_size(), z.out_size()), ((3, 2), (8, 5)));
    }

    /// A linear ramp is reproduced exactly by a cubic (away from the
    /// clamped edges), so the output shows where each sample is placed:
    /// centred chroma lands where MATLAB `imresize` puts it, left-sited chroma
    /// keeps its left siting.
    #[test]
    fn samples_sit_where_the_siting_says() {
        let (w, h, s) = (16, 4, 2);
        let ramp: Vec<f32> = (0..w * h).map(|k| (k % w) as f32 * 10.0).collect();
        // Centred: output i at input (i + ½)/s − ½.
        let (out, ow) = resize(&ramp, w, h, s, Siting::Centre);
        for i in 4..ow - 4 {
            let want = ((i as f32 + 0.5) / s as f32 - 0.5) * 10.0;
            assert!(
                (out[ow + i] - want).abs() < 1e-3,
                "centre {i}: {} vs {want}",
                out[ow + i]
            );
        }
        // Left: output i sits on output luma 2i, input luma 2i/s = 2j.
        let (out, ow) = resize(&ramp, w, h, s, Siting::Left);
        for i in 4..ow - 4 {
            let want = ((2.0 * i as f32 + 0.5) / s as f32 - 0.5) / 2.0 * 10.0;
            assert!(
                (out[ow + i] - want).abs() < 1e-3,
                "left {i}: {} vs {want}",
                out[ow + i]
            );
        }
    }

    /// The phase loops equal the plain clamped taps on every size, scale
    /// and siting (edges included), and the AVX2 builds the baseline ones.
    #[test]
    fn phases_equal_the_clamped_taps() {
        for s in 2..=4 {
            for siting in [Siting::Centre, Siting::Left] {
                for (lw, lh) in [(1, 1), (2, 2), (3, 5), (9, 4), (33, 7)] {
                    let z = ChromaResizer::new(lw, lh, s, siting);
                    let (w, h) = z.in_size();
                    let (ow, oh) = z.out_size();
                    let p: Vec<f32> = (0..w * h).map(|k| ((k * 53) % 211) as f32).collect();
                    let mut got = vec![0f32; ow * oh];
                    z.run(
                        |r, row| row.copy_from_slice(&p[r * w..][..w]),
                        |r, row| got[r * ow..][..ow].copy_from_slice(row),
                    );
                    // Reference: clamped gathers, the same sums in the same order.
                    let mut mid = vec![0f32; h * ow];
                    for r in 0..h {
                        for (i, t) in z.cols.iter().enumerate() {
                            let v = t.idx.map(|j| p[r * w + j as usize]);
                            mid[r * ow + i] =
                                t.w[0] * v[0] + t.w[1] * v[1] + t.w[2] * v[2] + t.w[3] * v[3];
                        }
                    }
                    for (r, t) in z.rows.iter().enumerate() {
                        for i in 0..ow {
                            let v = t.idx.map(|j| mid[j as usize * ow + i]);
                            let want =
                                t.w[0] * v[0] + t.w[1] * v[1] + t.w[2] * v[2] + t.w[3] * v[3];
                            assert_eq!(
                                got[r * ow + i].to_bits(),
                                want.to_bits(),
                                "×{s} {siting:?} {lw}x{lh} ({r}, {i})"
                            );
                        }
                    }
                }
            }
        }
        let src: Vec<f32> = (0..40).map(|i| (i * 13 % 29) as f32 - 7.5).collect();
        let w = [-0.0703125f32, 0.8671875, 0.2265625, -0.0234375];
        let (mut a, mut b) = (vec![0f32; 37], vec![0f32; 37]);
        phase(w, &src, &mut a);
        phase_body(w, &src, &mut b);
        assert_eq!(a, b);
    }

    /// The AVX2 build of the vertical pass equals the baseline one bit for bit.
    #[test]
    fn vertical_builds_agree() {
        let rows: Vec<Vec<f32>> = (0..4)
            .map(|k| {
                (0..37)
                    .map(|i| ((i * 31 + k * 17) % 97) as f32 * 0.37 - 5.0)
                    .collect()
            })
            .collect();
        let w = [-0.0703125f32, 0.8671875, 0.2265625, -0.0234375];
        let r = [&rows[0][..], &rows[1][..], &rows[2][..], &rows[3][..]];
        let (mut a, mut b) = (vec![0f32; 37], vec![0f32; 37]);
        vertical(w, r, &mut a);
        vertical_body(w, r, &mut b);
        assert_eq!(
            a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            b.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }

    /// Centred ×2 equals MATLAB bicubic (`metrics::imresize`) away from the
    /// edges, where MATLAB mirrors and this resizer replicates.
    #[test]
    fn centred_equals_matlab_imresize_inside() {
        let (w, h) = (12, 10);
        let p: Vec<f32> = (0..w * h).map(|k| ((k * 37) % 101) as f32).collect();
        for s in [2, 3, 4] {
            let (out, ow) = resize(&p, w, h, s, Siting::Centre);
            let oh = out.len() / ow;
            let want = crate::metrics::imresize::imresize_plane(&p, w, h, ow, oh);
            for r in 2 * s..oh - 2 * s {
                for c in 2 * s..ow - 2 * s {
                    let (a, b) = (out[r * ow + c], want[r * ow + c]);
                    assert!((a - b).abs() < 1e-3, "×{s} ({r}, {c}): {a} vs {b}");
                }
            }
        }
    }
}
