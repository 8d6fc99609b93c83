//! Streaming interface of the codec (Fig. 3: input frame buffer → codec →
//! playback buffer): `submit` frames with their timestamps, `receive` upscaled
//! frames in the same order, `eos`/`flush` to drain at the end of the stream.
//!
//! Both buffers are bounded rings (`buffers`). `submit` blocks while the input
//! buffer is full; `try_submit` refuses instead. The dispatcher admits a frame only
//! when the playback buffer has room for all frames in flight, so a consumer that
//! is slow to `receive` throttles the whole pipeline back to the producer — memory
//! is bounded by the two capacities plus `max_in_flight` frames, whatever the
//! stream's length. `submit` and `receive` take `&self` and may run on different
//! threads.
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use image::RgbImage;
use ringbuf::traits::{Consumer, Producer};
use ringbuf::{HeapCons, HeapProd};

use super::buffers::{InFrame, OutFrame, StreamShared, Timestamp, Upscaled, ring};
use super::dispatcher::{Ctl, Runtime, StreamLink};
use super::frame::FrameRef;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Buffer sizes of a stream, in frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamConfig {
    pub input_capacity: usize,
    pub playback_capacity: usize,
}

impl Default for StreamConfig {
    fn default() -> Self {
        // Enough to keep two frames in flight and absorb consumer jitter.
        StreamConfig {
            input_capacity: 4,
            playback_capacity: 4,
        }
    }
}

/// One upscaled frame with the timestamp it was submitted with.
#[derive(Clone, Debug)]
pub struct StreamFrame {
    /// Position in the stream (0, 1, 2, …).
    pub seq: u64,
    pub ts: Timestamp,
    pub frame: Upscaled,
}

/// A stream through one codec (see the module docs).
pub struct Stream<'c> {
    runtime: &'c Runtime,
    scale: usize,
    input: Mutex<(HeapProd<InFrame>, u64)>,
    playback: Mutex<HeapCons<OutFrame>>,
    shared: Arc<StreamShared>,
    submitted: AtomicU64,
    received: AtomicU64,
    eos: AtomicBool,
    capacity: StreamConfig,
}

fn dead() -> Error {
    Error::Invalid("codec runtime has stopped (dispatcher exited)".into())
}

impl<'c> Stream<'c> {
    pub(crate) fn open(
        runtime: &'c Runtime,
        scale: usize,
        cfg: StreamConfig,
    ) -> Result<Stream<'c>> {
        let cfg = StreamConfig {
            input_capacity: cfg.input_capacity.max(1),
            playback_capacity: cfg.playback_capacity.max(1),
        };
        let (in_prod, in_cons) = ring(cfg.input_capacity);
        let (out_prod, out_cons) = ring(cfg.playback_capacity);
        let shared = Arc::new(StreamShared::default());
        runtime.send(Ctl::Open(StreamLink {
            input: in_cons,
            playback: out_prod,
            shared: shared.clone(),
        }))?;
        Ok(Stream {
            runtime,
            scale,
            input: Mutex::new((in_prod, 0)),
            playback: Mutex::new(out_cons),
            shared,
            submitted: AtomicU64::new(0),
            received: AtomicU64::new(0),
            eos: AtomicBool::new(false),
            capacity: cfg,
        })
    }

    pub fn config(&self) -> StreamConfig {
        self.capacity
    }

    pub fn scale(&self) -> usize {
        self.scale
    }

    fn alive(&self) -> bool {
        self.runtime.shared.alive.load(Ordering::SeqCst)
    }

    /// Queues a frame (RGB, RGBx, BGRx, I420 or NV12, with strides); blocks
    /// while the input buffer is full.
    pub fn submit(&self, frame: &FrameRef, ts: Timestamp) -> Result<()> {
        let rgb = super::color::frame_to_rgb(frame)?;
        self.submit_rgb(&rgb, ts)
    }

    pub fn submit_rgb(&self, img: &RgbImage, ts: Timestamp) -> Result<()> {
        self.push(Tensor::from_rgb(img), ts, true).map(|_| ())
    }

    /// Like [`Stream::submit`], but returns `false` (and counts a rejected frame)
    /// instead of blocking when the input buffer is full.
    pub fn try_submit(&self, frame: &FrameRef, ts: Timestamp) -> Result<bool> {
        let rgb = super::color::frame_to_rgb(frame)?;
        self.push(Tensor::from_rgb(&rgb), ts, false)
    }

    fn push(&self, input: Tensor, ts: Timestamp, block: bool) -> Result<bool> {
        if self.eos.load(Ordering::SeqCst) {
            return Err(Error::Invalid("frame submitted after end of stream".into()));
        }
        let mut pending = Some(input);
        let submitted = Instant::now();
        let r = self.shared.space.wait_for(|| {
            if !self.alive() {
                return Some(Err(dead()));
            }
            let mut g = self.input.lock().unwrap_or_else(|p| p.into_inner());
            let seq = g.1;
            let f = InFrame {
                seq,
                input: pending.take().expect("frame not yet queued"),
                ts,
                submitted,
            };
            match g.0.try_push(f) {
                Ok(()) => {
                    g.1 += 1;
                    Some(Ok(true))
                }
                Err(f) => {
                    pending = Some(f.input);
                    (!block).then_some(Ok(false))
                }
            }
        });
        match r {
            Ok(true) => {
                self.submitted.fetch_add(1, Ordering::SeqCst);
                self.runtime.wake();
            }
            Ok(false) => self.runtime.shared.telemetry.rejected(),
            Err(_) => {}
        }
        r
    }

    /// Marks the end of the stream: [`Stream::receive`] returns `None` once every
    /// submitted frame is out.
    pub fn eos(&self) {
        self.eos.store(true, Ordering::SeqCst);
        self.shared.avail.notify();
    }

    /// The next frame in submission order; blocks until it is ready. `Ok(None)`
    /// after end of stream once everything is drained; `Err` for a frame that
    /// failed (a worker error or panic) or if the runtime stopped.
    pub fn receive(&self) -> Result<Option<StreamFrame>> {
        self.shared.avail.wait_for(|| self.poll())
    }

    /// Like [`Stream::receive`], but returns `Ok(None)` at once when no frame is ready.
    pub fn try_receive(&self) -> Result<Option<StreamFrame>> {
        self.poll().unwrap_or(Ok(None))
    }

    fn poll(&self) -> Option<Result<Option<StreamFrame>>> {
        let popped = self
            .playback
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .try_pop();
        if let Some(o) = popped {
            let seq = self.received.fetch_add(1, Ordering::SeqCst);
            // Room in the playback buffer: the dispatcher may admit another frame.
            self.runtime.wake();
            return Some(o.result.map(|frame| {
                Some(StreamFrame {
                    seq,
                    ts: o.ts,
                    frame,
                })
            }));
        }
        if self.eos.load(Ordering::SeqCst)
            && self.received.load(Ordering::SeqCst) == self.submitted.load(Ordering::SeqCst)
        {
            return Some(Ok(None));
        }
        if !self.alive() {
            return Some(Err(dead()));
        }
        None
    }

    /// End of stream, then every remaining frame (errors included) in order.
    pub fn flush(&self) -> Vec<Result<StreamFrame>> {
        self.eos();
        let mut out = Vec::new();
        loop {
            match self.receive() {
                Ok(Some(f)) => out.push(Ok(f)),
                Ok(None) => return out,
                Err(e) => {
                    let stop = !self.alive();
                    out.push(Err(e));
                    if stop {
                        return out;
                    }
                }
            }
        }
    }

    /// Frames submitted and not yet received.
    pub fn pending(&self) -> u64 {
        self.submitted.load(Ordering::SeqCst) - self.received.load(Ordering::SeqCst)
    }
}

impl Drop for Stream<'_> {
    fn drop(&mut self) {
        self.shared.close();
        self.runtime.wake();
    }
}
