//! `cargo xtask`: everything needed to build, boot and test fgrab on a fresh machine.
//!
//! The kernel, its Rust toolchain and QEMU come from a Debian trixie sysroot (see
//! `sysroot.rs` for why); the host only needs `debootstrap` and the rustup toolchain that runs
//! this program. Every expensive artifact is cached under `~/.cache/fgrab` (or `$FGRAB_CACHE`),
//! keyed by its inputs, so a second run only rebuilds what changed.

mod bench;
mod bench_record;
mod cmd;
mod genicam;
mod gentl;
mod guest;
mod guest_root;
mod hash;
mod host;
mod host_tests;
mod kernel;
mod layers;
mod module;
mod paths;
mod python;
mod report;
mod sysroot;
mod test;
/// The guest test `nonroot-clients` reads the udev rule with this file; the guest crate's
/// unit tests do not run on the host, so its tests (the shipped rule and packaging agree)
/// run here.
#[cfg(test)]
#[path = "../../tests/guest/src/udev_rule.rs"]
mod udev_rule;
mod vm;
mod wheel;

use anyhow::{bail, Result};

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  demo              boot the VM with emulated cameras and show the driver at work
  soak [--seconds=S | --frames=N] [--iommu]
                    stream under memory pressure on the debug kernel (default 600 s)
  bench [--iommu] [--runtime=S] [--record-only]
                    the fio-style benchmark matrix in the VM, then the recording jobs on a
                    virtio disk (--record-only: those alone); rewrites benches/RESULTS.md
                    and the README's table
  fuzz [--commands=N] [--iommu]
                    the command fuzzer with a bigger budget (default 1,000,000 commands;
                    the test run gives it 20,000)
  test              run every test (host checks and VM tests); ends with `N passed, N failed`
  test --host       only the host checks (formatting, lints, host test binaries, doctests)
  test WORD...      only the guest tests whose names contain a word, in every suite that
                    runs them (no host checks); a word that matches nothing is an error
  setup             install and build everything the other commands need
  cti               build the GenTL producer as target/release/fgrab.cti and the C consumer
                    (target/gentl/fgrab-gentl-consumer), both against the host's glibc
  fmt               format the workspace (cargo fmt) and driver/ (the kernel's rustfmt)
  kernel [--debug]  build the guest kernel (fast profile unless --debug)
  layers [--dot]    check the driver's layers: one direction of dependency, no cycles,
                    `unsafe` and `bindings::` only in layer 1; prints the concern graph and
                    line counts (--dot: the graph as Graphviz DOT); also a host check of `test`
  module [--debug]  build fgrab.ko against the guest kernel (also with CLIPPY=1)
  vm [--debug] [--iommu] [--cards N]
                    boot the guest with an interactive shell (Ctrl-A X quits)
  wheel             build the fgrab Python wheel (maturin) into target/python/wheels and
                    unpack it into target/python/site
  guest-root        build the Debian userland of the Python suite (python3, numpy, harvesters)

environment:
  FGRAB_CACHE       cache directory (default: ~/.cache/fgrab)
  FGRAB_VERBOSE=1   stream build and serial output instead of progress lines
  FGRAB_SUITES=a,b  `test WORD...` runs only these VM suites (vm, vm-iommu, vm-swiotlb,
                    vm-removal, vm-faults, vm-hostile, vm-python)
  FGRAB_EMU_ARGS    extra arguments for every `fgrab-emu serve` (e.g. -vv)
";

fn main() {
    if let Err(error) = run() {
        eprintln!("xtask: error: {error:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(command) = args.first() else {
        print!("{USAGE}");
        bail!("no command given");
    };
    let flags = &args[1..];
    // These only read or format the checkout: no root, no cache, no disk check.
    if !matches!(
        command.as_str(),
        "help" | "--help" | "-h" | "fmt" | "layers" | "cti"
    ) {
        host::preflight(&paths::Env::new()?)?;
    }
    let profile = if flags.iter().any(|flag| flag == "--debug") {
        kernel::Profile::Debug
    } else {
        kernel::Profile::Fast
    };
    match command.as_str() {
        "demo" => vm::demo(),
        "bench" => bench::run(flags),
        "soak" => test::soak(flags),
        "fuzz" => test::fuzz(flags),
        "layers" => layers::run(flags),
        "test" if flags.is_empty() => test::run_all(test::Part::All),
        "test" if flags == ["--host"] => test::run_all(test::Part::Host),
        "test" => test::run_filtered(flags),
        "setup" => {
            let env = paths::Env::new()?;
            let artifacts = vm::prepare(&env, kernel::Profile::Debug)?;
            vm::prepare(&env, kernel::Profile::Fast)?;
            println!("setup complete: {}", artifacts.kernel.display());
            Ok(())
        }
        "cti" => gentl::run(&paths::Env::new()?),
        "kernel" => {
            let env = paths::Env::new()?;
            let built = kernel::build(&env, profile)?;
            println!("{}", built.bzimage().display());
            Ok(())
        }
        "module" => {
            let env = paths::Env::new()?;
            let built = kernel::build(&env, profile)?;
            let ko = module::build(&env, &built)?;
            println!("{}", ko.display());
            Ok(())
        }
        "fmt" => {
            let env = paths::Env::new()?;
            cmd::run(
                std::process::Command::new(
                    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()),
                )
                .current_dir(&env.root)
                .args(["fmt", "--all"]),
            )?;
            module::rustfmt(&env, &kernel::build(&env, kernel::Profile::Debug)?, false)
        }
        "wheel" => {
            let built = wheel::build(&paths::Env::new()?)?;
            println!("{}\n{}", built.file.display(), built.site.display());
            Ok(())
        }
        "guest-root" => {
            let root = guest_root::ensure(&paths::Env::new()?)?;
            println!("{}", root.display());
            Ok(())
        }
        "vm" => {
            let cards = flag_value(flags, "--cards").unwrap_or(Ok(1))?;
            vm::interactive(profile, flags.iter().any(|flag| flag == "--iommu"), cards)
        }
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => {
            print!("{USAGE}");
            bail!("unknown command `{other}`")
        }
    }
}

fn flag_value(flags: &[String], name: &str) -> Option<Result<u32>> {
    let position = flags.iter().position(|flag| flag == name)?;
    Some(match flags.get(position + 1) {
        Some(value) => value
            .parse()
            .map_err(|_| anyhow::anyhow!("{name} expects a number, got `{value}`")),
        None => Err(anyhow::anyhow!("{name} expects a value")),
    })
}
