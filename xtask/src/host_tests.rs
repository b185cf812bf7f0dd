//! The host crates' tests, one test binary at a time.
//!
//! `cargo test` stops at the first failing binary, and its summary lines cannot tell a
//! binary that printed `test result: ok` and then crashed from one that passed. So the
//! binaries are built once (`--no-run`), each is run on its own with its exit status
//! counted, and the doctests run as one more step.

use crate::test::Tally;
use crate::{cmd, paths};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A test binary cargo built.
pub struct TestBinary {
    /// `package (kind name)`, for reports.
    label: String,
    executable: PathBuf,
    /// The package directory: cargo runs tests there.
    package_dir: PathBuf,
}

fn cargo(env: &paths::Env) -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command
        .current_dir(&env.root)
        .args(["test", "--workspace", "--exclude", "fgrab-guest"]);
    command
}

/// Builds the host test binaries and lists them.
pub fn build(env: &paths::Env) -> Result<Vec<TestBinary>> {
    let output = cmd::output(cargo(env).args([
        "--no-run",
        "--quiet",
        "--message-format=json-render-diagnostics",
    ]))?;
    let mut binaries = Vec::new();
    for line in output.lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact" || message["profile"]["test"] != true {
            continue;
        }
        let Some(executable) = message["executable"].as_str() else {
            continue;
        };
        let manifest = message["manifest_path"]
            .as_str()
            .context("compiler-artifact without manifest_path")?;
        let package_dir = Path::new(manifest)
            .parent()
            .context("manifest_path has no directory")?
            .to_path_buf();
        let package = package_dir
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let kind = message["target"]["kind"][0].as_str().unwrap_or("?");
        let name = message["target"]["name"].as_str().unwrap_or("?");
        binaries.push(TestBinary {
            label: format!("{package} ({kind} {name})"),
            executable: PathBuf::from(executable),
            package_dir,
        });
    }
    binaries.sort_by(|a, b| a.label.cmp(&b.label));
    Ok(binaries)
}

/// Sums the `test result:` lines of a libtest output: `(passed, failed)`.
fn counts(text: &str) -> (usize, usize) {
    let mut passed = 0;
    let mut failed = 0;
    for line in text.lines().filter(|line| line.starts_with("test result:")) {
        let number = |word: &str| {
            line.split(';')
                .find(|part| part.trim_end().ends_with(word))
                .and_then(|part| part.split_whitespace().rev().nth(1)?.parse::<usize>().ok())
                .unwrap_or(0)
        };
        passed += number("passed");
        failed += number("failed");
    }
    (passed, failed)
}

/// Records one binary's (or the doctests') run: its passed tests, each failed test by
/// name, and a failure of its own when it exited non-zero without a failed test to show
/// for it (a crash, an abort, an exit after the summary).
fn record(tally: &mut Tally, label: &str, text: &str, status: std::process::ExitStatus) {
    let (passed, failed) = counts(text);
    for _ in 0..passed {
        tally.test_passed_quietly();
    }
    let failed_names: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("test ")?.strip_suffix(" ... FAILED"))
        .collect();
    for name in &failed_names {
        tally.test(
            &format!("host {label}: {name}"),
            Err(anyhow::anyhow!("failed")),
        );
    }
    // A count of failures without names (a panic while listing, say) still counts.
    for index in failed_names.len()..failed {
        tally.test(
            &format!("host {label}: unnamed failure #{index}"),
            Err(anyhow::anyhow!("failed")),
        );
    }
    if !status.success() && failed == 0 && failed_names.is_empty() {
        tally.test(
            &format!("host {label}: test binary"),
            Err(anyhow::anyhow!(
                "exited with {status} after {passed} passing test(s)"
            )),
        );
    }
    if (status.success() && passed > 0) || failed > 0 || !failed_names.is_empty() {
        println!("      host {label}: {passed} passed, {failed} failed");
    }
}

/// Runs every host test binary of [`build`] and the doctests; their tests go into the tally.
pub fn run(env: &paths::Env, tally: &mut Tally, binaries: &[TestBinary]) -> Result<()> {
    let logs = env.target().join("host-tests");
    std::fs::create_dir_all(&logs)?;
    for binary in binaries {
        let output = Command::new(&binary.executable)
            .current_dir(&binary.package_dir)
            .env("CARGO_MANIFEST_DIR", &binary.package_dir)
            .output()
            .with_context(|| format!("running {}", binary.executable.display()))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let log = logs.join(format!(
            "{}.log",
            binary.label.replace([' ', '(', ')'], "_")
        ));
        std::fs::write(&log, &text)?;
        record(tally, &binary.label, &text, output.status);
    }
    let output = cargo(env)
        .args(["--doc", "--quiet"])
        .output()
        .context("running cargo test --doc")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::write(logs.join("doctests.log"), &text)?;
    record(tally, "doctests", &text, output.status);
    println!(
        "      {} host test binaries and the doctests; logs in {}",
        binaries.len(),
        logs.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_lines() {
        let text = "running 3 tests\ntest a ... ok\ntest b ... FAILED\n\
                    test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out\n\
                    test result: ok. 4 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out";
        assert_eq!(counts(text), (6, 1));
    }
}
