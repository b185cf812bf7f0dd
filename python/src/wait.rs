//! Waiting for a frame without the GIL, interruptible by Ctrl-C.
//!
//! The wait runs with the GIL released, so other Python threads run meanwhile (another
//! thread may execute `TriggerSoftware` or stop the stream). Python delivers signals only to
//! the main thread and only between bytecodes, so a wait that never returned would make
//! Ctrl-C wait too: the wait is cut into slices, and between two slices the signal handlers
//! run (`KeyboardInterrupt` propagates from there). A slice costs one wake-up per
//! [`SLICE`] of waiting, nothing per frame.

use crate::errors::IntoPy;
use fgrab::{Error, OwnedFrame, SharedStream};
use pyo3::prelude::*;
use std::time::{Duration, Instant};

/// Longest wait between two checks for signals: also the worst-case delay of Ctrl-C.
const SLICE: Duration = Duration::from_millis(50);

/// Waits up to `timeout` (forever with `None`) for the next frame of `stream`.
pub(crate) fn next_frame(
    py: Python<'_>,
    stream: &SharedStream<'static>,
    timeout: Option<Duration>,
) -> PyResult<OwnedFrame<'static>> {
    until_stopped(py, stream, timeout)?.ok_or_else(|| crate::errors::to_py(Error::Stopped))
}

/// [`next_frame`], `None` once the stream is stopped and its filled frames were handed out.
pub(crate) fn until_stopped(
    py: Python<'_>,
    stream: &SharedStream<'static>,
    timeout: Option<Duration>,
) -> PyResult<Option<OwnedFrame<'static>>> {
    let deadline = timeout.map(|timeout| Instant::now() + timeout);
    loop {
        let slice = match deadline {
            Some(deadline) => deadline
                .saturating_duration_since(Instant::now())
                .min(SLICE),
            None => SLICE,
        };
        match py.detach(|| stream.next_frame(Some(slice))) {
            Err(Error::Timeout { .. })
                if deadline.is_none_or(|deadline| Instant::now() < deadline) =>
            {
                py.check_signals()?;
            }
            Err(Error::Stopped) => return Ok(None),
            result => return result.map(Some).py_err(),
        }
    }
}
