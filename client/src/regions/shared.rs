//! [`SharedRegions`]: a [`Regions`] stream shared between threads, as a GenTL producer
//! needs it (the consumer's acquisition thread waits in `EventGetData` while its
//! application thread queues, revokes and stops).
//!
//! The design is [`crate::SharedStream`]'s: one lock (the [`Regions`]') guards the ring and
//! the frame states and is held only for bookkeeping and for the driver's answers to
//! commands, never while a thread waits for a frame. A waiting thread sleeps in `poll()` on
//! an eventfd registered with the ring (the kernel signals it for every completion posted)
//! and on the canceler's eventfd, so a queue, a revoke or a stop from another thread never
//! waits behind it. Whichever thread reaps a frame's completion books it in the shared
//! ready queue; the eventfd stays readable until a waiter looked at that queue.

use super::{RegionFrame, RegionId, Regions, State};
use crate::shared::{drain, eventfd, signal, sleep, time_left, CancelState};
use crate::stream::Geometry;
use crate::{Buffer, Canceler, Card, Error, Features, Result};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

struct Inner<'a> {
    /// The stream's camera features, outside its lock (a trigger or `AcquisitionStart`
    /// from one thread while another waits). Declared first: dropped before the file.
    features: Arc<Features>,
    regions: Mutex<Regions<'a>>,
    /// Registered with the ring: readable once the kernel posted a completion.
    completions: OwnedFd,
    cancel: Arc<CancelState>,
}

/// A [`Regions`] stream usable from several threads at once (`Send + Sync`; clone it or
/// share a reference): attach, queue, wait with a timeout, detach one region while the
/// others stream, stop, start and end, each from any thread. Made by
/// [`Card::into_shared_regions`] or [`Regions::into_shared`].
///
/// Frames are named by region and index ([`RegionFrame`]) rather than owned by handles: a
/// frame handed out by [`Self::next_frame`] stays away from the card until
/// [`Self::queue`] gives it back, so its bytes can be read in place (a GenTL buffer
/// delivered to the consumer).
///
/// The regions end (and their buffers are given back or freed) at [`Self::end`] or when the
/// last clone is gone.
#[derive(Clone)]
pub struct SharedRegions<'a> {
    inner: Arc<Inner<'a>>,
}

impl std::fmt::Debug for SharedRegions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedRegions")
            .field("regions", &*self.lock())
            .finish_non_exhaustive()
    }
}

impl<'a> Regions<'a> {
    /// Makes the stream shareable between threads.
    ///
    /// # Errors
    ///
    /// [`Error::Ring`] if the eventfds cannot be created or registered.
    pub fn into_shared(mut self) -> Result<SharedRegions<'a>> {
        let completions = eventfd()?;
        self.ring.register_eventfd(completions.as_raw_fd())?;
        let features = Arc::new(Features::new(self.ring.fd()));
        Ok(SharedRegions {
            inner: Arc::new(Inner {
                features,
                regions: Mutex::new(self),
                completions,
                cancel: Arc::new(CancelState::new()?),
            }),
        })
    }
}

impl Card {
    /// Turns the card into a stream of several regions shared between threads, none
    /// attached yet (see [`SharedRegions`]).
    ///
    /// # Errors
    ///
    /// [`Error::Ring`] if the ring or its eventfds cannot be set up.
    pub fn into_shared_regions<'a>(self) -> Result<SharedRegions<'a>> {
        self.into_regions()?.into_shared()
    }
}

impl<'a> SharedRegions<'a> {
    fn lock(&self) -> MutexGuard<'_, Regions<'a>> {
        // Every method of `Regions` completes its bookkeeping before it can fail or panic.
        self.inner
            .regions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Attaches `geometry` of `buffer` as a new region (see [`Regions::attach_region`]).
    ///
    /// # Errors
    ///
    /// As [`Regions::attach_region`]: the buffer comes back with the error.
    #[allow(clippy::result_large_err)]
    pub fn attach_region(
        &self,
        buffer: Buffer<'a>,
        geometry: Geometry,
    ) -> std::result::Result<RegionId, (Error, Buffer<'a>)> {
        self.lock().attach_region(buffer, geometry)
    }

    /// Queues frame `index` of region `id` (see [`Regions::queue`]).
    ///
    /// # Errors
    ///
    /// As [`Regions::queue`].
    pub fn queue(&self, id: RegionId, index: u32) -> Result<()> {
        self.lock().queue(id, index)
    }

    /// Waits up to `timeout` (forever with `None`) for the next filled frame of any region
    /// and hands it out: it stays away from the card until [`Self::queue`]d again. Frames
    /// come in the card's order.
    ///
    /// # Errors
    ///
    /// - [`Error::Timeout`] if none came in time;
    /// - [`Error::Canceled`] if a [`Canceler`] ended this wait;
    /// - [`Error::Stopped`] once the card is stopped (or was never started, or went away)
    ///   and every frame filled before was handed out;
    /// - [`Error::Ring`].
    pub fn next_frame(&self, timeout: Option<Duration>) -> Result<RegionFrame> {
        let deadline = timeout.map(|timeout| Instant::now() + timeout);
        loop {
            if self.inner.cancel.take() {
                return Err(Error::Canceled);
            }
            {
                let mut regions = self.lock();
                // Reset before reaping: a completion posted after the reap makes it
                // readable again, so the poll below cannot miss it.
                drain(&self.inner.completions);
                if regions.ring.unsubmitted() > 0 {
                    regions.ring.submit()?;
                }
                for completion in regions.ring.reap(0, Some(Duration::ZERO))? {
                    regions.handle(completion);
                }
                // Ready frames only: a zero timeout never waits.
                if let Some(frame) = regions.next_frame(Some(Duration::ZERO))? {
                    return Ok(frame);
                }
                if !regions.streaming {
                    return Err(Error::Stopped);
                }
            }
            let left = time_left(deadline)?;
            if !self.inner.cancel.pending() {
                sleep(&self.inner.completions, &self.inner.cancel, left)?;
            }
        }
    }

    /// Runs `read` on the bytes of frame `index` of region `id` while it is handed out;
    /// `None` if it is not (the card may write a queued frame at any time). The stream's
    /// lock is held meanwhile: keep `read` short.
    pub fn with_frame<R>(
        &self,
        id: RegionId,
        index: u32,
        read: impl FnOnce(&[u8]) -> R,
    ) -> Option<R> {
        let regions = self.lock();
        regions.frame_bytes(id, index).map(read)
    }

    /// Frames filled but not handed out yet go back to the application unread (held, as if
    /// handed out: [`Self::queue`] gives them to the card again); returns how many. For a
    /// stop that drops what the card filled (GenTL's `ACQ_STOP_FLAGS_KILL`).
    pub fn discard_ready(&self) -> usize {
        let mut regions = self.lock();
        let ready: Vec<(u32, u32)> = regions.ready.drain(..).collect();
        for &(id, index) in &ready {
            if let Some(Some(region)) = regions.regions.get_mut(id as usize) {
                if let Some(state) = region.states.get_mut(index as usize) {
                    *state = State::Held;
                }
            }
        }
        ready.len()
    }

    /// Detaches region `id` while the others keep streaming (see
    /// [`Regions::detach_region`]); a thread waiting in [`Self::next_frame`] goes on waiting
    /// for the other regions' frames.
    ///
    /// # Errors
    ///
    /// As [`Regions::detach_region`].
    pub fn detach_region(&self, id: RegionId) -> Result<Buffer<'a>> {
        let result = self.lock().detach_region(id);
        // Waiters look again: completions the detach reaped may be theirs.
        signal(&self.inner.completions);
        result
    }

    /// Starts the card (see [`Regions::start`]).
    ///
    /// # Errors
    ///
    /// As [`Regions::start`].
    pub fn start(&self) -> Result<()> {
        self.lock().start()
    }

    /// Stops the card (see [`Regions::stop`]); waits in other threads end with
    /// [`Error::Stopped`] once the frames filled before the stop are handed out.
    ///
    /// # Errors
    ///
    /// As [`Regions::stop`].
    pub fn stop(&self) -> Result<()> {
        let result = self.lock().stop();
        signal(&self.inner.completions);
        result
    }

    /// Detaches every region now (stopping the card first if it runs), while clones may
    /// still exist; returns the buffers, in region order. Afterwards the card is free for
    /// another stream, waits end with [`Error::Stopped`], and regions can be attached anew.
    ///
    /// # Errors
    ///
    /// The first error of a region's detach; [`Error::Unreclaimable`] for a region whose
    /// end the driver did not confirm (its buffer is leaked, never freed or reused). The
    /// other regions are detached all the same.
    pub fn end(&self) -> Result<Vec<Buffer<'a>>> {
        let mut regions = self.lock();
        let mut first = None;
        if regions.streaming {
            if let Err(error) = regions.stop() {
                first = Some(error);
            }
        }
        regions.streaming = false;
        let mut buffers = Vec::new();
        for id in regions.ids() {
            match regions.detach_region(id) {
                Ok(buffer) => buffers.push(buffer),
                Err(error) => {
                    first.get_or_insert(error);
                }
            }
        }
        drop(regions);
        signal(&self.inner.completions);
        first.map_or(Ok(buffers), Err)
    }

    /// Whether the card is running.
    pub fn is_running(&self) -> bool {
        self.lock().is_running()
    }

    /// The ids of the attached regions, in order.
    pub fn ids(&self) -> Vec<RegionId> {
        self.lock().ids()
    }

    /// `STATS` of the card.
    ///
    /// # Errors
    ///
    /// As [`Regions::stats`].
    pub fn stats(&self) -> Result<fgrab_uapi::Stats> {
        self.lock().stats()
    }

    /// The camera features, from any thread, without waiting for the stream's lock. This
    /// file owns the card while a region is attached, so it may write them (the image
    /// format only while stopped).
    pub fn features(&self) -> &Features {
        &self.inner.features
    }

    /// A handle that ends one wait from any thread (GenTL's `EventKill`).
    pub fn canceler(&self) -> Canceler {
        Canceler::new(self.inner.cancel.clone())
    }
}
