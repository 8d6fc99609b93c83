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

/// Bytes kept per element type: the bands in flight of a small net at 960×540
/// (a 16-row band of 16 channels is 245 KB), bounded so that the pool adds at
/// most a few MB to peak RSS at any frame size (the 1080p → 4K element's peak
/// is ~95 MB without it; with 16 buffers of any size it was 102).
const KEEP_BYTES: usize = 4 << 20;

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
    take_from(T::pool(), n)
}

/// Returns a buffer to its pool (dropped when the pool would pass `KEEP_BYTES`).
pub(crate) fn give<T: Recycled>(v: Vec<T>) {
    give_to(T::pool(), v)
}

fn take_from<T: Copy + Default>(pool: &Mutex<Vec<Vec<T>>>, n: usize) -> Vec<T> {
    let found = {
        let mut pool = pool.lock().unwrap_or_else(|e| e.into_inner());
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

fn give_to<T>(pool: &Mutex<Vec<Vec<T>>>, v: Vec<T>) {
    if v.capacity() == 0 {
        return;
    }
    let mut pool = pool.lock().unwrap_or_else(|e| e.into_inner());
    let held: usize = pool.iter().map(Vec::capacity).sum();
    if (held + v.capacity()) * size_of::<T>() <= KEEP_BYTES {
        pool.push(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_with_the_length_asked() {
        // A pool of the test's own (the global ones are shared with parallel tests).
        let pool = Mutex::new(Vec::new());
        let v: Vec<u16> = vec![7; 1000];
        let (ptr, cap) = (v.as_ptr(), v.capacity());
        give_to(&pool, v);
        let w = take_from(&pool, 600);
        assert_eq!(w.len(), 600);
        assert_eq!(w.as_ptr(), ptr, "the given buffer is reused");
        give_to(&pool, w);
        let x = take_from(&pool, cap);
        assert_eq!((x.len(), x.as_ptr()), (cap, ptr));
        assert!(x[600..].iter().all(|&e| e == 0), "a grown tail is zero");
        assert!(
            take_from(&pool, 10).iter().all(|&e| e == 0),
            "empty pool: fresh"
        );
        give_to(&pool, x);
        give_to(&pool, vec![1u16; KEEP_BYTES / 2]);
        assert_eq!(
            pool.lock().unwrap().len(),
            1,
            "past the byte bound: dropped"
        );
    }
}
