//! The guest kernel: Linux 7.3 from Debian's source package, `tinyconfig` plus our fragments,
//! built with LLVM inside the sysroot.

use crate::{cmd, hash, host, paths, sysroot};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Kernel configuration profile.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Profile {
    /// Iteration, demo and benchmarks: no sanitizers.
    Fast,
    /// `cargo xtask test`: KASAN, lockdep, kmemleak, DMA-API debugging, KUnit.
    Debug,
}

impl Profile {
    /// Name used in paths and messages.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Fast => "fast",
            Profile::Debug => "debug",
        }
    }
}

/// A built kernel tree, usable for external modules.
pub struct Built {
    /// The sysroot the kernel was built in (module builds must use the same toolchain).
    pub sysroot: sysroot::Sysroot,
    /// Extracted kernel source.
    pub source: PathBuf,
    /// Build directory (`O=`).
    pub build: PathBuf,
    /// Which profile.
    pub profile: Profile,
}

impl Built {
    /// The bootable image.
    pub fn bzimage(&self) -> PathBuf {
        self.build.join("arch/x86/boot/bzImage")
    }

    /// A command running `script` in the sysroot with source, build and checkout visible.
    pub fn command(&self, root: &Path, script: &str) -> Command {
        self.sysroot
            .command(&[&self.source, &self.build, root], script)
    }
}

/// Extracts the kernel source from the sysroot's `linux-source-7.3` package (once per version).
fn source(env: &paths::Env, sysroot: &sysroot::Sysroot) -> Result<PathBuf> {
    let version = sysroot.kernel_source_version()?;
    let dir = env
        .cache
        .join("linux")
        .join(format!("src-{}", version.replace(['~', '+', ':'], "_")));
    let tree = dir.join("linux-source-7.3");
    if paths::is_complete(&dir, &version) {
        return Ok(tree);
    }
    cmd::step(&format!(
        "extracting Linux source {version} (about 30 seconds)"
    ));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    cmd::run(
        Command::new("tar")
            .arg("-xJf")
            .arg(sysroot.root.join("usr/src/linux-source-7.3.tar.xz"))
            .arg("-C")
            .arg(&dir),
    )?;
    if !tree.join("Makefile").exists() {
        bail!("{} has no kernel Makefile after extraction", tree.display());
    }
    paths::mark_complete(&dir, &version)?;
    Ok(tree)
}

/// Configures and builds the kernel for `profile`; a no-op when the cached build matches.
pub fn build(env: &paths::Env, profile: Profile) -> Result<Built> {
    let sysroot = sysroot::ensure(env)?;
    let source = source(env, &sysroot)?;
    let fragments = fragments(env, profile);
    let mut key = hash::Key::new("kernel-v1");
    key.add(sysroot.toolchain_versions()?.as_bytes());
    for fragment in &fragments {
        key.add(
            &std::fs::read(fragment).with_context(|| format!("reading {}", fragment.display()))?,
        );
    }
    let key = key.hex();
    let build = env
        .cache
        .join("linux")
        .join(format!("build-{}-{key}", profile.name()));
    let built = Built {
        sysroot,
        source,
        build,
        profile,
    };
    if paths::is_complete(&built.build, &key) {
        return Ok(built);
    }
    paths::prune_stale(&built.build)?;
    std::fs::create_dir_all(&built.build)?;
    let logs = env.cache.join("logs");
    std::fs::create_dir_all(&logs)?;

    cmd::step(&format!("configuring the {} kernel", profile.name()));
    let fragment_args: Vec<String> = fragments
        .iter()
        .map(|fragment| sysroot::quote(fragment))
        .collect();
    let make = format!(
        "make -C {src} O={out} ARCH=x86_64 {llvm}",
        src = sysroot::quote(&built.source),
        out = sysroot::quote(&built.build),
        llvm = sysroot::LLVM,
    );
    let configure = format!(
        "set -e\n{make} tinyconfig >/dev/null\n\
         {src}/scripts/kconfig/merge_config.sh -m -O {out} {out}/.config {frags} >/dev/null\n\
         {make} olddefconfig >/dev/null\n{make} rustavailable\n",
        src = sysroot::quote(&built.source),
        out = sysroot::quote(&built.build),
        frags = fragment_args.join(" "),
    );
    cmd::run_logged(
        &mut built.command(&env.root, &configure),
        "kernel config",
        &logs.join(format!("kernel-config-{}.log", profile.name())),
        env.verbose,
    )?;
    verify_config(&built.build.join(".config"), &fragments)?;

    cmd::step(&format!(
        "building the {} kernel (about {} minutes on 2 cores)",
        profile.name(),
        if profile == Profile::Debug { 12 } else { 6 }
    ));
    cmd::run_logged(
        &mut built.command(&env.root, &format!("{make} -j{}", host::jobs())),
        "kernel build",
        &logs.join(format!("kernel-build-{}.log", profile.name())),
        env.verbose,
    )?;
    paths::mark_complete(&built.build, &key)?;
    Ok(built)
}

fn fragments(env: &paths::Env, profile: Profile) -> Vec<PathBuf> {
    let dir = env.root.join("kernel/config");
    vec![
        dir.join("base.config"),
        dir.join(format!("{}.config", profile.name())),
    ]
}

/// Fails if `olddefconfig` dropped or changed any option a fragment asks for.
fn verify_config(config: &Path, fragments: &[PathBuf]) -> Result<()> {
    let actual =
        std::fs::read_to_string(config).with_context(|| format!("reading {}", config.display()))?;
    let mut problems = Vec::new();
    for fragment in fragments {
        let wanted = std::fs::read_to_string(fragment)?;
        problems.extend(config_mismatches(&wanted, &actual));
    }
    if !problems.is_empty() {
        bail!(
            "kernel config lost wanted options (a dependency is missing or the option was \
             renamed):\n  {}",
            problems.join("\n  ")
        );
    }
    Ok(())
}

/// Options of `wanted` that `actual` does not have as requested.
fn config_mismatches(wanted: &str, actual: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for line in wanted.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("# CONFIG_") {
            if let Some(name) = rest.strip_suffix(" is not set") {
                let prefix = format!("CONFIG_{name}=");
                if actual.lines().any(|line| line.starts_with(&prefix)) {
                    problems.push(format!("CONFIG_{name} should be unset"));
                }
            }
        } else if line.starts_with("CONFIG_")
            && !actual.lines().any(|actual_line| actual_line == line)
        {
            let name = line.split('=').next().unwrap_or(line);
            let got = actual
                .lines()
                .find(|actual_line| actual_line.starts_with(&format!("{name}=")))
                .unwrap_or("unset");
            problems.push(format!("{line} (got {got})"));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_dropped_and_unwanted_options() {
        let wanted = "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=4\n# comment\n";
        let actual = "CONFIG_A=y\nCONFIG_B=y\nCONFIG_C=2\n";
        let problems = config_mismatches(wanted, actual);
        assert_eq!(
            problems,
            vec!["CONFIG_B should be unset", "CONFIG_C=4 (got CONFIG_C=2)"]
        );
        assert!(config_mismatches(wanted, "CONFIG_A=y\nCONFIG_C=4\n").is_empty());
    }
}
