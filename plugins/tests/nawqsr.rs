//! Tests of the `nawqsr` element: negotiation, pixels, events, properties, QoS,
//! latency and telemetry through `gst_check::Harness`, then whole pipelines on
//! the real clips of ../shared (skipped with a notice when absent).
use std::str::FromStr;
use std::sync::{Arc, Mutex, Once};

use gst::prelude::*;
use gst_check::Harness;
use gst_video::prelude::*;
use image::RgbImage;
use nawqsr_codec::runtime::color::{frame_to_rgb, rgb_to_frame};
use nawqsr_codec::runtime::{FrameMut, FrameRef, PixelFormat};

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstnawqsr::plugin_register_static().expect("nawqsr plugin registers");
    });
}

#[macro_use]
#[path = "../../tests/support/mod.rs"]
mod support;

const FORMATS: [gst_video::VideoFormat; 7] = [
    gst_video::VideoFormat::Rgb,
    gst_video::VideoFormat::Rgbx,
    gst_video::VideoFormat::Bgrx,
    gst_video::VideoFormat::I420,
    gst_video::VideoFormat::Nv12,
    gst_video::VideoFormat::I42010le,
    gst_video::VideoFormat::P01010le,
];

fn pixel_format(f: gst_video::VideoFormat) -> PixelFormat {
    match f {
        gst_video::VideoFormat::Rgb => PixelFormat::Rgb,
        gst_video::VideoFormat::Rgbx => PixelFormat::Rgbx,
        gst_video::VideoFormat::Bgrx => PixelFormat::Bgrx,
        gst_video::VideoFormat::I420 => PixelFormat::I420,
        gst_video::VideoFormat::Nv12 => PixelFormat::Nv12,
        gst_video::VideoFormat::I42010le => PixelFormat::I42010le,
        gst_video::VideoFormat::P01010le => PixelFormat::P01010le,
        f => panic!("unexpected format {f:?}"),
    }
}

fn video_info(format: gst_video::VideoFormat, w: u32, h: u32) -> gst_video::VideoInfo {
    gst_video::VideoInfo::builder(format, w, h)
        .fps(gst::Fraction::new(25, 1))
        .build()
        .unwrap()
}

fn strides(frame: &impl VideoFrameExt) -> [usize; 3] {
    let mut s = [0; 3];
    for (i, v) in s.iter_mut().enumerate().take(frame.n_planes() as usize) {
        *v = frame.plane_stride()[i] as usize;
    }
    s
}

/// A buffer of `img` in `info`'s format; `meta` adds a GstVideoMeta with the
/// info's (possibly padded) strides.
fn make_buffer(
    info: &gst_video::VideoInfo,
    img: &RgbImage,
    frame_no: u64,
    meta: bool,
) -> gst::Buffer {
    let mut buf = gst::Buffer::with_size(info.size()).unwrap();
    {
        let b = buf.get_mut().unwrap();
        b.set_pts(gst::ClockTime::from_mseconds(40 * frame_no));
        b.set_duration(gst::ClockTime::from_mseconds(40));
        if meta {
            gst_video::VideoMeta::add_full(
                b,
                gst_video::VideoFrameFlags::empty(),
                info.format(),
                info.width(),
                info.height(),
                info.offset(),
                info.stride(),
            )
            .unwrap();
        }
        let mut frame = gst_video::VideoFrameRef::from_buffer_ref_writable(b, info).unwrap();
        let strides = strides(&frame);
        let (w, h) = (frame.width() as usize, frame.height() as usize);
        let [p0, p1, p2, _] = frame.planes_data_mut();
        let mut dst = FrameMut {
            format: pixel_format(info.format()),
            width: w,
            height: h,
            planes: [p0, p1, p2],
            strides,
            colorimetry: Default::default(),
        };
        rgb_to_frame(img, &mut dst).unwrap();
    }
    buf
}

/// The RGB content of an output buffer, mapped with the negotiated caps (and its
/// GstVideoMeta, if any).
fn read_rgb(buf: &gst::Buffer, caps: &gst::Caps) -> RgbImage {
    let info = gst_video::VideoInfo::from_caps(caps).unwrap();
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buf.as_ref(), &info).unwrap();
    let mut planes: [&[u8]; 3] = [&[]; 3];
    for (i, p) in planes
        .iter_mut()
        .enumerate()
        .take(frame.n_planes() as usize)
    {
        *p = frame.plane_data(i as u32).unwrap();
    }
    let src = FrameRef {
        format: pixel_format(info.format()),
        width: info.width() as usize,
        height: info.height() as usize,
        planes,
        strides: strides(&frame),
        colorimetry: Default::default(),
    };
    frame_to_rgb(&src).unwrap()
}

fn element(props: &[(&str, &str)]) -> gst::Element {
    init();
    let mut b = gst::ElementFactory::make("nawqsr");
    for (k, v) in props {
        b = b.property_from_str(k, v);
    }
    b.build().unwrap()
}

/// A harness around a configured element, with a bus to watch its messages.
fn harness(props: &[(&str, &str)]) -> (Harness, gst::Bus) {
    let e = element(props);
    let bus = gst::Bus::new();
    e.set_bus(Some(&bus));
    (Harness::with_element(&e, Some("sink"), Some("src")), bus)
}

fn out_caps(h: &Harness) -> gst::Caps {
    h.sinkpad()
        .unwrap()
        .current_caps()
        .expect("output caps negotiated")
}

/// Every message queued on `bus` (popping with a filter would discard the others).
fn drain(bus: &gst::Bus) -> Vec<gst::Message> {
    std::iter::from_fn(|| bus.pop()).collect()
}

fn element_messages(msgs: &[gst::Message], name: &str) -> Vec<gst::Structure> {
    msgs.iter()
        .filter(|m| m.type_() == gst::MessageType::Element)
        .filter_map(|m| m.structure())
        .filter(|s| s.name() == name)
        .map(|s| s.to_owned())
        .collect()
}

fn flat(w: u32, h: u32, c: [u8; 3]) -> RgbImage {
    RgbImage::from_pixel(w, h, image::Rgb(c))
}

#[test]
fn negotiates_every_format_and_scale() {
    for scale in [2u32, 3, 4] {
        for format in FORMATS {
            let (w, h) = (30u32, 18u32);
            let (mut hn, _bus) = harness(&[("mode", "bicubic"), ("scale", &scale.to_string())]);
            let info = video_info(format, w, h);
            hn.set_src_caps(info.to_caps().unwrap());
            let out = hn
                .push_and_pull(make_buffer(&info, &flat(w, h, [10, 20, 30]), 0, false))
                .unwrap();
            let caps = out_caps(&hn);
            let oinfo = gst_video::VideoInfo::from_caps(&caps).unwrap();
            assert_eq!(
                (oinfo.width(), oinfo.height()),
                (w * scale, h * scale),
                "{format:?} ×{scale}"
            );
            assert_eq!(oinfo.format(), format);
            assert_eq!(oinfo.fps(), gst::Fraction::new(25, 1));
            assert_eq!(oinfo.par(), gst::Fraction::new(1, 1));
            // Without GstVideoMeta downstream the output has the default layout.
            assert!(out.meta::<gst_video::VideoMeta>().is_none());
            assert_eq!(out.size(), oinfo.size(), "{format:?} ×{scale}");
            let expected = video_info(format, w * scale, h * scale);
            assert_eq!(oinfo.stride(), expected.stride());
            assert_eq!(out.pts(), Some(gst::ClockTime::ZERO));
        }
    }
}

#[test]
fn output_carries_video_meta_when_downstream_reads_it() {
    let (mut h, _bus) = harness(&[("mode", "bicubic")]);
    h.add_propose_allocation_meta(gst_video::VideoMeta::meta_api(), None);
    let info = video_info(gst_video::VideoFormat::Nv12, 20, 10);
    h.set_src_caps(info.to_caps().unwrap());
    let out = h
        .push_and_pull(make_buffer(&info, &flat(20, 10, [200, 40, 90]), 0, false))
        .unwrap();
    let meta = out
        .meta::<gst_video::VideoMeta>()
        .expect("GstVideoMeta on output");
    assert_eq!((meta.width(), meta.height()), (40, 20));
    assert!(meta.stride()[0] >= 40 && meta.stride()[1] >= 40);
}

#[test]
fn flat_colours_stay_flat_and_edges_stay_put() {
    for format in FORMATS {
        for scale in [2u32, 3] {
            let (w, h) = (24u32, 12u32);
            let (mut hn, _bus) = harness(&[("mode", "bicubic"), ("scale", &scale.to_string())]);
            let info = video_info(format, w, h);
            hn.set_src_caps(info.to_caps().unwrap());

            // A flat colour stays that colour everywhere (within the YUV round trip).
            let c = [200u8, 40, 90];
            let input = make_buffer(&info, &flat(w, h, c), 0, false);
            let reference = read_rgb(&input, &info.to_caps().unwrap());
            let out = hn.push_and_pull(input).unwrap();
            let img = read_rgb(&out, &out_caps(&hn));
            assert_eq!(img.dimensions(), (w * scale, h * scale));
            let want = reference.get_pixel(0, 0).0;
            for p in img.pixels() {
                for ch in 0..3 {
                    assert!(
                        p.0[ch].abs_diff(want[ch]) <= 2,
                        "{format:?} ×{scale}: {:?} vs {want:?}",
                        p.0
                    );
                }
            }

            // A vertical black|white edge at input column 12 lands between output
            // columns 12·s − 1 and 12·s: dark left of it, bright right of it.
            let edge = RgbImage::from_fn(w, h, |x, _| {
                image::Rgb(if x < 12 { [0; 3] } else { [255; 3] })
            });
            let out = hn
                .push_and_pull(make_buffer(&info, &edge, 1, false))
                .unwrap();
            let img = read_rgb(&out, &out_caps(&hn));
            let e = 12 * scale;
            for y in [0, h * scale / 2, h * scale - 1] {
                let (l, r) = (img.get_pixel(e - 1, y).0[1], img.get_pixel(e, y).0[1]);
                assert!(l < 128 && r > 128, "{format:?} ×{scale} row {y}: {l} | {r}");
                assert!(
                    img.get_pixel(e - 1 - scale, y).0[1] < 20,
                    "{format:?} ×{scale}"
                );
                assert!(
                    img.get_pixel(e + scale, y).0[1] > 235,
                    "{format:?} ×{scale}"
                );
                assert!(img.get_pixel(0, y).0[1] < 5 && img.get_pixel(w * scale - 1, y).0[1] > 250);
            }
        }
    }
}

/// Decoders hand out padded planes described by a GstVideoMeta: the element must
/// read them with those strides, giving the same output as a tightly packed input.
#[test]
fn padded_input_with_video_meta() {
    for format in [gst_video::VideoFormat::I420, gst_video::VideoFormat::Rgbx] {
        let (w, h) = (22u32, 14u32);
        let img = RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x * 11) as u8, (y * 17) as u8, ((x + y) * 5) as u8])
        });
        let info = video_info(format, w, h);
        let mut padded = info.clone();
        let mut align =
            gst_video::VideoAlignment::new(0, 6, 0, 26, &[0; gst_video::VIDEO_MAX_PLANES]);
        padded.align(&mut align).unwrap();
        assert_ne!(padded.stride(), info.stride());

        let (mut hn, _bus) = harness(&[("mode", "bicubic")]);
        hn.set_src_caps(info.to_caps().unwrap());
        let tight = hn
            .push_and_pull(make_buffer(&info, &img, 0, false))
            .unwrap();
        let pad = hn
            .push_and_pull(make_buffer(&padded, &img, 1, true))
            .unwrap();
        let caps = out_caps(&hn);
        assert_eq!(read_rgb(&tight, &caps), read_rgb(&pad, &caps), "{format:?}");
    }
}

#[test]
fn eos_and_flush() {
    let (mut h, _bus) = harness(&[("mode", "bicubic")]);
    let info = video_info(gst_video::VideoFormat::I420, 16, 16);
    h.set_src_caps(info.to_caps().unwrap());
    for i in 0..3 {
        h.push(make_buffer(&info, &flat(16, 16, [9, 9, 9]), i, false))
            .unwrap();
    }
    assert_eq!(h.buffers_received(), 3);
    for i in 0..3 {
        assert_eq!(
            h.pull().unwrap().pts(),
            Some(gst::ClockTime::from_mseconds(40 * i))
        );
    }

    // Flush, new segment, and data flows again with its timestamps.
    assert!(h.push_event(gst::event::FlushStart::new()));
    assert!(h.push_event(gst::event::FlushStop::new(true)));
    let segment = gst::FormattedSegment::<gst::ClockTime>::new();
    assert!(h.push_event(gst::event::Segment::new(&segment)));
    let out = h
        .push_and_pull(make_buffer(&info, &flat(16, 16, [9, 9, 9]), 7, false))
        .unwrap();
    assert_eq!(out.pts(), Some(gst::ClockTime::from_mseconds(280)));

    assert!(h.push_event(gst::event::Eos::new()));
    let mut saw_eos = false;
    while let Some(ev) = h.try_pull_event() {
        saw_eos |= ev.type_() == gst::EventType::Eos;
    }
    assert!(saw_eos, "EOS is forwarded");
}

#[test]
fn transform_caps_maps_ranges_and_lists_both_ways() {
    let e = element(&[("mode", "bicubic"), ("scale", "2")]);
    let sink = e.static_pad("sink").unwrap();

    // Downstream accepts these: upstream may offer only the exact halves.
    let mut down = Harness::with_element(&e, None, Some("src"));
    down.set_sink_caps_str(
        "video/x-raw,format=I420,width=[100,201],height={96,97,144},framerate=30/1",
    );
    let caps = sink.query_caps(None);
    let s = caps.structure(0).unwrap();
    assert_eq!(
        s.get::<gst::IntRange<i32>>("width").unwrap(),
        gst::IntRange::new(50, 100)
    );
    let heights: Vec<i32> = s
        .get::<gst::List>("height")
        .unwrap()
        .iter()
        .map(|v| v.get().unwrap())
        .collect();
    assert_eq!(heights, [48, 72]);
    assert_eq!(
        s.get::<gst::Fraction>("framerate").unwrap(),
        gst::Fraction::new(30, 1)
    );
    drop(down);

    // Upstream offers a range: downstream sees every third size in three times the
    // range. (A harness source only takes fixed caps, so a plain pad answers.)
    let e = element(&[("mode", "bicubic"), ("scale", "3")]);
    let offer = gst::Caps::from_str(
        "video/x-raw,format=RGB,width=[10,20],height=7,framerate=25/1,pixel-aspect-ratio=4/3",
    )
    .unwrap();
    let upstream = gst::Pad::builder(gst::PadDirection::Src)
        .query_function(move |pad, parent, query| match query.view_mut() {
            gst::QueryViewMut::Caps(q) => {
                q.set_result(&offer);
                true
            }
            _ => gst::Pad::query_default(pad, parent, query),
        })
        .build();
    upstream.link(&e.static_pad("sink").unwrap()).unwrap();
    let caps = e.static_pad("src").unwrap().query_caps(None);
    let s = caps.structure(0).unwrap();
    assert_eq!(
        s.get::<gst::IntRange<i32>>("width").unwrap(),
        gst::IntRange::with_step(30, 60, 3)
    );
    assert_eq!(s.get::<i32>("height").unwrap(), 21);
    assert_eq!(
        s.get::<gst::Fraction>("pixel-aspect-ratio").unwrap(),
        gst::Fraction::new(4, 3)
    );
}

/// Builds a tiny ONNX model: y = Identity(x), x and y float [1, 3, H, W]. It is a
/// valid image-to-image network, but not a super-resolution one (×1).
fn identity_onnx() -> Vec<u8> {
    fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    fn bytes(tag: u64, data: &[u8], out: &mut Vec<u8>) {
        varint(tag << 3 | 2, out);
        varint(data.len() as u64, out);
        out.extend_from_slice(data);
    }
    fn int(tag: u64, v: u64, out: &mut Vec<u8>) {
        varint(tag << 3, out);
        varint(v, out);
    }
    let value_info = |name: &str| {
        let mut shape = Vec::new();
        for d in ["1", "3", "H", "W"] {
            let mut dim = Vec::new();
            match d.parse::<u64>() {
                Ok(v) => int(1, v, &mut dim),
                Err(_) => bytes(2, d.as_bytes(), &mut dim),
            }
            bytes(1, &dim, &mut shape);
        }
        let mut tensor = Vec::new();
        int(1, 1, &mut tensor); // FLOAT
        bytes(2, &shape, &mut tensor);
        let mut ty = Vec::new();
        bytes(1, &tensor, &mut ty);
        let mut vi = Vec::new();
        bytes(1, name.as_bytes(), &mut vi);
        bytes(2, &ty, &mut vi);
        vi
    };
    let mut node = Vec::new();
    bytes(1, b"x", &mut node);
    bytes(2, b"y", &mut node);
    bytes(4, b"Identity", &mut node);
    let mut graph = Vec::new();
    bytes(1, &node, &mut graph);
    bytes(2, b"identity", &mut graph);
    bytes(11, &value_info("x"), &mut graph);
    bytes(12, &value_info("y"), &mut graph);
    let mut opset = Vec::new();
    int(2, 17, &mut opset);
    let mut model = Vec::new();
    int(1, 8, &mut model);
    bytes(7, &graph, &mut model);
    bytes(8, &opset, &mut model);
    model
}

/// Starts the element alone and returns the text of the error it posts.
fn start_error(props: &[(&str, &str)]) -> String {
    let e = element(props);
    let bus = gst::Bus::new();
    e.set_bus(Some(&bus));
    assert!(
        e.set_state(gst::State::Paused).is_err(),
        "start() must fail for {props:?}"
    );
    let msg = bus
        .pop_filtered(&[gst::MessageType::Error])
        .expect("an error message on the bus");
    let gst::MessageView::Error(err) = msg.view() else {
        unreachable!()
    };
    let text = format!("{} {}", err.error(), err.debug().unwrap_or_default());
    let _ = e.set_state(gst::State::Null);
    text
}

#[test]
fn missing_model_file_names_model() {
    let text = start_error(&[("mode", "fp32"), ("model", "/nonexistent/sr.onnx")]);
    assert!(
        text.contains("property model") && text.contains("/nonexistent/sr.onnx"),
        "{text}"
    );
}

#[test]
fn non_sr_models_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let identity = dir.path().join("identity.onnx");
    std::fs::write(&identity, identity_onnx()).unwrap();
    let text = start_error(&[("mode", "fp32"), ("model", identity.to_str().unwrap())]);
    assert!(
        text.contains("property model") && text.contains("identity.onnx"),
        "{text}"
    );

    let garbage = dir.path().join("garbage.onnx");
    std::fs::write(&garbage, b"this is not protobuf").unwrap();
    let text = start_error(&[("mode", "fp32"), ("model", garbage.to_str().unwrap())]);
    assert!(
        text.contains("property model") && text.contains("garbage.onnx"),
        "{text}"
    );
}

#[test]
fn ready_only_properties_are_refused_while_playing() {
    let (mut h, bus) = harness(&[("mode", "bicubic"), ("scale", "3")]);
    let info = video_info(gst_video::VideoFormat::Rgb, 8, 8);
    h.set_src_caps(info.to_caps().unwrap());
    h.push_and_pull(make_buffer(&info, &flat(8, 8, [1, 2, 3]), 0, false))
        .unwrap();
    let e = h.element().unwrap();
    e.set_property("scale", 4u32);
    e.set_property("model", "/tmp/other.onnx");
    assert_eq!(e.property::<u32>("scale"), 3);
    assert_eq!(e.property::<Option<String>>("model"), None);
    let warning = bus
        .pop_filtered(&[gst::MessageType::Warning])
        .expect("a warning");
    let gst::MessageView::Warning(w) = warning.view() else {
        unreachable!()
    };
    assert!(
        w.error().to_string().contains("property scale"),
        "{}",
        w.error()
    );
    // Properties that may change while playing do.
    e.set_property("stats-interval", 5u32);
    assert_eq!(e.property::<u32>("stats-interval"), 5);
}

/// BaseTransform drops buffers that are already late (QoS enabled by the element)
/// and posts a QOS message; the element counts the drop in its stats.
#[test]
fn late_buffers_are_dropped_with_a_qos_message() {
    let (mut h, bus) = harness(&[("mode", "bicubic"), ("stats-interval", "1")]);
    let e = h.element().unwrap();
    assert!(e.property::<bool>("qos"));
    let info = video_info(gst_video::VideoFormat::I420, 16, 16);
    h.set_src_caps(info.to_caps().unwrap());
    h.push_and_pull(make_buffer(&info, &flat(16, 16, [5, 5, 5]), 0, false))
        .unwrap();

    // The sink says: everything before 200 ms is too late.
    let qos = gst::event::Qos::new(
        gst::QOSType::Underflow,
        1.2,
        0,
        gst::ClockTime::from_mseconds(200),
    );
    assert!(h.push_upstream_event(qos));
    h.push(make_buffer(&info, &flat(16, 16, [5, 5, 5]), 2, false))
        .unwrap(); // 80 ms: dropped
    h.push(make_buffer(&info, &flat(16, 16, [5, 5, 5]), 10, false))
        .unwrap(); // 400 ms: kept
    assert_eq!(h.buffers_received(), 2);
    let out = h.pull().unwrap();
    assert_eq!(out.pts(), Some(gst::ClockTime::from_mseconds(400)));
    assert!(
        out.flags().contains(gst::BufferFlags::DISCONT),
        "the frame after a drop is DISCONT"
    );

    let msgs = drain(&bus);
    let mut qos_msgs = 0;
    for m in &msgs {
        if let gst::MessageView::Qos(q) = m.view() {
            qos_msgs += 1;
            assert_eq!(q.timestamp(), Some(gst::ClockTime::from_mseconds(80)));
            let (_processed, dropped) = q.stats();
            assert_eq!(
                dropped,
                gst::GenericFormattedValue::Buffers(Some(gst::format::Buffers::ONE))
            );
        }
    }
    assert_eq!(qos_msgs, 1);
    let stats = element_messages(&msgs, "nawqsr-stats");
    let last = stats.last().expect("stats messages");
    assert_eq!(last.get::<u64>("drops").unwrap(), 1);
    assert_eq!(last.get::<u64>("frames").unwrap(), 2);
}

#[test]
fn stats_messages_have_every_field() {
    let (mut h, bus) = harness(&[("mode", "bicubic"), ("stats-interval", "3")]);
    let info = video_info(gst_video::VideoFormat::Bgrx, 16, 8);
    h.set_src_caps(info.to_caps().unwrap());
    for i in 0..7 {
        h.push(make_buffer(&info, &flat(16, 8, [1, 2, 3]), i, false))
            .unwrap();
    }
    let stats = element_messages(&drain(&bus), "nawqsr-stats");
    assert_eq!(stats.len(), 2);
    let s = &stats[1];
    assert_eq!(s.get::<u64>("frames").unwrap(), 6);
    assert!(s.get::<f64>("fps").unwrap() > 0.0);
    let (p50, p99) = (
        s.get::<f64>("latency-p50-ms").unwrap(),
        s.get::<f64>("latency-p99-ms").unwrap(),
    );
    assert!(p50 > 0.0 && p99 >= p50, "{p50} {p99}");
    assert_eq!(s.get::<&str>("mode").unwrap(), "bicubic");
    assert_eq!(s.get::<u64>("drops").unwrap(), 0);
    assert_eq!(s.get::<u64>("switches").unwrap(), 0);
}

/// Sustained lateness steps fp32 down the ladder (to whichever faster mode this
/// build has) with a `nawqsr-mode-switch` message; the output keeps its size.
#[test]
fn sustained_lateness_switches_mode() {
    let shared = require_shared!();
    let model = shared.join("models/IMDN_RTC_x2.onnx");
    let (mut h, bus) = harness(&[
        ("mode", "fp32"),
        ("model", model.to_str().unwrap()),
        ("stats-interval", "1"),
    ]);
    let info = video_info(gst_video::VideoFormat::I420, 24, 16);
    h.set_src_caps(info.to_caps().unwrap());
    h.push_and_pull(make_buffer(&info, &flat(24, 16, [100, 150, 200]), 0, false))
        .unwrap();
    assert!(element_messages(&drain(&bus), "nawqsr-mode-switch").is_empty());

    // One late report is not enough; three in a row are. Timestamps stay in the
    // past so that no buffer is dropped.
    for _ in 0..3 {
        let qos = gst::event::Qos::new(gst::QOSType::Underflow, 1.8, 0, gst::ClockTime::ZERO);
        assert!(h.push_upstream_event(qos));
    }
    let out = h
        .push_and_pull(make_buffer(&info, &flat(24, 16, [100, 150, 200]), 1, false))
        .unwrap();
    assert_eq!(
        out.size(),
        video_info(gst_video::VideoFormat::I420, 48, 32).size()
    );
    let switches = element_messages(&drain(&bus), "nawqsr-mode-switch");
    assert_eq!(switches.len(), 1, "{switches:?}");
    assert_eq!(switches[0].get::<&str>("from").unwrap(), "fp32");
    let to = switches[0].get::<&str>("to").unwrap().to_string();
    assert!(
        ["a16w8", "hybrid", "int8", "bicubic"].contains(&to.as_str()),
        "{to}"
    );

    // Plenty of headroom brings it back to fp32 (never above it).
    for _ in 0..10 {
        let qos = gst::event::Qos::new(gst::QOSType::Overflow, 0.3, 0, gst::ClockTime::ZERO);
        assert!(h.push_upstream_event(qos));
    }
    h.push_and_pull(make_buffer(&info, &flat(24, 16, [100, 150, 200]), 2, false))
        .unwrap();
    let switches = element_messages(&drain(&bus), "nawqsr-mode-switch");
    let last = switches.last().expect("a switch back up");
    assert_eq!(last.get::<&str>("to").unwrap(), "fp32", "{switches:?}");
}

/// `mode` may change while playing: the next frame runs the new mode; a mode that
/// cannot be built is reported with a warning and the element keeps running.
#[test]
fn mode_changes_while_playing() {
    let shared = require_shared!();
    let model = shared.join("models/IMDN_RTC_x2.onnx");
    let (mut h, bus) = harness(&[("mode", "fp32"), ("model", model.to_str().unwrap())]);
    let info = video_info(gst_video::VideoFormat::Nv12, 20, 12);
    h.set_src_caps(info.to_caps().unwrap());
    let img = flat(20, 12, [30, 60, 90]);
    h.push_and_pull(make_buffer(&info, &img, 0, false)).unwrap();
    let e = h.element().unwrap();
    e.set_property_from_str("mode", "int8");
    h.push_and_pull(make_buffer(&info, &img, 1, false)).unwrap();
    e.set_property_from_str("mode", "bicubic");
    h.push_and_pull(make_buffer(&info, &img, 2, false)).unwrap();
    let switches: Vec<(String, String)> = element_messages(&drain(&bus), "nawqsr-mode-switch")
        .iter()
        .map(|s| {
            (
                s.get::<String>("from").unwrap(),
                s.get::<String>("to").unwrap(),
            )
        })
        .collect();
    assert_eq!(
        switches,
        [
            ("fp32".into(), "int8".into()),
            ("int8".into(), "bicubic".into())
        ]
    );

    // Without a model, a network mode runs the bundled model of the negotiated scale.
    let (mut h, bus) = harness(&[("mode", "bicubic")]);
    h.set_src_caps(info.to_caps().unwrap());
    h.push_and_pull(make_buffer(&info, &img, 0, false)).unwrap();
    h.element().unwrap().set_property_from_str("mode", "int8");
    let out = h.push_and_pull(make_buffer(&info, &img, 1, false)).unwrap();
    assert_eq!(
        out.size(),
        video_info(gst_video::VideoFormat::Nv12, 40, 24).size()
    );
    let msgs = drain(&bus);
    let switches: Vec<String> = element_messages(&msgs, "nawqsr-mode-switch")
        .iter()
        .map(|s| s.get::<String>("to").unwrap())
        .collect();
    assert_eq!(switches, ["int8"], "bicubic → int8 on the bundled ×2 model");
}

#[test]
fn latency_query_adds_processing_time() {
    let (mut h, _bus) = harness(&[("mode", "bicubic")]);
    h.set_upstream_latency(gst::ClockTime::from_mseconds(10));
    let info = video_info(gst_video::VideoFormat::I420, 320, 240);
    h.set_src_caps(info.to_caps().unwrap());
    // Before any frame: upstream's latency, nothing of ours yet.
    assert_eq!(h.query_latency(), Some(gst::ClockTime::from_mseconds(10)));
    for i in 0..5 {
        h.push(make_buffer(&info, &flat(320, 240, [50, 60, 70]), i, false))
            .unwrap();
    }
    let mut q = gst::query::Latency::new();
    assert!(h.sinkpad().unwrap().peer_query(&mut q));
    let (_live, min, max) = q.result();
    assert!(min > gst::ClockTime::from_mseconds(10), "min {min}");
    if let Some(max) = max {
        assert!(max >= min);
    }
}

/// Runs a launch line to EOS. The element named `sr` (if any) has its input PTS
/// recorded; the appsink named `sink` records (pts, width, height) of every sample.
struct Run {
    in_pts: Vec<Option<gst::ClockTime>>,
    out: Vec<(Option<gst::ClockTime>, u32, u32)>,
}

fn run(desc: &str) -> Run {
    init();
    let pipeline = gst::parse::launch(desc)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let in_pts = Arc::new(Mutex::new(Vec::new()));
    if let Some(sr) = pipeline.by_name("sr") {
        let in_pts = in_pts.clone();
        sr.static_pad("sink")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                if let Some(buf) = info.buffer() {
                    in_pts.lock().unwrap().push(buf.pts());
                }
                gst::PadProbeReturn::Ok
            });
    }
    let out = Arc::new(Mutex::new(Vec::new()));
    if let Some(sink) = pipeline.by_name("sink") {
        let sink = sink.downcast::<gst_app::AppSink>().unwrap();
        let out = out.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |s| {
                    let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let info = gst_video::VideoInfo::from_caps(sample.caps().unwrap()).unwrap();
                    out.lock().unwrap().push((
                        sample.buffer().unwrap().pts(),
                        info.width(),
                        info.height(),
                    ));
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
    }
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(300),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("EOS or error within 300 s");
    if let gst::MessageView::Error(e) = msg.view() {
        panic!("{desc}: {} ({:?})", e.error(), e.debug());
    }
    pipeline.set_state(gst::State::Null).unwrap();
    let in_pts = in_pts.lock().unwrap().clone();
    let out = out.lock().unwrap().clone();
    Run { in_pts, out }
}

fn check_run(r: &Run, frames: usize, w: u32, h: u32, what: &str) {
    assert_eq!(r.in_pts.len(), frames, "{what}: input frames");
    assert_eq!(r.out.len(), frames, "{what}: output frames");
    let out_pts: Vec<_> = r.out.iter().map(|o| o.0).collect();
    assert_eq!(out_pts, r.in_pts, "{what}: PTS preserved frame by frame");
    assert!(
        r.out.iter().all(|o| (o.1, o.2) == (w, h)),
        "{what}: output size {w}x{h}"
    );
}

#[test]
fn h264_elementary_stream_pipeline() {
    let shared = require_shared!();
    let clip = shared.join("clips/foreman_cif_352x288.h264");
    let r = run(&format!(
        "filesrc location={} ! h264parse ! avdec_h264 ! videoconvert ! nawqsr name=sr mode=bicubic \
         ! appsink name=sink sync=false",
        clip.display()
    ));
    check_run(&r, 299, 704, 576, "foreman_cif_352x288.h264");
}

#[test]
fn decodebin_pipelines_on_containers() {
    let shared = require_shared!();
    for clip in [
        "foreman_cif.mp4",
        "foreman_cif_hevc.mp4",
        "foreman_cif.webm",
    ] {
        let path = shared.join("clips").join(clip);
        let r = run(&format!(
            "filesrc location={} ! decodebin ! nawqsr name=sr mode=bicubic scale=3 ! appsink name=sink sync=false",
            path.display()
        ));
        check_run(&r, 60, 1056, 864, clip);
    }
}

#[test]
fn fp32_pipeline_with_imdn_rtc() {
    let shared = require_shared!();
    let clip = shared.join("clips/foreman_cif.mp4");
    let model = shared.join("models/IMDN_RTC_x2.onnx");
    // The FP32 reference is slow: the 60 frames are first shrunk to 88x72.
    let r = run(&format!(
        "filesrc location={} ! decodebin ! videoscale ! video/x-raw,width=88,height=72 \
         ! nawqsr name=sr mode=fp32 model={} ! appsink name=sink sync=false",
        clip.display(),
        model.display()
    ));
    check_run(&r, 60, 176, 144, "fp32 IMDN_RTC_x2");
}

#[test]
fn file_to_file_transcode() {
    let shared = require_shared!();
    let clip = shared.join("clips/foreman_cif.mp4");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("foreman_x2.mp4");
    let r = run(&format!(
        "filesrc location={} ! decodebin ! nawqsr name=sr mode=bicubic ! videoconvert \
         ! x264enc speed-preset=ultrafast ! mp4mux ! filesink location={}",
        clip.display(),
        out.display()
    ));
    assert_eq!(r.in_pts.len(), 60);
    let back = run(&format!(
        "filesrc location={} ! decodebin ! appsink name=sink sync=false",
        out.display()
    ));
    assert_eq!(back.out.len(), 60, "frames in the transcoded file");
    assert!(back.out.iter().all(|o| (o.1, o.2) == (704, 576)));
}

/// No `model`: the bundled model for the `scale` property, and for whatever
/// scale downstream's caps force. Runs on videotestsrc, so it needs no ../shared.
#[test]
fn bundled_models_by_default_for_the_negotiated_scale() {
    let r = run(
        "videotestsrc num-buffers=3 ! video/x-raw,format=RGB,width=64,height=36,framerate=25/1 \
         ! nawqsr name=sr mode=int8 ! appsink name=sink sync=false",
    );
    check_run(&r, 3, 128, 72, "default scale 2");
    let r = run(
        "videotestsrc num-buffers=3 ! video/x-raw,format=I420,width=64,height=36,framerate=25/1 \
         ! nawqsr name=sr scale=3 ! appsink name=sink sync=false",
    );
    check_run(&r, 3, 192, 108, "scale=3, hybrid");
    let r = run(
        "videotestsrc num-buffers=3 ! video/x-raw,format=NV12,width=64,height=36,framerate=25/1 \
         ! nawqsr name=sr ! video/x-raw,width=256,height=144 ! appsink name=sink sync=false",
    );
    check_run(&r, 3, 256, 144, "caps force x4");
}

/// The bundled ×2 schedule with a three-plan front (all-INT8, mixed, all-A16W8,
/// profiled at 1, 2 and 3 ms), written to `dir`.
fn schedule_with_front(dir: &std::path::Path) -> std::path::PathBuf {
    use nawqsr_codec::model::{self, bundled};
    use nawqsr_codec::schedule::{FrontPoint, Pareto, find_for_model};
    let m = bundled::load(2).unwrap();
    let g = model::import_bytes(&m).unwrap();
    let sha = m.sha256();
    let mut s = find_for_model(&sha).unwrap().load(&g, &sha).unwrap();
    let n = g.conv_layers().len();
    let pt = |bits: Vec<u32>, ms: f64, psnr: f64| FrontPoint {
        bits,
        dre: vec![false; n],
        predicted_ms: ms,
        psnr,
        piqe: None,
    };
    s.pareto = Some(Pareto {
        host: "test".into(),
        threads: 1,
        input: [16, 8],
        target_ms: None,
        points: vec![
            pt(vec![8; n], 1.0, 30.0),
            pt(
                (0..n).map(|i| if i < n / 2 { 8 } else { 16 }).collect(),
                2.0,
                30.1,
            ),
            pt(vec![16; n], 3.0, 30.2),
        ],
    });
    let f = dir.join("front.json");
    s.save(&f).unwrap();
    f
}

/// With a front, hybrid starts on its best plan; a deadline no plan can meet
/// moves it to the fastest after `down_after` frames, with a message naming
/// both plans; every frame still comes out.
#[test]
fn latency_target_moves_along_the_front() {
    let dir = tempfile::tempdir().unwrap();
    let sched = schedule_with_front(dir.path());
    // reuse off: the frames are identical, and a reused 16×8 frame can take
    // under the 1 µs target.
    let (mut h, bus) = harness(&[
        ("mode", "hybrid"),
        ("schedule", sched.to_str().unwrap()),
        ("latency-target", "0.001"),
        ("stats-interval", "1"),
        ("reuse", "off"),
    ]);
    let info = video_info(gst_video::VideoFormat::Rgb, 16, 8);
    h.set_src_caps(info.to_caps().unwrap());
    for i in 0..12 {
        h.push(make_buffer(&info, &flat(16, 8, [90, 120, 30]), i, false))
            .unwrap();
    }
    let mut out = 0;
    while h.try_pull().is_some() {
        out += 1;
    }
    assert_eq!(out, 12, "every frame is output");
    let msgs = drain(&bus);
    let sw = element_messages(&msgs, "nawqsr-plan-switch");
    assert_eq!(sw.len(), 1, "one decision, then it holds: {sw:?}");
    assert_eq!(sw[0].get::<u32>("from").unwrap(), 2);
    assert_eq!(sw[0].get::<u32>("to").unwrap(), 0);
    assert_eq!(sw[0].get::<f64>("to-predicted-ms").unwrap(), 1.0);
    assert_eq!(sw[0].get::<f64>("to-psnr").unwrap(), 30.0);
    assert_eq!(sw[0].get::<f64>("target-ms").unwrap(), 0.001);
    let stats = element_messages(&msgs, "nawqsr-stats");
    assert_eq!(stats[0].get::<i32>("plan").unwrap(), 2);
    let last = stats.last().unwrap();
    assert_eq!(last.get::<i32>("plan").unwrap(), 0);
    assert_eq!(last.get::<f64>("plan-psnr").unwrap(), 30.0);
    assert_eq!(last.get::<f64>("latency-target-ms").unwrap(), 0.001);
    assert_eq!(last.get::<&str>("mode").unwrap(), "hybrid");
}

/// A deadline every plan meets keeps the best one: no switch.
#[test]
fn generous_latency_target_keeps_the_best_plan() {
    let dir = tempfile::tempdir().unwrap();
    let sched = schedule_with_front(dir.path());
    let (mut h, bus) = harness(&[
        ("schedule", sched.to_str().unwrap()),
        ("latency-target", "60000"),
        ("stats-interval", "4"),
    ]);
    let info = video_info(gst_video::VideoFormat::Rgb, 16, 8);
    h.set_src_caps(info.to_caps().unwrap());
    for i in 0..8 {
        h.push(make_buffer(&info, &flat(16, 8, [9, 12, 200]), i, false))
            .unwrap();
    }
    let msgs = drain(&bus);
    assert!(element_messages(&msgs, "nawqsr-plan-switch").is_empty());
    let stats = element_messages(&msgs, "nawqsr-stats");
    assert_eq!(stats.last().unwrap().get::<i32>("plan").unwrap(), 2);
}

/// The PIQE sampler scores the output every `piqe-interval` frames and says
/// what it cost; off, the field says so.
#[test]
fn stats_carry_a_piqe_sample_and_its_cost() {
    for (interval, sampled) in [("2", true), ("0", false)] {
        let (mut h, bus) = harness(&[
            ("mode", "bicubic"),
            ("scale", "2"),
            ("stats-interval", "4"),
            ("piqe-interval", interval),
        ]);
        let info = video_info(gst_video::VideoFormat::I420, 64, 48);
        h.set_src_caps(info.to_caps().unwrap());
        let img = RgbImage::from_fn(64, 48, |x, y| {
            image::Rgb([
                (x * 9 % 256) as u8,
                (y * 5 % 256) as u8,
                ((x * y) % 256) as u8,
            ])
        });
        for i in 0..8 {
            h.push(make_buffer(&info, &img, i, false)).unwrap();
        }
        let stats = element_messages(&drain(&bus), "nawqsr-stats");
        let last = stats.last().unwrap();
        let (piqe, cost) = (
            last.get::<f64>("piqe").unwrap(),
            last.get::<f64>("piqe-cost").unwrap(),
        );
        if sampled {
            assert!((0.0..=100.0).contains(&piqe), "{piqe}");
            assert!(cost > 0.0, "{cost}");
        } else {
            assert_eq!((piqe, cost), (-1.0, 0.0));
        }
    }
}

/// Without a `latency-target`, a live upstream (the harness answers latency
/// queries as live) gets the default deadline: the frame interval (40 ms)
/// minus 15 %. (Non-live pipelines keep the schedule's plan: `plan` -1.)
#[test]
fn default_deadline_on_live_streams() {
    let dir = tempfile::tempdir().unwrap();
    let sched = schedule_with_front(dir.path());
    let (mut h, bus) = harness(&[
        ("schedule", sched.to_str().unwrap()),
        ("stats-interval", "3"),
    ]);
    let info = video_info(gst_video::VideoFormat::Rgb, 16, 8);
    h.set_src_caps(info.to_caps().unwrap());
    for i in 0..6 {
        h.push(make_buffer(&info, &flat(16, 8, [9, 12, 200]), i, false))
            .unwrap();
    }
    let stats = element_messages(&drain(&bus), "nawqsr-stats");
    let last = stats.last().unwrap();
    assert!(last.get::<i32>("plan").unwrap() >= 0);
    let t = last.get::<f64>("latency-target-ms").unwrap();
    assert!((t - 34.0).abs() < 1e-9, "{t}");
}

/// Issue 16: the replicas of published architectures (`assets/test-models`,
/// RGB and luma) run in the element, in float and integer modes.
#[test]
fn replica_models_run_in_the_element() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/test-models");
    for (name, s) in [
        ("carn_m", 2),
        ("pan", 2),
        ("rfdn", 2),
        ("fsrcnn", 2),
        ("xlsr", 3),
        ("espcn", 3),
        ("ecbsr", 2),
        ("opzoo", 2),
        ("shuffle_rt", 2),
    ] {
        let model = dir.join(format!("{name}.onnx"));
        for mode in ["fp32", "int8"] {
            let (mut h, bus) = harness(&[("mode", mode), ("model", model.to_str().unwrap())]);
            let info = video_info(gst_video::VideoFormat::I420, 24, 16);
            h.set_src_caps(info.to_caps().unwrap());
            let out = h
                .push_and_pull(make_buffer(&info, &flat(24, 16, [90, 140, 60]), 0, false))
                .unwrap_or_else(|e| panic!("{name} {mode}: {e:?} {:?}", drain(&bus)));
            assert_eq!(
                out.size(),
                video_info(gst_video::VideoFormat::I420, 24 * s, 16 * s).size(),
                "{name} {mode}"
            );
            let errors: Vec<_> = drain(&bus)
                .into_iter()
                .filter(|m| m.type_() == gst::MessageType::Error)
                .collect();
            assert!(errors.is_empty(), "{name} {mode}: {errors:?}");
        }
    }
}

/// Issue 17: 10-bit 4:2:0 caps (I420_10LE, P010_10LE) negotiate and give
/// 10-bit output of the same format. A luma model keeps all 10 bits (output
/// Y values that are no multiple of 4 from a 10-bit ramp); the bundled RGB
/// model sees the frame as 8-bit RGB and keeps a flat grey grey.
#[test]
fn ten_bit_frames_negotiate_and_stay_ten_bit() {
    use nawqsr_codec::runtime::planes::{Comp, comp_size, read_row, write_row};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/test-models");
    let model = dir.join("ecbsr.onnx");
    for format in [
        gst_video::VideoFormat::I42010le,
        gst_video::VideoFormat::P01010le,
    ] {
        let pf = pixel_format(format);
        let l = pf.yuv420().unwrap();
        for luma in [true, false] {
            let props: Vec<(&str, &str)> = if luma {
                vec![("mode", "int8"), ("model", model.to_str().unwrap())]
            } else {
                vec![("mode", "int8"), ("scale", "2")]
            };
            let (mut h, bus) = harness(&props);
            let (w, ht) = (40u32, 24u32);
            let info = video_info(format, w, ht);
            h.set_src_caps(info.to_caps().unwrap());
            let mut buf = gst::Buffer::with_size(info.size()).unwrap();
            {
                let b = buf.get_mut().unwrap();
                b.set_pts(gst::ClockTime::ZERO);
                let mut frame =
                    gst_video::VideoFrameRef::from_buffer_ref_writable(b, &info).unwrap();
                let st = strides(&frame);
                let [p0, p1, p2, _] = frame.planes_data_mut();
                let mut dst = FrameMut {
                    format: pf,
                    width: w as usize,
                    height: ht as usize,
                    planes: [p0, p1, p2],
                    strides: st,
                    colorimetry: Default::default(),
                };
                for comp in [Comp::Y, Comp::U, Comp::V] {
                    let (cw, ch) = comp_size(comp, w as usize, ht as usize);
                    for r in 0..ch {
                        // Luma: a ramp in single 10-bit steps; RGB model: flat grey
                        // (which the bundled INT8 net keeps within 3 8-bit steps).
                        let row: Vec<f32> = (0..cw)
                            .map(|x| match comp {
                                Comp::Y if luma => 400.0 + (x + r) as f32,
                                Comp::Y => 502.0,
                                _ => 512.0,
                            })
                            .collect();
                        write_row(&mut dst, l, comp, r, &row);
                    }
                }
            }
            let input = buf.copy();
            let out = h
                .push_and_pull(buf)
                .unwrap_or_else(|e| panic!("{format:?}: {e:?} {:?}", drain(&bus)));
            let caps = h.sinkpad().unwrap().current_caps().unwrap();
            let oinfo = gst_video::VideoInfo::from_caps(&caps).unwrap();
            assert_eq!(oinfo.format(), format);
            if luma {
                // The element ran the deep-input plan (A16W8 input conv): its
                // output is that codec's, byte for byte, and not the INT8 one's.
                let run = |deep_input: bool| {
                    let codec =
                        nawqsr_codec::runtime::Codec::new(&nawqsr_codec::runtime::CodecConfig {
                            model: Some(model.clone()),
                            mode: nawqsr_codec::runtime::Mode::Int8,
                            threads: 2,
                            deep_input,
                            ..Default::default()
                        })
                        .unwrap();
                    let f =
                        gst_video::VideoFrameRef::from_buffer_ref_readable(input.as_ref(), &info)
                            .unwrap();
                    let mut planes: [&[u8]; 3] = [&[]; 3];
                    for (i, p) in planes.iter_mut().enumerate().take(f.n_planes() as usize) {
                        *p = f.plane_data(i as u32).unwrap();
                    }
                    let src = FrameRef {
                        format: pf,
                        width: w as usize,
                        height: ht as usize,
                        planes,
                        strides: strides(&f),
                        colorimetry: Default::default(),
                    };
                    let oinfo = video_info(format, 2 * w, 2 * ht);
                    let mut obuf = gst::Buffer::with_size(oinfo.size()).unwrap();
                    let mut of = gst_video::VideoFrameRef::from_buffer_ref_writable(
                        obuf.get_mut().unwrap(),
                        &oinfo,
                    )
                    .unwrap();
                    let st = strides(&of);
                    let [p0, p1, p2, _] = of.planes_data_mut();
                    let mut dst = FrameMut {
                        format: pf,
                        width: 2 * w as usize,
                        height: 2 * ht as usize,
                        planes: [p0, p1, p2],
                        strides: st,
                        colorimetry: Default::default(),
                    };
                    codec.upscale(&src, &mut dst).unwrap();
                    dst.planes[0].to_vec()
                };
                let f = gst_video::VideoFrameRef::from_buffer_ref_readable(out.as_ref(), &oinfo)
                    .unwrap();
                let got = f.plane_data(0).unwrap().to_vec();
                assert_eq!(got, run(true), "{format:?}: the deep-input codec's Y");
                assert_ne!(got, run(false), "{format:?}: not the INT8 input conv's");
            }
            assert_eq!((oinfo.width(), oinfo.height()), (2 * w, 2 * ht));
            let frame =
                gst_video::VideoFrameRef::from_buffer_ref_readable(out.as_ref(), &oinfo).unwrap();
            let mut planes: [&[u8]; 3] = [&[]; 3];
            for (i, p) in planes
                .iter_mut()
                .enumerate()
                .take(frame.n_planes() as usize)
            {
                *p = frame.plane_data(i as u32).unwrap();
            }
            let src = FrameRef {
                format: pf,
                width: 2 * w as usize,
                height: 2 * ht as usize,
                planes,
                strides: strides(&frame),
                colorimetry: Default::default(),
            };
            let mut ys = Vec::new();
            let mut row = vec![0f32; 2 * w as usize];
            for r in 0..2 * ht as usize {
                read_row(&src, l, Comp::Y, r, &mut row);
                ys.extend_from_slice(&row);
            }
            if luma {
                assert!(
                    ys.iter().any(|&v| v % 4.0 != 0.0),
                    "{format:?}: 10 bits lost"
                );
                let mean = ys.iter().sum::<f32>() / ys.len() as f32;
                // Random weights move Y a little; a wrong depth would move it ×4 or ÷4.
                assert!((mean - 431.0).abs() < 40.0, "{format:?}: Y mean {mean}");
            } else {
                let (lo, hi) = ys
                    .iter()
                    .fold((f32::MAX, f32::MIN), |a, &v| (a.0.min(v), a.1.max(v)));
                assert!(
                    lo >= 490.0 && hi <= 514.0,
                    "{format:?}: grey drifted to {lo}..{hi}"
                );
            }
            let errors: Vec<_> = drain(&bus)
                .into_iter()
                .filter(|m| m.type_() == gst::MessageType::Error)
                .collect();
            assert!(errors.is_empty(), "{format:?}: {errors:?}");
        }
    }
}

/// Issue 17: with no model set, YUV caps run the bundled luma model (the
/// frame stays YUV) and RGB caps the bundled RGB model: the element's output
/// is byte for byte what a codec of that family gives for the same frame.
#[test]
fn yuv_caps_run_the_bundled_luma_model_and_rgb_caps_the_rgb_one() {
    use nawqsr_codec::model::bundled::Family;
    use nawqsr_codec::runtime::{Codec, CodecConfig, Mode};
    let (w, h) = (48u32, 32u32);
    let img = RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (x * 5 + y * 3) as u8,
            (y * 7) as u8,
            (120 + (x ^ y) * 2) as u8,
        ])
    });
    for (format, family) in [
        (gst_video::VideoFormat::I420, Family::Luma),
        (gst_video::VideoFormat::Nv12, Family::Luma),
        (gst_video::VideoFormat::Rgbx, Family::Rgb),
    ] {
        let (mut hn, bus) = harness(&[("piqe-interval", "0")]);
        let info = video_info(format, w, h);
        hn.set_src_caps(info.to_caps().unwrap());
        let inbuf = make_buffer(&info, &img, 0, false);
        let out = hn
            .push_and_pull(inbuf.clone())
            .unwrap_or_else(|e| panic!("{format:?}: {e:?} {:?}", drain(&bus)));
        let oinfo = gst_video::VideoInfo::from_caps(&out_caps(&hn)).unwrap();
        let inframe =
            gst_video::VideoFrameRef::from_buffer_ref_readable(inbuf.as_ref(), &info).unwrap();
        let mut planes: [&[u8]; 3] = [&[]; 3];
        for (i, p) in planes
            .iter_mut()
            .enumerate()
            .take(inframe.n_planes() as usize)
        {
            *p = inframe.plane_data(i as u32).unwrap();
        }
        let colorimetry = nawqsr_codec::runtime::frame::Colorimetry {
            siting: if info
                .chroma_site()
                .contains(gst_video::VideoChromaSite::H_COSITED)
            {
                nawqsr_codec::runtime::frame::Siting::Left
            } else {
                nawqsr_codec::runtime::frame::Siting::Centre
            },
            ..Default::default()
        };
        let src = FrameRef {
            format: pixel_format(format),
            width: w as usize,
            height: h as usize,
            planes,
            strides: strides(&inframe),
            colorimetry,
        };
        // The same frame through a bundled codec of `family`.
        let run = |family| {
            let codec = Codec::new(&CodecConfig {
                mode: Mode::Hybrid,
                scale: Some(2),
                family,
                ..Default::default()
            })
            .unwrap();
            let mut buf = gst::Buffer::with_size(oinfo.size()).unwrap();
            {
                let b = buf.get_mut().unwrap();
                let mut f = gst_video::VideoFrameRef::from_buffer_ref_writable(b, &oinfo).unwrap();
                let st = strides(&f);
                let [p0, p1, p2, _] = f.planes_data_mut();
                let mut dst = FrameMut {
                    format: pixel_format(format),
                    width: 2 * w as usize,
                    height: 2 * h as usize,
                    planes: [p0, p1, p2],
                    strides: st,
                    colorimetry,
                };
                codec.upscale(&src, &mut dst).unwrap();
            }
            buf.map_readable().unwrap().as_slice().to_vec()
        };
        let other = if family == Family::Luma {
            Family::Rgb
        } else {
            Family::Luma
        };
        let got = out.map_readable().unwrap().as_slice().to_vec();
        assert!(
            got == run(family),
            "{format:?}: element output is not the {family:?} model's"
        );
        assert!(
            got != run(other),
            "{format:?}: the {other:?} model gives the same output"
        );
    }
}
