//! The Debian trixie sysroot: kernel toolchain, QEMU, and the kernel source package.
//!
//! Why a sysroot rather than host packages:
//! - QEMU's `vfio-user-pci` client needs QEMU >= 10.1: only trixie-backports has it, and it
//!   does not install on the bookworm host.
//! - KASAN together with Rust needs a clang-built kernel (`depends on !KASAN || CC_IS_CLANG`).
//!   Trixie ships the toolchain Debian builds its own 7.3 kernel with: rustc 1.85 with
//!   rust-src, bindgen 0.71, clippy and rustfmt of the same release, and clang/lld 19, which is
//!   the LLVM that rustc is linked against. One distribution, versions that fit together.
//! - The kernel source comes from `linux-source-7.3` in trixie-backports.
//!
//! Commands run inside it through [`Sysroot::command`]: a private mount namespace
//! (`unshare --mount`) with bind mounts, so nothing stays mounted if a run is interrupted.

use crate::{cmd, hash, host, paths};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Debian suite of the sysroot and the guest root.
pub const SUITE: &str = "trixie";

/// Installed from trixie: kernel build dependencies and the kernel's Rust/LLVM toolchain.
const PACKAGES: &[&str] = &[
    "make",
    "flex",
    "bison",
    "bc",
    "libelf-dev",
    "libssl-dev",
    "python3",
    "xz-utils",
    "rustc",
    "rust-src",
    "rust-clippy",
    "rustfmt",
    "bindgen",
    "clang-19",
    "lld-19",
    "llvm-19",
    "libclang-19-dev",
    "busybox-static",
    "gcc",
    "libc6-dev",
    "liburing-dev",
];

/// Installed from trixie-backports.
const BACKPORTS: &[&str] = &["qemu-system-x86", "linux-source-7.3"];

/// The kernel is built with this LLVM (`make LLVM=-19`), matching the sysroot's rustc.
pub const LLVM: &str = "LLVM=-19";

/// A ready sysroot.
pub struct Sysroot {
    /// Its root directory on the host.
    pub root: PathBuf,
}

/// Creates the sysroot if needed (debootstrap + packages) and returns it.
pub fn ensure(env: &paths::Env) -> Result<Sysroot> {
    let mut key = hash::Key::new("sysroot-v1");
    key.add(SUITE.as_bytes());
    for package in PACKAGES.iter().chain(BACKPORTS) {
        key.add(package.as_bytes());
    }
    let key = key.hex();
    let root = env.cache.join("sysroot").join(format!("{SUITE}-{key}"));
    if paths::is_complete(&root, &key) {
        return Ok(Sysroot { root });
    }
    host::ensure()?;
    let mirror = host::debian_mirror()?;
    paths::prune_stale(&root)?;
    let partial = fresh_partial(&root)?;
    let logs = env.cache.join("logs");

    cmd::step(&format!(
        "creating the {SUITE} sysroot from {mirror} (about 2 minutes)"
    ));
    bootstrap(env, &partial, &mirror, "debootstrap")?;
    let install = format!(
        "set -e\n\
         export DEBIAN_FRONTEND=noninteractive\n\
         apt-get update -q\n\
         apt-get install -y -q --no-install-recommends {}\n\
         apt-get install -y -q --no-install-recommends -t {SUITE}-backports {}\n\
         apt-get clean\n",
        PACKAGES.join(" "),
        BACKPORTS.join(" "),
    );
    let staging = Sysroot {
        root: partial.clone(),
    };
    cmd::run_logged(
        &mut staging.command(&[], &install),
        "sysroot packages",
        &logs.join("sysroot-packages.log"),
        env.verbose,
    )?;
    if root.exists() {
        std::fs::remove_dir_all(&root)?;
    }
    std::fs::rename(&partial, &root)?;
    paths::mark_complete(&root, &key)?;
    Ok(Sysroot { root })
}

/// The empty staging directory `<root>.partial` for building `root`, after removing what an
/// interrupted build left there; renamed to `root` only once complete.
pub fn fresh_partial(root: &Path) -> Result<PathBuf> {
    let partial = root.with_extension("partial");
    if partial.exists() {
        std::fs::remove_dir_all(&partial)
            .with_context(|| format!("removing interrupted build {}", partial.display()))?;
    }
    std::fs::create_dir_all(partial.parent().unwrap_or(Path::new("/")))?;
    Ok(partial)
}

/// A minimal Debian trixie system in `dir` (debootstrap `minbase` with ca-certificates)
/// whose apt sources are `mirror`'s trixie, trixie-updates and trixie-backports.
///
/// Shared by the sysroot and the guest root (`guest_root.rs`), so both come from the same
/// suite and mirror; `label` names the log (`<cache>/logs/<label>.log`).
pub fn bootstrap(env: &paths::Env, dir: &Path, mirror: &str, label: &str) -> Result<()> {
    let logs = env.cache.join("logs");
    std::fs::create_dir_all(&logs)?;
    cmd::run_logged(
        Command::new("debootstrap")
            .args(["--variant=minbase", "--include=ca-certificates", SUITE])
            .arg(dir)
            .arg(mirror),
        label,
        &logs.join(format!("{label}.log")),
        env.verbose,
    )?;
    let sources = format!(
        "deb {mirror} {SUITE} main\ndeb {mirror} {SUITE}-updates main\ndeb {mirror} {SUITE}-backports main\n"
    );
    std::fs::write(dir.join("etc/apt/sources.list"), sources)
        .with_context(|| format!("writing apt sources in {}", dir.display()))
}

impl Sysroot {
    /// A command running `script` with `/bin/sh` inside the sysroot.
    ///
    /// Each path in `binds` (a directory or a file) is bind-mounted at the same path inside,
    /// so paths mean the same thing on both sides; a file shadows the one inside for the
    /// command only. `/proc` and `/dev` are mounted too. The mounts live in a private
    /// namespace and vanish with the command.
    pub fn command(&self, binds: &[&Path], script: &str) -> Command {
        let root = quote(&self.root);
        let mut setup = format!(
            "set -e; mount -t proc proc {root}/proc; mount --rbind /dev {root}/dev; \
             mount --rbind /sys {root}/sys; "
        );
        for bind in binds {
            let inner = quote(&self.root.join(bind.strip_prefix("/").unwrap_or(bind)));
            let outer = quote(bind);
            // A mount point must be of the same kind as what is mounted on it.
            setup.push_str(&format!(
                "if [ -d {outer} ]; then mkdir -p {inner}; \
                 elif [ ! -e {inner} ]; then mkdir -p \"$(dirname {inner})\"; : > {inner}; fi; \
                 mount --bind {outer} {inner}; "
            ));
        }
        setup.push_str(&format!(
            "exec chroot {root} /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=${{TERM:-dumb}} \
             PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin /bin/sh -c \"$1\""
        ));
        let mut command = Command::new("unshare");
        command
            .args(["--mount", "--propagation", "private", "--", "/bin/sh", "-c"])
            .arg(setup)
            .arg("sysroot")
            .arg(script);
        command
    }

    /// Runs a short `script` inside the sysroot and returns what it printed.
    pub fn output(&self, script: &str) -> Result<String> {
        cmd::output(&mut self.command(&[], script))
    }

    /// Versions of the toolchain pieces that end up in the kernel and module builds.
    pub fn toolchain_versions(&self) -> Result<String> {
        self.output(
            "rustc --version; bindgen --version; clang-19 --version | head -n 1; \
             dpkg-query -W -f='${Version}' linux-source-7.3",
        )
    }

    /// Debian version of the installed kernel source package.
    pub fn kernel_source_version(&self) -> Result<String> {
        let version = self.output("dpkg-query -W -f='${Version}' linux-source-7.3")?;
        if version.trim().is_empty() {
            bail!(
                "linux-source-7.3 is not installed in {}",
                self.root.display()
            );
        }
        Ok(version.trim().to_string())
    }
}

/// Single-quotes a path for `sh`.
pub fn quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "'\\''"))
}
