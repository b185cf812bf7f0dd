// SPDX-License-Identifier: GPL-2.0

//! The copy path: `read()` streams into driver-owned frames and copies each filled frame
//! out. It stays beside the zero-copy path for tools that want plain `read()` (and as the
//! benchmark's copy peer), bounded: `COPY_FRAMES` frames of at most
//! `COPY_MAX_FRAME_BYTES`, charged to the reader's memory cgroup, ended with the file.

use kernel::{prelude::*, uaccess::UserSliceWriter};

use super::{Card, Reservation, StartModeration};
use crate::{
    domain::region::Region,
    uapi::{META_ERROR, META_FLUSHED},
};

/// Driver-owned frames of the copy path (`read()`).
const COPY_FRAMES: u32 = 8;

/// Largest frame of the copy path: any opener picks the size with `read()`'s count, and the
/// driver allocates `COPY_FRAMES` of them (here at most 128 MiB, charged to the reader's
/// memory cgroup). Larger frames are for the zero-copy path, whose memory is the caller's.
const COPY_MAX_FRAME_BYTES: u32 = 16 << 20;

impl Card {
    /// `read()` from file `owner` (the copy path): the first call on an idle card starts a
    /// stream into driver-owned frames of `writer.len()` bytes; every call returns the next
    /// filled frame, copied, and queues it again. Frames that failed are skipped; a card
    /// that halted is restarted once per call.
    ///
    /// # Errors
    ///
    /// `EBUSY` if another file streams or this one attached a fixed buffer; `EINVAL` for a
    /// size the card cannot produce or above `COPY_MAX_FRAME_BYTES`; `ENOMEM` at the
    /// reader's memory cgroup limit; `ENODEV` after unbind; `ERESTARTSYS` on a signal; the
    /// errors of a restart; copy and allocation errors.
    pub(crate) fn read(&self, owner: u64, writer: &mut UserSliceWriter) -> Result<usize> {
        let mut stream = self.stream.lock();
        while !stream.copying(owner)? {
            drop(stream);
            self.begin_copy(owner, writer.len())?;
            stream = self.stream.lock();
        }
        let mut restarted = false;
        let meta = loop {
            let next = stream.dequeue(owner)?;
            if let Some(meta) = next {
                if meta.flags & (META_ERROR | META_FLUSHED) == 0 {
                    break meta;
                }
                // A failed frame goes straight back: to the card, or, on a stopped stream,
                // to the frames the next start submits.
                stream.queue_waiter(&self.regs, owner, meta.frame)?;
            }
            if !stream.copy_streaming() {
                // The card halted or stopped answering, which stopped the stream: start it
                // again (a dead card fails here, its frames stay queued), once per call.
                if restarted {
                    return Err(EIO);
                }
                restarted = true;
                stream.start(&self.regs, owner, StartModeration::DEFAULT)?;
                self.traffic.restart();
                continue;
            }
            if next.is_none() && self.changed.wait_interruptible(&mut stream) {
                return Err(ERESTARTSYS);
            }
        };
        let frame = match stream.page_frame(meta.frame) {
            Ok(frame) => frame,
            Err(error) => {
                stream.queue_waiter(&self.regs, owner, meta.frame)?;
                return Err(error);
            }
        };
        // The frame is neither on the card nor queued (it was just dequeued), and unbind
        // waits while a reader copies.
        stream.begin_reading();
        drop(stream);
        let result = frame.copy_to_user(writer, meta.bytes as usize);
        drop(frame);
        let mut stream = self.stream.lock();
        stream.end_reading();
        self.changed.notify_all();
        // The bytes are copied whatever happens to the frame now; a card gone meanwhile is
        // reported by the next call.
        let _ = stream.queue_waiter(&self.regs, owner, meta.frame);
        result
    }

    /// Starts the copy path for file `owner` with frames of `len` bytes, unless another
    /// thread reading the same file did first. The frames are allocated outside the card's
    /// lock (up to `COPY_FRAMES * COPY_MAX_FRAME_BYTES`, with reclaim), under a reservation
    /// of the card's region slot that unbind waits for, as `ATTACH` does.
    ///
    /// # Errors
    ///
    /// `EINVAL` for a frame size of 0 or above `COPY_MAX_FRAME_BYTES` (or the card's limit);
    /// those of [`Stream::copying`], [`Stream::reserve_copy`], [`Region::kernel`] and
    /// [`Stream::begin_copy`]; `ERESTARTSYS` on a signal while another `ATTACH` maps.
    fn begin_copy(&self, owner: u64, len: usize) -> Result {
        let frame_bytes = u32::try_from(len)
            .ok()
            .filter(|bytes| *bytes <= COPY_MAX_FRAME_BYTES)
            .ok_or(EINVAL)?;
        {
            let mut stream = self.stream.lock();
            loop {
                if stream.copying(owner)? {
                    return Ok(());
                }
                match stream.reserve_copy() {
                    Ok(()) => break,
                    // Another file's `ATTACH`, or another thread of this file starting the
                    // copy path: wait for its outcome.
                    Err(error) if error == EBUSY && stream.attaching() => {
                        if self.changed.wait_interruptible(&mut stream) {
                            return Err(ERESTARTSYS);
                        }
                    }
                    Err(error) => return Err(error),
                }
            }
        }
        let reservation = Reservation {
            card: self,
            region: None,
        };
        let region = Region::kernel(frame_bytes, COPY_FRAMES, &self.info, &self.pdev)?;
        core::mem::forget(reservation);
        let mut stream = self.stream.lock();
        stream.unreserve_copy();
        let result = stream.begin_copy(&self.regs, owner, region);
        drop(stream);
        self.changed.notify_all();
        result
    }
}
