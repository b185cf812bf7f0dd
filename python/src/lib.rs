//! `fgrab._fgrab`: the native half of the `fgrab` Python package (`python/fgrab/` is the
//! pure-Python half: `open()`, the exceptions, type stubs).
//!
//! One file per concern: [`camera`] (a card, its stream's life), [`frame`] (a frame lent to
//! numpy without a copy), [`frames`] (the iterator), [`format`] (geometry and pixel
//! format from the card's features), [`wait`] (GIL-free, interruptible waits),
//! [`errors`] (exceptions).

mod camera;
mod errors;
mod features;
mod format;
mod frame;
mod frames;
mod wait;

use pyo3::prelude::*;
use std::path::PathBuf;

/// The ABI version this build speaks.
#[pyfunction]
fn abi_version() -> u32 {
    fgrab::uapi::ABI_VERSION
}

/// Opens the card at `path` (see `fgrab.open`).
#[pyfunction]
#[pyo3(signature = (path, buffer_frames = 8, batch_frames = 1))]
fn open_path(
    py: Python<'_>,
    path: PathBuf,
    buffer_frames: u32,
    batch_frames: u32,
) -> PyResult<camera::Camera> {
    py.detach(|| camera::Camera::open(path, buffer_frames, batch_frames))
}

#[pymodule]
fn _fgrab(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(abi_version, m)?)?;
    m.add_function(wrap_pyfunction!(open_path, m)?)?;
    m.add_class::<camera::Camera>()?;
    m.add_class::<frame::Frame>()?;
    m.add_class::<frames::Frames>()?;
    m.add_class::<features::Features>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
