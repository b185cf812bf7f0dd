// SPDX-License-Identifier: GPL-2.0

//! The streaming state of a card: which file owns it, the regions attached to it, where each
//! frame is (user space, queued in the driver, on the card), and the card's engine.
//!
//! Lock order: `Card::stream` is the only driver lock, and it nests inside io_uring's ring
//! lock: io_uring holds that lock when it calls `->uring_cmd`, cancel calls included. So
//! nothing that may take a ring lock runs under `Card::stream`: importing a fixed buffer
//! and marking a command cancelable take it when a command is issued from io-wq
//! (`IO_URING_F_UNLOCKED`, e.g. `IOSQE_ASYNC`), so `ATTACH` does both outside the lock,
//! holding a reservation of its region id instead. Completions from under the lock go
//! through task work. The interrupt thread takes `Card::stream` and nothing else; the BAR
//! is accessed in short RCU sections inside it (see `hardware/engine.rs`).
//!
//! A stream (one file's, [`Attached`]) holds up to `MAX_REGIONS` regions ([`Held`]), each
//! kept pinned by its own attach command. They share the card: one frame size, one submit
//! ring (a submission's cookie names region and frame), one `START`/`STOP`.
//!
//! A frame is queued for a `QUEUE` command, a `QUEUE_BATCH` command ([`Queued::Batch`]: the
//! batch, kept with its region, completes when its last frame does; see `stream/batch.rs`)
//! or a waiter (`stream/waiters.rs`); every path that takes frames back treats them alike.
//!
//! A cancel call (ring exit, or `execve()` of a submitting task) holds the ring lock, and
//! io_uring repeats it until the command completes, so it only marks the region canceled
//! and hands it to the watchdog ([`Stream::cancel`]). Ending it (seconds for a card that
//! will not stop, a folio lock per page of the region) happens there, where no ring is
//! locked.
//!
//! Teardown of a region has one order whatever triggers it (detach, ring exit, file
//! release, device unbind): take every frame of the region back from the card, complete
//! every queued frame command, unmap every frame, then complete the attach command, after
//! which io_uring may unpin the pages. The card has no per-submission abort, so taking one
//! region's frames back while others stream is a stop of the engine whose flushed
//! submissions of the other regions go back to the card, in order, before it is enabled
//! again ([`Attached::revoke`]); a card that does not stop cleanly stops the whole stream.

mod batch;
mod copy;
mod waiters;

pub(crate) use batch::BatchRequest;

use kernel::prelude::*;
use zerocopy::IntoBytes;

use crate::{
    abstractions::{
        drop_order::DropOrder,
        log::warn_ratelimit,
        periodic::Kick,
        uring_cmd::{PendingCmd, RingId, UringCmd, UserWriteback},
    },
    domain::region::Region,
    hardware::{
        dma::{status, CompletionRecord},
        engine::{Engine, IrqModeration, Stopped},
        regs::Registers,
    },
    uapi::{
        FrameMeta, Stats, MAX_FRAMES, MAX_REGIONS, META_ERROR, META_FLUSHED, META_FRAME,
        META_INCOMPLETE, STATE_ATTACHED, STATE_STREAMING,
    },
};

/// Frame-interrupt moderation as `START` asks for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StartModeration {
    /// Least time between two frame interrupts, or the time bound of a count (`None`: the
    /// driver's default).
    pub(crate) delay_us: Option<u32>,
    /// Frames per interrupt (0 and 1: every frame); `None`: the driver's choice,
    /// [`default_irq_frames`].
    pub(crate) frames: Option<u32>,
}

impl StartModeration {
    /// What a `START` that asks for nothing gets (and the copy path): an interrupt per
    /// frame, moderated by the driver's default time.
    pub(crate) const DEFAULT: Self = Self {
        delay_us: None,
        frames: Some(1),
    };
}

/// Frames per interrupt when `START` leaves the count to the driver: a quarter of the
/// stream's frames, so that three quarters stay queued on the card while a batch waits for
/// its interrupt (the card never starves for it), and at most [`MAX_DEFAULT_IRQ_FRAMES`],
/// which already cuts interrupts sixteenfold while a batch's latency stays short.
fn default_irq_frames(stream_frames: u32) -> u32 {
    (stream_frames / 4).clamp(1, MAX_DEFAULT_IRQ_FRAMES)
}

/// Ceiling of [`default_irq_frames`].
const MAX_DEFAULT_IRQ_FRAMES: u32 = 16;

/// The cookie of a submission: the region id in the upper half, the frame in the lower.
fn cookie(region: u32, frame: u32) -> u32 {
    region << 16 | frame
}

/// Region id and frame of a cookie (from the card, so either may name nothing).
fn uncookie(cookie: u32) -> (u32, u32) {
    (cookie >> 16, cookie & 0xffff)
}

// Both halves of a cookie fit.
const _: () = assert!(MAX_REGIONS <= 1 << 16 && MAX_FRAMES < 1 << 16);

/// Who is told when a queued frame completes.
enum Queued {
    /// A `QUEUE` command, with the metadata buffer it asked for.
    Command {
        cmd: PendingCmd,
        out: Option<UserWriteback>,
    },
    /// Frame `position` of the `QUEUE_BATCH` command `key` of the region
    /// ([`batch::Batches`]), which completes when its last frame does.
    Batch { key: u64, position: u32 },
    /// A frame queued by `ioctl(QBUF)` or by the copy path: its metadata goes to the
    /// region's done list, where `ioctl(DQBUF)` or `read()` picks it up.
    Waiter,
}

impl Queued {
    /// Completes frame `frame` of region `region`: `res` bytes or -errno, with the card's
    /// record if there is one. A waiter's metadata is returned for the done list.
    fn complete(
        self,
        (region, frame): (u32, u32),
        res: i32,
        record: Option<&CompletionRecord>,
        clock_offset: i64,
        counters: &mut Counters,
        batches: &mut batch::Batches,
    ) -> Option<FrameMeta> {
        let meta = meta(region, frame, res, record, clock_offset);
        counters.frames_completed += 1;
        match self {
            Self::Command { cmd, out } => {
                counters.cqes += 1;
                let sequence = record
                    .filter(|record| record.flags & CompletionRecord::FRAME != 0)
                    .map_or(u64::MAX, |record| record.sequence);
                let out = out.map(|mut out| {
                    out.bytes_mut().copy_from_slice(meta.as_bytes());
                    out
                });
                cmd.complete_lazy(res, sequence, out);
                None
            }
            Self::Batch { key, position } => {
                batches.frame_done(key, position, res, &meta, counters);
                None
            }
            Self::Waiter => Some(meta),
        }
    }
}

// A frame's metadata travels in a completion's writeback.
const _: () = assert!(
    core::mem::size_of::<FrameMeta>() <= crate::abstractions::uring_cmd::MAX_WRITEBACK_BYTES
);

/// What user space learns about a frame besides the CQE. The card's timestamp is turned into
/// `CLOCK_MONOTONIC` with `clock_offset` (measured at `START`).
fn meta(
    region: u32,
    frame: u32,
    res: i32,
    record: Option<&CompletionRecord>,
    clock_offset: i64,
) -> FrameMeta {
    let mut meta = FrameMeta {
        frame,
        region,
        sequence: u64::MAX,
        ..FrameMeta::default()
    };
    if let Some(record) = record {
        meta.bytes = record.bytes;
        if record.flags & CompletionRecord::FRAME != 0 {
            meta.flags |= META_FRAME;
            meta.sequence = record.sequence;
            meta.timestamp_ns = record.timestamp_ns.saturating_add_signed(clock_offset);
        }
        meta.flags |= match record.status {
            status::OK => 0,
            status::INCOMPLETE => META_INCOMPLETE,
            status::FLUSHED => META_FLUSHED,
            _ => META_ERROR,
        };
        if res == EIO.to_errno() {
            // A record the driver rejected (a byte count beyond the frame).
            meta.flags |= META_ERROR;
        }
    } else if res == EIO.to_errno() {
        // Taken back from a halted card.
        meta.flags |= META_ERROR;
    } else if res < 0 {
        meta.flags |= META_FLUSHED;
    }
    meta
}

/// Where one frame of a region is.
enum Slot {
    /// User space owns it.
    Idle,
    /// Queued while the stream is stopped; goes to the card at `START`.
    Waiting(Queued),
    /// On the card's submit ring or being written.
    OnCard(Queued),
    /// Flushed by the stop of a revoke (another region is being detached): goes back to the
    /// card before the revoke ends. Exists only inside [`Attached::stop_revoking`], whose
    /// card does no DMA while it does.
    Returned(Queued),
}

/// Counters of the current stream, reset at `START`.
#[derive(Default)]
struct Counters {
    delivered: u64,
    failed: u64,
    bytes: u64,
    /// Frame interrupts handled.
    irqs: u64,
    /// Frames of other regions a revoke's stop aborted mid-write and sent back to the card:
    /// their sequence numbers were used without a completion, so they count as drops.
    aborted_by_revoke: u64,
    /// Frames completed, whatever their result and whoever waited for them.
    frames_completed: u64,
    /// Deferred completions posted: frame commands and attach commands.
    cqes: u64,
}

/// One region of a stream, with the command that keeps its pages pinned.
struct Held {
    /// Its id in the stream, chosen by user space (`AttachCmd::region`).
    id: u32,
    /// `QUEUE_BATCH` commands in flight; before `pinned`, so that even a plain drop
    /// completes them before the attach command.
    batches: batch::Batches,
    /// The region, and the attach command with its ring (frame commands must come from
    /// that ring, so that its exit, which cancels the attach command, also ends them; none
    /// for the copy path's driver-owned frames, which end when their file is released).
    /// io_uring may unpin the pages once the attach command completes, so the region is
    /// unmapped first: [`DropOrder`] holds that order on every path, `end` and any drop.
    pinned: DropOrder<Region, Option<(RingId, PendingCmd)>>,
    slots: KVec<Slot>,
    /// Frames queued as [`Queued::Waiter`] that completed, oldest first.
    done: KVec<FrameMeta>,
    /// io_uring canceled the attach command: the region is no longer its owner's (commands
    /// naming it get `ENOENT`) and waits for the watchdog to end it
    /// ([`Stream::end_canceled`]). Its frames on the card complete as usual meanwhile.
    canceled: bool,
}

impl Held {
    /// Region `id` with every frame idle; `Err` if its bookkeeping could not be allocated
    /// (the region must then end at once).
    fn new(id: u32, attach: Option<(RingId, PendingCmd)>, region: Region) -> (Self, Result) {
        let count = region.frame_count() as usize;
        let mut slots = KVec::new();
        let mut done = KVec::new();
        let allocated = (|| -> Result {
            done.reserve(count, GFP_KERNEL)?;
            for _ in 0..count {
                slots.push(Slot::Idle, GFP_KERNEL)?;
            }
            Ok(())
        })();
        let held = Self {
            id,
            batches: batch::Batches::default(),
            pinned: DropOrder::new(region, attach),
            slots,
            done,
            canceled: false,
        };
        (held, allocated)
    }

    /// The region's frames and their mappings.
    fn region(&self) -> &Region {
        self.pinned.first()
    }

    /// The ring of the attach command (none for driver-owned frames).
    fn ring(&self) -> Option<RingId> {
        self.pinned.then().as_ref().map(|(ring, _)| *ring)
    }

    /// Frames of this region the card holds.
    fn on_card(&self) -> usize {
        self.slots
            .iter()
            .filter(|slot| matches!(slot, Slot::OnCard(_)))
            .count()
    }

    /// Completes every frame that is not on the card with `res`.
    fn flush_waiting(&mut self, res: i32, clock_offset: i64, counters: &mut Counters) {
        for (index, slot) in self.slots.iter_mut().enumerate() {
            if let Slot::Waiting(_) = slot {
                if let Slot::Waiting(queued) = core::mem::replace(slot, Slot::Idle) {
                    // CAST: at most `MAX_FRAMES` slots.
                    if let Some(meta) = queued.complete(
                        (self.id, index as u32),
                        res,
                        None,
                        clock_offset,
                        counters,
                        &mut self.batches,
                    ) {
                        let _ = self.done.push(meta, GFP_KERNEL);
                    }
                }
            }
        }
    }

    /// Completes every frame on the card with `res`: after a reset or on a card cut off the
    /// bus, which do no more DMA.
    ///
    /// Nothing is synced for the CPU: without a record nobody knows what the card wrote,
    /// the frame completes without data, and under bounce buffering a sync would copy stale
    /// bounce contents over what user space had in the frame.
    fn reclaim_on_card(&mut self, res: i32, clock_offset: i64, counters: &mut Counters) {
        for (index, slot) in self.slots.iter_mut().enumerate() {
            if let Slot::OnCard(_) | Slot::Returned(_) = slot {
                if let Slot::OnCard(queued) | Slot::Returned(queued) =
                    core::mem::replace(slot, Slot::Idle)
                {
                    // CAST: at most `MAX_FRAMES` slots.
                    let index = index as u32;
                    if let Some(meta) = queued.complete(
                        (self.id, index),
                        res,
                        None,
                        clock_offset,
                        counters,
                        &mut self.batches,
                    ) {
                        let _ = self.done.push(meta, GFP_KERNEL);
                    }
                }
            }
        }
    }

    /// Completes frame `index`, which a record names. The record comes from the card, which
    /// is not trusted: a byte count beyond the frame is clamped and fails the frame, and
    /// warnings about bad records are rate limited.
    fn complete(
        &mut self,
        index: u32,
        record: &CompletionRecord,
        counters: &mut Counters,
        clock_offset: i64,
    ) {
        let Some(slot) = self.slots.get_mut(index as usize) else {
            if warn_ratelimit() {
                pr_warn!(
                    "fgrab: record for unknown frame {} of region {}\n",
                    index,
                    self.id
                );
            }
            return;
        };
        if !matches!(slot, Slot::OnCard(_)) {
            // Left as it is: a frame waiting for `START` keeps its command.
            if warn_ratelimit() {
                pr_warn!(
                    "fgrab: record for frame {} of region {} not on the card\n",
                    index,
                    self.id
                );
            }
            return;
        }
        let Slot::OnCard(queued) = core::mem::replace(slot, Slot::Idle) else {
            return;
        };
        let frame_bytes = self.region().frame_bytes();
        let overlong = record.bytes > frame_bytes;
        if overlong && warn_ratelimit() {
            pr_warn!(
                "fgrab: record claims {} bytes for frame {} of {} bytes; the frame fails\n",
                record.bytes,
                index,
                frame_bytes
            );
        }
        let record = &CompletionRecord {
            bytes: record.bytes.min(frame_bytes),
            ..*record
        };
        // Bytes the card wrote (any status) belong to the CPU from here on. A record
        // without frame data (flushed, rejected) copies nothing: under bounce buffering a
        // sync would put stale bounce contents over what user space had in the frame.
        if record.flags & CompletionRecord::FRAME != 0 && record.bytes != 0 {
            self.region().sync_for_cpu(index);
        }
        let res = match record.status {
            _ if overlong => {
                counters.failed += 1;
                EIO.to_errno()
            }
            status::OK | status::INCOMPLETE => {
                counters.delivered += 1;
                counters.bytes += u64::from(record.bytes);
                // CAST: at most `frame_bytes`, itself at most `MAX_FRAME_BYTES`, which probe
                // checked fits an `i32`.
                record.bytes as i32
            }
            status::FLUSHED => ECANCELED.to_errno(),
            status::DMA_ERROR | status::DESC_ERROR => {
                counters.failed += 1;
                EIO.to_errno()
            }
            unknown => {
                if warn_ratelimit() {
                    pr_warn!(
                        "fgrab: frame {} completed with unknown status {}\n",
                        index,
                        unknown
                    );
                }
                counters.failed += 1;
                EIO.to_errno()
            }
        };
        if let Some(meta) = queued.complete(
            (self.id, index),
            res,
            Some(record),
            clock_offset,
            counters,
            &mut self.batches,
        ) {
            // Capacity for every frame was reserved when the region was attached.
            let _ = self.done.push(meta, GFP_KERNEL);
        }
    }

    /// Ends the region once the card can no longer write it (its frames have records, or
    /// the card was stopped, reset or cut off the bus): completes every frame command still
    /// queued with `frame_res`, unmaps the frames, then completes the attach command with
    /// `res` (via task work).
    fn end(mut self, frame_res: i32, res: i32, clock_offset: i64, counters: &mut Counters) {
        self.reclaim_on_card(frame_res, clock_offset, counters);
        self.flush_waiting(frame_res, clock_offset, counters);
        // Every frame completed, so did every batch; none may outlive the attach command.
        self.batches.abandon(frame_res, counters);
        // Frame commands are complete (above); now unmap, then complete the attach command.
        if let Some((_, cmd)) = self.pinned.end() {
            counters.cqes += 1;
            cmd.complete_in_task(res);
        }
    }
}

/// The stream of the file that owns the card: its regions and the state they share.
struct Attached {
    /// Id of the file that attached the regions (see `file.rs`).
    owner: u64,
    /// Bytes of every frame of every region (the card has one frame size per `START`).
    frame_bytes: u32,
    /// The regions, in no order; capacity for `MAX_REGIONS` reserved with the stream.
    regions: KVec<Held>,
    /// Ids whose `ATTACH` holds a reservation (importing and mapping outside the lock).
    attaching: u64,
    /// Frames of those reservations (the stream's frames, all regions together, stay within
    /// `MAX_FRAMES`: the submit ring holds that many).
    attaching_frames: u32,
    streaming: bool,
    counters: Counters,
    /// `CLOCK_MONOTONIC` minus the card's clock, measured at `START`.
    clock_offset: i64,
}

impl Attached {
    /// An empty stream of file `owner` for frames of `frame_bytes`.
    ///
    /// # Errors
    ///
    /// `ENOMEM` if its region table cannot be allocated.
    fn new(owner: u64, frame_bytes: u32) -> Result<Self> {
        // CAST: 64 entries.
        let regions = KVec::with_capacity(MAX_REGIONS as usize, GFP_KERNEL)?;
        Ok(Self {
            owner,
            frame_bytes,
            regions,
            attaching: 0,
            attaching_frames: 0,
            streaming: false,
            counters: Counters::default(),
            clock_offset: 0,
        })
    }

    /// Frames of every region, canceled ones included, and of reservations.
    fn frames(&self) -> u32 {
        self.regions
            .iter()
            .map(|held| held.region().frame_count())
            .fold(self.attaching_frames, u32::saturating_add)
    }

    /// Region `id`, unless it is not attached or was canceled.
    fn held_mut(&mut self, id: u32) -> Option<&mut Held> {
        self.regions
            .iter_mut()
            .find(|held| held.id == id && !held.canceled)
    }

    /// Whether any region is attached and not canceled.
    fn live(&self) -> bool {
        self.regions.iter().any(|held| !held.canceled)
    }

    /// Region 0 of the stream, the only one of the copy path and of `ioctl(QBUF/DQBUF)`.
    fn first(&mut self) -> Result<&mut Held> {
        self.held_mut(0).ok_or(ENOENT)
    }

    /// Whether the stream is the copy path's (driver-owned frames).
    fn is_kernel(&self) -> bool {
        self.regions.iter().any(|held| held.region().is_kernel())
    }

    /// Completes the frame a record names.
    fn complete(&mut self, record: &CompletionRecord) {
        let (id, frame) = uncookie(record.cookie);
        match self.regions.iter_mut().find(|held| held.id == id) {
            Some(held) => held.complete(frame, record, &mut self.counters, self.clock_offset),
            None => {
                if warn_ratelimit() {
                    pr_warn!("fgrab: record for unknown region {}\n", id);
                }
            }
        }
    }

    /// Completes every frame on the card of every region with `res` (after a reset, or on a
    /// card cut off the bus).
    fn reclaim_on_card(&mut self, res: i32) {
        for held in self.regions.iter_mut() {
            held.reclaim_on_card(res, self.clock_offset, &mut self.counters);
        }
    }

    /// Stops the engine (if streaming) and takes every frame back, completing it with
    /// `res`; returns how the card stopped.
    fn stop(&mut self, engine: &mut Engine, regs: &Registers, res: i32) -> Stopped {
        let stopped = if self.streaming {
            self.streaming = false;
            let stopped = engine.stop(regs, |record| self.complete(&record));
            // Records the card never wrote (reset, removal): the card does no more DMA.
            self.reclaim_on_card(res);
            stopped
        } else {
            Stopped::Clean
        };
        for held in self.regions.iter_mut() {
            held.flush_waiting(res, self.clock_offset, &mut self.counters);
        }
        stopped
    }

    /// Ends the regions `revoked` selects, the others keep streaming: every frame of theirs
    /// comes back from the card (see [`Self::stop_revoking`]), then each ends
    /// ([`Held::end`]) and its attach command completes with `res`. Returns the ids ended.
    fn revoke(
        &mut self,
        engine: Option<&mut Engine>,
        regs: &Registers,
        revoked: impl Fn(&Held) -> bool,
        res: i32,
    ) -> u64 {
        let frame_res = if res == ENODEV.to_errno() {
            res
        } else {
            ECANCELED.to_errno()
        };
        let on_card = self
            .regions
            .iter()
            .any(|held| revoked(held) && held.on_card() > 0);
        let others = self.regions.iter().any(|held| !revoked(held));
        match engine {
            Some(engine) if !others => {
                // Nothing else streams: the stream stops.
                self.stop(engine, regs, frame_res);
            }
            Some(engine) if on_card => self.stop_revoking(engine, regs, &revoked),
            // No frame of theirs is on the card: the others are not disturbed.
            Some(_) => {}
            None => {
                // No engine (unbind): the card was quiesced and cut off the bus.
                self.streaming = false;
            }
        }
        let mut ended = 0u64;
        let mut index = 0;
        while index < self.regions.len() {
            if !revoked(&self.regions[index]) {
                index += 1;
                continue;
            }
            let Ok(held) = self.regions.remove(index) else {
                break;
            };
            ended |= 1 << held.id;
            held.end(frame_res, res, self.clock_offset, &mut self.counters);
        }
        ended
    }

    /// Takes every frame of the regions `revoked` selects back from a streaming card while
    /// the others stream on. The card has no per-submission abort and consumes its submit
    /// ring in order, so the engine is stopped (`docs/hardware.md` §6.6: every submission
    /// comes back with a record, in order, and the card does no more DMA), the flushed
    /// submissions of the other regions go back to the card in their order, and the card is
    /// enabled again without a reset (sequence numbers and drop counters go on; no frame
    /// starts while it is idle). A frame of another region aborted mid-write by the stop
    /// goes back too; its sequence number counts as a drop. Frames of the revoked regions
    /// complete as their records say (filled, or `-ECANCELED`).
    ///
    /// A card that does not stop cleanly (not idle within 2 s, or records that do not match)
    /// was reset or cut off the bus: the stream stops, and the other regions' frames on the
    /// card fail with `-EIO` as after a halt.
    fn stop_revoking(
        &mut self,
        engine: &mut Engine,
        regs: &Registers,
        revoked: &impl Fn(&Held) -> bool,
    ) {
        let kept: usize = self
            .regions
            .iter()
            .filter(|held| !revoked(held))
            .map(Held::on_card)
            .sum();
        let mut returned = KVec::<(u32, u32)>::new();
        if returned.reserve(kept, GFP_KERNEL).is_err() {
            // Nowhere to note the order of the others' submissions: stop the whole stream
            // (their frames come back with `-ECANCELED`), which needs no memory.
            self.stop(engine, regs, ECANCELED.to_errno());
            return;
        }
        let clock_offset = self.clock_offset;
        let regions = &mut self.regions;
        let counters = &mut self.counters;
        let stopped = engine.stop(regs, |record| {
            let (id, frame) = uncookie(record.cookie);
            let Some(held) = regions.iter_mut().find(|held| held.id == id) else {
                if warn_ratelimit() {
                    pr_warn!("fgrab: record for unknown region {}\n", id);
                }
                return;
            };
            let give_back = !revoked(held)
                && record.status == status::FLUSHED
                && returned.len() < kept
                && matches!(held.slots.get(frame as usize), Some(Slot::OnCard(_)));
            if !give_back {
                held.complete(frame, &record, counters, clock_offset);
                return;
            }
            if let Some(slot) = held.slots.get_mut(frame as usize) {
                if let Slot::OnCard(queued) = core::mem::replace(slot, Slot::Idle) {
                    *slot = Slot::Returned(queued);
                    if record.flags & CompletionRecord::FRAME != 0 {
                        counters.aborted_by_revoke += 1;
                    }
                    // Within the capacity reserved above: `returned.len() < kept`.
                    let _ = returned.push_within_capacity((id, frame));
                }
            }
        });
        let mut result = if stopped == Stopped::Clean {
            Ok(())
        } else {
            Err(EIO)
        };
        for (id, frame) in returned {
            let Some(held) = self.regions.iter_mut().find(|held| held.id == id) else {
                continue;
            };
            let list = held.region().list(frame);
            let Some(slot) = held.slots.get_mut(frame as usize) else {
                continue;
            };
            if result.is_ok() {
                result = list
                    .ok_or(EINVAL)
                    .and_then(|(list, count)| engine.submit(regs, list, count, cookie(id, frame)));
            }
            if result.is_ok() {
                if let Slot::Returned(queued) = core::mem::replace(slot, Slot::Idle) {
                    *slot = Slot::OnCard(queued);
                }
            }
        }
        if let Err(error) = result.and_then(|()| engine.enable(regs)) {
            if stopped == Stopped::Clean {
                // Stopped, but it would not take the frames back or start again.
                engine.quiesce(regs);
            }
            let res = if stopped == Stopped::Gone || error == ENODEV {
                ENODEV.to_errno()
            } else {
                EIO.to_errno()
            };
            self.streaming = false;
            // The card was reset or is cut off the bus: no more DMA.
            self.reclaim_on_card(res);
        }
    }

    /// Ends every region: stops the engine and completes every frame command, unmaps the
    /// frames, then completes each attach command with `res` (via task work).
    fn end(mut self, engine: Option<&mut Engine>, regs: &Registers, res: i32) {
        self.revoke(engine, regs, |_| true, res);
    }
}

/// State behind `Card::stream`.
pub(crate) struct Stream {
    /// The stream of the file that owns the card, while it has a region or a reservation
    /// (regions whose attach command was canceled included, until the watchdog ends them).
    attached: Option<Attached>,
    /// The copy path's first `read()` allocates its frames outside the lock.
    copy_reserved: bool,
    /// The card was unbound: no new region.
    gone: bool,
    /// `read()` calls copying a driver-owned frame outside the lock (unbind waits for them).
    readers: u32,
    /// The card's rings; dropped at unbind, while the device is still bound.
    engine: Option<Engine>,
    /// Runs the card's watchdog early, to end a canceled region at once; dropped at unbind,
    /// before the binding stops the watchdog.
    watchdog: Option<Kick>,
}

impl Stream {
    /// No region, card present with its rings.
    pub(crate) fn new(engine: Engine) -> Self {
        Self {
            attached: None,
            copy_reserved: false,
            gone: false,
            readers: 0,
            engine: Some(engine),
            watchdog: None,
        }
    }

    /// Lets [`Self::cancel`] run the card's watchdog early (set once the binding is
    /// complete).
    pub(crate) fn set_watchdog(&mut self, watchdog: Kick) {
        self.watchdog = Some(watchdog);
    }

    /// Whether the card's stream is in use: a region attached (or canceled and not ended
    /// yet), an `ATTACH` mapping one, or the copy path starting.
    fn slot_taken(&self) -> bool {
        self.attached.is_some() || self.copy_reserved
    }

    /// Drops the stream once it has neither a region nor a reservation.
    fn settle(&mut self) {
        if self
            .attached
            .as_ref()
            .is_some_and(|attached| attached.regions.is_empty() && attached.attaching == 0)
        {
            self.attached = None;
        }
    }

    /// Reserves region id `region` of the stream of file `owner` for an `ATTACH` in
    /// progress of `frame_count` frames of `frame_bytes`.
    ///
    /// # Errors
    ///
    /// `ENODEV` after unbind; `EBUSY` if another file owns the stream (or the copy path
    /// runs) or `region` is attached or being attached; `EINVAL` if the stream's frames have
    /// another size; `ENOSPC` if the stream's frames would exceed `MAX_FRAMES`; `ENOMEM`.
    pub(crate) fn reserve(
        &mut self,
        owner: u64,
        region: u32,
        frame_bytes: u32,
        frame_count: u32,
    ) -> Result {
        if self.gone {
            return Err(ENODEV);
        }
        if self.copy_reserved {
            return Err(EBUSY);
        }
        if region >= MAX_REGIONS {
            return Err(EINVAL);
        }
        let attached = match &mut self.attached {
            Some(attached) => attached,
            None => self.attached.insert(Attached::new(owner, frame_bytes)?),
        };
        let result = Self::admit(attached, owner, region, frame_bytes, frame_count);
        // A stream made for this request alone goes again if it is refused.
        self.settle();
        result
    }

    /// Reserves id `region` of `attached` for file `owner`'s `ATTACH` of `frame_count`
    /// frames of `frame_bytes`; see [`Self::reserve`].
    fn admit(
        attached: &mut Attached,
        owner: u64,
        region: u32,
        frame_bytes: u32,
        frame_count: u32,
    ) -> Result {
        if attached.owner != owner
            || attached.is_kernel()
            || attached.attaching & 1 << region != 0
            || attached.regions.iter().any(|held| held.id == region)
        {
            return Err(EBUSY);
        }
        if attached.frame_bytes != frame_bytes {
            // An empty stream took this request's size above.
            return Err(EINVAL);
        }
        // A count beyond `MAX_FRAMES` is refused with the region's geometry (`EINVAL`).
        if frame_count <= MAX_FRAMES && attached.frames().saturating_add(frame_count) > MAX_FRAMES {
            return Err(ENOSPC);
        }
        attached.attaching |= 1 << region;
        // Below `MAX_FRAMES` (checked above).
        attached.attaching_frames += frame_count.min(MAX_FRAMES);
        Ok(())
    }

    /// Gives up the reservation of `region` (of `frame_count` frames) whose `ATTACH`
    /// failed.
    pub(crate) fn unreserve(&mut self, region: u32, frame_count: u32) {
        if let Some(attached) = &mut self.attached {
            attached.attaching &= !(1 << region);
            attached.attaching_frames -= frame_count.min(MAX_FRAMES);
        }
        self.settle();
    }

    /// Reserves the card for the copy path's first `read()`.
    ///
    /// # Errors
    ///
    /// `ENODEV` after unbind; `EBUSY` if a region is attached or being attached.
    pub(crate) fn reserve_copy(&mut self) -> Result {
        if self.gone {
            return Err(ENODEV);
        }
        if self.slot_taken() {
            return Err(EBUSY);
        }
        self.copy_reserved = true;
        Ok(())
    }

    /// Gives up the copy path's reservation.
    pub(crate) fn unreserve_copy(&mut self) {
        self.copy_reserved = false;
    }

    /// Whether an `ATTACH` or the copy path's start holds a reservation.
    pub(crate) fn attaching(&self) -> bool {
        self.copy_reserved
            || self
                .attached
                .as_ref()
                .is_some_and(|attached| attached.attaching != 0)
    }

    /// Fills the reserved id `id` with the region file `owner` attached, kept alive by
    /// `cmd` (submitted on `ring`). If the card was unbound meanwhile, the region ends at
    /// once.
    ///
    /// If its bookkeeping cannot be allocated, the region ends at once, its command
    /// completed with `-ENOMEM`.
    pub(crate) fn fill(
        &mut self,
        owner: u64,
        id: u32,
        ring: RingId,
        region: Region,
        cmd: PendingCmd,
    ) {
        let frame_count = region.frame_count();
        let (held, allocated) = Held::new(id, Some((ring, cmd)), region);
        let clock_offset = match &mut self.attached {
            Some(attached) if attached.owner == owner => {
                attached.attaching &= !(1 << id);
                attached.attaching_frames -= frame_count.min(MAX_FRAMES);
                attached.clock_offset
            }
            _ => 0,
        };
        let failure = if self.gone {
            Some(ENODEV)
        } else if allocated.is_err() {
            Some(ENOMEM)
        } else {
            None
        };
        match (failure, &mut self.attached) {
            (None, Some(attached)) if attached.owner == owner => {
                // Capacity for `MAX_REGIONS` was reserved with the stream, and the id is
                // below it and unique.
                if let Err(error) = attached.regions.push_within_capacity(held) {
                    error.0.end(
                        ECANCELED.to_errno(),
                        ENOMEM.to_errno(),
                        clock_offset,
                        &mut attached.counters,
                    );
                }
            }
            // Never part of a stream: nothing of it is counted.
            (failure, _) => held.end(
                ECANCELED.to_errno(),
                failure.unwrap_or(EINVAL).to_errno(),
                clock_offset,
                &mut Counters::default(),
            ),
        }
        self.settle();
    }

    /// Whether an `ATTACH` holds a reservation or a `read()` copies a frame (unbind waits
    /// for both to end).
    pub(crate) fn busy(&self) -> bool {
        self.attaching() || self.readers > 0
    }

    /// Whether file `owner` may write the camera's features, and whether the card streams
    /// (the image format is fixed then): any file while no region is attached, else only
    /// the stream's owner.
    ///
    /// # Errors
    ///
    /// `ENODEV` after unbind; `EBUSY` if another file owns the stream (or its canceled
    /// regions are still ending).
    pub(crate) fn feature_writer(&self, owner: u64) -> Result<bool> {
        if self.gone {
            return Err(ENODEV);
        }
        match &self.attached {
            Some(attached) if attached.owner == owner => Ok(attached.streaming),
            Some(_) => Err(EBUSY),
            None => Ok(false),
        }
    }

    /// The stream of file `owner`.
    ///
    /// # Errors
    ///
    /// `ENODEV` after unbind, `ENOENT` if no region is attached, `EBUSY` if another file
    /// owns the stream.
    fn owned(&mut self, owner: u64) -> Result<(&mut Attached, &mut Engine)> {
        if self.gone {
            return Err(ENODEV);
        }
        let engine = self.engine.as_mut().ok_or(ENODEV)?;
        match &mut self.attached {
            None => Err(ENOENT),
            Some(attached) if attached.owner != owner => Err(EBUSY),
            Some(attached) if !attached.live() => Err(ENOENT),
            Some(attached) => Ok((attached, engine)),
        }
    }

    /// `QUEUE`: frame `index` of region `region` of the stream of file `owner` goes to the
    /// card (or waits for `START`); `cmd`, from the region's ring, completes when it is
    /// filled.
    ///
    /// # Errors
    ///
    /// Those of `owned`; `ENOENT` if `region` is not attached; `EXDEV` from another ring;
    /// `EINVAL` for an index out of range; `EALREADY` if the frame is queued already;
    /// `ENOMEM`; `ENODEV`.
    pub(crate) fn queue(
        &mut self,
        regs: &Registers,
        owner: u64,
        cmd: UringCmd,
        (region, index): (u32, u32),
        meta_addr: u64,
    ) -> Result {
        let (attached, engine) = self.owned(owner)?;
        let streaming = attached.streaming;
        let held = attached.held_mut(region).ok_or(ENOENT)?;
        if Some(cmd.ring()) != held.ring() {
            return Err(EXDEV);
        }
        if !matches!(held.slots.get(index as usize).ok_or(EINVAL)?, Slot::Idle) {
            return Err(EALREADY);
        }
        let out = match meta_addr {
            0 => None,
            meta_addr => Some(UserWriteback::new(
                meta_addr,
                core::mem::size_of::<FrameMeta>(),
            )?),
        };
        if streaming {
            let (list, count) = held.region().list(index).ok_or(EINVAL)?;
            // User space may have written the frame; the card owns it again from here.
            held.region().sync_for_device(index)?;
            engine.submit(regs, list, count, cookie(region, index))?;
        }
        let queued = Queued::Command {
            cmd: cmd.into_queued(),
            out,
        };
        if let Some(slot) = held.slots.get_mut(index as usize) {
            *slot = if streaming {
                Slot::OnCard(queued)
            } else {
                Slot::Waiting(queued)
            };
        }
        Ok(())
    }

    /// Resets the card (at probe).
    ///
    /// # Errors
    ///
    /// `ENODEV` without an engine; those of [`Engine::reset`].
    pub(crate) fn reset(&mut self, regs: &Registers) -> Result {
        self.engine.as_mut().ok_or(ENODEV)?.reset(regs)
    }

    /// `START` from file `owner`: resets the card, programs it for the stream's frames,
    /// hands it every waiting frame of every region and enables it.
    ///
    /// # Errors
    ///
    /// Those of `owned`; `EALREADY` if streaming; the engine's errors (the card is then
    /// reset and waiting frames stay queued).
    pub(crate) fn start(
        &mut self,
        regs: &Registers,
        owner: u64,
        moderation: StartModeration,
    ) -> Result {
        let (attached, engine) = self.owned(owner)?;
        if attached.streaming {
            return Err(EALREADY);
        }
        let moderation = IrqModeration {
            delay_us: moderation.delay_us,
            frames: moderation
                .frames
                .unwrap_or_else(|| default_irq_frames(attached.frames())),
        };
        engine.configure(regs, attached.frame_bytes, moderation)?;
        let mut result = Ok(());
        'regions: for held in attached.regions.iter_mut() {
            if held.canceled {
                continue;
            }
            for index in 0..held.region().frame_count() {
                let list = held.region().list(index);
                let Some(slot) = held.slots.get_mut(index as usize) else {
                    break;
                };
                if !matches!(slot, Slot::Waiting(_)) {
                    continue;
                }
                let Some((list, count)) = list else {
                    break;
                };
                result = held
                    .pinned
                    .first()
                    .sync_for_device(index)
                    .and_then(|()| engine.submit(regs, list, count, cookie(held.id, index)));
                if result.is_err() {
                    break 'regions;
                }
                if let Some(slot) = held.slots.get_mut(index as usize) {
                    if let Slot::Waiting(queued) = core::mem::replace(slot, Slot::Idle) {
                        *slot = Slot::OnCard(queued);
                    }
                }
            }
        }
        let result = result.and_then(|()| engine.enable(regs));
        if let Err(error) = result {
            // The card forgets its submissions at reset (or is cut off the bus if it will
            // not reset): they wait again.
            engine.quiesce(regs);
            for held in attached.regions.iter_mut() {
                for slot in held.slots.iter_mut() {
                    if let Slot::OnCard(queued) = core::mem::replace(slot, Slot::Idle) {
                        *slot = Slot::Waiting(queued);
                    }
                }
            }
            return Err(error);
        }
        attached.streaming = true;
        attached.counters = Counters::default();
        attached.clock_offset = engine.clock_offset(regs).unwrap_or(0);
        Ok(())
    }

    /// `STOP` from file `owner`: every queued frame of every region comes back and
    /// completes with `-ECANCELED` (filled ones complete normally).
    ///
    /// # Errors
    ///
    /// Those of `owned`; `EALREADY` if not streaming.
    pub(crate) fn stop(&mut self, regs: &Registers, owner: u64) -> Result {
        let (attached, engine) = self.owned(owner)?;
        if attached.is_kernel() {
            return Err(EINVAL);
        }
        if !attached.streaming {
            return Err(EALREADY);
        }
        attached.stop(engine, regs, ECANCELED.to_errno());
        Ok(())
    }

    /// The frame vector's interrupt: counts it, then completes every frame the card filled.
    pub(crate) fn frame_interrupt(&mut self, regs: &Registers) {
        if let Some(attached) = self.attached.as_mut() {
            attached.counters.irqs += 1;
        }
        self.frames_done(regs);
    }

    /// Frame-done interrupt: completes every frame the card has filled.
    pub(crate) fn frames_done(&mut self, regs: &Registers) {
        let (Some(engine), Some(attached)) = (self.engine.as_mut(), self.attached.as_mut()) else {
            return;
        };
        if attached.streaming {
            let _ = engine.drain(regs, |record| attached.complete(&record));
        }
    }

    /// Watchdog period: completes frames whose interrupt was lost, and ends the stream of a
    /// card that stopped answering (surprise removal): it does no DMA any more, so its
    /// frames complete with `-ENODEV`; the regions stay until detached or unbound.
    pub(crate) fn poll(&mut self, regs: &Registers, card: u32) {
        self.frames_done(regs);
        let (Some(engine), Some(attached)) = (self.engine.as_mut(), self.attached.as_mut()) else {
            return;
        };
        if attached.streaming && !Engine::responds(regs) {
            pr_err!("fgrab{}: card stopped responding; its stream ends\n", card);
            attached.stop(engine, regs, ENODEV.to_errno());
        }
    }

    /// Error interrupt: logs the fault; a halted card is reset and its frames fail with
    /// `-EIO` (the stream stops; user space may start it again).
    pub(crate) fn errors(&mut self, regs: &Registers, card: u32) {
        let Some((irq, fault, cookie)) = Engine::take_errors(regs) else {
            return;
        };
        if fault != 0 && warn_ratelimit() {
            let (region, frame) = uncookie(cookie);
            pr_warn!(
                "fgrab{}: card fault {:#x} (region {}, frame {}), interrupt causes {:#x}\n",
                card,
                fault,
                region,
                frame,
                irq
            );
        }
        let (Some(engine), Some(attached)) = (self.engine.as_mut(), self.attached.as_mut()) else {
            return;
        };
        if attached.streaming && Engine::halted(regs) {
            pr_err!(
                "fgrab{}: card halted, resetting it; queued frames fail\n",
                card
            );
            attached.stop(engine, regs, EIO.to_errno());
        }
    }

    /// Detaches region `region` of the stream of file `owner`; its attach command completes
    /// with 0 once the card can no longer write it (see [`Attached::revoke`]). The other
    /// regions keep streaming.
    ///
    /// # Errors
    ///
    /// Those of `owned`; `ENOENT` if `region` is not attached (or was canceled); `EINVAL`
    /// on the copy path's stream.
    pub(crate) fn detach(&mut self, regs: &Registers, owner: u64, region: u32) -> Result {
        let (attached, engine) = self.owned(owner)?;
        if attached.is_kernel() {
            // Driver-owned frames end with the file that reads them.
            return Err(EINVAL);
        }
        attached.held_mut(region).ok_or(ENOENT)?;
        attached.revoke(
            Some(engine),
            regs,
            |held| held.id == region && !held.canceled,
            0,
        );
        self.settle();
        Ok(())
    }

    /// io_uring cancels `cmd` (ring exit, or `execve()` of its task): if `cmd` is the attach
    /// command of a region, the region leaves its owner and waits for
    /// [`Self::end_canceled`]; returns its id if so. Nothing here waits: the caller holds
    /// the ring lock. Frame commands are never cancelable: their region's end completes
    /// them.
    pub(crate) fn cancel(&mut self, cmd: &UringCmd) -> Option<u32> {
        let held = self.attached.as_mut()?.regions.iter_mut().find(|held| {
            !held.canceled
                && held
                    .pinned
                    .then()
                    .as_ref()
                    .is_some_and(|(_, attach)| cmd.is(attach))
        })?;
        held.canceled = true;
        let id = held.id;
        if let Some(watchdog) = &self.watchdog {
            watchdog.kick();
        }
        Some(id)
    }

    /// Ends the regions whose attach command was canceled (see [`Self::cancel`]): their
    /// frames come back from the card and complete with `-ECANCELED` (the other regions
    /// stream on), each region is unmapped and its pages dirtied, then its attach command
    /// completes. Returns the ids ended.
    pub(crate) fn end_canceled(&mut self, regs: &Registers) -> u64 {
        let Some(attached) = self.attached.as_mut() else {
            return 0;
        };
        if !attached.regions.iter().any(|held| held.canceled) {
            return 0;
        }
        let ended = attached.revoke(
            self.engine.as_mut(),
            regs,
            |held| held.canceled,
            ECANCELED.to_errno(),
        );
        self.settle();
        ended
    }

    /// File `owner` is released. Each attach command holds a file reference, so a region it
    /// attached cannot exist any more; end its stream defensively if it does.
    pub(crate) fn release(&mut self, regs: &Registers, owner: u64) {
        if self
            .attached
            .as_ref()
            .is_some_and(|attached| attached.owner == owner && attached.attaching == 0)
        {
            if let Some(attached) = self.attached.take() {
                attached.end(self.engine.as_mut(), regs, EBADF.to_errno());
            }
        }
    }

    /// The card is leaving: from now on every request fails with `ENODEV`, so the
    /// reservations and copying readers that `Card::shutdown` waits for drain instead of
    /// being renewed (four threads in `read()` kept one copying at almost every moment and
    /// held an unbind off for minutes).
    pub(crate) fn depart(&mut self) {
        self.gone = true;
    }

    /// The card is being unbound: end every region while the device is still bound (DMA
    /// mappings must not outlive the binding), free the rings and refuse new regions. The
    /// caller has waited for reservations to end (see `Card::shutdown`).
    pub(crate) fn shutdown(&mut self, regs: &Registers) {
        self.gone = true;
        // The binding stops the watchdog next.
        self.watchdog = None;
        self.end_canceled(regs);
        if let Some(attached) = self.attached.take() {
            attached.end(self.engine.as_mut(), regs, ENODEV.to_errno());
        }
        if let Some(engine) = self.engine.take() {
            // Quiesce even an idle card, and take it off the bus, before its rings are freed.
            engine.release(regs);
        }
    }

    /// Fills [`Stats`] from the current state: the geometry is that of every region
    /// together (`frame_stride` the lowest-numbered region's).
    pub(crate) fn fill_stats(&self, regs: &Registers, stats: &mut Stats) {
        let Some(attached) = &self.attached else {
            return;
        };
        let mut lowest = None;
        for held in attached.regions.iter() {
            let mut region = Stats::default();
            held.region().fill_stats(&mut region);
            stats.frame_count = stats.frame_count.saturating_add(region.frame_count);
            stats.frame_bytes = region.frame_bytes;
            stats.region_bytes = stats.region_bytes.saturating_add(region.region_bytes);
            stats.descriptors_total = stats
                .descriptors_total
                .saturating_add(region.descriptors_total);
            stats.descriptors_max_per_frame = stats
                .descriptors_max_per_frame
                .max(region.descriptors_max_per_frame);
            stats.mapped_entries = stats.mapped_entries.saturating_add(region.mapped_entries);
            if lowest.is_none_or(|id| held.id < id) {
                lowest = Some(held.id);
                stats.frame_stride = region.frame_stride;
            }
            // CAST: at most `MAX_FRAMES` slots.
            stats.frames_queued += held
                .slots
                .iter()
                .filter(|slot| !matches!(slot, Slot::Idle))
                .count() as u32;
        }
        if lowest.is_none() {
            // Only reservations: nothing attached yet.
            return;
        }
        stats.state = if attached.streaming {
            STATE_STREAMING
        } else {
            STATE_ATTACHED
        };
        stats.frames_delivered = attached.counters.delivered;
        stats.frames_failed = attached.counters.failed;
        stats.bytes_delivered = attached.counters.bytes;
        stats.frame_irqs = attached.counters.irqs;
        stats.frames_completed = attached.counters.frames_completed;
        // Deferred ones; the card adds those answered inline (`Card::stats`).
        stats.cqes = attached.counters.cqes;
        if self.engine.is_some() {
            let (underrun, other) = Engine::drops(regs);
            stats.frames_dropped_underrun = underrun;
            stats.frames_dropped_other = other.saturating_add(attached.counters.aborted_by_revoke);
        }
    }
}

#[kernel::macros::kunit_tests(fgrab_stream)]
mod tests {
    use super::{batch::batch_res, cookie, default_irq_frames, uncookie};
    use crate::uapi::{MAX_BATCH_FRAMES, MAX_FRAMES, MAX_REGIONS};
    use kernel::error::code::{ECANCELED, EIO, ENODEV};

    #[test]
    fn cookie_names_region_and_frame() {
        for (region, frame) in [(0, 0), (0, MAX_FRAMES - 1), (MAX_REGIONS - 1, 0), (5, 17)] {
            assert_eq!(uncookie(cookie(region, frame)), (region, frame));
        }
        // Region 0's cookies are the frame indexes, as before regions.
        assert_eq!(cookie(0, 42), 42);
    }

    #[test]
    fn default_irq_frames_keeps_three_quarters_queued() {
        for (frames, expected) in [(0, 1), (1, 1), (7, 1), (8, 2), (64, 16), (MAX_FRAMES, 16)] {
            assert_eq!(default_irq_frames(frames), expected);
        }
    }

    #[test]
    fn batch_res_counts_filled_frames_else_first_error() {
        let canceled = ECANCELED.to_errno();
        for (filled, first_error, expected) in [
            (8, 0, 8),
            // A frame failing mid-batch does not fail the batch.
            (7, EIO.to_errno(), 7),
            (1, canceled, 1),
            (0, canceled, canceled),
            (0, ENODEV.to_errno(), ENODEV.to_errno()),
            (MAX_BATCH_FRAMES, 0, MAX_BATCH_FRAMES as i32),
        ] {
            assert_eq!(batch_res(filled, first_error), expected);
        }
    }

    #[test]
    fn card_cookie_beyond_every_region_names_none() {
        // A cookie the card made up decodes to an id no region can have.
        let (region, _) = uncookie(u32::MAX);
        assert!(region >= MAX_REGIONS);
    }
}
