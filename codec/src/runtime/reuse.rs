//! Exact temporal reuse in 2D patches (issue 18; NEMO, MobiCom'20, without its
//! lossy anchor interpolation) for the synchronous API (`Codec::upscale_rgb`,
//! hence the element).
//!
//! The LR frame is a grid of `tile`×`tile` patches. A patch is *dirty* when a
//! pixel within the model's receptive halo of it (rounded out to 8-pixel
//! chunks of a row) differs bitwise from the previous frame; every other
//! patch takes the previous output. Dirty patches
//! are grouped into rectangles, and each rectangle runs as a small frame of
//! its own, grown by the halo on every side that is not a frame edge; only
//! its core is pasted back.
//!
//! Why it is exact: without a frame-global op or a DRE range (then there is
//! no halo and only identical frames are reused), every output pixel of the
//! network is a function of the LR pixels within the halo of it, computed
//! element by element with static ⟨s, z⟩ (integer accumulation is exact, the
//! epilogue is per element). A core pixel of a rectangle has its whole
//! receptive field inside the grown rectangle, and a frame edge of the
//! rectangle is a frame edge of the frame: same inputs, same padding, same
//! operations, same bits. A clean patch's receptive field is unchanged, so its
//! previous output is what recomputing would give.
//!
//! What it costs: the comparison (one pass over both LR frames in chunks of 8
//! pixels), and for each rectangle its halo ring recomputed. When the
//! rectangles with their halos cover most of the frame, the frame runs whole
//! (`WHOLE_ABOVE`), so a hand-held camera pays only the comparison.
//!
//! Frames are u8 images of any channel count: RGB for RGB models, the Y
//! plane (`GrayImage`) for a luma model on YUV frames (issue 17).
use image::{ImageBuffer, Pixel};

/// An 8-bit image of `P` pixels (`RgbImage`, `GrayImage`).
pub type Image<P> = ImageBuffer<P, Vec<u8>>;

fn channels<P: Pixel<Subpixel = u8>>() -> usize {
    usize::from(P::CHANNEL_COUNT)
}

/// Recompute the whole frame when the grown rectangles cover more than this
/// share of it: their halos would cost more than the patches saved.
pub const WHOLE_ABOVE: f64 = 0.6;

/// The fixed cost of running a sub-frame (dispatch, task-graph state, band
/// halos), in patches of area. Swept with `WHOLE_ABOVE` on the call clip and
/// container_qcif (BENCHMARKS "Temporal reuse"): (0.6, 4) reused 74 % of the
/// call's patches, (0.6, 10) 68 %, (0.5, 4) 35 %; container_qcif ran within
/// the host's noise of reuse off at each.
pub const SUBFRAME_PATCHES: usize = 4;

/// Up to this many rectangles, [`cores`] merges greedily by cost; above, by
/// union-find (cheaper per frame, coarser).
const GREEDY_UP_TO: usize = 48;

/// Pixels per compared chunk of a row.
const CHUNK: usize = 8;

/// Whether two equal-length byte runs differ: XOR of 8-byte words, no
/// early exit, so a chunk costs a few instructions rather than a `memcmp`
/// call (a chunk is 24 bytes).
fn differs(a: &[u8], b: &[u8]) -> bool {
    let mut acc = 0u64;
    let (wa, wb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ta, tb) = (wa.remainder(), wb.remainder());
    for (x, y) in wa.zip(wb) {
        acc |= u64::from_ne_bytes(x.try_into().expect("8 bytes"))
            ^ u64::from_ne_bytes(y.try_into().expect("8 bytes"));
    }
    for (x, y) in ta.iter().zip(tb) {
        acc |= u64::from(x ^ y);
    }
    acc != 0
}

/// An LR rectangle: columns `x0..x1`, rows `y0..y1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    pub x0: usize,
    pub y0: usize,
    pub x1: usize,
    pub y1: usize,
}

impl Rect {
    /// Patch `i` (row-major) of the `tile` grid of a `w`×`h` frame.
    pub fn patch(i: usize, tile: usize, w: usize, h: usize) -> Rect {
        let tx = w.div_ceil(tile);
        let (px, py) = (i % tx, i / tx);
        Rect {
            x0: px * tile,
            y0: py * tile,
            x1: ((px + 1) * tile).min(w),
            y1: ((py + 1) * tile).min(h),
        }
    }

    pub fn area(&self) -> usize {
        (self.x1 - self.x0) * (self.y1 - self.y0)
    }

    /// Grown by `h` on every side, clamped to a `w`×`hgt` frame.
    pub fn grow(&self, h: usize, w: usize, hgt: usize) -> Rect {
        Rect {
            x0: self.x0.saturating_sub(h),
            y0: self.y0.saturating_sub(h),
            x1: (self.x1 + h).min(w),
            y1: (self.y1 + h).min(hgt),
        }
    }

    /// The frame region a core runs in: grown by the halo, then widened to
    /// multiples of `q` (within the frame), so that sub-frames come in few
    /// sizes and the runtime's task graphs (one per size) are reused. More
    /// context than the halo changes nothing in the core.
    pub fn region(&self, halo: usize, q: usize, w: usize, h: usize) -> Rect {
        let g = self.grow(halo, w, h);
        let widen = |a: usize, b: usize, n: usize| {
            let len = (b - a).next_multiple_of(q.max(1)).min(n);
            let b2 = (a + len).min(n);
            (b2 - len, b2)
        };
        let (x0, x1) = widen(g.x0, g.x1, w);
        let (y0, y1) = widen(g.y0, g.y1, h);
        Rect { x0, y0, x1, y1 }
    }

    fn touches(&self, o: &Rect) -> bool {
        self.x0 < o.x1 && o.x0 < self.x1 && self.y0 < o.y1 && o.y0 < self.y1
    }

    fn union(&self, o: &Rect) -> Rect {
        Rect {
            x0: self.x0.min(o.x0),
            y0: self.y0.min(o.y0),
            x1: self.x1.max(o.x1),
            y1: self.y1.max(o.y1),
        }
    }
}

/// What a frame needs.
#[derive(Clone, Debug, PartialEq)]
pub enum Work {
    /// Nothing changed: the previous output is this frame's.
    Reuse,
    /// Run the whole frame.
    Whole,
    /// Run these cores (each in its [`Rect::region`]); take the rest.
    Cores(Vec<Rect>),
}

/// A frame's plan and its patch counts.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub work: Work,
    /// Patches taken from the previous frame, of `patches`.
    pub reused: usize,
    pub patches: usize,
}

/// Which patches a frame must recompute, against the previous frame.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// No pixel changed (beyond the threshold).
    Identical,
    /// Too much changed to look at patches (or the frame size changed, or
    /// the model has frame-global state): recompute all.
    Everywhere,
    /// Dirty patches, row-major over the patch grid.
    Patches(Vec<bool>),
}

/// Compares `cur` against `prev` (same size) for patches of `tile` LR pixels
/// and a receptive halo of `halo` LR pixels (None: the model has frame-global
/// state, so only an identical frame is reused). `threshold` 0 is exact
/// reuse; above 0 (tolerant reuse, issue 18 item 3) a pixel counts as changed
/// only when a channel moved by more than `threshold` (of 255).
pub fn changed<P: Pixel<Subpixel = u8>>(
    prev: &Image<P>,
    cur: &Image<P>,
    tile: usize,
    halo: Option<usize>,
    threshold: u8,
) -> Change {
    let (w, h) = (cur.width() as usize, cur.height() as usize);
    let tile = tile.max(1);
    let (tx, ty) = (w.div_ceil(tile), h.div_ceil(tile));
    let patches = tx * ty;
    if (prev.width(), prev.height()) != (cur.width(), cur.height()) {
        return Change::Everywhere;
    }
    // Per LR row, per chunk of CHUNK pixels: changed? (one cheap pass over
    // both frames: a row compare, then word XORs per chunk).
    let ch = channels::<P>();
    let row = w * ch;
    let (a, b) = (prev.as_raw(), cur.as_raw());
    let nc = w.div_ceil(CHUNK);
    // Column-wise prefix counts: `pre[c * (h + 1) + y]` = changed chunks in
    // column c above row y, so a patch's test is one subtraction per chunk.
    let mut pre = vec![0u32; nc * (h + 1)];
    let mut changed_chunks = 0usize;
    // A moving camera changes most of the frame: once the changed chunks alone
    // would cover more than the rectangles may, stop looking.
    let most = (WHOLE_ABOVE * (w * h) as f64 / CHUNK as f64) as usize;
    for y in 0..h {
        if changed_chunks > most && halo.is_some() {
            return Change::Everywhere;
        }
        let (ra, rb) = (&a[y * row..(y + 1) * row], &b[y * row..(y + 1) * row]);
        let same_row = ra == rb;
        for c in 0..nc {
            let r = c * CHUNK * ch..((c + 1) * CHUNK * ch).min(row);
            let ch = !same_row
                && if threshold == 0 {
                    differs(&ra[r.clone()], &rb[r])
                } else {
                    ra[r.clone()]
                        .iter()
                        .zip(&rb[r])
                        .any(|(&p, &q)| p.abs_diff(q) > threshold)
                };
            changed_chunks += ch as usize;
            pre[c * (h + 1) + y + 1] = pre[c * (h + 1) + y] + ch as u32;
        }
    }
    if changed_chunks == 0 {
        return Change::Identical;
    }
    let Some(halo) = halo else {
        return Change::Everywhere;
    };
    // Dirty: a changed chunk within `halo` of the patch (chunks make the
    // test conservative by less than a chunk: more recomputation, never less).
    Change::Patches(
        (0..patches)
            .map(|i| {
                let g = Rect::patch(i, tile, w, h).grow(halo, w, h);
                (g.x0 / CHUNK..g.x1.div_ceil(CHUNK))
                    .any(|c| pre[c * (h + 1) + g.y1] > pre[c * (h + 1) + g.y0])
            })
            .collect(),
    )
}

/// The sub-frames that recompute the patches of `need` (row-major over the
/// patch grid of a `w`×`h` frame) with a network of receptive halo `halo`:
/// rectangles of needed patches, or None when running the whole frame costs
/// less (the regions, each with a fixed cost, cover more than `whole_above`
/// of the frame). Rectangles may also cover patches not needed, and two
/// rectangles' cores may overlap: every core pixel is exact, so either
/// output serves.
pub fn cores(
    need: &[bool],
    tile: usize,
    halo: usize,
    w: usize,
    h: usize,
    whole_above: f64,
) -> Option<Vec<Rect>> {
    let tile = tile.max(1);
    let (tx, ty) = (w.div_ceil(tile), h.div_ceil(tile));
    // Cores: per patch row, runs of needed patches; then merge rectangles
    // whose grown extents overlap (their halos would be computed twice).
    let mut rects: Vec<Rect> = Vec::new();
    for py in 0..ty {
        let mut px = 0;
        while px < tx {
            if !need[py * tx + px] {
                px += 1;
                continue;
            }
            let start = px;
            while px < tx && need[py * tx + px] {
                px += 1;
            }
            rects.push(Rect {
                x0: start * tile,
                y0: py * tile,
                x1: (px * tile).min(w),
                y1: ((py + 1) * tile).min(h),
            });
        }
    }
    // Needed area alone over the limit: no merging can help.
    let area: usize = rects.iter().map(Rect::area).sum();
    if area as f64 > whole_above * (w * h) as f64 {
        return None;
    }
    let fixed = SUBFRAME_PATCHES * tile * tile;
    let cost = |r: &Rect| r.region(halo, tile, w, h).area() + fixed;
    if rects.len() <= GREEDY_UP_TO {
        // Merge the touching pair that saves the most (their regions'
        // overlap is computed twice apart; their bounding box may cover
        // patches neither needs), while a merge saves anything: an L-shaped
        // change stays two rectangles when its bounding box costs more.
        loop {
            let mut best: Option<(usize, usize, isize)> = None;
            for i in 0..rects.len() {
                for j in i + 1..rects.len() {
                    let (ri, rj) = (
                        rects[i].region(halo, tile, w, h),
                        rects[j].region(halo, tile, w, h),
                    );
                    if !ri.touches(&rj) {
                        continue;
                    }
                    let u = rects[i].union(&rects[j]);
                    let saving = (cost(&rects[i]) + cost(&rects[j])) as isize - cost(&u) as isize;
                    if best.is_none_or(|(_, _, s)| saving > s) {
                        best = Some((i, j, saving));
                    }
                }
            }
            match best {
                Some((i, j, s)) if s >= 0 => {
                    rects[i] = rects[i].union(&rects[j]);
                    rects.swap_remove(j);
                }
                _ => break,
            }
        }
    } else {
        // Many rectangles (routing's scattered hard patches): rounds of
        // union-find over rectangles whose regions touch, each group becoming
        // its bounding box, until no two regions touch (quadratic per round,
        // where the greedy merge is cubic).
        loop {
            let m = rects.len();
            let regions: Vec<Rect> = rects.iter().map(|r| r.region(halo, tile, w, h)).collect();
            let mut parent: Vec<usize> = (0..m).collect();
            fn root(p: &mut [usize], mut i: usize) -> usize {
                while p[i] != i {
                    p[i] = p[p[i]];
                    i = p[i];
                }
                i
            }
            for i in 0..m {
                for j in i + 1..m {
                    if regions[i].touches(&regions[j]) {
                        let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                        if a != b {
                            parent[b] = a;
                        }
                    }
                }
            }
            let mut groups: Vec<Option<Rect>> = vec![None; m];
            for (i, rect) in rects.iter().enumerate() {
                let r = root(&mut parent, i);
                groups[r] = Some(match groups[r] {
                    Some(g) => g.union(rect),
                    None => *rect,
                });
            }
            let merged: Vec<Rect> = groups.into_iter().flatten().collect();
            if merged.len() == m {
                break;
            }
            rects = merged;
        }
    }
    // Each sub-frame also pays a fixed dispatch and band overhead: count it
    // as `SUBFRAME_PATCHES` patches of area.
    let total: usize = rects.iter().map(cost).sum();
    (total as f64 <= whole_above * (w * h) as f64).then_some(rects)
}

/// Plans `cur` against `prev` ([`changed`], then [`cores`] of the dirty
/// patches): temporal reuse without routing.
pub fn plan<P: Pixel<Subpixel = u8>>(
    prev: &Image<P>,
    cur: &Image<P>,
    tile: usize,
    halo: Option<usize>,
    threshold: u8,
) -> Plan {
    let (w, h) = (cur.width() as usize, cur.height() as usize);
    let patches = w.div_ceil(tile.max(1)) * h.div_ceil(tile.max(1));
    let whole = Plan {
        work: Work::Whole,
        reused: 0,
        patches,
    };
    match changed(prev, cur, tile, halo, threshold) {
        Change::Identical => Plan {
            work: Work::Reuse,
            reused: patches,
            patches,
        },
        Change::Everywhere => whole,
        Change::Patches(dirty) => {
            let n = dirty.iter().filter(|&&d| d).count();
            match cores(&dirty, tile, halo.unwrap_or(0), w, h, WHOLE_ABOVE) {
                Some(rects) => Plan {
                    work: Work::Cores(rects),
                    reused: patches - n,
                    patches,
                },
                None => whole,
            }
        }
    }
}

/// The reference for the next frame: `prev` with `cur`'s pixels in the cores
/// that were recomputed. Exact reuse: equal to `cur` (a clean patch's pixels
/// did not change). Tolerant reuse: a reused patch keeps the pixels its
/// output was computed from, so drift is measured against them and cannot
/// accumulate past the threshold frame after frame.
pub fn next_reference<P: Pixel<Subpixel = u8>>(
    prev: &mut Image<P>,
    cur: &Image<P>,
    cores: &[Rect],
) {
    let ch = channels::<P>();
    let w3 = cur.width() as usize * ch;
    let (src, dst) = (cur.as_raw(), &mut **prev);
    for c in cores {
        for y in c.y0..c.y1 {
            let r = y * w3 + c.x0 * ch..y * w3 + c.x1 * ch;
            dst[r.clone()].copy_from_slice(&src[r]);
        }
    }
}

/// The LR pixels of `r` as an image.
pub fn crop<P: Pixel<Subpixel = u8> + 'static>(img: &Image<P>, r: &Rect) -> Image<P> {
    image::imageops::crop_imm(
        img,
        r.x0 as u32,
        r.y0 as u32,
        (r.x1 - r.x0) as u32,
        (r.y1 - r.y0) as u32,
    )
    .to_image()
}

/// Copies the output of `core` from `sub` (the output of the grown rectangle
/// `grown`) into `out`, at scale `s`.
pub fn paste<P: Pixel<Subpixel = u8>>(
    out: &mut Image<P>,
    sub: &Image<P>,
    core: &Rect,
    grown: &Rect,
    s: usize,
) {
    let ch = channels::<P>();
    let row = (core.x1 - core.x0) * s * ch;
    let (ow, sw) = (out.width() as usize * ch, sub.width() as usize * ch);
    let (dx, dy) = ((core.x0 - grown.x0) * s, (core.y0 - grown.y0) * s);
    let (src, dst) = (sub.as_raw(), &mut **out);
    for y in 0..(core.y1 - core.y0) * s {
        let so = (dy + y) * sw + dx * ch;
        let d = (core.y0 * s + y) * ow + core.x0 * s * ch;
        dst[d..d + row].copy_from_slice(&src[so..so + row]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage};

    fn img(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| Rgb([x as u8, y as u8, (x ^ y) as u8]))
    }

    #[test]
    fn identical_frames_reuse_everything() {
        let a = img(100, 70);
        let p = plan(&a, &a, 32, Some(6), 0);
        assert_eq!(p.work, Work::Reuse);
        assert_eq!((p.reused, p.patches), (12, 12));
        assert_eq!(plan(&a, &a, 32, None, 0).work, Work::Reuse);
    }

    #[test]
    fn one_changed_pixel_dirties_the_patches_its_halo_reaches() {
        let a = img(256, 256);
        let mut b = a.clone();
        b.put_pixel(40, 40, Rgb([0, 0, 0]));
        // Halo 6 < 32: only patch (1, 1) is dirty; its core is that patch.
        let p = plan(&a, &b, 32, Some(6), 0);
        assert_eq!(
            p.work,
            Work::Cores(vec![Rect {
                x0: 32,
                y0: 32,
                x1: 64,
                y1: 64
            }])
        );
        assert_eq!((p.reused, p.patches), (63, 64));
        // A halo of 40 reaches the patches around it: 3×3 are dirty.
        let p = plan(&a, &b, 32, Some(40), 0);
        let core = Rect {
            x0: 0,
            y0: 0,
            x1: 96,
            y1: 96,
        };
        assert_eq!((p.work, p.reused), (Work::Cores(vec![core]), 55));
        // One of 100: the rectangle would cost more than the frame.
        assert_eq!(plan(&a, &b, 32, Some(100), 0).work, Work::Whole);
        // Frame-global state: any change recomputes the frame.
        assert_eq!(plan(&a, &b, 32, None, 0).work, Work::Whole);
    }

    #[test]
    fn far_apart_changes_make_separate_cores_near_ones_merge() {
        let a = img(512, 256);
        let mut b = a.clone();
        b.put_pixel(5, 5, Rgb([0, 0, 0]));
        b.put_pixel(506, 250, Rgb([0, 0, 0]));
        let p = plan(&a, &b, 32, Some(6), 0);
        let Work::Cores(r) = &p.work else {
            panic!("{p:?}")
        };
        assert_eq!(r.len(), 2);
        let mut c = a.clone();
        c.put_pixel(5, 5, Rgb([0, 0, 0]));
        c.put_pixel(40, 5, Rgb([0, 0, 0]));
        let p = plan(&a, &c, 32, Some(6), 0);
        assert_eq!(
            p.work,
            Work::Cores(vec![Rect {
                x0: 0,
                y0: 0,
                x1: 64,
                y1: 32
            }])
        );
    }

    #[test]
    fn tolerant_reuse_ignores_changes_up_to_the_threshold() {
        let a = img(256, 256);
        let mut b = a.clone();
        let p = *a.get_pixel(40, 40);
        b.put_pixel(40, 40, Rgb([p[0].wrapping_add(2), p[1], p[2]]));
        assert_eq!(plan(&a, &b, 32, Some(6), 2).work, Work::Reuse);
        assert!(matches!(plan(&a, &b, 32, Some(6), 1).work, Work::Cores(_)));
        assert!(matches!(plan(&a, &b, 32, Some(6), 0).work, Work::Cores(_)));
        // The reference keeps the old pixels outside recomputed cores.
        let mut r = a.clone();
        let mut c = b.clone();
        c.put_pixel(200, 200, Rgb([1, 2, 3]));
        let core = Rect {
            x0: 192,
            y0: 192,
            x1: 224,
            y1: 224,
        };
        next_reference(&mut r, &c, &[core]);
        assert_eq!(r.get_pixel(200, 200), &Rgb([1, 2, 3]));
        assert_eq!(r.get_pixel(40, 40), a.get_pixel(40, 40));
    }

    #[test]
    fn paste_puts_the_core_where_it_belongs() {
        let core = Rect {
            x0: 4,
            y0: 2,
            x1: 6,
            y1: 3,
        };
        let grown = core.grow(1, 8, 4);
        assert_eq!(
            grown,
            Rect {
                x0: 3,
                y0: 1,
                x1: 7,
                y1: 4
            }
        );
        let sub = RgbImage::from_fn(8, 6, |x, y| Rgb([x as u8, y as u8, 9]));
        let mut out = RgbImage::new(16, 8);
        paste(&mut out, &sub, &core, &grown, 2);
        // HR (8, 4) is sub's (2, 2).
        assert_eq!(out.get_pixel(8, 4), &Rgb([2, 2, 9]));
        assert_eq!(out.get_pixel(11, 5), &Rgb([5, 3, 9]));
        assert_eq!(out.get_pixel(7, 4), &Rgb([0, 0, 0]));
        assert_eq!(out.get_pixel(12, 4), &Rgb([0, 0, 0]));
    }
}
