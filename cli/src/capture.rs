//! `fgrab capture`: record frames into a file (`fgrab::Recorder`) with a progress line.

use crate::args::CaptureArgs;
use fgrab::{Buffer, Geometry, Options, Progress, RecordOptions, Recorder};
use std::io::IsTerminal;
use std::os::unix::fs::FileTypeExt;

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
    // One thread drives the stream and its writes: the single-thread ring (DEFER_TASKRUN),
    // whose completions run in this thread's waits (ignored with SQPOLL).
    let options = Options::default()
        .sqpoll(args.sqpoll)
        .single_thread(true)
        .batch(args.batch);
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
    let frame_limit = match (args.frames, args.seconds) {
        (None, None) => Some(DEFAULT_FRAMES),
        (frames, _) => frames,
    };
    // A character device (the default /dev/null) gets no index next to it.
    let character_device =
        std::fs::metadata(&args.output).is_ok_and(|metadata| metadata.file_type().is_char_device());
    let mut record_options = RecordOptions::default()
        .direct(!args.buffered)
        .write_index(args.index.is_some() || !character_device);
    record_options.frames = frame_limit;
    record_options.duration = args.seconds;
    record_options.index = args.index.clone();
    let mut recorder = Recorder::create(&stream, &args.output, record_options)
        .map_err(|error| error.to_string())?;
    let batching = if args.batch > 1 {
        format!(", given back {} at a time", args.batch)
    } else {
        String::new()
    };
    eprintln!(
        "capturing {} frames of {frame_bytes} bytes ({} queued{batching}, {} memory) to \
         {output_name}",
        frame_limit.map_or("unlimited".to_string(), |n| n.to_string()),
        args.queue_depth,
        if huge { "huge page" } else { "regular" },
    );
    eprintln!("writing: {}", recorder.mode());
    let terminal = std::io::stderr().is_terminal();
    let progress = |progress: &Progress| {
        let line = format!(
            "  {} frames, {:.1} MB/s, {} dropped",
            progress.frames,
            progress.bytes as f64 / progress.elapsed.as_secs_f64().max(1e-9) / 1e6,
            progress.dropped
        );
        // On a terminal the progress line rewrites itself; in a log, one line each.
        if terminal {
            eprint!("\r{line}   ");
        } else {
            eprintln!("{line}");
        }
    };
    let summary = recorder
        .record(&mut stream, progress)
        .map_err(|error| match error {
            fgrab::Error::DiskFull { .. } | fgrab::Error::Record { .. } => error.to_string(),
            error => format!("{node}: {error}"),
        })?;
    let (frames, bytes) = (summary.progress.frames, summary.progress.bytes);
    let elapsed = summary.progress.elapsed.as_secs_f64();
    let stats = stream.stats().map_err(|error| format!("{node}: {error}"))?;
    if let Some(index) = &summary.index_path {
        eprintln!(
            "{}index: {} ({} frames)",
            if terminal { "\r" } else { "" },
            index.display(),
            recorder.index().entries.len()
        );
    }
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
