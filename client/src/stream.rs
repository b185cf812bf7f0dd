//! A stream of frames into an attached buffer.

use crate::buffer::Buffer;
use crate::features::Features;
use crate::raw;
use crate::uring::{
    batch_first, written_frame, Completion, RingCounters, Setup, Uring, ATTACH, BATCH_TAG,
    RING_ENTRIES, WRITE_TAG,
};
use crate::{Error, Result};
use fgrab_uapi::{FrameMeta, Stats, MAX_BATCH_FRAMES, META_ERROR, META_FLUSHED, META_FRAME};
use io_uring::squeue;
use std::collections::VecDeque;
use std::fs::File;
use std::sync::Arc;
use std::time::{Duration, Instant};
use zerocopy::FromZeros;

/// How frames are laid out in a buffer: `count` frames of `frame_bytes`, `stride` apart,
/// the first at `offset`. Nothing needs to be aligned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    frame_bytes: u32,
    count: u32,
    stride: u64,
    offset: usize,
}

impl Geometry {
    /// `count` frames of `frame_bytes`, back to back from the start of the buffer.
    pub fn new(frame_bytes: u32, count: u32) -> Self {
        Self {
            frame_bytes,
            count,
            stride: u64::from(frame_bytes),
            offset: 0,
        }
    }

    /// Distance between frame starts (at least `frame_bytes`; the gap is never written).
    pub fn stride(mut self, stride: u64) -> Self {
        self.stride = stride;
        self
    }

    /// Where the first frame starts in the buffer.
    pub fn offset(mut self, offset: usize) -> Self {
        self.offset = offset;
        self
    }

    /// Bytes per frame.
    pub fn frame_bytes(&self) -> u32 {
        self.frame_bytes
    }

    /// Number of frames.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Bytes from one frame's start to the next.
    pub(crate) fn frame_stride(&self) -> u64 {
        self.stride
    }

    /// Buffer offset of frame `index`.
    pub(crate) fn frame_offset(&self, index: u32) -> usize {
        // CAST: `validate` checked that every frame lies inside the buffer.
        self.offset + (self.stride * u64::from(index)) as usize
    }

    /// Bytes of buffer the layout needs.
    pub(crate) fn span(&self) -> Option<usize> {
        let last = self
            .stride
            .checked_mul(u64::from(self.count.checked_sub(1)?))?;
        let end = last.checked_add(u64::from(self.frame_bytes))?;
        usize::try_from(end).ok()?.checked_add(self.offset)
    }

    /// Checks the layout against a buffer of `len` bytes.
    pub(crate) fn validate(&self, len: usize) -> Result<()> {
        let fail = |reason: String| Err(Error::Geometry { reason });
        if self.frame_bytes == 0 || self.count == 0 {
            return fail("zero frame size or frame count".into());
        }
        if self.stride < u64::from(self.frame_bytes) {
            return fail(format!(
                "stride {} below the frame size {}",
                self.stride, self.frame_bytes
            ));
        }
        match self.span() {
            Some(span) if span <= len => Ok(()),
            Some(span) => fail(format!(
                "{} frames need {span} bytes, the buffer has {len}",
                self.count
            )),
            None => fail("the layout overflows".into()),
        }
    }
}

/// Stream settings beyond the geometry: `Options::default()` and setters.
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct Options {
    /// A kernel thread submits commands (`IORING_SETUP_SQPOLL`): no system call per batch
    /// while it is awake.
    pub sqpoll: bool,
    /// Frame interrupts at least this many microseconds apart (`Some(0)`: one per frame);
    /// `None`: the driver's choice, half the card's frame period.
    pub irq_delay_us: Option<u32>,
    /// One frame interrupt per this many frames (`Some(0)`: the driver's choice; `None`
    /// and `Some(1)`: every frame); see [`crate::raw::Start::irq_frames`].
    pub irq_frames: Option<u32>,
    /// Only the thread that attaches the stream uses it (no [`Stream::into_shared`]): its
    /// ring is set up with `SINGLE_ISSUER | DEFER_TASKRUN`, so frame completions run in that
    /// thread's waits, several per wake, instead of interrupting it one by one (the
    /// benchmark measures the difference). Any other thread gets [`Error::WrongThread`];
    /// a stream dropped in another thread cannot end its region and leaks its buffer.
    /// Ignored with [`Self::sqpoll`].
    pub single_thread: bool,
    /// Frames given back to the card per submission (0 and 1: one `QUEUE` per frame). With
    /// `n` above 1 the frames are grouped `n` by `n` from the first (the last group may be
    /// shorter) and a group goes back to the card in one `QUEUE_BATCH` once all of its
    /// frames were released, and completes in one CQE once all of them are filled: `1/n` of
    /// a submission and of a completion per frame, and, with [`Self::irq_frames`] left to
    /// the library, one interrupt per `n` frames. The price is latency: a group's first
    /// frame is handed out when its last is filled. At most
    /// [`fgrab_uapi::MAX_BATCH_FRAMES`] (64) and at most half the frames, so that the card
    /// has one group while the application reads another. With [`Self::irq_delay_us`]
    /// `Some(0)` the card still interrupts per frame; another `irq_delay_us` bounds how long
    /// a frame waits for its group's interrupt. Holding one frame of each group starves the
    /// card. A frame count that `n` divides keeps the interrupts in step with the groups.
    pub batch: u32,
}

impl Options {
    /// Whether a kernel thread submits commands ([`Self::sqpoll`]).
    pub fn sqpoll(mut self, sqpoll: bool) -> Self {
        self.sqpoll = sqpoll;
        self
    }

    /// Whether only the attaching thread uses the stream ([`Self::single_thread`]).
    pub fn single_thread(mut self, single_thread: bool) -> Self {
        self.single_thread = single_thread;
        self
    }

    /// Frame-interrupt moderation ([`Self::irq_delay_us`]).
    pub fn irq_delay_us(mut self, us: Option<u32>) -> Self {
        self.irq_delay_us = us;
        self
    }

    /// Frame-interrupt moderation by count ([`Self::irq_frames`]).
    pub fn irq_frames(mut self, frames: Option<u32>) -> Self {
        self.irq_frames = frames;
        self
    }

    /// Frames per submission and per completion ([`Self::batch`]).
    pub fn batch(mut self, frames: u32) -> Self {
        self.batch = frames;
        self
    }

    /// Frames per submission: 1 unless batched.
    fn batch_frames(&self) -> u32 {
        self.batch.max(1)
    }

    /// Checks the batch against `count` frames.
    fn validate(&self, count: u32) -> Result<()> {
        let batch = self.batch_frames();
        if batch > 1 && (batch > MAX_BATCH_FRAMES || batch > count / 2) {
            return Err(Error::Geometry {
                reason: format!(
                    "a batch of {batch} frames: at most {MAX_BATCH_FRAMES}, and at most half \
                     of the {count} frames"
                ),
            });
        }
        Ok(())
    }
}

/// How long [`Stream::stop`] waits for the driver to return every queued frame.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// What the card reported about a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameInfo {
    /// Index of the frame in the buffer's geometry.
    pub index: u32,
    /// Sequence number since the last start; gaps are frames the card dropped.
    pub sequence: u64,
    /// End of the frame, `CLOCK_MONOTONIC` nanoseconds.
    pub timestamp_ns: u64,
    /// Bytes the card wrote.
    pub bytes: u32,
    /// `fgrab_uapi::META_*` bits.
    pub flags: u32,
}

/// Frames the card dropped, from the gaps between the sequence numbers of the frames it
/// numbered: a frame without a number (one the card did not start) neither counts nor
/// breaks the count.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SequenceGaps {
    last: Option<u64>,
}

impl SequenceGaps {
    /// The frames missing before a frame numbered `sequence` (0 without a number).
    pub(crate) fn next(&mut self, sequence: Option<u64>) -> u64 {
        let Some(sequence) = sequence else {
            return 0;
        };
        let gap = self
            .last
            .map_or(0, |last| sequence.saturating_sub(last.saturating_add(1)));
        self.last = Some(sequence);
        gap
    }
}

/// Where each frame is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    /// User space has it (not queued). Released while streaming only in a batched stream,
    /// until the rest of its group is released.
    Idle,
    /// A `QUEUE` (or its group's `QUEUE_BATCH`) command is in flight for it.
    Queued,
    /// Filled, waiting to be handed out.
    Ready,
    /// Handed out; user space reads it until it is released.
    Held,
}

/// Counters kept by the library.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames handed to the application.
    pub delivered: u64,
    /// Frames the card dropped, from gaps in sequence numbers.
    pub dropped: u64,
    /// Frames that completed with an error (queued again).
    pub failed: u64,
    /// Bytes handed to the application.
    pub bytes: u64,
}

/// A region of a [`Buffer`] attached to a card: frames are queued, filled by the card, handed
/// out one at a time by [`Stream::next_frame`] and queued again when released.
///
/// Dropping the stream stops it and waits until the driver confirms the region ended; only
/// then is the buffer released. If that confirmation cannot be had, the buffer is leaked
/// rather than freed, since the card might still write into it.
pub struct Stream<'a> {
    // Field order is drop order, but `Drop` ends the region first.
    ring: Uring,
    /// The camera features, shared with a [`crate::SharedStream`] made of this stream.
    features: Arc<Features>,
    /// The card file; `None` once given back by a failed attach.
    file: Option<File>,
    buffer: Option<Buffer<'a>>,
    geometry: Geometry,
    states: Vec<State>,
    /// Metadata the driver writes per frame; boxed so the addresses stay put.
    metas: Box<[FrameMeta]>,
    ready: VecDeque<u32>,
    streaming: bool,
    attached: bool,
    gaps: SequenceGaps,
    counters: Counters,
    /// Frames in [`State::Queued`] (kept, not counted: the release path asks per frame).
    queued: usize,
    /// The attach command's result once it completed (`-ENODEV`: the card went away).
    attach_result: Option<i32>,
    options: Options,
    /// Completions of a recorder's file writes (`record.rs`), kept for it whichever wait
    /// reaped them.
    writes: Vec<Completion>,
    /// Completions of one wait, kept allocated from wait to wait.
    reaped: Vec<Completion>,
}

/// A failed [`Stream::attach`], with what can be given back.
pub(crate) struct AttachFailure<'a> {
    pub(crate) error: Error,
    pub(crate) file: Option<File>,
    pub(crate) buffer: Option<Buffer<'a>>,
}

impl<'a> Stream<'a> {
    /// Registers the frames' span of `buffer` on a new ring for `file` and attaches
    /// `geometry` of it. On failure the file and the buffer come back, unless the driver did
    /// not confirm that the region ended (the buffer is then leaked).
    pub(crate) fn attach(
        file: File,
        mut buffer: Buffer<'a>,
        geometry: Geometry,
        options: Options,
    ) -> std::result::Result<Self, AttachFailure<'a>> {
        use std::os::fd::AsRawFd;
        let setup = (|| {
            geometry.validate(buffer.len())?;
            options.validate(geometry.count)?;
            let setup = match options {
                Options { sqpoll: true, .. } => Setup::Sqpoll,
                Options {
                    single_thread: true,
                    ..
                } => Setup::SingleThread,
                _ => Setup::Shared,
            };
            let mut ring = Uring::with_setup(file.as_raw_fd(), setup, RING_ENTRIES)?;
            // CAST: validated against the buffer length.
            let span = geometry.span().unwrap_or(0) - geometry.offset;
            // SAFETY: inside the buffer (validated); the stream owns `buffer` and releases
            // it only after the region ended and the ring (with its registration) is gone:
            // see `Drop`, `detach` and `fail` below.
            unsafe { ring.register(buffer.as_mut_ptr().add(geometry.offset), span)? };
            Ok(ring)
        })();
        let ring = match setup {
            Ok(ring) => ring,
            Err(error) => {
                return Err(AttachFailure {
                    error,
                    file: Some(file),
                    buffer: Some(buffer),
                })
            }
        };
        let base = buffer.as_mut_ptr();
        let attach = raw::Attach::new(
            ring.fd(),
            0,
            base as u64 + geometry.offset as u64,
            // CAST: validated against the buffer length.
            geometry.span().unwrap_or(0) as u64 - geometry.offset as u64,
            geometry.frame_bytes,
            geometry.count,
        )
        .frame_stride(geometry.stride)
        .build();
        let count = geometry.count as usize;
        // The stream exists before the attach command is submitted, so that every failure
        // from here on ends the region (or leaks the buffer) through `Drop`.
        let mut stream = Self {
            ring,
            features: Arc::new(Features::new(file.as_raw_fd())),
            file: Some(file),
            buffer: Some(buffer),
            geometry,
            states: vec![State::Idle; count],
            metas: vec![FrameMeta::new_zeroed(); count].into_boxed_slice(),
            ready: VecDeque::new(),
            streaming: false,
            attached: true,
            gaps: SequenceGaps::default(),
            counters: Counters::default(),
            queued: 0,
            attach_result: None,
            options,
            writes: Vec::new(),
            reaped: Vec::new(),
        };
        match stream.attach_region(attach) {
            Ok(()) => Ok(stream),
            Err(error) => Err(stream.fail(error)),
        }
    }

    /// Submits the attach command, checks the driver took the region, queues every frame.
    fn attach_region(&mut self, attach: squeue::Entry128) -> Result<()> {
        self.ring.push(attach.user_data(ATTACH))?;
        self.ring.submit()?;
        // The attach command stays in flight; an error completes it at once, which STATS
        // (issued after it on the same ring) reveals.
        let stats = self.stats()?;
        if let Some(res) = self.take_attach_result() {
            self.attached = false;
            return Err(Error::command("ATTACH", res));
        }
        if stats.frame_count != self.geometry.count {
            return Err(Error::Geometry {
                reason: format!("the driver attached {} frames", stats.frame_count),
            });
        }
        self.queue_idle()?;
        self.ring.submit()
    }

    /// Ends a region whose attach failed and gives the file and the buffer back once the
    /// driver confirmed it (else the buffer is leaked: see [`Self::abandon`]).
    fn fail(mut self, error: Error) -> AttachFailure<'a> {
        if self.end() {
            AttachFailure {
                error,
                file: self.file.take(),
                buffer: self.buffer.take(),
            }
        } else {
            self.abandon();
            AttachFailure {
                error,
                file: None,
                buffer: None,
            }
        }
    }

    /// The attach command's result if it completed (it should not while attached).
    fn take_attach_result(&mut self) -> Option<i32> {
        let completions = self.ring.reap(0, Some(Duration::ZERO)).ok()?;
        let mut result = None;
        for completion in completions {
            if completion.user_data == ATTACH {
                result = Some(completion.res);
            } else {
                self.handle(completion);
            }
        }
        result
    }

    /// The camera features of the card: settable while the stream is attached (the image
    /// format only while it is stopped), readable always.
    pub fn features(&self) -> &Features {
        &self.features
    }

    /// The features, to share (see [`crate::SharedStream::features`]).
    pub(crate) fn shared_features(&self) -> Arc<Features> {
        self.features.clone()
    }

    /// The frame layout.
    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// Frames `first..end` of the group of frame `index` (one frame unless batched).
    fn group(&self, index: u32) -> std::ops::Range<u32> {
        let batch = self.options.batch_frames();
        let first = index - index % batch;
        first..(first + batch).min(self.geometry.count)
    }

    /// Gives frame `index`, which user space has, back to the card: with a `QUEUE`, or, in
    /// a batched stream, with its group's `QUEUE_BATCH` once the whole group is idle.
    /// On failure the frame is where it was (a failed release can be retried).
    fn queue(&mut self, index: u32) -> Result<()> {
        let before = self.states[index as usize];
        self.states[index as usize] = State::Idle;
        let result = self.queue_idle_frame(index);
        if result.is_err() {
            self.states[index as usize] = before;
        }
        result
    }

    /// [`Self::queue`] for frame `index`, now idle.
    fn queue_idle_frame(&mut self, index: u32) -> Result<()> {
        if self.options.batch_frames() == 1 {
            let entry = raw::Queue::new(self.ring.fd(), index)
                .meta(&mut self.metas[index as usize])
                .build()
                .user_data(u64::from(index));
            return self.push_queue(entry, index..index + 1);
        }
        let group = self.group(index);
        if self.states[group.start as usize..group.end as usize]
            .iter()
            .any(|state| *state != State::Idle)
        {
            return Ok(());
        }
        // The driver writes the group's metadata, in frame order, to its frames' entries.
        // Until then they read as frames given back unfilled, never as an older fill.
        let metas = &mut self.metas[group.start as usize..group.end as usize];
        metas.fill(FrameMeta {
            sequence: u64::MAX,
            flags: META_FLUSHED,
            ..FrameMeta::new_zeroed()
        });
        // CAST: a group has at most `MAX_BATCH_FRAMES` frames (`Options::validate`).
        let entry = raw::QueueBatch::new(self.ring.fd(), group.start, group.len() as u32)
            .meta(metas.as_mut_ptr())
            .build()
            .user_data(BATCH_TAG | u64::from(group.start));
        self.push_queue(entry, group)
    }

    /// Writes the command that queues `frames` to the ring.
    fn push_queue(&mut self, entry: squeue::Entry128, frames: std::ops::Range<u32>) -> Result<()> {
        self.ring.push(entry)?;
        self.queued += frames.len();
        for index in frames {
            self.states[index as usize] = State::Queued;
        }
        Ok(())
    }

    /// Queues every idle frame (in a batched stream, every group whose frames are all
    /// idle: the group goes with its first frame, its other frames are queued by then).
    fn queue_idle(&mut self) -> Result<()> {
        for index in 0..self.geometry.count {
            if self.states[index as usize] == State::Idle {
                self.queue(index)?;
            }
        }
        Ok(())
    }

    /// Submits the commands written since the last submission if fewer than half the
    /// region's frames are on the card without them, so that it never runs dry behind a
    /// batch; otherwise they wait for the next submission, with others. Every entry not
    /// submitted counts as a whole group (a recorder's writes too): an overestimate, which
    /// only submits sooner.
    fn submit_if_card_low(&mut self) -> Result<()> {
        let unsubmitted = self.ring.unsubmitted();
        let frames = unsubmitted.saturating_mul(self.options.batch_frames() as usize);
        if unsubmitted > 0 && (self.queued - frames.min(self.queued)) * 2 < self.states.len() {
            self.ring.submit()?;
        }
        Ok(())
    }

    fn control(&mut self, entry: squeue::Entry128, name: &'static str) -> Result<()> {
        let res = self.ring.command(entry)?;
        if res < 0 {
            return Err(Error::command(name, res));
        }
        Ok(())
    }

    /// Starts the card: queued frames fill, sequence numbers restart at 0.
    ///
    /// # Errors
    ///
    /// [`Error::Command`] (`EALREADY` if running).
    pub fn start(&mut self) -> Result<()> {
        self.queue_idle()?;
        self.gaps = SequenceGaps::default();
        let mut start = raw::Start::new(self.ring.fd());
        if let Some(us) = self.options.irq_delay_us {
            start = start.irq_delay_us(us);
        }
        match (self.options.irq_frames, self.options.batch_frames()) {
            (Some(frames), _) => start = start.irq_frames(frames),
            // A group completes when its last frame does: one interrupt per group (unless
            // an interrupt per frame was asked for).
            (None, batch) if batch > 1 && self.options.irq_delay_us != Some(0) => {
                start = start.irq_frames(batch)
            }
            (None, _) => {}
        }
        self.control(start.build(), "START")?;
        self.streaming = true;
        Ok(())
    }

    /// Stops the card. Every queued frame comes back (filled ones are still handed out by
    /// [`Self::next_frame`]); [`Self::start`] queues the others again.
    ///
    /// # Errors
    ///
    /// [`Error::Command`] (`EALREADY` if not running); [`Error::Timeout`] if the driver has
    /// not returned every queued frame within 10 s.
    pub fn stop(&mut self) -> Result<()> {
        self.control(raw::Stop::new(self.ring.fd()).build(), "STOP")?;
        self.streaming = false;
        // Collect the frames the stop returned.
        let deadline = Instant::now() + STOP_TIMEOUT;
        while self.queued > 0 {
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: "frames coming back after STOP",
                });
            }
            for completion in self.ring.reap(1, Some(Duration::from_millis(100)))? {
                self.handle(completion);
            }
        }
        Ok(())
    }

    /// Whether the card is running.
    pub fn is_running(&self) -> bool {
        self.streaming
    }

    /// Books one completion.
    fn handle(&mut self, completion: Completion) {
        if completion.user_data == ATTACH {
            self.attached = false;
            self.streaming = false;
            self.attach_result = Some(completion.res);
            return;
        }
        if written_frame(completion.user_data).is_some() {
            self.writes.push(completion);
            return;
        }
        if let Some(first) = batch_first(completion.user_data) {
            self.handle_batch(first, completion.res);
            return;
        }
        let Ok(index) = u32::try_from(completion.user_data) else {
            return;
        };
        if self.states.get(index as usize) != Some(&State::Queued) {
            return;
        }
        self.queued -= 1;
        if completion.res >= 0 {
            // The CQE is authoritative (`docs/abi.md`): its byte count, bounded by the frame
            // size, and sequence number replace what the metadata copy says. The driver
            // wrote that copy before posting the CQE and no longer touches it.
            let meta = &mut self.metas[index as usize];
            // CAST: `res` is non-negative.
            meta.bytes = (completion.res as u32).min(self.geometry.frame_bytes);
            meta.sequence = completion.sequence.unwrap_or(u64::MAX);
            self.filled(index, completion.sequence);
        } else {
            self.unfilled(index, completion.res);
            if self.streaming && completion.res == -libc::EIO {
                // A frame the card failed is simply queued again.
                let _ = self.queue(index).and_then(|()| self.ring.submit());
            }
        }
    }

    /// Books the completion of the `QUEUE_BATCH` of the group starting at frame `first`:
    /// each frame's metadata (written by the driver, in frame order, before the CQE) says
    /// whether it was filled (`docs/abi.md`); when none was, `res` is the first frame's
    /// errno.
    fn handle_batch(&mut self, first: u32, res: i32) {
        if first >= self.geometry.count || first % self.options.batch_frames() != 0 {
            return;
        }
        let group = self.group(first);
        for index in group.clone() {
            if self.states[index as usize] != State::Queued {
                continue;
            }
            self.queued -= 1;
            let meta = &mut self.metas[index as usize];
            if res >= 0 && meta.flags & (META_ERROR | META_FLUSHED) == 0 {
                meta.bytes = meta.bytes.min(self.geometry.frame_bytes);
                let sequence = (meta.flags & META_FRAME != 0).then_some(meta.sequence);
                // A frame the card did not number reads `u64::MAX`, as unbatched.
                meta.sequence = sequence.unwrap_or(u64::MAX);
                self.filled(index, sequence);
            } else if res >= 0 {
                let failed = if meta.flags & META_ERROR != 0 {
                    -libc::EIO
                } else {
                    -libc::ECANCELED
                };
                self.unfilled(index, failed);
            } else {
                self.unfilled(index, res);
            }
        }
        // A group with frames filled goes back when they are released. One with none goes
        // back now if the card failed it (`EIO`) or if the driver's metadata did not reach
        // it (a fault writing it is ignored: `res` counts frames the records do not show);
        // otherwise the stream ended, stopped, or refused the batch.
        let none_filled = self.states[group.start as usize..group.end as usize]
            .iter()
            .all(|state| *state == State::Idle);
        if self.streaming && none_filled && (res == -libc::EIO || res > 0) {
            let _ = self.queue(group.start).and_then(|()| self.ring.submit());
        }
    }

    /// Frame `index` was filled (its metadata says how): ready to be handed out.
    fn filled(&mut self, index: u32, sequence: Option<u64>) {
        self.counters.dropped += self.gaps.next(sequence);
        self.states[index as usize] = State::Ready;
        self.ready.push_back(index);
    }

    /// Frame `index` came back unfilled with `res`: user space has it again.
    fn unfilled(&mut self, index: u32, res: i32) {
        if res != -libc::ECANCELED {
            self.counters.failed += 1;
        }
        self.states[index as usize] = State::Idle;
    }

    /// Waits up to `timeout` (forever with `None`) for the next filled frame and hands it
    /// out; `Ok(None)` on timeout. The frame is re-queued when the guard is dropped.
    ///
    /// # Errors
    ///
    /// [`Error::Ring`]; [`Error::Ended`] if the region ended (card gone, ring failure);
    /// [`Error::WrongThread`] for a single-thread stream ([`Options::single_thread`]) used
    /// from another thread.
    pub fn next_frame(&mut self, timeout: Option<Duration>) -> Result<Option<Frame<'_, 'a>>> {
        Ok(self
            .take_frame(timeout)?
            .map(move |info| Frame { stream: self, info }))
    }

    /// Like [`Self::next_frame`] but without a guard: the frame stays the caller's until
    /// [`Self::release`]. For layers that hold several frames (the legacy C API).
    ///
    /// # Errors
    ///
    /// As [`Self::next_frame`].
    pub fn take_frame(&mut self, timeout: Option<Duration>) -> Result<Option<FrameInfo>> {
        // A single-thread stream hands out nothing elsewhere, not even frames already
        // reaped: its frames come back to the ring of that thread.
        self.ring.check_thread()?;
        let deadline = timeout.map(|timeout| Instant::now() + timeout);
        // Frames released since the last wait are submitted with it (below); while frames
        // are ready without waiting, as soon as the card runs low.
        self.submit_if_card_low()?;
        let mut looked = false;
        loop {
            if let Some(info) = self.pop_ready() {
                return Ok(Some(info));
            }
            if !self.attached {
                return Err(self.end_error());
            }
            let left = deadline.map(|deadline| deadline.saturating_duration_since(Instant::now()));
            let mut reaped = std::mem::take(&mut self.reaped);
            let result = match left {
                Some(left) if left.is_zero() => {
                    if looked {
                        return Ok(None);
                    }
                    // One look without waiting (a zero timeout polls): entering the kernel
                    // submits what was released and runs the task work that posts
                    // completions.
                    looked = true;
                    self.ring
                        .submit()
                        .and_then(|()| self.ring.reap_into(0, Some(Duration::ZERO), &mut reaped))
                }
                left => self.ring.reap_into(1, left, &mut reaped),
            };
            for completion in reaped.drain(..) {
                self.handle(completion);
            }
            self.reaped = reaped;
            result?;
            // A wait may return without entering the kernel (completions were already
            // posted): what it completed may have left the card without the frames
            // released before it, still unsubmitted.
            self.submit_if_card_low()?;
        }
    }

    /// The bytes of held frame `index` (`None` unless the caller holds it).
    pub fn frame_bytes(&self, index: u32) -> Option<&[u8]> {
        if self.states.get(index as usize) != Some(&State::Held) {
            return None;
        }
        let len = self.metas[index as usize]
            .bytes
            .min(self.geometry.frame_bytes) as usize;
        self.buffer
            .as_ref()?
            .bytes(self.geometry.frame_offset(index), len)
    }

    /// Gives held frame `index` back: queued again while running. The `QUEUE` command is
    /// only written to the ring: the next wait ([`Self::next_frame`], [`Self::take_frame`])
    /// or [`Self::flush`] submits every frame released since, in one system call.
    ///
    /// # Errors
    ///
    /// [`Error::NotHeld`] if the caller does not hold that frame; [`Error::Ring`].
    pub fn release(&mut self, index: u32) -> Result<()> {
        if self.states.get(index as usize) != Some(&State::Held) {
            return Err(Error::NotHeld { index });
        }
        if self.streaming {
            self.queue(index)
        } else {
            self.states[index as usize] = State::Idle;
            Ok(())
        }
    }

    /// Submits the frames released since the last wait now, for callers that hold frames
    /// for a while between waits.
    ///
    /// # Errors
    ///
    /// [`Error::Ring`].
    pub fn flush(&mut self) -> Result<()> {
        self.ring.submit()
    }

    /// Frames filled and not yet handed out.
    pub fn ready_frames(&self) -> usize {
        self.ready.len()
    }

    /// Whether the region is still attached: false once the driver ended it (card removed
    /// or reset, ring failure); then only frames already filled are handed out.
    pub fn is_attached(&self) -> bool {
        self.attached
    }

    /// Library counters (delivered, dropped from sequence gaps, failed).
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// What the stream's ring did: entries submitted, completions reaped, system calls.
    pub fn ring_counters(&self) -> RingCounters {
        self.ring.counters()
    }

    /// Frames per group: 1 unless batched ([`Options::batch`]).
    pub(crate) fn batch_frames(&self) -> u32 {
        self.options.batch_frames()
    }

    /// Whether the stream was made for one thread ([`Options::single_thread`]).
    pub(crate) fn is_single_thread(&self) -> bool {
        self.ring.is_single_thread()
    }

    /// The driver's view of the stream.
    ///
    /// # Errors
    ///
    /// [`Error::Command`], [`Error::Ring`].
    pub fn stats(&mut self) -> Result<Stats> {
        let (res, stats) = self
            .ring
            .copy_out(|fd, target| raw::StatsCmd::new(fd, target).build())?;
        if res < 0 {
            return Err(Error::command("STATS", res));
        }
        Ok(stats)
    }

    /// Ends the region and waits until the driver confirms it (every frame command and the
    /// attach command completed). True when confirmed.
    fn end(&mut self) -> bool {
        if self.attached {
            // Not waited for as a command: the attach command's completion is the answer.
            let tag = self.ring.command_tag();
            let entry = raw::Detach::new(self.ring.fd()).build().user_data(tag);
            if self.ring.push(entry).is_err() || self.ring.submit().is_err() {
                return false;
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.attached || self.queued > 0 {
            if Instant::now() > deadline {
                return false;
            }
            match self.ring.reap(1, Some(Duration::from_millis(100))) {
                Ok(completions) => completions.into_iter().for_each(|c| self.handle(c)),
                Err(_) => return false,
            }
        }
        true
    }

    /// Ends the region (stopping the card) and returns the buffer.
    ///
    /// # Errors
    ///
    /// [`Error::Unreclaimable`] if the driver did not confirm the end: the buffer is then
    /// leaked.
    pub fn detach(mut self) -> Result<Buffer<'a>> {
        if self.end() {
            self.buffer.take().ok_or(Error::Unreclaimable)
        } else {
            self.abandon();
            Err(Error::Unreclaimable)
        }
    }

    /// Ends the region but keeps the buffer (frames handed out stay readable); see
    /// [`crate::SharedStream::end`].
    pub(crate) fn end_now(&mut self) -> Result<()> {
        self.streaming = false;
        if self.end() {
            Ok(())
        } else {
            self.abandon();
            Err(Error::Unreclaimable)
        }
    }

    /// Why the region is over: [`Error::CardGone`] if the driver ended it because the card
    /// went away, else [`Error::Ended`].
    pub(crate) fn end_error(&self) -> Error {
        if self.attach_result == Some(-libc::ENODEV) {
            Error::CardGone
        } else {
            Error::Ended
        }
    }

    /// Registers `fd` (an eventfd) to be signalled whenever a completion is posted.
    pub(crate) fn register_eventfd(&mut self, fd: std::os::fd::RawFd) -> Result<()> {
        self.ring.register_eventfd(fd)
    }

    /// Submits every released frame, reaps what completed without waiting, and hands out
    /// the oldest filled frame, if any.
    pub(crate) fn try_take(&mut self) -> Result<Option<FrameInfo>> {
        if self.ring.unsubmitted() > 0 {
            self.ring.submit()?;
        }
        for completion in self.ring.reap(0, Some(Duration::ZERO))? {
            self.handle(completion);
        }
        Ok(self.pop_ready())
    }

    /// Hands out the oldest filled frame, if any.
    pub(crate) fn pop_ready(&mut self) -> Option<FrameInfo> {
        let index = self.ready.pop_front()?;
        self.states[index as usize] = State::Held;
        let meta = self.metas[index as usize];
        self.counters.delivered += 1;
        self.counters.bytes += u64::from(meta.bytes);
        Some(FrameInfo {
            index,
            sequence: meta.sequence,
            timestamp_ns: meta.timestamp_ns,
            bytes: meta.bytes,
            flags: meta.flags,
        })
    }

    /// Where held frame `index`'s filled bytes are.
    pub(crate) fn held_frame(&self, index: u32) -> Option<(*const u8, usize)> {
        let bytes = self.frame_bytes(index)?;
        Some((bytes.as_ptr(), bytes.len()))
    }

    /// [`Self::release`], then submits at once if fewer than half the region's frames are
    /// on the card, so that a release from a thread that will not wait next cannot starve
    /// the card; otherwise the next wait submits it with others.
    pub(crate) fn release_and_submit(&mut self, index: u32) -> Result<()> {
        self.release(index)?;
        self.submit_if_card_low()
    }

    // The recorder's access (`record.rs`): it writes held frames to a file with
    // `IORING_OP_WRITE_FIXED` on this ring, from fixed buffer 0 (the frames' span), and
    // releases each frame only once its write completed.

    /// Where held frame `index`'s whole slot (`frame_bytes`, filled or not) is.
    pub(crate) fn held_slot(&self, index: u32) -> Option<(*const u8, usize)> {
        if self.states.get(index as usize) != Some(&State::Held) {
            return None;
        }
        let len = self.geometry.frame_bytes as usize;
        let bytes = self
            .buffer
            .as_ref()?
            .bytes(self.geometry.frame_offset(index), len)?;
        Some((bytes.as_ptr(), len))
    }

    /// Address of frame `index`'s first byte (held or not), for alignment checks.
    pub(crate) fn frame_address(&self, index: u32) -> Option<usize> {
        let buffer = self.buffer.as_ref()?;
        let offset = self.geometry.frame_offset(index);
        buffer.bytes(offset, 0).map(|bytes| bytes.as_ptr() as usize)
    }

    /// Writes `entry` (a file write from fixed buffer 0) to the ring, tagged as the write of
    /// frame `index`; the next wait submits it.
    pub(crate) fn push_write(&mut self, index: u32, entry: squeue::Entry) -> Result<()> {
        let entry = squeue::Entry128::from(entry).user_data(WRITE_TAG | u64::from(index));
        self.ring.push(entry)
    }

    /// Completions of writes reaped so far (by any wait of the stream).
    pub(crate) fn take_writes(&mut self) -> Vec<Completion> {
        std::mem::take(&mut self.writes)
    }

    /// Submits what was written to the ring, waits up to `timeout` for a completion of any
    /// kind and books what came.
    pub(crate) fn wait_any(&mut self, timeout: Duration) -> Result<()> {
        self.ring.submit()?;
        for completion in self.ring.reap(1, Some(timeout))? {
            self.handle(completion);
        }
        Ok(())
    }

    /// The region's end could not be confirmed: the card may still write frames, and the
    /// driver frame metadata, so both memories are leaked, never freed or reused.
    fn abandon(&mut self) {
        std::mem::forget(self.buffer.take());
        std::mem::forget(std::mem::take(&mut self.metas));
    }
}

impl Drop for Stream<'_> {
    fn drop(&mut self) {
        if self.buffer.is_some() && !self.end() {
            self.abandon();
        }
    }
}

/// A filled frame, the application's until dropped; dropping it queues it again.
///
/// The guard borrows the stream, so the stream can be neither stopped nor dropped while a
/// frame is held:
///
/// ```compile_fail,E0499
/// # fn f(mut stream: fgrab::Stream<'static>) -> fgrab::Result<()> {
/// let frame = stream.next_frame(None)?.unwrap();
/// stream.stop()?; // error: `stream` is borrowed by `frame`
/// drop(frame);
/// # Ok(()) }
/// ```
///
/// ```compile_fail,E0505
/// # fn f(mut stream: fgrab::Stream<'static>) -> fgrab::Result<Vec<u8>> {
/// let frame = stream.next_frame(None)?.unwrap();
/// drop(stream); // error: cannot move out of `stream` while borrowed
/// Ok(frame.to_vec())
/// # }
/// ```
pub struct Frame<'s, 'a> {
    stream: &'s mut Stream<'a>,
    info: FrameInfo,
}

impl std::fmt::Debug for Frame<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frame")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Stream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("geometry", &self.geometry)
            .field("streaming", &self.streaming)
            .field("attached", &self.attached)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl Frame<'_, '_> {
    /// What the card reported.
    pub fn info(&self) -> FrameInfo {
        self.info
    }

    /// Sequence number (gaps are drops).
    pub fn sequence(&self) -> u64 {
        self.info.sequence
    }
}

impl std::ops::Deref for Frame<'_, '_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.stream.frame_bytes(self.info.index).unwrap_or(&[])
    }
}

impl Drop for Frame<'_, '_> {
    fn drop(&mut self) {
        let _ = self.stream.release(self.info.index);
    }
}

#[cfg(test)]
mod tests {
    use super::SequenceGaps;

    #[test]
    fn gaps_between_numbered_frames_only() {
        let mut gaps = SequenceGaps::default();
        // The first frame has nothing before it; 3..5 are missing after 2; an unnumbered
        // frame neither counts nor breaks the count; a number that goes back, or the
        // largest, does not overflow.
        let seen: Vec<u64> = [Some(2), Some(6), None, Some(7), Some(1), Some(u64::MAX)]
            .into_iter()
            .map(|sequence| gaps.next(sequence))
            .collect();
        assert_eq!(seen, [0, 3, 0, 0, 0, u64::MAX - 2]);
    }
}
