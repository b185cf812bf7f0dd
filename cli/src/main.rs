//! `fgrab`: look at a frame grabber and capture frames.
//!
//! ```text
//! fgrab list    [--json]
//! fgrab info    [--card N|PATH] [--json]
//! fgrab stats   [--card N|PATH] [--json]
//! fgrab capture [--card N|PATH] [--frames N] [--seconds S] [--output FILE]
//!               [--frame-bytes BYTES] [--queue-depth Q] [--offset BYTES] [--sqpoll]
//! ```
//!
//! `capture` streams into a buffer it allocates (huge pages when available), writes every
//! frame to `--output` (default `/dev/null`), and prints a progress line every second:
//! frames, GB/s, drops. `fgrab help COMMAND` describes every option.
//!
//! Exit status: 0 on success, 1 when the card or the system refuses (the message names the
//! node and the reason), 2 for a usage error (clap's message names the option and value).

mod args;
mod capture;
mod list;
mod report;

use args::{Cli, Command};
use clap::Parser;
use fgrab::Card;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Usage errors exit here with status 2, `--help` and `--version` with 0.
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("fgrab: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<(), String> {
    match command {
        Command::List { json } => {
            let cards = list::cards(&list::Roots::default(), true);
            print(&if json {
                list::json(&cards)
            } else {
                list::text(&cards)
            })
        }
        Command::Info { card, json } => {
            let path = card.card.path();
            let info = open(&path)?
                .info()
                .map_err(|error| format!("{}: {error}", path.display()))?;
            print(&if json {
                report::json(&report::InfoJson::new(&path, &info))
            } else {
                report::info_text(&path, &info)
            })
        }
        Command::Stats { card, json } => {
            let path = card.card.path();
            let stats = open(&path)?
                .stats()
                .map_err(|error| format!("{}: {error}", path.display()))?;
            print(&if json {
                report::json(&report::StatsJson::new(&path, &stats))
            } else {
                report::stats_text(&path, &stats)
            })
        }
        Command::Capture(args) => capture::run(&args),
    }
}

/// Opens the card at `path`.
fn open(path: &Path) -> Result<Card, String> {
    Card::open(path).map_err(|error| error.to_string())
}

/// Writes `text` to standard output. A reader that went away (`fgrab list | head -1`) is
/// not an error.
fn print(text: &str) -> Result<(), String> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(format!("standard output: {error}"))
        }
        _ => Ok(()),
    }
}
