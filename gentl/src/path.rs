//! How the card's frames reach the consumer's announced buffers: [`BufferPath`], the one
//! interface the data stream fills buffers through. Its implementation is
//! [`crate::zero_copy::ZeroCopyPath`]: each announced buffer is a region of the card's
//! stream and the card writes each frame straight into the buffer it delivers.
//!
//! The data stream keeps GenTL's pools (announced, input pool, output queue, delivered) and
//! tells the path what happens to buffers; the path keeps the card's side (which buffer is
//! which region, which one the card holds).

use crate::error::{Failure, Result};
use crate::remote::Image;
use std::time::Duration;

/// An announced buffer.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The buffer's key in the data stream.
    pub key: usize,
    /// Its first byte.
    pub base: *mut u8,
    /// Its size.
    pub size: usize,
}

// SAFETY: a target names memory the consumer handed to the producer (GenTL's contract for
// announced buffers); who writes it when is the data stream's and the path's bookkeeping,
// not the thread's.
unsafe impl Send for Target {}

/// What a filled buffer holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Filled {
    /// Bytes of frame data written.
    pub size_filled: usize,
    /// The card's sequence number: gaps are frames the card dropped (no buffer was
    /// queued on it in time).
    pub frame_id: u64,
    /// End of frame, `CLOCK_MONOTONIC` nanoseconds.
    pub timestamp_ns: u64,
    /// Short or failed.
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

/// The data stream's pools, as the path sees them while it waits (without the stream's
/// lock).
pub trait Targets {
    /// Takes the next queued buffer out of the input pool, if there is one (a path that
    /// chooses the buffer itself).
    fn take(&self) -> Option<Target>;

    /// Takes buffer `key`, which the card filled, out of the input pool: `false` if it is
    /// no longer there (flushed or revoked meanwhile), and then the fill is not delivered.
    fn claim(&self, key: usize) -> bool;
}

/// How frames reach announced buffers (see the module's documentation).
///
/// Lock order: the data stream's lock, then the path's own locks. The data stream calls
/// every method but [`Self::next`] and [`Self::cancel`] under its lock (so that pools and
/// card agree); [`Self::next`] runs without it and takes it only through [`Targets`], with
/// none of the path's locks held.
pub trait BufferPath: Send + Sync + std::fmt::Debug {
    /// A buffer was announced (`acquiring`: while acquisition runs).
    ///
    /// # Errors
    ///
    /// The GenTL error that refuses the announce.
    fn announce(&self, _target: Target, _acquiring: bool) -> Result<()> {
        Ok(())
    }

    /// Buffer `key` is revoked: once this returns, the card never writes it again.
    ///
    /// # Errors
    ///
    /// When that cannot be confirmed: the data stream then never frees or gives back the
    /// memory as free (it is leaked).
    fn revoke(&self, _key: usize) -> Result<()> {
        Ok(())
    }

    /// Buffer `key` joined the input pool while acquisition runs.
    ///
    /// # Errors
    ///
    /// If the card refuses it.
    fn queue(&self, _key: usize) -> Result<()> {
        Ok(())
    }

    /// Prepares the card for `image` frames into the announced `buffers`, gives it those
    /// of them in the input pool (`queued`, in order), and starts it.
    fn start(&self, image: &Image, buffers: &[Target], queued: &[usize]) -> Result<()>;

    /// Stops the card. Frames it filled before stay deliverable unless `discard`.
    fn stop(&self, discard: bool) -> Result<()>;

    /// Waits up to `timeout` (forever with `None`) for the next filled buffer; frames the
    /// card dropped are reported through `underrun` (their count, once per gap).
    fn next(
        &self,
        timeout: Option<Duration>,
        targets: &dyn Targets,
        underrun: &dyn Fn(u64),
    ) -> std::result::Result<(usize, Filled), Missed>;

    /// Ends the wait in [`Self::next`] in progress, or the next one.
    fn cancel(&self);

    /// The data stream closes: stop the card, let every buffer go, give the card back.
    ///
    /// # Errors
    ///
    /// When the card's end of some buffer cannot be confirmed (see [`Self::revoke`]).
    fn close(&self) -> Result<()> {
        self.stop(true)
    }

    /// Frames copied so far (`STREAM_INFO_CUSTOM_ID`): 0 on a zero-copy path, which the
    /// tests assert.
    fn copies(&self) -> u64;
}
