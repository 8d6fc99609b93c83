//! Recycled band buffers. A conv band's output is written whole by the kernel
//! (every pixel of its rows, every channel: `pixel_stride == out_c`), so a
//! buffer from an earlier band needs no zeroing; a fresh `vec![0; n]` per band
//! spent ~5 % of a luma ×2 frame's worker CPU in `memset` (perf, element
//! pipeline, Zen 4). Buffers come back when `FrameTiles` releases a chunk that
//! nobody needs any more. A recycled buffer holds initialised (stale) values,
//! never uninitialised memory, so this is plain safe code; the bit-exactness
//! tests (patches = whole frame, every level = scalar) would see any stale
//! value a kernel failed to overwrite.

use std::sync::Mutex;

/// Buffers kept per element type: enough for the bands in flight of two frames
/// of a small net, bounded so the pool adds a few MB at most to peak RSS.
const KEEP: usize = 16;

/// An element type with a pool of its own.
pub(crate) trait Recycled: Copy + Default + Sized + 'static {
    fn pool() -> &'static Mutex<Vec<Vec<Self>>>;
}

macro_rules! recycled {
    ($t:ty) => {
        impl Recycled for $t {
            fn pool() -> &'static Mutex<Vec<Vec<$t>>> {
                static POOL: Mutex<Vec<Vec<$t>>> = Mutex::new(Vec::new());
                &POOL
            }
        }
    };
}
recycled!(u8);
recycled!(u16);
recycled!(f32);

/// A buffer of `n` initialised elements whose values are unspecified (stale or
/// zero): for outputs the caller overwrites in full.
pub(crate) fn take<T: Recycled>(n: usize) -> Vec<T> {
    let found = {
        let mut pool = T::pool().lock().unwrap_or_else(|e| e.into_inner());
        pool.iter()
            .position(|v| v.capacity() >= n)
            .map(|i| pool.swap_remove(i))
    };
    match found {
        Some(mut v) => {
            // Only a shorter buffer's tail is written here; the rest keeps its values.
            v.resize(n, T::default());
            v
        }
        None => vec![T::default(); n],
    }
}

/// Returns a buffer to its pool (dropped when the pool is full).
pub(crate) fn give<T: Recycled>(v: Vec<T>) {
    if v.capacity() == 0 {
        return;
    }
    let mut pool = T::pool().lock().unwrap_or_else(|e| e.into_inner());
    if pool.len() < KEEP {
        pool.push(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_with_the_length_asked() {
        // Distinct sizes from any other test's, so a parallel test cannot take these.
        let v: Vec<u16> = vec![7; 1_234_567];
        let ptr = v.as_ptr();
        give(v);
        let w = take::<u16>(1_000_001);
        assert_eq!(w.len(), 1_000_001);
        assert_eq!(w.as_ptr(), ptr, "the given buffer is reused");
        give(w);
        let x = take::<u16>(1_234_569);
        assert_eq!(x.len(), 1_234_569);
        assert!(x[1_234_567..].iter().all(|&e| e == 0), "a grown tail is zero");
    }
}
