//! The host check that the card's GenICam XML loads in a real GenApi implementation: the
//! `genicam` package's node map (PyPI `genicam`, the EMVA reference implementation that
//! Harvesters uses), in a venv under the cache, keyed by version and made once.

use crate::{cmd, paths};
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::Command;

/// The `genicam` release: 1.6.0 has a cp311 manylinux wheel.
const GENICAM_VERSION: &str = "1.6.0";
/// The interpreter the wheel is built for.
const PYTHON: &str = "python3.11";
/// The check itself.
const SCRIPT: &str = include_str!("genicam_check.py");

/// The venv with `genicam`, made on first use: `<cache>/genicam-<version>-py311`, complete
/// once stamped (an interrupted install is redone).
fn venv(env: &paths::Env) -> Result<PathBuf> {
    let dir = env.cache.join(format!("genicam-{GENICAM_VERSION}-py311"));
    let key = format!("genicam=={GENICAM_VERSION} {PYTHON}");
    if paths::is_complete(&dir, &key) {
        return Ok(dir);
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("removing the incomplete venv {}", dir.display()))?;
    }
    cmd::run(Command::new(PYTHON).args(["-m", "venv"]).arg(&dir))
        .with_context(|| format!("{PYTHON} -m venv (the host needs {PYTHON} with venv)"))?;
    cmd::run(Command::new(dir.join("bin/pip")).args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        &format!("genicam=={GENICAM_VERSION}"),
    ]))
    .context("pip install genicam")?;
    paths::mark_complete(&dir, &key)?;
    Ok(dir)
}

/// Loads `hw/genicam/fgrab.xml` in genicam's node map and checks its features (types,
/// reset values through a dict-backed port, write addresses).
pub fn check(env: &paths::Env) -> Result<()> {
    let venv = venv(env)?;
    let script = env.target().join("genicam_check.py");
    std::fs::create_dir_all(env.target())?;
    std::fs::write(&script, SCRIPT)?;
    cmd::run(
        Command::new(venv.join("bin/python"))
            .arg(&script)
            .arg(env.root.join("hw/genicam/fgrab.xml")),
    )
}
