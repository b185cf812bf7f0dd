//! The GenTL producer: `cargo xtask cti` builds `fgrab.cti` (release) and the C consumer,
//! and [`userland_files`] lists what a Debian userland in the VM installs to run them; the
//! host check loads `fgrab.cti` in Harvesters.
//!
//! Both are dynamically linked against the host's glibc (the producer is a shared library
//! that the consumer, or Python, loads): they run in the VM's Debian trixie userland
//! (glibc 2.41), which is newer than any glibc they may be built against on a Debian
//! bookworm or trixie host, not in the static initramfs.

use crate::{cmd, genicam, paths};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Harvesters check itself.
const HARVESTERS_SCRIPT: &str = include_str!("gentl_harvesters_check.py");

/// Where the VM userland installs the producer and the consumer (the Python VM tests read
/// them from `FGRAB_CTI` and `FGRAB_GENTL_CONSUMER`, with these as defaults).
pub const GUEST_CTI: &str = "/opt/fgrab/lib/gentl/fgrab.cti";
/// See [`GUEST_CTI`].
pub const GUEST_CONSUMER: &str = "/opt/fgrab/bin/fgrab-gentl-consumer";

/// Copies `from` to `to` unless `to` already has the same bytes (so that a second run
/// changes nothing, not even the time stamp).
fn install(from: &Path, to: &Path) -> Result<()> {
    let new = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    if std::fs::read(to).ok().as_deref() == Some(new.as_slice()) {
        return Ok(());
    }
    let partial = to.with_extension("partial");
    std::fs::write(&partial, &new).with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, to).with_context(|| format!("renaming to {}", to.display()))?;
    Ok(())
}

/// Builds the producer in release and places it as `target/release/fgrab.cti`.
pub fn build_cti(env: &paths::Env) -> Result<PathBuf> {
    cmd::step("building fgrab.cti (fgrab-gentl, release)");
    cmd::run(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(&env.root)
            .args(["build", "--release", "--package", "fgrab-gentl", "--lib"]),
    )?;
    let release = env.target().join("release");
    let cti = release.join("fgrab.cti");
    install(&release.join("libfgrab_gentl.so"), &cti)?;
    Ok(cti)
}

/// Builds the C consumer (`gentl/examples/consumer.c`, against `GenTL.h` alone, with the
/// pattern check) as `target/gentl/fgrab-gentl-consumer`: dynamic glibc, warnings as errors.
pub fn build_consumer(env: &paths::Env) -> Result<PathBuf> {
    cmd::step("building the GenTL C consumer (dynamic glibc)");
    let out = env.target().join("gentl");
    std::fs::create_dir_all(&out)?;
    let program = out.join("fgrab-gentl-consumer");
    let built = out.join("fgrab-gentl-consumer.built");
    cmd::run(
        Command::new("cc")
            .current_dir(&env.root)
            .args([
                "-O2",
                "-std=gnu11",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-DFGRAB_CONSUMER_PATTERN",
                "-I",
                "gentl/include",
                "-I",
                "legacy/examples",
                "gentl/examples/consumer.c",
                "-o",
            ])
            .arg(&built)
            .arg("-ldl"),
    )?;
    install(&built, &program)?;
    std::fs::remove_file(&built)?;
    Ok(program)
}

/// What a VM userland installs for the GenTL tests: `(built file, path in the guest)`.
/// Builds both; for the image preparation to call.
pub fn userland_files(env: &paths::Env) -> Result<Vec<(PathBuf, &'static str)>> {
    Ok(vec![
        (build_cti(env)?, GUEST_CTI),
        (build_consumer(env)?, GUEST_CONSUMER),
    ])
}

/// `cargo xtask cti`.
pub fn run(env: &paths::Env) -> Result<()> {
    let cti = build_cti(env)?;
    let consumer = build_consumer(env)?;
    println!("{}", cti.display());
    println!("{}", consumer.display());
    Ok(())
}

/// Loads `fgrab.cti` in Harvesters (and genicam's GenTL consumer) on the host, where no
/// card is: the producer loads, finds its interface and no device, its System and
/// Interface node maps read, and `reset()` lets it go cleanly.
pub fn harvesters_check(env: &paths::Env) -> Result<()> {
    let cti = build_cti(env)?;
    let python = genicam::venv_python(env)?;
    let script = env.target().join("gentl_harvesters_check.py");
    std::fs::write(&script, HARVESTERS_SCRIPT)?;
    cmd::run(Command::new(python).arg(&script).arg(&cti))
}
