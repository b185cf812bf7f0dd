//! The Python suite (`vm-python`): `tests/python/*.py` run in a Debian userland in the VM.
//!
//! Each file is one test, `python-<file stem>` (underscores as dashes), found here when the
//! run starts: adding a test is adding a file. A test is a plain script that exits non-zero
//! on failure. `selftest_*.py` files are run only by the harness self-test, which checks that
//! they fail; files starting with `_` are modules the tests import. The README's Python
//! example runs too, as `python-readme-example`, so that it cannot rot. The guest's side is
//! `tests/guest/src/userland.rs`.

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
    let mut tests = vec![(test_name(README_EXAMPLE), SUITE.to_string())];
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_none_or(|ext| ext != "py") {
            continue;
        }
        let stem = path.file_stem().unwrap_or_default().to_string_lossy();
        if stem.starts_with('_') {
            continue;
        }
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

/// File stem of the README's Python example among the tests.
const README_EXAMPLE: &str = "readme_example";

/// The README's first ```` ```python ```` block.
fn readme_example(env: &paths::Env) -> Result<String> {
    let readme = std::fs::read_to_string(env.root.join("README.md"))?;
    let start = readme
        .find("```python\n")
        .context("README.md has no ```python example")?
        + "```python\n".len();
    let len = readme[start..]
        .find("```")
        .context("README.md's python example does not end")?;
    Ok(readme[start..start + len].to_string())
}

/// What the package under test brings to `/opt/fgrab`: the tests (`tests/`), the README's
/// example as one more test, `bin/fgrab`, the command line tool (static), whose capture
/// gives the Rust library's frame rate beside Python's in the same run, and the GenTL
/// producer with its C consumer (`crate::gentl`).
fn staged_files(env: &paths::Env, artifacts: &vm::Artifacts) -> Result<Vec<guest::StagedFile>> {
    let dir = tests_dir(env);
    let mut files = vec![guest::StagedFile {
        path: format!("tests/{README_EXAMPLE}.py"),
        data: readme_example(env)?.into_bytes(),
        mode: 0o644,
    }];
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "py") {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            files.push(guest::StagedFile {
                path: format!("tests/{name}"),
                data: std::fs::read(&path)
                    .with_context(|| format!("reading {}", path.display()))?,
                mode: 0o644,
            });
        }
    }
    // The GenTL producer and the C consumer (glibc, dynamic: they run in the userland).
    for (built, guest_path) in crate::gentl::userland_files(env)? {
        let path = guest_path
            .strip_prefix("/opt/fgrab/")
            .with_context(|| format!("{guest_path} is not under /opt/fgrab"))?;
        files.push(guest::StagedFile {
            path: path.into(),
            data: std::fs::read(&built).with_context(|| format!("reading {}", built.display()))?,
            mode: 0o755,
        });
    }
    let cli = artifacts.guest.with_file_name("fgrab");
    files.push(guest::StagedFile {
        path: "bin/fgrab".into(),
        data: std::fs::read(&cli).with_context(|| format!("reading {}", cli.display()))?,
        mode: 0o755,
    });
    Ok(files)
}

/// Builds what the suite boots besides the other suites' artifacts: the wheel, the guest
/// root and an initramfs carrying the package under test.
pub fn prepare(env: &paths::Env, artifacts: &vm::Artifacts) -> Result<vm::Userland> {
    let wheel = wheel::build(env)?;
    let root = guest_root::ensure(env)?;
    let files = staged_files(env, artifacts)?;
    let initramfs = guest::initramfs_with_python(&artifacts.initramfs, &wheel.site, &files)?;
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
