//! The card misbehaving mid-stream, as the emulator's fault injection makes it (suite
//! `vm-faults`: card 1 runs with `--fault` flags, see `xtask/src/test.rs`), and other
//! programs getting in the way. After each, nothing may leak (kmemleak at the end of the
//! run) and the card must stream again.

use crate::ensure;
use crate::harness::{self, TestResult};
use crate::pattern;
use crate::streamer::{Layout, Streamer};
use crate::uring::TestUring;
use fgrab_uapi::{ops, ControlCmd, META_ERROR, META_FRAME, STATE_ATTACHED, STATE_STREAMING};
use std::time::{Duration, Instant};
use zerocopy::{FromZeros, IntoBytes};

const CARD0: &str = "/dev/fgrab0";
const CARD1: &str = "/dev/fgrab1";
const CARD2: &str = "/dev/fgrab2";

/// What a faulty stream showed.
#[derive(Default, Debug)]
struct Seen {
    verified: u64,
    failed_with_frame: u64,
    failed_without_frame: u64,
    halted: bool,
    longest_wait: Duration,
}

/// Streams on `streamer` until the card halts or `until` sequence numbers passed, checking
/// every good frame and counting the failed ones (which are queued again).
fn stream_through_faults(streamer: &mut Streamer, until: u64) -> Result<Seen, String> {
    let mut seen = Seen::default();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = Instant::now();
    let mut last_sequence = 0;
    while last_sequence < until && !seen.halted {
        ensure!(Instant::now() < deadline, "faults run too long: {seen:?}");
        let completions = streamer.reap(Duration::from_millis(100))?;
        if !completions.is_empty() {
            seen.longest_wait = seen.longest_wait.max(last.elapsed());
            last = Instant::now();
        }
        if last.elapsed() > Duration::from_secs(1) && streamer.stats()?.state == STATE_ATTACHED {
            // The card halted while no frame was on it: nothing failed, the stream stopped.
            seen.halted = true;
            break;
        }
        if last.elapsed() > Duration::from_secs(10) {
            let stats = streamer.stats()?;
            return Err(format!(
                "no completion for 10 s: {seen:?}; queued here {:?}; driver {stats:?}",
                streamer.queued
            ));
        }
        for completion in completions {
            // CAST: masked to 16 bits.
            let index = (completion.user_data & 0xffff) as u32;
            ensure!(
                completion.user_data >> 16 == 0xf,
                "unexpected completion {completion:?}"
            );
            streamer.queued[index as usize] = false;
            let meta = streamer.metas[index as usize];
            match completion.res {
                res if res >= 0 => {
                    ensure!(meta.flags == META_FRAME, "good frame with flags {meta:?}");
                    pattern::verify(streamer.frame(index), completion.extra, 0)
                        .map_err(|m| format!("frame {}: {m}", completion.extra))?;
                    seen.verified += 1;
                    last_sequence = completion.extra;
                }
                res if res == -libc::EIO => {
                    ensure!(
                        meta.flags & META_ERROR != 0,
                        "-EIO without META_ERROR: {meta:?}"
                    );
                    if streamer.stats()?.state == STATE_ATTACHED {
                        // Taken back from a halted card, which the driver reset.
                        seen.halted = true;
                    } else if meta.flags & META_FRAME != 0 {
                        seen.failed_with_frame += 1;
                        last_sequence = meta.sequence;
                    } else {
                        seen.failed_without_frame += 1;
                    }
                }
                res => return Err(format!("frame {index}: unexpected result {res}, {meta:?}")),
            }
            if !seen.halted {
                streamer.queue(index)?;
            }
        }
        streamer.flush()?;
    }
    Ok(seen)
}

/// Card 1 injects, in one stream: a DMA write error (frame >= 100), a lost interrupt
/// (>= 200), a rejected descriptor list (>= 300), a completion stalled 250 ms (>= 400),
/// then a fatal fault that halts it (>= 10000, past the frames the stall makes it drop). Each is seen for what it is; the stream goes
/// on after the non-fatal ones; after the halt it starts again and frames are good.
pub fn fault_injection() -> TestResult {
    let mut streamer = Streamer::attach(CARD1, Layout::UNALIGNED)?;
    streamer.queue_all()?;
    ensure!(streamer.control(ops::START)? == 0, "START failed");
    let seen = stream_through_faults(&mut streamer, 100_000)?;
    harness::info(&format!(
        "fault injection: {} frames verified, {} failed with a DMA error, {} rejected, \
         longest wait {} ms (stall), halted: {}",
        seen.verified,
        seen.failed_with_frame,
        seen.failed_without_frame,
        seen.longest_wait.as_millis(),
        seen.halted
    ));
    ensure!(
        seen.failed_with_frame >= 1,
        "no frame failed with the DMA error: {seen:?}"
    );
    ensure!(
        seen.failed_without_frame >= 1,
        "no descriptor rejection seen: {seen:?}"
    );
    ensure!(
        seen.longest_wait >= Duration::from_millis(200),
        "the 250 ms stall did not show: {seen:?}"
    );
    ensure!(seen.halted, "the card did not halt: {seen:?}");
    let stats = streamer.stats()?;
    ensure!(
        stats.state == STATE_ATTACHED,
        "still streaming after the halt: {stats:?}"
    );
    // Frames on the card when it halted come back with -EIO; frames queued since wait in
    // the driver for the next START.
    let settle = Instant::now() + Duration::from_millis(500);
    while Instant::now() < settle {
        for completion in streamer.reap(Duration::from_millis(50))? {
            ensure!(
                completion.res == -libc::EIO,
                "after the halt: {completion:?}"
            );
            streamer.queued[(completion.user_data & 0xffff) as usize] = false;
        }
    }
    // The card was reset by the driver: it streams again.
    streamer.queue_all()?;
    ensure!(
        streamer.control(ops::START)? == 0,
        "START after the halt failed"
    );
    ensure!(
        streamer.stats()?.state == STATE_STREAMING,
        "not streaming again"
    );
    streamer.run(streamer.tally.verified + 100, Duration::from_secs(60))?;
    streamer.stop()?;
    streamer.check_guards()?;
    streamer.detach()
}

/// A batched library stream (`Options::batch`) on card 2, whose DMA fails at frame 50 and
/// whose descriptor is rejected at frame 90 (or the first frame the card takes after
/// each): each failed frame is flagged in its batch's metadata while the batch's other
/// frames are handed out, checked byte by byte; the library counts both failures, never
/// hands out a failed frame, and its group goes back to the card with the rest, so the
/// stream goes on.
pub fn fault_batched() -> TestResult {
    use fgrab::{Buffer, Card, Geometry, Options};
    const FRAME_BYTES: u32 = 65_543;
    const FRAMES: u32 = 16;
    const OFFSET: usize = 7;
    let geometry = Geometry::new(FRAME_BYTES, FRAMES).offset(OFFSET);
    let len = OFFSET + (FRAME_BYTES * FRAMES) as usize;
    let mut stream = Card::open(CARD2)
        .map_err(|error| error.to_string())?
        .attach_with(
            Buffer::from_vec(vec![0x5a; len]),
            geometry,
            Options::default().batch(4),
        )
        .map_err(|failed| failed.error.to_string())?;
    stream.start().map_err(|error| error.to_string())?;
    let mut verified = 0u64;
    let mut sequences = Vec::new();
    while sequences.last().is_none_or(|&last| last < 200) {
        let frame = stream
            .next_frame(Some(Duration::from_secs(10)))
            .map_err(|error| error.to_string())?
            .ok_or("no frame within 10 s")?;
        let info = frame.info();
        ensure!(
            info.flags & META_FRAME != 0 && info.flags & META_ERROR == 0,
            "a frame handed out with flags {:#x}",
            info.flags
        );
        pattern::verify(&frame, info.sequence, 0)
            .map_err(|mismatch| format!("frame {}: {mismatch}", info.sequence))?;
        verified += 1;
        sequences.push(info.sequence);
    }
    let counters = stream.counters();
    ensure!(
        counters.failed == 2,
        "2 frames should have failed (a DMA error, a rejected descriptor): {counters:?}"
    );
    stream.stop().map_err(|error| error.to_string())?;
    let buffer = stream.detach().map_err(|error| error.to_string())?;
    let memory = buffer
        .into_box()
        .ok_or("the adopted Vec did not come back")?;
    ensure!(
        memory[..OFFSET].iter().all(|&byte| byte == 0x5a),
        "bytes before the frames were written"
    );
    harness::info(&format!(
        "batched stream through faults: {verified} frames verified, a DMA error and a \
         rejected descriptor failed inside their batches, {} dropped",
        counters.dropped
    ));
    Ok(())
}

/// Two processes (here: two open files, which is what the driver sees) compete for one
/// card: the second is refused every streaming command but may read INFO and STATS.
pub fn competing_owners() -> TestResult {
    let mut streamer = Streamer::attach(CARD0, Layout::UNALIGNED)?;
    streamer.queue_all()?;
    ensure!(streamer.control(ops::START)? == 0, "START failed");
    streamer.run(50, Duration::from_secs(60))?;
    let output = std::process::Command::new("/bin/fgrab")
        .args(["capture", "--frames", "10"])
        .output()
        .map_err(|error| error.to_string())?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        !output.status.success() && stderr.contains("the card is busy"),
        "a second process captured from a busy card: {stderr}"
    );
    let mut other = TestUring::open(CARD0)?;
    let control = ControlCmd::new_zeroed();
    for (op, name) in [
        (ops::START, "START"),
        (ops::STOP, "STOP"),
        (ops::DETACH, "DETACH"),
    ] {
        let res = other.call(op, control.as_bytes(), None)?;
        ensure!(res == -libc::EBUSY, "{name} from another file: {res}");
    }
    ensure!(
        other.stats()?.state == STATE_STREAMING,
        "STATS from another file"
    );
    streamer.run(150, Duration::from_secs(60))?;
    streamer.stop()?;
    streamer.detach()
}

/// Both cards stream at once, each frame of each verified.
pub fn two_cards_at_once() -> TestResult {
    let mut first = Streamer::attach(CARD0, Layout::UNALIGNED)?;
    let mut second = Streamer::attach(CARD1, Layout::UNALIGNED)?;
    first.queue_all()?;
    second.queue_all()?;
    ensure!(first.control(ops::START)? == 0, "START card 0");
    ensure!(second.control(ops::START)? == 0, "START card 1");
    let deadline = Instant::now() + Duration::from_secs(120);
    while first.tally.verified < 1000 || second.tally.verified < 1000 {
        ensure!(
            Instant::now() < deadline,
            "too slow: {} / {}",
            first.tally.verified,
            second.tally.verified
        );
        for streamer in [&mut first, &mut second] {
            for completion in streamer.reap(Duration::from_millis(10))? {
                streamer.check(completion, true)?;
            }
            streamer.flush()?;
        }
    }
    let mut drops = Vec::new();
    for streamer in [&mut first, &mut second] {
        streamer.stop()?;
        streamer.check_guards()?;
        drops.push(streamer.reconcile_drops()?);
        streamer.detach()?;
    }
    harness::info(&format!(
        "two cards at once: {} + {} frames verified; card 0: {}; card 1: {}",
        first.tally.verified, second.tally.verified, drops[0], drops[1]
    ));
    Ok(())
}

/// The fixed buffer is unregistered and the memory unmapped while frames stream: the
/// attach command still holds the pages, frames keep coming (into pages no longer mapped
/// in the process), the region ends cleanly when detached.
pub fn unregister_midstream() -> TestResult {
    let mut streamer = Streamer::attach(CARD0, Layout::UNALIGNED)?;
    streamer.queue_all()?;
    ensure!(streamer.control(ops::START)? == 0, "START failed");
    streamer.run(50, Duration::from_secs(60))?;
    streamer.ring.unregister()?;
    streamer.unmap();
    // Frames still complete; their bytes are no longer visible here.
    let mut completed = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while completed < 100 {
        ensure!(Instant::now() < deadline, "frames stopped after unregister");
        for completion in streamer.reap(Duration::from_millis(100))? {
            ensure!(
                completion.res > 0,
                "frame failed after unregister: {completion:?}"
            );
            let index = (completion.user_data & 0xffff) as u32;
            streamer.queued[index as usize] = false;
            streamer.queue(index)?;
            completed += 1;
        }
        streamer.flush()?;
    }
    ensure!(streamer.control(ops::STOP)? == 0, "STOP failed");
    let res = streamer.control(ops::DETACH)?;
    ensure!(res == 0, "DETACH returned {res}");
    harness::info(&format!(
        "{completed} frames completed into pages unmapped from the process"
    ));
    Ok(())
}
