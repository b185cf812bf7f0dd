//! `cargo xtask test`: host checks, then the VM suites on the debug kernel.
//!
//! Prints one line per check or test and ends with the plain `N passed, N failed` line.

use crate::report::Outcome;
use crate::vm::{self, VmConfig, VmOutcome};
use crate::{cmd, kernel, module, paths};
use anyhow::Result;
use std::process::Command;
use std::time::Instant;

#[derive(Default)]
struct Tally {
    passed: usize,
    failed: Vec<String>,
}

impl Tally {
    fn record(&mut self, name: &str, result: Result<()>) {
        match result {
            Ok(()) => {
                println!("ok    {name}");
                self.passed += 1;
            }
            Err(error) => {
                println!("FAIL  {name}: {error:#}");
                self.failed.push(name.to_string());
            }
        }
    }

    /// Counts each guest test, plus one entry for the run's kernel reports and completion.
    fn vm(&mut self, suite: &str, outcome: &VmOutcome) {
        for (test, result, _) in &outcome.results {
            match result {
                Outcome::Pass => self.passed += 1,
                Outcome::Fail(_) => self.failed.push(format!("{suite}/{test}")),
            }
        }
        let mut problems = Vec::new();
        if let Some(failure) = &outcome.failure {
            problems.push(failure.clone());
        }
        if !outcome.reports.is_empty() {
            problems.push(format!("{} kernel report line(s)", outcome.reports.len()));
        }
        let name = format!("{suite}: guest finished with no kernel report");
        if problems.is_empty() {
            self.record(&name, Ok(()));
        } else {
            self.record(
                &name,
                Err(anyhow::anyhow!(
                    "{}; serial log kept at {}",
                    problems.join("; "),
                    outcome.log.display()
                )),
            );
        }
    }
}

fn cargo(env: &paths::Env) -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.current_dir(&env.root);
    command
}

/// Runs `cargo test` for the host crates and adds its per-test counts to the tally.
fn host_unit_tests(env: &paths::Env, tally: &mut Tally) -> Result<()> {
    let log = env.target().join("host-tests.log");
    std::fs::create_dir_all(env.target())?;
    let result = cmd::run_logged(
        cargo(env).args(["test", "--workspace", "--exclude", "fgrab-guest"]),
        "cargo test",
        &log,
        env.verbose,
    );
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let mut counted = false;
    for line in text.lines().filter(|line| line.starts_with("test result:")) {
        counted = true;
        let number = |word: &str| {
            line.split(';')
                .find(|part| part.trim_end().ends_with(word))
                .and_then(|part| part.split_whitespace().rev().nth(1)?.parse::<usize>().ok())
                .unwrap_or(0)
        };
        tally.passed += number("passed");
        let failed = number("failed");
        for index in 0..failed {
            tally
                .failed
                .push(format!("host unit test #{index} ({line})"));
        }
    }
    for line in text.lines().filter(|line| line.ends_with("FAILED")) {
        println!("FAIL  host {line}");
    }
    if result.is_err() && !counted {
        tally.record("cargo test (host crates)", result);
    } else {
        println!("ok    cargo test (host crates): see {}", log.display());
    }
    Ok(())
}

/// Runs one VM suite and records it.
fn suite(env: &paths::Env, artifacts: &vm::Artifacts, tally: &mut Tally, config: VmConfig) {
    cmd::step(&format!("VM suite `{}`", config.name));
    let name = config.name.clone();
    match vm::run(env, artifacts, &config) {
        Ok(outcome) => tally.vm(&name, &outcome),
        Err(error) => tally.record(&format!("{name}: VM run"), Err(error)),
    }
}

/// Proves the harness can fail: a deliberately failing guest test and a real kernel WARN
/// (provoked through lkdtm) must both be detected.
fn harness_self_test(env: &paths::Env, artifacts: &vm::Artifacts, tally: &mut Tally) {
    cmd::step(
        "harness self-test: the FAIL and KERNEL REPORT lines below are provoked on purpose \
         and must be caught",
    );
    let mut config = VmConfig::test("selftest");
    config.cards = 0;
    config.tests = vec!["selftest-fail".into(), "selftest-warn".into()];
    let result = vm::run(env, artifacts, &config).and_then(|outcome| {
        let failing_caught = outcome
            .results
            .iter()
            .any(|(name, result, _)| name == "selftest-fail" && *result != Outcome::Pass);
        let warn_caught = outcome.reports.iter().any(|line| line.contains("WARNING:"));
        if failing_caught && warn_caught && !outcome.clean() {
            Ok(())
        } else {
            Err(anyhow::anyhow!(
                "failing test caught: {failing_caught}, WARN caught: {warn_caught}; log {}",
                outcome.log.display()
            ))
        }
    });
    tally.record(
        "harness self-test (failing test and kernel WARN detected)",
        result,
    );
}

/// The VM suites: the same guest tests with direct DMA, behind a virtual Intel IOMMU, and
/// with every streaming mapping bounced through swiotlb.
fn suites() -> Vec<VmConfig> {
    let plain = VmConfig::test("vm");
    let mut iommu = VmConfig::test("vm-iommu");
    iommu.iommu = true;
    let mut swiotlb = VmConfig::test("vm-swiotlb");
    swiotlb.swiotlb_force = true;
    // Hot-unplug of card 0, and card 1 going silent at its frame 300, behind the IOMMU.
    let mut removal = VmConfig::test("vm-removal");
    removal.iommu = true;
    removal.tests = vec!["stream-hot-unplug".into(), "stream-surprise-removal".into()];
    removal.card_args = vec![(1, vec!["--fault".into(), "remove@300".into()])];
    // Card 1 misbehaves on purpose (docs/hardware.md, fault injection), behind the IOMMU.
    let mut faults = VmConfig::test("vm-faults");
    faults.iommu = true;
    faults.tests = vec!["fault-injection".into()];
    let fault = |spec: &str| ["--fault".to_string(), spec.to_string()];
    faults.card_args = vec![(
        1,
        [
            "dma-error@100",
            "lost-irq@200",
            "desc-reject@300",
            "stall@400:250ms",
            "reset-request@10000",
        ]
        .into_iter()
        .flat_map(fault)
        .collect(),
    )];
    // Hostile cards, direct DMA (a late write shows in the buffer): card 0 claims too many
    // bytes for a frame, card 1 has invalid capabilities (refused at probe), card 2 answers
    // a stop with idle while keeping frames.
    let mut hostile = VmConfig::test("vm-hostile");
    hostile.cards = 3;
    hostile.tests = vec![
        "hostile-capabilities".into(),
        "hostile-records".into(),
        "hostile-stop-keeps-frames".into(),
    ];
    hostile.card_args = vec![
        (0, fault("hostile-bytes@100").into()),
        (1, fault("hostile-caps@0").into()),
        // One frame per 20 ms: submissions wait in the ring when the stop comes.
        (
            2,
            [
                &fault("lying-stop@50")[..],
                &["--period-us".into(), "20000".into()],
            ]
            .concat(),
        ),
    ];
    vec![plain, iommu, swiotlb, removal, faults, hostile]
}

/// `cargo xtask test FILTER...`: only the guest tests whose names contain a word, in every
/// suite, skipping host checks (for iterating on the driver).
pub fn run_filtered(filter: &[String]) -> Result<()> {
    let env = paths::Env::new()?;
    let mut tally = Tally::default();
    let artifacts = vm::prepare(&env, kernel::Profile::Debug)?;
    let only: Option<Vec<String>> = std::env::var("FGRAB_SUITES")
        .ok()
        .map(|list| list.split(',').map(str::to_owned).collect());
    for mut config in suites() {
        if only
            .as_ref()
            .is_some_and(|only| !only.contains(&config.name))
        {
            continue;
        }
        if config.tests.is_empty() {
            config.tests = filter.to_vec();
        } else {
            // A suite for particular tests runs those of them the filter names.
            config
                .tests
                .retain(|test| filter.iter().any(|word| test.contains(word.as_str())));
            if config.tests.is_empty() {
                continue;
            }
        }
        suite(&env, &artifacts, &mut tally, config);
    }
    println!("{} passed, {} failed", tally.passed, tally.failed.len());
    if !tally.failed.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}

/// `cargo xtask test`.
pub fn run_all() -> Result<()> {
    let env = paths::Env::new()?;
    let start = Instant::now();
    let mut tally = Tally::default();

    cmd::step("host checks");
    tally.record(
        "cargo fmt --check",
        cmd::run(cargo(&env).args(["fmt", "--all", "--", "--check"])),
    );
    tally.record(
        "cargo clippy -D warnings",
        cmd::run(cargo(&env).args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--quiet",
            "--",
            "-D",
            "warnings",
        ])),
    );
    host_unit_tests(&env, &mut tally)?;

    match vm::prepare(&env, kernel::Profile::Debug) {
        Err(error) => tally.record(
            "debug kernel, module (CLIPPY=1) and guest build",
            Err(error),
        ),
        Ok(artifacts) => {
            tally.record("debug kernel, module (CLIPPY=1) and guest build", Ok(()));
            tally.record(
                "driver rustfmt (kernel .rustfmt.toml)",
                module::rustfmt(&env, &artifacts.built, true),
            );
            for config in suites() {
                suite(&env, &artifacts, &mut tally, config);
            }
            harness_self_test(&env, &artifacts, &mut tally);
        }
    }

    println!();
    println!("finished in {}s", start.elapsed().as_secs());
    for name in &tally.failed {
        println!("failed: {name}");
    }
    println!("{} passed, {} failed", tally.passed, tally.failed.len());
    if !tally.failed.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}

/// `cargo xtask soak`: the long soak on the debug kernel, one VM run.
pub fn soak(flags: &[String]) -> Result<()> {
    let env = paths::Env::new()?;
    let artifacts = vm::prepare(&env, kernel::Profile::Debug)?;
    let iommu = flags.iter().any(|flag| flag == "--iommu");
    let mut config = VmConfig::test(if iommu { "soak-iommu" } else { "soak" });
    config.iommu = iommu;
    config.tests = vec!["soak".into()];
    let mut seconds = 600u64;
    for flag in flags {
        if let Some(value) = flag.strip_prefix("--seconds=") {
            seconds = value.parse()?;
            config
                .guest_args
                .push(format!("fgrab_soak_seconds={value}"));
        }
        if let Some(value) = flag.strip_prefix("--frames=") {
            config.guest_args.push(format!("fgrab_soak_frames={value}"));
            // The debug kernel under pressure verifies 150-350 frames per second here, slower
            // as the run goes on: allow 100.
            seconds = seconds.max(value.parse::<u64>()? / 100);
        }
    }
    config.timeout = std::time::Duration::from_secs(seconds + 600);
    config
        .guest_args
        .push(format!("fgrab_test_timeout={}", seconds + 300));
    let mut tally = Tally::default();
    suite(&env, &artifacts, &mut tally, config);
    println!("{} passed, {} failed", tally.passed, tally.failed.len());
    if !tally.failed.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}
