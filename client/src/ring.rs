//! The io_uring instance behind a card: the only module with `unsafe`.
//!
//! fgrab commands need 128-byte SQEs (80-byte payloads) and 32-byte CQEs (frame metadata),
//! so the ring is created with `IORING_SETUP_SQE128 | IORING_SETUP_CQE32`.

use crate::{Error, Result};
use io_uring::{cqueue, opcode, squeue, types, IoUring};
use std::os::fd::RawFd;

/// Entries of the submission queue.
const RING_ENTRIES: u32 = 64;

/// An io_uring with big SQEs and CQEs, submitting to one device file.
pub struct Ring {
    ring: IoUring<squeue::Entry128, cqueue::Entry32>,
    fd: RawFd,
}

impl Ring {
    /// Creates the ring for commands on `fd`.
    pub fn new(fd: RawFd) -> Result<Self> {
        let ring = IoUring::<squeue::Entry128, cqueue::Entry32>::builder()
            .build(RING_ENTRIES)
            .map_err(|source| Error::Ring {
                operation: "setup",
                source,
            })?;
        Ok(Self { ring, fd })
    }

    /// Submits one command, waits for its completion and returns the CQE's `res`
    /// (non-negative result or negative errno).
    ///
    /// The payload may contain user addresses (e.g. [`fgrab_uapi::CopyOutCmd::addr`]); the
    /// caller keeps that memory alive and unaliased until this returns, which it does only
    /// after the command completed.
    pub fn command(&mut self, op: u32, payload: [u8; 80]) -> Result<i32> {
        let entry = opcode::UringCmd80::new(types::Fd(self.fd), op)
            .cmd(payload)
            .build()
            .user_data(u64::from(op));
        // SAFETY: the entry references no memory owned by the ring: the payload is copied
        // into the SQE, and memory it points to stays valid because we wait for completion
        // below before returning to the caller.
        unsafe { self.ring.submission().push(&entry) }.map_err(|_| Error::Ring {
            operation: "push",
            source: std::io::Error::from_raw_os_error(libc::EBUSY),
        })?;
        self.ring.submit_and_wait(1).map_err(|source| Error::Ring {
            operation: "submit",
            source,
        })?;
        let cqe = self.ring.completion().next().ok_or(Error::Ring {
            operation: "complete",
            source: std::io::Error::from_raw_os_error(libc::EIO),
        })?;
        Ok(cqe.result())
    }
}
