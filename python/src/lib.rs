//! `fgrab._fgrab`: the native half of the `fgrab` Python package.

use pyo3::prelude::*;

/// The ABI version this build speaks (`fgrab.uapi.ABI_VERSION`).
#[pyfunction]
fn abi_version() -> u32 {
    fgrab::uapi::ABI_VERSION
}

#[pymodule]
fn _fgrab(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(abi_version, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
