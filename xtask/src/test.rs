//! `cargo xtask test`: host checks, then the VM suites on the debug kernel.
//!
//! Prints one line per check or test, a table of where the time went, and ends with the
//! plain `N passed, N failed` line. Only test executions count there: a guest test once per
//! suite that ran it, a host test once, the harness self-test once. Bookkeeping (formatting,
//! lints, builds, module load and unload, "no kernel report") is printed and fails the run
//! when it fails, but is not a test.

use crate::genicam;
use crate::gentl;
use crate::host_tests;
use crate::report::Outcome;
use crate::vm::{self, VmConfig, VmOutcome};
use crate::{cmd, kernel, layers, module, paths, python};
use anyhow::{bail, Context, Result};
use std::process::Command;
use std::time::{Duration, Instant};

/// Guest lines that report harness steps, not tests.
const BOOKKEEPING: &[&str] = &["module-load", "module-unload", "userland-mount"];

/// Results and timings of one `cargo xtask test`.
#[derive(Default)]
pub struct Tally {
    passed: usize,
    failed: Vec<String>,
    /// `(step, tests it ran, time)`, in run order.
    steps: Vec<(String, usize, Duration)>,
    /// `(suite/test, time)` for every guest test.
    tests: Vec<(String, Duration)>,
}

impl Tally {
    /// Counts one test execution.
    pub fn test(&mut self, name: &str, result: Result<()>) {
        match result {
            Ok(()) => {
                println!("ok    {name}");
                self.passed += 1;
            }
            Err(error) => self.fail(name, error),
        }
    }

    /// Counts one passing test execution reported elsewhere (a host test binary's summary).
    pub fn test_passed_quietly(&mut self) {
        self.passed += 1;
    }

    /// A check that is not a test: printed, and a failure when it fails.
    pub fn check(&mut self, name: &str, result: Result<()>) {
        match result {
            Ok(()) => println!("ok    {name} (check)"),
            Err(error) => self.fail(name, error),
        }
    }

    fn fail(&mut self, name: &str, error: anyhow::Error) {
        println!("FAIL  {name}: {error:#}");
        self.failed.push(name.to_string());
    }

    /// Runs `body` as one timed step of the table.
    fn timed<T>(&mut self, step: &str, body: impl FnOnce(&mut Self) -> T) -> T {
        let before = self.passed + self.failed.len();
        let start = Instant::now();
        let value = body(self);
        let tests = self.passed + self.failed.len() - before;
        self.steps.push((step.to_string(), tests, start.elapsed()));
        value
    }

    /// Counts each guest test of a suite; module load/unload and kernel reports only fail.
    fn vm(&mut self, suite: &str, outcome: &VmOutcome) {
        for (test, result, millis) in &outcome.results {
            let name = format!("{suite}/{test}");
            let bookkeeping = BOOKKEEPING.contains(&test.as_str());
            match result {
                Outcome::Pass if bookkeeping => {}
                Outcome::Pass => self.passed += 1,
                Outcome::Fail(_) => self.failed.push(name.clone()),
            }
            if !bookkeeping {
                self.tests.push((name, Duration::from_millis(*millis)));
            }
        }
        let mut problems = Vec::new();
        if let Some(failure) = &outcome.failure {
            problems.push(failure.clone());
        }
        if !outcome.reports.is_empty() {
            problems.push(format!("{} kernel report line(s)", outcome.reports.len()));
        }
        let result = if problems.is_empty() {
            Ok(())
        } else {
            Err(anyhow::anyhow!(
                "{}; serial log kept at {}",
                problems.join("; "),
                outcome.log.display()
            ))
        };
        self.check(
            &format!("{suite}: guest finished, no kernel report, kernel not tainted"),
            result,
        );
    }

    /// Prints the time table and the closing line; exits 1 if anything failed.
    fn finish(self, start: Instant) -> Result<()> {
        println!();
        println!(
            "where the time went ({} s in all):",
            start.elapsed().as_secs()
        );
        println!("  {:<44} {:>5} {:>8}", "step", "tests", "seconds");
        for (step, tests, time) in &self.steps {
            println!("  {step:<44} {tests:>5} {:>8.1}", time.as_secs_f64());
        }
        let mut slowest = self.tests.clone();
        slowest.sort_by_key(|(_, time)| std::cmp::Reverse(*time));
        if !slowest.is_empty() {
            println!("  slowest guest tests:");
            for (name, time) in slowest.iter().take(5) {
                println!("    {name:<42} {:>8.1}", time.as_secs_f64());
            }
        }
        println!();
        for name in &self.failed {
            println!("failed: {name}");
        }
        println!("{} passed, {} failed", self.passed, self.failed.len());
        if !self.failed.is_empty() {
            std::process::exit(1);
        }
        Ok(())
    }
}

fn cargo(env: &paths::Env) -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.current_dir(&env.root);
    command
}

/// A guest test as `fgrab-guest list` describes it (see `tests/guest/src/tests.rs`).
struct GuestTest {
    name: String,
    /// `every-dma-mode`, `once`, a suite name, or `manual`.
    scope: String,
}

/// Asks the guest binary (static, it runs on the host too) which tests exist and where, and
/// adds the Python tests (`tests/python/*.py`, see `python.rs`).
fn guest_tests(env: &paths::Env, artifacts: &vm::Artifacts) -> Result<Vec<GuestTest>> {
    let listing = cmd::output(Command::new(&artifacts.guest).arg("list"))?;
    let mut tests: Vec<GuestTest> = listing
        .lines()
        .map(|line| {
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some(name), Some(scope)) => Ok(GuestTest {
                    name: name.to_string(),
                    scope: scope.to_string(),
                }),
                _ => bail!("unexpected line from `fgrab-guest list`: {line:?}"),
            }
        })
        .collect::<Result<_>>()?;
    tests.extend(
        python::tests(env)?
            .into_iter()
            .map(|(name, scope)| GuestTest { name, scope }),
    );
    Ok(tests)
}

/// One VM suite: a machine configuration and the scopes of the tests it runs.
struct Suite {
    config: VmConfig,
    scopes: &'static [&'static str],
    /// Boots the Debian userland (`python.rs`), prepared only when the suite runs.
    userland: bool,
}

/// MiB of the `vm` suite's virtio disk.
const RECORD_DISK_MIB: u64 = 64;

/// The VM suites. Data-path tests run with direct DMA, behind a virtual Intel IOMMU and with
/// every streaming mapping bounced through swiotlb; control-path tests run once, with direct
/// DMA; removal and fault injection on machines of their own; the Python tests in the Debian
/// userland, with direct DMA.
fn suites() -> Vec<Suite> {
    let mut plain = VmConfig::test("vm");
    // The recording tests write to a virtio disk (`tests/guest/src/record.rs`).
    plain.disk_mib = Some(RECORD_DISK_MIB);
    let mut iommu = VmConfig::test("vm-iommu");
    iommu.iommu = true;
    let mut swiotlb = VmConfig::test("vm-swiotlb");
    swiotlb.swiotlb_force = true;
    // Hot-unplug of card 0, and card 1 going silent at its frame 300, behind the IOMMU.
    let mut removal = VmConfig::test("vm-removal");
    removal.iommu = true;
    removal.card_args = vec![(1, vec!["--fault".into(), "remove@300".into()])];
    // Card 1 misbehaves on purpose (docs/hardware.md, fault injection), behind the IOMMU;
    // card 2 fails two frames of a batched library stream (`fault-batched`).
    let mut faults = VmConfig::test("vm-faults");
    faults.iommu = true;
    faults.cards = 3;
    let fault = |spec: &str| ["--fault".to_string(), spec.to_string()];
    faults.card_args = vec![
        (
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
        ),
        (
            2,
            ["dma-error@50", "desc-reject@90"]
                .into_iter()
                .flat_map(fault)
                .collect(),
        ),
    ];
    // Hostile cards, direct DMA (a late write shows in the buffer): card 0 claims too many
    // bytes for a frame, card 1 has invalid capabilities (refused at probe), card 2 answers
    // a stop with idle while keeping frames, card 3 ignores its first stop; cards 4 and 5
    // are 2 and 3 again; card 6 ignores its interrupt moderation.
    let mut hostile = VmConfig::test("vm-hostile");
    hostile.cards = 7;
    hostile.card_args = vec![
        (
            0,
            [
                &fault("hostile-bytes@100")[..],
                &fault("hostile-camera@0")[..],
            ]
            .concat(),
        ),
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
        (3, fault("deaf-stop@0").into()),
        // The same two, for a region detached while others stream (`hostile-regions-*`),
        // both slow, so that the detached region's frames wait on the card.
        (
            4,
            [
                &fault("lying-stop@50")[..],
                &["--period-us".into(), "20000".into()],
            ]
            .concat(),
        ),
        (
            5,
            [
                &fault("deaf-stop@0")[..],
                &["--period-us".into(), "20000".into()],
            ]
            .concat(),
        ),
        (6, fault("hostile-moderation@0").into()),
    ];
    vec![
        Suite {
            config: plain,
            userland: false,
            scopes: &["every-dma-mode", "once"],
        },
        Suite {
            config: iommu,
            userland: false,
            scopes: &["every-dma-mode"],
        },
        Suite {
            config: swiotlb,
            userland: false,
            scopes: &["every-dma-mode"],
        },
        Suite {
            config: removal,
            userland: false,
            scopes: &["vm-removal"],
        },
        Suite {
            config: faults,
            userland: false,
            scopes: &["vm-faults"],
        },
        Suite {
            config: hostile,
            userland: false,
            scopes: &["vm-hostile"],
        },
        Suite {
            config: VmConfig::test(python::SUITE),
            userland: true,
            scopes: &[python::SUITE],
        },
    ]
}

/// Whether filter word `word` selects `test`: its exact name, or part of the name of a test
/// that runs without being named.
fn selects(word: &str, test: &GuestTest) -> bool {
    test.name == word || (test.scope != "manual" && test.name.contains(word))
}

/// Edit distance, for suggesting test names to a filter that matched nothing.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

/// Fails for a filter word that selects no test, naming the closest test names.
fn check_filter(filter: &[String], tests: &[GuestTest]) -> Result<()> {
    for word in filter {
        if tests.iter().any(|test| selects(word, test)) {
            continue;
        }
        let mut close: Vec<(usize, &str)> = tests
            .iter()
            .filter(|test| test.scope != "manual")
            .map(|test| {
                // Compare with the name and with each run of its words as long as the filter.
                let parts: Vec<&str> = test.name.split('-').collect();
                let best = (0..parts.len())
                    .flat_map(|i| (i + 1..=parts.len()).map(move |j| (i, j)))
                    .map(|(i, j)| distance(word, &parts[i..j].join("-")))
                    .min()
                    .unwrap_or(usize::MAX);
                (best, test.name.as_str())
            })
            .collect();
        close.sort();
        let names: Vec<&str> = close
            .iter()
            .take_while(|(score, _)| *score <= close[0].0.max(2))
            .take(5)
            .map(|(_, name)| *name)
            .collect();
        bail!(
            "no guest test matches `{word}`; closest: {} (`fgrab-guest list` in the guest, or \
             tests/guest/src/tests.rs, lists them all)",
            names.join(", ")
        );
    }
    Ok(())
}

/// The Python suite's userland, built on first use and kept for the rest of the run.
#[derive(Default)]
struct LazyUserland(Option<vm::Userland>);

impl LazyUserland {
    /// The userland, built now (timed) if this is the first use; `None` (recorded) if that
    /// failed.
    fn get(
        &mut self,
        env: &paths::Env,
        artifacts: &vm::Artifacts,
        tally: &mut Tally,
    ) -> Option<vm::Userland> {
        if self.0.is_none() {
            let name = "Python wheel, guest root and initramfs";
            self.0 = tally.timed(name, |tally| match python::prepare(env, artifacts) {
                Ok(userland) => {
                    tally.check(name, Ok(()));
                    Some(userland)
                }
                Err(error) => {
                    tally.check(name, Err(error));
                    None
                }
            });
        }
        self.0.clone()
    }
}

/// Runs each suite on the tests it should run (those `filter` selects, if given).
fn run_suites(
    env: &paths::Env,
    artifacts: &vm::Artifacts,
    tally: &mut Tally,
    filter: Option<&[String]>,
    only: Option<&[String]>,
    userland: &mut LazyUserland,
) -> Result<()> {
    let tests = guest_tests(env, artifacts)?;
    if let Some(filter) = filter {
        check_filter(filter, &tests)?;
    }
    let mut ran = 0;
    for Suite {
        mut config,
        scopes,
        userland: wants_userland,
    } in suites()
    {
        if only.is_some_and(|only| !only.contains(&config.name)) {
            continue;
        }
        config.tests = tests
            .iter()
            .filter(|test| scopes.contains(&test.scope.as_str()))
            .filter(|test| filter.is_none_or(|filter| filter.iter().any(|w| selects(w, test))))
            .map(|test| test.name.clone())
            .collect();
        if config.tests.is_empty() {
            continue;
        }
        ran += 1;
        if wants_userland {
            match userland.get(env, artifacts, tally) {
                Some(userland) => config.userland = Some(userland),
                None => continue,
            }
        }
        let name = config.name.clone();
        let count = config.tests.len();
        tally.timed(&format!("VM suite {name} ({count} tests)"), |tally| {
            cmd::step(&format!("VM suite `{name}`: {count} tests"));
            match vm::run(env, artifacts, &config) {
                Ok(outcome) => tally.vm(&name, &outcome),
                Err(error) => tally.fail(&format!("{name}: VM run"), error),
            }
        });
    }
    if ran == 0 {
        // Only a manual test was named, or FGRAB_SUITES excluded every suite that runs it.
        bail!("no VM suite runs the selected tests (manual tests have commands of their own: soak, bench)");
    }
    Ok(())
}

/// Proves the harness can fail: a deliberately failing guest test, a failing Python test
/// (`tests/python/selftest_fail.py`, whose assertion must be the reason), a real kernel WARN
/// (provoked through lkdtm) and the taint it leaves must all be detected.
fn harness_self_test(
    env: &paths::Env,
    artifacts: &vm::Artifacts,
    tally: &mut Tally,
    userland: &mut LazyUserland,
) {
    let Some(userland) = userland.get(env, artifacts, tally) else {
        tally.fail(
            "harness self-test",
            anyhow::anyhow!("no userland for its Python part"),
        );
        return;
    };
    cmd::step(
        "harness self-test: the FAIL and KERNEL REPORT lines below are provoked on purpose \
         and must be caught",
    );
    let mut config = VmConfig::test("selftest");
    config.cards = 0;
    config.tests = vec![
        "selftest-fail".into(),
        "python-selftest-fail".into(),
        "selftest-warn".into(),
    ];
    config.userland = Some(userland);
    let result = vm::run(env, artifacts, &config).and_then(|outcome| {
        let failing_caught = outcome
            .results
            .iter()
            .any(|(name, result, _)| name == "selftest-fail" && *result != Outcome::Pass);
        // Failed for the script's own reason: Python ran it and the harness read its error.
        let python_caught = outcome.results.iter().any(|(name, result, _)| {
            name == "python-selftest-fail"
                && matches!(result, Outcome::Fail(why) if why.contains("AssertionError"))
        });
        let warn_caught = outcome.reports.iter().any(|line| line.contains("WARNING:"));
        let taint_caught = outcome
            .reports
            .iter()
            .any(|line| line.contains("unexpected flags W"));
        if failing_caught && python_caught && warn_caught && taint_caught && !outcome.clean() {
            Ok(())
        } else {
            Err(anyhow::anyhow!(
                "failing test caught: {failing_caught}, failing Python test caught: \
                 {python_caught}, WARN caught: {warn_caught}, taint caught: {taint_caught}; \
                 log {}",
                outcome.log.display()
            ))
        }
    });
    tally.test(
        "harness self-test (failing test, failing Python test, kernel WARN and taint detected)",
        result,
    );
}

/// Builds the debug kernel, module and guest, timed; `None` (recorded) if that failed.
fn prepare(env: &paths::Env, tally: &mut Tally) -> Option<vm::Artifacts> {
    let name = "debug kernel, module (CLIPPY=1) and guest build";
    tally.timed(name, |tally| {
        match vm::prepare(env, kernel::Profile::Debug) {
            Ok(artifacts) => {
                tally.check(name, Ok(()));
                Some(artifacts)
            }
            Err(error) => {
                tally.check(name, Err(error));
                None
            }
        }
    })
}

/// `cargo xtask test FILTER...`: only the guest tests whose names contain a word, in every
/// suite that runs them (`FGRAB_SUITES=a,b` narrows the suites), skipping host checks.
pub fn run_filtered(filter: &[String]) -> Result<()> {
    let env = paths::Env::new()?;
    let start = Instant::now();
    let mut tally = Tally::default();
    let only: Option<Vec<String>> = std::env::var("FGRAB_SUITES")
        .ok()
        .map(|list| list.split(',').map(str::to_owned).collect());
    if let Some(artifacts) = prepare(&env, &mut tally) {
        let mut userland = LazyUserland::default();
        run_suites(
            &env,
            &artifacts,
            &mut tally,
            Some(filter),
            only.as_deref(),
            &mut userland,
        )?;
    }
    tally.finish(start)
}

/// What `cargo xtask test` runs.
#[derive(PartialEq, Eq)]
pub enum Part {
    /// Everything.
    All,
    /// Host checks only (`--host`).
    Host,
}

/// `cargo xtask test [--host]`.
pub fn run_all(part: Part) -> Result<()> {
    let env = paths::Env::new()?;
    let start = Instant::now();
    let mut tally = Tally::default();

    // The debug kernel's inputs are known now: a fresh machine builds it (and the sysroot)
    // while the host checks run, instead of after them. A cached build returns at once.
    let kernel = (part == Part::All).then(|| {
        std::thread::spawn(|| -> Result<()> {
            kernel::build(&paths::Env::new()?, kernel::Profile::Debug).map(drop)
        })
    });
    cmd::step("host checks");
    tally.timed("cargo fmt --check", |tally| {
        tally.check(
            "cargo fmt --check",
            cmd::run(cargo(&env).args(["fmt", "--all", "--", "--check"])),
        )
    });
    tally.timed("cargo clippy -D warnings", |tally| {
        tally.check(
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
        )
    });
    tally.timed("driver layers", |tally| {
        tally.check("driver layers", layers::check(&env.root))
    });
    let binaries = tally.timed("host test binaries (build)", |tally| {
        host_tests::build(&env)
            .inspect_err(|error| tally.fail("host test build", anyhow::anyhow!("{error:#}")))
            .unwrap_or_default()
    });
    // Host tests include timing-sensitive device-model tests: they run once the kernel build
    // no longer competes for the cores.
    let kernel = kernel.map(|kernel| {
        tally.timed("debug kernel (waiting for the early build)", |_| {
            kernel
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("the kernel build thread panicked")))
        })
    });
    tally.timed("host tests (each test binary and doctests)", |tally| {
        if let Err(error) = host_tests::run(&env, tally, &binaries) {
            tally.fail("host tests", error);
        }
    });
    tally.timed("GenICam XML in genicam's node map", |tally| {
        tally.test(
            "host genicam: the card's XML loads in the GenApi node map",
            genicam::check(&env),
        )
    });
    tally.timed("fgrab.cti in Harvesters", |tally| {
        tally.test(
            "host gentl: fgrab.cti loads in Harvesters (no device; System and Interface node maps)",
            gentl::harvesters_check(&env),
        )
    });
    let Some(kernel) = kernel else {
        return tally.finish(start);
    };
    if let Err(error) = kernel {
        tally.check("debug kernel build", Err(error));
        return tally.finish(start);
    }
    if let Some(artifacts) = prepare(&env, &mut tally) {
        tally.check(
            "driver rustfmt (kernel .rustfmt.toml)",
            module::rustfmt(&env, &artifacts.built, true),
        );
        let mut userland = LazyUserland::default();
        if let Err(error) = run_suites(&env, &artifacts, &mut tally, None, None, &mut userland) {
            tally.fail("VM suites", error);
        }
        tally.timed("harness self-test", |tally| {
            harness_self_test(&env, &artifacts, tally, &mut userland)
        });
    }
    tally.finish(start)
}

/// A long run of one manual guest test on the debug kernel (`soak`, `fuzz`): one VM, with
/// the IOMMU on `--iommu`, given `seconds` (plus margins for boot and teardown).
fn long_run(
    flags: &[String],
    name: &str,
    test: &str,
    guest_args: Vec<String>,
    seconds: u64,
) -> Result<()> {
    let env = paths::Env::new()?;
    let start = Instant::now();
    let artifacts = vm::prepare(&env, kernel::Profile::Debug)?;
    let iommu = flags.iter().any(|flag| flag == "--iommu");
    let mut config = VmConfig::test(&if iommu {
        format!("{name}-iommu")
    } else {
        name.to_string()
    });
    config.iommu = iommu;
    config.tests = vec![test.into()];
    config.guest_args = guest_args;
    config.timeout = Duration::from_secs(seconds + 600);
    config
        .guest_args
        .push(format!("fgrab_test_timeout={}", seconds + 300));
    let mut tally = Tally::default();
    run_one(&env, &artifacts, &mut tally, config);
    tally.finish(start)
}

/// `cargo xtask soak [--seconds=S | --frames=N] [--iommu]`: the long soak.
pub fn soak(flags: &[String]) -> Result<()> {
    let mut guest_args = Vec::new();
    let mut seconds = 600u64;
    for flag in flags {
        if let Some(value) = flag.strip_prefix("--seconds=") {
            seconds = value.parse()?;
            guest_args.push(format!("fgrab_soak_seconds={value}"));
        }
        if let Some(value) = flag.strip_prefix("--frames=") {
            guest_args.push(format!("fgrab_soak_frames={value}"));
            // The debug kernel under pressure verifies 150-350 frames per second here, slower
            // as the run goes on: allow 100.
            seconds = seconds.max(value.parse::<u64>()? / 100);
        }
    }
    long_run(flags, "soak", "soak", guest_args, seconds)
}

/// `cargo xtask fuzz [--commands=N] [--iommu]`: the command fuzzer with a larger budget than
/// the test run gives it (20,000 commands there).
pub fn fuzz(flags: &[String]) -> Result<()> {
    let commands: u64 = match flags
        .iter()
        .find_map(|flag| flag.strip_prefix("--commands="))
    {
        Some(value) => value
            .parse()
            .with_context(|| format!("--commands expects a number, got `{value}`"))?,
        None => 1_000_000,
    };
    // Behind the IOMMU 100,000 commands took up to 490 s on a slow machine: allow 200 a second.
    let seconds = 300 + commands / 200;
    let guest_args = vec![format!("fgrab_fuzz_commands={commands}")];
    long_run(flags, "fuzz", "fuzz-commands", guest_args, seconds)
}

/// Runs one VM configuration as it is (its tests named), timed.
fn run_one(env: &paths::Env, artifacts: &vm::Artifacts, tally: &mut Tally, config: VmConfig) {
    let name = config.name.clone();
    tally.timed(&format!("VM run {name}"), |tally| {
        cmd::step(&format!("VM run `{name}`"));
        match vm::run(env, artifacts, &config) {
            Ok(outcome) => tally.vm(&name, &outcome),
            Err(error) => tally.fail(&format!("{name}: VM run"), error),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalogue() -> Vec<GuestTest> {
        [
            ("stream-verify", "every-dma-mode"),
            ("stream-underrun", "every-dma-mode"),
            ("fuzz-commands", "once"),
            ("soak", "manual"),
        ]
        .into_iter()
        .map(|(name, scope)| GuestTest {
            name: name.into(),
            scope: scope.into(),
        })
        .collect()
    }

    #[test]
    fn filter_words() {
        let tests = catalogue();
        assert!(check_filter(&["stream".into()], &tests).is_ok());
        assert!(check_filter(&["soak".into()], &tests).is_ok());
        // A part of a manual test's name selects nothing.
        assert!(check_filter(&["soa".into()], &tests).is_err());
        let error = check_filter(&["strem-verify".into()], &tests)
            .unwrap_err()
            .to_string();
        assert!(error.contains("`strem-verify`"), "{error}");
        assert!(error.contains("stream-verify"), "{error}");
        let error = check_filter(&["fuz".into()], &tests);
        assert!(error.is_ok());
        let error = check_filter(&["typo".into()], &tests)
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("no guest test matches `typo`"), "{error}");
    }

    #[test]
    fn edit_distance() {
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("same", "same"), 0);
    }
}
