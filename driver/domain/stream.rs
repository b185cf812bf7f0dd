// SPDX-License-Identifier: GPL-2.0

//! The streaming state of a card: which file owns it, the region attached to it, where each
//! frame is (user space, queued in the driver, on the card), and the card's engine.
//!
//! Lock order: `Card::stream` is the only driver lock, and it nests inside io_uring's ring
//! lock: io_uring holds that lock when it calls `->uring_cmd`, cancel calls included. So
//! nothing that may take a ring lock runs under `Card::stream`: importing a fixed buffer
//! and marking a command cancelable take it when a command is issued from io-wq
//! (`IO_URING_F_UNLOCKED`, e.g. `IOSQE_ASYNC`), so `ATTACH` does both outside the lock,
//! holding a reservation of the card's region slot instead. Completions from under the lock
//! go through task work. The interrupt thread takes `Card::stream` and nothing else; the BAR
//! is accessed in short RCU sections inside it (see `hardware/engine.rs`).
//!
//! A cancel call (ring exit, or `execve()` of a submitting task) holds the ring lock, and
//! io_uring repeats it until the command completes, so it only hands the region over to the
//! watchdog ([`Stream::cancel`]). Ending it (seconds for a card that will not stop, a folio
//! lock per page of the region) happens there, where no ring is locked.
//!
//! Teardown has one order whatever triggers it (detach, ring exit, file release, device
//! unbind): stop the engine and take every frame back from the card (reset it if it does
//! not stop), complete every queued frame command, unmap every frame, then complete the
//! attach command, after which io_uring may unpin the pages.

mod copy;
mod waiters;

use kernel::prelude::*;
use zerocopy::IntoBytes;

use crate::{
    abstractions::{
        drop_order::DropOrder,
        log::warn_ratelimit,
        periodic::Kick,
        uring_cmd::{PendingCmd, RingId, UringCmd, UserWriteback, USER_WRITEBACK_BYTES},
    },
    domain::region::Region,
    hardware::{
        dma::{status, CompletionRecord},
        engine::{Engine, Stopped},
        regs::Registers,
    },
    uapi::{
        FrameMeta, Stats, META_ERROR, META_FLUSHED, META_FRAME, META_INCOMPLETE, STATE_ATTACHED,
        STATE_STREAMING,
    },
};

/// Who is told when a queued frame completes.
enum Queued {
    /// A `QUEUE` command, with the metadata buffer it asked for.
    Command {
        cmd: PendingCmd,
        out: Option<KBox<UserWriteback>>,
    },
    /// A frame queued by `ioctl(QBUF)` or by the copy path: its metadata goes to the
    /// region's done list, where `ioctl(DQBUF)` or `read()` picks it up.
    Waiter,
}

impl Queued {
    /// Completes the frame: `res` bytes or -errno, with the card's record if there is one.
    /// A waiter's metadata is returned for the done list.
    fn complete(
        self,
        frame: u32,
        res: i32,
        record: Option<&CompletionRecord>,
        clock_offset: i64,
    ) -> Option<FrameMeta> {
        let meta = meta(frame, res, record, clock_offset);
        match self {
            Self::Command { cmd, out } => {
                let sequence = record
                    .filter(|record| record.flags & CompletionRecord::FRAME != 0)
                    .map_or(u64::MAX, |record| record.sequence);
                let out = out.map(|mut out| {
                    out.bytes.copy_from_slice(meta.as_bytes());
                    out
                });
                cmd.complete_lazy(res, sequence, out);
                None
            }
            Self::Waiter => Some(meta),
        }
    }
}

// A frame's metadata travels in a completion's writeback.
const _: () = assert!(core::mem::size_of::<FrameMeta>() == USER_WRITEBACK_BYTES);

/// What user space learns about a frame besides the CQE. The card's timestamp is turned into
/// `CLOCK_MONOTONIC` with `clock_offset` (measured at `START`).
fn meta(frame: u32, res: i32, record: Option<&CompletionRecord>, clock_offset: i64) -> FrameMeta {
    let mut meta = FrameMeta {
        frame,
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

/// Where one frame of the region is.
enum Slot {
    /// User space owns it.
    Idle,
    /// Queued while the stream is stopped; goes to the card at `START`.
    Waiting(Queued),
    /// On the card's submit ring or being written.
    OnCard(Queued),
}

/// Counters of the current stream, reset at `START`.
#[derive(Default)]
struct Counters {
    delivered: u64,
    failed: u64,
    bytes: u64,
    /// Frame interrupts handled.
    irqs: u64,
}

/// A region attached by one file, with the command that keeps its pages pinned.
struct Attached {
    /// Id of the file that attached it (see `file.rs`).
    owner: u64,
    /// The region, and the attach command with its ring (frame commands must come from
    /// that ring, so that its exit, which cancels the attach command, also ends them; none
    /// for the copy path's driver-owned frames, which end when their file is released).
    /// io_uring may unpin the pages once the attach command completes, so the region is
    /// unmapped first: [`DropOrder`] holds that order on every path, `end` and any drop.
    pinned: DropOrder<Region, Option<(RingId, PendingCmd)>>,
    slots: KVec<Slot>,
    /// Frames queued as [`Queued::Waiter`] that completed, oldest first.
    done: KVec<FrameMeta>,
    streaming: bool,
    counters: Counters,
    /// `CLOCK_MONOTONIC` minus the card's clock, measured at `START`.
    clock_offset: i64,
}

impl Attached {
    /// Completes every frame that is not on the card with `res`.
    fn flush_waiting(&mut self, res: i32) {
        for (index, slot) in self.slots.iter_mut().enumerate() {
            if matches!(slot, Slot::Waiting(_)) {
                if let Slot::Waiting(queued) = core::mem::replace(slot, Slot::Idle) {
                    // CAST: at most `MAX_FRAMES` slots.
                    if let Some(meta) = queued.complete(index as u32, res, None, self.clock_offset)
                    {
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
    fn reclaim_on_card(&mut self, res: i32) {
        for (index, slot) in self.slots.iter_mut().enumerate() {
            if matches!(slot, Slot::OnCard(_)) {
                if let Slot::OnCard(queued) = core::mem::replace(slot, Slot::Idle) {
                    // CAST: at most `MAX_FRAMES` slots.
                    let index = index as u32;
                    if let Some(meta) = queued.complete(index, res, None, self.clock_offset) {
                        let _ = self.done.push(meta, GFP_KERNEL);
                    }
                }
            }
        }
    }

    /// Completes the frame a record names. The record comes from the card, which is not
    /// trusted: a byte count beyond the frame is clamped and fails the frame, and warnings
    /// about bad records are rate limited.
    fn complete(&mut self, record: &CompletionRecord) {
        let index = record.cookie;
        let Some(slot) = self.slots.get_mut(index as usize) else {
            if warn_ratelimit() {
                pr_warn!("fgrab: record for unknown frame {}\n", index);
            }
            return;
        };
        if !matches!(slot, Slot::OnCard(_)) {
            // Left as it is: a frame waiting for `START` keeps its command.
            if warn_ratelimit() {
                pr_warn!("fgrab: record for frame {} not on the card\n", index);
            }
            return;
        }
        let Slot::OnCard(queued) = core::mem::replace(slot, Slot::Idle) else {
            return;
        };
        let frame_bytes = self.pinned.first().frame_bytes();
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
            self.pinned.first().sync_for_cpu(index);
        }
        let res = match record.status {
            _ if overlong => {
                self.counters.failed += 1;
                EIO.to_errno()
            }
            status::OK | status::INCOMPLETE => {
                self.counters.delivered += 1;
                self.counters.bytes += u64::from(record.bytes);
                // CAST: at most `frame_bytes`, itself at most `MAX_FRAME_BYTES`, which probe
                // checked fits an `i32`.
                record.bytes as i32
            }
            status::FLUSHED => ECANCELED.to_errno(),
            status::DMA_ERROR | status::DESC_ERROR => {
                self.counters.failed += 1;
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
                self.counters.failed += 1;
                EIO.to_errno()
            }
        };
        if let Some(meta) = queued.complete(index, res, Some(record), self.clock_offset) {
            // Capacity for every frame was reserved when the region was attached.
            let _ = self.done.push(meta, GFP_KERNEL);
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
        self.flush_waiting(res);
        stopped
    }

    /// Ends the region: stops the engine and completes every frame command, unmaps the
    /// frames, then completes the attach command with `res` (via task work).
    fn end(mut self, engine: Option<&mut Engine>, regs: &Registers, res: i32) {
        let frame_res = if res == ENODEV.to_errno() {
            res
        } else {
            ECANCELED.to_errno()
        };
        match engine {
            Some(engine) => {
                self.stop(engine, regs, frame_res);
            }
            None => {
                // No engine: the card was never started or is gone; nothing is on it.
                self.streaming = false;
                self.reclaim_on_card(frame_res);
                self.flush_waiting(frame_res);
            }
        }
        // Frame commands are complete (above); now unmap, then complete the attach command.
        if let Some((_, cmd)) = self.pinned.end() {
            cmd.complete_in_task(res);
        }
    }
}

impl Attached {
    /// A stopped region with every frame idle; `Err` if its bookkeeping could not be
    /// allocated (the region must then end at once).
    fn new(owner: u64, attach: Option<(RingId, PendingCmd)>, region: Region) -> (Self, Result) {
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
        let attached = Self {
            owner,
            pinned: DropOrder::new(region, attach),
            slots,
            done,
            streaming: false,
            counters: Counters::default(),
            clock_offset: 0,
        };
        (attached, allocated)
    }

    /// The ring of the attach command (none for driver-owned frames).
    fn ring(&self) -> Option<RingId> {
        self.pinned.then().as_ref().map(|(ring, _)| *ring)
    }
}

/// State behind `Card::stream`.
pub(crate) struct Stream {
    attached: Option<Attached>,
    /// A region whose attach command io_uring canceled, left for the watchdog to end
    /// outside the ring lock ([`Self::end_canceled`]); it still holds the region slot.
    canceled: Option<Attached>,
    /// An `ATTACH` is importing and mapping its region outside the lock.
    attaching: bool,
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
            canceled: None,
            attaching: false,
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

    /// Whether the card's one region slot is in use: a region attached, a canceled one not
    /// ended yet, or an `ATTACH` mapping one.
    fn slot_taken(&self) -> bool {
        self.attached.is_some() || self.canceled.is_some() || self.attaching
    }

    /// Reserves the card's region slot for an `ATTACH` in progress.
    ///
    /// # Errors
    ///
    /// `ENODEV` after unbind; `EBUSY` if a region is attached or being attached.
    pub(crate) fn reserve(&mut self) -> Result {
        if self.gone {
            return Err(ENODEV);
        }
        if self.slot_taken() {
            return Err(EBUSY);
        }
        self.attaching = true;
        Ok(())
    }

    /// Whether an `ATTACH` (or the copy path's start) holds the region slot's reservation.
    pub(crate) fn attaching(&self) -> bool {
        self.attaching
    }

    /// Gives up a reservation whose `ATTACH` failed.
    pub(crate) fn unreserve(&mut self) {
        self.attaching = false;
    }

    /// Fills the reserved slot with the region file `owner` attached, kept alive by `cmd`
    /// (submitted on `ring`). If the card was unbound meanwhile, the region ends at once.
    ///
    /// If its bookkeeping cannot be allocated, the region ends at once, its command
    /// completed with `-ENOMEM`.
    pub(crate) fn fill(
        &mut self,
        regs: &Registers,
        owner: u64,
        ring: RingId,
        region: Region,
        cmd: PendingCmd,
    ) {
        self.attaching = false;
        let (attached, allocated) = Attached::new(owner, Some((ring, cmd)), region);
        if self.gone {
            attached.end(None, regs, ENODEV.to_errno());
        } else if allocated.is_err() {
            attached.end(None, regs, ENOMEM.to_errno());
        } else {
            self.attached = Some(attached);
        }
    }

    /// Whether an `ATTACH` holds a reservation or a `read()` copies a frame (unbind waits
    /// for both to end).
    pub(crate) fn busy(&self) -> bool {
        self.attaching || self.readers > 0
    }

    /// Whether file `owner` may write the camera's features, and whether the card streams
    /// (the image format is fixed then): any file while no region is attached, else only
    /// the region's owner.
    ///
    /// # Errors
    ///
    /// `ENODEV` after unbind; `EBUSY` if another file attached the region (or a canceled
    /// region is still ending).
    pub(crate) fn feature_writer(&self, owner: u64) -> Result<bool> {
        if self.gone {
            return Err(ENODEV);
        }
        match (&self.attached, &self.canceled) {
            (Some(attached), _) if attached.owner == owner => Ok(attached.streaming),
            (Some(_), _) | (None, Some(_)) => Err(EBUSY),
            (None, None) => Ok(false),
        }
    }

    /// The region file `owner` attached.
    ///
    /// # Errors
    ///
    /// `ENODEV` after unbind, `ENOENT` if no region is attached, `EBUSY` if another file
    /// attached it.
    fn owned(&mut self, owner: u64) -> Result<(&mut Attached, &mut Engine)> {
        if self.gone {
            return Err(ENODEV);
        }
        let engine = self.engine.as_mut().ok_or(ENODEV)?;
        match &mut self.attached {
            None => Err(ENOENT),
            Some(attached) if attached.owner != owner => Err(EBUSY),
            Some(attached) => Ok((attached, engine)),
        }
    }

    /// `QUEUE`: frame `index` of the region file `owner` attached on `ring` goes to the card
    /// (or waits for `START`); `cmd` completes when it is filled.
    ///
    /// # Errors
    ///
    /// Those of `owned`; `EXDEV` from another ring; `EINVAL` for an index out of range;
    /// `EALREADY` if the frame is queued already; `ENOMEM`; `ENODEV`.
    pub(crate) fn queue(
        &mut self,
        regs: &Registers,
        owner: u64,
        cmd: UringCmd,
        index: u32,
        meta_addr: u64,
    ) -> Result {
        let (attached, engine) = self.owned(owner)?;
        if Some(cmd.ring()) != attached.ring() {
            return Err(EXDEV);
        }
        let slot = attached.slots.get_mut(index as usize).ok_or(EINVAL)?;
        if !matches!(slot, Slot::Idle) {
            return Err(EALREADY);
        }
        let out = match meta_addr {
            0 => None,
            meta_addr => Some(KBox::new(
                UserWriteback {
                    addr: meta_addr,
                    bytes: [0; USER_WRITEBACK_BYTES],
                },
                GFP_KERNEL,
            )?),
        };
        if attached.streaming {
            let (list, count) = attached.pinned.first().list(index).ok_or(EINVAL)?;
            // User space may have written the frame; the card owns it again from here.
            attached.pinned.first().sync_for_device(index)?;
            engine.submit(regs, list, count, index)?;
            *slot = Slot::OnCard(Queued::Command {
                cmd: cmd.into_queued(),
                out,
            });
        } else {
            *slot = Slot::Waiting(Queued::Command {
                cmd: cmd.into_queued(),
                out,
            });
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

    /// `START` from file `owner`: resets the card, programs it for the region's frames,
    /// hands it every waiting frame and enables it.
    ///
    /// # Errors
    ///
    /// Those of `owned`; `EALREADY` if streaming; the engine's errors (the card is then
    /// reset and waiting frames stay queued).
    pub(crate) fn start(
        &mut self,
        regs: &Registers,
        owner: u64,
        irq_delay_us: Option<u32>,
    ) -> Result {
        let (attached, engine) = self.owned(owner)?;
        if attached.streaming {
            return Err(EALREADY);
        }
        engine.configure(regs, attached.pinned.first().frame_bytes(), irq_delay_us)?;
        let mut result = Ok(());
        for index in 0..attached.pinned.first().frame_count() {
            let Some(slot) = attached.slots.get_mut(index as usize) else {
                break;
            };
            if !matches!(slot, Slot::Waiting(_)) {
                continue;
            }
            let Some((list, count)) = attached.pinned.first().list(index) else {
                break;
            };
            result = attached
                .pinned
                .first()
                .sync_for_device(index)
                .and_then(|()| engine.submit(regs, list, count, index));
            if result.is_err() {
                break;
            }
            if let Slot::Waiting(queued) = core::mem::replace(slot, Slot::Idle) {
                *slot = Slot::OnCard(queued);
            }
        }
        let result = result.and_then(|()| engine.enable(regs));
        if let Err(error) = result {
            // The card forgets its submissions at reset (or is cut off the bus if it will
            // not reset): they wait again.
            engine.quiesce(regs);
            for slot in attached.slots.iter_mut() {
                if let Slot::OnCard(queued) = core::mem::replace(slot, Slot::Idle) {
                    *slot = Slot::Waiting(queued);
                }
            }
            return Err(error);
        }
        attached.streaming = true;
        attached.counters = Counters::default();
        attached.clock_offset = engine.clock_offset(regs).unwrap_or(0);
        Ok(())
    }

    /// `STOP` from file `owner`: every queued frame comes back and completes with
    /// `-ECANCELED` (filled ones complete normally).
    ///
    /// # Errors
    ///
    /// Those of `owned`; `EALREADY` if not streaming.
    pub(crate) fn stop(&mut self, regs: &Registers, owner: u64) -> Result {
        let (attached, engine) = self.owned(owner)?;
        if attached.pinned.first().is_kernel() {
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
    /// frames complete with `-ENODEV`; the region stays until detached or unbound.
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
            pr_warn!(
                "fgrab{}: card fault {:#x} (frame {}), interrupt causes {:#x}\n",
                card,
                fault,
                cookie,
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

    /// Detaches the region file `owner` attached; its attach command completes with 0.
    ///
    /// # Errors
    ///
    /// Those of `owned`.
    pub(crate) fn detach(&mut self, regs: &Registers, owner: u64) -> Result {
        if self.owned(owner)?.0.pinned.first().is_kernel() {
            // Driver-owned frames end with the file that reads them.
            return Err(EINVAL);
        }
        if let Some(attached) = self.attached.take() {
            attached.end(self.engine.as_mut(), regs, 0);
        }
        Ok(())
    }

    /// io_uring cancels `cmd` (ring exit, or `execve()` of its task): if `cmd` is the region's attach command,
    /// the region leaves its owner and waits for [`Self::end_canceled`]; returns whether it
    /// did. Nothing here waits: the caller holds the ring lock. Frame commands are never
    /// cancelable: the attach command's end completes them.
    pub(crate) fn cancel(&mut self, cmd: &UringCmd) -> bool {
        if !self
            .attached
            .as_ref()
            .and_then(|attached| attached.pinned.then().as_ref())
            .is_some_and(|(_, attach)| cmd.is(attach))
        {
            return false;
        }
        self.canceled = self.attached.take();
        if let Some(watchdog) = &self.watchdog {
            watchdog.kick();
        }
        true
    }

    /// Ends the region whose attach command was canceled (see [`Self::cancel`]): the card
    /// is stopped, frames complete with `-ECANCELED`, the region is unmapped and its pages
    /// dirtied, then the attach command completes. Returns whether there was one.
    pub(crate) fn end_canceled(&mut self, regs: &Registers) -> bool {
        let Some(canceled) = self.canceled.take() else {
            return false;
        };
        canceled.end(self.engine.as_mut(), regs, ECANCELED.to_errno());
        true
    }

    /// File `owner` is released. Its attach command holds a file reference, so a region it
    /// attached cannot exist any more; end one defensively if it does.
    pub(crate) fn release(&mut self, regs: &Registers, owner: u64) {
        if self
            .attached
            .as_ref()
            .is_some_and(|attached| attached.owner == owner)
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

    /// The card is being unbound: end the region while the device is still bound (DMA
    /// mappings must not outlive the binding), free the rings and refuse new regions. The
    /// caller has waited for a reservation to end (see `Card::shutdown`).
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

    /// Fills [`Stats`] from the current state.
    pub(crate) fn fill_stats(&self, regs: &Registers, stats: &mut Stats) {
        let Some(attached) = &self.attached else {
            return;
        };
        attached.pinned.first().fill_stats(stats);
        stats.state = if attached.streaming {
            STATE_STREAMING
        } else {
            STATE_ATTACHED
        };
        // CAST: at most `MAX_FRAMES` slots.
        stats.frames_queued = attached
            .slots
            .iter()
            .filter(|slot| !matches!(slot, Slot::Idle))
            .count() as u32;
        stats.frames_delivered = attached.counters.delivered;
        stats.frames_failed = attached.counters.failed;
        stats.bytes_delivered = attached.counters.bytes;
        stats.frame_irqs = attached.counters.irqs;
        if self.engine.is_some() {
            let (underrun, other) = Engine::drops(regs);
            stats.frames_dropped_underrun = underrun;
            stats.frames_dropped_other = other;
        }
    }
}
