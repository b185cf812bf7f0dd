//! `fgrab.Camera`: one card, its features, and its stream.
//!
//! The stream is made on first use (`stream()`, `fetch()`, `start()`) from the features at
//! that moment: `PayloadSize` bytes per frame, `buffer_frames` frames in one buffer the
//! package allocates. It stays attached while stopped (a restart costs no new
//! registration), and is made again when a feature changed the frame format. Ending a
//! stream (format change, `close()`) never waits for the frames the program still holds:
//! the region ends under them (the card never writes their bytes again), and their memory
//! is freed with the last of them.
//!
//! Lock order: `Camera::state`, then the stream's own lock (inside the library). No Python
//! code runs under `state`, and no wait for a frame holds it, so other threads can
//! trigger, stop or read features while one thread waits.

use crate::errors::{IntoPy, Kind};
use crate::features::Features;
use crate::format::{self, FrameFormat};
use crate::frame::Frame;
use crate::frames::Frames;
use crate::wait;
use fgrab::{Buffer, Card, Geometry, SharedStream};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// An open card (`fgrab.Camera`), made by `fgrab.open()`.
#[pyclass(frozen, module = "fgrab")]
pub struct Camera {
    path: PathBuf,
    buffer_frames: u32,
    /// Frames given back to the card per submission (`fgrab::Options::batch`).
    batch_frames: u32,
    state: Mutex<State>,
}

enum State {
    /// Open, no stream: features through the card's file.
    Idle(Box<Card>),
    /// A stream is attached (running or stopped), in `format`.
    Attached {
        stream: SharedStream<'static>,
        format: FrameFormat,
    },
    /// `close()` was called.
    Closed,
}

impl Camera {
    pub(crate) fn open(path: PathBuf, buffer_frames: u32, batch_frames: u32) -> PyResult<Self> {
        if buffer_frames < 2 {
            return Err(Kind::GeometryError.err("buffer_frames must be at least 2", None));
        }
        let most = fgrab::uapi::MAX_BATCH_FRAMES.min(buffer_frames / 2);
        if batch_frames == 0 || (batch_frames > 1 && batch_frames > most) {
            let allowed = if most >= 2 {
                format!("1 (no batching) or 2 to {most}")
            } else {
                "1 (no batching)".to_string()
            };
            return Err(Kind::GeometryError.err(
                format!(
                    "batch_frames must be {allowed} (at most 64, at most half of buffer_frames \
                     {buffer_frames}), not {batch_frames}"
                ),
                None,
            ));
        }
        let card = Card::open(&path).py_err()?;
        Ok(Self {
            path,
            buffer_frames,
            batch_frames,
            state: Mutex::new(State::Idle(Box::new(card))),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` with the card's features: the card's, or the stream's once one is attached
    /// (its file owns the card). Not under the camera's lock for long: a feature command is
    /// one round trip on a ring of its own.
    pub(crate) fn with_features<T>(
        &self,
        f: impl FnOnce(&fgrab::Features) -> PyResult<T>,
    ) -> PyResult<T> {
        let state = self.lock();
        match &*state {
            State::Idle(card) => f(card.features()),
            State::Attached { stream, .. } => f(stream.features()),
            State::Closed => Err(closed()),
        }
    }

    pub(crate) fn path_str(&self) -> String {
        self.path.display().to_string()
    }

    /// The running stream and its format, made and started if needed.
    pub(crate) fn running(&self) -> PyResult<(SharedStream<'static>, FrameFormat)> {
        let mut state = self.lock();
        if let State::Attached { stream, format } = &*state {
            if stream.is_running() {
                return Ok((stream.clone(), format.clone()));
            }
        }
        self.attach(&mut state)?;
        let State::Attached { stream, format } = &*state else {
            unreachable!("attach() leaves the camera attached or fails");
        };
        stream.start().py_err()?;
        Ok((stream.clone(), format.clone()))
    }

    /// Makes `state` an attached stream in the card's current format.
    fn attach(&self, state: &mut State) -> PyResult<()> {
        let current = match state {
            State::Idle(card) => match format::read(card.features())? {
                Some(format) => format,
                None => format::raw_lines(card.info().py_err()?.frame_bytes),
            },
            State::Attached { stream, format } => {
                let current = format::read(stream.features())?
                    .unwrap_or_else(|| format::raw_lines(stream.geometry().frame_bytes()));
                if current == *format {
                    return Ok(());
                }
                current
            }
            State::Closed => return Err(closed()),
        };
        self.detach(state)?;
        let State::Idle(_) = state else {
            unreachable!("detach() leaves the camera idle or fails");
        };
        let payload = u32::try_from(current.payload())
            .map_err(|_| Kind::GeometryError.err("the frame is larger than 4 GiB", None))?;
        let bytes = u64::from(payload) * u64::from(self.buffer_frames);
        let buffer = Buffer::allocate(usize::try_from(bytes).unwrap_or(usize::MAX)).py_err()?;
        let State::Idle(card) = std::mem::replace(state, State::Closed) else {
            unreachable!("checked above");
        };
        let options = fgrab::Options::default().batch(self.batch_frames);
        match card.attach_with(buffer, Geometry::new(payload, self.buffer_frames), options) {
            Ok(stream) => {
                *state = State::Attached {
                    stream: stream.into_shared().py_err()?,
                    format: current,
                };
                Ok(())
            }
            Err(failed) => {
                let failed = *failed;
                if let Some(card) = failed.card {
                    *state = State::Idle(Box::new(card));
                } else {
                    *state = State::Idle(Box::new(Card::open(&self.path).py_err()?));
                }
                Err(crate::errors::to_py(failed.error))
            }
        }
    }

    /// Ends the attached stream, if any, and reopens the card. Frames still held (views
    /// included) keep their bytes: the region ends anyway (the card never writes them
    /// again), and the old buffer is freed with the last of them.
    fn detach(&self, state: &mut State) -> PyResult<()> {
        let State::Attached { .. } = state else {
            return Ok(());
        };
        let State::Attached { stream, format } = std::mem::replace(state, State::Closed) else {
            unreachable!("checked above");
        };
        match stream.detach() {
            Ok(buffer) => drop(buffer),
            Err((_, Some(stream))) => {
                // Held by frames: end the region under them.
                if let Err(error) = stream.end() {
                    *state = State::Attached { stream, format };
                    return Err(crate::errors::to_py(error));
                }
            }
            // The region ended anyway (or could not be confirmed, and its memory is kept
            // forever): the card is free.
            Err((_, None)) => {}
        }
        *state = State::Idle(Box::new(Card::open(&self.path).py_err()?));
        Ok(())
    }

    /// Stops the stream and gives back the frames it filled before the stop, so that the
    /// next start delivers fresh frames only.
    pub(crate) fn stop_stream(&self) -> PyResult<()> {
        let stream = match &*self.lock() {
            State::Attached { stream, .. } if stream.is_running() => stream.clone(),
            _ => return Ok(()),
        };
        stream.stop().py_err()?;
        loop {
            match stream.next_frame(Some(Duration::ZERO)) {
                Ok(frame) => frame.release().py_err()?,
                Err(fgrab::Error::Stopped | fgrab::Error::Timeout { .. }) => return Ok(()),
                Err(error) => return Err(crate::errors::to_py(error)),
            }
        }
    }
}

fn closed() -> PyErr {
    Kind::Error.err("the camera is closed", None)
}

/// Seconds as an optional duration (`None`: forever).
pub(crate) fn seconds(timeout: Option<f64>) -> PyResult<Option<Duration>> {
    timeout
        .map(|seconds| {
            Duration::try_from_secs_f64(seconds).map_err(|_| {
                pyo3::exceptions::PyValueError::new_err(format!(
                    "timeout must be a non-negative number of seconds, not {seconds}"
                ))
            })
        })
        .transpose()
}

#[pymethods]
impl Camera {
    /// The device node.
    #[getter]
    fn path(&self) -> String {
        self.path.display().to_string()
    }

    /// The card's features by SFNC name: `cam.features["Width"] = 640`.
    #[getter]
    fn features(slf: Bound<'_, Self>) -> Features {
        Features::new(slf.unbind())
    }

    /// Executes command feature `name` (`TriggerSoftware`, `AcquisitionStart`, ...), from
    /// any thread, also while another waits for a frame.
    fn execute(&self, py: Python<'_>, name: &str) -> PyResult<()> {
        py.detach(|| self.with_features(|features| features.execute(name).py_err()))
    }

    /// The card's GenICam XML description (bytes).
    #[getter]
    fn xml<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
        let xml = py.detach(|| self.with_features(|features| features.genicam_xml().py_err()))?;
        Ok(pyo3::types::PyBytes::new(py, &xml))
    }

    /// Frames in the stream's buffer.
    #[getter]
    fn buffer_frames(&self) -> u32 {
        self.buffer_frames
    }

    /// Frames given back to the card per submission (1: each frame on its own).
    #[getter]
    fn batch_frames(&self) -> u32 {
        self.batch_frames
    }

    /// Whether the card is streaming.
    #[getter]
    fn streaming(&self) -> bool {
        matches!(&*self.lock(), State::Attached { stream, .. } if stream.is_running())
    }

    /// Starts streaming (making the stream first if needed).
    fn start(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.running().map(drop))
    }

    /// Stops streaming; frames held stay valid. The next start delivers fresh frames.
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.stop_stream())
    }

    /// Waits up to `timeout` seconds (`None`: forever) for the next frame, starting the
    /// stream if needed. Use it as `with cam.fetch() as frame:`.
    #[pyo3(signature = (timeout = Some(5.0)))]
    fn fetch(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Frame> {
        let timeout = seconds(timeout)?;
        let (stream, format) = py.detach(|| self.running())?;
        let frame = wait::next_frame(py, &stream, timeout)?;
        Ok(Frame::new(frame, format))
    }

    /// Frames as they come: `frames` of them (`None`: until stopped), each within `timeout`
    /// seconds. Starts the stream if needed; stops it when the iteration ends, completes or
    /// not.
    #[pyo3(signature = (frames = None, timeout = Some(5.0)))]
    fn stream(slf: Bound<'_, Self>, frames: Option<u64>, timeout: Option<f64>) -> PyResult<Frames> {
        Frames::new(slf.unbind(), frames, seconds(timeout)?)
    }

    /// Driver counters of the stream (frames delivered, dropped, ...).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let stats = {
            let mut state = self.lock();
            match &mut *state {
                State::Idle(card) => card.stats().py_err()?,
                State::Attached { stream, .. } => stream.stats().py_err()?,
                State::Closed => return Err(closed()),
            }
        };
        let dict = PyDict::new(py);
        dict.set_item("frames_delivered", stats.frames_delivered)?;
        dict.set_item("frames_dropped_underrun", stats.frames_dropped_underrun)?;
        dict.set_item("frames_dropped_other", stats.frames_dropped_other)?;
        dict.set_item("frames_failed", stats.frames_failed)?;
        dict.set_item("bytes_delivered", stats.bytes_delivered)?;
        dict.set_item("frame_irqs", stats.frame_irqs)?;
        dict.set_item("frame_bytes", stats.frame_bytes)?;
        dict.set_item("frame_count", stats.frame_count)?;
        dict.set_item("frames_completed", stats.frames_completed)?;
        dict.set_item("commands", stats.commands)?;
        dict.set_item("cqes", stats.cqes)?;
        Ok(dict)
    }

    /// Ends the stream and closes the card, which is then free for other programs. Frames
    /// still held keep their bytes (the card never writes them again); their memory is
    /// freed with the last of them.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| {
            let mut state = self.lock();
            match std::mem::replace(&mut *state, State::Closed) {
                State::Attached { stream, .. } => stream.end().py_err(),
                _ => Ok(()),
            }
        })
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
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        let state = match &*self.lock() {
            State::Idle(_) => "idle",
            State::Attached { stream, .. } if stream.is_running() => "streaming",
            State::Attached { .. } => "stopped",
            State::Closed => "closed",
        };
        format!("<fgrab.Camera {} {state}>", self.path.display())
    }
}
