//! Streaming frames through the driver: every byte of every frame checked against the
//! card's test pattern, guard bytes around every frame, drops as sequence gaps, stop/start,
//! sysfs, the ioctl and read() paths, and each malformed frame command. The fixture they
//! share is `streamer.rs`.

use crate::ensure;
use crate::harness::{self, TestResult};
use crate::pattern;
use crate::streamer::{wait_idle, Layout, Streamer, CARD0};
use crate::uring::TestUring;
use fgrab_uapi::{
    ops, AttachCmd, ControlCmd, FrameMeta, QueueCmd, META_FLUSHED, META_FRAME, STATE_ATTACHED,
    STATE_IDLE, STATE_STREAMING,
};
use std::time::{Duration, Instant};
use zerocopy::{FromZeros, IntoBytes};

/// At least 10,000 frames through a buffer where nothing is page aligned: every byte
/// checked against the pattern, every guard byte checked, counters consistent.
pub fn stream_verify() -> TestResult {
    const FRAMES: u64 = 10_000;
    let mut streamer = Streamer::attach(CARD0, Layout::UNALIGNED)?;
    streamer.queue_all()?;
    let started = Instant::now();
    ensure!(streamer.control(ops::START)? == 0, "START failed");
    ensure!(
        streamer.stats()?.state == STATE_STREAMING,
        "not streaming after START"
    );
    streamer.run(FRAMES, Duration::from_secs(240))?;
    let elapsed = started.elapsed();
    streamer.stop()?;
    let stats = streamer.stats()?;
    streamer.check_guards()?;
    let tally = &streamer.tally;
    ensure!(
        stats.state == STATE_ATTACHED && stats.frames_queued == 0 && stats.frame_irqs > 0,
        "after STOP: {stats:?}"
    );
    ensure!(
        stats.frames_delivered == tally.verified && stats.frames_failed == 0,
        "driver counted {} delivered, {} failed; the test verified {}",
        stats.frames_delivered,
        stats.frames_failed,
        tally.verified
    );
    let (verified, bytes) = (tally.verified, tally.bytes);
    let drops = streamer.reconcile_drops()?;
    harness::info(&format!(
        "{verified} frames of {} B verified ({} MB) in {:.1} s; {drops}; descriptors per \
         frame at most {}",
        Layout::UNALIGNED.frame_bytes,
        bytes / 1_000_000,
        elapsed.as_secs_f64(),
        stats.descriptors_max_per_frame
    ));
    streamer.detach()?;
    ensure!(
        streamer.stats()?.state == STATE_IDLE,
        "region still attached"
    );
    Ok(())
}

/// With too few frames queued the card drops frames: the drops are counted and show as
/// gaps in the sequence numbers.
pub fn stream_underrun() -> TestResult {
    let layout = Layout {
        count: 2,
        ..Layout::UNALIGNED
    };
    let mut streamer = Streamer::attach(CARD0, layout)?;
    streamer.queue_all()?;
    ensure!(streamer.control(ops::START)? == 0, "START failed");
    // Hold each frame for a while before queueing it again: the card keeps starting frames.
    let deadline = Instant::now() + Duration::from_secs(60);
    while streamer.tally.verified < 20 {
        ensure!(Instant::now() < deadline, "too slow");
        for completion in streamer.reap(Duration::from_millis(500))? {
            std::thread::sleep(Duration::from_millis(5));
            streamer.check(completion, true)?;
        }
        streamer.flush()?;
    }
    streamer.stop()?;
    let drops = streamer.reconcile_drops()?;
    ensure!(
        drops.between > 0 && drops.underrun > 0,
        "frames were held but no underrun shows between frames: {drops}"
    );
    harness::info(&format!(
        "underrun: {} frames delivered; {drops}",
        streamer.tally.verified
    ));
    streamer.detach()
}

/// Stop and start again, three times: queued frames come back canceled at each stop, the
/// sequence restarts at each start, every frame is verified.
pub fn stream_stop_start() -> TestResult {
    let mut streamer = Streamer::attach(CARD0, Layout::UNALIGNED)?;
    for cycle in 0..3 {
        streamer.queue_all()?;
        ensure!(
            streamer.control(ops::START)? == 0,
            "START failed in cycle {cycle}"
        );
        let res = streamer.control(ops::START)?;
        ensure!(
            res == -libc::EALREADY,
            "second START: expected -EALREADY, got {res}"
        );
        let target = streamer.tally.verified + 200;
        streamer.run(target, Duration::from_secs(60))?;
        // Hand every frame to the card and stop at once: each comes back exactly once,
        // filled or canceled (`settle` checks both), and none stays queued.
        let before = (streamer.tally.verified, streamer.tally.canceled);
        let pending = streamer.queued.iter().filter(|&&queued| queued).count() as u64;
        for index in 0..Layout::UNALIGNED.count {
            if !streamer.queued[index as usize] {
                streamer.queue(index)?;
            }
        }
        streamer.stop()?;
        let returned = streamer.tally.verified - before.0 + streamer.tally.canceled - before.1;
        ensure!(
            returned >= u64::from(Layout::UNALIGNED.count) - pending
                && streamer.stats()?.frames_queued == 0,
            "cycle {cycle}: {returned} frames came back at STOP"
        );
        let drops = streamer.reconcile_drops()?;
        harness::info(&format!(
            "stop/start cycle {cycle}: STOP returned {} frames canceled, {} filled; {drops}",
            streamer.tally.canceled - before.1,
            streamer.tally.verified - before.0
        ));
        let res = streamer.control(ops::STOP)?;
        ensure!(
            res == -libc::EALREADY,
            "second STOP: expected -EALREADY, got {res}"
        );
        ensure!(streamer.stats()?.state == STATE_ATTACHED, "not stopped");
    }
    streamer.check_guards()?;
    streamer.detach()
}

/// Each malformed frame or control command gets its errno and changes nothing.
pub fn stream_rejects_malformed() -> TestResult {
    let control = ControlCmd::new_zeroed();
    // No region yet.
    let mut lone = TestUring::open(CARD0)?;
    for (op, name) in [(ops::START, "START"), (ops::STOP, "STOP")] {
        let res = lone.call(op, control.as_bytes(), None)?;
        ensure!(res == -libc::ENOENT, "{name} without region: {res}");
    }
    let res = lone.call(ops::QUEUE, QueueCmd::new_zeroed().as_bytes(), None)?;
    ensure!(res == -libc::ENOENT, "QUEUE without region: {res}");

    let mut streamer = Streamer::attach(CARD0, Layout::UNALIGNED)?;
    let count = Layout::UNALIGNED.count;
    let queue = |frame: u32| QueueCmd {
        frame,
        ..QueueCmd::new_zeroed()
    };
    let cases: Vec<(&str, QueueCmd, i32)> = vec![
        ("frame index out of range", queue(count), -libc::EINVAL),
        ("frame index u32::MAX", queue(u32::MAX), -libc::EINVAL),
        (
            "nonzero flags",
            QueueCmd {
                flags: 1,
                ..queue(0)
            },
            -libc::EINVAL,
        ),
        (
            "nonzero reserved",
            QueueCmd {
                reserved: [0, 0, 0, 0, 0, 0, 1],
                ..queue(0)
            },
            -libc::EINVAL,
        ),
    ];
    for (name, request, expected) in &cases {
        let res = streamer.ring.call(ops::QUEUE, request.as_bytes(), None)?;
        ensure!(
            res == *expected,
            "QUEUE with {name}: expected {expected}, got {res}"
        );
    }
    // Another file (another process would be the same) may not queue, start or stop.
    let res = lone.call(ops::QUEUE, queue(0).as_bytes(), None)?;
    ensure!(res == -libc::EBUSY, "QUEUE from another file: {res}");
    for (op, name) in [
        (ops::START, "START"),
        (ops::STOP, "STOP"),
        (ops::DETACH, "DETACH"),
    ] {
        let res = lone.call(op, control.as_bytes(), None)?;
        ensure!(res == -libc::EBUSY, "{name} from another file: {res}");
    }
    let bad_control = ControlCmd {
        reserved0: 1,
        ..ControlCmd::new_zeroed()
    };
    for (op, name) in [(ops::START, "START"), (ops::STOP, "STOP")] {
        let res = streamer.ring.call(op, bad_control.as_bytes(), None)?;
        ensure!(res == -libc::EINVAL, "{name} with nonzero reserved: {res}");
    }
    let res = streamer.ring.call(ops::STOP, control.as_bytes(), None)?;
    ensure!(res == -libc::EALREADY, "STOP while stopped: {res}");
    // The same frame twice: the second is refused while the first is queued.
    streamer.queue(3)?;
    streamer.flush()?;
    let res = streamer.ring.call(ops::QUEUE, queue(3).as_bytes(), None)?;
    ensure!(res == -libc::EALREADY, "frame queued twice: {res}");
    // A frame command from another ring of the same file would outlive that ring's exit.
    let mut sibling = streamer.ring.sibling()?;
    let res = sibling.call(ops::QUEUE, queue(5).as_bytes(), None)?;
    ensure!(
        res == -libc::EXDEV,
        "QUEUE from another ring of the owner's file: {res}"
    );
    drop(sibling);
    let stats = streamer.stats()?;
    ensure!(
        stats.state == STATE_ATTACHED && stats.frames_queued == 1,
        "state changed by rejected commands: {stats:?}"
    );
    // Nothing was disturbed: the stream works.
    streamer.queue_all()?;
    ensure!(streamer.control(ops::START)? == 0, "START failed");
    streamer.run(100, Duration::from_secs(60))?;
    streamer.stop()?;
    streamer.check_guards()?;
    streamer.detach()
}

/// Reads `/sys/class/misc/fgrab0/NAME`.
fn sysfs(name: &str) -> Result<String, String> {
    let path = format!("/sys/class/misc/fgrab0/{name}");
    std::fs::read_to_string(&path)
        .map(|text| text.trim().to_string())
        .map_err(|error| format!("{path}: {error}"))
}

/// The card's sysfs attributes show its identity and follow the stream.
pub fn stream_sysfs() -> TestResult {
    ensure!(
        sysfs("state")? == "idle",
        "state while idle: {}",
        sysfs("state")?
    );
    ensure!(
        sysfs("hw_version")? == "1.2",
        "hw_version: {}",
        sysfs("hw_version")?
    );
    ensure!(
        sysfs("card_index")? == "0",
        "card_index: {}",
        sysfs("card_index")?
    );
    let mut streamer = Streamer::attach(CARD0, Layout::UNALIGNED)?;
    ensure!(
        sysfs("state")? == "attached",
        "state after ATTACH: {}",
        sysfs("state")?
    );
    ensure!(
        sysfs("frame_bytes")? == Layout::UNALIGNED.frame_bytes.to_string()
            && sysfs("frame_count")? == Layout::UNALIGNED.count.to_string(),
        "geometry: {} x {}",
        sysfs("frame_count")?,
        sysfs("frame_bytes")?
    );
    streamer.queue_all()?;
    ensure!(streamer.control(ops::START)? == 0, "START failed");
    streamer.run(200, Duration::from_secs(60))?;
    ensure!(
        sysfs("state")? == "streaming",
        "state while streaming: {}",
        sysfs("state")?
    );
    streamer.stop()?;
    let delivered: u64 = sysfs("frames_delivered")?
        .parse()
        .map_err(|error| format!("frames_delivered: {error}"))?;
    ensure!(
        delivered == streamer.tally.verified,
        "sysfs frames_delivered {delivered}, verified {}",
        streamer.tally.verified
    );
    let bytes: u64 = sysfs("bytes_delivered")?
        .parse()
        .map_err(|error| format!("bytes_delivered: {error}"))?;
    ensure!(
        bytes == streamer.tally.bytes,
        "sysfs bytes_delivered {bytes}"
    );
    ensure!(sysfs("frames_queued")? == "0", "frames_queued after STOP");
    // The drop counters, in sysfs as in STATS and on the card.
    streamer.reconcile_drops()?;
    streamer.detach()?;
    ensure!(
        sysfs("state")? == "idle",
        "state after DETACH: {}",
        sysfs("state")?
    );
    Ok(())
}

/// `ioctl(QBUF)` of frame `index` on `fd`; the errno on failure.
pub(crate) fn qbuf(fd: std::os::fd::RawFd, index: u32) -> Result<(), i32> {
    // SAFETY: QBUF reads a `u32` from the pointer, which points to one.
    let res = unsafe { libc::ioctl(fd, fgrab_uapi::ioctls::QBUF as _, &index as *const u32) };
    if res == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}

/// `ioctl(DQBUF)` on `fd`: the metadata of the oldest completed frame, or the errno.
pub(crate) fn dqbuf(fd: std::os::fd::RawFd) -> Result<FrameMeta, i32> {
    let mut meta = FrameMeta::new_zeroed();
    // SAFETY: DQBUF writes a `FrameMeta` to the pointer, which points to one.
    let res = unsafe {
        libc::ioctl(
            fd,
            fgrab_uapi::ioctls::DQBUF as _,
            &mut meta as *mut FrameMeta,
        )
    };
    if res == 0 {
        Ok(meta)
    } else {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}

/// The per-frame blocking path: frames of an attached region queued with `ioctl(QBUF)`
/// and collected with `ioctl(DQBUF)`, verified like the io_uring ones.
pub fn stream_ioctl() -> TestResult {
    const FRAMES: u64 = 500;
    let mut streamer = Streamer::attach(CARD0, Layout::UNALIGNED)?;
    let fd = streamer.ring.fd();
    ensure!(dqbuf(fd) == Err(libc::EAGAIN), "DQBUF with nothing queued");
    let lone = TestUring::open(CARD0)?;
    ensure!(
        qbuf(lone.fd(), 0) == Err(libc::EBUSY),
        "QBUF from another file"
    );
    ensure!(
        qbuf(fd, Layout::UNALIGNED.count) == Err(libc::EINVAL),
        "QBUF out of range"
    );
    for index in 0..Layout::UNALIGNED.count {
        streamer.poison(index);
        qbuf(fd, index).map_err(|errno| format!("QBUF {index}: errno {errno}"))?;
    }
    ensure!(qbuf(fd, 0) == Err(libc::EALREADY), "QBUF twice");
    ensure!(streamer.control(ops::START)? == 0, "START failed");
    let mut last = None;
    let mut verified = 0;
    let started = Instant::now();
    while verified < FRAMES {
        let meta = dqbuf(fd).map_err(|errno| format!("DQBUF: errno {errno}"))?;
        ensure!(
            meta.flags == META_FRAME && meta.bytes == Layout::UNALIGNED.frame_bytes,
            "frame metadata {meta:?}"
        );
        if let Err(mismatch) = pattern::verify(streamer.frame(meta.frame), meta.sequence, 0) {
            return Err(format!(
                "frame {} (sequence {}): {mismatch}",
                meta.frame, meta.sequence
            ));
        }
        ensure!(
            last.is_none_or(|last| meta.sequence > last),
            "sequence went back"
        );
        last = Some(meta.sequence);
        verified += 1;
        streamer.poison(meta.frame);
        qbuf(fd, meta.frame).map_err(|errno| format!("QBUF: errno {errno}"))?;
    }
    let elapsed = started.elapsed();
    ensure!(streamer.control(ops::STOP)? == 0, "STOP failed");
    // Every frame comes back once: filled before the stop, or flushed.
    let mut returned = 0;
    while let Ok(meta) = dqbuf(fd) {
        ensure!(
            meta.flags == META_FRAME || meta.flags & META_FLUSHED != 0,
            "after STOP: {meta:?}"
        );
        returned += 1;
    }
    ensure!(
        returned == Layout::UNALIGNED.count,
        "{returned} frames came back after STOP"
    );
    streamer.check_guards()?;
    harness::info(&format!(
        "ioctl path: {verified} frames verified in {:.2} s (2 system calls per frame)",
        elapsed.as_secs_f64()
    ));
    streamer.detach()
}

/// Reads `frames` frames of `frame_bytes` with `read()` (the copy path) and verifies each
/// whole frame against the pattern, with rising sequence numbers.
pub fn read_verified_frames(
    file: &mut std::fs::File,
    frame_bytes: usize,
    frames: usize,
) -> TestResult {
    use std::io::Read;
    let mut buffer = vec![0u8; frame_bytes];
    let mut last: Option<u64> = None;
    for _ in 0..frames {
        let got = file
            .read(&mut buffer)
            .map_err(|error| format!("read: {error}"))?;
        ensure!(got == frame_bytes, "read returned {got} bytes");
        // read() carries no metadata: find the sequence number from the first bytes.
        let from = last.map_or(0, |last| last + 1);
        let sequence = pattern::identify(&buffer, 0, from..from + 2_000_000)
            .ok_or("a read frame matches no sequence number")?;
        pattern::verify(&buffer, sequence, 0)
            .map_err(|mismatch| format!("frame {sequence}: {mismatch}"))?;
        last = Some(sequence);
    }
    Ok(())
}

/// The copy path: `read()` on an idle card streams into driver-owned frames of the read
/// size; each read returns one whole frame, checked against the pattern; closing the file
/// ends the stream.
pub fn stream_read() -> TestResult {
    const FRAMES: usize = 300;
    let frame_bytes = Layout::UNALIGNED.frame_bytes as usize;
    let started = Instant::now();
    {
        let mut file = std::fs::File::open(CARD0).map_err(|error| error.to_string())?;
        read_verified_frames(&mut file, frame_bytes, FRAMES)?;
        let mut other = TestUring::open(CARD0)?;
        let stats = other.stats()?;
        ensure!(
            stats.state == STATE_STREAMING,
            "copy path not streaming: {stats:?}"
        );
        let res = other.call(ops::ATTACH, AttachCmd::new_zeroed().as_bytes(), Some(0))?;
        ensure!(
            res == -libc::EBUSY,
            "ATTACH from another file during copy mode: {res}"
        );
        let res = other.call(ops::DETACH, ControlCmd::new_zeroed().as_bytes(), None)?;
        ensure!(
            res == -libc::EBUSY,
            "DETACH from another file during copy mode: {res}"
        );
    }
    wait_idle(CARD0)?;
    harness::info(&format!(
        "copy path: {FRAMES} frames of {frame_bytes} B read and verified in {:.2} s",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// CPU time of this process so far: `(user, system)`.
pub fn cpu_time() -> (Duration, Duration) {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let time = |tv: libc::timeval| {
        Duration::from_secs(tv.tv_sec as u64) + Duration::from_micros(tv.tv_usec as u64)
    };
    (time(usage.ru_utime), time(usage.ru_stime))
}

/// Frame-interrupt moderation chosen at `START`: with frames at least 2 ms apart, the
/// driver handles at most one frame interrupt per 2 ms of streaming (the card's rule), while
/// many more frames complete; a delay beyond the ABI's maximum, or without its flag, is
/// refused and changes nothing.
pub fn stream_irq_moderation() -> TestResult {
    use fgrab::{Buffer, Card, Geometry, Options};
    const FRAME_BYTES: u32 = 4099;
    const FRAMES: u32 = 64;
    let mut lines = Vec::new();
    for delay_us in [0u32, 2000] {
        let geometry = Geometry::new(FRAME_BYTES, FRAMES).offset(7);
        let buffer = Buffer::allocate(7 + (FRAME_BYTES * FRAMES) as usize)
            .map_err(|error| error.to_string())?;
        let mut stream = Card::open(CARD0)
            .map_err(|error| error.to_string())?
            .attach_with(
                buffer,
                geometry,
                Options::default().irq_delay_us(Some(delay_us)),
            )
            .map_err(|error| error.to_string())?;
        let started = Instant::now();
        stream.start().map_err(|error| error.to_string())?;
        let mut frames = 0u64;
        while started.elapsed() < Duration::from_millis(500) {
            if let Some(frame) = stream
                .next_frame(Some(Duration::from_secs(5)))
                .map_err(|error| error.to_string())?
            {
                pattern::verify(&frame, frame.sequence(), 0)
                    .map_err(|mismatch| format!("frame {}: {mismatch}", frame.sequence()))?;
                frames += 1;
            }
        }
        stream.stop().map_err(|error| error.to_string())?;
        let stats = stream.stats().map_err(|error| error.to_string())?;
        let elapsed_us = started.elapsed().as_micros() as u64;
        ensure!(
            stats.frame_irqs > 0 && stats.frames_delivered >= frames,
            "delay {delay_us} us: {stats:?}"
        );
        if delay_us > 0 {
            let most = elapsed_us / u64::from(delay_us) + 2;
            ensure!(
                stats.frame_irqs <= most,
                "{} frame interrupts in {elapsed_us} us with {delay_us} us between them (at \
                 most {most})",
                stats.frame_irqs
            );
        }
        lines.push(format!(
            "delay {delay_us} us: {} frames completed by {} frame interrupts ({:.3} per frame)",
            stats.frames_delivered,
            stats.frame_irqs,
            stats.frame_irqs as f64 / stats.frames_delivered.max(1) as f64
        ));
        drop(stream);
    }
    // Refused: above the maximum, or a delay without its flag.
    let mut ring = TestUring::open(CARD0)?;
    let memory = crate::uring::Memory::new(1 << 20)?;
    // SAFETY: `memory` outlives the ring.
    unsafe { ring.register(&[&memory])? };
    let request = crate::uring::attach_request(memory.addr() + 3, FRAME_BYTES, 8192, 8);
    ring.submit(ops::ATTACH, request.as_bytes(), Some(0), 1)?;
    for (start, what) in [
        (
            fgrab_uapi::StartCmd {
                flags: fgrab_uapi::START_IRQ_DELAY,
                irq_delay_us: fgrab_uapi::MAX_IRQ_DELAY_US + 1,
                ..fgrab_uapi::StartCmd::new_zeroed()
            },
            "a delay above the maximum",
        ),
        (
            fgrab_uapi::StartCmd {
                irq_delay_us: 10,
                ..fgrab_uapi::StartCmd::new_zeroed()
            },
            "a delay without its flag",
        ),
        (
            fgrab_uapi::StartCmd {
                flags: 1 << 2,
                ..fgrab_uapi::StartCmd::new_zeroed()
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
    harness::info(&lines.join("; "));
    Ok(())
}
