//! Caps mapping of the element, without element state: which formats both pads
//! carry, how a width/height maps through ×scale (sink → src) and ÷scale
//! (src → sink), which scales negotiation may use, and how fixation prefers
//! exactly ×scale.
//!
//! Everything else in a structure (framerate, pixel-aspect-ratio, format,
//! colorimetry, interlace-mode) is carried over unchanged: the same factor on
//! both axes keeps the pixel aspect ratio, and the codec converts colour itself
//! and writes the input's format back.
use gst::glib;
use gst::prelude::*;

use nawqsr_codec::runtime::PixelFormat;

use super::NawqsrMode;
use super::imp::Settings;

/// Formats on both pads: the codec's `PixelFormat`s.
/// 10-bit 4:2:0 (I420_10LE, P010_10LE) keeps its 10 bits through a luma
/// model; an RGB model sees it rounded to 8-bit RGB, as any 8-bit frame.
pub(super) const FORMATS: [gst_video::VideoFormat; 7] = [
    gst_video::VideoFormat::Rgb,
    gst_video::VideoFormat::Rgbx,
    gst_video::VideoFormat::Bgrx,
    gst_video::VideoFormat::I420,
    gst_video::VideoFormat::Nv12,
    gst_video::VideoFormat::I42010le,
    gst_video::VideoFormat::P01010le,
];

pub(super) fn pixel_format(f: gst_video::VideoFormat) -> Option<PixelFormat> {
    Some(match f {
        gst_video::VideoFormat::Rgb => PixelFormat::Rgb,
        gst_video::VideoFormat::Rgbx => PixelFormat::Rgbx,
        gst_video::VideoFormat::Bgrx => PixelFormat::Bgrx,
        gst_video::VideoFormat::I420 => PixelFormat::I420,
        gst_video::VideoFormat::Nv12 => PixelFormat::Nv12,
        gst_video::VideoFormat::I42010le => PixelFormat::I42010le,
        gst_video::VideoFormat::P01010le => PixelFormat::P01010le,
        _ => return None,
    })
}

/// Which way a width/height is rewritten.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Dir {
    /// sink → src: multiply.
    Up,
    /// src → sink: divide, keeping only sizes that are exact multiples.
    Down,
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Maps one size through ×s (Up) or ÷s (Down). `None`: no size on the other side.
fn map_size(v: &glib::SendValue, s: i32, dir: Dir) -> Option<glib::SendValue> {
    let s64 = i64::from(s);
    if let Ok(x) = v.get::<i32>() {
        return match dir {
            Dir::Up => x.checked_mul(s).map(|x| x.to_send_value()),
            Dir::Down => (x % s == 0).then(|| (x / s).to_send_value()),
        };
    }
    if let Ok(r) = v.get::<gst::IntRange<i32>>() {
        let (min, max, step) = (
            i64::from(r.min()),
            i64::from(r.max()),
            i64::from(r.step()).max(1),
        );
        let (min, max, step) = match dir {
            // {s·x}: a range with s times the step. GStreamer needs min and max to be
            // multiples of the step; the top is clamped to the largest representable one.
            Dir::Up => {
                let step = step * s64;
                let top = (max * s64).min(i64::from(i32::MAX));
                (min * s64, top - top.rem_euclid(step), step)
            }
            // x with s·x in [min, max] and s·x a multiple of step: x is a multiple of
            // k = step / gcd(s, step).
            Dir::Down => {
                let k = step / gcd(s64, step);
                let lo = (min + s64 - 1).div_euclid(s64);
                let lo = lo + (k - lo.rem_euclid(k)) % k;
                let hi = max.div_euclid(s64);
                (lo, hi - hi.rem_euclid(k), k)
            }
        };
        if min > max || min > i64::from(i32::MAX) {
            return None;
        }
        let (min, max, step) = (min as i32, max as i32, step as i32);
        return Some(if min == max {
            min.to_send_value()
        } else if step == 1 {
            gst::IntRange::new(min, max).to_send_value()
        } else {
            gst::IntRange::with_step(min, max, step).to_send_value()
        });
    }
    if let Ok(list) = v.get::<gst::List>() {
        let out: Vec<glib::SendValue> = list.iter().filter_map(|x| map_size(x, s, dir)).collect();
        return match out.len() {
            0 => None,
            1 => out.into_iter().next(),
            _ => Some(gst::List::from_values(out).to_send_value()),
        };
    }
    // Anything else (not a size we understand) cannot be mapped.
    None
}

/// Rewrites width and height of every structure of `caps` for each scale in
/// `scales`, dropping structures that have no counterpart. framerate,
/// pixel-aspect-ratio (the same factor on both axes keeps it), format and
/// colorimetry are kept as they are.
pub(super) fn scale_caps(caps: &gst::Caps, scales: &[i32], dir: Dir) -> gst::Caps {
    let mut out = gst::Caps::new_empty();
    for &s in scales {
        for (st, features) in caps.iter_with_features() {
            let mut st = st.to_owned();
            let mut ok = true;
            for field in ["width", "height"] {
                // A missing field means "any size", which stays "any size".
                if let Ok(v) = st.value(field) {
                    match map_size(v, s, dir) {
                        Some(v) => st.set_value(field, v),
                        None => ok = false,
                    }
                }
            }
            if ok {
                out.merge_structure_full(st, Some(features.to_owned()));
            }
        }
    }
    out
}

/// Scales caps negotiation may use: the model's once started (`started`, 0
/// before); before that, the `scale` property if it decides (bicubic, no model),
/// else all three with the property's first (the model's factor is not known yet).
pub(super) fn negotiable_scales(settings: &Settings, started: u32) -> Vec<i32> {
    let s = started as i32;
    // Bicubic without a model: the property decides. A given model: its own
    // factor. The bundled models serve every scale, the current one first.
    if settings.mode == NawqsrMode::Bicubic && settings.model.is_none() {
        return vec![if s != 0 { s } else { settings.scale as i32 }];
    }
    if s != 0 && settings.model.is_some() {
        return vec![s];
    }
    let first = if s != 0 { s } else { settings.scale as i32 };
    let mut v = vec![first];
    v.extend([2, 3, 4].into_iter().filter(|&x| x != first));
    v
}

/// `transform_caps`: the caps on the other pad for `caps` on `direction`'s pad.
pub(super) fn transform(
    direction: gst::PadDirection,
    caps: &gst::Caps,
    scales: &[i32],
    filter: Option<&gst::Caps>,
) -> gst::Caps {
    let other = if caps.is_any() {
        caps.clone()
    } else {
        let dir = if direction == gst::PadDirection::Sink {
            Dir::Up
        } else {
            Dir::Down
        };
        scale_caps(caps, scales, dir)
    };
    match filter {
        Some(filter) => filter.intersect_with_mode(&other, gst::CapsIntersectMode::First),
        None => other,
    }
}

/// `fixate_caps` before the parent's: prefer exactly ×s (or ÷s), since
/// downstream may offer ranges.
pub(super) fn fixate_size(
    direction: gst::PadDirection,
    caps: &gst::Caps,
    mut othercaps: gst::Caps,
    s: i32,
) -> gst::Caps {
    othercaps.truncate();
    if let (Some(ours), Some(other)) = (caps.structure(0), othercaps.make_mut().structure_mut(0)) {
        for field in ["width", "height"] {
            if let Ok(v) = ours.get::<i32>(field) {
                let target = if direction == gst::PadDirection::Sink {
                    v.saturating_mul(s)
                } else {
                    v / s
                };
                other.fixate_field_nearest_int(field, target);
            }
        }
    }
    othercaps
}

/// The pixel format both pads carry, or why the pair of caps cannot be served.
pub(super) fn common_format(
    in_info: &gst_video::VideoInfo,
    out_info: &gst_video::VideoInfo,
) -> Result<PixelFormat, String> {
    if in_info.format() != out_info.format() {
        return Err(format!(
            "input format {:?} and output format {:?} differ (expected the same)",
            in_info.format(),
            out_info.format()
        ));
    }
    pixel_format(in_info.format())
        .ok_or_else(|| format!("unsupported format {:?}", in_info.format()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(v: impl ToSendValue, s: i32, dir: Dir) -> Option<glib::SendValue> {
        map_size(&v.to_send_value(), s, dir)
    }

    #[test]
    fn fixed_sizes() {
        gst::init().unwrap();
        assert_eq!(map(352, 2, Dir::Up).unwrap().get::<i32>().unwrap(), 704);
        assert_eq!(map(704, 2, Dir::Down).unwrap().get::<i32>().unwrap(), 352);
        // 705 is not ×2 of anything; i32::MAX has no ×2.
        assert!(map(705, 2, Dir::Down).is_none());
        assert!(map(i32::MAX, 2, Dir::Up).is_none());
    }

    #[test]
    fn ranges_keep_exactly_the_reachable_sizes() {
        gst::init().unwrap();
        let r = |v: glib::SendValue| v.get::<gst::IntRange<i32>>().unwrap();
        // Up: every multiple of s in the scaled range; the top is clamped to i32.
        let up = r(map(gst::IntRange::new(1, i32::MAX), 3, Dir::Up).unwrap());
        assert_eq!((up.min(), up.step()), (3, 3));
        assert_eq!(up.max(), i32::MAX - i32::MAX % 3);
        // Down: [7, 21] ÷ 2 → [4, 10].
        assert_eq!(
            r(map(gst::IntRange::new(7, 21), 2, Dir::Down).unwrap()),
            gst::IntRange::new(4, 10)
        );
        // Down with a step: s·x must be a multiple of 4 → x even.
        let d = r(map(gst::IntRange::with_step(8, 40, 4), 2, Dir::Down).unwrap());
        assert_eq!(d, gst::IntRange::with_step(4, 20, 2));
        // A range that only contains one reachable size becomes that size.
        assert_eq!(
            map(gst::IntRange::new(9, 11), 5, Dir::Down)
                .unwrap()
                .get::<i32>()
                .unwrap(),
            2
        );
        // And one with none is dropped.
        assert!(map(gst::IntRange::new(11, 14), 5, Dir::Down).is_none());
    }

    #[test]
    fn lists_map_element_wise() {
        gst::init().unwrap();
        let l = gst::List::new([96i32, 97, 144]);
        let down: Vec<i32> = map(l.clone(), 2, Dir::Down)
            .unwrap()
            .get::<gst::List>()
            .unwrap()
            .iter()
            .map(|v| v.get().unwrap())
            .collect();
        assert_eq!(down, [48, 72]);
        assert_eq!(
            map(gst::List::new([97i32, 144]), 2, Dir::Down)
                .unwrap()
                .get::<i32>()
                .unwrap(),
            72
        );
        assert!(map(gst::List::new([97i32]), 2, Dir::Down).is_none());
        let up = map(l, 4, Dir::Up).unwrap().get::<gst::List>().unwrap();
        assert_eq!(up.as_slice().len(), 3);
    }

    #[test]
    fn scale_caps_offers_every_scale_in_order() {
        gst::init().unwrap();
        let caps = gst::Caps::builder("video/x-raw")
            .field("width", 10i32)
            .field("height", 6i32)
            .build();
        let out = scale_caps(&caps, &[3, 2], Dir::Up);
        let widths: Vec<i32> = out.iter().map(|s| s.get::<i32>("width").unwrap()).collect();
        assert_eq!(widths, [30, 20]);
        // src → sink for a size that no scale reaches: empty caps, so negotiation fails early.
        let caps = gst::Caps::builder("video/x-raw")
            .field("width", 7i32)
            .field("height", 6i32)
            .build();
        assert!(scale_caps(&caps, &[2], Dir::Down).is_empty());
    }
}
