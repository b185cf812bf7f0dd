//! Running child processes: plain, captured, or logged with a progress line for long steps.

use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
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

/// Streams a spawned child's stdout and stderr (piped) as lines, merged, lossily decoded.
/// The receiver disconnects once both streams are closed.
pub fn output_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    let streams = [
        child
            .stdout
            .take()
            .map(|out| Box::new(out) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|err| Box::new(err) as Box<dyn Read + Send>),
    ];
    for stream in streams.into_iter().flatten() {
        let sender = sender.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut line = Vec::new();
            while reader.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
                let text = String::from_utf8_lossy(&line).trim_end().to_string();
                if sender.send(text).is_err() {
                    break;
                }
                line.clear();
            }
        });
    }
    receiver
}

/// Runs `command` with its output (stdout and stderr) going to `log`.
///
/// Long steps (kernel build, sysroot installation) would otherwise look hung: every
/// [`PROGRESS_INTERVAL`] a line shows the elapsed time and the child's latest output line.
/// With `verbose`, every line is echoed as well. On failure the log's tail is printed.
pub fn run_logged(command: &mut Command, label: &str, log: &Path, verbose: bool) -> Result<()> {
    let mut file = File::create(log).with_context(|| format!("creating log {}", log.display()))?;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {label}: {command:?}"))?;
    let lines = output_lines(&mut child);
    let start = Instant::now();
    let mut next_report = start + PROGRESS_INTERVAL;
    let mut last = String::new();
    loop {
        match lines.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                if verbose {
                    println!("    {line}");
                }
                writeln!(file, "{line}")?;
                last = line;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if !verbose && Instant::now() >= next_report {
            let shown: String = last.trim().chars().take(90).collect();
            println!("    [{label} {}s] {shown}", start.elapsed().as_secs());
            next_report += PROGRESS_INTERVAL;
        }
    }
    let status = child.wait()?;
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
