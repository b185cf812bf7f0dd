//! The legacy fgrab C API (`include/fgrab_legacy.h`), over the `fgrab` crate.
//!
//! Every entry point validates its arguments, catches panics (none unwinds into C), and
//! returns an `FGRAB_*` code; the handle keeps a message for [`fgrab_last_error`].

#![deny(missing_docs)]

use fgrab::{Buffer, Card, Error, Geometry, Stream};
use std::cell::{RefCell, UnsafeCell};
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
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

/// Timeout of [`fgrab_wait_frame`] that waits as long as it takes.
pub const FGRAB_WAIT_FOREVER: u32 = u32::MAX;

/// An open card (`fgrab_handle`).
///
/// Calls on one handle must not overlap: a call made while another runs on the same handle
/// (from another thread) is refused with [`FGRAB_E_STATE`] instead of racing.
pub struct Handle {
    /// Set while a call runs.
    busy: AtomicBool,
    state: UnsafeCell<State>,
}

/// What a handle holds; reached only by the call that set [`Handle::busy`].
struct State {
    path: String,
    card: Option<Card>,
    stream: Option<Stream<'static>>,
    frame_bytes: u32,
    base: usize,
    message: CString,
    /// A call panicked: the state may be inconsistent, only `fgrab_close` is allowed.
    poisoned: bool,
}

thread_local! {
    /// Why the last `fgrab_open` on this thread failed (there is no handle to keep it).
    static OPEN_ERROR: RefCell<CString> = RefCell::new(CString::default());
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
            Error::Ended => FGRAB_E_NODEV,
            Error::Timeout { .. } => FGRAB_E_TIMEOUT,
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

/// Runs `body` on the handle's state, converting errors and panics into codes and messages.
fn with_handle(h: *mut Handle, body: impl FnOnce(&mut State) -> Result<(), Failure>) -> c_int {
    if h.is_null() {
        return FGRAB_E_INVAL;
    }
    // SAFETY: a non-null handle comes from `fgrab_open` and is live until `fgrab_close`
    // (caller contract); only its atomic flag is touched before the flag is won.
    let handle = unsafe { &*h };
    if handle.busy.swap(true, Ordering::Acquire) {
        return FGRAB_E_STATE;
    }
    // SAFETY: this call set `busy`, so it is the only one reaching the state until it
    // clears the flag below.
    let state = unsafe { &mut *handle.state.get() };
    let code = if state.poisoned {
        FGRAB_E_INTERNAL
    } else {
        let outcome = catch_unwind(AssertUnwindSafe(|| body(state)));
        match outcome {
            Ok(Ok(())) => FGRAB_OK,
            Ok(Err(Failure(code, text))) => {
                state.message = message(text);
                code
            }
            Err(_) => {
                state.poisoned = true;
                state.message =
                    message("internal error (panic caught); only fgrab_close is allowed".into());
                FGRAB_E_INTERNAL
            }
        }
    };
    handle.busy.store(false, Ordering::Release);
    code
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
                busy: AtomicBool::new(false),
                state: UnsafeCell::new(State {
                    path,
                    card: Some(card),
                    stream: None,
                    frame_bytes: 0,
                    base: 0,
                    message: CString::default(),
                    poisoned: false,
                }),
            });
            // SAFETY: as above.
            unsafe { out.write_unaligned(Box::into_raw(handle)) };
            return FGRAB_OK;
        }
        Ok(Err(failure)) => failure,
        Err(_) => Failure(FGRAB_E_INTERNAL, "internal error (panic caught)".into()),
    };
    // Only a thread being torn down has no thread-locals left; the code still says it all.
    let _ = OPEN_ERROR.try_with(|error| *error.borrow_mut() = message(failure.1));
    failure.0
}

/// Stops and releases the handle; the buffer is no longer written once this returns
/// `FGRAB_OK`. On `FGRAB_E_IO` the card may still write it: it must never be freed.
///
/// # Safety
///
/// `h` must be null or a handle from `fgrab_open`, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn fgrab_close(h: *mut Handle) -> c_int {
    if h.is_null() {
        return FGRAB_E_INVAL;
    }
    // SAFETY: from `fgrab_open`; checked for a call still running before taking it back.
    if unsafe { &*h }.busy.swap(true, Ordering::Acquire) {
        return FGRAB_E_STATE;
    }
    // SAFETY: from `fgrab_open`, no other call runs on it; ownership returns here.
    let handle = unsafe { Box::from_raw(h) };
    let mut state = handle.state.into_inner();
    let outcome = catch_unwind(AssertUnwindSafe(|| match state.stream.take() {
        Some(stream) => stream.detach().map(|_| ()),
        None => Ok(()),
    }));
    match outcome {
        Ok(Ok(())) => FGRAB_OK,
        Ok(Err(_)) => FGRAB_E_IO,
        Err(_) => FGRAB_E_INTERNAL,
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
    with_handle(h, |state| {
        if buffer.is_null() || frame_bytes == 0 || total_bytes < frame_bytes as usize {
            return fail(FGRAB_E_INVAL, "buffer is null or smaller than one frame");
        }
        if (buffer as usize).checked_add(total_bytes).is_none() {
            return fail(FGRAB_E_INVAL, "buffer wraps around the address space");
        }
        let Some(card) = state.card.as_mut() else {
            return if state.stream.is_some() {
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
        let card = state
            .card
            .take()
            .ok_or(Failure(FGRAB_E_INTERNAL, String::new()))?;
        // SAFETY: the caller keeps the buffer valid and unused until `fgrab_close`, which
        // ends the stream first (contract above).
        let memory = unsafe { Buffer::from_raw_parts(buffer.cast(), total_bytes) };
        let geometry = Geometry::new(frame_bytes, count);
        match card.attach(memory, geometry) {
            Ok(stream) => {
                state.stream = Some(stream);
                state.frame_bytes = frame_bytes;
                state.base = buffer as usize;
                Ok(())
            }
            Err(error) => {
                // The card file is gone with the failed attach; open it again.
                state.card = Card::open(&state.path).ok();
                Err(error.into())
            }
        }
    })
}

fn stream(state: &mut State) -> Result<&mut Stream<'static>, Failure> {
    state
        .stream
        .as_mut()
        .ok_or_else(|| Failure(FGRAB_E_STATE, "no buffer set".into()))
}

/// Starts the card.
///
/// # Safety
///
/// `h` must be null or a handle from `fgrab_open`.
#[no_mangle]
pub unsafe extern "C" fn fgrab_start(h: *mut Handle) -> c_int {
    with_handle(h, |state| Ok(stream(state)?.start()?))
}

/// Stops the card.
///
/// # Safety
///
/// `h` must be null or a handle from `fgrab_open`.
#[no_mangle]
pub unsafe extern "C" fn fgrab_stop(h: *mut Handle) -> c_int {
    with_handle(h, |state| Ok(stream(state)?.stop()?))
}

/// Waits up to `timeout_ms` (0: only look, [`FGRAB_WAIT_FOREVER`]: no limit) for the next
/// frame. After a stop, frames filled before it are still handed out.
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
    with_handle(h, |state| {
        if out.is_null() {
            return fail(FGRAB_E_INVAL, "out is null");
        }
        let frame_bytes = state.frame_bytes as usize;
        let base = state.base;
        let stream = stream(state)?;
        if !stream.is_running() && stream.ready_frames() == 0 {
            return if stream.is_attached() {
                fail(FGRAB_E_STATE, "not started")
            } else {
                fail(FGRAB_E_NODEV, "the card went away; the stream ended")
            };
        }
        let timeout =
            (timeout_ms != FGRAB_WAIT_FOREVER).then(|| Duration::from_millis(timeout_ms.into()));
        let Some(info) = stream.take_frame(timeout)? else {
            return fail(FGRAB_E_TIMEOUT, format!("no frame within {timeout_ms} ms"));
        };
        let frame = FrameInfo {
            index: info.index,
            flags: info.flags & fgrab_uapi::META_INCOMPLETE,
            sequence: info.sequence,
            timestamp_ns: info.timestamp_ns,
            bytes: info.bytes,
            reserved: 0,
            data: (base + info.index as usize * frame_bytes) as *const c_void,
        };
        // SAFETY: `out` is non-null and writable (contract); any alignment.
        unsafe { out.write_unaligned(frame) };
        Ok(())
    })
}

/// Gives frame `index` back to the card, at once.
///
/// # Safety
///
/// `h` must be null or a handle from `fgrab_open`.
#[no_mangle]
pub unsafe extern "C" fn fgrab_release_frame(h: *mut Handle, index: u32) -> c_int {
    with_handle(h, |state| {
        let stream = stream(state)?;
        stream.release(index)?;
        Ok(stream.flush()?)
    })
}

/// Reads the counters (zeros before a buffer is set).
///
/// # Safety
///
/// `h` must be null or a handle from `fgrab_open`; `out` null or writable.
#[no_mangle]
pub unsafe extern "C" fn fgrab_get_counters(h: *mut Handle, out: *mut Counters) -> c_int {
    with_handle(h, |state| {
        if out.is_null() {
            return fail(FGRAB_E_INVAL, "out is null");
        }
        let counters = state
            .stream
            .as_ref()
            .map(Stream::counters)
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
        _ => c"unknown error code",
    };
    text.as_ptr()
}

/// The message of the last failed call on `h`, or of the last failed `fgrab_open` on this
/// thread when `h` is null.
///
/// # Safety
///
/// `h` must be null or a handle from `fgrab_open`.
#[no_mangle]
pub unsafe extern "C" fn fgrab_last_error(h: *const Handle) -> *const c_char {
    if h.is_null() {
        // The thread's own string: valid until its next failed `fgrab_open`.
        return OPEN_ERROR
            .try_with(|error| error.borrow().as_ptr())
            .unwrap_or(c"thread exiting".as_ptr());
    }
    // SAFETY: a handle from `fgrab_open`.
    let handle = unsafe { &*h };
    if handle.busy.swap(true, Ordering::Acquire) {
        return c"another call is running on this handle".as_ptr();
    }
    // SAFETY: this call set `busy`, so no other call reaches the state; the message stays
    // until the next call on `h` replaces it (the documented lifetime of the pointer).
    let text = unsafe { (*handle.state.get()).message.as_ptr() };
    handle.busy.store(false, Ordering::Release);
    text
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
