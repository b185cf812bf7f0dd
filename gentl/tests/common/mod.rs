//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};

/// The producer cargo built for this test run (`libfgrab_gentl.so`).
///
/// `cargo test` builds the package's cdylib into `deps/`, beside the test binary, and only
/// `cargo build` copies it up to the profile directory: a fresh clone whose first build is
/// the test build has it in `deps/` alone. That copy is also the one built from the same
/// sources as the test, so it comes first.
pub fn producer() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    [deps, deps.parent().unwrap_or(Path::new("."))]
        .iter()
        .map(|dir| dir.join("libfgrab_gentl.so"))
        .find(|library| library.exists())
        .unwrap_or_else(|| panic!("libfgrab_gentl.so not built in {}", deps.display()))
}
