// SPDX-License-Identifier: GPL-2.0

//! The copy path's part of the stream: driver-owned frames ([`Region::kernel`]) streamed
//! for `read()`, which copies each filled frame out (see `card/copy.rs`). Bounded by the
//! card layer: at most `COPY_FRAMES` frames of at most `COPY_MAX_FRAME_BYTES`, charged to
//! the reader's memory cgroup.

use kernel::{prelude::*, sync::Arc};

use super::{Attached, Held, StartModeration, Stream};
use crate::{
    abstractions::page_frame::PageFrame, domain::region::Region, hardware::regs::Registers,
};

impl Stream {
    /// The copy path's first `read()` on an idle card: driver-owned `region` (allocated
    /// under a reservation the caller gave up) for file `owner`, all queued, the stream
    /// started.
    ///
    /// # Errors
    ///
    /// `EBUSY` if a region is attached; those of `start`.
    pub(crate) fn begin_copy(&mut self, regs: &Registers, owner: u64, region: Region) -> Result {
        if self.gone {
            return Err(ENODEV);
        }
        if self.slot_taken() {
            return Err(EBUSY);
        }
        let mut attached = Attached::new(owner, region.frame_bytes())?;
        let (held, allocated) = Held::new(0, None, region);
        allocated?;
        attached
            .regions
            .push_within_capacity(held)
            .map_err(|_| ENOMEM)?;
        self.attached = Some(attached);
        let result = (|| -> Result {
            let (attached, engine) = self.owned(owner)?;
            for index in 0..attached.first()?.region().frame_count() {
                attached.queue_waiter(engine, regs, index)?;
            }
            self.start(regs, owner, StartModeration::DEFAULT)
        })();
        if result.is_err() {
            if let Some(attached) = self.attached.take() {
                attached.end(self.engine.as_mut(), regs, 0);
            }
        }
        result
    }

    /// Whether file `owner` streams driver-owned frames (copy path); `EBUSY` if another
    /// file owns the card or this one attached a fixed buffer, `ENODEV` after unbind.
    pub(crate) fn copying(&self, owner: u64) -> Result<bool> {
        if self.gone {
            return Err(ENODEV);
        }
        match &self.attached {
            None => Ok(false),
            Some(attached) if attached.owner == owner && attached.is_kernel() => Ok(true),
            Some(_) => Err(EBUSY),
        }
    }

    /// Driver-owned frame `index` (see [`Region::page_frame`]).
    ///
    /// # Errors
    ///
    /// `ENOENT` without a region or for a fixed-buffer frame.
    pub(crate) fn page_frame(&self, index: u32) -> Result<Arc<PageFrame>> {
        self.attached
            .as_ref()
            .and_then(|attached| attached.regions.iter().find(|held| held.id == 0))
            .ok_or(ENOENT)?
            .region()
            .page_frame(index)
            .ok_or(ENOENT)
    }

    /// A `read()` copies a driver-owned frame outside the lock: teardown waits for it.
    pub(crate) fn begin_reading(&mut self) {
        self.readers += 1;
    }

    /// A `read()` finished copying.
    pub(crate) fn end_reading(&mut self) {
        self.readers -= 1;
    }

    /// Whether the copy path's stream runs (an error or a vanished card stops it).
    pub(crate) fn copy_streaming(&self) -> bool {
        self.attached
            .as_ref()
            .is_some_and(|attached| attached.streaming)
    }
}
