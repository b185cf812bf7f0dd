// SPDX-License-Identifier: GPL-2.0

//! Batched recycling (`QUEUE_BATCH`, issue 15): one command queues several consecutive
//! frames of a region and completes once, when the last of them is no longer the card's,
//! with every frame's metadata written to user memory in one copy. One SQE and one CQE
//! for up to `MAX_BATCH_FRAMES` frames.
//!
//! Each frame of a batch sits in its slot like a frame of `QUEUE` ([`Queued::Batch`]), so
//! every path that takes frames back (records, stop, revoke, reset, unbind) takes a batch's
//! frames back too; the batch only counts them. A batch belongs to one region and lives in
//! its [`Batches`]: the region cannot end before every frame completed, so neither can it
//! end before its batches completed.

use kernel::prelude::*;
use zerocopy::IntoBytes;

use super::{cookie, Counters, Queued, Slot, Stream};
use crate::{
    abstractions::uring_cmd::{PendingCmd, UringCmd, UserWriteback},
    hardware::regs::Registers,
    uapi::{FrameMeta, MAX_BATCH_FRAMES},
};

// A batch's metadata fits one completion's writeback.
const _: () = assert!(
    MAX_BATCH_FRAMES as usize * core::mem::size_of::<FrameMeta>()
        <= crate::abstractions::uring_cmd::MAX_WRITEBACK_BYTES
);

/// One `QUEUE_BATCH` in flight.
struct Batch {
    /// Names the batch in its frames' slots ([`Queued::Batch`]); unique in the region.
    key: u64,
    cmd: PendingCmd,
    /// The frames' metadata, in batch order, if user space asked for it.
    out: Option<UserWriteback>,
    /// Frames not completed yet.
    remaining: u32,
    /// Frames the card filled (completed with a byte count).
    filled: u32,
    /// Result of the first frame that failed (0: none did).
    first_error: i32,
    /// Sequence number of the batch's last frame (`u64::MAX` until it has one).
    last_sequence: u64,
    /// Frames in the batch.
    count: u32,
}

/// A batch's result: the frames filled, or, when none was, the first frame's error
/// (`first_error`, 0 if none failed).
pub(super) fn batch_res(filled: u32, first_error: i32) -> i32 {
    if filled > 0 || first_error == 0 {
        // CAST: at most `MAX_BATCH_FRAMES`.
        filled.min(MAX_BATCH_FRAMES) as i32
    } else {
        first_error
    }
}

impl Batch {
    /// The command's result ([`batch_res`]).
    fn res(&self) -> i32 {
        batch_res(self.filled, self.first_error)
    }

    /// Completes the command (lazily, like `QUEUE`'s frames).
    fn complete(self, counters: &mut Counters) {
        counters.cqes += 1;
        let res = self.res();
        self.cmd.complete_lazy(res, self.last_sequence, self.out);
    }
}

/// The batches in flight of one region. Bounded: every batch holds at least one frame.
#[derive(Default)]
pub(super) struct Batches {
    batches: KVec<Batch>,
    next_key: u64,
}

impl Batches {
    /// Frame `position` of batch `key` completed with `res` and `meta`: notes it, and
    /// completes the batch's command if it was its last frame.
    pub(super) fn frame_done(
        &mut self,
        key: u64,
        position: u32,
        res: i32,
        meta: &FrameMeta,
        counters: &mut Counters,
    ) {
        let Some(index) = self.batches.iter().position(|batch| batch.key == key) else {
            // Every slot of a batch names it until the batch completes.
            return;
        };
        let batch = &mut self.batches[index];
        if let Some(out) = batch.out.as_mut() {
            let size = core::mem::size_of::<FrameMeta>();
            // CAST: below `MAX_BATCH_FRAMES`.
            let start = position as usize * size;
            if let Some(bytes) = out.bytes_mut().get_mut(start..start + size) {
                bytes.copy_from_slice(meta.as_bytes());
            }
        }
        if res >= 0 {
            batch.filled += 1;
        } else if batch.first_error == 0 {
            batch.first_error = res;
        }
        if position + 1 == batch.count {
            batch.last_sequence = meta.sequence;
        }
        batch.remaining = batch.remaining.saturating_sub(1);
        if batch.remaining == 0 {
            if let Ok(batch) = self.batches.remove(index) {
                batch.complete(counters);
            }
        }
    }

    /// Completes every batch left (none is, once every slot of the region is idle; a
    /// safety net before the region's attach command completes).
    pub(super) fn abandon(&mut self, res: i32, counters: &mut Counters) {
        while let Some(mut batch) = self.batches.pop() {
            if batch.filled == 0 && batch.first_error == 0 {
                batch.first_error = res;
            }
            batch.complete(counters);
        }
    }
}

/// A validated `QUEUE_BATCH`: frames `first..first + count` of region `region`.
pub(crate) struct BatchRequest {
    pub(crate) region: u32,
    pub(crate) first: u32,
    pub(crate) count: u32,
    pub(crate) meta_addr: u64,
}

impl Stream {
    /// `QUEUE_BATCH`: frames `first..first + count` of region `region` of the stream of file
    /// `owner` go to the card, in order (or wait for `START`); `cmd`, from the region's
    /// ring, completes when the last of them is no longer the card's. All or nothing: a
    /// refused batch queues no frame.
    ///
    /// # Errors
    ///
    /// Those of `owned`; `ENOENT` if `region` is not attached; `EXDEV` from another ring;
    /// `EINVAL` for a count of 0 or above `MAX_BATCH_FRAMES`, or frames out of range;
    /// `EALREADY` if one of the frames is queued already (by `QUEUE`, `ioctl(QBUF)` or
    /// another batch); `ENOMEM`; `ENODEV`.
    pub(crate) fn queue_batch(
        &mut self,
        regs: &Registers,
        owner: u64,
        cmd: UringCmd,
        request: &BatchRequest,
    ) -> Result {
        let (attached, engine) = self.owned(owner)?;
        let streaming = attached.streaming;
        let clock_offset = attached.clock_offset;
        let counters = &mut attached.counters;
        let held = attached
            .regions
            .iter_mut()
            .find(|held| held.id == request.region && !held.canceled)
            .ok_or(ENOENT)?;
        if Some(cmd.ring()) != held.ring() {
            return Err(EXDEV);
        }
        if request.count == 0 || request.count > MAX_BATCH_FRAMES {
            return Err(EINVAL);
        }
        let end = request.first.checked_add(request.count).ok_or(EINVAL)?;
        if end > held.region().frame_count() {
            return Err(EINVAL);
        }
        // CAST: below `MAX_FRAMES` (checked above).
        let slots = held
            .slots
            .get(request.first as usize..end as usize)
            .ok_or(EINVAL)?;
        if slots.iter().any(|slot| !matches!(slot, Slot::Idle)) {
            return Err(EALREADY);
        }
        let out = match request.meta_addr {
            0 => None,
            // CAST: at most `MAX_BATCH_FRAMES` metadata records.
            addr => Some(UserWriteback::new(
                addr,
                request.count as usize * core::mem::size_of::<FrameMeta>(),
            )?),
        };
        held.batches.batches.reserve(1, GFP_KERNEL)?;
        let key = held.batches.next_key;
        let mut submitted = Ok(());
        for (position, index) in (request.first..end).enumerate() {
            // CAST: below `MAX_BATCH_FRAMES`.
            let queued = Queued::Batch {
                key,
                position: position as u32,
            };
            if !streaming {
                if let Some(slot) = held.slots.get_mut(index as usize) {
                    *slot = Slot::Waiting(queued);
                }
                continue;
            }
            if submitted.is_ok() {
                // User space may have written the frame; the card owns it again from here.
                submitted = held
                    .region()
                    .list(index)
                    .ok_or(EINVAL)
                    .and_then(|(list, n)| {
                        held.region().sync_for_device(index)?;
                        engine.submit(regs, list, n, cookie(request.region, index))
                    });
            }
            match &submitted {
                Ok(()) => {
                    if let Some(slot) = held.slots.get_mut(index as usize) {
                        *slot = Slot::OnCard(queued);
                    }
                }
                Err(error) if index == request.first => {
                    // Nothing of the batch reached the card: refused as a whole.
                    return Err(*error);
                }
                Err(_) => {
                    // Later frames could not follow (the card is gone): they are recorded
                    // now and fail below, once the batch exists; the earlier ones are the
                    // card's until it gives them back.
                    if let Some(slot) = held.slots.get_mut(index as usize) {
                        *slot = Slot::Waiting(queued);
                    }
                }
            }
        }
        held.batches.next_key += 1;
        // Within the capacity reserved above.
        let _ = held.batches.batches.push_within_capacity(Batch {
            key,
            cmd: cmd.into_queued(),
            out,
            remaining: request.count,
            filled: 0,
            first_error: 0,
            last_sequence: u64::MAX,
            count: request.count,
        });
        if let Err(error) = submitted {
            if streaming {
                // Only this batch's frames wait while streaming: those the card did not take.
                held.flush_waiting(error.to_errno(), clock_offset, counters);
            }
        }
        Ok(())
    }
}
