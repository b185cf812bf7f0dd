//! The legacy fgrab C API (`include/fgrab_legacy.h`), over the `fgrab` crate.
//!
//! Every entry point validates its arguments, catches panics (none unwinds into C), and
//! returns an `FGRAB_*` code; the calling thread keeps a message per handle for
//! [`fgrab_last_error`].
//!
//! A handle may be used from several threads at once: one waits for frames while others
//! release them, stop, abort the wait or close. The stream is a [`SharedStream`], whose
//! waits sleep without holding a lock; held frames are [`OwnedFrame`]s in a map by index.
//! Calls in progress are counted, so that [`fgrab_close`] can wake waiters (it stops the
//! stream), wait for every call to return, and only then free the handle.

#![deny(missing_docs)]

use fgrab::{Buffer, Card, Error, Geometry, OwnedFrame, SharedStream};
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

/// Success.
pub const FGRAB_OK: c_int = 0;
/// Invalid argument.
pub const FGRAB_E_INVAL: c_int = -1;
/// No such card, or it went away.
pub const FGRAB_E_NODEV: c_int = -2;
/// Another process streams from the card.
pub const FGRAB_E_BUSY: c_int = -3;
/// No frame within the timeout.
pub const FGRAB_E_TIMEOUT: c_int = -4;
/// Call not allowed in this state.
pub const FGRAB_E_STATE: c_int = -5;
/// Driver or io_uring failure.
pub const FGRAB_E_IO: c_int = -6;
/// Out of memory.
pub const FGRAB_E_NOMEM: c_int = -7;
/// A bug in the library, caught.
pub const FGRAB_E_INTERNAL: c_int = -8;
/// The buffer would exceed the locked-memory limit (`RLIMIT_MEMLOCK`); the message names
/// the limit and the shortfall.
pub const FGRAB_E_MEMLOCK: c_int = -9;
/// A wait ended by [`fgrab_abort_wait`].
pub const FGRAB_E_ABORTED: c_int = -10;

/// `struct fgrab_frame_info`.
#[repr(C)]
pub struct FrameInfo {
    /// Frame index.
    pub index: u32,
    /// `FGRAB_FRAME_*`.
    pub flags: u32,
    /// Sequence number.
    pub sequence: u64,
    /// End of frame, CLOCK_MONOTONIC ns.
    pub timestamp_ns: u64,
    /// Bytes written.
    pub bytes: u32,
    /// Zero.
    pub reserved: u32,
    /// First byte of the frame.
    pub data: *const c_void,
}

/// `struct fgrab_counters`.
#[repr(C)]
pub struct Counters {
    /// Frames handed out.
    pub frames_delivered: u64,
    /// Frames dropped by the card.
    pub frames_dropped: u64,
    /// Card errors.
    pub frames_failed: u64,
    /// Bytes handed out.
    pub bytes_delivered: u64,
}

/// `struct fgrab_card_info`.
#[repr(C)]
#[derive(Default)]
pub struct CardInfo {
    /// The N of `/dev/fgrabN`.
    pub card: u32,
    /// Hardware interface version, major in bits 31:16, minor in 15:0.
    pub hw_version: u32,
    /// PCI domain.
    pub pci_domain: u32,
    /// PCI bus.
    pub pci_bus: u8,
    /// PCI device.
    pub pci_device: u8,
    /// PCI function.
    pub pci_function: u8,
    /// Zero.
    pub reserved0: u8,
    /// Largest frame the card produces.
    pub max_frame_bytes: u32,
    /// Most frames a buffer may be split into.
    pub max_frames: u32,
    /// The card's current frame size.
    pub frame_bytes: u32,
    /// Zero.
    pub reserved1: u32,
    /// Time between frame starts at the current frame size.
    pub frame_period_ns: u64,
    /// Zero.
    pub reserved: [u64; 4],
}

/// Timeout of [`fgrab_wait_frame`] that waits as long as it takes.
pub const FGRAB_WAIT_FOREVER: u32 = u32::MAX;

/// An open card (`fgrab_handle`), usable from several threads at once.
pub struct Handle {
    path: String,
    /// The card until a buffer is set, and the buffer's layout.
    setup: Mutex<Setup>,
    /// The stream, once a buffer is set.
    stream: OnceLock<SharedStream<'static>>,
    /// Frames handed to the application, by index.
    held: Mutex<HashMap<u32, OwnedFrame<'static>>>,
    /// Calls in progress; [`fgrab_close`] waits for them.
    calls: Mutex<usize>,
    idle: Condvar,
    closing: AtomicBool,
    /// A call panicked: the state may be inconsistent, only `fgrab_close` is allowed.
    poisoned: AtomicBool,
}

struct Setup {
    card: Option<Card>,
    frame_bytes: u32,
    base: usize,
}

thread_local! {
    /// Why the last failed call of this thread on each handle failed, by handle address;
    /// key 0 for `fgrab_open` and `fgrab_close` (after which there is no handle).
    static LAST_ERROR: RefCell<HashMap<usize, CString>> = RefCell::new(HashMap::new());
}

fn set_last_error(key: usize, text: String) {
    // Only a thread being torn down has no thread-locals left; the code still says it all.
    let _ = LAST_ERROR.try_with(|errors| errors.borrow_mut().insert(key, message(text)));
}

/// A failed call: code and message.
struct Failure(c_int, String);

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        let code = match &error {
            Error::Open { source, .. } => match source.raw_os_error() {
                Some(libc::ENOENT | libc::ENODEV | libc::ENXIO) => FGRAB_E_NODEV,
                Some(libc::EBUSY) => FGRAB_E_BUSY,
                _ => FGRAB_E_IO,
            },
            Error::Command { errno, .. } => match *errno {
                libc::EBUSY => FGRAB_E_BUSY,
                libc::ENODEV | libc::ENOENT => FGRAB_E_NODEV,
                libc::EINVAL | libc::E2BIG | libc::EFAULT => FGRAB_E_INVAL,
                libc::EALREADY => FGRAB_E_STATE,
                libc::ENOMEM => FGRAB_E_NOMEM,
                _ => FGRAB_E_IO,
            },
            // Registering the buffer past RLIMIT_MEMLOCK; the message says by how much.
            Error::MemlockLimit { .. } => FGRAB_E_MEMLOCK,
            // Any other ENOMEM of io_uring (the library tells the limit apart).
            Error::Ring { source, .. } if source.raw_os_error() == Some(libc::ENOMEM) => {
                FGRAB_E_NOMEM
            }
            Error::Geometry { .. } | Error::NotHeld { .. } => FGRAB_E_INVAL,
            Error::Ended | Error::CardGone => FGRAB_E_NODEV,
            Error::Timeout { .. } => FGRAB_E_TIMEOUT,
            Error::Stopped => FGRAB_E_STATE,
            Error::Canceled => FGRAB_E_ABORTED,
            _ => FGRAB_E_IO,
        };
        Failure(code, error.to_string())
    }
}

fn fail<T>(code: c_int, message: impl Into<String>) -> Result<T, Failure> {
    Err(Failure(code, message.into()))
}

fn message(text: String) -> CString {
    CString::new(text.replace('\0', " ")).unwrap_or_default()
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves its data consistent before it can panic.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A call in progress on a handle; [`fgrab_close`] waits until none is.
struct Call<'h>(&'h Handle);

impl Drop for Call<'_> {
    fn drop(&mut self) {
        let mut calls = lock(&self.0.calls);
        *calls -= 1;
        if *calls == 0 {
            self.0.idle.notify_all();
        }
    }
}

impl Handle {
    /// Counts a call in, unless the handle is closing.
    fn enter(&self) -> Option<Call<'_>> {
        let mut calls = lock(&self.calls);
        if self.closing.load(Ordering::Acquire) {
            return None;
        }
        *calls += 1;
        Some(Call(self))
    }

    fn stream(&self) -> Result<&SharedStream<'static>, Failure> {
        self.stream
            .get()
            .ok_or_else(|| Failure(FGRAB_E_STATE, "no buffer set".into()))
    }
}

/// Runs `body` on the handle, converting errors and panics into codes and messages.
fn with_handle(h: *mut Handle, body: impl FnOnce(&Handle) -> Result<(), Failure>) -> c_int {
    if h.is_null() {
        return FGRAB_E_INVAL;
    }
    // SAFETY: a non-null handle comes from `fgrab_open` and is live until `fgrab_close`
    // returns (caller contract); `fgrab_close` waits for calls that entered.
    let handle = unsafe { &*h };
    let Some(_call) = handle.enter() else {
        set_last_error(h as usize, "the handle is being closed".into());
        return FGRAB_E_STATE;
    };
    if handle.poisoned.load(Ordering::Acquire) {
        return FGRAB_E_INTERNAL;
    }
    match catch_unwind(AssertUnwindSafe(|| body(handle))) {
        Ok(Ok(())) => FGRAB_OK,
        Ok(Err(Failure(code, text))) => {
            set_last_error(h as usize, text);
            code
        }
        Err(_) => {
            handle.poisoned.store(true, Ordering::Release);
            set_last_error(
                h as usize,
                "internal error (panic caught); only fgrab_close is allowed".into(),
            );
            FGRAB_E_INTERNAL
        }
    }
}

/// Opens card `card` (`/dev/fgrabN`). On failure `*out` is set to NULL and
/// `fgrab_last_error(NULL)` says why.
///
/// # Safety
///
/// `out` must be null or point to writable storage for a pointer.
#[no_mangle]
pub unsafe extern "C" fn fgrab_open(card: c_int, out: *mut *mut Handle) -> c_int {
    if out.is_null() {
        return FGRAB_E_INVAL;
    }
    // SAFETY: `out` is non-null and writable (caller contract); any alignment.
    unsafe { out.write_unaligned(std::ptr::null_mut()) };
    let opened = catch_unwind(|| {
        if card < 0 {
            return Err(Failure(FGRAB_E_INVAL, format!("no card number {card}")));
        }
        let path = format!("/dev/fgrab{card}");
        Card::open(&path)
            .map(|card| (path, card))
            .map_err(Failure::from)
    });
    let failure = match opened {
        Ok(Ok((path, card))) => {
            let handle = Box::new(Handle {
                path,
                setup: Mutex::new(Setup {
                    card: Some(card),
                    frame_bytes: 0,
                    base: 0,
                }),
                stream: OnceLock::new(),
                held: Mutex::new(HashMap::new()),
                calls: Mutex::new(0),
                idle: Condvar::new(),
                closing: AtomicBool::new(false),
                poisoned: AtomicBool::new(false),
            });
            // SAFETY: as above.
            unsafe { out.write_unaligned(Box::into_raw(handle)) };
            return FGRAB_OK;
        }
        Ok(Err(failure)) => failure,
        Err(_) => Failure(FGRAB_E_INTERNAL, "internal error (panic caught)".into()),
    };
    set_last_error(0, failure.1);
    failure.0
}

/// Stops the card (waking every thread waiting in [`fgrab_wait_frame`]), waits for the
/// calls in progress on `h` to return, ends the stream and frees the handle. The buffer is
/// no longer written once this returns `FGRAB_OK`. On `FGRAB_E_IO` the card may still
/// write it: it must never be freed. Either way the handle is gone; on failure,
/// `fgrab_last_error(NULL)` says why.
///
/// # Safety
///
/// `h` must be null or a handle from `fgrab_open`, not used by calls that start after
/// this one, nor afterwards.
#[no_mangle]
pub unsafe extern "C" fn fgrab_close(h: *mut Handle) -> c_int {
    if h.is_null() {
        return FGRAB_E_INVAL;
    }
    // SAFETY: from `fgrab_open`, live until freed below.
    let handle = unsafe { &*h };
    {
        let _calls = lock(&handle.calls);
        if handle.closing.swap(true, Ordering::AcqRel) {
            return FGRAB_E_STATE;
        }
    }
    let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<(), Failure> {
        if let Some(stream) = handle.stream.get() {
            // Waiters see the stream stopped and return; `EALREADY` when it was not running.
            let _ = stream.stop();
        }
        let mut calls = lock(&handle.calls);
        while *calls != 0 {
            calls = handle
                .idle
                .wait(calls)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        drop(calls);
        Ok(())
    }));
    // SAFETY: from `fgrab_open`; no call runs on it any more (waited for above, and none
    // may start: caller contract), so ownership returns here.
    let handle = unsafe { Box::from_raw(h) };
    let _ = LAST_ERROR.try_with(|errors| errors.borrow_mut().remove(&(h as usize)));
    let result = outcome
        .map_err(|_| Failure(FGRAB_E_INTERNAL, "internal error (panic caught)".into()))
        .and_then(|outcome| outcome)
        .and_then(|()| {
            // Frames still held go back first: the stream ends once no handle is left.
            lock(&handle.held).clear();
            let Handle { stream, .. } = *handle;
            match stream.into_inner() {
                Some(stream) => match stream.detach() {
                    // The memory is the application's: adopted, never freed here.
                    Ok(buffer) => {
                        drop(buffer);
                        Ok(())
                    }
                    Err((error, _)) => Err(Failure(
                        FGRAB_E_IO,
                        format!("the card may still write the buffer: {error}"),
                    )),
                },
                None => Ok(()),
            }
        });
    match result {
        Ok(()) => FGRAB_OK,
        Err(Failure(code, text)) => {
            set_last_error(0, text);
            code
        }
    }
}

/// Uses `buffer` for `total_bytes / frame_bytes` frames packed back to back (at most the
/// card's frame limit; bytes after the last frame are not used).
///
/// # Safety
///
/// `h` must be null or a handle from `fgrab_open`; `buffer` must be valid for
/// `total_bytes` and stay allocated and otherwise unused until `fgrab_close` returns.
#[no_mangle]
pub unsafe extern "C" fn fgrab_set_buffer(
    h: *mut Handle,
    buffer: *mut c_void,
    total_bytes: usize,
    frame_bytes: u32,
) -> c_int {
    with_handle(h, |handle| {
        if buffer.is_null() || frame_bytes == 0 || total_bytes < frame_bytes as usize {
            return fail(FGRAB_E_INVAL, "buffer is null or smaller than one frame");
        }
        if (buffer as usize).checked_add(total_bytes).is_none() {
            return fail(FGRAB_E_INVAL, "buffer wraps around the address space");
        }
        let mut setup = lock(&handle.setup);
        let Some(card) = setup.card.as_mut() else {
            return if handle.stream.get().is_some() {
                fail(FGRAB_E_STATE, "a buffer is set already")
            } else {
                fail(
                    FGRAB_E_NODEV,
                    "the card could not be opened again after a failed fgrab_set_buffer",
                )
            };
        };
        let limit = card.info()?.max_frames;
        let count = u32::try_from(total_bytes / frame_bytes as usize)
            .unwrap_or(u32::MAX)
            .min(limit);
        let card = setup
            .card
            .take()
            .ok_or(Failure(FGRAB_E_INTERNAL, String::new()))?;
        // SAFETY: the caller keeps the buffer valid and unused until `fgrab_close`, which
        // ends the stream first (contract above).
        let memory = unsafe { Buffer::from_raw_parts(buffer.cast(), total_bytes) };
        let geometry = Geometry::new(frame_bytes, count);
        let stream = match card.attach(memory, geometry) {
            Ok(stream) => stream,
            Err(failed) => {
                // The card comes back for another fgrab_set_buffer (the memory is the
                // caller's either way).
                setup.card = failed.card;
                return Err(failed.error.into());
            }
        };
        match stream.into_shared() {
            Ok(stream) => {
                setup.frame_bytes = frame_bytes;
                setup.base = buffer as usize;
                // Under `setup`'s lock, with no stream yet (checked above): set once.
                let _ = handle.stream.set(stream);
                Ok(())
            }
            Err(error) => {
                // The stream ended with its file; open the card again.
                setup.card = Card::open(&handle.path).ok();
                Err(error.into())
            }
        }
    })
}

/// Starts the card: from now on frames are filled and [`fgrab_wait_frame`] returns them.
/// `FGRAB_E_STATE` without a buffer or when already started.
///
/// # Safety
///
/// `h` must be null or a handle from `fgrab_open`.
#[no_mangle]
pub unsafe extern "C" fn fgrab_start(h: *mut Handle) -> c_int {
    with_handle(h, |handle| Ok(handle.stream()?.start()?))
}

/// Stops the card: frames filled before still come from [`fgrab_wait_frame`], then it
/// returns `FGRAB_E_STATE`, in every thread that waits. `FGRAB_E_STATE` when not started.
///
/// # Safety
///
/// `h` must be null or a handle from `fgrab_open`.
#[no_mangle]
pub unsafe extern "C" fn fgrab_stop(h: *mut Handle) -> c_int {
    with_handle(h, |handle| Ok(handle.stream()?.stop()?))
}

/// Waits up to `timeout_ms` (0: only look, [`FGRAB_WAIT_FOREVER`]: no limit) for the next
/// frame. After a stop, frames filled before it are still handed out. Other threads may
/// release frames, stop, abort the wait or close meanwhile.
///
/// # Safety
///
/// `h` must be null or a handle from `fgrab_open`; `out` null or writable.
#[no_mangle]
pub unsafe extern "C" fn fgrab_wait_frame(
    h: *mut Handle,
    timeout_ms: u32,
    out: *mut FrameInfo,
) -> c_int {
    with_handle(h, |handle| {
        if out.is_null() {
            return fail(FGRAB_E_INVAL, "out is null");
        }
        let stream = handle.stream()?;
        let timeout =
            (timeout_ms != FGRAB_WAIT_FOREVER).then(|| Duration::from_millis(timeout_ms.into()));
        let frame = match stream.next_frame(timeout) {
            Ok(frame) => frame,
            Err(Error::Timeout { .. }) => {
                return fail(FGRAB_E_TIMEOUT, format!("no frame within {timeout_ms} ms"))
            }
            Err(Error::Stopped) => return fail(FGRAB_E_STATE, "not started"),
            Err(Error::Canceled) => return fail(FGRAB_E_ABORTED, "aborted by fgrab_abort_wait"),
            Err(Error::Ended | Error::CardGone) => {
                return fail(FGRAB_E_NODEV, "the card went away; the stream ended")
            }
            Err(error) => return Err(error.into()),
        };
        let info = frame.info();
        let (frame_bytes, base) = {
            let setup = lock(&handle.setup);
            (setup.frame_bytes as usize, setup.base)
        };
        let out_info = FrameInfo {
            index: info.index,
            flags: info.flags & fgrab_uapi::META_INCOMPLETE,
            sequence: info.sequence,
            timestamp_ns: info.timestamp_ns,
            bytes: info.bytes,
            reserved: 0,
            data: (base + info.index as usize * frame_bytes) as *const c_void,
        };
        lock(&handle.held).insert(info.index, frame);
        // SAFETY: `out` is non-null and writable (contract); any alignment.
        unsafe { out.write_unaligned(out_info) };
        Ok(())
    })
}

/// Gives frame `index` back to the card, at once; any thread may release any held frame.
///
/// # Safety
///
/// `h` must be null or a handle from `fgrab_open`.
#[no_mangle]
pub unsafe extern "C" fn fgrab_release_frame(h: *mut Handle, index: u32) -> c_int {
    with_handle(h, |handle| {
        handle.stream()?;
        let frame = lock(&handle.held)
            .remove(&index)
            .ok_or_else(|| Failure(FGRAB_E_INVAL, format!("frame {index} is not held")))?;
        Ok(frame.release()?)
    })
}

/// Makes one [`fgrab_wait_frame`] return `FGRAB_E_ABORTED`: the one in progress in another
/// thread, or the next one if none is (GenTL's `EventKill`).
///
/// # Safety
///
/// `h` must be null or a handle from `fgrab_open`.
#[no_mangle]
pub unsafe extern "C" fn fgrab_abort_wait(h: *mut Handle) -> c_int {
    with_handle(h, |handle| {
        handle.stream()?.canceler().cancel();
        Ok(())
    })
}

/// Reads the counters (zeros before a buffer is set).
///
/// # Safety
///
/// `h` must be null or a handle from `fgrab_open`; `out` null or writable.
#[no_mangle]
pub unsafe extern "C" fn fgrab_get_counters(h: *mut Handle, out: *mut Counters) -> c_int {
    with_handle(h, |handle| {
        if out.is_null() {
            return fail(FGRAB_E_INVAL, "out is null");
        }
        let counters = handle
            .stream
            .get()
            .map(SharedStream::counters)
            .unwrap_or_default();
        // SAFETY: `out` is non-null and writable (contract); any alignment.
        unsafe {
            out.write_unaligned(Counters {
                frames_delivered: counters.delivered,
                frames_dropped: counters.dropped,
                frames_failed: counters.failed,
                bytes_delivered: counters.bytes,
            })
        };
        Ok(())
    })
}

/// Numbers of the cards present (`/dev/fgrabN`), ascending.
fn cards() -> Vec<u32> {
    fgrab::card_numbers()
}

/// How many cards there are (`/dev/fgrab0` .. ); they are numbered from 0.
#[no_mangle]
pub extern "C" fn fgrab_card_count() -> c_int {
    catch_unwind(|| c_int::try_from(cards().len()).unwrap_or(c_int::MAX))
        .unwrap_or(FGRAB_E_INTERNAL)
}

/// Describes card `card` (PCI location, limits) without streaming from it.
///
/// # Safety
///
/// `out` must be null or writable.
#[no_mangle]
pub unsafe extern "C" fn fgrab_card_info(card: c_int, out: *mut CardInfo) -> c_int {
    if out.is_null() || card < 0 {
        set_last_error(0, "out is null or the card number negative".into());
        return FGRAB_E_INVAL;
    }
    let result = catch_unwind(|| -> Result<CardInfo, Failure> {
        let mut opened = Card::open(format!("/dev/fgrab{card}"))?;
        let info = opened.info()?;
        let location = info.pci_location;
        Ok(CardInfo {
            card: info.card_index,
            hw_version: info.hw_version,
            pci_domain: location >> 16,
            // CAST: 8-bit fields of the location.
            pci_bus: (location >> 8) as u8,
            pci_device: ((location >> 3) & 0x1f) as u8,
            pci_function: (location & 0x7) as u8,
            max_frame_bytes: info.max_frame_bytes,
            max_frames: info.max_frames,
            frame_bytes: info.frame_bytes,
            frame_period_ns: info.frame_period_ns,
            ..CardInfo::default()
        })
    });
    match result {
        Ok(Ok(info)) => {
            // SAFETY: `out` is non-null and writable (contract); any alignment.
            unsafe { out.write_unaligned(info) };
            FGRAB_OK
        }
        Ok(Err(Failure(code, text))) => {
            set_last_error(0, text);
            code
        }
        Err(_) => FGRAB_E_INTERNAL,
    }
}

/// A fixed description of a code.
#[no_mangle]
pub extern "C" fn fgrab_strerror(code: c_int) -> *const c_char {
    let text: &'static CStr = match code {
        FGRAB_OK => c"success",
        FGRAB_E_INVAL => c"invalid argument",
        FGRAB_E_NODEV => c"no such card, or the card went away",
        FGRAB_E_BUSY => c"the card is busy (another process streams from it)",
        FGRAB_E_TIMEOUT => c"timed out waiting for a frame",
        FGRAB_E_STATE => c"not allowed in the current state",
        FGRAB_E_IO => c"driver or io_uring failure",
        FGRAB_E_NOMEM => c"out of memory",
        FGRAB_E_INTERNAL => c"internal library error",
        FGRAB_E_MEMLOCK => {
            c"locked-memory limit (RLIMIT_MEMLOCK) too low for the buffer; see fgrab_last_error()"
        }
        FGRAB_E_ABORTED => c"the wait was aborted (fgrab_abort_wait)",
        _ => c"unknown error code",
    };
    text.as_ptr()
}

/// The message of the calling thread's last failed call on `h`, or of its last failed
/// `fgrab_open`, `fgrab_close` or `fgrab_card_info` when `h` is null. Valid until this
/// thread's next failed call of the same kind.
///
/// # Safety
///
/// `h` must be null or a handle from `fgrab_open` (only its address is used).
#[no_mangle]
pub unsafe extern "C" fn fgrab_last_error(h: *const Handle) -> *const c_char {
    LAST_ERROR
        .try_with(|errors| {
            errors
                .borrow()
                .get(&(h as usize))
                .map_or(c"".as_ptr(), |text| text.as_ptr())
        })
        .unwrap_or(c"thread exiting".as_ptr())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The memlock error keeps its own code and the library's message (limit, shortfall).
    #[test]
    fn memlock_error_code_and_message() {
        let Failure(code, text) = Failure::from(Error::MemlockLimit {
            needed: 16 << 20,
            limit: 8 << 20,
        });
        assert_eq!(code, FGRAB_E_MEMLOCK);
        assert!(text.contains("RLIMIT_MEMLOCK of 8388608 bytes"), "{text}");
        assert!(text.contains("short by at least 8388608 bytes"), "{text}");
        // SAFETY: fgrab_strerror returns a static C string.
        let description = unsafe { CStr::from_ptr(fgrab_strerror(FGRAB_E_MEMLOCK)) };
        assert!(description.to_str().unwrap().contains("RLIMIT_MEMLOCK"));
        // A plain ENOMEM of io_uring stays FGRAB_E_NOMEM.
        let Failure(code, _) = Failure::from(Error::Ring {
            operation: "register_buffers",
            source: std::io::Error::from_raw_os_error(libc::ENOMEM),
        });
        assert_eq!(code, FGRAB_E_NOMEM);
    }
}
