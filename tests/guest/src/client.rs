//! The client side as applications use it: the `fgrab` Rust library, the legacy C API
//! (its example program, compiled against the header), a C program on liburing and the
//! uapi header alone, and the `fgrab` command.

use crate::ensure;
use crate::harness::{self, TestResult};
use crate::pattern;
use fgrab::{Buffer, Card, Error, Geometry, Options};
use std::process::Command;
use std::time::{Duration, Instant};

const CARD0: &str = "/dev/fgrab0";
const FRAME_BYTES: u32 = 65_543;
const FRAMES: u32 = 8;
/// The adopted buffer starts this many bytes into the caller's Vec: nothing is aligned.
const OFFSET: usize = 13;
const GUARD: u8 = 0x5a;

fn err(error: impl std::fmt::Display) -> String {
    error.to_string()
}

/// The Rust library: an unaligned caller buffer adopted, timeouts, RAII re-queue, stop and
/// start cycles, every byte checked, the buffer given back with its guard bytes intact.
pub fn client_rust_api() -> TestResult {
    let len = OFFSET + (FRAME_BYTES * FRAMES) as usize + 4096;
    let geometry = Geometry::new(FRAME_BYTES, FRAMES).offset(OFFSET);
    let card = Card::open(CARD0).map_err(err)?;
    let mut stream = card
        .attach(Buffer::from_vec(vec![GUARD; len]), geometry)
        .map_err(err)?;
    // Not started: nothing comes, the wait times out.
    let started = Instant::now();
    ensure!(
        stream
            .next_frame(Some(Duration::from_millis(200)))
            .map_err(err)?
            .is_none(),
        "a frame arrived before START"
    );
    ensure!(
        started.elapsed() >= Duration::from_millis(200),
        "the timeout was not honoured"
    );
    let mut verified = 0u64;
    for cycle in 0..3 {
        stream.start().map_err(err)?;
        let mut seen_again = false;
        let mut first: Option<(u32, u64)> = None;
        for _ in 0..200 {
            let frame = stream
                .next_frame(Some(Duration::from_secs(5)))
                .map_err(err)?
                .ok_or("no frame within 5 s")?;
            let info = frame.info();
            ensure!(
                frame.len() == FRAME_BYTES as usize,
                "frame of {} bytes",
                frame.len()
            );
            pattern::verify(&frame, info.sequence, 0)
                .map_err(|mismatch| format!("frame {}: {mismatch}", info.sequence))?;
            verified += 1;
            match first {
                None => first = Some((info.index, info.sequence)),
                Some((index, sequence)) if index == info.index && info.sequence > sequence => {
                    seen_again = true
                }
                Some(_) => {}
            }
            // `frame` drops here: the frame is queued again.
        }
        ensure!(
            seen_again,
            "cycle {cycle}: a released frame never came back (RAII re-queue)"
        );
        stream.stop().map_err(err)?;
        // Frames filled before the stop are still handed out; afterwards nothing comes.
        while stream
            .next_frame(Some(Duration::from_millis(50)))
            .map_err(err)?
            .is_some()
        {}
    }
    let counters = stream.counters();
    ensure!(counters.failed == 0, "{} frames failed", counters.failed);
    let buffer = stream.detach().map_err(err)?;
    let memory = buffer
        .into_box()
        .ok_or("the adopted Vec did not come back")?;
    ensure!(
        memory[..OFFSET].iter().all(|&b| b == GUARD)
            && memory[OFFSET + (FRAME_BYTES * FRAMES) as usize..]
                .iter()
                .all(|&b| b == GUARD),
        "bytes around the frames were written"
    );
    harness::info(&format!(
        "Rust API: {verified} frames verified over 3 start/stop cycles, {} dropped by the card",
        counters.dropped
    ));
    Ok(())
}

/// A single-thread stream (`Options::single_thread`: a `SINGLE_ISSUER | DEFER_TASKRUN`
/// ring): frames verified byte by byte through waits and through polls (a zero timeout
/// must still run the deferred completions), every frame back on the card after its
/// release; another thread gets `WrongThread` and disturbs nothing; sharing is refused
/// and the region still ends, so the card is free for the next stream.
pub fn client_single_thread() -> TestResult {
    let len = OFFSET + (FRAME_BYTES * FRAMES) as usize;
    let geometry = Geometry::new(FRAME_BYTES, FRAMES).offset(OFFSET);
    let options = Options::default().single_thread(true);
    let mut stream = Card::open(CARD0)
        .map_err(err)?
        .attach_with(Buffer::from_vec(vec![GUARD; len]), geometry, options)
        .map_err(err)?;
    // Before START: no frame completes earlier, so every frame's CQE is counted below
    // (START's own wait may already reap some).
    let before = stream.ring_counters();
    stream.start().map_err(err)?;
    let verified = std::cell::Cell::new(0u64);
    let check = |frame: &fgrab::Frame<'_, '_>| -> TestResult {
        let info = frame.info();
        ensure!(
            frame.len() == FRAME_BYTES as usize,
            "frame of {} bytes",
            frame.len()
        );
        pattern::verify(frame, info.sequence, 0)
            .map_err(|mismatch| format!("frame {}: {mismatch}", info.sequence))?;
        verified.set(verified.get() + 1);
        Ok(())
    };
    for _ in 0..300 {
        let frame = stream
            .next_frame(Some(Duration::from_secs(5)))
            .map_err(err)?
            .ok_or("no frame within 5 s")?;
        check(&frame)?;
    }
    // Polls: completions are posted only when this thread enters the kernel for them.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut polled = 0;
    while polled < 50 {
        ensure!(
            Instant::now() < deadline,
            "polls found {polled} frames in 5 s"
        );
        if let Some(frame) = stream.next_frame(Some(Duration::ZERO)).map_err(err)? {
            check(&frame)?;
            polled += 1;
        }
    }
    let ring = stream.ring_counters();
    let frames = verified.get();
    ensure!(
        ring.cqes - before.cqes >= frames && ring.sqes - before.sqes >= frames - u64::from(FRAMES),
        "ring counters {ring:?} from {before:?} for {frames} frames"
    );
    // Another thread: typed errors, nothing submitted, nothing lost.
    let (waited, stats) = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let waited = stream.next_frame(Some(Duration::from_millis(100))).err();
                (waited.map(|e| e.to_string()), stream.stats().err())
            })
            .join()
            .expect("the other thread ends")
    });
    ensure!(
        waited.as_deref() == Some(Error::WrongThread.to_string().as_str())
            && matches!(stats, Some(Error::WrongThread)),
        "another thread got {waited:?} and {stats:?}"
    );
    for _ in 0..50 {
        let frame = stream
            .next_frame(Some(Duration::from_secs(5)))
            .map_err(err)?
            .ok_or("no frame within 5 s after another thread's attempt")?;
        check(&frame)?;
    }
    ensure!(
        stream.counters().failed == 0,
        "{} frames failed",
        stream.counters().failed
    );
    match stream.into_shared() {
        Err(Error::WrongThread) => {}
        other => return Err(format!("sharing a single-thread stream: {:?}", other.err())),
    }
    // The refused stream was dropped in its thread: the region ended, the card is free.
    let mut next = Card::open(CARD0)
        .map_err(err)?
        .attach(Buffer::from_vec(vec![GUARD; len]), geometry)
        .map_err(err)?;
    next.start().map_err(err)?;
    let frame = next
        .next_frame(Some(Duration::from_secs(5)))
        .map_err(err)?
        .ok_or("no frame on the next stream")?;
    pattern::verify(&frame, frame.sequence(), 0).map_err(|m| m.to_string())?;
    drop(frame);
    next.stop().map_err(err)?;
    harness::info(&format!(
        "single-thread stream: {} frames verified, {:.2} system calls per frame",
        verified.get(),
        (ring.enters - before.enters) as f64 / frames as f64
    ));
    Ok(())
}

/// A batched stream (`Options::batch`): frames go back to the card a group at a time with
/// one `QUEUE_BATCH` and come back a group per CQE. Frames of an odd size with guard gaps
/// between them, 26 in groups of 8, 8, 8 and 2; held across waits and released out of
/// order; a stop while one is held; every byte checked, the guards intact; a fraction of
/// a submission and of a completion per frame; batches the driver cannot take refused
/// before anything is attached; the same through a `SharedStream` from two threads.
pub fn client_batch() -> TestResult {
    const COUNT: u32 = 26;
    const BATCH: u32 = 8;
    const GAP: u64 = 37;
    let geometry = Geometry::new(FRAME_BYTES, COUNT)
        .stride(u64::from(FRAME_BYTES) + GAP)
        .offset(OFFSET);
    let frames_end = OFFSET + ((u64::from(FRAME_BYTES) + GAP) * u64::from(COUNT)) as usize;
    let len = frames_end + 4096;
    let card = Card::open(CARD0).map_err(err)?;
    // Batches the driver cannot take, or that would leave the card nothing while the
    // application reads: refused, the card and the buffer come back.
    // 65 of 200 small frames: above the driver's 64, below half the frames.
    let many = Geometry::new(64, 200);
    let mut card = Some(card);
    let mut memory = Some(Buffer::from_vec(vec![GUARD; len]));
    for (batch, geometry) in [
        (fgrab_uapi::MAX_BATCH_FRAMES + 1, many),
        (COUNT / 2 + 1, geometry),
    ] {
        let options = Options::default().batch(batch);
        let taken = card.take().ok_or("no card")?;
        let buffer = memory.take().ok_or("no buffer")?;
        match taken.attach_with(buffer, geometry, options) {
            Err(failed) if matches!(failed.error, Error::Geometry { .. }) => {
                card = failed.card;
                memory = failed.buffer;
            }
            other => return Err(format!("a batch of {batch}: {:?}", other.err())),
        }
    }
    let mut stream = card
        .ok_or("the card did not come back")?
        .attach_with(
            memory.ok_or("the buffer did not come back")?,
            geometry,
            Options::default().batch(BATCH),
        )
        .map_err(err)?;
    let mut verified = 0u64;
    let mut check = |stream: &fgrab::Stream<'_>, info: fgrab::FrameInfo| -> TestResult {
        let bytes = stream
            .frame_bytes(info.index)
            .ok_or("a frame handed out is not held")?;
        ensure!(
            bytes.len() == FRAME_BYTES as usize,
            "frame of {} bytes",
            bytes.len()
        );
        pattern::verify(bytes, info.sequence, 0)
            .map_err(|mismatch| format!("frame {}: {mismatch}", info.sequence))?;
        verified += 1;
        Ok(())
    };
    let take = |stream: &mut fgrab::Stream<'_>| -> Result<fgrab::FrameInfo, String> {
        stream
            .take_frame(Some(Duration::from_secs(5)))
            .map_err(err)?
            .ok_or_else(|| "no frame within 5 s".to_string())
    };
    stream.start().map_err(err)?;
    let before = stream.ring_counters();
    let mut streamed = 0u64;
    for round in 0..40 {
        // Three frames held at once (of one group or two), released newest first.
        let mut held = Vec::new();
        for _ in 0..3 {
            let info = take(&mut stream)?;
            check(&stream, info)?;
            held.push(info.index);
        }
        for index in held.into_iter().rev() {
            stream.release(index).map_err(err)?;
        }
        // Then frames one at a time, each released before the next wait.
        for _ in 0..(7 + round % 5) {
            let info = take(&mut stream)?;
            check(&stream, info)?;
            stream.release(info.index).map_err(err)?;
        }
        streamed += 3 + 7 + round % 5;
    }
    let ring = stream.ring_counters();
    let sqes = ring.sqes - before.sqes;
    let cqes = ring.cqes - before.cqes;
    // Every group of 8 goes back with one submission and comes back with one completion
    // (the group of 2 too): 4 of each per 26 frames, against 26 one frame at a time.
    ensure!(
        sqes * 6 <= streamed + 24 && cqes * 6 <= streamed + 24,
        "{sqes} submissions and {cqes} completions for {streamed} frames in groups of {BATCH}"
    );
    // A stop while a frame is held: the groups on the card come back; filled frames are
    // still handed out; the held one goes back at the next start with its group.
    let held = take(&mut stream)?;
    check(&stream, held)?;
    stream.stop().map_err(err)?;
    while let Some(info) = stream
        .take_frame(Some(Duration::from_millis(50)))
        .map_err(err)?
    {
        check(&stream, info)?;
        stream.release(info.index).map_err(err)?;
    }
    stream.release(held.index).map_err(err)?;
    stream.start().map_err(err)?;
    // Every group came back to the card, the held frame's too: every frame shows up.
    let mut seen = [false; COUNT as usize];
    for _ in 0..100 {
        let info = take(&mut stream)?;
        check(&stream, info)?;
        seen[info.index as usize] = true;
        stream.release(info.index).map_err(err)?;
    }
    ensure!(
        seen.iter().all(|&seen| seen),
        "after the restart, frames never came back: {:?}",
        (0..COUNT)
            .filter(|&i| !seen[i as usize])
            .collect::<Vec<_>>()
    );
    let moderated = stream.stats().map_err(err)?;
    stream.stop().map_err(err)?;
    let stats = stream.stats().map_err(err)?;
    let counters = stream.counters();
    ensure!(counters.failed == 0, "{} frames failed", counters.failed);
    // One interrupt per group of 8 in the steady stream, plus the time bound's (the
    // driver's default, 8 frame times, a handful at most in this short run) and the
    // groups out of step around the short one: well under one per frame.
    ensure!(
        moderated.frame_irqs * 2 <= moderated.frames_completed,
        "{} frame interrupts for {} frames in groups of {BATCH}",
        moderated.frame_irqs,
        moderated.frames_completed
    );
    let buffer = stream.detach().map_err(err)?;
    let memory = buffer
        .into_box()
        .ok_or("the adopted Vec did not come back")?;
    ensure!(
        memory[..OFFSET].iter().all(|&b| b == GUARD)
            && memory[frames_end - GAP as usize..]
                .iter()
                .all(|&b| b == GUARD),
        "bytes before or after the frames were written"
    );
    for index in 0..COUNT as usize {
        let gap = OFFSET + (u64::from(FRAME_BYTES) + GAP) as usize * index + FRAME_BYTES as usize;
        ensure!(
            memory[gap..gap + GAP as usize].iter().all(|&b| b == GUARD),
            "the guard gap after frame {index} was written"
        );
    }
    // The same stream shared by two threads: each releases its own frames, the groups
    // still go back whole.
    let shared = Card::open(CARD0)
        .map_err(err)?
        .attach_with(
            Buffer::from_vec(vec![GUARD; len]),
            geometry,
            Options::default().batch(BATCH),
        )
        .map_err(err)?
        .into_shared()
        .map_err(err)?;
    shared.start().map_err(err)?;
    let shared_verified = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| -> Result<u64, String> {
                    let mut count = 0;
                    for _ in 0..100 {
                        let frame = shared
                            .next_frame(Some(Duration::from_secs(5)))
                            .map_err(err)?;
                        pattern::verify(&frame, frame.sequence(), 0)
                            .map_err(|mismatch| format!("shared: {mismatch}"))?;
                        count += 1;
                    }
                    Ok(count)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().map_err(|_| "a worker panicked".to_string())?)
            .sum::<Result<u64, String>>()
    })?;
    shared.stop().map_err(err)?;
    shared
        .detach()
        .map_err(|(error, _)| format!("shared detach: {error}"))?;
    harness::info(&format!(
        "batched stream: {verified} frames verified, {:.3} submissions and {:.3} completions \
         per frame, {:.3} frame interrupts per frame; shared by two threads: \
         {shared_verified} verified",
        sqes as f64 / streamed as f64,
        cqes as f64 / streamed as f64,
        stats.frame_irqs as f64 / stats.frames_delivered.max(1) as f64
    ));
    Ok(())
}

/// Misuse gets typed errors and disturbs nothing.
pub fn client_misuse() -> TestResult {
    let card = Card::open(CARD0).map_err(err)?;
    let too_small = Geometry::new(FRAME_BYTES, FRAMES);
    // A failed attach gives the card and the buffer back.
    let failed = match card.attach(Buffer::from_vec(vec![0; 1000]), too_small) {
        Err(failed) if matches!(failed.error, Error::Geometry { .. }) => failed,
        other => return Err(format!("a too small buffer: {:?}", other.err())),
    };
    ensure!(
        failed
            .buffer
            .as_ref()
            .is_some_and(|buffer| buffer.len() == 1000),
        "the too small buffer did not come back: {failed:?}"
    );
    let card = failed.card.ok_or("the card did not come back")?;
    let geometry = Geometry::new(FRAME_BYTES, FRAMES);
    let mut stream = card
        .attach(
            Buffer::allocate((FRAME_BYTES * FRAMES) as usize).map_err(err)?,
            geometry,
        )
        .map_err(err)?;
    // A second stream on the same card: the driver refuses.
    let second = Card::open(CARD0).map_err(err)?;
    match second.attach(
        Buffer::from_vec(vec![0; (FRAME_BYTES * FRAMES) as usize]),
        geometry,
    ) {
        // Refused by the driver after the buffer was registered: both still come back.
        Err(failed)
            if matches!(failed.error, Error::Command { errno, .. } if errno == libc::EBUSY)
                && failed.card.is_some()
                && failed.buffer.is_some() => {}
        other => return Err(format!("a second stream: {:?}", other.err())),
    }
    match stream.release(3) {
        Err(Error::NotHeld { index: 3 }) => {}
        other => return Err(format!("releasing a frame not held: {other:?}")),
    }
    match stream.stop() {
        Err(Error::Command { errno, .. }) if errno == libc::EALREADY => {}
        other => return Err(format!("STOP while stopped: {other:?}")),
    }
    // Nothing was disturbed.
    stream.start().map_err(err)?;
    for _ in 0..50 {
        let frame = stream
            .next_frame(Some(Duration::from_secs(5)))
            .map_err(err)?
            .ok_or("no frame")?;
        pattern::verify(&frame, frame.sequence(), 0).map_err(|m| m.to_string())?;
    }
    stream.stop().map_err(err)?;
    drop(stream);
    Ok(())
}

/// Runs a program from the initramfs and returns its stdout.
fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|error| format!("{program}: {error}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    ensure!(
        output.status.success(),
        "{program} {args:?} failed ({}): {} {}",
        output.status,
        stdout.trim(),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(stdout)
}

/// The legacy C example, compiled from `fgrab_legacy.h` and linked with the library,
/// streams into its own unaligned malloc buffer and checks every byte.
pub fn client_legacy_c() -> TestResult {
    let out = run("/bin/fgrab-legacy-capture", &["300"])?;
    harness::info(out.trim());
    Ok(())
}

/// The legacy API misused (null pointers, bad sizes, double release, calls out of order,
/// two threads on one handle, timeouts while holding every frame): every call answers with
/// its documented code, the stream keeps working, the buffer's unused tail stays untouched.
pub fn client_legacy_misuse() -> TestResult {
    let out = run("/bin/fgrab-legacy-misuse", &[])?;
    harness::info(out.trim());
    Ok(())
}

/// The legacy API from several threads: an acquisition thread, four workers releasing
/// frames in any order while holding 8 at once, every byte checked; a stop from the main
/// thread, an abort of a blocked wait, a close while a thread waits.
pub fn client_legacy_threads() -> TestResult {
    let out = run("/bin/fgrab-legacy-threads", &["2000"])?;
    harness::info(out.trim());
    Ok(())
}

/// A C program on liburing and `fgrab.h` alone streams and checks every byte.
pub fn client_raw_uring_c() -> TestResult {
    let out = run("/bin/fgrab-raw-uring", &["500"])?;
    harness::info(out.trim());
    Ok(())
}

/// The `fgrab` command: list (text and JSON, against sysfs), info (text and JSON),
/// capture with its summary, stats (text and JSON), and bad input refused with a usage error
/// or a runtime error naming the problem. The capture file is checked byte by byte: frame
/// `i` fills bytes `i * frame_bytes..` and is the card's pattern for one sequence number, in
/// the order the card produced them; the drops the summary reports are the card's own
/// counters.
pub fn client_cli() -> TestResult {
    const CAPTURED: u64 = 200;
    const OUTPUT: &str = "/tmp/frames";
    cli_list()?;
    let info = run("/bin/fgrab", &["info"])?;
    ensure!(info.contains("10ee:f9a0"), "fgrab info: {info}");
    let info = json(&run("/bin/fgrab", &["info", "--json", "--card", CARD0])?)?;
    ensure!(
        info["vendor_id"] == 0x10ee
            && info["device_id"] == 0xf9a0
            && info["card_index"] == 0
            && info["node"] == CARD0
            && info["pci"] == crate::streamer::card_pci_address("fgrab0")?.as_str()
            && info["frame_bytes"].as_u64().is_some_and(|bytes| bytes > 0),
        "fgrab info --json: {info}"
    );
    cli_bad_input()?;
    let frame_bytes = FRAME_BYTES.to_string();
    let captured = CAPTURED.to_string();
    let output = Command::new("/bin/fgrab")
        .args([
            "capture",
            "--frames",
            &captured,
            "--frame-bytes",
            &frame_bytes,
            "--output",
            OUTPUT,
        ])
        .output()
        .map_err(|error| error.to_string())?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(output.status.success(), "fgrab capture: {stderr}");
    let file = std::fs::read(OUTPUT).map_err(|error| format!("{OUTPUT}: {error}"))?;
    let _ = std::fs::remove_file(OUTPUT);
    let sequences = captured_sequences(&file, FRAME_BYTES as usize)?;
    ensure!(
        sequences.len() as u64 == CAPTURED,
        "capture wrote {} frames, expected {CAPTURED}",
        sequences.len()
    );
    let summary = stderr
        .lines()
        .last()
        .and_then(|line| line.rsplit('\r').next())
        .unwrap_or("")
        .trim();
    ensure!(
        summary.starts_with(&format!("{CAPTURED} frames")),
        "capture summary: {summary}"
    );
    // The card stopped and was not reset since (DETACH leaves its counters), so its BAR
    // counters are the capture's.
    let card = crate::bar::read_counters(&crate::streamer::card_pci_address("fgrab0")?)?;
    let last = sequences.last().copied().unwrap_or(0);
    ensure!(
        last < card.next_sequence,
        "the file holds frame {last}, but the card used only {} sequence numbers",
        card.next_sequence
    );
    let dropped = card.underrun + card.overrun + card.backpressure;
    ensure!(
        summary.contains(&format!(" {dropped} dropped by the card")),
        "capture summary `{summary}`, but the card counted {dropped} drops: {card:?}"
    );
    harness::info(&format!(
        "fgrab capture: {summary}; every byte of the {CAPTURED} frames in the file verified, \
         sequences {}..={last} in order",
        sequences.first().copied().unwrap_or(0)
    ));
    let stats = run("/bin/fgrab", &["stats"])?;
    ensure!(stats.contains("idle"), "fgrab stats after capture: {stats}");
    let stats = json(&run("/bin/fgrab", &["stats", "--json", "--card", "1"])?)?;
    ensure!(
        stats["state"] == "idle" && stats["node"] == "/dev/fgrab1" && stats["frames_queued"] == 0,
        "fgrab stats --json --card 1: {stats}"
    );
    Ok(())
}

/// Parses the JSON `fgrab` printed.
fn json(text: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(text).map_err(|error| format!("not JSON ({error}): {text}"))
}

/// `fgrab list` and `fgrab list --json` name every card sysfs has, each with its node, PCI
/// address, vendor:device, hardware version and state.
fn cli_list() -> TestResult {
    let mut names: Vec<String> = std::fs::read_dir("/sys/class/misc")
        .map_err(|error| format!("/sys/class/misc: {error}"))?
        .flatten()
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| {
            name.strip_prefix("fgrab")
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .collect();
    names.sort_by_key(|name| name[5..].parse::<u32>().unwrap_or(u32::MAX));
    ensure!(
        names.len() >= 2,
        "sysfs shows cards {names:?}, the VM has two"
    );
    let text = run("/bin/fgrab", &["list"])?;
    let lines: Vec<&str> = text.lines().collect();
    ensure!(
        lines.len() == names.len(),
        "fgrab list printed {} lines for cards {names:?}: {text}",
        lines.len()
    );
    let cards = json(&run("/bin/fgrab", &["list", "--json"])?)?;
    let cards = cards.as_array().ok_or(format!("not an array: {cards}"))?;
    ensure!(
        cards.len() == names.len(),
        "fgrab list --json has {} cards for {names:?}",
        cards.len()
    );
    for ((name, line), card) in names.iter().zip(&lines).zip(cards) {
        let index = &name[5..];
        let pci = crate::streamer::card_pci_address(name)?;
        let hw_version = std::fs::read_to_string(format!("/sys/class/misc/{name}/hw_version"))
            .map_err(|error| format!("{name}/hw_version: {error}"))?;
        let hw_version = hw_version.trim();
        let node = format!("/dev/{name}");
        let expected =
            format!("{index}  {node}  PCI {pci} (10ee:f9a0)  hardware v{hw_version}  idle");
        ensure!(
            *line == expected,
            "fgrab list: `{line}`, expected `{expected}`"
        );
        ensure!(
            card["index"].as_u64().map(|n| n.to_string()).as_deref() == Some(index)
                && card["node"] == node.as_str()
                && card["pci"] == pci.as_str()
                && card["pci_id"] == "10ee:f9a0"
                && card["hw_version"] == hw_version
                && card["state"] == "idle"
                && card["open_error"].is_null(),
            "fgrab list --json: {card}"
        );
        harness::info(&format!("fgrab list: {line}"));
    }
    Ok(())
}

/// Bad input is refused with a message naming it: a usage error (status 2) for a value
/// that cannot be right, a runtime error (status 1) for a card that is not there or a
/// frame larger than the card's limit. Never a panic.
fn cli_bad_input() -> TestResult {
    for (args, status, named) in [
        (&["capture", "--frames", "many"][..], 2, "--frames"),
        (&["capture", "--frame-bytes", "0"], 2, "--frame-bytes"),
        (&["capture", "--queue-depth", "0"], 2, "--queue-depth"),
        (&["info", "--card", "first"], 2, "--card"),
        (&["list", "--bogus"], 2, "--bogus"),
        (&["info", "--card", "/dev/fgrab9"], 1, "/dev/fgrab9"),
        (&["stats", "--card", "9"], 1, "/dev/fgrab9"),
        (&["capture", "--frame-bytes", "2G"], 1, "--frame-bytes"),
    ] {
        let output = Command::new("/bin/fgrab")
            .args(args)
            .output()
            .map_err(|error| format!("/bin/fgrab: {error}"))?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        ensure!(
            output.status.code() == Some(status)
                && stderr.contains(named)
                && !stderr.contains("panicked"),
            "fgrab {args:?}: {}, expected exit status {status} naming {named}: {stderr}",
            output.status
        );
    }
    Ok(())
}

/// The sequence numbers of the frames in a capture file, checked: the file is whole frames
/// of `frame_bytes`, each slot holds one frame of the card's pattern from its first byte to
/// its last, and sequence numbers only go up.
fn captured_sequences(file: &[u8], frame_bytes: usize) -> Result<Vec<u64>, String> {
    ensure!(
        file.len().is_multiple_of(frame_bytes),
        "capture file of {} bytes is not whole frames of {frame_bytes}",
        file.len()
    );
    let mut sequences: Vec<u64> = Vec::new();
    for (slot, frame) in file.chunks(frame_bytes).enumerate() {
        // The next frame comes after the previous one; the card drops some in between.
        let from = sequences.last().map_or(0, |last| last + 1);
        let sequence = pattern::identify(frame, 0, from..from + 100_000).ok_or_else(|| {
            format!(
                "file bytes {}..: not the start of a frame after sequence {from}",
                slot * frame_bytes
            )
        })?;
        pattern::verify(frame, sequence, 0).map_err(|mismatch| {
            format!(
                "file frame {slot} (bytes {}.., sequence {sequence}): {mismatch}",
                slot * frame_bytes
            )
        })?;
        sequences.push(sequence);
    }
    Ok(sequences)
}

/// The demo's Rust part: the library streams for `seconds`, every byte checked.
pub fn demo_rust_api(seconds: u64) -> TestResult {
    let frame_bytes = 1_000_003u32;
    let count = 16;
    let geometry = Geometry::new(frame_bytes, count).offset(OFFSET);
    let card = Card::open(CARD0).map_err(err)?;
    let buffer = Buffer::allocate(OFFSET + (frame_bytes * count) as usize).map_err(err)?;
    let huge = buffer.is_huge();
    let mut stream = card.attach(buffer, geometry).map_err(err)?;
    let before = crate::stream::cpu_time();
    stream.start().map_err(err)?;
    let started = Instant::now();
    let (mut frames, mut bytes) = (0u64, 0u64);
    while started.elapsed() < Duration::from_secs(seconds) {
        let frame = stream
            .next_frame(Some(Duration::from_secs(5)))
            .map_err(err)?
            .ok_or("no frame within 5 s")?;
        pattern::verify(&frame, frame.sequence(), 0)
            .map_err(|mismatch| format!("frame {}: {mismatch}", frame.sequence()))?;
        frames += 1;
        bytes += frame.len() as u64;
    }
    let elapsed = started.elapsed().as_secs_f64();
    stream.stop().map_err(err)?;
    let stats = stream.stats().map_err(err)?;
    let (user, system) = crate::stream::cpu_time();
    harness::info(&format!(
        "Rust API (fgrab crate, {} memory): {frames} frames, {:.2} GB verified byte by byte in \
         {elapsed:.1} s ({:.3} GB/s), {} dropped by the card, {} failed; CPU {:.2} s user + \
         {:.2} s system",
        if huge { "huge-page" } else { "THP" },
        bytes as f64 / 1e9,
        bytes as f64 / elapsed / 1e9,
        stats.frames_dropped_underrun + stats.frames_dropped_other,
        stats.frames_failed,
        (user - before.0).as_secs_f64(),
        (system - before.1).as_secs_f64(),
    ));
    stream.detach().map(|_| ()).map_err(err)
}
