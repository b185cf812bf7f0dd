//! The fgrab kernel module, built out of tree against the guest kernel.

use crate::{cmd, kernel, paths, sysroot};
use anyhow::{bail, Result};
use std::path::PathBuf;

/// Builds `fgrab.ko` with clippy as the Rust compiler driver and warnings as errors.
///
/// `CLIPPY=1` swaps rustc for clippy-driver, so one build both lints and produces the module.
/// Objects go to `target/kbuild/<profile>` (`MO=`), keeping the checkout clean.
pub fn build(env: &paths::Env, kernel: &kernel::Built) -> Result<PathBuf> {
    let out = env.target().join("kbuild").join(kernel.profile.name());
    std::fs::create_dir_all(&out)?;
    let script = format!(
        "set -e\nmake -C {src} O={build} M={root} MO={out} ARCH=x86_64 {llvm} -j2 \
         CLIPPY=1 KRUSTFLAGS=-Dwarnings KCFLAGS=-Werror modules 2>&1\n",
        src = sysroot::quote(&kernel.source),
        build = sysroot::quote(&kernel.build),
        root = sysroot::quote(&env.root),
        out = sysroot::quote(&out),
        llvm = sysroot::LLVM,
    );
    cmd::step(&format!(
        "building fgrab.ko ({} kernel, clippy, -Dwarnings)",
        kernel.profile.name()
    ));
    let log = out.join("build.log");
    cmd::run_logged(
        &mut kernel.command(&env.root, &script),
        "module build",
        &log,
        env.verbose,
    )?;
    let text = std::fs::read_to_string(&log)?;
    let warnings: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("warning:") || line.contains("WARNING:"))
        .collect();
    if !warnings.is_empty() {
        bail!(
            "module build printed warnings:\n  {}",
            warnings.join("\n  ")
        );
    }
    let ko = out.join("fgrab.ko");
    if !ko.exists() {
        bail!("module build did not produce {}", ko.display());
    }
    Ok(ko)
}

/// Checks the driver's formatting with the kernel's rustfmt and `.rustfmt.toml`
/// (`check`), or formats it.
pub fn rustfmt(env: &paths::Env, kernel: &kernel::Built, check: bool) -> Result<()> {
    let script = format!(
        "cd {root} && rustfmt {mode} --edition 2021 --config-path {src}/.rustfmt.toml driver/*.rs",
        root = sysroot::quote(&env.root),
        src = sysroot::quote(&kernel.source),
        mode = if check { "--check" } else { "" },
    );
    cmd::run(&mut kernel.command(&env.root, &script)).map_err(|_| {
        anyhow::anyhow!(
            "driver/ differs from the kernel's rustfmt style (diff above); `cargo xtask fmt` fixes it"
        )
    })
}
