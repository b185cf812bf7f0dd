// SPDX-License-Identifier: GPL-2.0

//! Frames whose completion goes to a done list instead of a command: the per-frame
//! blocking path (`ioctl(QBUF)` / `ioctl(DQBUF)`) and the copy path (`read()`). Bounded:
//! the list holds at most one entry per frame of the region, reserved at attach.

use kernel::prelude::*;

use super::{cookie, Attached, Queued, Slot, Stream};
use crate::{
    hardware::{engine::Engine, regs::Registers},
    uapi::FrameMeta,
};

impl Attached {
    /// Queues frame `index` of region 0 (the only one of the copy path and of
    /// `ioctl(QBUF)`) for a waiter: to the card when streaming, else until `START`.
    pub(super) fn queue_waiter(
        &mut self,
        engine: &mut Engine,
        regs: &Registers,
        index: u32,
    ) -> Result {
        let streaming = self.streaming;
        let held = self.first()?;
        let slot = held.slots.get_mut(index as usize).ok_or(EINVAL)?;
        if !matches!(slot, Slot::Idle) {
            return Err(EALREADY);
        }
        if streaming {
            let (list, count) = held.region().list(index).ok_or(EINVAL)?;
            held.region().sync_for_device(index)?;
            engine.submit(regs, list, count, cookie(0, index))?;
        }
        if let Some(slot) = held.slots.get_mut(index as usize) {
            *slot = if streaming {
                Slot::OnCard(Queued::Waiter)
            } else {
                Slot::Waiting(Queued::Waiter)
            };
        }
        Ok(())
    }
}

impl Stream {
    /// `ioctl(QBUF)` (and the copy path): queues frame `index` of the region file `owner`
    /// attached; its completion goes to the done list.
    ///
    /// # Errors
    ///
    /// Those of `owned`; `EINVAL` for an index out of range; `EALREADY` if queued already.
    pub(crate) fn queue_waiter(&mut self, regs: &Registers, owner: u64, index: u32) -> Result {
        let (attached, engine) = self.owned(owner)?;
        attached.queue_waiter(engine, regs, index)
    }

    /// `ioctl(QBUF)`: [`Self::queue_waiter`] on a fixed-buffer region (the copy path's
    /// frames belong to `read()`).
    ///
    /// # Errors
    ///
    /// Those of [`Self::queue_waiter`]; `EINVAL` on driver-owned frames.
    pub(crate) fn qbuf(&mut self, regs: &Registers, owner: u64, index: u32) -> Result {
        if self.owned(owner)?.0.is_kernel() {
            return Err(EINVAL);
        }
        self.queue_waiter(regs, owner, index)
    }

    /// `ioctl(DQBUF)`: [`Self::dequeue`] on a fixed-buffer region.
    ///
    /// # Errors
    ///
    /// Those of [`Self::dequeue`]; `EINVAL` on driver-owned frames.
    pub(crate) fn dqbuf(&mut self, owner: u64) -> Result<Option<FrameMeta>> {
        if self.owned(owner)?.0.is_kernel() {
            return Err(EINVAL);
        }
        self.dequeue(owner)
    }

    /// The oldest completed frame queued as a waiter, if any.
    ///
    /// # Errors
    ///
    /// Those of `owned`; `EAGAIN` if none is queued either (waiting would never end).
    pub(crate) fn dequeue(&mut self, owner: u64) -> Result<Option<FrameMeta>> {
        let held = self.owned(owner)?.0.first()?;
        if held.done.is_empty() {
            let waiting = held.slots.iter().any(|slot| {
                matches!(
                    slot,
                    Slot::Waiting(Queued::Waiter) | Slot::OnCard(Queued::Waiter)
                )
            });
            return if waiting { Ok(None) } else { Err(EAGAIN) };
        }
        Ok(Some(held.done.remove(0)?))
    }
}
