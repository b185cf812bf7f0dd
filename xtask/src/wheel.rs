//! `cargo xtask wheel`: the `fgrab` Python package (`python/`, PyO3 and maturin) as a wheel,
//! and unpacked for the Python suite's VM.
//!
//! maturin comes from PyPI into a venv under the cache, keyed by its version and the host's
//! Python, with the host's own pip configuration. The wheel is `abi3-py311`: built against
//! the host's Python 3.11, it imports in the guest's 3.13. It is tagged `linux_x86_64`
//! (`--compatibility linux`): it is built for our guest, never published, and a manylinux
//! tag would claim an audit of the host's glibc symbols that this wheel does not need.
//!
//! maturin drives cargo with its own environment (`PYO3_PYTHON` and friends), which pyo3's
//! build script tracks: sharing `target/` with the workspace's other builds would rebuild
//! pyo3 each time one or the other ran. It gets a target directory of its own.

use crate::{cmd, hash, host, paths};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// maturin, from PyPI.
const MATURIN: &str = "maturin==1.16.0";

/// The interpreter of the maturin venv (Debian's, `python3-venv` is a host package).
const HOST_PYTHON: &str = "/usr/bin/python3";

/// A built and unpacked wheel.
pub struct Wheel {
    /// The `.whl` file.
    pub file: PathBuf,
    /// Its contents (`fgrab/`, `fgrab-*.dist-info/`): a directory for `PYTHONPATH`.
    pub site: PathBuf,
}

/// The venv holding maturin; created once per maturin version and host Python.
fn maturin(env: &paths::Env) -> Result<PathBuf> {
    let python_version = cmd::output(Command::new(HOST_PYTHON).arg("--version"))?;
    let mut key = hash::Key::new("maturin-v1");
    key.add(MATURIN.as_bytes()).add(python_version.as_bytes());
    let key = key.hex();
    let venv = env.cache.join("maturin").join(format!("venv-{key}"));
    let binary = venv.join("bin/maturin");
    if paths::is_complete(&venv, &key) {
        return Ok(binary);
    }
    host::ensure()?;
    paths::prune_stale(&venv)?;
    if venv.exists() {
        std::fs::remove_dir_all(&venv)?;
    }
    cmd::step(&format!("installing {MATURIN} into {}", venv.display()));
    cmd::run(Command::new(HOST_PYTHON).args(["-m", "venv"]).arg(&venv))?;
    // The host's pip configuration (/etc/pip.conf, PIP_*) applies: no index named here.
    cmd::run(
        Command::new(venv.join("bin/python")).args(["-m", "pip", "install", "--quiet", MATURIN]),
    )?;
    cmd::output(Command::new(&binary).arg("--version"))?;
    paths::mark_complete(&venv, &key)?;
    Ok(binary)
}

/// Builds the wheel (release) and unpacks it; returns both.
pub fn build(env: &paths::Env) -> Result<Wheel> {
    let maturin = maturin(env)?;
    let out = env.target().join("python");
    let wheels = out.join("wheels");
    if wheels.exists() {
        std::fs::remove_dir_all(&wheels)?;
    }
    cmd::step("building the fgrab Python wheel (maturin, release)");
    cmd::run(
        Command::new(&maturin)
            .current_dir(env.root.join("python"))
            .args(["build", "--release", "--strip", "--compatibility", "linux"])
            .args(["--interpreter", HOST_PYTHON, "--out"])
            .arg(&wheels)
            .env("CARGO_TARGET_DIR", out.join("cargo")),
    )?;
    let file = only_wheel(&wheels)?;
    let site = out.join("site");
    if site.exists() {
        std::fs::remove_dir_all(&site)?;
    }
    // A wheel is a zip file; Python's own zipfile unpacks it (no unzip on the host needed).
    cmd::run(
        Command::new(HOST_PYTHON)
            .args(["-m", "zipfile", "-e"])
            .arg(&file)
            .arg(&site),
    )?;
    if !site.join("fgrab/__init__.py").exists() {
        bail!("{} holds no fgrab/__init__.py", file.display());
    }
    Ok(Wheel { file, site })
}

fn only_wheel(dir: &Path) -> Result<PathBuf> {
    let wheels: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "whl"))
        .collect();
    match wheels.as_slice() {
        [wheel] => Ok(wheel.clone()),
        _ => bail!("expected one wheel in {}, found {wheels:?}", dir.display()),
    }
}
