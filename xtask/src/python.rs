//! The Python suite (`vm-python`): `tests/python/*.py` run in a Debian userland in the VM.
//!
//! Each file is one test, `python-<file stem>` (underscores as dashes), found here when the
//! run starts: adding a test is adding a file. A test is a plain script that exits non-zero
//! on failure. `selftest_*.py` files are run only by the harness self-test, which checks that
//! they fail; files starting with `_` are modules the tests import. The README's Python
//! examples run too, so that they cannot rot: each ```` ```python ```` block follows a
//! marker line `<!-- python-test: STEM -->` and is staged as `tests/STEM.py`, the test
//! `python-STEM` (`readme_example`: the `fgrab` package; `readme_harvesters`: Harvesters
//! over `fgrab.cti`). A block without its marker fails the run. The guest's side is
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
    let readme = std::fs::read_to_string(env.root.join("README.md"))?;
    let mut tests: Vec<(String, String)> = readme_blocks(&readme)?
        .into_iter()
        .map(|(stem, _)| (test_name(&stem), SUITE.to_string()))
        .collect();
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

/// The marker line above each README Python block: `<!-- python-test: STEM -->`.
const README_MARKER: &str = "<!-- python-test: ";

/// The README's ```` ```python ```` blocks, each with the file stem its marker line names,
/// in order.
fn readme_blocks(readme: &str) -> Result<Vec<(String, String)>> {
    let mut blocks = Vec::new();
    let mut rest = readme;
    let mut offset = 0;
    while let Some(found) = rest.find("```python\n") {
        let before = &readme[..offset + found];
        let marker = before
            .trim_end()
            .lines()
            .last()
            .and_then(|line| line.trim().strip_prefix(README_MARKER))
            .and_then(|line| line.strip_suffix("-->"))
            .map(str::trim)
            .with_context(|| {
                format!(
                    "README.md: the ```python block at byte {} has no `{README_MARKER}STEM -->` \
                     line above it (every README Python block runs as a test)",
                    offset + found
                )
            })?;
        anyhow::ensure!(
            !marker.is_empty()
                && marker
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !blocks.iter().any(|(stem, _)| stem == marker),
            "README.md: python-test marker {marker:?} is not a unique file stem"
        );
        let start = found + "```python\n".len();
        let len = rest[start..]
            .find("```")
            .with_context(|| format!("README.md's python block {marker} does not end"))?;
        blocks.push((marker.to_string(), rest[start..start + len].to_string()));
        offset += start + len + 3;
        rest = &readme[offset..];
    }
    anyhow::ensure!(!blocks.is_empty(), "README.md has no ```python example");
    Ok(blocks)
}

/// What the package under test brings to `/opt/fgrab`: the tests (`tests/`), the README's
/// examples as more tests, `bin/fgrab`, the command line tool (static), whose capture
/// gives the Rust library's frame rate beside Python's in the same run, and the GenTL
/// producer with its C consumer (`crate::gentl`).
fn staged_files(env: &paths::Env, artifacts: &vm::Artifacts) -> Result<Vec<guest::StagedFile>> {
    let dir = tests_dir(env);
    let readme = std::fs::read_to_string(env.root.join("README.md"))?;
    let mut files: Vec<guest::StagedFile> = readme_blocks(&readme)?
        .into_iter()
        .map(|(stem, code)| guest::StagedFile {
            path: format!("tests/{stem}.py"),
            data: code.into_bytes(),
            mode: 0o644,
        })
        .collect();
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

    #[test]
    fn readme_blocks_need_their_markers() {
        let readme = "text\n<!-- python-test: readme_example -->\n```python\nprint(1)\n```\n\
                      more\n\n<!-- python-test: readme_harvesters -->\n\n```python\nprint(2)\n```\n";
        let blocks = super::readme_blocks(readme).unwrap();
        assert_eq!(
            blocks,
            vec![
                ("readme_example".to_string(), "print(1)\n".to_string()),
                ("readme_harvesters".to_string(), "print(2)\n".to_string()),
            ]
        );
        assert!(super::readme_blocks("```python\nprint(1)\n```\n").is_err());
        let twice =
            "<!-- python-test: a -->\n```python\n```\n<!-- python-test: a -->\n```python\n```\n";
        assert!(super::readme_blocks(twice).is_err());
        // The repository's own README.
        let readme = include_str!("../../README.md");
        let stems: Vec<String> = super::readme_blocks(readme)
            .unwrap()
            .into_iter()
            .map(|(stem, _)| stem)
            .collect();
        assert_eq!(stems, ["readme_example", "readme_harvesters"]);
    }
}
