// SPDX-License-Identifier: GPL-2.0

//! The streaming state of a card: which file owns it and the region attached to it.
//!
//! Lock order: `Card::stream` is the only driver lock, and it nests inside io_uring's ring
//! lock: io_uring holds that lock when it calls `->uring_cmd`, cancel calls included. So
//! nothing that may take a ring lock runs under `Card::stream`: importing a fixed buffer
//! and marking a command cancelable take it when a command is issued from io-wq
//! (`IO_URING_F_UNLOCKED`, e.g. `IOSQE_ASYNC`), so `ATTACH` does both outside the lock,
//! holding a reservation of the card's region slot instead. Completions from under the lock
//! go through task work, except in a cancel call, where io_uring expects the completion.
//!
//! Teardown has one order whatever triggers it (detach, ring exit, device unbind): take the
//! region out of the state, unmap every frame, then complete the attach command, after
//! which io_uring may unpin the pages.

use kernel::prelude::*;

use crate::{
    region::Region,
    shim::{PendingCmd, RingId, UringCmd},
    uapi::Stats,
};

/// A region attached by one file, with the command that keeps its pages pinned.
struct Attached {
    /// Id of the file that attached it (see `file.rs`).
    owner: u64,
    /// Ring of the attach command: frame commands must come from it (issue 4 streaming).
    _ring: RingId,
    region: Region,
    cmd: PendingCmd,
}

impl Attached {
    /// Ends the region: unmaps its frames, then completes the attach command with `res`
    /// (inside the command's own cancel call when `cancel` is it, else via task work).
    fn end(self, res: i32, cancel: Option<&UringCmd>) {
        let Self { region, cmd, .. } = self;
        drop(region);
        match cancel {
            Some(cancel) => cmd.complete_canceled(cancel, res),
            None => cmd.complete_in_task(res),
        }
    }
}

/// State behind `Card::stream`.
pub(crate) struct Stream {
    attached: Option<Attached>,
    /// An `ATTACH` is importing and mapping its region outside the lock.
    attaching: bool,
    /// The card was unbound: no new region.
    gone: bool,
}

impl Stream {
    /// No region, card present.
    pub(crate) fn new() -> Self {
        Self {
            attached: None,
            attaching: false,
            gone: false,
        }
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
        if self.attached.is_some() || self.attaching {
            return Err(EBUSY);
        }
        self.attaching = true;
        Ok(())
    }

    /// Gives up a reservation whose `ATTACH` failed.
    pub(crate) fn unreserve(&mut self) {
        self.attaching = false;
    }

    /// Fills the reserved slot with the region file `owner` attached, kept alive by `cmd`
    /// (submitted on `ring`). If the card was unbound meanwhile, the region ends at once.
    pub(crate) fn fill(&mut self, owner: u64, ring: RingId, region: Region, cmd: PendingCmd) {
        self.attaching = false;
        let attached = Attached {
            owner,
            _ring: ring,
            region,
            cmd,
        };
        if self.gone {
            attached.end(ENODEV.to_errno(), None);
        } else {
            self.attached = Some(attached);
        }
    }

    /// Whether an `ATTACH` holds a reservation (unbind waits for it to end).
    pub(crate) fn attaching(&self) -> bool {
        self.attaching
    }

    /// Detaches the region file `owner` attached; its attach command completes with 0.
    ///
    /// # Errors
    ///
    /// `ENOENT` if no region is attached, `EBUSY` if another file attached it.
    pub(crate) fn detach(&mut self, owner: u64) -> Result {
        match &self.attached {
            None => Err(ENOENT),
            Some(attached) if attached.owner != owner => Err(EBUSY),
            Some(_) => {
                if let Some(attached) = self.attached.take() {
                    attached.end(0, None);
                }
                Ok(())
            }
        }
    }

    /// io_uring cancels `cmd` (ring exit): ends the region if `cmd` is its attach command.
    /// Any other command is not ours to complete here.
    pub(crate) fn cancel(&mut self, cmd: &UringCmd) {
        if self
            .attached
            .as_ref()
            .is_some_and(|attached| cmd.is(&attached.cmd))
        {
            if let Some(attached) = self.attached.take() {
                attached.end(ECANCELED.to_errno(), Some(cmd));
            }
        }
    }

    /// File `owner` is released. Its attach command holds a file reference, so a region it
    /// attached cannot exist any more; end one defensively if it does.
    pub(crate) fn release(&mut self, owner: u64) {
        if self
            .attached
            .as_ref()
            .is_some_and(|attached| attached.owner == owner)
        {
            if let Some(attached) = self.attached.take() {
                attached.end(EBADF.to_errno(), None);
            }
        }
    }

    /// The card is being unbound: end the region while the device is still bound (DMA
    /// mappings must not outlive the binding) and refuse new ones. The caller has waited
    /// for a reservation to end (see `Card::shutdown`).
    pub(crate) fn shutdown(&mut self) {
        self.gone = true;
        if let Some(attached) = self.attached.take() {
            attached.end(ENODEV.to_errno(), None);
        }
    }

    /// Fills [`Stats`] from the current state.
    pub(crate) fn fill_stats(&self, stats: &mut Stats) {
        if let Some(attached) = &self.attached {
            attached.region.fill_stats(stats);
        }
    }
}
