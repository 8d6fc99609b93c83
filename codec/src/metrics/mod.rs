//! SR evaluation protocol (see ../shared/README.md). Being written by the metrics work.
pub mod imresize;
