//! Streaming frames through the driver: every byte of every frame checked against the
//! card's test pattern, guard bytes around every frame, drops as sequence gaps, stop/start,
//! every teardown trigger in the middle of a stream, and each malformed frame command.

use crate::ensure;
use crate::harness::{self, TestResult};
use crate::pattern;
use crate::ring::{attach_request, Completion, Memory, TestRing};
use fgrab_uapi::{
    ops, AttachCmd, ControlCmd, FrameMeta, QueueCmd, Stats, META_FLUSHED, META_FRAME,
    STATE_ATTACHED, STATE_IDLE, STATE_STREAMING,
};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use zerocopy::{FromZeros, IntoBytes};

const CARD0: &str = "/dev/fgrab0";
const PCI_DRIVER: &str = "/sys/bus/pci/drivers/fgrab";
const ATTACH: u64 = 0xa77a;
const CONTROL: u64 = 0xc0;
/// `user_data` of frame `i`'s command is `FRAME | i`.
const FRAME: u64 = 0xf_0000;
/// Byte the test writes around and between frames; the card must never touch it.
const GUARD: u8 = 0x5a;
/// Byte the test writes into a frame before queueing it again: a frame the card did not
/// write cannot pass the pattern check by holding an older frame.
const POISON: u8 = 0xee;
const MIB: usize = 1 << 20;

/// Frame layout of a stream under test.
#[derive(Clone, Copy)]
pub struct Layout {
    /// Bytes per frame.
    pub frame_bytes: u32,
    /// Bytes between frame starts (the rest of a stride is guard bytes).
    pub stride: u64,
    /// Frames in the region.
    pub count: u32,
    /// Region offset in the buffer (guard bytes before it).
    pub offset: usize,
}

impl Layout {
    /// Frames of an odd size, an odd guard gap between them, the region at an odd offset:
    /// nothing page aligned.
    pub const UNALIGNED: Layout = Layout {
        frame_bytes: 65_543,
        stride: 65_543 + 61,
        count: 16,
        offset: 3 * 4096 + 0x321,
    };

    fn region_len(&self) -> usize {
        // CAST: test layouts are small.
        (self.stride * u64::from(self.count - 1)) as usize + self.frame_bytes as usize
    }

    fn frame_range(&self, index: u32) -> std::ops::Range<usize> {
        // CAST: test layouts are small.
        let start = self.offset + (self.stride * u64::from(index)) as usize;
        start..start + self.frame_bytes as usize
    }
}

/// What a finished stream saw.
#[derive(Default, Debug)]
pub struct Tally {
    /// Frames whose every byte matched the pattern.
    pub verified: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Frames given back unfilled (stop, teardown).
    pub canceled: u64,
    /// Sequence numbers skipped between consecutive delivered frames, over every stream.
    pub gaps: u64,
    /// Sequence numbers of the current stream (since its last successful `START`).
    pub stream: Sequences,
}

/// The sequence numbers one stream (`START` to `STOP`) put on completions.
#[derive(Clone, Copy, Default, Debug)]
pub struct Sequences {
    /// The lowest one.
    pub first: Option<u64>,
    /// The highest one.
    pub last: Option<u64>,
    /// Completions that carried one: frames delivered, and frames `STOP` aborted while the
    /// card wrote them (`-ECANCELED` with a sequence number). Each used a number without
    /// being a drop.
    pub carried: u64,
    /// Frames delivered.
    pub delivered: u64,
    /// Numbers skipped between consecutive ones.
    pub gaps: u64,
}

/// A stopped stream's dropped frames, by the card's counters and by where they fall among
/// the sequence numbers the stream saw.
#[derive(Clone, Copy, Debug)]
pub struct Drops {
    /// `STATS` `frames_dropped_underrun`.
    pub underrun: u64,
    /// `STATS` `frames_dropped_other` (late, completions held back).
    pub other: u64,
    /// Sequence numbers the card used in all: its `NEXT_SEQUENCE` after the stop.
    pub sequences: u64,
    /// Numbers before the first one the stream saw (all of them if it saw none).
    pub before_first: u64,
    /// Numbers skipped between seen ones.
    pub between: u64,
    /// Numbers after the last one seen: frames started after it until the card stopped.
    pub after_last: u64,
}

impl Drops {
    /// Every drop.
    pub fn total(&self) -> u64 {
        self.underrun + self.other
    }
}

impl std::fmt::Display for Drops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} dropped ({} underrun, {} other) of {} sequence numbers: {} before the first \
             frame, {} between frames, {} after the last",
            self.total(),
            self.underrun,
            self.other,
            self.sequences,
            self.before_first,
            self.between,
            self.after_last
        )
    }
}

/// A region of a registered buffer attached to a card, with its frames' metadata.
pub struct Streamer {
    /// The card's name (`fgrabN`).
    card: String,
    /// The ring that attached the region; frame commands go through it.
    pub ring: TestRing,
    /// A second file on the card, for `STATS` while frames complete on `ring`.
    observer: TestRing,
    memory: Memory,
    layout: Layout,
    pub(crate) metas: Box<[FrameMeta]>,
    pub(crate) queued: Vec<bool>,
    /// Completions reaped but not handled yet (those after a control command's own).
    backlog: Vec<Completion>,
    /// Frames that complete while a control command is answered are queued again (between
    /// `START` and `STOP`).
    requeue: bool,
    /// Totals so far.
    pub tally: Tally,
}

impl Streamer {
    /// Maps a buffer for `layout` with guard bytes everywhere, registers it and attaches the
    /// region.
    pub fn attach(path: &str, layout: Layout) -> Result<Self, String> {
        let len = (layout.offset + layout.region_len() + 4096).next_multiple_of(2 * MIB);
        let memory = Memory::new(len)?;
        // SAFETY: the mapping is `len` bytes, writable, owned by `memory`.
        unsafe { std::ptr::write_bytes(memory.addr() as *mut u8, GUARD, len) };
        let mut ring = TestRing::open(path)?;
        // SAFETY: `memory` outlives the ring: field order of `Streamer` drops the ring first.
        unsafe { ring.register(&[&memory])? };
        let card = std::path::Path::new(path)
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut streamer = Self {
            card,
            ring,
            observer: TestRing::open(path)?,
            memory,
            layout,
            metas: vec![FrameMeta::new_zeroed(); layout.count as usize].into_boxed_slice(),
            queued: vec![false; layout.count as usize],
            backlog: Vec::new(),
            requeue: false,
            tally: Tally::default(),
        };
        let request = streamer.request();
        streamer
            .ring
            .submit(ops::ATTACH, request.as_bytes(), Some(0), ATTACH)?;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let early = streamer.ring.pending_completions();
            ensure!(early.is_empty(), "attach completed at once: {early:?}");
            if streamer.stats()?.state == STATE_ATTACHED {
                return Ok(streamer);
            }
            ensure!(
                Instant::now() < deadline,
                "the region did not appear in 5 s"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The attach request for this stream's region.
    pub fn request(&self) -> AttachCmd {
        attach_request(
            self.memory.addr() + self.layout.offset as u64,
            self.layout.frame_bytes,
            self.layout.stride,
            self.layout.count,
        )
    }

    /// `STATS` from another file on the card.
    pub fn stats(&mut self) -> Result<Stats, String> {
        self.observer.stats()
    }

    pub(crate) fn frame(&self, index: u32) -> &[u8] {
        let range = self.layout.frame_range(index);
        // SAFETY: the range is inside the mapping; the card does not write frame `index`
        // while it is not queued, which is when this is called.
        unsafe {
            std::slice::from_raw_parts(
                (self.memory.addr() as *const u8).add(range.start),
                range.len(),
            )
        }
    }

    /// Writes `byte(offset)` into every byte of frame `index` (which must not be queued):
    /// what an application processing a frame in place does.
    pub(crate) fn write_frame(&mut self, index: u32, byte: impl Fn(usize) -> u8) {
        let range = self.layout.frame_range(index);
        // SAFETY: as in `frame`; nothing else borrows the memory.
        let frame = unsafe {
            std::slice::from_raw_parts_mut(
                (self.memory.addr() as *mut u8).add(range.start),
                range.len(),
            )
        };
        for (offset, slot) in frame.iter_mut().enumerate() {
            *slot = byte(offset);
        }
    }

    /// Closes the ring that attached the region without `STOP` or `DETACH` (a new ring on a
    /// new file takes its place): io_uring's ring exit cancels the attach command. The
    /// buffer stays mapped in this process.
    pub fn exit_ring(&mut self, path: &str) -> TestResult {
        let old = std::mem::replace(&mut self.ring, TestRing::open(path)?);
        drop(old);
        self.queued.iter_mut().for_each(|queued| *queued = false);
        Ok(())
    }

    /// Unmaps the buffer from this process (see `faults::unregister_midstream`).
    pub fn unmap(&mut self) {
        self.memory.unmap();
    }

    pub(crate) fn poison(&mut self, index: u32) {
        if !self.memory.is_mapped() {
            return;
        }
        let range = self.layout.frame_range(index);
        // SAFETY: as in `frame`; nothing else borrows the memory.
        unsafe {
            std::ptr::write_bytes(
                (self.memory.addr() as *mut u8).add(range.start),
                POISON,
                range.len(),
            )
        };
    }

    /// Queues frame `index` (without entering the kernel: see [`Self::flush`]).
    pub fn queue(&mut self, index: u32) -> TestResult {
        self.poison(index);
        let request = QueueCmd {
            frame: index,
            meta_addr: &self.metas[index as usize] as *const FrameMeta as u64,
            ..QueueCmd::new_zeroed()
        };
        self.ring.push(
            ops::QUEUE,
            request.as_bytes(),
            None,
            FRAME | u64::from(index),
        )?;
        self.queued[index as usize] = true;
        Ok(())
    }

    /// Queues every frame that is not queued.
    pub fn queue_all(&mut self) -> TestResult {
        for index in 0..self.layout.count {
            if !self.queued[index as usize] {
                self.queue(index)?;
            }
        }
        self.flush()
    }

    /// Submits queued commands.
    pub fn flush(&mut self) -> TestResult {
        self.ring.flush()
    }

    /// Completions: the backlog first, else what arrives within `timeout`.
    pub(crate) fn reap(&mut self, timeout: Duration) -> Result<Vec<Completion>, String> {
        if !self.backlog.is_empty() {
            return Ok(std::mem::take(&mut self.backlog));
        }
        self.ring.reap(1, timeout)
    }

    /// Sends a control command (`START`, `STOP`, `DETACH`) and returns its result; frame
    /// completions arriving meanwhile are checked (and queued again after a `START`).
    pub fn control(&mut self, op: u32) -> Result<i32, String> {
        if op == ops::START {
            self.requeue = true;
        } else if op == ops::STOP || op == ops::DETACH {
            self.requeue = false;
        }
        self.ring
            .submit(op, ControlCmd::new_zeroed().as_bytes(), None, CONTROL)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            ensure!(
                Instant::now() < deadline,
                "no completion for control {op:#x}"
            );
            let mut completions = self.reap(Duration::from_millis(200))?.into_iter();
            while let Some(completion) = completions.next() {
                if completion.user_data == CONTROL {
                    if op == ops::START && completion.res == 0 {
                        // Sequence numbers restart at every start. A stopped card completes
                        // no frame with a sequence number, so none of the new stream's came
                        // before this completion.
                        self.tally.stream = Sequences::default();
                    }
                    self.backlog.extend(completions);
                    return Ok(completion.res);
                }
                self.check(completion, self.requeue)?;
            }
        }
    }

    /// Checks one completion: a filled frame matches the pattern for its sequence number,
    /// its metadata agrees with the CQE, the guard bytes after it are intact; a canceled one
    /// says so. The frame is queued again if `requeue`.
    pub fn check(&mut self, completion: Completion, requeue: bool) -> TestResult {
        if completion.user_data == ATTACH {
            return Err(format!("attach completed early with {}", completion.res));
        }
        ensure!(
            completion.user_data & !0xffff == FRAME,
            "unexpected completion {completion:?}"
        );
        // CAST: masked to 16 bits.
        let index = (completion.user_data & 0xffff) as u32;
        ensure!(index < self.layout.count, "completion for frame {index}");
        ensure!(self.queued[index as usize], "frame {index} completed twice");
        self.queued[index as usize] = false;
        let meta = self.metas[index as usize];
        ensure!(
            meta.frame == index,
            "frame {index}: metadata names frame {}",
            meta.frame
        );
        ensure!(
            meta.reserved == 0,
            "frame {index}: reserved metadata {meta:?}"
        );
        if completion.res < 0 {
            ensure!(
                completion.res == -libc::ECANCELED && meta.flags & META_FLUSHED != 0,
                "frame {index} failed: res {}, metadata {meta:?}",
                completion.res
            );
            if completion.extra != u64::MAX {
                // Aborted while the card wrote it: it used a sequence number.
                ensure!(
                    meta.flags & META_FRAME != 0 && meta.sequence == completion.extra,
                    "frame {index} canceled with sequence {}, metadata {meta:?}",
                    completion.extra
                );
                self.saw_sequence(completion.extra, false)?;
            }
            self.tally.canceled += 1;
            return Ok(());
        }
        let sequence = completion.extra;
        ensure!(
            completion.res == self.layout.frame_bytes as i32
                && meta.bytes == self.layout.frame_bytes
                && meta.sequence == sequence
                && meta.flags == META_FRAME
                && meta.timestamp_ns != 0,
            "frame {index}: res {} sequence {sequence}, metadata {meta:?}",
            completion.res
        );
        if !self.memory.is_mapped() {
            // The buffer left this process (see `faults::unregister_midstream`): only the
            // completion can be checked.
            self.tally.verified += 1;
            return if requeue { self.queue(index) } else { Ok(()) };
        }
        if let Err(mismatch) = pattern::verify(self.frame(index), sequence, 0) {
            let found = pattern::identify(self.frame(index), 0, 0..sequence + 64);
            return Err(format!(
                "frame {index} (sequence {sequence}): {mismatch}; the buffer holds frame {found:?}"
            ));
        }
        let gap_end = self.layout.frame_range(index).end;
        let gap = (self.layout.stride - u64::from(self.layout.frame_bytes)) as usize;
        // SAFETY: the gap is inside the mapping (the buffer has room after the region).
        let after = unsafe {
            std::slice::from_raw_parts((self.memory.addr() as *const u8).add(gap_end), gap)
        };
        ensure!(
            after.iter().all(|&byte| byte == GUARD),
            "guard bytes after frame {index} overwritten"
        );
        self.saw_sequence(sequence, true)?;
        self.tally.verified += 1;
        self.tally.bytes += u64::from(self.layout.frame_bytes);
        if requeue {
            self.queue(index)?;
        }
        Ok(())
    }

    /// Counts a sequence number a completion carried; they only go up within a stream.
    fn saw_sequence(&mut self, sequence: u64, delivered: bool) -> TestResult {
        let stream = &mut self.tally.stream;
        if let Some(last) = stream.last {
            ensure!(sequence > last, "sequence {sequence} after {last}");
            stream.gaps += sequence - last - 1;
            self.tally.gaps += sequence - last - 1;
        }
        stream.first.get_or_insert(sequence);
        stream.last = Some(sequence);
        stream.carried += 1;
        stream.delivered += u64::from(delivered);
        Ok(())
    }

    /// After `STOP` (every frame back): reconciles the stream's drops exactly. The card's
    /// own counters (BAR0) must agree with `STATS` and sysfs, and every sequence number the
    /// card used must be a frame the stream saw or a drop the card counted: those before the
    /// first frame seen, the gaps between frames, and those after the last frame (started
    /// until the stop took effect). `STATS` alone cannot tell the last ones, hence BAR0.
    pub fn reconcile_drops(&mut self) -> Result<Drops, String> {
        let stats = self.stats()?;
        ensure!(
            stats.state == STATE_ATTACHED && stats.frames_queued == 0,
            "drops are reconciled on a stopped stream with nothing queued: {stats:?}"
        );
        let card = crate::bar::read_counters(&card_pci_address(&self.card)?)?;
        let stream = self.tally.stream;
        ensure!(
            card.produced == card.next_sequence,
            "the card started {} frames but used {} sequence numbers",
            card.produced,
            card.next_sequence
        );
        ensure!(
            stats.frames_dropped_underrun == card.underrun
                && stats.frames_dropped_other == card.overrun + card.backpressure,
            "STATS drops (underrun {}, other {}) are not the card's {card:?}",
            stats.frames_dropped_underrun,
            stats.frames_dropped_other
        );
        for (attribute, value) in [
            ("frames_dropped_underrun", stats.frames_dropped_underrun),
            ("frames_dropped_other", stats.frames_dropped_other),
            ("frames_delivered", stats.frames_delivered),
        ] {
            let shown = sysfs_counter(&self.card, attribute)?;
            ensure!(shown == value, "sysfs {attribute} {shown}, STATS {value}");
        }
        ensure!(
            stats.frames_delivered == stream.delivered && stats.frames_failed == 0,
            "the driver counted {} frames delivered and {} failed, the stream saw {} delivered",
            stats.frames_delivered,
            stats.frames_failed,
            stream.delivered
        );
        let drops = Drops {
            underrun: stats.frames_dropped_underrun,
            other: stats.frames_dropped_other,
            sequences: card.next_sequence,
            before_first: stream.first.unwrap_or(card.next_sequence),
            between: stream.gaps,
            after_last: stream
                .last
                .map_or(0, |last| card.next_sequence.saturating_sub(last + 1)),
        };
        ensure!(
            stream.last.is_none_or(|last| last < card.next_sequence),
            "sequence {:?} seen, but the card used only {} numbers",
            stream.last,
            card.next_sequence
        );
        ensure!(
            drops.total() == drops.before_first + drops.between + drops.after_last,
            "drops do not add up: the card counted {} ({} underrun, {} other), the sequence \
             numbers show {} ({} before the first frame, {} between frames, {} after the last; \
             {} numbers used, {} carried by completions)",
            drops.total(),
            drops.underrun,
            drops.other,
            drops.before_first + drops.between + drops.after_last,
            drops.before_first,
            drops.between,
            drops.after_last,
            card.next_sequence,
            stream.carried
        );
        Ok(drops)
    }

    /// Checks and re-queues completions until `frames` frames were verified in total.
    pub fn run(&mut self, frames: u64, timeout: Duration) -> TestResult {
        let deadline = Instant::now() + timeout;
        let mut next_report = Instant::now() + Duration::from_secs(5);
        let mut progress = (self.tally.verified, Instant::now());
        while self.tally.verified < frames {
            ensure!(
                Instant::now() < deadline,
                "only {} of {frames} frames in {timeout:?}",
                self.tally.verified
            );
            if progress.0 != self.tally.verified {
                progress = (self.tally.verified, Instant::now());
            } else if progress.1.elapsed() > Duration::from_secs(10) {
                let stats = self.stats()?;
                return Err(format!(
                    "no frame for 10 s after {} frames; stats {stats:?}",
                    self.tally.verified
                ));
            }
            for completion in self.reap(Duration::from_millis(500))? {
                self.check(completion, true)?;
            }
            self.flush()?;
            if Instant::now() > next_report {
                harness::info(&format!("streamed {} frames so far", self.tally.verified));
                next_report += Duration::from_secs(5);
            }
        }
        Ok(())
    }

    /// Stops the stream: afterwards no frame is queued.
    pub fn stop(&mut self) -> TestResult {
        let res = self.control(ops::STOP)?;
        ensure!(res == 0, "STOP returned {res}");
        self.settle()
    }

    /// Waits for every queued frame's completion (after a stop or teardown).
    fn settle(&mut self) -> TestResult {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.queued.iter().any(|&queued| queued) {
            ensure!(
                Instant::now() < deadline,
                "frames still queued after the stream stopped"
            );
            for completion in self.reap(Duration::from_millis(100))? {
                if completion.user_data == ATTACH {
                    self.backlog.push(completion);
                    continue;
                }
                self.check(completion, false)?;
            }
        }
        Ok(())
    }

    /// Every byte outside the frames is still a guard byte.
    pub fn check_guards(&self) -> TestResult {
        // SAFETY: the whole mapping; no frame is queued, so the card writes nothing.
        let all = unsafe {
            std::slice::from_raw_parts(self.memory.addr() as *const u8, self.memory_len())
        };
        let mut frames = (0..self.layout.count).map(|index| self.layout.frame_range(index));
        let mut next = frames.next();
        for (offset, &byte) in all.iter().enumerate() {
            if let Some(range) = &next {
                if range.contains(&offset) {
                    continue;
                }
                if offset >= range.end {
                    next = frames.next();
                    if next.as_ref().is_some_and(|range| range.contains(&offset)) {
                        continue;
                    }
                }
            }
            ensure!(
                byte == GUARD,
                "guard byte at buffer offset {offset} is {byte:#04x}"
            );
        }
        Ok(())
    }

    fn memory_len(&self) -> usize {
        (self.layout.offset + self.layout.region_len() + 4096).next_multiple_of(2 * MIB)
    }

    /// Detaches: queued frames complete first, then `DETACH` and the attach command with 0.
    pub fn detach(&mut self) -> TestResult {
        let res = self.control(ops::DETACH)?;
        ensure!(res == 0, "DETACH returned {res}");
        self.settle()?;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(completion) = self.reap(Duration::from_millis(100))?.first() {
                ensure!(
                    completion.user_data == ATTACH && completion.res == 0,
                    "waiting for the attach command: {completion:?}"
                );
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "attach did not complete after DETACH"
            );
        }
    }
}

/// Streams `frames` frames on `path` and detaches; the card is usable if that works.
fn stream_briefly(path: &str, frames: u64) -> Result<Tally, String> {
    let mut streamer = Streamer::attach(path, Layout::UNALIGNED)?;
    streamer.queue_all()?;
    let res = streamer.control(ops::START)?;
    ensure!(res == 0, "START returned {res}");
    streamer.run(frames, Duration::from_secs(60))?;
    streamer.stop()?;
    streamer.check_guards()?;
    streamer.detach()?;
    Ok(std::mem::take(&mut streamer.tally))
}

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
        stats.state == STATE_ATTACHED && stats.frames_queued == 0 && stats.reserved == 0,
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

/// `DETACH` while frames stream: queued frames complete first, then the region ends; the
/// card streams again afterwards.
pub fn stream_detach_midstream() -> TestResult {
    let mut streamer = Streamer::attach(CARD0, Layout::UNALIGNED)?;
    streamer.queue_all()?;
    ensure!(streamer.control(ops::START)? == 0, "START failed");
    streamer.run(100, Duration::from_secs(60))?;
    streamer.detach()?;
    streamer.check_guards()?;
    drop(streamer);
    stream_briefly(CARD0, 100).map(|_| ())
}

/// What user space writes into frame `frame` of the region in [`user_bytes_survive`].
fn user_byte(frame: u32, offset: usize) -> u8 {
    // CAST: a byte of a mix of both; any pattern no card frame and no guard byte matches.
    (offset.wrapping_mul(131) ^ (frame as usize * 29) ^ 0x3c) as u8
}

/// The region ends (`DETACH`, or the ring's exit) after a few frames: bytes user space wrote
/// into a frame the card had filled and completed (in-place processing), and into a frame it
/// never queued, are still there afterwards. Under bounce buffering (`swiotlb=force`) an
/// unmap that copies back would revert both to the stale bounce buffer contents.
fn user_bytes_survive(ring_exit: bool) -> TestResult {
    const FILLED: u32 = 1;
    const NEVER_QUEUED: u32 = 15;
    let layout = Layout::UNALIGNED;
    let mut streamer = Streamer::attach(CARD0, layout)?;
    for index in 0..4 {
        streamer.queue(index)?;
    }
    streamer.flush()?;
    ensure!(streamer.control(ops::START)? == 0, "START failed");
    let deadline = Instant::now() + Duration::from_secs(30);
    while streamer.queued[..4].iter().any(|&queued| queued) {
        ensure!(
            Instant::now() < deadline,
            "the first frames did not complete"
        );
        for completion in streamer.reap(Duration::from_millis(200))? {
            streamer.check(completion, false)?;
        }
    }
    ensure!(
        streamer.metas[FILLED as usize].flags == META_FRAME,
        "frame {FILLED} was not filled: {:?}",
        streamer.metas[FILLED as usize]
    );
    for index in [FILLED, NEVER_QUEUED] {
        streamer.write_frame(index, |offset| user_byte(index, offset));
    }
    let how = if ring_exit {
        streamer.exit_ring(CARD0)?;
        wait_idle(CARD0)?;
        "ring exit"
    } else {
        streamer.detach()?;
        "DETACH"
    };
    for (index, what) in [
        (FILLED, "filled and completed"),
        (NEVER_QUEUED, "never queued"),
    ] {
        let frame = streamer.frame(index);
        if let Some(offset) =
            (0..frame.len()).find(|&offset| frame[offset] != user_byte(index, offset))
        {
            let reverted = if frame[offset] == GUARD {
                " (the byte from before the region was attached)"
            } else {
                ""
            };
            return Err(format!(
                "after {how}: frame {index} ({what}) lost the bytes user space wrote: offset \
                 {offset} is {:#04x}, expected {:#04x}{reverted}",
                frame[offset],
                user_byte(index, offset)
            ));
        }
    }
    streamer.check_guards()?;
    harness::info(&format!(
        "after {how}: user bytes in a completed frame and a never-queued frame intact"
    ));
    Ok(())
}

/// [`user_bytes_survive`] with `DETACH`.
pub fn stream_user_bytes_detach() -> TestResult {
    user_bytes_survive(false)
}

/// [`user_bytes_survive`] with the ring's exit.
pub fn stream_user_bytes_ring_exit() -> TestResult {
    user_bytes_survive(true)
}

/// Helper process: streams, says so, and keeps streaming until killed or until its ring
/// exits (`exit` = return without detaching after 200 frames).
pub fn stream_child(path: &str, exit: bool) -> ! {
    let result = (|| -> TestResult {
        let mut streamer = Streamer::attach(path, Layout::UNALIGNED)?;
        streamer.queue_all()?;
        ensure!(streamer.control(ops::START)? == 0, "START failed");
        streamer.run(50, Duration::from_secs(60))?;
        println!("streaming");
        if exit {
            streamer.run(200, Duration::from_secs(60))?;
            // Leave without STOP or DETACH: the ring's exit cancels the attach command.
            std::process::exit(0);
        }
        streamer.run(u64::MAX, Duration::from_secs(3600))
    })();
    println!("error: {}", result.err().unwrap_or_default());
    std::process::exit(1)
}

/// Runs [`stream_child`] and returns it once it streams.
fn spawn_streamer(exit: bool) -> Result<std::process::Child, String> {
    let mut child = Command::new("/bin/fgrab-guest")
        .args(["stream-child", CARD0, if exit { "exit" } else { "wait" }])
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

/// Waits until no region is attached to the card.
fn wait_idle(path: &str) -> TestResult {
    let mut observer = TestRing::open(path)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while observer.stats()?.state != STATE_IDLE {
        ensure!(
            Instant::now() < deadline,
            "region still attached after 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// The streaming process is killed: the region ends, nothing leaks, the card streams again.
pub fn stream_process_killed() -> TestResult {
    let mut child = spawn_streamer(false)?;
    let _ = child.kill();
    let _ = child.wait();
    wait_idle(CARD0)?;
    stream_briefly(CARD0, 100).map(|_| ())
}

/// The streaming process exits without stopping: its ring's exit ends the region.
pub fn stream_ring_exit() -> TestResult {
    let mut child = spawn_streamer(true)?;
    let status = child.wait().map_err(|error| error.to_string())?;
    ensure!(status.success(), "streaming process failed: {status}");
    wait_idle(CARD0)?;
    stream_briefly(CARD0, 100).map(|_| ())
}

/// The card file is closed while streaming: in-flight commands keep the file, so frames
/// keep coming; when the ring goes, the region ends.
pub fn stream_file_closed() -> TestResult {
    {
        let mut streamer = Streamer::attach(CARD0, Layout::UNALIGNED)?;
        streamer.queue_all()?;
        ensure!(streamer.control(ops::START)? == 0, "START failed");
        streamer.run(50, Duration::from_secs(60))?;
        streamer.ring.close_file()?;
        // The queued frames hold the file: they are still filled and completed.
        let deadline = Instant::now() + Duration::from_secs(10);
        while streamer.queued.iter().any(|&queued| queued) {
            ensure!(
                Instant::now() < deadline,
                "queued frames stalled after close"
            );
            for completion in streamer.reap(Duration::from_millis(100))? {
                streamer.check(completion, false)?;
            }
        }
        ensure!(
            streamer.stats()?.state == STATE_STREAMING,
            "the region ended when the file was closed, although commands hold it"
        );
    }
    wait_idle(CARD0)?;
    stream_briefly(CARD0, 100).map(|_| ())
}

/// The card is unbound while streaming: every frame completes with -ENODEV (or filled),
/// the attach command with -ENODEV; after a rebind the card streams again.
pub fn stream_unbind() -> TestResult {
    let driver = "/sys/bus/pci/drivers/fgrab";
    let device = pci_address(0)?;
    {
        let mut streamer = Streamer::attach(CARD0, Layout::UNALIGNED)?;
        streamer.queue_all()?;
        ensure!(streamer.control(ops::START)? == 0, "START failed");
        streamer.run(100, Duration::from_secs(60))?;
        std::fs::write(format!("{driver}/unbind"), &device)
            .map_err(|error| format!("unbind {device}: {error}"))?;
        let res = drain_until_gone(&mut streamer, Duration::from_secs(10))?;
        ensure!(res == -libc::ENODEV, "attach ended with {res}");
        streamer.check_guards()?;
    }
    std::fs::write(format!("{driver}/bind"), &device)
        .map_err(|error| format!("bind {device}: {error}"))?;
    wait_for_node(CARD0, true, Duration::from_secs(10))?;
    stream_briefly(CARD0, 100).map(|_| ())
}

/// How card 0 goes away under its waiters.
#[derive(Clone, Copy, Debug)]
enum Departure {
    /// `/sys/bus/pci/drivers/fgrab/unbind`, then `bind` again.
    Unbind,
    /// `/sys/bus/pci/devices/.../remove` (hot removal), then a bus rescan.
    Removal,
}

/// Threads blocked on card 0 when it goes: in `ioctl(DQBUF)` (frames queued with `QBUF`
/// but the stream not started, so nothing ever completes) or, with `read`, in `read()` on
/// the copy path (frames of 1 MiB: 8 of them stay under the cap on bounced regions, so the
/// test means the same through swiotlb; at any moment some threads copy and the others
/// wait for a frame). Every one must return `ENODEV` promptly. The card comes back
/// afterwards.
fn waiters_see_departure(read: bool, departure: Departure) -> TestResult {
    const THREADS: usize = 4;
    let address = pci_address(0)?;
    let mut streamer = None;
    let mut reading = None;
    let mut threads = Vec::new();
    if read {
        let file = std::sync::Arc::new(
            std::fs::File::open(CARD0).map_err(|error| format!("{CARD0}: {error}"))?,
        );
        reading = Some(file.clone());
        for _ in 0..THREADS {
            let file = file.clone();
            threads.push(std::thread::spawn(move || {
                use std::io::Read;
                let mut buffer = vec![0u8; MIB];
                loop {
                    if let Err(error) = (&*file).read(&mut buffer) {
                        return error.raw_os_error().unwrap_or(0);
                    }
                }
            }));
        }
    } else {
        let attached = Streamer::attach(CARD0, Layout::UNALIGNED)?;
        let fd = attached.ring.fd();
        for index in 0..THREADS as u32 {
            qbuf(fd, index).map_err(|errno| format!("QBUF {index}: errno {errno}"))?;
        }
        streamer = Some(attached);
        for _ in 0..THREADS {
            threads.push(std::thread::spawn(move || match dqbuf(fd) {
                Ok(_) => 0,
                Err(errno) => errno,
            }));
        }
    }
    let what = if read { "read()" } else { "ioctl(DQBUF)" };
    // Let them block (or, reading, stream for a while).
    std::thread::sleep(Duration::from_millis(500));
    let early = threads.iter().filter(|thread| thread.is_finished()).count();
    ensure!(
        early == 0,
        "{early} threads in {what} returned before the card went"
    );
    let started = Instant::now();
    match departure {
        Departure::Unbind => std::fs::write(format!("{PCI_DRIVER}/unbind"), &address)
            .map_err(|error| format!("unbind {address}: {error}"))?,
        Departure::Removal => pci_remove(&address)?,
    }
    let gone_in = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(3);
    while threads.iter().any(|thread| !thread.is_finished()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let returned_in = started.elapsed();
    let stuck = threads
        .iter()
        .filter(|thread| !thread.is_finished())
        .count();
    // Bring the card back before judging: later tests need it, and its number (the lowest
    // free one) is free only once every file of the departed card is closed. A thread still
    // blocked is interrupted by a signal (no SA_RESTART: its call fails with EINTR).
    interrupt(&threads);
    let errnos: Vec<i32> = threads
        .into_iter()
        .map(|thread| thread.join().unwrap_or(0))
        .collect();
    drop(reading);
    drop(streamer);
    match departure {
        Departure::Unbind => std::fs::write(format!("{PCI_DRIVER}/bind"), &address)
            .map_err(|error| format!("bind {address}: {error}"))?,
        Departure::Removal => {
            wait_for_node(CARD0, false, Duration::from_secs(10))?;
            std::fs::write("/sys/bus/pci/rescan", "1")
                .map_err(|error| format!("rescan: {error}"))?;
        }
    }
    wait_for_node(CARD0, true, Duration::from_secs(30))?;
    ensure!(
        stuck == 0,
        "{departure:?}: {stuck} of {THREADS} threads in {what} still blocked 3 s after the \
         card went"
    );
    for errno in errnos {
        ensure!(
            errno == libc::ENODEV,
            "{departure:?}: a thread in {what} returned errno {errno}, expected ENODEV"
        );
    }
    harness::info(&format!(
        "{departure:?}: {THREADS} threads in {what} returned ENODEV within {} ms of the card \
         going ({} ms for it to go)",
        returned_in.as_millis(),
        gone_in.as_millis()
    ));
    Ok(())
}

/// Sends SIGUSR1, caught by a handler that does nothing, to every thread still running.
fn interrupt(threads: &[std::thread::JoinHandle<i32>]) {
    use std::os::unix::thread::JoinHandleExt;
    extern "C" fn ignore(_: libc::c_int) {}
    // SAFETY: a handler that does nothing, installed without SA_RESTART; the sigaction
    // structure is zeroed and then filled.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = ignore as extern "C" fn(libc::c_int) as usize;
        libc::sigaction(libc::SIGUSR1, &action, std::ptr::null_mut());
    }
    for thread in threads.iter().filter(|thread| !thread.is_finished()) {
        // SAFETY: the thread has not been joined, so its pthread_t is valid.
        unsafe { libc::pthread_kill(thread.as_pthread_t() as _, libc::SIGUSR1) };
    }
    std::thread::sleep(Duration::from_millis(100));
}

/// Threads blocked in `ioctl(DQBUF)` and in `read()` when the card is unbound return
/// `ENODEV`; after a rebind the card streams again.
pub fn stream_unbind_waiters() -> TestResult {
    waiters_see_departure(false, Departure::Unbind)?;
    waiters_see_departure(true, Departure::Unbind)?;
    stream_briefly(CARD0, 50).map(|_| ())
}

/// Each malformed frame or control command gets its errno and changes nothing.
pub fn stream_rejects_malformed() -> TestResult {
    let control = ControlCmd::new_zeroed();
    // No region yet.
    let mut lone = TestRing::open(CARD0)?;
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
                reserved: [0, 0, 0, 0, 0, 0, 0, 1],
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

/// Module unload attempted while a stream runs: refused, and the stream goes on.
pub fn stream_module_unload_refused() -> TestResult {
    let mut streamer = Streamer::attach(CARD0, Layout::UNALIGNED)?;
    streamer.queue_all()?;
    ensure!(streamer.control(ops::START)? == 0, "START failed");
    streamer.run(50, Duration::from_secs(60))?;
    // SAFETY: a NUL-terminated module name; O_NONBLOCK makes the call fail instead of wait.
    let res =
        unsafe { libc::syscall(libc::SYS_delete_module, c"fgrab".as_ptr(), libc::O_NONBLOCK) };
    let errno = std::io::Error::last_os_error().raw_os_error();
    ensure!(
        res == -1 && (errno == Some(libc::EBUSY) || errno == Some(libc::EWOULDBLOCK)),
        "unloading fgrab while streaming: result {res}, errno {errno:?}"
    );
    streamer.run(150, Duration::from_secs(60))?;
    streamer.stop()?;
    streamer.check_guards()?;
    streamer.detach()
}

/// Waits until `path` exists (or stops existing).
fn wait_for_node(path: &str, present: bool, timeout: Duration) -> TestResult {
    let deadline = Instant::now() + timeout;
    while std::path::Path::new(path).exists() != present {
        ensure!(
            Instant::now() < deadline,
            "{path} still {} after {timeout:?}",
            if present { "missing" } else { "present" }
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Collects completions until the attach command completes; frames still queued must
/// complete with `-ENODEV` (or filled, before the end). Returns the attach result.
fn drain_until_gone(streamer: &mut Streamer, timeout: Duration) -> Result<i32, String> {
    let deadline = Instant::now() + timeout;
    let mut attach_res = None;
    while attach_res.is_none() || streamer.queued.iter().any(|&queued| queued) {
        ensure!(
            Instant::now() < deadline,
            "completions missing after removal"
        );
        for completion in streamer.reap(Duration::from_millis(100))? {
            if completion.user_data == ATTACH {
                attach_res = Some(completion.res);
            } else if completion.res == -libc::ENODEV {
                // CAST: masked to 16 bits.
                streamer.queued[(completion.user_data & 0xffff) as usize] = false;
            } else {
                streamer.check(completion, false)?;
            }
        }
    }
    attach_res.ok_or_else(|| "no attach completion".into())
}

/// The PCI address of the device behind `/dev/fgrabN`.
fn pci_address(card: u32) -> Result<String, String> {
    card_pci_address(&format!("fgrab{card}"))
}

/// The PCI address of the device behind card `name` (`fgrabN`).
pub fn card_pci_address(name: &str) -> Result<String, String> {
    let device = std::fs::read_link(format!("/sys/class/misc/{name}/device"))
        .map_err(|error| format!("{name}'s device: {error}"))?;
    device
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .ok_or_else(|| "no device name".into())
}

/// A counter from `/sys/class/misc/{card}/{attribute}`.
fn sysfs_counter(card: &str, attribute: &str) -> Result<u64, String> {
    let path = format!("/sys/class/misc/{card}/{attribute}");
    let text = std::fs::read_to_string(&path).map_err(|error| format!("{path}: {error}"))?;
    text.trim()
        .parse()
        .map_err(|error| format!("{path}: `{}`: {error}", text.trim()))
}

/// Hot-removes a PCI device the way a hotplug controller does (the driver's remove path).
fn pci_remove(address: &str) -> TestResult {
    std::fs::write(format!("/sys/bus/pci/devices/{address}/remove"), "1")
        .map_err(|error| format!("removing {address}: {error}"))
}

/// The card is hot-removed while streaming (`/sys/bus/pci/devices/.../remove`, the path
/// pciehp takes): frames and the attach command complete with -ENODEV, `/dev/fgrab0` goes;
/// found again by a bus rescan, it streams. Then threads blocked in `ioctl(DQBUF)`, and in
/// `read()`, when the card is removed return `ENODEV`.
///
/// QEMU's own `device_del` would be closer to a real slot, but in this stack it is not
/// usable: Linux 7.3's pciehp reports a lockdep cycle of its own on every removal
/// (`pci_rescan_remove_lock` / `ctrl->reset_lock`), and QEMU 11.1 aborts when a
/// vfio-user-pci device is added back (`memory_region_del_subregion` assertion).
pub fn stream_hot_unplug() -> TestResult {
    let address = pci_address(0)?;
    {
        let mut streamer = Streamer::attach(CARD0, Layout::UNALIGNED)?;
        streamer.queue_all()?;
        ensure!(streamer.control(ops::START)? == 0, "START failed");
        streamer.run(100, Duration::from_secs(60))?;
        pci_remove(&address)?;
        let res = drain_until_gone(&mut streamer, Duration::from_secs(30))?;
        ensure!(res == -libc::ENODEV, "attach ended with {res} on removal");
        streamer.check_guards()?;
        harness::info(&format!(
            "hot removal while streaming: {} frames verified before, region ended with -ENODEV",
            streamer.tally.verified
        ));
    }
    wait_for_node(CARD0, false, Duration::from_secs(10))?;
    std::fs::write("/sys/bus/pci/rescan", "1").map_err(|error| format!("rescan: {error}"))?;
    wait_for_node(CARD0, true, Duration::from_secs(30))?;
    stream_briefly(CARD0, 100)?;
    // Threads blocked in DQBUF, then in read(), when the card is removed: ENODEV at once.
    waiters_see_departure(false, Departure::Removal)?;
    waiters_see_departure(true, Departure::Removal)?;
    stream_briefly(CARD0, 50).map(|_| ())
}

/// The card stops answering mid-stream (emulator fault `remove@300` on card 1: reads all
/// ones, no DMA, no interrupts): the driver notices, queued frames complete with -ENODEV
/// and a new START fails; removing the dead device ends the region without waiting on it.
pub fn stream_surprise_removal() -> TestResult {
    const CARD1: &str = "/dev/fgrab1";
    let address = pci_address(1)?;
    let mut streamer = Streamer::attach(CARD1, Layout::UNALIGNED)?;
    streamer.queue_all()?;
    ensure!(streamer.control(ops::START)? == 0, "START failed");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut gone = 0;
    loop {
        ensure!(
            Instant::now() < deadline,
            "the dead card's frames did not come back"
        );
        let completions = streamer.reap(Duration::from_millis(100))?;
        let quiet = completions.is_empty();
        for completion in completions {
            if completion.res == -libc::ENODEV {
                gone += 1;
                // CAST: masked to 16 bits.
                streamer.queued[(completion.user_data & 0xffff) as usize] = false;
            } else {
                streamer.check(completion, gone == 0)?;
            }
        }
        streamer.flush()?;
        // Every frame that was on the card came back once the driver ended the stream and
        // nothing more arrives. A frame queued again just before the end (its QUEUE reached
        // the driver after it) waits for a START, as on any stopped stream.
        if gone > 0 && quiet && streamer.stats()?.state == STATE_ATTACHED {
            break;
        }
    }
    let last = streamer.tally.stream.last.unwrap_or(0);
    ensure!(
        last < 300,
        "frame {last} delivered after the card died at 300"
    );
    let stats = streamer.stats()?;
    ensure!(
        stats.state == STATE_ATTACHED,
        "still streaming on a dead card: {stats:?}"
    );
    streamer.queue_all()?;
    let res = streamer.control(ops::START)?;
    ensure!(res == -libc::ENODEV, "START on a dead card: {res}");
    harness::info(&format!(
        "surprise removal: {} frames verified, then {gone} frames returned -ENODEV",
        streamer.tally.verified
    ));
    let started = Instant::now();
    pci_remove(&address)?;
    let res = drain_until_gone(&mut streamer, Duration::from_secs(30))?;
    ensure!(res == -libc::ENODEV, "attach ended with {res} on removal");
    streamer.check_guards()?;
    wait_for_node(CARD1, false, Duration::from_secs(10))?;
    harness::info(&format!(
        "the dead card was removed in {} ms",
        started.elapsed().as_millis()
    ));
    Ok(())
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
        sysfs("hw_version")? == "1.0",
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
fn qbuf(fd: std::os::fd::RawFd, index: u32) -> Result<(), i32> {
    // SAFETY: QBUF reads a `u32` from the pointer, which points to one.
    let res = unsafe { libc::ioctl(fd, fgrab_uapi::ioctls::QBUF as _, &index as *const u32) };
    if res == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}

/// `ioctl(DQBUF)` on `fd`: the metadata of the oldest completed frame, or the errno.
fn dqbuf(fd: std::os::fd::RawFd) -> Result<FrameMeta, i32> {
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
    let lone = TestRing::open(CARD0)?;
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
        let mut other = TestRing::open(CARD0)?;
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
