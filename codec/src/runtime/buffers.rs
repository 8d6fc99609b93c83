//! The input frame buffer and the playback buffer of Fig. 3: bounded
//! single-producer/single-consumer rings (`ringbuf`), so memory never grows with
//! the stream's length. Backpressure: a full input buffer blocks `submit` (or makes
//! `try_submit` refuse); the dispatcher only admits a frame when the playback
//! buffer has room for everything it has in flight, so finished frames never
//! wait for space and a slow consumer stalls admission instead of growing memory.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use image::RgbImage;
use ringbuf::traits::Split;
use ringbuf::{HeapCons, HeapProd, HeapRb};

use super::frame::FrameMut;
use crate::error::Result;
use crate::tensor::Tensor;

/// Presentation timestamp and duration (nanoseconds), carried through untouched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Timestamp {
    pub pts: Option<u64>,
    pub duration: Option<u64>,
}

impl Timestamp {
    pub fn new(pts: u64, duration: u64) -> Timestamp {
        Timestamp {
            pts: Some(pts),
            duration: Some(duration),
        }
    }
}

/// An upscaled frame as the bands left the network: stitched on demand, so the
/// dispatcher never copies the HR frame.
#[derive(Clone, Debug)]
pub struct Upscaled {
    pub(crate) chunks: Vec<Arc<Tensor>>,
    /// The same bands as RGB u8, converted by the workers.
    pub(crate) rgb: Vec<Arc<Vec<u8>>>,
    pub(crate) width: usize,
    pub(crate) height: usize,
}

impl Upscaled {
    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }

    /// The same frame without its f32 bands (what temporal reuse keeps).
    pub(crate) fn rgb_only(&self) -> Upscaled {
        Upscaled {
            chunks: Vec::new(),
            rgb: self.rgb.clone(),
            width: self.width,
            height: self.height,
        }
    }

    /// The network's f32 output (unclipped), h×w×3.
    pub fn to_tensor(&self) -> Tensor {
        crate::engine::tiles::stitch(&self.chunks)
    }

    /// Clip to [0, 1], ×255, round half away from zero: the same conversion as
    /// [`Tensor::to_rgb`], band by band.
    pub fn to_rgb(&self) -> RgbImage {
        let (w, h) = (self.width(), self.height());
        let mut buf = Vec::with_capacity(w * h * 3);
        for b in &self.rgb {
            buf.extend_from_slice(b);
        }
        RgbImage::from_raw(w as u32, h as u32, buf).expect("sized h*w*3")
    }

    /// Writes the frame into `dst` (any supported format, same size).
    pub fn write_to(&self, dst: &mut FrameMut) -> Result<()> {
        let slabs: Vec<&[u8]> = self.rgb.iter().map(|b| b.as_slice()).collect();
        super::color::rgb_slabs_to_frame(&slabs, self.width, dst)
    }
}

/// A frame waiting in the input buffer.
pub(crate) struct InFrame {
    pub seq: u64,
    pub input: Tensor,
    pub ts: Timestamp,
    pub submitted: Instant,
}

/// A frame (or its error) in the playback buffer.
pub(crate) struct OutFrame {
    pub ts: Timestamp,
    pub result: Result<Upscaled>,
}

pub(crate) fn ring<T>(capacity: usize) -> (HeapProd<T>, HeapCons<T>) {
    HeapRb::new(capacity.max(1)).split()
}

/// A wake-up without lost notifications: waiters snapshot a counter before
/// checking their condition and sleep only while it is unchanged.
#[derive(Default)]
pub(crate) struct Signal {
    seq: Mutex<u64>,
    cv: Condvar,
}

impl Signal {
    pub fn notify(&self) {
        let mut g = self.seq.lock().unwrap_or_else(|p| p.into_inner());
        *g = g.wrapping_add(1);
        self.cv.notify_all();
    }

    /// Blocks until `check` returns `Some`.
    pub fn wait_for<T>(&self, mut check: impl FnMut() -> Option<T>) -> T {
        loop {
            let seen = *self.seq.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(t) = check() {
                return t;
            }
            let g = self.seq.lock().unwrap_or_else(|p| p.into_inner());
            if *g == seen {
                // The timeout is a safety net only; notify() is what wakes us.
                drop(
                    self.cv
                        .wait_timeout(g, Duration::from_millis(200))
                        .unwrap_or_else(|p| p.into_inner()),
                );
            }
        }
    }
}

/// State a stream (`stream.rs`) shares with the dispatcher: the signals both wait on. It lives
/// here, below both, so the dispatcher never imports the stream API built on top of it.
#[derive(Default)]
pub(crate) struct StreamShared {
    /// Input buffer has space (dispatcher → submit).
    pub space: Signal,
    /// Playback buffer has a frame (dispatcher → receive).
    pub avail: Signal,
    closed: AtomicBool,
}

impl StreamShared {
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    pub fn wake_all(&self) {
        self.space.notify();
        self.avail.notify();
    }
}
