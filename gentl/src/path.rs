//! How the card's frames reach the consumer's announced buffers: [`BufferPath`], the one
//! interface the data stream fills buffers through, and [`CopyPath`], its interim
//! implementation.
//!
//! Zero copy into consumer-announced buffers needs the driver to attach one region per
//! announced buffer, which it cannot yet (one region per stream). Until it can,
//! [`CopyPath`] attaches one region of its own (`PayloadSize` frames in a buffer the
//! library allocates) and copies each completed frame into the next queued announced
//! buffer: one copy per delivered frame, counted (`STREAM_INFO_CUSTOM_ID`), done in one
//! function ([`copy_frame`]). The zero-copy implementation will queue each announced
//! buffer's own region on the card in [`BufferPath::start`] and report which one filled
//! in [`BufferPath::next`]; the data stream does not change.

use crate::abi::*;
use crate::error::{fail, Failure, Result};
use crate::remote::{Attachment, Image};
use fgrab::{Buffer, Card, FrameStatus, Geometry, OwnedFrame, SharedStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A queued announced buffer the path may fill.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The buffer's key in the data stream.
    pub key: usize,
    /// Its first byte.
    pub base: *mut u8,
    /// Its size.
    pub size: usize,
}

/// What a filled buffer holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Filled {
    /// Bytes of frame data written.
    pub size_filled: usize,
    /// The card's sequence number: gaps are frames dropped (by the card, or by the
    /// producer when no buffer was queued).
    pub frame_id: u64,
    /// End of frame, `CLOCK_MONOTONIC` nanoseconds.
    pub timestamp_ns: u64,
    /// Short, failed, or cut to the buffer's size.
    pub incomplete: bool,
    /// The frame was larger than the buffer.
    pub larger_than_buffer: bool,
}

/// Why [`BufferPath::next`] returned no buffer.
#[derive(Debug)]
pub enum Missed {
    /// The timeout passed.
    Timeout,
    /// [`BufferPath::cancel`] ended the wait.
    Canceled,
    /// Acquisition is not running (and every frame filled before the stop was delivered).
    Stopped,
    /// The card or the library failed.
    Failed(Failure),
}

/// Where [`BufferPath::next`] takes queued buffers from: the data stream's input pool.
pub trait Targets {
    /// Takes the next queued buffer out of the input pool, if there is one.
    fn take(&self) -> Option<Target>;
}

/// How frames reach announced buffers (see the module's documentation).
pub trait BufferPath: Send + Sync + std::fmt::Debug {
    /// Prepares the card for `image` frames with `buffers` announced buffers and starts it.
    fn start(&self, image: &Image, buffers: usize) -> Result<()>;

    /// Stops the card. Frames it filled before stay deliverable unless `discard`.
    fn stop(&self, discard: bool) -> Result<()>;

    /// Waits up to `timeout` (forever with `None`) for the next frame and delivers it into a
    /// buffer from `targets`: frames that find no queued buffer are dropped (underruns,
    /// counted by the caller through `underrun`).
    fn next(
        &self,
        timeout: Option<Duration>,
        targets: &dyn Targets,
        underrun: &dyn Fn(),
    ) -> std::result::Result<(usize, Filled), Missed>;

    /// Ends the wait in [`Self::next`] in progress, or the next one.
    fn cancel(&self);

    /// Frames copied so far (0 for a zero-copy path).
    fn copies(&self) -> u64;
}

/// The interim path: one library-owned region, a copy per frame. The region is attached
/// on a file of its own through the device's [`Attachment`], so that while it is attached
/// the camera's writes go through that file (see `remote.rs`).
#[derive(Debug)]
pub struct CopyPath {
    node: PathBuf,
    attachment: Arc<Attachment>,
    copies: AtomicU64,
}

impl CopyPath {
    /// A path for the card at `node`, attaching through the device's `attachment`.
    pub fn new(node: PathBuf, attachment: Arc<Attachment>) -> Self {
        Self {
            node,
            attachment,
            copies: AtomicU64::new(0),
        }
    }

    fn wait(
        stream: &SharedStream<'static>,
        timeout: Option<Duration>,
        targets: &dyn Targets,
        underrun: &dyn Fn(),
        copies: &AtomicU64,
    ) -> std::result::Result<(usize, Filled), Missed> {
        let deadline = timeout.map(|timeout| Instant::now() + timeout);
        loop {
            let left = deadline.map(|deadline| deadline.saturating_duration_since(Instant::now()));
            let frame = match stream.next_frame(left) {
                Ok(frame) => frame,
                Err(fgrab::Error::Timeout { .. }) => return Err(Missed::Timeout),
                Err(fgrab::Error::Canceled) => return Err(Missed::Canceled),
                Err(fgrab::Error::Stopped) => return Err(Missed::Stopped),
                Err(error) => return Err(Missed::Failed(error.into())),
            };
            match targets.take() {
                Some(target) => {
                    let filled = copy_frame(&frame, target);
                    copies.fetch_add(1, Ordering::Relaxed);
                    return Ok((target.key, filled));
                }
                // No buffer queued: the frame is dropped, and its sequence number is the
                // gap the consumer sees in FRAMEID.
                None => underrun(),
            }
        }
    }
}

/// Frames of the library's region: enough to keep the card busy while one is copied.
const REGION_FRAMES: usize = 4;

impl BufferPath for CopyPath {
    fn start(&self, image: &Image, buffers: usize) -> Result<()> {
        let frame_bytes = image.payload_size;
        if frame_bytes == 0 {
            return fail(GC_ERR_INVALID_PARAMETER, "PayloadSize is 0");
        }
        // CAST: at most REGION_FRAMES.
        let count = buffers.clamp(2, REGION_FRAMES) as u32;
        // A region left from an earlier acquisition is detached first.
        self.attachment.attach(|| {
            let card = Card::open(&self.node)?;
            let buffer = Buffer::allocate(frame_bytes as usize * count as usize)?;
            let stream = card
                .attach(buffer, Geometry::new(frame_bytes, count))
                .map_err(|failed| Failure::from(failed.error))?
                .into_shared()?;
            // Dropped on failure: the region ends with its file.
            stream.start()?;
            Ok(stream)
        })?;
        Ok(())
    }

    fn stop(&self, discard: bool) -> Result<()> {
        let Some(stream) = self.attachment.stream() else {
            return Ok(());
        };
        let result = match stream.stop() {
            Ok(()) | Err(fgrab::Error::Command { .. }) => Ok(()),
            Err(error) => Err(error.into()),
        };
        drop(stream);
        if discard {
            // A wait still holding the stream detaches it as it lets go.
            self.attachment.retire();
        }
        result
    }

    fn next(
        &self,
        timeout: Option<Duration>,
        targets: &dyn Targets,
        underrun: &dyn Fn(),
    ) -> std::result::Result<(usize, Filled), Missed> {
        let Some(stream) = self.attachment.stream() else {
            return Err(Missed::Stopped);
        };
        let result = Self::wait(&stream, timeout, targets, underrun, &self.copies);
        drop(stream);
        // Acquisition may have ended during the wait: the last holder detaches.
        self.attachment.reap();
        result
    }

    fn cancel(&self) {
        if let Some(canceler) = self.attachment.canceler() {
            canceler.cancel();
        }
    }

    fn copies(&self) -> u64 {
        self.copies.load(Ordering::Relaxed)
    }
}

/// The interim path's one copy: `frame` into the announced buffer `target` (the frame goes
/// back to the card when the handle drops, after this returns).
fn copy_frame(frame: &OwnedFrame<'_>, target: Target) -> Filled {
    let bytes: &[u8] = frame;
    let length = bytes.len().min(target.size);
    // SAFETY: `target` is a queued announced buffer, `size` bytes at `base`, that the
    // consumer promised to keep allocated and leave alone while queued (GenTL's contract
    // for DSAnnounceBuffer), and that the data stream handed to this fill alone; the frame
    // is the library's own memory, so the two do not overlap.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), target.base, length) };
    let larger = bytes.len() > target.size;
    Filled {
        size_filled: length,
        frame_id: frame.sequence(),
        timestamp_ns: frame.timestamp_ns(),
        incomplete: frame.status() != FrameStatus::Complete || larger,
        larger_than_buffer: larger,
    }
}
