//! The `nawqsr` element: real-time super-resolution of raw video with the NAWQ-SR
//! codec. The element is thin, split by what each part does (as gst-plugins-rs
//! elements are): `imp.rs` the element shell (properties, pads, BaseTransform
//! methods), `caps.rs` caps mapping, `controller.rs` which codec runs,
//! `transform.rs` one frame through it, `telemetry.rs` latency and stats,
//! `qos.rs` the precision-ladder policy; all pixel work is in `nawqsr_codec`.
use gst::glib;
use gst::prelude::*;
use nawqsr_codec::runtime::Mode;

mod caps;
mod controller;
pub mod deadline;
mod imp;
pub mod qos;
mod telemetry;
mod transform;

glib::wrapper! {
    pub struct Nawqsr(ObjectSubclass<imp::Nawqsr>) @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

/// The `mode` property: the precision plan the codec runs (§4.1–4.2), or plain
/// bicubic. Under sustained QoS lateness the element steps to faster modes, never
/// above this one.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstNawqsrMode")]
pub enum NawqsrMode {
    #[default]
    #[enum_value(
        name = "Hybrid: the schedule's per-layer INT8/A16W8 plan with DRE",
        nick = "hybrid"
    )]
    Hybrid = 0,
    #[enum_value(name = "Int8: every layer on the INT8 unit", nick = "int8")]
    Int8 = 1,
    #[enum_value(name = "A16w8: every layer on the A16W8 unit", nick = "a16w8")]
    A16w8 = 2,
    #[enum_value(name = "Fp32: the original float model (slow)", nick = "fp32")]
    Fp32 = 3,
    #[enum_value(
        name = "Bicubic: no network, MATLAB-compatible bicubic",
        nick = "bicubic"
    )]
    Bicubic = 4,
}

impl From<NawqsrMode> for Mode {
    fn from(m: NawqsrMode) -> Mode {
        match m {
            NawqsrMode::Hybrid => Mode::Hybrid,
            NawqsrMode::Int8 => Mode::Int8,
            NawqsrMode::A16w8 => Mode::A16w8,
            NawqsrMode::Fp32 => Mode::Fp32,
            NawqsrMode::Bicubic => Mode::Bicubic,
        }
    }
}

/// The `reuse` property: temporal reuse (issue 18, NEMO without its lossy
/// anchors). An output patch whose receptive low-resolution pixels are
/// bit-identical (exact) or within `reuse-threshold` (tolerant) to the
/// previous frame's is taken from that frame.
#[derive(Debug, Eq, PartialEq, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstNawqsrReuse")]
pub enum NawqsrReuse {
    #[enum_value(name = "Off: compute every patch of every frame", nick = "off")]
    Off = 0,
    #[default]
    #[enum_value(
        name = "Exact: reuse patches whose inputs are bit-identical (output unchanged)",
        nick = "exact"
    )]
    Exact = 1,
    #[enum_value(
        name = "Tolerant: reuse patches whose inputs moved by at most reuse-threshold (output changes slightly)",
        nick = "tolerant"
    )]
    Tolerant = 2,
}

/// The `routing` property: difficulty routing (issue 18 item 4, MobiSR).
#[derive(Debug, Eq, PartialEq, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstNawqsrRouting")]
pub enum NawqsrRouting {
    #[default]
    #[enum_value(name = "Off: every patch through the network", nick = "off")]
    Off = 0,
    #[enum_value(
        name = "On: easy patches (under the schedule's calibrated threshold) take bicubic",
        nick = "on"
    )]
    On = 1,
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "nawqsr",
        gst::Rank::NONE,
        Nawqsr::static_type(),
    )
}
