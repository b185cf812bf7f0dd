//! A stream shared between threads ([`SharedStream`]), frames owned by handles that any
//! thread may hold and release ([`OwnedFrame`]), and a handle that interrupts waits
//! ([`Canceler`]).
//!
//! One lock (the [`Stream`]'s) guards the ring and the frame states, and is held only for
//! short bookkeeping, never while a thread sleeps: a waiting thread sleeps in `poll()` on an
//! eventfd registered with the ring (the kernel signals it whenever it posts a completion)
//! and on the canceler's eventfd. So a release, a stop or another wait from another thread
//! never waits behind a sleeper. The same eventfd is the stream's [`AsFd`], for epoll, GUI
//! loops and the `tokio` feature.

use crate::stream::{FrameInfo, Geometry, Stream};
use crate::{Counters, Error, Result};
use fgrab_uapi::{Stats, META_ERROR, META_FLUSHED, META_INCOMPLETE};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What became of a frame the card handed back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameStatus {
    /// Every byte of the frame was written.
    Complete,
    /// The card wrote fewer bytes than a frame (the buffer's frame was shorter, or the
    /// sensor ended the frame early): [`OwnedFrame::len`] says how many.
    Incomplete,
    /// The card reported an error for the frame; its bytes are not to be trusted.
    Error,
}

impl FrameStatus {
    fn from_flags(flags: u32) -> Self {
        if flags & (META_ERROR | META_FLUSHED) != 0 {
            FrameStatus::Error
        } else if flags & META_INCOMPLETE != 0 {
            FrameStatus::Incomplete
        } else {
            FrameStatus::Complete
        }
    }
}

/// An eventfd, non-blocking, closed on exec.
pub(crate) fn eventfd() -> Result<OwnedFd> {
    // SAFETY: plain system call; the result is checked.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(Error::Ring {
            operation: "eventfd",
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Resets an eventfd's counter (it stays readable until then).
pub(crate) fn drain(fd: &OwnedFd) {
    let mut count = 0u64;
    // SAFETY: reads 8 bytes into `count`; a non-blocking eventfd at 0 fails with EAGAIN,
    // which is the wanted outcome.
    unsafe { libc::read(fd.as_raw_fd(), (&raw mut count).cast(), 8) };
}

/// What is left of a wait for a frame until `deadline` (`None`: forever), or
/// [`Error::Timeout`] once it passed.
pub(crate) fn time_left(deadline: Option<Instant>) -> Result<Option<Duration>> {
    let Some(deadline) = deadline else {
        return Ok(None);
    };
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(Error::Timeout { what: "a frame" });
    }
    Ok(Some(left))
}

/// Adds one to an eventfd's counter, making it readable.
pub(crate) fn signal(fd: &OwnedFd) {
    let one = 1u64;
    // SAFETY: writes 8 bytes from `one`; can only fail at a counter of 2^64 - 2.
    unsafe { libc::write(fd.as_raw_fd(), (&raw const one).cast(), 8) };
}

struct Shared<'a> {
    stream: Mutex<Stream<'a>>,
    /// The stream's camera features, outside its lock: a trigger from one thread while
    /// another waits for the frame it starts.
    features: Arc<crate::Features>,
    /// Registered with the ring: readable once the kernel posted a completion.
    completions: OwnedFd,
    cancel: Arc<CancelState>,
}

/// Pending cancels, shared with [`Canceler`]s (which do not borrow the buffer).
pub(crate) struct CancelState {
    /// Readable while a cancel may be pending.
    pub(crate) cancels: OwnedFd,
    /// Cancels not yet taken by a wait (each ends one wait, as GenTL's `EventKill`).
    kills: AtomicU32,
}

impl CancelState {
    /// No cancel pending.
    pub(crate) fn new() -> Result<Self> {
        Ok(Self {
            cancels: eventfd()?,
            kills: AtomicU32::new(0),
        })
    }

    fn cancel(&self) {
        self.kills.fetch_add(1, Ordering::AcqRel);
        signal(&self.cancels);
    }

    /// Takes a pending cancel, if any.
    pub(crate) fn take(&self) -> bool {
        let taken = self
            .kills
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |kills| {
                kills.checked_sub(1)
            })
            .is_ok();
        if taken && self.kills.load(Ordering::Acquire) == 0 {
            drain(&self.cancels);
        }
        taken
    }

    pub(crate) fn pending(&self) -> bool {
        self.kills.load(Ordering::Acquire) != 0
    }
}

impl<'a> Shared<'a> {
    fn lock(&self) -> MutexGuard<'_, Stream<'a>> {
        // A panic while holding the lock leaves frame states as they were at a consistent
        // point (every method completes its bookkeeping before it can fail): carry on.
        self.stream
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A [`Stream`] shared between threads: clone it (or share a reference) and wait for frames,
/// release them, stop and start from any thread. Made by [`Stream::into_shared`].
///
/// The region ends (and the buffer is freed) when the last clone and the last
/// [`OwnedFrame`] are gone, or at [`SharedStream::detach`].
#[derive(Clone)]
pub struct SharedStream<'a> {
    shared: Arc<Shared<'a>>,
}

impl std::fmt::Debug for SharedStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedStream")
            .field("geometry", &self.geometry())
            .field("running", &self.is_running())
            .finish_non_exhaustive()
    }
}

impl<'a> Stream<'a> {
    /// Makes the stream shareable between threads, with frames owned by handles.
    ///
    /// # Errors
    ///
    /// [`Error::Ring`] if the eventfds cannot be created or registered;
    /// [`Error::WrongThread`] for a stream made for one thread
    /// ([`crate::Options::single_thread`]).
    pub fn into_shared(mut self) -> Result<SharedStream<'a>> {
        if self.is_single_thread() {
            return Err(Error::WrongThread);
        }
        let completions = eventfd()?;
        self.register_eventfd(completions.as_raw_fd())?;
        let features = self.shared_features();
        Ok(SharedStream {
            shared: Arc::new(Shared {
                features,
                stream: Mutex::new(self),
                completions,
                cancel: Arc::new(CancelState::new()?),
            }),
        })
    }
}

impl<'a> SharedStream<'a> {
    /// Waits up to `timeout` (forever with `None`) for the next filled frame.
    ///
    /// # Errors
    ///
    /// - [`Error::Timeout`] if none came in time;
    /// - [`Error::Canceled`] if a [`Canceler`] ended this wait;
    /// - [`Error::Stopped`] once the stream is stopped and every frame filled before the
    ///   stop was handed out;
    /// - [`Error::CardGone`] if the card went away, [`Error::Ended`] if the region ended
    ///   otherwise (frames filled before are still handed out first);
    /// - [`Error::Ring`].
    pub fn next_frame(&self, timeout: Option<Duration>) -> Result<OwnedFrame<'a>> {
        let deadline = timeout.map(|timeout| Instant::now() + timeout);
        loop {
            if self.shared.cancel.take() {
                return Err(Error::Canceled);
            }
            {
                let mut stream = self.shared.lock();
                // Reset before reaping: a completion posted after the reap makes it
                // readable again, so the poll below cannot miss it.
                drain(&self.shared.completions);
                if let Some(info) = stream.try_take()? {
                    let (ptr, len) = stream
                        .held_frame(info.index)
                        .ok_or(Error::NotHeld { index: info.index })?;
                    return Ok(OwnedFrame {
                        shared: Some(self.shared.clone()),
                        info,
                        ptr,
                        len,
                    });
                }
                if !stream.is_attached() {
                    return Err(stream.end_error());
                }
                // Stopped (or not started yet): no frame comes until a start, and those
                // filled before the stop were handed out above.
                if !stream.is_running() {
                    return Err(Error::Stopped);
                }
            }
            let left = time_left(deadline)?;
            if !self.shared.cancel.pending() {
                self.sleep(left)?;
            }
        }
    }

    /// Sleeps until a completion is posted, a cancel arrives, or `left` passes.
    fn sleep(&self, left: Option<Duration>) -> Result<()> {
        sleep(&self.shared.completions, &self.shared.cancel, left)
    }

    /// Starts the card (see [`Stream::start`]).
    ///
    /// # Errors
    ///
    /// As [`Stream::start`].
    pub fn start(&self) -> Result<()> {
        self.shared.lock().start()
    }

    /// Stops the card (see [`Stream::stop`]); waits in other threads end with
    /// [`Error::Stopped`] once the frames filled before the stop are handed out.
    ///
    /// # Errors
    ///
    /// As [`Stream::stop`].
    pub fn stop(&self) -> Result<()> {
        let result = self.shared.lock().stop();
        // Waiters look again: the stream is stopped.
        signal(&self.shared.completions);
        result
    }

    /// Ends the region now, while clones and frame handles may still exist: the card stops
    /// and will never write the buffer again, and the card is free for another stream (of
    /// this program or another). Handles keep their bytes, which stay valid and unchanged;
    /// the buffer is freed with the last clone or handle. Waits then end with
    /// [`Error::Ended`]. For bindings whose frames outlive their stream (a Python view
    /// kept after its camera closed).
    ///
    /// # Errors
    ///
    /// [`Error::Unreclaimable`] if the driver did not confirm the end: the buffer is then
    /// leaked (never freed or reused), so handles stay valid still.
    pub fn end(&self) -> Result<()> {
        let result = self.shared.lock().end_now();
        signal(&self.shared.completions);
        result
    }

    /// The camera features, from any thread, without waiting for the stream's lock (see
    /// [`Stream::features`]).
    pub fn features(&self) -> &crate::Features {
        &self.shared.features
    }

    /// Whether the card is running.
    pub fn is_running(&self) -> bool {
        self.shared.lock().is_running()
    }

    /// The frame layout.
    pub fn geometry(&self) -> Geometry {
        self.shared.lock().geometry()
    }

    /// Library counters.
    pub fn counters(&self) -> Counters {
        self.shared.lock().counters()
    }

    /// The driver's view of the stream.
    ///
    /// # Errors
    ///
    /// As [`Stream::stats`].
    pub fn stats(&self) -> Result<Stats> {
        self.shared.lock().stats()
    }

    /// A handle that ends waits from any thread.
    pub fn canceler(&self) -> Canceler {
        Canceler {
            state: self.shared.cancel.clone(),
        }
    }

    /// Ends the region and returns the buffer, once no other clone and no frame handle
    /// exists.
    ///
    /// # Errors
    ///
    /// [`Error::InUse`] (with the stream back) while other clones or frames exist;
    /// as [`Stream::detach`].
    pub fn detach(self) -> std::result::Result<crate::Buffer<'a>, (Error, Option<Self>)> {
        match Arc::try_unwrap(self.shared) {
            Ok(shared) => {
                let stream = shared
                    .stream
                    .into_inner()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                stream.detach().map_err(|error| (error, None))
            }
            Err(shared) => {
                let holders = Arc::strong_count(&shared) - 1;
                Err((Error::InUse { holders }, Some(Self { shared })))
            }
        }
    }
}

/// Readable when completions were posted: wait on it with epoll or a GUI loop, then call
/// [`SharedStream::next_frame`] with a zero timeout until it says [`Error::Timeout`].
impl AsFd for SharedStream<'_> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.shared.completions.as_fd()
    }
}

/// Ends one wait of a [`SharedStream`] from any thread: the wait in progress, or the next
/// one if none is (GenTL's `EventKill`). Cloneable, `Send + Sync`.
#[derive(Clone)]
pub struct Canceler {
    state: Arc<CancelState>,
}

impl std::fmt::Debug for Canceler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Canceler").finish_non_exhaustive()
    }
}

impl Canceler {
    /// The canceler of waits that take their cancels from `state`.
    pub(crate) fn new(state: Arc<CancelState>) -> Self {
        Self { state }
    }

    /// Makes one wait return [`Error::Canceled`].
    pub fn cancel(&self) {
        self.state.cancel();
    }
}

/// Sleeps until `completions` or `cancel`'s eventfd is readable, or `left` passes (a
/// signal ends it early: the caller looks again).
pub(crate) fn sleep(
    completions: &OwnedFd,
    cancel: &CancelState,
    left: Option<Duration>,
) -> Result<()> {
    let mut fds = [
        libc::pollfd {
            fd: completions.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: cancel.cancels.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    // CAST: at most `i32::MAX` ms; rounded up so that a short wait is not a busy loop.
    let timeout = left.map_or(-1, |left| {
        left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32
    });
    // SAFETY: `fds` is a valid array of two pollfds for the call.
    let ready = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout) };
    if ready < 0 {
        let error = std::io::Error::last_os_error();
        if error.raw_os_error() != Some(libc::EINTR) {
            return Err(Error::Ring {
                operation: "poll",
                source: error,
            });
        }
    }
    Ok(())
}

/// A filled frame owned by a handle: `Send`, any number held at once, given back to the
/// card when dropped or [`released`](Self::release), from any thread. The buffer stays
/// attached (pinned and mapped) while any handle lives; the card never writes a frame while
/// its handle exists.
///
/// A handle keeps the stream alive, not borrowed:
///
/// ```no_run
/// # fn f(stream: fgrab::SharedStream<'static>) -> fgrab::Result<()> {
/// let frame = stream.next_frame(None)?;
/// std::thread::spawn(move || println!("{} bytes", frame.len())); // released there
/// # Ok(()) }
/// ```
///
/// Its bytes are only reachable through the handle, so they cannot be read once it is
/// released:
///
/// ```compile_fail,E0505
/// # fn f(stream: fgrab::SharedStream<'static>) -> fgrab::Result<()> {
/// let frame = stream.next_frame(None)?;
/// let bytes: &[u8] = &frame;
/// frame.release()?; // error: `frame` is borrowed by `bytes`
/// println!("{}", bytes[0]);
/// # Ok(()) }
/// ```
pub struct OwnedFrame<'a> {
    /// `None` once released.
    shared: Option<Arc<Shared<'a>>>,
    info: FrameInfo,
    ptr: *const u8,
    len: usize,
}

// SAFETY: the handle's bytes belong to it alone (the frame is held: neither the card nor
// another handle reaches them) and are only read; the stream behind it is shared through a
// lock.
unsafe impl Send for OwnedFrame<'_> {}
// SAFETY: as above; `&OwnedFrame` only reads.
unsafe impl Sync for OwnedFrame<'_> {}

impl std::fmt::Debug for OwnedFrame<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnedFrame")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl OwnedFrame<'_> {
    /// What the card reported.
    pub fn info(&self) -> FrameInfo {
        self.info
    }

    /// Index of the frame in the geometry.
    pub fn index(&self) -> u32 {
        self.info.index
    }

    /// Sequence number since the last start (gaps are frames the card dropped).
    pub fn sequence(&self) -> u64 {
        self.info.sequence
    }

    /// End of the frame, `CLOCK_MONOTONIC` nanoseconds.
    pub fn timestamp_ns(&self) -> u64 {
        self.info.timestamp_ns
    }

    /// Whether the frame is whole.
    pub fn status(&self) -> FrameStatus {
        FrameStatus::from_flags(self.info.flags)
    }

    /// Gives the frame back to the card now (dropping the handle does the same, ignoring
    /// errors).
    ///
    /// # Errors
    ///
    /// [`Error::Ring`] if the ring failed.
    pub fn release(mut self) -> Result<()> {
        match self.shared.take() {
            Some(shared) => release(&shared, self.info.index),
            None => Ok(()),
        }
    }
}

/// Gives frame `index` back. Waiters need no wake-up: the frame's completion wakes them,
/// and what the release did not submit is submitted by the next wait (the card still holds
/// half the region's frames, whose completions come first).
fn release(shared: &Shared<'_>, index: u32) -> Result<()> {
    shared.lock().release_and_submit(index)
}

impl std::ops::Deref for OwnedFrame<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr..ptr + len` is the frame's part of the buffer, which lives as long
        // as `shared` (held until the handle is consumed); the frame is held by this handle alone, so the card does
        // not write it and no `&mut` to it exists until the handle is released.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for OwnedFrame<'_> {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            let _ = release(&shared, self.info.index);
        }
    }
}

#[cfg(feature = "tokio")]
mod tokio_support {
    use super::{OwnedFrame, SharedStream};
    use crate::{Error, Result};
    use std::os::fd::{AsFd, OwnedFd};
    use std::time::Duration;
    use tokio::io::{unix::AsyncFd, Interest};

    /// Frames of a [`SharedStream`] as an async source (feature `tokio`), for a task on a
    /// tokio runtime with I/O enabled.
    #[derive(Debug)]
    pub struct AsyncFrames<'a> {
        stream: SharedStream<'a>,
        ready: AsyncFd<OwnedFd>,
    }

    impl<'a> SharedStream<'a> {
        /// The stream's frames as an async source. Call it on a tokio runtime with I/O
        /// enabled (it registers a descriptor with that runtime's reactor; without one,
        /// tokio panics).
        ///
        /// # Errors
        ///
        /// [`Error::Ring`] if the descriptor cannot be registered with the runtime.
        pub fn async_frames(&self) -> Result<AsyncFrames<'a>> {
            let owned = self
                .as_fd()
                .try_clone_to_owned()
                .map_err(|source| Error::Ring {
                    operation: "dup",
                    source,
                })?;
            // SAFETY: an `OwnedFd` stays open, and names the same description, for as long
            // as the `AsyncFd` owns it.
            let fd = unsafe { AsyncFd::register_with_interest(owned, Interest::READABLE) }
                .map_err(|error| Error::Ring {
                    operation: "async registration",
                    source: error.into_parts().1,
                })?;
            Ok(AsyncFrames {
                stream: self.clone(),
                ready: fd,
            })
        }
    }

    impl<'a> AsyncFrames<'a> {
        /// The next filled frame.
        ///
        /// # Errors
        ///
        /// As [`SharedStream::next_frame`], except [`Error::Timeout`].
        pub async fn next(&mut self) -> Result<OwnedFrame<'a>> {
            loop {
                match self.stream.next_frame(Some(Duration::ZERO)) {
                    Err(Error::Timeout { .. }) => {}
                    other => return other,
                }
                let mut guard = self.ready.readable().await.map_err(|source| Error::Ring {
                    operation: "async wait",
                    source,
                })?;
                guard.clear_ready();
            }
        }
    }
}

#[cfg(feature = "tokio")]
pub use tokio_support::AsyncFrames;
