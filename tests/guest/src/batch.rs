//! Batched recycling (`QUEUE_BATCH`, issue 15, `docs/abi.md`): one submission and one
//! completion for many frames, every frame still checked byte by byte with its guard bytes
//! from the metadata its batch wrote; refusals that change nothing; every teardown with
//! batches in flight (stop, detach, ring exit, process killed, unbind), each batch completed
//! exactly once.

use crate::ensure;
use crate::harness::{self, TestResult};
use crate::streamer::{
    drain_until_gone, pci_address, stream_briefly, wait_for_node, wait_idle, Layout, Streamer,
    ATTACH, CARD0, PCI_DRIVER,
};
use crate::uring::{attach_request, Memory, TestUring};
use fgrab::raw;
use fgrab_uapi::{
    ops, FrameMeta, QueueBatchCmd, Stats, MAX_BATCH_FRAMES, MAX_REGIONS, STATE_ATTACHED, STATE_IDLE,
};
use io_uring::squeue;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use zerocopy::{FromZeros, IntoBytes};

/// 64 small frames, nothing aligned, in batches of 8: 8 batches in flight.
const SMALL: Layout = Layout {
    frame_bytes: 4099,
    stride: 4099 + 61,
    count: 64,
    offset: 0x321,
};

/// Frames of 256 KiB and 3 bytes (the benchmark's size, not aligned), 32 of them in two
/// batches of 16: the target, a sixteenth of an SQE per frame.
const LARGE: Layout = Layout {
    frame_bytes: 256 * 1024 + 3,
    stride: 256 * 1024 + 3 + 61,
    count: 32,
    offset: 4096 + 0x321,
};

/// Streams `frames` frames on card 0 in batches of `batch`, stops, checks the guard bytes,
/// the drop accounting and the counters: every frame completed once, in one batch CQE per
/// `batch` frames, and no more SQEs and CQEs per frame than `1/batch` plus the handful of
/// control commands. Returns the summary line.
fn stream_batched(layout: Layout, batch: u32, frames: u64) -> Result<String, String> {
    let mut streamer = Streamer::attach(CARD0, layout)?.batched(batch);
    streamer.queue_all()?;
    ensure!(streamer.control(ops::START)? == 0, "START failed");
    streamer.run(frames, Duration::from_secs(300))?;
    streamer.stop()?;
    streamer.check_guards()?;
    let stats = streamer.stats()?;
    let tally = &streamer.tally;
    ensure!(
        stats.state == STATE_ATTACHED && stats.frames_queued == 0,
        "after STOP: {stats:?}"
    );
    ensure!(
        stats.frames_delivered == tally.verified && stats.frames_failed == 0,
        "driver counted {} delivered, {} failed; the test verified {}",
        stats.frames_delivered,
        stats.frames_failed,
        tally.verified
    );
    ensure!(
        stats.frames_completed == tally.verified + tally.canceled
            && streamer.batches * u64::from(batch) == stats.frames_completed,
        "frames_completed {} but the test reaped {} batches: {} filled, {} canceled frames",
        stats.frames_completed,
        streamer.batches,
        tally.verified,
        tally.canceled
    );
    // Since START: START, STOP, the STATS above and those of a stall report are the only
    // commands besides batches, each batch recycles `batch` completed frames, and every
    // batch (those queued before START too) completes with one CQE.
    const CONTROL: u64 = 16;
    let per_batch = stats.frames_completed / u64::from(batch);
    ensure!(
        stats.commands <= per_batch + CONTROL && stats.cqes <= per_batch + CONTROL,
        "{} SQEs and {} CQEs for {} frames in batches of {batch}",
        stats.commands,
        stats.cqes,
        stats.frames_completed
    );
    let drops = streamer.reconcile_drops()?;
    let per_frame = |n: u64| n as f64 / stats.frames_completed.max(1) as f64;
    let line = format!(
        "{} B frames in batches of {batch}: {} frames verified, {:.4} SQEs and {:.4} CQEs per \
         frame, {:.3} interrupts per frame; {drops}",
        layout.frame_bytes,
        streamer.tally.verified,
        per_frame(stats.commands),
        per_frame(stats.cqes),
        per_frame(stats.frame_irqs)
    );
    streamer.detach()?;
    ensure!(
        streamer.stats()?.state == STATE_IDLE,
        "region still attached"
    );
    Ok(line)
}

/// Thousands of small frames through 8 batches of 8, then 256 KiB frames through 2 batches
/// of 16 and a batch of the most frames one command takes.
pub fn batch_stream() -> TestResult {
    let mut lines = vec![stream_batched(SMALL, 8, 3000)?];
    lines.push(stream_batched(LARGE, 16, 300)?);
    let most = Layout {
        count: MAX_BATCH_FRAMES,
        ..SMALL
    };
    lines.push(stream_batched(most, MAX_BATCH_FRAMES, 640)?);
    harness::info(&lines.join("; "));
    Ok(())
}

/// Each malformed or conflicting `QUEUE_BATCH` gets its errno and queues nothing; a frame
/// of a batch in flight cannot be queued again, alone or by another batch.
pub fn batch_rejects() -> TestResult {
    const COUNT: u32 = 16;
    let mut ring = TestUring::open(CARD0)?;
    let memory = Memory::new(1 << 20)?;
    // SAFETY: `memory` outlives the ring (dropped after it, below).
    unsafe { ring.register(&[&memory])? };
    let request = attach_request(memory.addr() + 3, 4099, 8192, COUNT);
    ring.submit(ops::ATTACH, request.as_bytes(), Some(0), ATTACH)?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while ring.stats()?.state != STATE_ATTACHED {
        ensure!(Instant::now() < deadline, "the region did not appear");
        std::thread::sleep(Duration::from_millis(5));
    }
    let fd = ring.fd();
    let mut metas = vec![FrameMeta::new_zeroed(); COUNT as usize];
    // Frames 4..8 wait for START in a batch (and stay there while the refusals are tried).
    let entry = raw::QueueBatch::new(fd, 4, 4)
        .meta(metas.as_mut_ptr())
        .build()
        .user_data(0xba7c);
    ring.push_entry(entry)?;
    ring.flush()?;
    let payload = |cmd: QueueBatchCmd| {
        raw::Command::new(fd, ops::QUEUE_BATCH)
            .payload(cmd.as_bytes())
            .build()
    };
    let cases: Vec<(&str, squeue::Entry128, i32)> = vec![
        (
            "a region not attached",
            raw::QueueBatch::new(fd, 0, 2).region(5).build(),
            -libc::ENOENT,
        ),
        (
            "region MAX_REGIONS",
            raw::QueueBatch::new(fd, 0, 2).region(MAX_REGIONS).build(),
            -libc::EINVAL,
        ),
        (
            "no frame",
            payload(QueueBatchCmd {
                first: 0,
                count: 0,
                ..QueueBatchCmd::new_zeroed()
            }),
            -libc::EINVAL,
        ),
        (
            "more than MAX_BATCH_FRAMES",
            payload(QueueBatchCmd {
                first: 0,
                count: MAX_BATCH_FRAMES + 1,
                ..QueueBatchCmd::new_zeroed()
            }),
            -libc::EINVAL,
        ),
        (
            "frames beyond the region",
            raw::QueueBatch::new(fd, COUNT - 2, 3).build(),
            -libc::EINVAL,
        ),
        (
            "first + count overflowing",
            raw::QueueBatch::new(fd, u32::MAX, 2).build(),
            -libc::EINVAL,
        ),
        (
            "a non-zero flag",
            payload(QueueBatchCmd {
                count: 1,
                flags: 1,
                ..QueueBatchCmd::new_zeroed()
            }),
            -libc::EINVAL,
        ),
        (
            "a non-zero reserved field",
            payload(QueueBatchCmd {
                count: 1,
                reserved: [0, 0, 0, 0, 0, 0, 1],
                ..QueueBatchCmd::new_zeroed()
            }),
            -libc::EINVAL,
        ),
        (
            "a batch overlapping one in flight",
            raw::QueueBatch::new(fd, 0, 5).build(),
            -libc::EALREADY,
        ),
        (
            "QUEUE of a frame of a batch in flight",
            raw::Queue::new(fd, 7).build(),
            -libc::EALREADY,
        ),
    ];
    for (what, command, expected) in cases {
        let res = ring.call_entry(command)?;
        ensure!(
            res == expected,
            "QUEUE_BATCH with {what}: expected {expected}, got {res}"
        );
    }
    // A frame queued alone cannot join a batch.
    let mut single = FrameMeta::new_zeroed();
    ring.push_entry(
        raw::Queue::new(fd, 10)
            .meta(&mut single)
            .build()
            .user_data(0x5157),
    )?;
    ring.flush()?;
    let res = ring.call_entry(raw::QueueBatch::new(fd, 8, 4).build())?;
    ensure!(res == -libc::EALREADY, "a batch over a queued frame: {res}");
    // Another file owns nothing of this stream.
    let mut other = TestUring::open(CARD0)?;
    let res = other.call_entry(raw::QueueBatch::new(other.fd(), 0, 2).build())?;
    ensure!(res == -libc::EBUSY, "another file's batch: {res}");
    // Another ring of the same file cannot queue: its exit would not end the region.
    let mut sibling = ring.sibling()?;
    let res = sibling.call_entry(raw::QueueBatch::new(sibling.fd(), 0, 2).build())?;
    ensure!(res == -libc::EXDEV, "a batch from another ring: {res}");
    drop(sibling);
    let stats: Stats = ring.stats()?;
    ensure!(
        stats.state == STATE_ATTACHED && stats.frames_queued == 5,
        "the refusals disturbed the stream (4 frames of a batch and 1 alone queued): {stats:?}"
    );
    // STOP on a stream not started is refused; DETACH gives both back: the batch completes
    // once with -ECANCELED, each of its frames flagged, before the attach command.
    const DETACH: u64 = 0xde7a;
    ring.push_entry(raw::Detach::new(fd).build().user_data(DETACH))?;
    ring.flush()?;
    let mut completions = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while completions.len() < 4 {
        ensure!(
            Instant::now() < deadline,
            "after DETACH only {completions:?}"
        );
        completions.extend(ring.reap(1, Duration::from_millis(200))?);
    }
    ensure!(
        completions
            .iter()
            .any(|c| c.user_data == DETACH && c.res == 0),
        "DETACH: {completions:?}"
    );
    ensure!(
        completions
            .iter()
            .any(|c| c.user_data == 0x5157 && c.res == -libc::ECANCELED),
        "the frame queued alone after DETACH: {completions:?}"
    );
    let batch = completions.iter().find(|c| c.user_data == 0xba7c);
    ensure!(
        batch.is_some_and(|c| c.res == -libc::ECANCELED && c.extra == u64::MAX),
        "batch after DETACH: {completions:?}"
    );
    // One record per frame of the batch, from the start of the array.
    for (position, meta) in metas.iter().enumerate() {
        let index = 4 + position as u32;
        if position < 4 {
            ensure!(
                meta.frame == index
                    && meta.flags == fgrab_uapi::META_FLUSHED
                    && meta.sequence == u64::MAX,
                "frame {index} of the canceled batch: {meta:?}"
            );
        } else {
            ensure!(
                *meta == FrameMeta::new_zeroed(),
                "record {position} beyond the batch of 4 written: {meta:?}"
            );
        }
    }
    ensure!(
        completions.len() == 4
            && completions
                .last()
                .is_some_and(|c| c.user_data == ATTACH && c.res == 0),
        "DETACH with a batch in flight: {completions:?}"
    );
    drop(ring);
    drop(memory);
    Ok(())
}

/// `STOP` with batches in flight gives every frame back, each batch completing once (frames
/// filled meanwhile counted, the others flagged); the stream starts again and streams on
/// through batches; `DETACH` with batches in flight ends the region after them.
pub fn batch_stop_detach() -> TestResult {
    // Frames of 64 KiB: the card is still filling some when STOP comes.
    let mut streamer = Streamer::attach(CARD0, Layout::UNALIGNED)?.batched(4);
    streamer.queue_all()?;
    for round in 0..3 {
        ensure!(streamer.control(ops::START)? == 0, "START {round} failed");
        let target = streamer.tally.verified + 100;
        streamer.run(target, Duration::from_secs(120))?;
        streamer.stop()?;
        streamer.reconcile_drops()?;
        streamer.queue_all()?;
    }
    ensure!(streamer.control(ops::START)? == 0, "START failed");
    streamer.run(streamer.tally.verified + 100, Duration::from_secs(120))?;
    // Batches in flight on the card: DETACH takes them back.
    streamer.detach()?;
    streamer.check_guards()?;
    let mut lines = vec![format!(
        "3 stops and a detach with batches in flight: {} frames verified, {} canceled, {} \
         batch completions",
        streamer.tally.verified, streamer.tally.canceled, streamer.batches
    )];
    drop(streamer);

    // Frames of 1 MiB (a period of about a millisecond) and STOP right after START: frames
    // still on the card come back flagged inside their batches, beside those filled before
    // (how many of each depends on timing; both are checked).
    let big = Layout {
        frame_bytes: (1 << 20) + 3,
        stride: (1 << 20) + 3 + 61,
        count: 8,
        offset: 0x321,
    };
    let mut streamer = Streamer::attach(CARD0, big)?.batched(4);
    for round in 0..5 {
        streamer.queue_all()?;
        ensure!(streamer.control(ops::START)? == 0, "START {round} failed");
        streamer.stop()?;
        streamer.reconcile_drops()?;
    }
    streamer.check_guards()?;
    lines.push(format!(
        "5 stops at once after START, 1 MiB frames in batches of 4: {} frames verified, {} \
         canceled, {} batch completions",
        streamer.tally.verified, streamer.tally.canceled, streamer.batches
    ));
    streamer.detach()?;
    harness::info(&lines.join("; "));
    Ok(())
}

/// Helper process: streams through batches, says so, and streams on until killed or until
/// its ring exits (`exit`).
pub fn batch_child(path: &str, exit: bool) -> ! {
    let result = (|| -> TestResult {
        let mut streamer = Streamer::attach(path, SMALL)?.batched(8);
        streamer.queue_all()?;
        ensure!(streamer.control(ops::START)? == 0, "START failed");
        streamer.run(100, Duration::from_secs(60))?;
        println!("streaming");
        if exit {
            streamer.run(300, Duration::from_secs(60))?;
            // Leave without STOP or DETACH: the ring's exit cancels the attach command.
            std::process::exit(0);
        }
        streamer.run(u64::MAX, Duration::from_secs(3600))
    })();
    println!("error: {}", result.err().unwrap_or_default());
    std::process::exit(1)
}

/// Runs [`batch_child`] and returns it once it streams.
fn spawn_child(exit: bool) -> Result<std::process::Child, String> {
    let mut child = Command::new("/bin/fgrab-guest")
        .args(["batch-child", CARD0, if exit { "exit" } else { "wait" }])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|error| format!("spawning the streaming process: {error}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|error| error.to_string())?;
    ensure!(line.trim() == "streaming", "child said `{}`", line.trim());
    Ok(child)
}

/// The ring exits with batches in flight (the process returns without stopping), then a
/// process streaming through batches is killed: each time the region ends, nothing leaks
/// (kmemleak, DMA-API debugging), and the card streams again.
pub fn batch_ring_exit_killed() -> TestResult {
    let mut child = spawn_child(true)?;
    let status = child.wait().map_err(|error| error.to_string())?;
    ensure!(status.success(), "streaming process failed: {status}");
    wait_idle(CARD0)?;
    let mut child = spawn_child(false)?;
    let _ = child.kill();
    let _ = child.wait();
    wait_idle(CARD0)?;
    stream_briefly(CARD0, 100).map(|_| ())
}

/// The card is unbound with batches in flight: every batch completes once (with
/// `-ENODEV`, its frames flagged, or with the frames filled before), the attach command
/// with `-ENODEV`; after a rebind the card streams again.
pub fn batch_unbind() -> TestResult {
    let device = pci_address(0)?;
    {
        let mut streamer = Streamer::attach(CARD0, SMALL)?.batched(8);
        streamer.queue_all()?;
        ensure!(streamer.control(ops::START)? == 0, "START failed");
        streamer.run(200, Duration::from_secs(60))?;
        std::fs::write(format!("{PCI_DRIVER}/unbind"), &device)
            .map_err(|error| format!("unbind {device}: {error}"))?;
        let res = drain_until_gone(&mut streamer, Duration::from_secs(10))?;
        ensure!(res == -libc::ENODEV, "attach ended with {res}");
        streamer.check_guards()?;
    }
    std::fs::write(format!("{PCI_DRIVER}/bind"), &device)
        .map_err(|error| format!("bind {device}: {error}"))?;
    wait_for_node(CARD0, true, Duration::from_secs(10))?;
    stream_briefly(CARD0, 100).map(|_| ())
}
