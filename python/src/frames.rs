//! `fgrab.Frames`: the iterator `Camera.stream()` returns.

use crate::camera::Camera;
use crate::frame::Frame;
use crate::wait;
use pyo3::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Frames as they come (`for frame in cam.stream(frames=16):`).
#[pyclass(frozen, module = "fgrab")]
pub struct Frames {
    camera: Py<Camera>,
    timeout: Option<Duration>,
    /// Frames still to deliver (`None`: no limit).
    left: Mutex<Option<u64>>,
    /// The iteration ended and the stream was stopped (or is being stopped).
    finished: AtomicBool,
}

impl Frames {
    pub(crate) fn new(
        camera: Py<Camera>,
        frames: Option<u64>,
        timeout: Option<Duration>,
    ) -> PyResult<Self> {
        Ok(Self {
            camera,
            timeout,
            left: Mutex::new(frames),
            finished: AtomicBool::new(false),
        })
    }

    fn left(&self) -> std::sync::MutexGuard<'_, Option<u64>> {
        self.left
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Ends the iteration: the stream stops (once).
    fn finish(&self, py: Python<'_>) -> PyResult<()> {
        if self.finished.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let camera = self.camera.get();
        py.detach(|| camera.stop_stream())
    }
}

#[pymethods]
impl Frames {
    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Frame>> {
        if self.finished.load(Ordering::Acquire) {
            return Ok(None);
        }
        if *self.left() == Some(0) {
            self.finish(py)?;
            return Ok(None);
        }
        let camera = self.camera.get();
        let (stream, format) = py.detach(|| camera.running())?;
        let frame = wait::next_frame(py, &stream, self.timeout)?;
        if let Some(left) = self.left().as_mut() {
            *left = left.saturating_sub(1);
        }
        Ok(Some(Frame::new(frame, format)))
    }

    /// Stops the stream now (an iteration left with `break` stops it when the iterator is
    /// collected; call this, or use `with cam.stream() as frames:`, to stop it at once).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.finish(py)
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        _type: Option<Bound<'_, PyAny>>,
        _value: Option<Bound<'_, PyAny>>,
        _traceback: Option<Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        self.finish(py)?;
        Ok(false)
    }
}

impl Drop for Frames {
    fn drop(&mut self) {
        if !self.finished.swap(true, Ordering::AcqRel) {
            let _ = self.camera.get().stop_stream();
        }
    }
}
