//! The io_uring instance behind a card: with `buffer.rs`, the only module with `unsafe`.
//!
//! fgrab commands need 128-byte SQEs (80-byte payloads) and 32-byte CQEs (frame sequence
//! numbers), so the ring is created with `IORING_SETUP_SQE128 | IORING_SETUP_CQE32`.
//!
//! A ring used by one thread only ([`Setup::SingleThread`]) adds `SINGLE_ISSUER |
//! DEFER_TASKRUN | TASKRUN_FLAG`: the driver's frame completions (lazy task work) then run
//! in the waiting thread when it enters the kernel to wait, not in an interrupt of whatever
//! it was doing, and a wait for one completion wakes once for every completion pending by
//! then. The kernel refuses (`EEXIST`) any other thread's submission or wait on such a ring,
//! so this module refuses it first, with [`Error::WrongThread`].
//!
//! Reaping: every wait asks for at least one completion and takes every completion
//! available, never a fixed batch: a batch may take long to fill when the producer is slow,
//! and frames completed meanwhile would not go back to the card (the latency and starvation
//! of issue 15).

use crate::raw::FrameCompletion;
use crate::{Error, Result};
use io_uring::{cqueue, squeue, types, IoUring};
use std::os::fd::RawFd;
use std::time::{Duration, Instant};
use zerocopy::{FromBytes, IntoBytes};

/// Entries of the submission queue (the completion queue has twice as many).
pub(crate) const RING_ENTRIES: u32 = 256;

/// `user_data` of one-shot commands (`INFO`, `START`, ...) is this bit plus a counter, so
/// that a late answer to a command given up on is never taken for the next one's. Frames
/// use their index (below 2^32).
const COMMAND_TAG: u64 = 1 << 63;

/// `user_data` of the attach command (command tags stop one short of it).
pub(crate) const ATTACH: u64 = u64::MAX;

/// `user_data` of a recorder's file writes (`record.rs`) is this bit plus the frame index:
/// disjoint from frames (below 2^32), command tags (their counter stays below this bit)
/// and [`ATTACH`].
pub(crate) const WRITE_TAG: u64 = 1 << 62;

/// The frame index of a recorder's write completion, `None` for any other `user_data`.
pub(crate) fn written_frame(user_data: u64) -> Option<u32> {
    if user_data & WRITE_TAG == 0 || user_data & !(WRITE_TAG | u64::from(u32::MAX)) != 0 {
        return None;
    }
    // CAST: the mask above leaves 32 bits.
    Some(user_data as u32)
}

/// `user_data` of a batched stream's `QUEUE_BATCH` is this bit plus the group's first
/// frame: disjoint from frames, writes ([`WRITE_TAG`]), command tags and [`ATTACH`].
pub(crate) const BATCH_TAG: u64 = 1 << 61;

/// The first frame of a `QUEUE_BATCH` completion, `None` for any other `user_data`.
pub(crate) fn batch_first(user_data: u64) -> Option<u32> {
    if user_data & !(BATCH_TAG | u64::from(u32::MAX)) != 0 || user_data & BATCH_TAG == 0 {
        return None;
    }
    // CAST: the mask above leaves 32 bits.
    Some(user_data as u32)
}

/// How long a one-shot command may take before the library gives up on it.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// One completion, decoded as a frame's (other commands have no sequence number).
pub(crate) type Completion = FrameCompletion;

/// How a ring is set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Setup {
    /// Any thread may submit and wait (task work runs at once, in any context).
    Shared,
    /// A kernel thread submits (`IORING_SETUP_SQPOLL`).
    Sqpoll,
    /// Only the creating thread submits and waits: task work deferred to its waits.
    SingleThread,
}

/// What a ring did: submission entries written, completions reaped and system calls made
/// (`io_uring_enter`), counted in user space.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingCounters {
    /// Submission queue entries written.
    pub sqes: u64,
    /// Completion queue entries reaped.
    pub cqes: u64,
    /// `io_uring_enter` system calls (submissions and waits).
    pub enters: u64,
}

/// The calling thread (std's id, one per kernel task, read without a system call).
fn thread_id() -> std::thread::ThreadId {
    std::thread::current().id()
}

/// An io_uring with big SQEs and CQEs, submitting to one device file.
pub struct Uring {
    ring: IoUring<squeue::Entry128, cqueue::Entry32>,
    fd: RawFd,
    sqpoll: bool,
    /// The only thread that may use a [`Setup::SingleThread`] ring.
    owner: Option<std::thread::ThreadId>,
    counters: RingCounters,
    /// Completions seen while waiting for another one.
    backlog: Vec<Completion>,
    /// Counter of [`COMMAND_TAG`] user data.
    next_command: u64,
}

/// [`Error::MemlockLimit`] if the registration of `[addr, addr + len)` failed with
/// `source` because of `RLIMIT_MEMLOCK`. io_uring charges every page the buffer touches
/// (a huge page whole: for memory backed by transparent huge pages the charge can exceed
/// the pages counted here, hence "at least" in the message).
fn memlock_error(addr: usize, len: usize, source: &std::io::Error) -> Option<Error> {
    if source.raw_os_error() != Some(libc::ENOMEM) {
        return None;
    }
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) } != 0
        || limit.rlim_cur == libc::RLIM_INFINITY
    {
        return None;
    }
    // SAFETY: sysconf has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).ok()?;
    let first = addr - addr % page;
    let end = addr.checked_add(len)?.checked_next_multiple_of(page)?;
    crate::error::memlock_limit(u64::try_from(end - first).ok()?, limit.rlim_cur)
}

impl Uring {
    /// Creates the ring for commands on `fd`, with a kernel submission thread if `sqpoll`.
    pub(crate) fn new(fd: RawFd, sqpoll: bool) -> Result<Self> {
        let setup = if sqpoll { Setup::Sqpoll } else { Setup::Shared };
        Self::with_setup(fd, setup, RING_ENTRIES)
    }

    /// A ring of `entries` for one-shot commands on `fd` (the feature port's).
    pub(crate) fn with_entries(fd: RawFd, sqpoll: bool, entries: u32) -> Result<Self> {
        let setup = if sqpoll { Setup::Sqpoll } else { Setup::Shared };
        Self::with_setup(fd, setup, entries)
    }

    /// A ring of `entries` set up as `setup` says; a [`Setup::SingleThread`] ring belongs
    /// to the calling thread.
    pub(crate) fn with_setup(fd: RawFd, setup: Setup, entries: u32) -> Result<Self> {
        let mut builder = IoUring::<squeue::Entry128, cqueue::Entry32>::builder();
        match setup {
            Setup::Shared => {}
            Setup::Sqpoll => {
                builder.setup_sqpoll(1000);
            }
            Setup::SingleThread => {
                // TASKRUN_FLAG: the kernel marks the ring when deferred work is pending, so
                // that a non-waiting enter (a poll) asks for it to run (GETEVENTS).
                builder
                    .setup_single_issuer()
                    .setup_defer_taskrun()
                    .setup_taskrun_flag();
            }
        }
        let ring = builder.build(entries).map_err(|source| Error::Ring {
            operation: "setup",
            source,
        })?;
        Ok(Self {
            ring,
            fd,
            sqpoll: setup == Setup::Sqpoll,
            owner: (setup == Setup::SingleThread).then(thread_id),
            counters: RingCounters::default(),
            backlog: Vec::new(),
            next_command: 0,
        })
    }

    /// [`Error::WrongThread`] unless the calling thread may enter this ring.
    pub(crate) fn check_thread(&self) -> Result<()> {
        match self.owner {
            Some(owner) if owner != thread_id() => Err(Error::WrongThread),
            _ => Ok(()),
        }
    }

    /// Whether only one thread may use the ring ([`Setup::SingleThread`]).
    pub(crate) fn is_single_thread(&self) -> bool {
        self.owner.is_some()
    }

    /// What the ring did so far.
    pub(crate) fn counters(&self) -> RingCounters {
        self.counters
    }

    /// Registers `[ptr, ptr + len)` as fixed buffer 0.
    ///
    /// # Safety
    ///
    /// The memory must stay valid until the registration ends ([`Self::unregister`], or the
    /// ring is dropped) and until no command that imported it is in flight.
    pub(crate) unsafe fn register(&mut self, ptr: *mut u8, len: usize) -> Result<()> {
        let iovec = libc::iovec {
            iov_base: ptr.cast(),
            iov_len: len,
        };
        // SAFETY: forwarded to the caller.
        unsafe { self.ring.submitter().register_buffers(&[iovec]) }.map_err(|source| {
            memlock_error(ptr as usize, len, &source).unwrap_or(Error::Ring {
                operation: "register_buffers",
                source,
            })
        })
    }

    /// Creates an empty table of `count` fixed buffers (see [`Self::register_at`]).
    pub(crate) fn register_sparse(&self, count: u32) -> Result<()> {
        self.ring
            .submitter()
            .register_buffers_sparse(count)
            .map_err(|source| Error::Ring {
                operation: "register_buffers_sparse",
                source,
            })
    }

    /// Registers `[ptr, ptr + len)` as fixed buffer `index` of a sparse table.
    ///
    /// # Safety
    ///
    /// As [`Self::register`].
    pub(crate) unsafe fn register_at(
        &mut self,
        index: u32,
        ptr: *mut u8,
        len: usize,
    ) -> Result<()> {
        let iovec = libc::iovec {
            iov_base: ptr.cast(),
            iov_len: len,
        };
        // SAFETY: forwarded to the caller.
        unsafe {
            self.ring
                .submitter()
                .register_buffers_update(index, &[iovec], None)
        }
        .map_err(|source| {
            memlock_error(ptr as usize, len, &source).unwrap_or(Error::Ring {
                operation: "register_buffers_update",
                source,
            })
        })
    }

    /// Empties slot `index` of a sparse table (commands that imported it keep its pages).
    pub(crate) fn unregister_at(&mut self, index: u32) -> Result<()> {
        let empty = libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        // SAFETY: an empty entry names no memory.
        unsafe {
            self.ring
                .submitter()
                .register_buffers_update(index, &[empty], None)
        }
        .map(drop)
        .map_err(|source| Error::Ring {
            operation: "register_buffers_update",
            source,
        })
    }

    /// The card file commands go to (for [`crate::raw`] builders).
    pub(crate) fn fd(&self) -> RawFd {
        self.fd
    }

    /// Registers `fd` (an eventfd) to be signalled whenever a completion is posted.
    pub(crate) fn register_eventfd(&mut self, fd: RawFd) -> Result<()> {
        self.ring
            .submitter()
            .register_eventfd(fd)
            .map_err(|source| Error::Ring {
                operation: "register_eventfd",
                source,
            })
    }

    /// Queues a command built by [`crate::raw`] without entering the kernel.
    pub(crate) fn push(&mut self, entry: squeue::Entry128) -> Result<()> {
        loop {
            // SAFETY: the entry carries only copied bytes. Memory its payload points to
            // (copy-out targets, frame metadata, the fixed buffer) is owned by the caller,
            // which keeps it until the command's completion is reaped (`Stream` never frees
            // its buffer while a command may use it).
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                self.counters.sqes += 1;
                return Ok(());
            }
            self.submit()?;
        }
    }

    /// Commands written to the ring and not yet taken by the kernel.
    pub(crate) fn unsubmitted(&mut self) -> usize {
        self.ring.submission().len()
    }

    /// Submits queued commands (a system call unless an awake SQPOLL thread takes them).
    pub(crate) fn submit(&mut self) -> Result<()> {
        self.check_thread()?;
        if self.sqpoll && !self.ring.submission().need_wakeup() {
            self.ring.submission().sync();
            return Ok(());
        }
        self.counters.enters += 1;
        self.ring
            .submit()
            .map(|_| ())
            .map_err(|source| Error::Ring {
                operation: "submit",
                source,
            })
    }

    /// Submits and waits until at least `min` completions are available or `timeout`
    /// passes; returns them (possibly fewer, or none, on timeout).
    pub(crate) fn reap(
        &mut self,
        min: usize,
        timeout: Option<Duration>,
    ) -> Result<Vec<Completion>> {
        let mut seen = Vec::new();
        self.reap_into(min, timeout, &mut seen)?;
        Ok(seen)
    }

    /// [`Self::reap`] into `seen` (empty on entry), whose capacity a caller reaping per
    /// frame keeps from one wait to the next: no allocation per wait. On error, what was
    /// reaped stays in the backlog for the next call.
    pub(crate) fn reap_into(
        &mut self,
        min: usize,
        timeout: Option<Duration>,
        seen: &mut Vec<Completion>,
    ) -> Result<()> {
        self.check_thread()?;
        let deadline = timeout.map(|timeout| Instant::now() + timeout);
        seen.append(&mut self.backlog);
        loop {
            let before = seen.len();
            seen.extend(self.ring.completion().map(|cqe| Completion::from_cqe(&cqe)));
            // CAST: a completion queue holds at most a few thousand entries.
            self.counters.cqes += (seen.len() - before) as u64;
            if seen.len() >= min.max(1) {
                return Ok(());
            }
            let left = match deadline {
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(());
                    }
                    left
                }
                None => Duration::from_secs(3600),
            };
            let timespec = types::Timespec::from(left.min(Duration::from_millis(500)));
            let args = types::SubmitArgs::new().timespec(&timespec);
            self.counters.enters += 1;
            match self
                .ring
                .submitter()
                .submit_with_args(min.max(1) - seen.len().min(min), &args)
            {
                Ok(_) => {}
                Err(error)
                    if matches!(error.raw_os_error(), Some(libc::ETIME) | Some(libc::EINTR)) => {}
                Err(source) => {
                    self.backlog.append(seen);
                    return Err(Error::Ring {
                        operation: "wait",
                        source,
                    });
                }
            }
        }
    }

    /// A fresh `user_data` for a one-shot command.
    pub(crate) fn command_tag(&mut self) -> u64 {
        self.next_command = (self.next_command + 1) % WRITE_TAG;
        COMMAND_TAG | self.next_command
    }

    /// Sends one command and waits for its result; other completions that arrive meanwhile
    /// are kept for the next [`Self::reap`].
    ///
    /// # Errors
    ///
    /// [`Error::Ring`] if the ring fails or no answer comes within 30 s: the command may then
    /// still be in flight, so memory its payload points to must never be reused (see
    /// [`Self::copy_out`]).
    pub(crate) fn command(&mut self, entry: squeue::Entry128) -> Result<i32> {
        let tag = self.command_tag();
        self.push(entry.user_data(tag))?;
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        let mut held = Vec::new();
        let result = loop {
            let mut completions = match self.reap(1, Some(Duration::from_secs(1))) {
                Ok(completions) => completions,
                Err(error) => break Err(error),
            };
            if let Some(at) = completions.iter().position(|c| c.user_data == tag) {
                let result = completions.remove(at).res;
                held.extend(completions);
                break Ok(result);
            }
            held.extend(completions);
            if Instant::now() > deadline {
                break Err(Error::Ring {
                    operation: "command",
                    source: std::io::Error::from_raw_os_error(libc::ETIMEDOUT),
                });
            }
        };
        // `reap` took the backlog first, so what was held is older than anything left.
        held.append(&mut self.backlog);
        self.backlog = held;
        result
    }

    /// Sends `INFO` or `STATS` (`build` makes the entry for a target) and returns the
    /// driver's result and the structure it wrote. The structure lives on the heap and is
    /// leaked if no answer came: the driver may still write it.
    ///
    /// # Errors
    ///
    /// As [`Self::command`].
    pub(crate) fn copy_out<T: FromBytes + IntoBytes>(
        &mut self,
        build: impl FnOnce(RawFd, *mut T) -> squeue::Entry128,
    ) -> Result<(i32, T)> {
        let mut target = Box::new(T::new_zeroed());
        let entry = build(self.fd, &mut *target);
        match self.command(entry) {
            Ok(res) => Ok((res, *target)),
            Err(error) => {
                Box::leak(target);
                Err(error)
            }
        }
    }
}
