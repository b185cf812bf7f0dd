//! Frame interrupts moderated by count (`START_IRQ_FRAMES`, `docs/abi.md`): one interrupt
//! per batch of frames, no frame lost or left waiting for a count that cannot be reached,
//! every byte and guard byte checked; the `STATS` counters of commands and completions the
//! benchmark divides by frames; a card that ignores its moderation registers.

use crate::ensure;
use crate::harness::{self, TestResult};
use crate::streamer::{wait_idle, Layout, Streamer, CARD0};
use crate::uring::TestUring;
use fgrab_uapi::{
    ops, StartCmd, Stats, MAX_IRQ_DELAY_US, MAX_IRQ_FRAMES, START_IRQ_DELAY, START_IRQ_FRAMES,
    STATE_ATTACHED,
};
use std::time::{Duration, Instant};
use zerocopy::{FromZeros, IntoBytes};

/// 64 small frames, nothing aligned: a batch of 16 leaves 48 queued on the card.
const LAYOUT: Layout = Layout {
    frame_bytes: 4099,
    stride: 4099 + 61,
    count: 64,
    offset: 0x321,
};

/// `START` payload asking for one interrupt per `frames` frames, none later than `us`
/// after the first frame it covers.
fn start_cmd(frames: u32, us: u32) -> StartCmd {
    StartCmd {
        flags: START_IRQ_DELAY | START_IRQ_FRAMES,
        irq_delay_us: us,
        irq_frames: frames,
        ..StartCmd::new_zeroed()
    }
}

/// Streams `frames` frames on `path` with `start`, stops, checks every guard byte; returns
/// the stream's counters and how long it streamed.
fn stream(
    path: &str,
    layout: Layout,
    start: &StartCmd,
    frames: u64,
) -> Result<(Streamer, Stats, Duration), String> {
    let mut streamer = Streamer::attach(path, layout)?;
    streamer.queue_all()?;
    let started = Instant::now();
    let res = streamer.control_with(ops::START, start.as_bytes())?;
    ensure!(res == 0, "START with {start:?}: {res}");
    streamer.run(frames, Duration::from_secs(240))?;
    let elapsed = started.elapsed();
    streamer.stop()?;
    streamer.check_guards()?;
    let stats = streamer.stats()?;
    ensure!(
        stats.state == STATE_ATTACHED && stats.frames_queued == 0,
        "after STOP: {stats:?}"
    );
    ensure!(
        stats.frames_delivered == streamer.tally.verified && stats.frames_failed == 0,
        "driver counted {} delivered, {} failed; the test verified {}",
        stats.frames_delivered,
        stats.frames_failed,
        streamer.tally.verified
    );
    Ok((streamer, stats, elapsed))
}

/// One interrupt per 16 frames: the card sends at most one message per 16 records plus one
/// per expired time bound (at most one per 100 ms of streaming), so the driver handles no
/// more interrupts than that; every frame arrives and is checked byte by byte. The counters
/// agree with what the test submitted and reaped. A count the queue cannot reach (8 frames
/// queued, a count of 16) still delivers every frame, by the time bound's interrupts. Bad
/// requests are refused and change nothing.
pub fn stream_irq_frames() -> TestResult {
    const FRAMES: u64 = 3000;
    const COUNT: u32 = 16;
    let (streamer, stats, elapsed) =
        stream(CARD0, LAYOUT, &start_cmd(COUNT, MAX_IRQ_DELAY_US), FRAMES)?;
    let bound_expiries = elapsed.as_millis() as u64 / u64::from(MAX_IRQ_DELAY_US / 1000) + 1;
    let most = stats.frames_completed / u64::from(COUNT) + bound_expiries + 2;
    ensure!(
        stats.frame_irqs > 0 && stats.frame_irqs <= most,
        "{} frame interrupts for {} frames in {elapsed:?} (at most {most})",
        stats.frame_irqs,
        stats.frames_completed
    );
    // Every frame command completes once, with a CQE; every SQE since START is START,
    // STATS, STOP or a QUEUE of a frame completed since (the first 64 were queued before).
    let tally = &streamer.tally;
    ensure!(
        stats.frames_completed == tally.verified + tally.canceled,
        "frames_completed {} but the test reaped {} filled and {} canceled",
        stats.frames_completed,
        tally.verified,
        tally.canceled
    );
    ensure!(
        stats.cqes >= stats.frames_completed
            && stats.cqes <= stats.commands + u64::from(LAYOUT.count)
            && stats.commands + u64::from(LAYOUT.count) >= stats.frames_completed,
        "counters disagree: {stats:?}"
    );
    let per_frame = |n: u64| n as f64 / stats.frames_completed.max(1) as f64;
    let mut lines = vec![format!(
        "count {COUNT}: {} frames, {:.3} interrupts, {:.3} SQEs, {:.3} CQEs per frame",
        stats.frames_completed,
        per_frame(stats.frame_irqs),
        per_frame(stats.commands),
        per_frame(stats.cqes)
    )];
    // Dropping the ring cancels the attach command; the watchdog ends the region shortly
    // after. The next stream's ATTACH would find it still there (EBUSY) under load.
    drop(streamer);
    wait_idle(CARD0)?;

    // Fewer frames queued than the count: only the time bound (20 ms) sends interrupts.
    let few = Layout { count: 8, ..LAYOUT };
    let (streamer, stats, elapsed) = stream(CARD0, few, &start_cmd(COUNT, 20_000), 200)?;
    ensure!(
        stats.frame_irqs > 0,
        "no frame interrupt with a count above the frames queued: {stats:?}"
    );
    lines.push(format!(
        "8 frames queued, count {COUNT}: {} frames in {elapsed:?} by {} interrupts",
        streamer.tally.verified, stats.frame_irqs
    ));
    drop(streamer);
    wait_idle(CARD0)?;

    rejects()?;
    harness::info(&lines.join("; "));
    Ok(())
}

/// Each malformed moderation request is `-EINVAL` and leaves the stream attached, stopped.
fn rejects() -> TestResult {
    let mut ring = TestUring::open(CARD0)?;
    let memory = crate::uring::Memory::new(1 << 20)?;
    // SAFETY: `memory` outlives the ring.
    unsafe { ring.register(&[&memory])? };
    let request = crate::uring::attach_request(memory.addr() + 3, 4099, 8192, 8);
    ring.submit(ops::ATTACH, request.as_bytes(), Some(0), 1)?;
    let frames_only = StartCmd {
        flags: START_IRQ_FRAMES,
        irq_frames: 4,
        ..StartCmd::new_zeroed()
    };
    for (start, what) in [
        (
            start_cmd(MAX_IRQ_FRAMES + 1, 1000),
            "a count above the maximum",
        ),
        (
            StartCmd {
                irq_frames: 4,
                ..StartCmd::new_zeroed()
            },
            "a count without its flag",
        ),
        (start_cmd(4, 0), "a count with a zero time bound"),
        (start_cmd(0, 0), "the driver's count with a zero time bound"),
        (
            StartCmd {
                reserved0: 1,
                ..frames_only
            },
            "a non-zero reserved field",
        ),
        (
            StartCmd {
                flags: 1 << 2,
                ..StartCmd::new_zeroed()
            },
            "an unknown flag",
        ),
    ] {
        let res = ring.call(ops::START, start.as_bytes(), None)?;
        ensure!(res == -libc::EINVAL, "START with {what}: {res}");
    }
    let stats = ring.stats()?;
    ensure!(
        stats.state == STATE_ATTACHED,
        "a refused START changed the stream: {stats:?}"
    );
    // The ring's exit ends the region (before `memory` goes).
    drop(ring);
    drop(memory);
    Ok(())
}

/// The hostile suite's card that announces moderation by count and ignores it (one message
/// per record, `hostile-moderation`): the driver completes every frame all the same. The
/// card is known by its interrupts: more than a card obeying a count of 16 could send
/// (the bound of `stream-irq-frames`), so the test also fails if `/dev/fgrab5` is not the
/// hostile card.
pub fn hostile_moderation() -> TestResult {
    const COUNT: u32 = 16;
    let (streamer, stats, elapsed) = stream(
        "/dev/fgrab5",
        LAYOUT,
        &start_cmd(COUNT, MAX_IRQ_DELAY_US),
        1000,
    )?;
    let bound_expiries = elapsed.as_millis() as u64 / u64::from(MAX_IRQ_DELAY_US / 1000) + 1;
    let obeying = stats.frames_completed / u64::from(COUNT) + bound_expiries + 2;
    ensure!(
        stats.frame_irqs > obeying,
        "{} frame interrupts for {} frames in {elapsed:?}: a card obeying a count of {COUNT} \
         sends at most {obeying}; is /dev/fgrab5 the hostile card?",
        stats.frame_irqs,
        stats.frames_completed
    );
    harness::info(&format!(
        "a card ignoring moderation: {} frames verified, {} frame interrupts handled (an \
         obeying card: at most {obeying})",
        streamer.tally.verified, stats.frame_irqs
    ));
    Ok(())
}
