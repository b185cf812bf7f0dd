//! The legacy fgrab C API (`include/fgrab_legacy.h`), over the `fgrab` crate.
//!
//! Every entry point validates its arguments, catches panics (none unwinds into C), and
//! returns an `FGRAB_*` code; the handle keeps a message for [`fgrab_last_error`].

#![deny(missing_docs)]

use fgrab::{Buffer, Card, Error, Geometry, Stream};
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
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

/// An open card (`fgrab_handle`).
pub struct Handle {
    path: String,
    card: Option<Card>,
    stream: Option<Stream<'static>>,
    frame_bytes: u32,
    base: usize,
    message: CString,
}

/// A failed call: code and message.
struct Failure(c_int, String);

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        let code = match &error {
            Error::Open { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                FGRAB_E_NODEV
            }
            Error::Command { errno, .. } => match *errno {
                libc::EBUSY => FGRAB_E_BUSY,
                libc::ENODEV | libc::ENOENT => FGRAB_E_NODEV,
                libc::EINVAL | libc::E2BIG | libc::EFAULT => FGRAB_E_INVAL,
                libc::EALREADY => FGRAB_E_STATE,
                libc::ENOMEM => FGRAB_E_NOMEM,
                _ => FGRAB_E_IO,
            },
            Error::Geometry { .. } | Error::NotHeld { .. } => FGRAB_E_INVAL,
            Error::Ended => FGRAB_E_NODEV,
            _ => FGRAB_E_IO,
        };
        Failure(code, error.to_string())
    }
}

fn fail<T>(code: c_int, message: impl Into<String>) -> Result<T, Failure> {
    Err(Failure(code, message.into()))
}

/// Runs `body` on the handle, converting errors and panics into codes and messages.
fn with_handle(h: *mut Handle, body: impl FnOnce(&mut Handle) -> Result<(), Failure>) -> c_int {
    if h.is_null() {
        return FGRAB_E_INVAL;
    }
    // SAFETY: a non-null handle comes from `fgrab_open` and is not used concurrently
    // (the API is documented single-threaded per handle).
    let handle = unsafe { &mut *h };
    let outcome = catch_unwind(AssertUnwindSafe(|| body(handle)));
    let (code, message) = match outcome {
        Ok(Ok(())) => return FGRAB_OK,
        Ok(Err(Failure(code, message))) => (code, message),
        Err(_) => (
            FGRAB_E_INTERNAL,
            "internal error (panic caught)".to_string(),
        ),
    };
    handle.message = CString::new(message.replace('\0', " ")).unwrap_or_default();
    code
}

/// Opens card `card` (`/dev/fgrabN`).
///
/// # Safety
///
/// `out` must be null or point to writable storage for a pointer.
#[no_mangle]
pub unsafe extern "C" fn fgrab_open(card: c_int, out: *mut *mut Handle) -> c_int {
    if out.is_null() || card < 0 {
        return FGRAB_E_INVAL;
    }
    let opened = catch_unwind(|| {
        let path = format!("/dev/fgrab{card}");
        Card::open(&path).map(|card| (path, card))
    });
    match opened {
        Ok(Ok((path, card))) => {
            let handle = Box::new(Handle {
                path,
                card: Some(card),
                stream: None,
                frame_bytes: 0,
                base: 0,
                message: CString::default(),
            });
            // SAFETY: `out` is writable (checked non-null, caller contract).
            unsafe { *out = Box::into_raw(handle) };
            FGRAB_OK
        }
        Ok(Err(error)) => Failure::from(error).0,
        Err(_) => FGRAB_E_INTERNAL,
    }
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
    // SAFETY: from `fgrab_open`; ownership returns here.
    let mut handle = unsafe { Box::from_raw(h) };
    let outcome = catch_unwind(AssertUnwindSafe(|| match handle.stream.take() {
        Some(stream) => stream.detach().map(|_| ()),
        None => Ok(()),
    }));
    match outcome {
        Ok(Ok(())) => FGRAB_OK,
        Ok(Err(_)) => FGRAB_E_IO,
        Err(_) => FGRAB_E_INTERNAL,
    }
}

/// Uses `buffer` for `total_bytes / frame_bytes` frames packed back to back.
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
        let count = u32::try_from(total_bytes / frame_bytes as usize)
            .map_err(|_| Failure(FGRAB_E_INVAL, "too many frames".into()))?;
        let count = count.min(fgrab_uapi::MAX_FRAMES);
        let Some(card) = handle.card.take() else {
            return fail(FGRAB_E_STATE, "a buffer is set already");
        };
        // SAFETY: the caller keeps the buffer valid and unused until `fgrab_close`, which
        // ends the stream first (contract above).
        let memory = unsafe { Buffer::from_raw_parts(buffer.cast(), total_bytes) };
        let geometry = Geometry::new(frame_bytes, count);
        match card.attach(memory, geometry) {
            Ok(stream) => {
                handle.stream = Some(stream);
                handle.frame_bytes = frame_bytes;
                handle.base = buffer as usize;
                Ok(())
            }
            Err(error) => {
                // The card file is gone with the failed attach; open it again.
                handle.card = Card::open(&handle.path).ok();
                Err(error.into())
            }
        }
    })
}

fn stream(handle: &mut Handle) -> Result<&mut Stream<'static>, Failure> {
    handle
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
    with_handle(h, |handle| Ok(stream(handle)?.start()?))
}

/// Stops the card.
///
/// # Safety
///
/// `h` must be null or a handle from `fgrab_open`.
#[no_mangle]
pub unsafe extern "C" fn fgrab_stop(h: *mut Handle) -> c_int {
    with_handle(h, |handle| Ok(stream(handle)?.stop()?))
}

/// Waits up to `timeout_ms` for the next frame.
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
        let frame_bytes = handle.frame_bytes as usize;
        let base = handle.base;
        let stream = stream(handle)?;
        if !stream.is_running() {
            return fail(FGRAB_E_STATE, "not started");
        }
        let Some(info) = stream.take_frame(Some(Duration::from_millis(u64::from(timeout_ms))))?
        else {
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
        // SAFETY: `out` is non-null and writable (contract).
        unsafe { out.write(frame) };
        Ok(())
    })
}

/// Gives frame `index` back to the card.
///
/// # Safety
///
/// `h` must be null or a handle from `fgrab_open`.
#[no_mangle]
pub unsafe extern "C" fn fgrab_release_frame(h: *mut Handle, index: u32) -> c_int {
    with_handle(h, |handle| Ok(stream(handle)?.release(index)?))
}

/// Reads the counters.
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
        let counters = stream(handle)?.counters();
        // SAFETY: `out` is non-null and writable (contract).
        unsafe {
            out.write(Counters {
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
        _ => c"unknown error code",
    };
    text.as_ptr()
}

/// The message of the last failed call on `h`.
///
/// # Safety
///
/// `h` must be null or a handle from `fgrab_open`.
#[no_mangle]
pub unsafe extern "C" fn fgrab_last_error(h: *const Handle) -> *const c_char {
    if h.is_null() {
        return c"null handle".as_ptr();
    }
    // SAFETY: a handle from `fgrab_open`.
    unsafe { (*h).message.as_ptr() }
}
