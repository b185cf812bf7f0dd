//! The streaming fixture the data-path tests share: a buffer with guard bytes around
//! every frame, registered and attached ([`Streamer`]), frames queued, reaped and checked
//! byte by byte against the card's pattern, and the drop accounting ([`Tally`], [`Drops`]).

use crate::ensure;
use crate::harness::{self, TestResult};
use crate::pattern;
use crate::uring::{attach_request, Completion, Memory, TestUring};
use fgrab_uapi::{
    ops, AttachCmd, ControlCmd, FrameMeta, QueueBatchCmd, QueueCmd, Stats, META_ERROR,
    META_FLUSHED, META_FRAME, STATE_ATTACHED, STATE_IDLE,
};
use std::time::{Duration, Instant};
use zerocopy::{FromZeros, IntoBytes};

pub(crate) const CARD0: &str = "/dev/fgrab0";
pub(crate) const PCI_DRIVER: &str = "/sys/bus/pci/drivers/fgrab";
pub(crate) const ATTACH: u64 = 0xa77a;
const CONTROL: u64 = 0xc0;
/// `user_data` of frame `i`'s command is `FRAME | i`.
pub(crate) const FRAME: u64 = 0xf_0000;
/// `user_data` of the `QUEUE_BATCH` of batch `k` (frames `k * batch..`) is `BATCH | k`.
pub(crate) const BATCH: u64 = 0xb_0000;
/// Byte the test writes around and between frames; the card must never touch it.
pub(crate) const GUARD: u8 = 0x5a;
/// Byte the test writes into a frame before queueing it again: a frame the card did not
/// write cannot pass the pattern check by holding an older frame.
const POISON: u8 = 0xee;
pub(crate) const MIB: usize = 1 << 20;

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
    pub ring: TestUring,
    /// A second file on the card, for `STATS` while frames complete on `ring`.
    observer: TestUring,
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
    /// Frames per `QUEUE_BATCH` (0: one `QUEUE` per frame); see [`Self::batched`].
    batch: u32,
    /// Batch completions checked.
    pub batches: u64,
}

impl Streamer {
    /// Maps a buffer for `layout` with guard bytes everywhere, registers it and attaches the
    /// region.
    pub fn attach(path: &str, layout: Layout) -> Result<Self, String> {
        let len = (layout.offset + layout.region_len() + 4096).next_multiple_of(2 * MIB);
        let memory = Memory::new(len)?;
        // SAFETY: the mapping is `len` bytes, writable, owned by `memory`.
        unsafe { std::ptr::write_bytes(memory.addr() as *mut u8, GUARD, len) };
        let mut ring = TestUring::open(path)?;
        // SAFETY: `memory` outlives the ring: field order of `Streamer` drops the ring first.
        unsafe { ring.register(&[&memory])? };
        let card = std::path::Path::new(path)
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut streamer = Self {
            card,
            ring,
            observer: TestUring::open(path)?,
            memory,
            layout,
            metas: vec![FrameMeta::new_zeroed(); layout.count as usize].into_boxed_slice(),
            queued: vec![false; layout.count as usize],
            backlog: Vec::new(),
            requeue: false,
            tally: Tally::default(),
            batch: 0,
            batches: 0,
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
        let old = std::mem::replace(&mut self.ring, TestUring::open(path)?);
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

    /// Recycles frames in batches of `frames` consecutive frames, one `QUEUE_BATCH` each
    /// (`frames` must divide the region's count): queueing a frame queues its batch, and a
    /// batch's completion is checked frame by frame from the metadata it wrote.
    pub fn batched(mut self, frames: u32) -> Self {
        assert!(frames > 0 && self.layout.count.is_multiple_of(frames));
        self.batch = frames;
        self
    }

    /// Queues frame `index` (without entering the kernel: see [`Self::flush`]); in batched
    /// mode, its whole batch.
    pub fn queue(&mut self, index: u32) -> TestResult {
        if let Some(k) = index.checked_div(self.batch) {
            return self.queue_batch(k);
        }
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

    /// Queues batch `k` with one `QUEUE_BATCH`, its metadata slots poisoned (a frame whose
    /// metadata the driver did not write fails the check).
    fn queue_batch(&mut self, k: u32) -> TestResult {
        let first = k * self.batch;
        for index in first..first + self.batch {
            ensure!(!self.queued[index as usize], "frame {index} queued twice");
            self.poison(index);
            self.metas[index as usize] = FrameMeta {
                frame: u32::MAX,
                ..FrameMeta::new_zeroed()
            };
        }
        let request = QueueBatchCmd {
            first,
            count: self.batch,
            meta_addr: &self.metas[first as usize] as *const FrameMeta as u64,
            ..QueueBatchCmd::new_zeroed()
        };
        self.ring.push(
            ops::QUEUE_BATCH,
            request.as_bytes(),
            None,
            BATCH | u64::from(k),
        )?;
        for index in first..first + self.batch {
            self.queued[index as usize] = true;
        }
        Ok(())
    }

    /// Checks a batch's completion: its result counts the frames filled (or, with none,
    /// is the first frame's error), its extra word is the last frame's sequence number, and
    /// each frame passes [`Self::check_frame`] as if its own `QUEUE` had completed with what
    /// its metadata says. A batch the card's departure ended (`-ENODEV`) flags every frame
    /// flushed. The batch is queued again if `requeue`.
    fn check_batch(&mut self, completion: Completion, requeue: bool) -> TestResult {
        // CAST: masked to 16 bits.
        let k = (completion.user_data & 0xffff) as u32;
        ensure!(
            self.batch != 0 && k < self.layout.count / self.batch,
            "unexpected batch completion {completion:?}"
        );
        let first = k * self.batch;
        let frames = first..first + self.batch;
        self.batches += 1;
        if completion.res == -libc::ENODEV {
            for index in frames {
                let meta = self.metas[index as usize];
                ensure!(
                    self.queued[index as usize]
                        && meta.frame == index
                        && meta.flags & META_FLUSHED != 0,
                    "batch {k} ended with -ENODEV: frame {index} {meta:?}"
                );
                self.queued[index as usize] = false;
                self.tally.canceled += 1;
            }
            return Ok(());
        }
        let mut filled = 0;
        let mut first_error = 0;
        let mut last_sequence = u64::MAX;
        for index in frames {
            let meta = self.metas[index as usize];
            let res = if meta.flags & META_FLUSHED != 0 {
                -libc::ECANCELED
            } else if meta.flags & META_ERROR != 0 {
                -libc::EIO
            } else {
                meta.bytes as i32
            };
            let extra = if meta.flags & META_FRAME != 0 {
                meta.sequence
            } else {
                u64::MAX
            };
            if res >= 0 {
                filled += 1;
            } else if first_error == 0 {
                first_error = res;
            }
            last_sequence = extra;
            self.check_frame(
                Completion {
                    user_data: FRAME | u64::from(index),
                    res,
                    extra,
                },
                false,
            )?;
        }
        let expected = if filled > 0 { filled } else { first_error };
        ensure!(
            completion.res == expected && completion.extra == last_sequence,
            "batch {k}: res {} extra {}, but its frames say {expected} and {last_sequence}",
            completion.res,
            completion.extra
        );
        if requeue {
            self.queue_batch(k)?;
        }
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
        self.control_with(op, ControlCmd::new_zeroed().as_bytes())
    }

    /// [`Self::control`] with the command's payload (a `StartCmd`, say).
    pub fn control_with(&mut self, op: u32, payload: &[u8]) -> Result<i32, String> {
        if op == ops::START {
            self.requeue = true;
        } else if op == ops::STOP || op == ops::DETACH {
            self.requeue = false;
        }
        self.ring.submit(op, payload, None, CONTROL)?;
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

    /// Checks one completion, of a frame ([`Self::check_frame`]) or of a batch
    /// ([`Self::check_batch`]).
    pub fn check(&mut self, completion: Completion, requeue: bool) -> TestResult {
        if completion.user_data & !0xffff == BATCH {
            return self.check_batch(completion, requeue);
        }
        self.check_frame(completion, requeue)
    }

    /// Checks one frame's completion: a filled frame matches the pattern for its sequence
    /// number, its metadata agrees with the CQE, the guard bytes after it are intact; a
    /// canceled one says so. The frame is queued again if `requeue`.
    fn check_frame(&mut self, completion: Completion, requeue: bool) -> TestResult {
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
            meta.region == 0,
            "frame {index}: metadata of region 0 names another {meta:?}"
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
pub(crate) fn stream_briefly(path: &str, frames: u64) -> Result<Tally, String> {
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

/// Waits until `path` exists (or stops existing).
pub(crate) fn wait_for_node(path: &str, present: bool, timeout: Duration) -> TestResult {
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

/// Waits until no region is attached to the card.
pub(crate) fn wait_idle(path: &str) -> TestResult {
    let mut observer = TestUring::open(path)?;
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

/// Collects completions until the attach command completes; frames still queued must
/// complete with `-ENODEV` (or filled, before the end). Returns the attach result.
pub(crate) fn drain_until_gone(streamer: &mut Streamer, timeout: Duration) -> Result<i32, String> {
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
            } else if completion.res == -libc::ENODEV && completion.user_data & !0xffff == FRAME {
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
pub(crate) fn pci_address(card: u32) -> Result<String, String> {
    card_pci_address(&format!("fgrab{card}"))
}

/// The PCI address of the device behind card `name` (`fgrabN`).
pub(crate) fn card_pci_address(name: &str) -> Result<String, String> {
    let device = std::fs::read_link(format!("/sys/class/misc/{name}/device"))
        .map_err(|error| format!("{name}'s device: {error}"))?;
    device
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .ok_or_else(|| "no device name".into())
}

/// A counter from `/sys/class/misc/{card}/{attribute}`.
pub(crate) fn sysfs_counter(card: &str, attribute: &str) -> Result<u64, String> {
    let path = format!("/sys/class/misc/{card}/{attribute}");
    let text = std::fs::read_to_string(&path).map_err(|error| format!("{path}: {error}"))?;
    text.trim()
        .parse()
        .map_err(|error| format!("{path}: `{}`: {error}", text.trim()))
}

/// Hot-removes a PCI device the way a hotplug controller does (the driver's remove path).
pub(crate) fn pci_remove(address: &str) -> TestResult {
    std::fs::write(format!("/sys/bus/pci/devices/{address}/remove"), "1")
        .map_err(|error| format!("removing {address}: {error}"))
}
