//! Booting the guest: QEMU (TCG) from the sysroot, one emulated card per `fgrab-emu` process
//! on the host, the serial log streamed, parsed and kept.

use crate::report::{self, Event, Outcome};
use crate::{cmd, guest, kernel, module, paths, sysroot};
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Guest RAM. Shared memfd-backed, so the device model can DMA into it.
const GUEST_MEMORY_MIB: u32 = 1024;

/// Everything a VM run boots.
pub struct Artifacts {
    /// The kernel build (and the sysroot QEMU runs in).
    pub built: kernel::Built,
    /// `bzImage`.
    pub kernel: PathBuf,
    /// The initramfs with `/init`, busybox and the module.
    pub initramfs: PathBuf,
    /// The host-side device model binary.
    pub emulator: PathBuf,
    /// `fgrab-guest` (static, so the host can run `fgrab-guest list` to learn the tests).
    pub guest: PathBuf,
}

/// Builds (or finds cached) everything needed to boot `profile`.
pub fn prepare(env: &paths::Env, profile: kernel::Profile) -> Result<Artifacts> {
    let built = kernel::build(env, profile)?;
    let ko = module::build(env, &built)?;
    let binaries = guest::build_binaries(env)?;
    guest::build_c_programs(env)?;
    let emulator = build_emulator(env)?;
    let initramfs = guest::initramfs(env, &built, &binaries, &ko)?;
    Ok(Artifacts {
        kernel: built.bzimage(),
        built,
        initramfs,
        emulator,
        guest: binaries.join("fgrab-guest"),
    })
}

fn build_emulator(env: &paths::Env) -> Result<PathBuf> {
    cmd::step("building the device model (fgrab-emu)");
    cmd::run(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(&env.root)
            .args([
                "build",
                "--release",
                "-p",
                "fgrab-emu",
                "--bin",
                "fgrab-emu",
            ]),
    )?;
    Ok(env.target().join("release/fgrab-emu"))
}

/// The Debian userland of the Python suite (`python.rs`): the guest root, shared read-only
/// over 9p, and the initramfs that carries the package under test.
#[derive(Clone)]
pub struct Userland {
    /// The guest root on the host (`guest_root.rs`).
    pub root: PathBuf,
    /// Replaces the suites' initramfs (the same, with `/python` appended).
    pub initramfs: PathBuf,
}

/// The 9p mount tag of the userland; the guest finds it on its command line.
const USERLAND_TAG: &str = "userland";

/// One VM run.
pub struct VmConfig {
    /// Run name: names the run directory and log.
    pub name: String,
    /// Put the cards behind an emulated Intel IOMMU (`intel_iommu=on`).
    pub iommu: bool,
    /// Force every streaming DMA mapping through swiotlb bounce buffers.
    pub swiotlb_force: bool,
    /// Number of emulated cards.
    pub cards: u32,
    /// What the guest's `/init` does: `test`, `demo` or `shell`.
    pub mode: &'static str,
    /// Guest tests to run (mode `test`); empty means all.
    pub tests: Vec<String>,
    /// Extra `key=value` words for the guest (passed as environment of `/init`).
    pub guest_args: Vec<String>,
    /// Extra arguments for every device model process.
    pub emulator_args: Vec<String>,
    /// Extra arguments for one card's device model: `(card, arguments)`.
    pub card_args: Vec<(u32, Vec<String>)>,
    /// Wall-clock limit for the whole run.
    pub timeout: Duration,
    /// Share this userland with the guest (the Python suite).
    pub userland: Option<Userland>,
    /// A virtio disk of this many MiB (`/dev/vda` in the guest): a sparse raw image in the
    /// run directory, made empty for each run and removed after it (recording tests and
    /// benchmarks write to it).
    pub disk_mib: Option<u64>,
    /// QEMU `-icount` options (e.g. `shift=3,align=off,sleep=on`): guest time counts
    /// instructions, so guest CPU times measure work, not the host's load. TCG then runs
    /// every vCPU in one host thread.
    pub icount: Option<String>,
}

impl VmConfig {
    /// A test run with defaults: two cards, no IOMMU, half an hour at most.
    pub fn test(name: &str) -> Self {
        Self {
            name: name.to_string(),
            iommu: false,
            swiotlb_force: false,
            cards: 2,
            mode: "test",
            tests: Vec::new(),
            guest_args: Vec::new(),
            emulator_args: Vec::new(),
            card_args: Vec::new(),
            timeout: Duration::from_secs(1800),
            userland: None,
            disk_mib: None,
            icount: None,
        }
    }
}

/// What a run produced.
pub struct VmOutcome {
    /// The kept serial log.
    pub log: PathBuf,
    /// Guest test results in order.
    pub results: Vec<(String, Outcome, u64)>,
    /// Kernel report lines (WARN, BUG, KASAN, lockdep, kmemleak, DMA-API ...).
    pub reports: Vec<String>,
    /// `@@fgrab info` lines.
    pub infos: Vec<String>,
    /// Whether the guest reached its end (`@@fgrab done`).
    pub finished: bool,
    /// Why the run ended early, if it did.
    pub failure: Option<String>,
}

impl VmOutcome {
    /// True when the guest finished, every test passed and the kernel reported nothing.
    pub fn clean(&self) -> bool {
        self.finished
            && self.failure.is_none()
            && self.reports.is_empty()
            && self
                .results
                .iter()
                .all(|(_, outcome, _)| *outcome == Outcome::Pass)
    }
}

/// Device model processes; killed when dropped so no run leaves one behind.
struct Emulators(Vec<Child>);

impl Drop for Emulators {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn start_emulators(artifacts: &Artifacts, config: &VmConfig, run: &Path) -> Result<Emulators> {
    let mut children = Emulators(Vec::new());
    for card in 0..config.cards {
        let socket = run.join(format!("card{card}.sock"));
        let log = std::fs::File::create(run.join(format!("card{card}.log")))?;
        let child = Command::new(&artifacts.emulator)
            .args(["serve", "--socket"])
            .arg(&socket)
            .args(&config.emulator_args)
            .args(
                config
                    .card_args
                    .iter()
                    .filter(|(number, _)| *number == card)
                    .flat_map(|(_, args)| args),
            )
            .args(
                std::env::var("FGRAB_EMU_ARGS")
                    .unwrap_or_default()
                    .split_whitespace(),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", artifacts.emulator.display()))?;
        children.0.push(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            if Instant::now() > deadline {
                bail!(
                    "device model for card {card} did not create {}",
                    socket.display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(children)
}

fn qemu_script(artifacts: &Artifacts, config: &VmConfig, run: &Path, interactive: bool) -> String {
    let mut append = vec![
        "console=ttyS0".to_string(),
        "panic=-1".to_string(),
        "printk.time=1".to_string(),
        // Only warnings and worse on the console while tests print their result lines there
        // (informational bursts such as KUnit output interleaved with them); the guest dumps
        // the whole kernel log at the end, so the serial log still has everything.
        "loglevel=5".to_string(),
        format!("fgrab_mode={}", config.mode),
        format!("fgrab_cards={}", config.cards),
    ];
    if !config.tests.is_empty() {
        append.push(format!("fgrab_tests={}", config.tests.join(",")));
    }
    if config.iommu {
        append.push("intel_iommu=on".into());
    }
    if config.swiotlb_force {
        append.push("swiotlb=force".into());
    }
    if config.userland.is_some() {
        append.push(format!("fgrab_userland={USERLAND_TAG}"));
    }
    append.extend(config.guest_args.iter().cloned());
    let initramfs = config
        .userland
        .as_ref()
        .map_or(&artifacts.initramfs, |userland| &userland.initramfs);

    let mut qemu = vec![
        "qemu-system-x86_64".to_string(),
        "-accel tcg".into(),
        // TCG's `max` CPU has 5-level paging; KASAN then reports an interrupt that arrives
        // during early boot as a wild access (seen in do_raw_spin_lock from cpu_detect).
        "-cpu max,la57=off".into(),
        "-smp 2".into(),
        config
            .icount
            .as_ref()
            .map_or(String::new(), |icount| format!("-icount {icount}")),
        format!("-m {GUEST_MEMORY_MIB}M"),
        format!("-object memory-backend-memfd,id=mem,size={GUEST_MEMORY_MIB}M,share=on"),
        "-machine q35,memory-backend=mem".into(),
        "-nodefaults -display none -no-reboot".into(),
        format!("-kernel {}", sysroot::quote(&artifacts.kernel)),
        format!("-initrd {}", sysroot::quote(initramfs)),
        format!("-append '{}'", append.join(" ")),
        format!(
            "-monitor unix:{},server,nowait",
            sysroot::quote(&run.join("monitor.sock"))
        ),
    ];
    qemu.push(if interactive {
        "-serial mon:stdio".into()
    } else {
        "-serial stdio".into()
    });
    if config.iommu {
        // Must come before the devices it translates for.
        qemu.push("-device intel-iommu,caching-mode=on".into());
    }
    if let Some(userland) = &config.userland {
        // 9p over virtio-pci, read-only on the host's side too; QEMU runs as root, and
        // `security_model=none` shows the tree's own owners and modes as they are.
        qemu.push(format!(
            "-fsdev local,id={USERLAND_TAG},path={},security_model=none,readonly=on",
            sysroot::quote(&userland.root)
        ));
        qemu.push(format!(
            "-device virtio-9p-pci,fsdev={USERLAND_TAG},mount_tag={USERLAND_TAG}"
        ));
    }
    if config.disk_mib.is_some() {
        // The host's page cache stays out (`cache=none`: O_DIRECT on the image), so the
        // guest measures the host disk, as a guest on real storage would; thread-pool AIO
        // needs nothing of the sysroot's QEMU build.
        qemu.push(format!(
            "-drive file={},if=none,format=raw,id=disk0,cache=none,aio=threads",
            sysroot::quote(&disk_image(run))
        ));
        qemu.push("-device virtio-blk-pci,drive=disk0".into());
    }
    for card in 0..config.cards {
        let socket = run.join(format!("card{card}.sock"));
        qemu.push(format!(
            "-device pcie-root-port,id=rp{card},chassis={chassis},slot={chassis}",
            chassis = card + 1
        ));
        qemu.push(format!("-device {}", vfio_user_device(card, &socket)));
    }
    format!("exec {}", qemu.join(" "))
}

/// The virtio disk's image in a run directory.
fn disk_image(run: &Path) -> PathBuf {
    run.join("disk.img")
}

/// Creates the run's empty sparse disk image of `mib` MiB.
fn create_disk(run: &Path, mib: u64) -> Result<()> {
    let path = disk_image(run);
    let file = std::fs::File::create(&path)
        .with_context(|| format!("creating the disk image {}", path.display()))?;
    file.set_len(mib << 20)
        .with_context(|| format!("sizing the disk image {}", path.display()))
}

/// QEMU's `-device` argument, in its JSON syntax, for card `card` served on `socket`,
/// quoted for the shell.
fn vfio_user_device(card: u32, socket: &Path) -> String {
    #[derive(serde::Serialize)]
    struct Socket {
        #[serde(rename = "type")]
        kind: &'static str,
        path: String,
    }
    #[derive(serde::Serialize)]
    struct Device {
        driver: &'static str,
        id: String,
        bus: String,
        socket: Socket,
    }
    let device = Device {
        driver: "vfio-user-pci",
        id: format!("card{card}"),
        bus: format!("rp{card}"),
        socket: Socket {
            kind: "unix",
            path: socket.display().to_string(),
        },
    };
    let json = serde_json::to_string(&device).expect("strings serialize");
    sysroot::quote(Path::new(&json))
}

/// What QEMU, in the sysroot, must see at the same paths as the host: the kernel build, the
/// initramfs directory, the run directory (sockets, monitor) and the userland, if any.
fn binds<'a>(artifacts: &'a Artifacts, config: &'a VmConfig, run: &'a Path) -> Vec<&'a Path> {
    let mut binds = vec![
        artifacts.built.build.as_path(),
        artifacts.initramfs.parent().unwrap_or(Path::new("/")),
        run,
    ];
    if let Some(userland) = &config.userland {
        binds.push(&userland.root);
    }
    binds
}

/// Boots the guest non-interactively and collects its results.
pub fn run(env: &paths::Env, artifacts: &Artifacts, config: &VmConfig) -> Result<VmOutcome> {
    let run = env.run_dir(&config.name)?;
    if let Some(mib) = config.disk_mib {
        create_disk(&run, mib)?;
    }
    let _emulators = start_emulators(artifacts, config, &run)?;
    let script = qemu_script(artifacts, config, &run, false);
    let log_path = run.join("serial.log");
    let mut log = std::fs::File::create(&log_path)?;
    let mut child = artifacts
        .built
        .sysroot
        .command(&binds(artifacts, config, &run), &script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting QEMU")?;

    let receiver = cmd::output_lines(&mut child);

    let mut outcome = VmOutcome {
        log: log_path,
        results: Vec::new(),
        reports: Vec::new(),
        infos: Vec::new(),
        finished: false,
        failure: None,
    };
    let deadline = Instant::now() + config.timeout;
    let mut current: Option<(String, Instant)> = None;
    loop {
        let now = Instant::now();
        if now >= deadline {
            outcome.failure = Some(format!("timed out after {}s", config.timeout.as_secs()));
            let _ = child.kill();
            break;
        }
        match receiver.recv_timeout(deadline - now) {
            Ok(line) => {
                writeln!(log, "{line}")?;
                if env.verbose {
                    println!("    | {line}");
                }
                if report::is_kernel_report(&line) {
                    println!("    KERNEL REPORT: {line}");
                    outcome.reports.push(line.clone());
                }
                match report::parse(&line) {
                    Some(Event::Start(name)) => {
                        // A result line mangled on the console must not pass unnoticed.
                        if let Some((lost, _)) = current.replace((name, Instant::now())) {
                            let why = "its result line was lost on the console".to_string();
                            println!("    FAIL  {lost}: {why}");
                            outcome.results.push((lost, Outcome::Fail(why), 0));
                        }
                    }
                    Some(Event::End(name, result, millis)) => {
                        match &result {
                            Outcome::Pass => println!("    ok    {name} ({millis} ms)"),
                            Outcome::Fail(why) => println!("    FAIL  {name}: {why}"),
                        }
                        current = None;
                        outcome.results.push((name, result, millis));
                    }
                    Some(Event::Info(text)) => {
                        println!("    {text}");
                        outcome.infos.push(text);
                    }
                    Some(Event::Kmemleak(verdict)) if verdict != "clean" => {
                        outcome.reports.push(format!("kmemleak: {verdict}"));
                    }
                    Some(Event::Tainted(value)) => {
                        if let Some(problem) = report::taint_problem(&value) {
                            outcome.reports.push(problem);
                        }
                    }
                    Some(Event::Done) => outcome.finished = true,
                    Some(Event::Kmemleak(_)) | None => {}
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let status = child.wait()?;
    if let Some((name, started)) = current {
        let why = format!(
            "did not finish (guest stopped after {}s)",
            started.elapsed().as_secs()
        );
        println!("    FAIL  {name}: {why}");
        outcome.results.push((name, Outcome::Fail(why), 0));
    }
    // A test the guest never started must not vanish from the count.
    for name in &config.tests {
        if !outcome.results.iter().any(|(ran, _, _)| ran == name) {
            let why = "no result: the guest never ran it".to_string();
            println!("    FAIL  {name}: {why}");
            outcome.results.push((name.clone(), Outcome::Fail(why), 0));
        }
    }
    if !outcome.finished && outcome.failure.is_none() {
        outcome.failure = Some(format!("guest ended without finishing (QEMU: {status})"));
    }
    if config.disk_mib.is_some() {
        // What the guest wrote is of no further use; the image would hold host disk space.
        let _ = std::fs::remove_file(disk_image(&run));
    }
    Ok(outcome)
}

/// `cargo xtask vm`: an interactive guest shell.
pub fn interactive(profile: kernel::Profile, iommu: bool, cards: u32) -> Result<()> {
    let env = paths::Env::new()?;
    let artifacts = prepare(&env, profile)?;
    let mut config = VmConfig::test("interactive");
    config.mode = "shell";
    config.iommu = iommu;
    config.cards = cards;
    let run = env.run_dir(&config.name)?;
    let _emulators = start_emulators(&artifacts, &config, &run)?;
    cmd::step("booting the guest; the module is loaded, `poweroff -f` or Ctrl-A X leaves");
    let script = qemu_script(&artifacts, &config, &run, true);
    cmd::run(
        &mut artifacts
            .built
            .sysroot
            .command(&binds(&artifacts, &config, &run), &script),
    )
}

/// `cargo xtask demo`: boots the guest with emulated cameras and shows the driver.
pub fn demo() -> Result<()> {
    let env = paths::Env::new()?;
    let artifacts = prepare(&env, kernel::Profile::Fast)?;
    let mut config = VmConfig::test("demo");
    config.mode = "demo";
    config.cards = 2;
    config.timeout = Duration::from_secs(300);
    // The Python consumer runs in the Debian userland of the Python suite.
    config.userland = Some(crate::python::prepare(&env, &artifacts)?);
    cmd::step("booting the guest with 2 emulated frame grabbers (QEMU TCG)");
    let outcome = run(&env, &artifacts, &config)?;
    if !outcome.clean() {
        bail!(
            "demo failed: {}; serial log: {}",
            outcome
                .failure
                .clone()
                .unwrap_or_else(|| format!("{} kernel reports", outcome.reports.len())),
            outcome.log.display()
        );
    }
    println!("demo finished; serial log: {}", outcome.log.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn vfio_user_device() {
        assert_eq!(
            super::vfio_user_device(1, Path::new("/run/x/card1.sock")),
            r#"'{"driver":"vfio-user-pci","id":"card1","bus":"rp1","socket":{"type":"unix","path":"/run/x/card1.sock"}}'"#
        );
        // A quote in the path stays JSON and shell safe.
        assert_eq!(
            super::vfio_user_device(0, Path::new("/a'b\"c")),
            r#"'{"driver":"vfio-user-pci","id":"card0","bus":"rp0","socket":{"type":"unix","path":"/a'\''b\"c"}}'"#
        );
    }
}
