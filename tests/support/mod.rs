//! Helpers shared by the end-to-end tests of the player crate (`tests/*.rs`) and
//! of the element (`plugins/tests/nawqsr.rs`, through `#[path]`): where the
//! shared data is, and the one-line skip when it is absent.
use std::path::PathBuf;

/// `../shared` beside the project, when it holds the recorded clips.
/// (Both crates sit one level below the project, so one relative path serves.)
pub fn shared() -> Option<PathBuf> {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared"));
    p.join("clips").is_dir().then_some(p)
}

/// `let shared = require_shared!();` — the `../shared` path, or a skip notice
/// and an early return from the test.
macro_rules! require_shared {
    () => {
        match $crate::support::shared() {
            Some(p) => p,
            None => {
                eprintln!("skipping: ../shared not found (clips and models)");
                return;
            }
        }
    };
}
