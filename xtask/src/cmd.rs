//! Running child processes: plain, captured, or logged with a progress line for long steps.

use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often a long step reports that it is still alive.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(15);

/// Prints a step heading so the user sees what is happening and in which order.
pub fn step(message: &str) {
    println!("==> {message}");
}

/// Runs `command` with inherited stdio and fails unless it exits 0.
pub fn run(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("starting {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed: {status}");
    }
    Ok(())
}

/// Runs `command` and returns its standard output; fails unless it exits 0.
pub fn output(command: &mut Command) -> Result<String> {
    let out = command
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("starting {command:?}"))?;
    if !out.status.success() {
        bail!("{command:?} failed: {}", out.status);
    }
    String::from_utf8(out.stdout).with_context(|| format!("{command:?} printed non-UTF-8"))
}

/// Runs `command` with its output (stdout and stderr) going to `log`.
///
/// Long steps (kernel build, sysroot installation) would otherwise look hung: every
/// [`PROGRESS_INTERVAL`] a line shows the elapsed time and the child's latest output line.
/// With `verbose`, every line is echoed as well. On failure the log's tail is printed.
pub fn run_logged(command: &mut Command, label: &str, log: &Path, verbose: bool) -> Result<()> {
    let file = File::create(log).with_context(|| format!("creating log {}", log.display()))?;
    let file = Arc::new(Mutex::new(file));
    let last = Arc::new(Mutex::new(String::new()));
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {label}: {command:?}"))?;
    let readers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|out| Box::new(out) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|err| Box::new(err) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|stream| {
        let file = Arc::clone(&file);
        let last = Arc::clone(&last);
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if verbose {
                    println!("    {line}");
                }
                if let Ok(mut file) = file.lock() {
                    let _ = writeln!(file, "{line}");
                }
                if let Ok(mut last) = last.lock() {
                    *last = line;
                }
            }
        })
    })
    .collect();

    let start = Instant::now();
    let mut next_report = start + PROGRESS_INTERVAL;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if !verbose && Instant::now() >= next_report {
            let line = last.lock().map(|line| line.clone()).unwrap_or_default();
            let line: String = line.trim().chars().take(90).collect();
            println!("    [{label} {}s] {line}", start.elapsed().as_secs());
            next_report += PROGRESS_INTERVAL;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    for reader in readers {
        let _ = reader.join();
    }
    if !status.success() {
        print_tail(log, 40);
        bail!("{label} failed ({status}); full log: {}", log.display());
    }
    println!("    {label}: done in {}s", start.elapsed().as_secs());
    Ok(())
}

/// Prints the last `lines` lines of a log file.
pub fn print_tail(log: &Path, lines: usize) {
    if let Ok(text) = std::fs::read_to_string(log) {
        let all: Vec<&str> = text.lines().collect();
        for line in &all[all.len().saturating_sub(lines)..] {
            eprintln!("    | {line}");
        }
    }
}
