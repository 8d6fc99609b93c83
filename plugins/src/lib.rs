//! GStreamer plugin `nawqsr` (element added in its own module).
