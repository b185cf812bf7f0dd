//! The Python suite (`vm-python`): `tests/python/*.py` run in a Debian userland in the VM.
//!
//! Each file is one test, `python-<file stem>` (underscores as dashes), found here when the
//! run starts: adding a test is adding a file. A test is a plain script that exits non-zero
//! on failure. `selftest_*.py` files are run only by the harness self-test, which checks that
//! they fail. The guest's side is `tests/guest/src/userland.rs`.

use crate::{guest, guest_root, paths, vm, wheel};
use anyhow::{Context, Result};
use std::path::PathBuf;

/// The suite's name, which is also the scope of its tests.
pub const SUITE: &str = "vm-python";

/// Directory of the test scripts, in the checkout.
pub fn tests_dir(env: &paths::Env) -> PathBuf {
    env.root.join("tests/python")
}

/// `(name, scope)` of every Python test: the suite's scope, or `manual` for self-tests.
pub fn tests(env: &paths::Env) -> Result<Vec<(String, String)>> {
    let dir = tests_dir(env);
    let mut tests = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_none_or(|ext| ext != "py") {
            continue;
        }
        let stem = path.file_stem().unwrap_or_default().to_string_lossy();
        let scope = if stem.starts_with("selftest_") {
            "manual"
        } else {
            SUITE
        };
        tests.push((test_name(&stem), scope.to_string()));
    }
    tests.sort();
    Ok(tests)
}

/// The test name of a script's file stem, as the guest maps it back.
fn test_name(stem: &str) -> String {
    format!("python-{}", stem.replace('_', "-"))
}

/// Builds what the suite boots besides the other suites' artifacts: the wheel, the guest
/// root and an initramfs carrying the package under test.
pub fn prepare(env: &paths::Env, artifacts: &vm::Artifacts) -> Result<vm::Userland> {
    let wheel = wheel::build(env)?;
    let root = guest_root::ensure(env)?;
    let initramfs =
        guest::initramfs_with_python(&artifacts.initramfs, &wheel.site, &tests_dir(env))?;
    Ok(vm::Userland { root, initramfs })
}

#[cfg(test)]
mod tests {
    #[test]
    fn names() {
        assert_eq!(super::test_name("selftest_fail"), "python-selftest-fail");
        assert_eq!(super::test_name("device"), "python-device");
    }
}
