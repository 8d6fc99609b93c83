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

/// The freshest `libgstnawqsr.so` next to the binaries in `bin_dir`
/// (target/release). `cargo test` builds the plugin's cdylib but leaves it in
/// deps/; only `cargo build` copies it up to target/release/. So the copy up
/// there may be stale or absent while deps/ holds the one built from these
/// sources. `None`: neither exists.
#[allow(dead_code)]
pub fn fresh_plugin(bin_dir: &std::path::Path) -> Option<PathBuf> {
    let mtime = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let uplifted = bin_dir.join("libgstnawqsr.so");
    let fresh = bin_dir.join("deps/libgstnawqsr.so");
    match (mtime(&uplifted), mtime(&fresh)) {
        (None, None) => None,
        (Some(u), Some(f)) if f > u => Some(fresh),
        (None, Some(_)) => Some(fresh),
        (Some(_), _) => Some(uplifted),
    }
}
