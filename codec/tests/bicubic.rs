//! The fast bicubic (`runtime::bicubic`) against the MATLAB-compatible f64
//! reference (`metrics::imresize::upscale_bicubic`): ±1 everywhere (equal for
//! ×2 and ×4), the same bytes at every SIMD level and thread count, and the
//! plane API equal to the RGB one.
use std::path::PathBuf;

use image::RgbImage;
use nawqsr_codec::metrics::imresize::upscale_bicubic;
use nawqsr_codec::runtime::bicubic::{Level, upscale_rgb_at, upscale_u8_at};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Random pixels, or (every other image) smooth ramps plus noise and hard
/// edges so both overshoot and flat areas are exercised.
fn random_image(rng: &mut Rng, w: u32, h: u32, smooth: bool) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let mut px = [0u8; 3];
        for (c, v) in px.iter_mut().enumerate() {
            let r = rng.next() as u8;
            *v = if smooth {
                let base = (x * 7 + y * 5 + c as u32 * 40) % 256;
                if (x / 4 + y / 3) % 5 == 0 {
                    if r & 1 == 0 { 0 } else { 255 }
                } else {
                    (base as u8).wrapping_add(r % 9)
                }
            } else {
                r
            };
        }
        image::Rgb(px)
    })
}

/// Max |diff| and the number of differing samples.
fn compare(a: &RgbImage, b: &RgbImage) -> (u8, usize) {
    assert_eq!(a.dimensions(), b.dimensions());
    let mut max = 0u8;
    let mut n = 0;
    for (&x, &y) in a.as_raw().iter().zip(b.as_raw()) {
        let d = x.abs_diff(y);
        max = max.max(d);
        n += usize::from(d != 0);
    }
    (max, n)
}

const SIZES: [(u32, u32); 9] = [
    (1, 1),
    (1, 9),
    (9, 1),
    (2, 2),
    (7, 5),
    (8, 6),
    (33, 17),
    (64, 48),
    (101, 77),
];

/// (a) ±1 of the reference on random images; ×2 and ×4 exact (their weights
/// are multiples of 2^−10, so the fixed-point sums are the reference's).
#[test]
fn within_one_of_the_reference_on_random_images() {
    let mut rng = Rng(0x9e3779b97f4a7c15);
    for s in 2..=4 {
        let (mut max, mut diff, mut total) = (0u8, 0usize, 0usize);
        for (i, &(w, h)) in SIZES.iter().enumerate() {
            for smooth in [false, true] {
                let img = random_image(&mut rng, w, h, smooth);
                let want = upscale_bicubic(&img, s);
                let got = upscale_rgb_at(Level::Scalar, &img, s, 1);
                let (m, n) = compare(&got, &want);
                assert!(m <= 1, "x{s} {w}x{h} (case {i}): max |diff| {m}");
                if s != 3 {
                    assert_eq!(n, 0, "x{s} {w}x{h}: {n} samples differ (expected exact)");
                }
                max = max.max(m);
                diff += n;
                total += got.as_raw().len();
            }
        }
        eprintln!(
            "x{s} random: max |diff| {max}, {diff}/{total} samples differ ({:.4}%)",
            100.0 * diff as f64 / total as f64
        );
    }
}

/// (a) on Set5 (../shared/datasets/Set5), the images SR benchmarks upscale.
#[test]
fn within_one_of_the_reference_on_set5() {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/datasets/Set5"
    ));
    if !dir.is_dir() {
        eprintln!("skipping: ../shared/datasets/Set5 not found");
        return;
    }
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no png in {}", dir.display());
    for s in 2..=4 {
        let (mut max, mut diff, mut total) = (0u8, 0usize, 0usize);
        for f in &files {
            let img = image::open(f).unwrap().to_rgb8();
            let want = upscale_bicubic(&img, s);
            let got = upscale_rgb_at(Level::detect(), &img, s, 2);
            let (m, n) = compare(&got, &want);
            assert!(m <= 1, "x{s} {}: max |diff| {m}", f.display());
            if s != 3 {
                assert_eq!(n, 0, "x{s} {}: {n} samples differ", f.display());
            }
            max = max.max(m);
            diff += n;
            total += got.as_raw().len();
        }
        eprintln!(
            "x{s} Set5 ({} images): max |diff| {max}, {diff}/{total} samples differ ({:.4}%)",
            files.len(),
            100.0 * diff as f64 / total as f64
        );
    }
}

/// (b) Every SIMD level this CPU has equals the scalar build, bit for bit.
#[test]
fn simd_equals_scalar() {
    if !Level::Avx2.available() {
        eprintln!("skipping: no AVX2 on this CPU (only the scalar level runs)");
        return;
    }
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for case in 0..60 {
        let (w, h) = (1 + rng.below(90) as u32, 1 + rng.below(40) as u32);
        let s = 2 + case % 3;
        let img = random_image(&mut rng, w, h, case % 2 == 0);
        let a = upscale_rgb_at(Level::Scalar, &img, s, 1);
        let b = upscale_rgb_at(Level::Avx2, &img, s, 1);
        assert!(a == b, "x{s} {w}x{h}: AVX2 differs from scalar");
    }
}

/// (c) Bands of output rows on 1, 2 and 3 threads give the same bytes (large
/// enough that `par_rows` really splits).
#[test]
fn bands_equal_single_thread() {
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    for (w, h, s) in [(97, 61, 2), (64, 37, 3), (50, 29, 4), (5, 3, 2)] {
        let img = random_image(&mut rng, w, h, true);
        let one = upscale_rgb_at(Level::detect(), &img, s, 1);
        for t in [2, 3] {
            let many = upscale_rgb_at(Level::detect(), &img, s, t);
            assert!(one == many, "x{s} {w}x{h}: {t} threads differ from 1");
        }
    }
}

/// (d) The C = 1 plane API (with padded strides) equals the RGB path on a
/// grey image, and the padding bytes are left alone.
#[test]
fn plane_equals_rgb_on_grey() {
    let mut rng = Rng(0x0bad_cafe_1234_5678);
    for (w, h, s) in [(1, 1, 2), (7, 5, 3), (33, 17, 4), (40, 23, 2)] {
        let grey: Vec<u8> = (0..w * h).map(|_| rng.next() as u8).collect();
        let img = RgbImage::from_fn(w as u32, h as u32, |x, y| {
            image::Rgb([grey[y as usize * w + x as usize]; 3])
        });
        let rgb = upscale_rgb_at(Level::detect(), &img, s, 2);
        let src_stride = w + 3;
        let mut src = vec![0xAAu8; src_stride * h];
        for y in 0..h {
            src[y * src_stride..][..w].copy_from_slice(&grey[y * w..][..w]);
        }
        let (ow, oh) = (w * s, h * s);
        let dst_stride = ow + 5;
        let mut dst = vec![0x55u8; dst_stride * oh];
        upscale_u8_at(
            Level::detect(),
            &src,
            (w, h, src_stride),
            1,
            s,
            &mut dst,
            dst_stride,
            2,
        )
        .unwrap();
        for y in 0..oh {
            for x in 0..ow {
                assert_eq!(
                    dst[y * dst_stride + x],
                    rgb.get_pixel(x as u32, y as u32).0[0],
                    "x{s} {w}x{h} at ({x}, {y})"
                );
            }
            assert!(dst[y * dst_stride + ow..][..5].iter().all(|&v| v == 0x55));
        }
    }
}

/// Bad arguments are errors, not panics.
#[test]
fn bad_arguments_are_refused() {
    let src = vec![0u8; 12];
    let mut dst = vec![0u8; 48];
    let l = Level::Scalar;
    assert!(upscale_u8_at(l, &src, (2, 2, 6), 3, 5, &mut dst, 12, 1).is_err());
    assert!(upscale_u8_at(l, &src, (2, 2, 5), 3, 2, &mut dst, 12, 1).is_err());
    assert!(upscale_u8_at(l, &src, (2, 3, 6), 3, 2, &mut dst, 12, 1).is_err());
    assert!(upscale_u8_at(l, &src, (2, 2, 6), 3, 2, &mut dst[..47], 12, 1).is_err());
    assert!(upscale_u8_at(l, &src, (2, 2, 6), 0, 2, &mut dst, 12, 1).is_err());
    assert!(upscale_u8_at(l, &src, (2, 2, 6), 3, 2, &mut dst, 12, 1).is_ok());
}

/// Any channel count: each channel of a C-channel image equals that channel
/// upscaled alone as a plane (C = 2, 4, 5 take the word, exact-copy and
/// generic interleaves), at both levels.
#[test]
fn channels_are_independent_planes() {
    let mut rng = Rng(0x5151_7272_9393_b4b4);
    for (w, h, s, c) in [(9, 4, 2, 2), (13, 6, 3, 4), (5, 7, 4, 5), (1, 3, 2, 2)] {
        let src: Vec<u8> = (0..w * h * c).map(|_| rng.next() as u8).collect();
        let (ow, oh) = (w * s, h * s);
        for level in [Level::Scalar, Level::detect()] {
            let mut dst = vec![0u8; ow * oh * c];
            upscale_u8_at(level, &src, (w, h, w * c), c, s, &mut dst, ow * c, 2).unwrap();
            for ch in 0..c {
                let plane: Vec<u8> = src.iter().skip(ch).step_by(c).copied().collect();
                let mut want = vec![0u8; ow * oh];
                upscale_u8_at(level, &plane, (w, h, w), 1, s, &mut want, ow, 1).unwrap();
                let got: Vec<u8> = dst.iter().skip(ch).step_by(c).copied().collect();
                assert_eq!(got, want, "x{s} {w}x{h}x{c} channel {ch} ({level:?})");
            }
        }
    }
}
