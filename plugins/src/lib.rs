//! GStreamer plugin `nawqsr`: the `nawqsr` element upscales raw video ×2, ×3 or ×4
//! with the NAWQ-SR neural image codec (`nawqsr-codec`).
//!
//! ```text
//! gst-launch-1.0 filesrc location=clip.mp4 ! decodebin ! nawqsr mode=bicubic ! videoconvert ! autovideosink
//! ```
use gst::glib;

mod nawqsr;

pub use nawqsr::{Nawqsr, NawqsrMode, qos};

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    nawqsr::register(plugin)
}

gst::plugin_define!(
    nawqsr,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MIT/X11",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    env!("BUILD_REL_DATE")
);
