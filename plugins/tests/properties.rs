//! Property errors of the `nawqsr` element (issue 20): each bad value gives a
//! GStreamer error message that names the property, the file and what was
//! expected; and pixel-aspect-ratio propagation (output PAR = input PAR: the
//! element scales both axes by the same factor).
use std::path::{Path, PathBuf};
use std::sync::Once;

use gst::prelude::*;
use gst_check::Harness;

#[macro_use]
#[path = "../../tests/support/mod.rs"]
mod support;

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstnawqsr::plugin_register_static().expect("nawqsr plugin registers");
    });
}

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Starts the element alone and returns the text of the error it posts (and
/// checks that it is one line of text, with its property and debug detail).
fn start_error(props: &[(&str, &str)]) -> String {
    init();
    let mut b = gst::ElementFactory::make("nawqsr");
    for (k, v) in props {
        b = b.property_from_str(k, v);
    }
    let e = b.build().unwrap();
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
    let text = err.error().to_string();
    assert_eq!(text.lines().count(), 1, "one line: {text}");
    let _ = e.set_state(gst::State::Null);
    text
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p.to_str().unwrap().to_owned()
}

#[test]
fn nonexistent_schedule_names_schedule_and_the_file() {
    let text = start_error(&[("schedule", "/nonexistent/plan.json")]);
    assert!(
        text.contains("property schedule") && text.contains("/nonexistent/plan.json"),
        "{text}"
    );
}

#[test]
fn malformed_schedule_names_schedule_the_file_and_what_was_expected() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "bad.json", b"{\"version\": 1, \"layers\": [");
    let text = start_error(&[("schedule", &p)]);
    assert!(
        text.contains("property schedule")
            && text.contains("bad.json")
            && text.contains("expected"),
        "{text}"
    );
}

#[test]
fn a_schedule_for_another_model_names_the_field() {
    // The ×2 model's schedule with the ×3 model.
    let sched = root().join("schedules/nawq_x2.json");
    let text = start_error(&[("scale", "3"), ("schedule", sched.to_str().unwrap())]);
    assert!(
        text.contains("property schedule")
            && text.contains("nawq_x2.json")
            && text.contains("model.sha256")
            && text.contains("expected"),
        "{text}"
    );
}

#[test]
fn a_nan_weight_model_names_model_and_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    // The bundled ×2 model with NaNs in the middle of its weights (the file is
    // almost all raw f32 data): 8 bytes of 0xff hold at least one whole float,
    // 0xffffffff, a NaN, whatever the alignment of the tensor's data.
    let mut bytes = std::fs::read(root().join("assets/models/nawq_x2.onnx")).unwrap();
    let at = bytes.len() / 2;
    bytes[at..at + 8].fill(0xff);
    let p = write(dir.path(), "nan_x2.onnx", &bytes);
    for mode in ["int8", "fp32"] {
        let text = start_error(&[("mode", mode), ("model", &p)]);
        assert!(
            text.contains("property model")
                && text.contains("nan_x2.onnx")
                && text.contains("is NaN (expected finite weights and biases)"),
            "{mode}: {text}"
        );
    }
}

#[test]
fn hybrid_without_a_schedule_names_schedule() {
    // A model no schedule matches (a copy of the ×2 model with one weight changed
    // has another SHA-256), in hybrid mode: it needs a schedule.
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(root().join("assets/models/nawq_x2.onnx")).unwrap();
    let at = bytes.len() / 2;
    bytes[at..at + 8].fill(0x3c); // floats near 0.0115
    let p = write(dir.path(), "copy_x2.onnx", &bytes);
    let text = start_error(&[("mode", "hybrid"), ("model", &p)]);
    assert!(
        text.contains("property schedule") && text.contains("needs a schedule"),
        "{text}"
    );
}

#[test]
fn a_directory_as_model_names_model() {
    let dir = tempfile::tempdir().unwrap();
    let text = start_error(&[("mode", "int8"), ("model", dir.path().to_str().unwrap())]);
    assert!(
        text.contains("property model") && text.contains(dir.path().to_str().unwrap()),
        "{text}"
    );
}

#[test]
fn out_of_range_scale_and_threads_are_refused_by_the_property() {
    init();
    let e = gst::ElementFactory::make("nawqsr").build().unwrap();
    let spec = e.find_property("scale").unwrap();
    let spec = spec.downcast_ref::<glib::ParamSpecUInt>().unwrap();
    assert_eq!((spec.minimum(), spec.maximum()), (2, 4));
    let spec = e.find_property("threads").unwrap();
    let spec = spec.downcast_ref::<glib::ParamSpecUInt>().unwrap();
    assert_eq!((spec.minimum(), spec.maximum()), (0, 256));
    // Every blurb says what the value is and its range or unit.
    for p in e.list_properties() {
        if p.owner_type() != e.type_() {
            continue;
        }
        let blurb = p.blurb().unwrap_or_default();
        assert!(blurb.len() > 40, "{}: {blurb}", p.name());
        if p.value_type() == u32::static_type() {
            assert!(
                blurb.contains(" to ") || blurb.contains('×'),
                "{}: range in {blurb}",
                p.name()
            );
        }
    }
}

use gst::glib;

fn caps_with_par(w: i32, h: i32, par: gst::Fraction) -> gst::Caps {
    gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .field("width", w)
        .field("height", h)
        .field("framerate", gst::Fraction::new(25, 1))
        .field("pixel-aspect-ratio", par)
        .build()
}

#[test]
fn pixel_aspect_ratio_is_carried_through() {
    init();
    let e = gst::ElementFactory::make("nawqsr")
        .property_from_str("mode", "bicubic")
        .build()
        .unwrap();
    let mut h = Harness::with_element(&e, Some("sink"), Some("src"));
    let par = gst::Fraction::new(128, 117);
    h.set_src_caps(caps_with_par(16, 16, par));
    let info = gst_video::VideoInfo::from_caps(&caps_with_par(16, 16, par)).unwrap();
    let buf = gst::Buffer::with_size(info.size()).unwrap();
    h.push_and_pull(buf).unwrap();
    let out = h.sinkpad().unwrap().current_caps().unwrap();
    let s = out.structure(0).unwrap();
    assert_eq!(s.get::<i32>("width").unwrap(), 32);
    assert_eq!(s.get::<gst::Fraction>("pixel-aspect-ratio").unwrap(), par);
}

#[test]
fn a_square_pixel_request_downstream_does_not_negotiate() {
    // A uniform ×s keeps the PAR, so 128/117 in cannot become 1/1 out; the
    // element does not resample non-uniformly (put videoscale after it).
    init();
    let e = gst::ElementFactory::make("nawqsr")
        .property_from_str("mode", "bicubic")
        .build()
        .unwrap();
    let mut h = Harness::with_element(&e, Some("sink"), Some("src"));
    h.set_sink_caps(
        gst::Caps::builder("video/x-raw")
            .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
            .build(),
    );
    h.set_src_caps(caps_with_par(16, 16, gst::Fraction::new(128, 117)));
    let info =
        gst_video::VideoInfo::from_caps(&caps_with_par(16, 16, gst::Fraction::new(128, 117)))
            .unwrap();
    let r = h.push(gst::Buffer::with_size(info.size()).unwrap());
    assert_eq!(r, Err(gst::FlowError::NotNegotiated));
}

#[test]
fn foreman_mp4_keeps_its_pixel_aspect_ratio() {
    let shared = require_shared!();
    init();
    let clip = shared.join("clips/foreman_cif.mp4");
    let p = gst::parse::launch(&format!(
        "filesrc location={} ! decodebin ! videoconvert ! video/x-raw,format=I420 ! nawqsr name=sr mode=bicubic \
         ! fakesink name=sink sync=false",
        clip.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    p.set_state(gst::State::Paused).unwrap();
    p.state(gst::ClockTime::from_seconds(60)).0.unwrap();
    let sr = p.by_name("sr").unwrap();
    let par = |pad: &str| {
        sr.static_pad(pad)
            .unwrap()
            .current_caps()
            .unwrap()
            .structure(0)
            .unwrap()
            .get::<gst::Fraction>("pixel-aspect-ratio")
            .unwrap()
    };
    let (i, o) = (par("sink"), par("src"));
    p.set_state(gst::State::Null).unwrap();
    assert_eq!(i, gst::Fraction::new(128, 117), "the clip's PAR");
    assert_eq!(o, i, "output PAR = input PAR");
}
