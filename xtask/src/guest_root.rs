//! The guest root: a Debian trixie userland (python3, numpy, pip-installed wheels) that the
//! Python suite's VM mounts read-only over 9p and runs its tests in (`vm::Userland`).
//!
//! Why a tree of its own rather than the sysroot: the sysroot carries the kernel toolchain and
//! QEMU (2.2 GiB) and changes whenever they do; the guest root holds what a user's machine
//! would, and changes only with its package list and pip requirements. Both come from the
//! same suite and mirror (`sysroot::bootstrap`).
//!
//! Built once per key with debootstrap and apt inside a private mount namespace
//! (`Sysroot::command`), then pip inside the same chroot with the host's pip configuration
//! (`/etc/pip.conf`, user config, `PIP_*` and proxy variables, and the files they name) bound
//! in for that command only, so an index or certificate the host's pip uses works here too
//! and nothing of the host stays in the tree.

use crate::{cmd, hash, host, paths, sysroot};
use anyhow::Result;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Debian packages of the guest root (and their dependencies, no recommends). The genicam
/// wheel's extension modules link `libpython3.13.so.1.0`, which Debian's python3 lacks.
const PACKAGES: &[&str] = &["python3", "python3-numpy", "python3-pip", "libpython3.13"];

/// Installed with pip at build time. Harvesters with the GenICam reference implementation's
/// bindings (a cp313 manylinux2014 wheel); numpy comes from Debian.
const PIP_REQUIREMENTS: &[&str] = &["harvesters==1.4.3", "genicam==1.6.0"];

/// Where the package under test (the unpacked `fgrab` wheel and `tests/python/`) is mounted
/// in the guest: an empty directory in the tree.
pub const PACKAGE_MOUNT: &str = "/opt/fgrab";

/// Host pip configuration files, besides those named by `PIP_*` variables.
const PIP_CONFIG_FILES: &[&str] = &["/etc/pip.conf", "/etc/xdg/pip/pip.conf"];

/// Proxy variables pip honours, passed through like `PIP_*`.
const PROXY_VARIABLES: &[&str] = &[
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
];

/// Creates the guest root if needed and returns its directory.
pub fn ensure(env: &paths::Env) -> Result<PathBuf> {
    let mut key = hash::Key::new("guest-root-v1");
    key.add(sysroot::SUITE.as_bytes());
    for package in PACKAGES {
        key.add(package.as_bytes());
    }
    for requirement in PIP_REQUIREMENTS {
        key.add(requirement.as_bytes());
    }
    key.add(PACKAGE_MOUNT.as_bytes());
    let key = key.hex();
    let root = env
        .cache
        .join("guest-root")
        .join(format!("{}-{key}", sysroot::SUITE));
    if paths::is_complete(&root, &key) {
        return Ok(root);
    }
    let start = Instant::now();
    host::ensure()?;
    let mirror = host::debian_mirror()?;
    paths::prune_stale(&root)?;
    let partial = sysroot::fresh_partial(&root)?;
    let logs = env.cache.join("logs");

    cmd::step(&format!(
        "creating the guest root (trixie: {}; pip: {}) from {mirror} (about 4 minutes)",
        PACKAGES.join(", "),
        PIP_REQUIREMENTS.join(", ")
    ));
    sysroot::bootstrap(env, &partial, &mirror, "guest-root-debootstrap")?;
    let staging = sysroot::Sysroot {
        root: partial.clone(),
    };
    let install = format!(
        "set -e\n\
         export DEBIAN_FRONTEND=noninteractive\n\
         apt-get update -q\n\
         apt-get install -y -q --no-install-recommends {}\n\
         apt-get clean\n\
         rm -rf /var/lib/apt/lists/*\n\
         mkdir -p {PACKAGE_MOUNT}\n",
        PACKAGES.join(" "),
    );
    cmd::run_logged(
        &mut staging.command(&[], &install),
        "guest root packages",
        &logs.join("guest-root-packages.log"),
        env.verbose,
    )?;

    let (exports, files) = pip_configuration();
    let binds: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    // Wheels only: the tree has no compiler. The imports prove the wheels fit this Python.
    let pip = format!(
        "set -e\n{exports}\
         python3 -m pip install --break-system-packages --no-cache-dir \
         --root-user-action=ignore --only-binary=:all: {requirements}\n\
         python3 -m pip check\n\
         python3 -c 'from harvesters.core import Harvester; from genicam.genapi import NodeMap'\n\
         rm -rf /root/.cache\n",
        requirements = PIP_REQUIREMENTS.join(" "),
    );
    cmd::run_logged(
        &mut staging.command(&binds, &pip),
        "guest root pip",
        &logs.join("guest-root-pip.log"),
        env.verbose,
    )?;

    if root.exists() {
        std::fs::remove_dir_all(&root)?;
    }
    std::fs::rename(&partial, &root)?;
    paths::mark_complete(&root, &key)?;
    let size = cmd::output(Command::new("du").arg("-sh").arg(&root))?;
    println!(
        "    guest root: {} in {}s",
        size.split_whitespace().next().unwrap_or("?"),
        start.elapsed().as_secs()
    );
    Ok(root)
}

/// The host's pip settings for a command in the chroot: `export` lines for the `PIP_*`,
/// proxy and `HOME` variables, and the files and directories to bind at the same paths
/// (configuration files, and paths named by the variables, such as `PIP_CERT` or
/// `PIP_FIND_LINKS`).
fn pip_configuration() -> (String, Vec<PathBuf>) {
    let mut exports = String::new();
    let mut files: Vec<PathBuf> = PIP_CONFIG_FILES.iter().map(PathBuf::from).collect();
    // pip reads the user's configuration under $HOME; the same path is bound in.
    if let Some(home) = std::env::var_os("HOME") {
        let home = PathBuf::from(home);
        files.push(home.join(".config/pip/pip.conf"));
        files.push(home.join(".pip/pip.conf"));
        exports.push_str(&format!("export HOME={}\n", sysroot::quote(&home)));
    }
    let mut variables: Vec<(String, String)> = std::env::vars()
        .filter(|(name, _)| name.starts_with("PIP_") || PROXY_VARIABLES.contains(&name.as_str()))
        .collect();
    variables.sort();
    for (name, value) in variables {
        exports.push_str(&format!(
            "export {name}={}\n",
            sysroot::quote(Path::new(&value))
        ));
        files.extend(
            value
                .split_whitespace()
                .filter(|word| word.starts_with('/'))
                .map(PathBuf::from),
        );
    }
    files.retain(|file| file.exists());
    files.sort();
    files.dedup();
    (exports, files)
}
