//! `fgrab.Frames`: the iterator `Camera.stream()` returns.

use crate::camera::Camera;
use crate::format::FrameFormat;
use crate::frame::Frame;
use crate::wait;
use fgrab::SharedStream;
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
    /// The stream this iteration started (at its first frame) and reads to the end: a
    /// stop from another thread ends the iteration instead of being undone by a restart.
    stream: Mutex<Option<(SharedStream<'static>, FrameFormat)>>,
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
            stream: Mutex::new(None),
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
        let started = self
            .stream
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        let (stream, format) = match started {
            Some(started) => started,
            None => {
                let camera = self.camera.get();
                let started = py.detach(|| camera.running())?;
                *self
                    .stream
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(started.clone());
                started
            }
        };
        // Stopped (by another thread, or `cam.stop()` in the loop): the iteration ends.
        let Some(frame) = wait::until_stopped(py, &stream, self.timeout)? else {
            self.finished.store(true, Ordering::Release);
            return Ok(None);
        };
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
