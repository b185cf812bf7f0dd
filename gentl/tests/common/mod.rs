//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};

/// The producer cargo built next to the running test binary (`libfgrab_gentl.so`).
pub fn producer() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let library = dir.join("libfgrab_gentl.so");
    assert!(library.exists(), "{} not built", library.display());
    library
}
