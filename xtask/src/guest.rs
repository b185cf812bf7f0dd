//! Guest user space: static musl binaries and the initramfs that carries them.

use crate::{cmd, host, kernel, paths};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Guest programs built from this workspace, installed as `/bin/<name>`: `(package, binary)`.
const GUEST_BINARIES: &[(&str, &str)] = &[
    ("fgrab-guest", "fgrab-guest"),
    ("fgrab-bench", "fgrab-bench"),
    ("fgrab-cli", "fgrab"),
];

/// C programs built with the host's compiler, statically, installed as `/bin/<name>`:
/// `(name, source, include directory, link with the legacy library)`.
const C_PROGRAMS: &[(&str, &str, &str, bool)] = &[
    (
        "fgrab-legacy-capture",
        "legacy/examples/capture.c",
        "legacy/include",
        true,
    ),
    (
        "fgrab-legacy-misuse",
        "legacy/examples/misuse.c",
        "legacy/include",
        true,
    ),
    (
        "fgrab-legacy-threads",
        "legacy/examples/threads.c",
        "legacy/include",
        true,
    ),
    (
        "fgrab-raw-uring",
        "client/examples/c/raw_uring.c",
        "uapi/include",
        false,
    ),
];

/// Builds the C examples: the legacy API's example against `libfgrab_legacy.a`, and the
/// liburing example against the uapi header alone. Static (glibc), so they run in the
/// initramfs, which has no C library. Warnings are errors.
pub fn build_c_programs(env: &paths::Env) -> Result<PathBuf> {
    cmd::step("building the C examples (legacy API, liburing)");
    cmd::run(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(&env.root)
            .args(["build", "--release", "--package", "fgrab-legacy"]),
    )?;
    let library = env.target().join("release/libfgrab_legacy.a");
    let out = env.target().join("c-examples");
    std::fs::create_dir_all(&out)?;
    for (name, source, include, legacy) in C_PROGRAMS {
        let mut cc = Command::new("cc");
        cc.current_dir(&env.root)
            .args([
                "-static",
                "-O2",
                "-std=gnu11",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-I",
            ])
            .arg(include)
            .arg(source)
            .arg("-o")
            .arg(out.join(name));
        if *legacy {
            // The Rust standard library's static glibc warnings (NSS lookups it never
            // makes here) are the linker's, not this program's.
            cc.arg(&library)
                .args(["-lpthread", "-ldl", "-lm", "-Wl,--no-warnings"]);
        } else {
            cc.arg("-luring");
        }
        cmd::run(&mut cc)?;
    }
    Ok(out)
}

/// Builds the guest binaries for the musl target and returns their directory.
pub fn build_binaries(env: &paths::Env) -> Result<PathBuf> {
    cmd::step("building guest programs (static musl)");
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo
        .current_dir(&env.root)
        .args(["build", "--release", "--target", host::GUEST_TARGET]);
    for (package, binary) in GUEST_BINARIES {
        cargo.args(["--package", package, "--bin", binary]);
    }
    cmd::run(&mut cargo)?;
    Ok(env.target().join(host::GUEST_TARGET).join("release"))
}

/// Writes the initramfs for one kernel profile and returns its path.
///
/// `/init` is `fgrab-guest`, which mounts the pseudo file systems, loads the module and runs
/// what the kernel command line asks for. Busybox is there for the interactive shell.
pub fn initramfs(
    env: &paths::Env,
    kernel: &kernel::Built,
    binaries: &Path,
    module: &Path,
) -> Result<PathBuf> {
    let mut archive = Cpio::default();
    for dir in [
        "bin",
        "dev",
        "proc",
        "sys",
        "tmp",
        "run",
        "lib",
        "lib/modules",
        "mnt",
    ] {
        archive.dir(dir);
    }
    archive.file("init", &read(&binaries.join("fgrab-guest"))?, 0o755);
    let c_programs = binaries.join("../../c-examples");
    for (name, ..) in C_PROGRAMS {
        archive.file(
            &format!("bin/{name}"),
            &read(&c_programs.join(name))?,
            0o755,
        );
    }
    for (_, binary) in GUEST_BINARIES {
        archive.file(
            &format!("bin/{binary}"),
            &read(&binaries.join(binary))?,
            0o755,
        );
    }
    let busybox = kernel.sysroot.root.join("usr/bin/busybox");
    archive.file("bin/busybox", &read(&busybox)?, 0o755);
    archive.symlink("bin/sh", "busybox");
    archive.file("lib/modules/fgrab.ko", &read(module)?, 0o644);

    let out = env
        .target()
        .join("vm")
        .join(kernel.profile.name())
        .join("initramfs.cpio");
    std::fs::create_dir_all(out.parent().unwrap_or(Path::new(".")))?;
    std::fs::write(&out, archive.finish()).with_context(|| format!("writing {}", out.display()))?;
    Ok(out)
}

/// The initramfs of the Python suite: `base` with the package under test appended as a second
/// archive (the kernel unpacks concatenated archives in order), `/python/site` (the unpacked
/// wheel) and `files` (`crate::python` says which). The other suites keep `base` as it is.
pub fn initramfs_with_python(base: &Path, site: &Path, files: &[StagedFile]) -> Result<PathBuf> {
    let mut archive = Cpio::default();
    archive.dir("python");
    archive.tree("python/site", site)?;
    let mut dirs = std::collections::BTreeSet::new();
    for file in files {
        let mut dir = Path::new(&file.path).parent();
        let mut missing = Vec::new();
        while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
            missing.push(d.to_string_lossy().into_owned());
            dir = d.parent();
        }
        for d in missing.into_iter().rev() {
            if dirs.insert(d.clone()) {
                archive.dir(&format!("python/{d}"));
            }
        }
        archive.file(&format!("python/{}", file.path), &file.data, file.mode);
    }
    let mut bytes = read(base)?;
    bytes.extend(archive.finish());
    let out = base.with_file_name("initramfs-python.cpio");
    std::fs::write(&out, bytes).with_context(|| format!("writing {}", out.display()))?;
    Ok(out)
}

/// A file the Python suite's initramfs carries under `/python` (bound at `/opt/fgrab` in
/// the userland).
pub struct StagedFile {
    /// Path below `/python`, e.g. `tests/device.py`.
    pub path: String,
    pub data: Vec<u8>,
    pub mode: u32,
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// A `newc` cpio archive writer (the format the kernel unpacks as initramfs).
#[derive(Default)]
struct Cpio {
    bytes: Vec<u8>,
    next_inode: u32,
}

impl Cpio {
    fn dir(&mut self, name: &str) {
        self.entry(name, 0o040_755, &[]);
    }

    fn file(&mut self, name: &str, data: &[u8], permissions: u32) {
        self.entry(name, 0o100_000 | permissions, data);
    }

    /// `dir` and everything below it (directories and regular files), as `name`.
    fn tree(&mut self, name: &str, dir: &Path) -> Result<()> {
        self.dir(name);
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .map(|entry| entry.map(|entry| entry.path()))
            .collect::<std::io::Result<_>>()?;
        entries.sort();
        for path in entries {
            let inner = format!(
                "{name}/{}",
                path.file_name().unwrap_or_default().to_string_lossy()
            );
            if path.is_dir() {
                self.tree(&inner, &path)?;
            } else {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(&path)?.permissions().mode() & 0o777;
                self.file(&inner, &read(&path)?, mode);
            }
        }
        Ok(())
    }

    fn symlink(&mut self, name: &str, target: &str) {
        self.entry(name, 0o120_777, target.as_bytes());
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.next_inode += 1;
        let fields = [
            self.next_inode,
            mode,
            0, // uid
            0, // gid
            1, // nlink
            0, // mtime: fixed, so the archive is reproducible
            data.len() as u32,
            0,
            0,
            0,
            0,
            name.len() as u32 + 1,
            0, // checksum, unused by newc
        ];
        self.bytes.extend_from_slice(b"070701");
        for field in fields {
            self.bytes
                .extend_from_slice(format!("{field:08x}").as_bytes());
        }
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(0);
        self.pad();
        self.bytes.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.bytes.len().is_multiple_of(4) {
            self.bytes.push(0);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[]);
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newc_layout() {
        let mut archive = Cpio::default();
        archive.file("init", b"abc", 0o755);
        let bytes = archive.finish();
        assert_eq!(&bytes[..6], b"070701");
        // Header is 110 bytes, then "init\0" padded to a multiple of 4, then data padded.
        assert_eq!(&bytes[110..115], b"init\0");
        assert_eq!(&bytes[116..119], b"abc");
        assert_eq!(bytes.len() % 4, 0);
        let trailer = 120;
        assert_eq!(&bytes[trailer..trailer + 6], b"070701");
        assert_eq!(&bytes[trailer + 110..trailer + 120], b"TRAILER!!!");
    }
}
