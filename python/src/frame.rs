//! `fgrab.Frame`: one filled frame, lent to Python without a copy.
//!
//! The frame's bytes stay in the buffer the card writes. Python reaches them only through
//! the buffer protocol of this object (`memoryview(frame)`, `frame.array`), and every
//! exported view holds a reference to it. The frame goes back to the card when the last of
//! these is gone:
//! - dropping the `Frame` (and every view) returns it, as does leaving `with frame:`;
//! - [`Frame::release`] while views exist only marks it: the views keep their bytes (the
//!   card cannot write a frame it was not given back), and the last view's release returns
//!   it. New views of a released frame raise `FrameReleased`.
//!
//! So a numpy view never sees the card overwrite it (the bug class of Harvesters #450/#452),
//! and no rule needs the user's discipline.

use crate::errors::{IntoPy, Kind};
use crate::format::FrameFormat;
use fgrab::{FrameStatus, OwnedFrame};
use pyo3::exceptions::PyBufferError;
use pyo3::ffi;
use pyo3::prelude::*;
use std::ffi::c_int;
use std::sync::Mutex;

/// A filled frame (`fgrab.Frame`).
#[pyclass(frozen, module = "fgrab")]
pub struct Frame {
    state: Mutex<State>,
    info: fgrab::FrameInfo,
    status: FrameStatus,
    format: FrameFormat,
}

/// Who holds the frame's bytes.
struct State {
    /// The frame, until it goes back to the card.
    frame: Option<OwnedFrame<'static>>,
    /// Buffer-protocol views alive (memoryviews, numpy arrays).
    views: usize,
    /// `release()` was called: no new views; back to the card with the last view.
    released: bool,
}

impl Frame {
    pub(crate) fn new(frame: OwnedFrame<'static>, format: FrameFormat) -> Self {
        Self {
            info: frame.info(),
            status: frame.status(),
            format,
            state: Mutex::new(State {
                frame: Some(frame),
                views: 0,
                released: false,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[pymethods]
impl Frame {
    /// The frame as a read-only numpy array of shape (height, width), no copy.
    #[getter]
    fn array<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let this = slf.get();
        let pixels = u64::from(this.format.width) * u64::from(this.format.height);
        let numpy = py.import("numpy")?;
        let flat = numpy.call_method1("frombuffer", (slf, this.format.dtype, pixels))?;
        flat.call_method1("reshape", ((this.format.height, this.format.width),))
    }

    /// Sequence number since the stream started; a gap means the card dropped frames.
    #[getter]
    fn sequence(&self) -> u64 {
        self.info.sequence
    }

    /// Index of the frame's slot in the stream's buffer.
    #[getter]
    fn index(&self) -> u32 {
        self.info.index
    }

    /// End of the frame, `CLOCK_MONOTONIC` nanoseconds (comparable with
    /// `time.monotonic_ns()`).
    #[getter]
    fn timestamp_ns(&self) -> u64 {
        self.info.timestamp_ns
    }

    /// Bytes the card wrote (less than `nbytes` for an incomplete frame).
    #[getter]
    fn bytes_filled(&self) -> u32 {
        self.info.bytes
    }

    /// Bytes of the frame: width x height x bytes per pixel.
    #[getter]
    fn nbytes(&self) -> u64 {
        self.format.payload()
    }

    /// Whether the card ended the frame early (the rest of its bytes are stale).
    #[getter]
    fn incomplete(&self) -> bool {
        self.status != FrameStatus::Complete
    }

    #[getter]
    fn width(&self) -> u32 {
        self.format.width
    }

    #[getter]
    fn height(&self) -> u32 {
        self.format.height
    }

    /// PFNC name of the pixel format (`Mono8`, `Mono16`, `BayerRG8`).
    #[getter]
    fn pixel_format(&self) -> &'static str {
        self.format.pixel_format
    }

    /// Whether the frame was released (it may still be held by views).
    #[getter]
    fn released(&self) -> bool {
        self.state().released
    }

    /// Gives the frame back to the card: now if no view of it exists, else when the last
    /// view is gone. Idempotent.
    fn release(&self) -> PyResult<()> {
        let frame = {
            let mut state = self.state();
            state.released = true;
            if state.views > 0 {
                return Ok(());
            }
            state.frame.take()
        };
        match frame {
            Some(frame) => frame.release().py_err(),
            None => Ok(()),
        }
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __exit__(
        &self,
        _type: Option<Bound<'_, PyAny>>,
        _value: Option<Bound<'_, PyAny>>,
        _traceback: Option<Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        self.release()?;
        Ok(false)
    }

    fn __len__(&self) -> usize {
        // CAST: a frame's size is a u32 on the wire.
        self.format.payload() as usize
    }

    fn __repr__(&self) -> String {
        format!(
            "<fgrab.Frame sequence={} {}x{} {}{}{}>",
            self.info.sequence,
            self.format.width,
            self.format.height,
            self.format.pixel_format,
            if self.incomplete() { " incomplete" } else { "" },
            if self.released() { " released" } else { "" },
        )
    }

    /// Buffer protocol: read-only bytes of the frame, kept from the card while exported.
    ///
    /// # Safety
    ///
    /// Called by Python with a valid `view` to fill.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        if flags & ffi::PyBUF_WRITABLE != 0 {
            return Err(PyBufferError::new_err("fgrab frames are read-only"));
        }
        let this = slf.get();
        let mut state = this.state();
        if state.released {
            return Err(Kind::FrameReleased.err(
                "the frame was released: views made before stay valid, new ones cannot be made",
                None,
            ));
        }
        let Some(frame) = state.frame.as_ref() else {
            return Err(Kind::FrameReleased.err("the frame went back to the card", None));
        };
        let bytes: &[u8] = frame;
        // Only the frame's payload: the slot may be longer than width x height.
        let len = bytes.len().min(this.format.payload() as usize);
        // SAFETY: `view` is valid (the caller's contract); the bytes live as long as
        // `slf`, which the view references (`PyBuffer_FillInfo` takes a reference), and the
        // card does not write them while `views > 0` keeps the frame held.
        let filled = unsafe {
            ffi::PyBuffer_FillInfo(
                view,
                slf.as_ptr(),
                bytes.as_ptr().cast_mut().cast(),
                // CAST: at most a frame's size, a u32.
                len as ffi::Py_ssize_t,
                1,
                flags,
            )
        };
        if filled != 0 {
            return Err(PyErr::fetch(slf.py()));
        }
        state.views += 1;
        Ok(())
    }

    /// The last view's release returns a released frame to the card.
    ///
    /// # Safety
    ///
    /// Called by Python with a view this object filled.
    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {
        let frame = {
            let mut state = self.state();
            state.views -= 1;
            if state.views > 0 || !state.released {
                return;
            }
            state.frame.take()
        };
        // Errors cannot be raised here; the stream reports a failed ring at the next wait.
        drop(frame);
    }
}
