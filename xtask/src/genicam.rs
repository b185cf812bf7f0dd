//! The host check that the card's GenICam XML loads in a real GenApi implementation: the
//! `genicam` package's node map (PyPI `genicam`, the EMVA reference implementation that
//! Harvesters uses), in a venv under the cache, keyed by version and made once. The venv
//! also has Harvesters, for the GenTL producer's host check (`gentl.rs`).

use crate::{cmd, paths};
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::Command;

/// The `genicam` release: 1.6.0 has a cp311 manylinux wheel.
const GENICAM_VERSION: &str = "1.6.0";
/// The Harvesters release the GenTL producer is checked with (pure Python; needs genicam
/// and numpy).
const HARVESTERS_VERSION: &str = "1.4.3";
/// The interpreter the wheel is built for.
const PYTHON: &str = "python3.11";
/// The check itself.
const SCRIPT: &str = include_str!("genicam_check.py");

/// The venv with `genicam` and `harvesters`, made on first use:
/// `<cache>/genicam-<version>-harvesters-<version>-py311`, complete once stamped with its packages (an
/// interrupted install, or one of other packages, is redone).
fn venv(env: &paths::Env) -> Result<PathBuf> {
    let dir = env.cache.join(format!(
        "genicam-{GENICAM_VERSION}-harvesters-{HARVESTERS_VERSION}-py311"
    ));
    let key = format!("genicam=={GENICAM_VERSION} harvesters=={HARVESTERS_VERSION} {PYTHON}");
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
        &format!("harvesters=={HARVESTERS_VERSION}"),
    ]))
    .context("pip install genicam harvesters")?;
    paths::mark_complete(&dir, &key)?;
    Ok(dir)
}

/// The venv's interpreter (the venv is made on first use).
pub fn venv_python(env: &paths::Env) -> Result<PathBuf> {
    Ok(venv(env)?.join("bin/python"))
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
