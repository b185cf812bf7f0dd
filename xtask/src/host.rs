//! What the host itself needs: a few Debian packages, a rustup target, and the Debian mirror.
//!
//! Everything heavier (kernel toolchain, QEMU) lives in the trixie sysroot, so the host's own
//! system stays as it was apart from the packages listed here.

use crate::cmd;
use anyhow::{bail, Result};
use std::path::Path;
use std::process::Command;

/// Host packages: `debootstrap` builds the sysroot, `xz-utils` unpacks the kernel source,
/// `liburing-dev`, `gcc` and `libc6-dev` build the C examples (static) and the header checks,
/// `python3-venv` holds maturin, which builds the Python wheel (`wheel.rs`).
const HOST_PACKAGES: &[&str] = &[
    "debootstrap",
    "xz-utils",
    "liburing-dev",
    "gcc",
    "libc6-dev",
    "python3-venv",
];

/// Disk a first run needs: the sysroot (2.2 GiB), the kernel source and both kernel builds
/// (about 6 GiB), the workspace's targets (about 3 GiB), with room to spare.
const FIRST_RUN_DISK_GIB: u64 = 14;

/// Disk any run needs (a kernel rebuilt after a config change, logs, run directories).
const RUN_DISK_GIB: u64 = 3;

/// Fails early, with a message that says what to do, when the machine cannot run the
/// project's commands: not root (apt, debootstrap, unshare and chroot need it), or too
/// little disk for the cache and the build.
pub fn preflight(env: &crate::paths::Env) -> Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "cargo xtask must run as root: it installs Debian packages, builds a sysroot with \
             debootstrap and runs the kernel build and QEMU in it through unshare and chroot \
             (run it as root, or with `sudo -E`)"
        );
    }
    let first_run = !env.cache.join("sysroot").is_dir();
    let needed = if first_run {
        FIRST_RUN_DISK_GIB
    } else {
        RUN_DISK_GIB
    };
    for dir in [&env.cache, &env.root] {
        let free = free_gib(dir)?;
        if free < needed {
            bail!(
                "{} has {free} GiB free; {} needs about {needed} GiB there (the cache can \
                 move elsewhere with FGRAB_CACHE=DIR)",
                dir.display(),
                if first_run { "a first run" } else { "a run" },
            );
        }
    }
    Ok(())
}

/// Free space, in GiB, of the file system holding `dir`.
fn free_gib(dir: &Path) -> Result<u64> {
    let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())?;
    // SAFETY: statvfs is plain old data; the all-zero pattern is a valid value.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid NUL-terminated string and `stat` is writable for the call.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(stat.f_bavail as u64 * stat.f_frsize / (1 << 30))
}

/// Guest programs are static musl binaries: no libc to ship in the initramfs.
pub const GUEST_TARGET: &str = "x86_64-unknown-linux-musl";

/// Installs missing host packages (apt) and the guest Rust target (rustup). Idempotent.
pub fn ensure() -> Result<()> {
    let missing: Vec<&str> = HOST_PACKAGES
        .iter()
        .copied()
        .filter(|package| !is_installed(package))
        .collect();
    if !missing.is_empty() {
        cmd::step(&format!("installing host packages: {}", missing.join(" ")));
        cmd::run(Command::new("apt-get").args(["update", "-q"]))?;
        cmd::run(
            Command::new("apt-get")
                .env("DEBIAN_FRONTEND", "noninteractive")
                .args(["install", "-y", "-q", "--no-install-recommends"])
                .args(&missing),
        )?;
    }
    let installed = cmd::output(Command::new("rustup").args(["target", "list", "--installed"]))?;
    if !installed.lines().any(|line| line.trim() == GUEST_TARGET) {
        cmd::step(&format!("adding rustup target {GUEST_TARGET}"));
        cmd::run(Command::new("rustup").args(["target", "add", GUEST_TARGET]))?;
    }
    Ok(())
}

fn is_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("install ok installed"))
}

/// The Debian mirror this machine is configured with.
///
/// Never hard-coded: read from the machine's apt sources (deb822 `.sources` files first, then
/// one-line `sources.list`), taking the first URI that serves a non-security suite.
/// `FGRAB_DEBIAN_MIRROR` overrides it.
pub fn debian_mirror() -> Result<String> {
    if let Ok(mirror) = std::env::var("FGRAB_DEBIAN_MIRROR") {
        return Ok(mirror);
    }
    let mut files: Vec<_> = std::fs::read_dir("/etc/apt/sources.list.d")
        .map(|dir| {
            dir.filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|path| path.extension().is_some_and(|ext| ext == "sources"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    for file in &files {
        let text = std::fs::read_to_string(file)?;
        if let Some(uri) = mirror_from_deb822(&text) {
            return Ok(uri);
        }
    }
    let list = Path::new("/etc/apt/sources.list");
    if let Ok(text) = std::fs::read_to_string(list) {
        if let Some(uri) = mirror_from_one_line(&text) {
            return Ok(uri);
        }
    }
    bail!("no Debian mirror found in /etc/apt; set FGRAB_DEBIAN_MIRROR")
}

fn mirror_from_deb822(text: &str) -> Option<String> {
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza.lines().find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim().eq_ignore_ascii_case(name)).then(|| value.trim().to_string())
            })
        };
        let (Some(uris), Some(suites)) = (field("URIs"), field("Suites")) else {
            continue;
        };
        let is_debian = field("Signed-By").is_none_or(|keyring| keyring.contains("debian"));
        let plain_suite = suites
            .split_whitespace()
            .any(|suite| !suite.contains("security"));
        if is_debian && plain_suite {
            if let Some(uri) = uris
                .split_whitespace()
                .find(|uri| !uri.contains("security"))
            {
                return Some(uri.trim_end_matches('/').to_string());
            }
        }
    }
    None
}

fn mirror_from_one_line(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .filter(|line| line.starts_with("deb "))
        .filter_map(|line| {
            line.split_whitespace()
                .skip(1)
                .find(|word| word.contains("://"))
        })
        .find(|uri| !uri.contains("security"))
        .map(|uri| uri.trim_end_matches('/').to_string())
}

/// Number of CPUs to build with.
pub fn jobs() -> usize {
    std::thread::available_parallelism().map_or(2, |count| count.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deb822_skips_security_and_foreign_keyrings() {
        let text = "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n\
                    Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n\
                    Types: deb\nURIs: https://vendor.example/apt\nSuites: nodistro\n\
                    Signed-By: /usr/share/keyrings/vendor.gpg\n\n\
                    Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\n\
                    Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n";
        assert_eq!(
            mirror_from_deb822(text).as_deref(),
            Some("http://mirror.example/debian")
        );
    }

    #[test]
    fn one_line_format() {
        let text = "# comment\ndeb [arch=amd64] http://mirror.example/debian bookworm main\n";
        assert_eq!(
            mirror_from_one_line(text).as_deref(),
            Some("http://mirror.example/debian")
        );
    }
}
