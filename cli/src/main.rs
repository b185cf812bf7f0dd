//! `fgrab`: look at a frame grabber and capture frames.
//!
//! ```text
//! fgrab info  [--card N]
//! fgrab stats [--card N]
//! fgrab capture [--card N] [--frames N | --seconds S] [--output FILE] [--frame-bytes B]
//!               [--queue-depth Q] [--offset O] [--sqpoll]
//! ```
//!
//! `capture` streams into a buffer it allocates (huge pages when available), writes every
//! frame to `--output` (default `/dev/null`), and prints a progress line every second:
//! frames, GB/s, drops.

use fgrab::{Buffer, Card, Geometry, Options};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

const USAGE: &str = "usage: fgrab info|stats [--card N]\n       \
    fgrab capture [--card N] [--frames N | --seconds S] [--output FILE] [--frame-bytes B] \
    [--queue-depth Q] [--offset O] [--sqpoll]";

/// Parsed options.
struct Args {
    command: String,
    card: u32,
    frames: Option<u64>,
    seconds: Option<f64>,
    output: String,
    frame_bytes: Option<u32>,
    queue_depth: u32,
    offset: usize,
    sqpoll: bool,
}

impl Args {
    /// The card's device node.
    fn card_path(&self) -> String {
        format!("/dev/fgrab{}", self.card)
    }
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut parsed = Args {
        command: args.first().cloned().ok_or(USAGE)?,
        card: 0,
        frames: None,
        seconds: None,
        output: "/dev/null".into(),
        frame_bytes: None,
        queue_depth: 8,
        offset: 0,
        sqpoll: false,
    };
    let mut iter = args.iter().skip(1);
    while let Some(flag) = iter.next() {
        if flag == "--sqpoll" {
            parsed.sqpoll = true;
            continue;
        }
        let value = iter
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let bad = |_| format!("bad value `{value}` for {flag}");
        match flag.as_str() {
            "--card" => parsed.card = value.parse().map_err(bad)?,
            "--frames" => parsed.frames = Some(value.parse().map_err(bad)?),
            "--seconds" => {
                parsed.seconds = Some(
                    value
                        .parse()
                        .map_err(|_| format!("bad value `{value}` for {flag}"))?,
                )
            }
            "--output" => parsed.output = value.clone(),
            "--frame-bytes" => parsed.frame_bytes = Some(value.parse().map_err(bad)?),
            "--queue-depth" => parsed.queue_depth = value.parse().map_err(bad)?,
            "--offset" => parsed.offset = value.parse().map_err(bad)?,
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        }
    }
    Ok(parsed)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(error) = parse(&args).and_then(|args| run(&args)) {
        eprintln!("fgrab: {error}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), String> {
    let path = args.card_path();
    let mut card = Card::open(&path).map_err(|error| error.to_string())?;
    match args.command.as_str() {
        "info" => {
            let info = card.info().map_err(|error| error.to_string())?;
            println!("{path}:");
            println!(
                "  PCI            {:04x}:{:04x} rev {} at {:04x}:{:02x}:{:02x}.{}",
                info.vendor_id,
                info.device_id,
                info.revision,
                info.pci_location >> 16,
                (info.pci_location >> 8) & 0xff,
                (info.pci_location >> 3) & 0x1f,
                info.pci_location & 7
            );
            println!(
                "  hardware       v{}.{}, driver ABI {}",
                info.hw_version >> 16,
                info.hw_version & 0xffff,
                info.abi_version
            );
            println!(
                "  sensor         {} bytes per frame every {} us",
                info.frame_bytes,
                info.frame_period_ns / 1000
            );
            println!(
                "  limits         frames up to {} bytes, {} frames per buffer",
                info.max_frame_bytes, info.max_frames
            );
            println!(
                "  DMA            {}-bit, segments up to {} bytes, {} descriptors per frame",
                info.dma_address_bits, info.max_segment_bytes, info.max_descriptors_per_frame
            );
            Ok(())
        }
        "stats" => {
            let stats = card.stats().map_err(|error| error.to_string())?;
            let state = match stats.state {
                fgrab_uapi::STATE_IDLE => "idle",
                fgrab_uapi::STATE_ATTACHED => "attached",
                _ => "streaming",
            };
            println!("{path}: {state}");
            if stats.state != fgrab_uapi::STATE_IDLE {
                println!(
                    "  buffer         {} frames of {} bytes, {} descriptors (at most {} per frame)",
                    stats.frame_count,
                    stats.frame_bytes,
                    stats.descriptors_total,
                    stats.descriptors_max_per_frame
                );
                println!("  since start    {} frames delivered, {} dropped (underrun), {} dropped (other), {} failed",
                    stats.frames_delivered, stats.frames_dropped_underrun, stats.frames_dropped_other, stats.frames_failed);
            }
            Ok(())
        }
        "capture" => capture(card, args),
        other => Err(format!("unknown command `{other}`\n{USAGE}")),
    }
}

fn capture(mut card: Card, args: &Args) -> Result<(), String> {
    let info = card.info().map_err(|error| error.to_string())?;
    let frame_bytes = args.frame_bytes.unwrap_or(info.frame_bytes);
    let geometry = Geometry::new(frame_bytes, args.queue_depth).offset(args.offset);
    let buffer = Buffer::allocate(args.offset + frame_bytes as usize * args.queue_depth as usize)
        .map_err(|error| error.to_string())?;
    let huge = buffer.is_huge();
    let options = Options {
        sqpoll: args.sqpoll,
    };
    let mut stream = card
        .attach_with(buffer, geometry, options)
        .map_err(|error| match error.errno() {
            Some(libc::EBUSY) => format!(
                "{}: the card is busy: another program is streaming from it ({error})",
                args.card_path()
            ),
            _ => error.to_string(),
        })?;
    let mut output =
        std::fs::File::create(&args.output).map_err(|error| format!("{}: {error}", args.output))?;
    eprintln!(
        "capturing {} frames of {frame_bytes} bytes ({} queued, {} memory) to {}",
        args.frames
            .map_or("unlimited".to_string(), |n| n.to_string()),
        args.queue_depth,
        if huge { "huge page" } else { "regular" },
        args.output
    );
    stream.start().map_err(|error| error.to_string())?;
    let terminal = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut next = started + Duration::from_secs(1);
    let limit = args.seconds.map(Duration::from_secs_f64);
    let (mut frames, mut bytes) = (0u64, 0u64);
    loop {
        if args.frames.is_some_and(|n| frames >= n) || limit.is_some_and(|l| started.elapsed() >= l)
        {
            break;
        }
        if args.frames.is_none() && limit.is_none() && frames >= 100 {
            break;
        }
        if let Some(frame) = stream
            .next_frame(Some(Duration::from_secs(2)))
            .map_err(|error| error.to_string())?
        {
            output
                .write_all(&frame)
                .map_err(|error| format!("{}: {error}", args.output))?;
            frames += 1;
            bytes += frame.len() as u64;
        } else {
            return Err("no frame for 2 s".into());
        }
        if Instant::now() >= next {
            let elapsed = started.elapsed().as_secs_f64();
            let line = format!(
                "  {frames} frames, {:.3} GB/s, {} dropped",
                bytes as f64 / elapsed / 1e9,
                stream.counters().dropped
            );
            // On a terminal the progress line rewrites itself; in a log, one line each.
            if terminal {
                eprint!("\r{line}   ");
            } else {
                eprintln!("{line}");
            }
            next += Duration::from_secs(1);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    stream.stop().map_err(|error| error.to_string())?;
    let stats = stream.stats().map_err(|error| error.to_string())?;
    eprintln!(
        "{}{frames} frames ({:.1} MB) in {elapsed:.2} s: {:.3} GB/s, {} dropped by the card, {} failed",
        if terminal { "\r" } else { "" },
        bytes as f64 / 1e6,
        bytes as f64 / elapsed / 1e9,
        stats.frames_dropped_underrun + stats.frames_dropped_other,
        stats.frames_failed
    );
    stream
        .detach()
        .map(|_| ())
        .map_err(|error| error.to_string())
}
