//! The guest half of the harness protocol, read by `xtask/src/report.rs`.
//!
//! Lines starting with `@@fgrab ` carry results: `start NAME`, `pass NAME 12ms`,
//! `fail NAME 12ms REASON`, `info TEXT`, `kmemleak clean|VERDICT`, `done`.

use crate::{tests, userland};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A guest test's verdict: `Err` carries the reason.
pub type TestResult = Result<(), String>;

/// Limit for test `name`; a test that needs longer is broken or hung. 300 s unless the test
/// declares more; a long run (the soak) raises it with `fgrab_test_timeout=SECONDS` on the
/// kernel command line.
fn test_timeout(name: &str) -> Duration {
    let declared = tests::ALL
        .iter()
        .find(|test| test.name == name)
        .map_or(0, |test| test.timeout_seconds);
    let seconds = std::env::var("fgrab_test_timeout")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(300u64)
        .max(declared);
    Duration::from_secs(seconds)
}

/// Returns `Err(message)` from the enclosing test unless `condition` holds.
#[macro_export]
macro_rules! ensure {
    ($condition:expr, $($message:tt)+) => {
        if !$condition {
            return Err(format!($($message)+));
        }
    };
}

/// Prints a figure or note that the host shows and keeps.
pub fn info(text: &str) {
    println!("@@fgrab info {text}");
}

/// Runs the named test in this process: 0 on success, 1 on failure (reason printed).
pub fn run_in_process(name: &str) -> i32 {
    let Some(test) = tests::ALL.iter().find(|test| test.name == name) else {
        println!("error: no test named `{name}`");
        return 1;
    };
    match (test.run)() {
        Ok(()) => 0,
        Err(reason) => {
            println!("error: {reason}");
            1
        }
    }
}

/// Runs tests one process each and prints their results; returns how many failed.
pub fn run_tests(names: &[String]) -> usize {
    let mut failed = 0;
    for name in names {
        println!("@@fgrab start {name}");
        let started = Instant::now();
        let outcome = run_child(name);
        let millis = started.elapsed().as_millis();
        match outcome {
            Ok(()) => println!("@@fgrab pass {name} {millis}ms"),
            Err(reason) => {
                failed += 1;
                println!("@@fgrab fail {name} {millis}ms {reason}");
            }
        }
    }
    failed
}

fn run_child(name: &str) -> TestResult {
    if name.starts_with(userland::PREFIX) {
        return userland::run(name, test_timeout(name));
    }
    let mut child = Command::new("/bin/fgrab-guest")
        .args(["run-test", name])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|error| format!("cannot start test process: {error}"))?;
    let stdout = child.stdout.take().ok_or("no stdout pipe")?;
    let reader = std::thread::spawn(move || {
        let mut reason = None;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("{line}");
            if let Some(text) = line.strip_prefix("error: ") {
                reason = Some(text.to_string());
            }
        }
        reason
    });
    let timeout = test_timeout(name);
    let status = wait_or_kill(&mut child, timeout, "the test process")?;
    let reason = reader.join().unwrap_or(None);
    if status.success() {
        Ok(())
    } else {
        Err(reason.unwrap_or_else(|| format!("test process ended with {status}")))
    }
}

/// Waits up to `timeout` for `child` (`what` names it in errors); kills and reaps it then.
pub fn wait_or_kill(
    child: &mut std::process::Child,
    timeout: Duration,
    what: &str,
) -> Result<std::process::ExitStatus, String> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("timed out after {}s", timeout.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(error) => return Err(format!("waiting for {what}: {error}")),
        }
    }
}
