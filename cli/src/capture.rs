//! `fgrab capture`: stream frames into a file with a progress line.

use crate::args::CaptureArgs;
use fgrab::{Buffer, Geometry, Options};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Frames captured when neither `--frames` nor `--seconds` is given.
const DEFAULT_FRAMES: u64 = 100;

pub fn run(args: &CaptureArgs) -> Result<(), String> {
    let path = args.card.card.path();
    let node = path.display();
    let mut card = crate::open(&path)?;
    let info = card.info().map_err(|error| format!("{node}: {error}"))?;
    let frame_bytes = args.frame_bytes.unwrap_or(info.frame_bytes);
    // The card's own limits, checked here so that the message names the option.
    if frame_bytes > info.max_frame_bytes {
        return Err(format!(
            "--frame-bytes {frame_bytes}: {node} produces frames of at most {} bytes",
            info.max_frame_bytes
        ));
    }
    if args.queue_depth > info.max_frames {
        return Err(format!(
            "--queue-depth {}: {node} takes at most {} frames per buffer",
            args.queue_depth, info.max_frames
        ));
    }
    let bytes = (frame_bytes as usize)
        .checked_mul(args.queue_depth as usize)
        .and_then(|frames| frames.checked_add(args.offset))
        .ok_or_else(|| {
            format!(
                "--offset {} with {} frames of {frame_bytes} bytes does not fit the address space",
                args.offset, args.queue_depth
            )
        })?;
    let geometry = Geometry::new(frame_bytes, args.queue_depth).offset(args.offset);
    let buffer = Buffer::allocate(bytes).map_err(|error| error.to_string())?;
    let huge = buffer.is_huge();
    let options = Options::default().sqpoll(args.sqpoll);
    let mut stream = card
        .attach_with(buffer, geometry, options)
        .map_err(|failed| failed.error)
        .map_err(|error| match error.errno() {
            Some(libc::EBUSY) => {
                format!("{node}: the card is busy: another program is streaming from it ({error})")
            }
            _ => format!("{node}: {error}"),
        })?;
    let output_name = args.output.display();
    let mut output =
        std::fs::File::create(&args.output).map_err(|error| format!("{output_name}: {error}"))?;
    let frame_limit = match (args.frames, args.seconds) {
        (None, None) => Some(DEFAULT_FRAMES),
        (frames, _) => frames,
    };
    eprintln!(
        "capturing {} frames of {frame_bytes} bytes ({} queued, {} memory) to {output_name}",
        frame_limit.map_or("unlimited".to_string(), |n| n.to_string()),
        args.queue_depth,
        if huge { "huge page" } else { "regular" },
    );
    stream.start().map_err(|error| format!("{node}: {error}"))?;
    let terminal = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut next = started + Duration::from_secs(1);
    let (mut frames, mut bytes) = (0u64, 0u64);
    loop {
        if frame_limit.is_some_and(|n| frames >= n)
            || args.seconds.is_some_and(|limit| started.elapsed() >= limit)
        {
            break;
        }
        {
            let Some(frame) = stream
                .next_frame(Some(Duration::from_secs(2)))
                .map_err(|error| format!("{node}: {error}"))?
            else {
                return Err(format!("{node}: no frame for 2 s"));
            };
            output
                .write_all(&frame)
                .map_err(|error| format!("{output_name}: {error}"))?;
            frames += 1;
            bytes += frame.len() as u64;
        } // the frame goes back to the card here
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
    stream.stop().map_err(|error| format!("{node}: {error}"))?;
    let stats = stream.stats().map_err(|error| format!("{node}: {error}"))?;
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
        .map_err(|error| format!("{node}: {error}"))
}
