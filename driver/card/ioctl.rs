// SPDX-License-Identifier: GPL-2.0

//! The per-frame blocking path: `ioctl(QBUF)` queues a frame of an attached fixed buffer,
//! `ioctl(DQBUF)` waits for the oldest one. A frame's completion goes to the stream's done
//! list (one entry per frame at most) instead of a CQE; the benchmark's ioctl peer.

use kernel::prelude::*;

use super::Card;
use crate::uapi::FrameMeta;

impl Card {
    /// `ioctl(QBUF)` from file `owner`; see [`Stream::qbuf`].
    pub(crate) fn qbuf(&self, owner: u64, index: u32) -> Result {
        self.stream.lock().qbuf(&self.regs, owner, index)
    }

    /// `ioctl(DQBUF)` from file `owner`: waits for the oldest frame queued with `QBUF` to
    /// complete and returns its metadata.
    ///
    /// # Errors
    ///
    /// Those of [`Stream::dequeue`]; `ERESTARTSYS` when a signal interrupts the wait.
    pub(crate) fn dqbuf(&self, owner: u64) -> Result<FrameMeta> {
        let mut stream = self.stream.lock();
        loop {
            if let Some(meta) = stream.dqbuf(owner)? {
                return Ok(meta);
            }
            if self.changed.wait_interruptible(&mut stream) {
                return Err(ERESTARTSYS);
            }
        }
    }
}
