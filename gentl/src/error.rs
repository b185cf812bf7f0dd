//! Errors: the `GC_ERROR` each call returns, the message `GCGetLastError` gives the calling
//! thread, and the guard every entry point runs its body in (library initialised, no panic
//! unwinding into C).

use crate::abi::*;
use crate::info;
use std::cell::RefCell;
use std::ffi::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};

/// A failed call: its code and what went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The `GC_ERR_*` code.
    pub code: GcError,
    /// Why, for `GCGetLastError`.
    pub message: String,
}

impl Failure {
    /// A failure with `code`.
    pub fn new(code: GcError, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// `Result` of the producer's internals.
pub type Result<T> = std::result::Result<T, Failure>;

/// Fails with `code`.
pub fn fail<T>(code: GcError, message: impl Into<String>) -> Result<T> {
    Err(Failure::new(code, message))
}

impl From<fgrab::Error> for Failure {
    fn from(error: fgrab::Error) -> Self {
        use fgrab::Error;
        let code = match &error {
            Error::Open { source, .. } => match source.raw_os_error() {
                Some(libc::EACCES | libc::EPERM) => GC_ERR_ACCESS_DENIED,
                Some(libc::EBUSY) => GC_ERR_RESOURCE_IN_USE,
                _ => GC_ERR_IO,
            },
            Error::Command { errno, .. } => match *errno {
                libc::EBUSY => GC_ERR_RESOURCE_IN_USE,
                libc::EINVAL | libc::E2BIG => GC_ERR_INVALID_PARAMETER,
                libc::ENOMEM => GC_ERR_OUT_OF_MEMORY,
                _ => GC_ERR_IO,
            },
            Error::MemlockLimit { .. } => GC_ERR_RESOURCE_EXHAUSTED,
            Error::Geometry { .. } => GC_ERR_INVALID_PARAMETER,
            Error::Timeout { .. } => GC_ERR_TIMEOUT,
            Error::Canceled => GC_ERR_ABORT,
            Error::Buffer { .. } => GC_ERR_OUT_OF_MEMORY,
            _ => GC_ERR_IO,
        };
        Failure::new(code, error.to_string())
    }
}

/// `GCInitLib` was called and `GCCloseLib` not since.
static INITIALIZED: AtomicBool = AtomicBool::new(false);

/// Marks the library initialised; `false` if it already was.
pub fn initialize() -> bool {
    !INITIALIZED.swap(true, Ordering::AcqRel)
}

/// Marks the library closed; `false` if it was not open.
pub fn deinitialize() -> bool {
    INITIALIZED.swap(false, Ordering::AcqRel)
}

thread_local! {
    /// The last error of this thread: code and message (`GCGetLastError`).
    static LAST_ERROR: RefCell<(GcError, String)> =
        const { RefCell::new((GC_ERR_SUCCESS, String::new())) };
}

/// Records `failure` as this thread's last error.
pub fn set_last_error(failure: &Failure) {
    // Only a thread being torn down has no thread-locals left; the code still says it all.
    let _ = LAST_ERROR.try_with(|last| {
        *last.borrow_mut() = (failure.code, failure.message.replace('\0', " "));
    });
}

/// This thread's last error.
pub fn last_error() -> (GcError, String) {
    LAST_ERROR
        .try_with(|last| last.borrow().clone())
        .unwrap_or((GC_ERR_SUCCESS, String::new()))
}

/// Runs an entry point's `body`: `GC_ERR_NOT_INITIALIZED` before `GCInitLib`, the failure's
/// code (and this thread's last error) when it fails, `GC_ERR_ERROR` when it panics.
pub fn entry(function: &'static str, body: impl FnOnce() -> Result<()>) -> GcError {
    entry_with(function, true, body)
}

/// [`entry`], with the initialisation check optional (`GCInitLib`, `GCGetLastError`).
pub fn entry_with(
    function: &'static str,
    needs_init: bool,
    body: impl FnOnce() -> Result<()>,
) -> GcError {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        if needs_init && !INITIALIZED.load(Ordering::Acquire) {
            return fail(GC_ERR_NOT_INITIALIZED, "GCInitLib has not been called");
        }
        body()
    }));
    let failure = match outcome {
        Ok(Ok(())) => return GC_ERR_SUCCESS,
        Ok(Err(failure)) => failure,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|text| text.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Failure::new(
                GC_ERR_ERROR,
                format!("internal error (panic caught): {what}"),
            )
        }
    };
    let failure = Failure::new(failure.code, format!("{function}: {}", failure.message));
    set_last_error(&failure);
    failure.code
}

/// `GCGetLastError`: the calling thread's last error code and its message (a NUL-terminated
/// string, with the size contract of every info call).
///
/// # Safety
///
/// `error_code` must be null or writable; `text` null or writable for `*size` bytes; `size`
/// null or valid.
#[no_mangle]
pub unsafe extern "C" fn GCGetLastError(
    error_code: *mut GcError,
    text: *mut c_char,
    size: *mut usize,
) -> GcError {
    entry_with("GCGetLastError", false, || {
        let (code, message) = last_error();
        if error_code.is_null() {
            return fail(GC_ERR_INVALID_PARAMETER, "piErrorCode is NULL");
        }
        // SAFETY: non-null and writable (caller contract); any alignment.
        unsafe { error_code.write_unaligned(code) };
        // SAFETY: `text` and `size` per the caller contract.
        unsafe { info::write_string(&message, text, size) }
    })
}
