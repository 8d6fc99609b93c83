//! Difficulty routing (issue 18 item 4; MobiSR, MobiCom'19): easy LR patches
//! take a cheap path, hard ones the network.
//!
//! - **Score.** Each `tile`×`tile` patch of the LR frame (the grid of
//!   `runtime::reuse`) gets its gradient energy: the mean squared difference
//!   of neighbouring luma values over the patch grown by [`SCORE_MARGIN`].
//!   Squared, not total variation: bicubic's error is an edge's blur, and the
//!   PSNR budget is a mean squared error, so one strong edge must count more
//!   than many weak ones.
//! - **Cheap path.** A patch scoring under the schedule's threshold takes
//!   fixed-point bicubic (`runtime::bicubic`, 2-pixel support). The threshold
//!   is calibrated offline for a PSNR budget (`nawqsr calibrate-routing`) and
//!   stored in the schedule (`schedule::Routing`).
//! - **No seams.** An easy patch next to a hard one fades from the network's
//!   output into bicubic over its first [`BLEND`] LR pixels (×scale HR) from
//!   that neighbour, so where paths meet they agree. The fade lies in the
//!   easy (flat) patch, where the two paths differ least, and hard patches
//!   keep the network's output whole. The network's output under a fade is
//!   exact: sub-frames grow by `BLEND` more than the halo. So the composed
//!   frame is the same function of the LR frame however the hard patches
//!   were grouped into sub-frames, and calibration composes exactly what the
//!   runtime does, from a whole-frame run ([`compose`]).
//! - **Locality.** A patch's output depends on the LR pixels within the
//!   network's halo of it, within 2 pixels (bicubic), and on the class of its
//!   eight neighbours, whose scores read `SCORE_MARGIN` beyond them: so
//!   temporal reuse stays exact with routing when its halo is at least
//!   `tile + SCORE_MARGIN` ([`reuse_halo`]).
use image::RgbImage;

/// LR pixels around a patch that its score also reads: bicubic's support, so
/// an edge just outside the patch, which bicubic would blur into it, counts.
pub const SCORE_MARGIN: usize = 2;

/// LR pixels over which a hard patch fades to bicubic towards an easy
/// neighbour.
pub const BLEND: usize = 4;

/// The receptive halo temporal reuse must use with routing on (module docs).
pub fn reuse_halo(model_halo: usize, tile: usize) -> usize {
    model_halo.max(tile + SCORE_MARGIN)
}

/// BT.601 luma in 8 bits, integer (the score's only input), of one row.
fn luma_row(px: &[u8], out: &mut [i32]) {
    // u16 arithmetic (77 + 150 + 29 = 256, so the sum stays below 65536):
    // narrower lanes, more pixels per vector.
    for (o, p) in out.iter_mut().zip(px.chunks_exact(3)) {
        *o = ((77 * p[0] as u16 + 150 * p[1] as u16 + 29 * p[2] as u16 + 128) >> 8) as i32;
    }
}

/// Every patch's score (row-major, `ceil(w/tile)` per row): the mean over
/// the grown patch of (Y(x+1, y) − Y(x, y))² + (Y(x, y+1) − Y(x, y))², pairs
/// leaving the frame counting 0. Integer sums, so every host agrees. One
/// pass: each row's energies, prefix-summed along the row, are added to the
/// (one or two) patch rows whose grown extent holds the row.
pub fn scores(lr: &RgbImage, tile: usize) -> Vec<f64> {
    let (w, h) = (lr.width() as usize, lr.height() as usize);
    let tile = tile.max(1);
    let (tx, ty) = (w.div_ceil(tile), h.div_ceil(tile));
    let span = |p: usize, n: usize| {
        (
            (p * tile).saturating_sub(SCORE_MARGIN),
            ((p + 1) * tile + SCORE_MARGIN).min(n),
        )
    };
    let cols: Vec<(usize, usize)> = (0..tx).map(|p| span(p, w)).collect();
    let mut sums = vec![0u64; tx * ty];
    let raw = lr.as_raw();
    let (mut cur, mut next) = (vec![0i32; w], vec![0i32; w]);
    // prefix[x] = energy of columns < x in this row.
    let mut prefix = vec![0u64; w + 1];
    let mut energy = vec![0u32; w];
    if h > 0 {
        luma_row(&raw[..w * 3], &mut cur);
    }
    for y in 0..h {
        if y + 1 < h {
            luma_row(&raw[(y + 1) * w * 3..(y + 2) * w * 3], &mut next);
        }
        // Energies (equal-length slices, so the loop vectorises), then their
        // prefix sums.
        let down = if y + 1 < h { &next[..] } else { &cur[..] };
        let n = w.saturating_sub(1);
        let (l, r, d, e) = (&cur[..n], &cur[1..n + 1], &down[..n], &mut energy[..n]);
        for i in 0..n {
            let (dx, dy) = (r[i] - l[i], d[i] - l[i]);
            e[i] = (dx * dx + dy * dy) as u32;
        }
        // The last column has no right neighbour.
        if w > 0 {
            let dy = down[w - 1] - cur[w - 1];
            energy[w - 1] = (dy * dy) as u32;
        }
        let mut acc = 0u64;
        for (p, &e) in prefix[1..].iter_mut().zip(&energy) {
            acc += e as u64;
            *p = acc;
        }
        // Patch rows whose grown extent holds row y: py = (y ± margin) / tile.
        let lo = y.saturating_sub(SCORE_MARGIN) / tile;
        let hi = ((y + SCORE_MARGIN) / tile).min(ty - 1);
        for py in lo..=hi {
            let (y0, y1) = span(py, h);
            if y < y0 || y >= y1 {
                continue;
            }
            for (px, &(x0, x1)) in cols.iter().enumerate() {
                sums[py * tx + px] += prefix[x1] - prefix[x0];
            }
        }
        std::mem::swap(&mut cur, &mut next);
    }
    (0..tx * ty)
        .map(|i| {
            let ((x0, x1), (y0, y1)) = (cols[i % tx], span(i / tx, h));
            sums[i] as f64 / ((x1 - x0) * (y1 - y0)) as f64
        })
        .collect()
}

/// Hard patches: score at or above `threshold`.
pub fn hard(scores: &[f64], threshold: f64) -> Vec<bool> {
    scores.iter().map(|&s| s >= threshold).collect()
}

/// The patch grid of a `w`×`h` LR frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grid {
    pub w: usize,
    pub h: usize,
    pub tile: usize,
    /// Upscaling factor.
    pub s: usize,
}

impl Grid {
    pub fn cols(&self) -> usize {
        self.w.div_ceil(self.tile)
    }

    pub fn rows(&self) -> usize {
        self.h.div_ceil(self.tile)
    }

    /// Patch `i`'s HR box: (x0, y0, x1, y1).
    fn hr_box(&self, i: usize) -> (usize, usize, usize, usize) {
        let (px, py) = (i % self.cols(), i / self.cols());
        let t = self.tile;
        (
            px * t * self.s,
            py * t * self.s,
            ((px + 1) * t).min(self.w) * self.s,
            ((py + 1) * t).min(self.h) * self.s,
        )
    }
}

/// A network output: the image of the LR region whose top-left corner is
/// LR (`x0`, `y0`).
#[derive(Clone, Copy)]
pub struct Source<'a> {
    pub img: &'a RgbImage,
    pub x0: usize,
    pub y0: usize,
}

fn copy_rows(
    out: &mut RgbImage,
    src: &RgbImage,
    (sx, sy): (usize, usize),
    b: (usize, usize, usize, usize),
) {
    let (x0, y0, x1, y1) = b;
    let (row, srow) = (out.width() as usize * 3, src.width() as usize * 3);
    let (s, dst) = (src.as_raw(), &mut **out);
    for y in y0..y1 {
        let d = y * row + x0 * 3;
        let o = (y - sy) * srow + (x0 - sx) * 3;
        dst[d..d + (x1 - x0) * 3].copy_from_slice(&s[o..o + (x1 - x0) * 3]);
    }
}

/// Copies easy patch `i` from `bic` (the whole frame's bicubic) into `out`.
pub fn paste_easy(out: &mut RgbImage, bic: &RgbImage, g: &Grid, i: usize) {
    copy_rows(out, bic, (0, 0), g.hr_box(i));
}

/// Copies hard patch `i` from the network's output `src` into `out`.
pub fn paste_hard(out: &mut RgbImage, src: Source, g: &Grid, i: usize) {
    copy_rows(out, src.img, (src.x0 * g.s, src.y0 * g.s), g.hr_box(i));
}

/// The 8-neighbours of patch `i` inside the grid: (index, dx, dy).
pub fn neighbours(g: &Grid, i: usize) -> impl Iterator<Item = (usize, i32, i32)> {
    let (cols, rows) = (g.cols() as i32, g.rows() as i32);
    let (px, py) = ((i % g.cols()) as i32, (i / g.cols()) as i32);
    (-1..=1)
        .flat_map(move |dy| (-1..=1).map(move |dx| (dx, dy)))
        .filter(move |&(dx, dy)| {
            let (x, y) = (px + dx, py + dy);
            (dx, dy) != (0, 0) && x >= 0 && y >= 0 && x < cols && y < rows
        })
        .map(move |(dx, dy)| (((py + dy) * cols + px + dx) as usize, dx, dy))
}

/// The hard 8-neighbours of patch `i`: (index, dx, dy).
pub fn hard_neighbours(
    g: &Grid,
    hard: &[bool],
    i: usize,
) -> impl Iterator<Item = (usize, i32, i32)> {
    neighbours(g, i).filter(move |&(n, _, _)| hard[n])
}

/// Fades easy patch `i` (already bicubic in `out`) into the network's output
/// over [`BLEND`]·s HR pixels from each hard 8-neighbour (Chebyshev distance
/// d to that neighbour; weight of the network (2(span − d) − 1)/(2·span), in
/// 256ths, the nearest neighbour deciding). `src(n)` is an output exact at
/// those pixels: it must cover them with the network's halo around them.
pub fn fade_easy<'a>(
    out: &mut RgbImage,
    bic: &RgbImage,
    g: &Grid,
    hard: &[bool],
    i: usize,
    src: impl Fn(usize) -> Source<'a>,
) {
    let (x0, y0, x1, y1) = g.hr_box(i);
    let span = BLEND * g.s;
    let (pw, ph) = (x1 - x0, y1 - y0);
    // Per pixel of the patch: distance to the nearest hard neighbour, and
    // which neighbour (its output is read there; any exact one would do).
    let mut near = vec![(usize::MAX, usize::MAX); pw * ph];
    let mut any = false;
    for (n, dx, dy) in hard_neighbours(g, hard, i) {
        any = true;
        let (xa, xb) = match dx {
            -1 => (0, span.min(pw)),
            1 => (pw.saturating_sub(span), pw),
            _ => (0, pw),
        };
        let (ya, yb) = match dy {
            -1 => (0, span.min(ph)),
            1 => (ph.saturating_sub(span), ph),
            _ => (0, ph),
        };
        for y in ya..yb {
            let ddy = match dy {
                -1 => y,
                1 => ph - 1 - y,
                _ => 0,
            };
            for x in xa..xb {
                let ddx = match dx {
                    -1 => x,
                    1 => pw - 1 - x,
                    _ => 0,
                };
                let d = ddx.max(ddy);
                if d < near[y * pw + x].0 {
                    near[y * pw + x] = (d, n);
                }
            }
        }
    }
    if !any {
        return;
    }
    let row = out.width() as usize * 3;
    let (b, dst) = (bic.as_raw(), &mut **out);
    let mut cached: Option<(usize, Source<'a>)> = None;
    for y in 0..ph {
        for x in 0..pw {
            let (d, n) = near[y * pw + x];
            if d >= span {
                continue;
            }
            let s = match cached {
                Some((k, s)) if k == n => s,
                _ => {
                    let s = src(n);
                    cached = Some((n, s));
                    s
                }
            };
            let (sx, sy) = (s.x0 * g.s, s.y0 * g.s);
            let srow = s.img.width() as usize * 3;
            let a = (256 * (2 * (span - d) - 1) / (2 * span)) as u32;
            let (gx, gy) = (x0 + x, y0 + y);
            let (op, mp) = (gy * row + gx * 3, (gy - sy) * srow + (gx - sx) * 3);
            let m = s.img.as_raw();
            for c in 0..3 {
                let v = m[mp + c] as u32 * a + b[op + c] as u32 * (256 - a) + 128;
                dst[op + c] = (v >> 8) as u8;
            }
        }
    }
}

/// The routed frame from a whole-frame network output `model` and bicubic
/// `bic`: what the runtime composes from sub-frames, and what calibration
/// measures.
pub fn compose(model: &RgbImage, bic: &RgbImage, g: &Grid, hard: &[bool]) -> RgbImage {
    let mut out = bic.clone();
    let whole = Source {
        img: model,
        x0: 0,
        y0: 0,
    };
    for i in 0..hard.len() {
        if hard[i] {
            paste_hard(&mut out, whole, g, i);
        } else {
            fade_easy(&mut out, bic, g, hard, i, |_| whole);
        }
    }
    out
}

/// Share of the LR frame within `r` pixels (square neighbourhood) of a
/// hard patch. Whatever the executor, the network must compute its output
/// there: the hard patches and the fades beside them (`r = BLEND`), and
/// each earlier layer further out by its remaining receptive radius (up to
/// `r = BLEND + halo` at the input). So `1 / covered(g, hard, BLEND)` bounds
/// the speed-up routing can give, before the score's and bicubic's own cost
/// (BENCHMARKS.md "Difficulty routing").
pub fn covered(g: &Grid, hard: &[bool], r: usize) -> f64 {
    let (w, h) = (g.w, g.h);
    if w == 0 || h == 0 {
        return 0.0;
    }
    // A 2D difference array of the grown boxes, then its prefix sums.
    let mut d = vec![0i32; (w + 1) * (h + 1)];
    let cols = g.cols();
    for (i, _) in hard.iter().enumerate().filter(|(_, x)| **x) {
        let (px, py) = (i % cols, i / cols);
        let x0 = (px * g.tile).saturating_sub(r);
        let y0 = (py * g.tile).saturating_sub(r);
        let x1 = ((px + 1) * g.tile + r).min(w);
        let y1 = ((py + 1) * g.tile + r).min(h);
        d[y0 * (w + 1) + x0] += 1;
        d[y0 * (w + 1) + x1] -= 1;
        d[y1 * (w + 1) + x0] -= 1;
        d[y1 * (w + 1) + x1] += 1;
    }
    let mut n = 0usize;
    let mut above = vec![0i32; w + 1];
    for y in 0..h {
        let mut run = 0;
        for x in 0..w {
            run += d[y * (w + 1) + x];
            above[x] += run;
            n += usize::from(above[x] > 0);
        }
    }
    n as f64 / (w * h) as f64
}

/// One calibration image: its HR original, the network's whole-frame output
/// and bicubic of its LR, and its patch scores.
pub struct CalibImage {
    pub hr_y: Vec<f64>,
    pub model: RgbImage,
    pub bic: RgbImage,
    pub scores: Vec<f64>,
    pub grid: Grid,
}

impl CalibImage {
    pub fn new(
        hr: &RgbImage,
        lr: &RgbImage,
        model: RgbImage,
        bic: RgbImage,
        tile: usize,
        s: usize,
    ) -> CalibImage {
        CalibImage {
            hr_y: crate::metrics::color::rgb_to_y(hr),
            scores: scores(lr, tile),
            grid: Grid {
                w: lr.width() as usize,
                h: lr.height() as usize,
                tile,
                s,
            },
            model,
            bic,
        }
    }

    /// Y PSNR (shave = scale, as `metrics::sr_quality`) of the routed frame
    /// at `threshold` (None: the network everywhere), and the share of
    /// patches routed.
    pub fn psnr(&self, threshold: Option<f64>) -> (f64, f64) {
        let (out, routed) = match threshold {
            None => (self.model.clone(), 0.0),
            Some(t) => {
                let h = hard(&self.scores, t);
                let easy = h.iter().filter(|&&x| !x).count();
                (
                    compose(&self.model, &self.bic, &self.grid, &h),
                    easy as f64 / h.len().max(1) as f64,
                )
            }
        };
        let (w, hh) = (out.width() as usize, out.height() as usize);
        let y = crate::metrics::color::rgb_to_y(&out);
        (
            crate::metrics::psnr::psnr(&y, &self.hr_y, w, hh, self.grid.s),
            routed,
        )
    }
}

/// What calibration chose.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Calibrated {
    pub threshold: f64,
    /// Mean PSNR drop (dB) over the images against the network everywhere.
    pub drop_db: f64,
    /// Share of all patches routed.
    pub routed: f64,
}

/// The largest threshold whose mean PSNR drop over `images` is within
/// `budget_db`, measured on the composed frames themselves (fades included).
/// The drop is not monotone in the threshold (a fade can help or hurt), so
/// the search scans the score quantiles, then bisects between the last one
/// within budget and the next.
pub fn calibrate(images: &[CalibImage], budget_db: f64) -> Calibrated {
    let full: Vec<f64> = images.iter().map(|c| c.psnr(None).0).collect();
    let eval = |t: f64| {
        let (mut drop, mut routed, mut n) = (0.0, 0.0, 0usize);
        for (c, f) in images.iter().zip(&full) {
            let (p, r) = c.psnr(Some(t));
            drop += f - p;
            routed += r * c.scores.len() as f64;
            n += c.scores.len();
        }
        Calibrated {
            threshold: t,
            drop_db: drop / images.len().max(1) as f64,
            routed: routed / n.max(1) as f64,
        }
    };
    let mut all: Vec<f64> = images
        .iter()
        .flat_map(|c| c.scores.iter().copied())
        .collect();
    all.sort_by(f64::total_cmp);
    all.dedup();
    // Threshold k routes the k smallest distinct scores: halfway to the next.
    let at = |k: usize| -> f64 {
        match k {
            0 => 0.0,
            k if k >= all.len() => all.last().map_or(0.0, |v| v + 1.0),
            k => 0.5 * (all[k - 1] + all[k]),
        }
    };
    let mut best = eval(0.0);
    let steps = 64;
    let mut lo = 0;
    let mut hi = all.len();
    for q in 1..=steps {
        let k = all.len() * q / steps;
        let c = eval(at(k));
        if c.drop_db <= budget_db {
            best = c;
            lo = k;
        } else {
            hi = k;
            break;
        }
    }
    while hi > lo + 1 {
        let mid = (lo + hi) / 2;
        let c = eval(at(mid));
        if c.drop_db <= budget_db {
            best = c;
            lo = mid;
        } else {
            hi = mid;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    #[test]
    fn covered_grows_hard_patches_by_the_radius() {
        // 4×3 patches of 8 on a 32×24 frame (the last column 8 wide).
        let g = Grid {
            w: 32,
            h: 24,
            tile: 8,
            s: 2,
        };
        let mut hard = vec![false; 12];
        assert_eq!(covered(&g, &hard, 5), 0.0);
        hard[5] = true; // patch (1, 1): pixels 8..16 × 8..16
        assert_eq!(covered(&g, &hard, 0), 64.0 / 768.0);
        assert_eq!(covered(&g, &hard, 2), 144.0 / 768.0, "12×12");
        hard[6] = true; // its right neighbour: one 16×8 box, grown by 2
        assert_eq!(
            covered(&g, &hard, 2),
            (20.0 * 12.0) / 768.0,
            "overlaps count once"
        );
        hard[0] = true; // the corner patch, clipped by the frame: 0..10 × 0..10
        assert_eq!(
            covered(&g, &hard, 2),
            (240.0 + 100.0 - 16.0) / 768.0,
            "a 4×4 overlap"
        );
        assert_eq!(covered(&g, &[true; 12], 3), 1.0);
    }

    #[test]
    fn flat_patches_score_zero_edges_score_high() {
        // 64×32: left half flat, right half a checkerboard.
        let img = RgbImage::from_fn(64, 32, |x, y| {
            if x < 32 {
                Rgb([90, 90, 90])
            } else {
                let v = if (x + y) % 2 == 0 { 0 } else { 200 };
                Rgb([v, v, v])
            }
        });
        let s = scores(&img, 16);
        assert_eq!(s.len(), 8);
        // Patch (0, 0) is 2+ pixels from the edge: exactly zero.
        assert_eq!(s[0], 0.0);
        assert!(s[3] > 10_000.0, "{s:?}");
        // Patch (1, 0) reads 2 columns of the checkerboard.
        assert!(s[1] > 0.0 && s[1] < s[3], "{s:?}");
        assert_eq!(
            hard(&s, 1.0),
            [false, true, true, true, false, true, true, true]
        );
    }

    #[test]
    fn easy_patches_fade_into_hard_neighbours() {
        let g = Grid {
            w: 48,
            h: 16,
            tile: 16,
            s: 2,
        };
        let model = RgbImage::from_pixel(96, 32, Rgb([200, 200, 200]));
        let bic = RgbImage::from_pixel(96, 32, Rgb([100, 100, 100]));
        // Patch 0 hard, 1 and 2 easy: patch 1 fades over its left 8 HR pixels.
        let out = compose(&model, &bic, &g, &[true, false, false]);
        assert_eq!(out.get_pixel(31, 5)[0], 200);
        // d = 0 at x = 32: a = 256·15/16 = 240 → (200·240 + 100·16 + 128) >> 8.
        assert_eq!(
            out.get_pixel(32, 5)[0],
            ((200 * 240 + 100 * 16 + 128) >> 8) as u8
        );
        let ramp: Vec<u8> = (32..40).map(|x| out.get_pixel(x, 5)[0]).collect();
        assert!(ramp.windows(2).all(|w| w[0] > w[1]), "{ramp:?}");
        assert_eq!(out.get_pixel(40, 5)[0], 100);
        assert!((64..96).all(|x| out.get_pixel(x, 9)[0] == 100));
        // All hard: the network everywhere.
        let out = compose(&model, &bic, &g, &[true, true, true]);
        assert!(out.pixels().all(|p| p[0] == 200));
        // A diagonal hard neighbour fades the corner only.
        let g = Grid {
            w: 32,
            h: 32,
            tile: 16,
            s: 2,
        };
        let model = RgbImage::from_pixel(64, 64, Rgb([200, 200, 200]));
        let bic = RgbImage::from_pixel(64, 64, Rgb([100, 100, 100]));
        let out = compose(&model, &bic, &g, &[true, false, false, false]);
        assert!(out.get_pixel(32, 32)[0] > 150);
        assert_eq!(out.get_pixel(40, 32)[0], 100);
        assert_eq!(out.get_pixel(32, 40)[0], 100);
    }

    #[test]
    fn calibration_routes_flat_patches_within_the_budget() {
        // HR: left half flat, right half stripes; "model" = HR off by one in
        // a checkerboard, bicubic = flat grey everywhere (wrong on the stripes).
        let hr = RgbImage::from_fn(128, 64, |x, _| {
            let v = if x < 64 {
                120
            } else if x % 4 < 2 {
                30
            } else {
                220
            };
            Rgb([v, v, v])
        });
        let lr = crate::metrics::images::make_lr(&hr, 2);
        let bic = RgbImage::from_pixel(128, 64, Rgb([120, 120, 120]));
        let model = RgbImage::from_fn(128, 64, |x, y| {
            let v = hr.get_pixel(x, y)[0] + ((x + y) % 2) as u8;
            Rgb([v, v, v])
        });
        let img = CalibImage::new(&hr, &lr, model, bic, 16, 2);
        let c = calibrate(std::slice::from_ref(&img), 0.05);
        // The flat patches (the left half, away from the stripes) route and
        // cost nothing; a striped patch would cost far more than 0.05 dB.
        assert!(c.routed >= 0.25 && c.routed <= 0.5, "{c:?}");
        assert!(c.drop_db <= 0.05, "{c:?}");
        let h = hard(&img.scores, c.threshold);
        assert!(!h[0] && h[3], "{h:?}");
    }

    #[test]
    fn sub_frame_outputs_compose_like_the_whole_frame() {
        let g = Grid {
            w: 48,
            h: 32,
            tile: 16,
            s: 2,
        };
        let model = RgbImage::from_fn(96, 64, |x, y| Rgb([x as u8, y as u8, 7]));
        let bic = RgbImage::from_pixel(96, 64, Rgb([1, 2, 3]));
        let hard = [false, true, false, true, true, false];
        let whole = compose(&model, &bic, &g, &hard);
        // The same pixels from a crop of LR columns 10..48 (patches 1, 4 and
        // the fades next to them) and the whole frame (patch 3).
        let sub = image::imageops::crop_imm(&model, 20, 0, 76, 64).to_image();
        let pick = |n: usize| {
            if n == 3 {
                Source {
                    img: &model,
                    x0: 0,
                    y0: 0,
                }
            } else {
                Source {
                    img: &sub,
                    x0: 10,
                    y0: 0,
                }
            }
        };
        let mut out = bic.clone();
        for i in 0..6 {
            if hard[i] {
                paste_hard(&mut out, pick(i), &g, i);
            } else {
                fade_easy(&mut out, &bic, &g, &hard, i, pick);
            }
        }
        assert_eq!(out, whole);
    }
}
