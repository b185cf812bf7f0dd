// SPDX-License-Identifier: GPL-2.0

//! io_uring commands (`URING_CMD`): a submission during `->uring_cmd` ([`UringCmd`]), one
//! kept in flight beyond it ([`PendingCmd`]) and completed from task work, and the import of
//! a range of the fixed buffer a command names ([`FixedBufferImport`]).
//!
//! Shaped like the proposed upstream abstraction ("Rust io_uring command abstraction for
//! miscdevice": `IoUringCmd`, `IoUringTaskWork`), so that it can be swapped for it.

use core::{
    ffi::{c_int, c_uint, c_void},
    ptr::NonNull,
};
use kernel::{error::to_result, prelude::*};

use super::shim;
pub(crate) use super::shim::RawUringCmd;
use super::shim::RawUserWriteback;

/// Bytes of the SQE's command payload on a ring created with `IORING_SETUP_SQE128`.
pub(crate) const PAYLOAD_BYTES: usize = 80;

/// Turns the shim's "pointer or NULL with `*err`" convention into a `Result`.
pub(super) fn non_null_or<T>(ptr: *mut c_void, err: c_int) -> Result<NonNull<T>> {
    NonNull::new(ptr.cast()).ok_or_else(|| {
        if err < 0 {
            Error::from_errno(err)
        } else {
            EINVAL
        }
    })
}

/// One `URING_CMD` submission, valid for the duration of the `->uring_cmd` call.
pub(crate) struct UringCmd {
    raw: NonNull<RawUringCmd>,
    issue_flags: c_uint,
}

impl UringCmd {
    /// Wraps the arguments of `->uring_cmd`.
    ///
    /// # Safety
    ///
    /// `raw` must be the command passed to `->uring_cmd`, used only during that call.
    pub(super) unsafe fn from_raw(raw: *mut RawUringCmd, issue_flags: c_uint) -> Option<Self> {
        Some(Self {
            raw: NonNull::new(raw)?,
            issue_flags,
        })
    }

    /// `sqe->cmd_op`.
    pub(crate) fn op(&self) -> u32 {
        // SAFETY: `raw` is valid for this call (type invariant).
        unsafe { shim::fgrab_shim_cmd_op(self.raw.as_ptr()) }
    }

    /// The file the command was submitted on.
    pub(super) fn file(&self) -> *mut c_void {
        // SAFETY: `raw` is valid for this call (type invariant).
        unsafe { shim::fgrab_shim_cmd_file(self.raw.as_ptr()) }
    }

    /// Whether this is io_uring asking to cancel a command marked cancelable (ring exit).
    pub(crate) fn is_cancel(&self) -> bool {
        // SAFETY: pure flag test.
        unsafe { shim::fgrab_shim_issue_is_cancel(self.issue_flags) }
    }

    /// Whether the ring posts 32-byte CQEs, which frame completions need (the sequence
    /// number travels in the CQE's first extra word).
    pub(crate) fn has_cqe32(&self) -> bool {
        // SAFETY: pure flag test.
        unsafe { shim::fgrab_shim_issue_has_cqe32(self.issue_flags) }
    }

    /// Whether the SQE set `IORING_URING_CMD_FIXED` (a fixed buffer is named by `buf_index`).
    pub(crate) fn is_fixed(&self) -> bool {
        // SAFETY: `raw` is valid for this call (type invariant).
        unsafe { shim::fgrab_shim_cmd_is_fixed(self.raw.as_ptr()) }
    }

    /// The ring the command was submitted on, as an identity to compare.
    pub(crate) fn ring(&self) -> RingId {
        // SAFETY: `raw` is valid for this call (type invariant).
        RingId(unsafe { shim::fgrab_shim_cmd_ring(self.raw.as_ptr()) } as usize)
    }

    /// Whether `pending` is this very command.
    pub(crate) fn is(&self, pending: &PendingCmd) -> bool {
        pending.raw == self.raw
    }

    /// The command's identity, to compare without a lock.
    pub(crate) fn id(&self) -> usize {
        self.raw.as_ptr() as usize
    }

    /// Imports bytes `addr..addr + len` of the fixed buffer the SQE names.
    ///
    /// # Errors
    ///
    /// `EINVAL` without `IORING_URING_CMD_FIXED`; `EFAULT` for a bad `buf_index` or a range
    /// outside the buffer; `ENOMEM`.
    pub(crate) fn import_fixed(&self, addr: u64, len: u64) -> Result<FixedBufferImport> {
        if !self.is_fixed() {
            // io_uring_cmd_import_fixed() would WARN; refuse before calling it.
            return Err(EINVAL);
        }
        let mut err = 0;
        // SAFETY: `raw` is valid for this call; `err` is writable.
        let raw = unsafe {
            shim::fgrab_shim_fixed_import(self.raw.as_ptr(), self.issue_flags, addr, len, &mut err)
        };
        FixedBufferImport::new(non_null_or(raw, err)?)
    }

    /// Keeps the command in flight beyond this call, cancelable on ring exit. The caller
    /// must then return `-EIOCBQUEUED` from `->uring_cmd`.
    pub(crate) fn into_pending(self) -> PendingCmd {
        // SAFETY: `raw` is valid for this call and `issue_flags` are this call's.
        unsafe { shim::fgrab_shim_cmd_mark_cancelable(self.raw.as_ptr(), self.issue_flags) };
        // INVARIANT: the command now stays in flight until the `PendingCmd` completes it.
        PendingCmd { raw: self.raw }
    }

    /// Keeps the command in flight beyond this call, *not* cancelable: it belongs to a region
    /// whose cancelable attach command, when canceled, completes it. The caller must then
    /// return `-EIOCBQUEUED` from `->uring_cmd`.
    pub(crate) fn into_queued(self) -> PendingCmd {
        // INVARIANT: the command now stays in flight until the `PendingCmd` completes it.
        PendingCmd { raw: self.raw }
    }

    /// Copies the 80-byte payload out of the SQE (read once; user space may change the SQE).
    ///
    /// # Errors
    ///
    /// `EINVAL` if the ring was not created with `IORING_SETUP_SQE128`.
    pub(crate) fn payload(&self) -> Result<[u8; PAYLOAD_BYTES]> {
        let mut payload = [0u8; PAYLOAD_BYTES];
        // SAFETY: `raw` is valid for this call; `payload` is writable for its length.
        to_result(unsafe {
            shim::fgrab_shim_cmd_payload(
                self.raw.as_ptr(),
                self.issue_flags,
                payload.as_mut_ptr().cast(),
                payload.len(),
            )
        })?;
        Ok(payload)
    }
}

/// Identity of an io_uring instance, for "same ring" checks only.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct RingId(usize);

/// A command kept in flight beyond its `->uring_cmd` call. Completed exactly once: by one of
/// the consuming methods, or, as a safety net, with `-ECANCELED` when dropped.
///
/// # Invariants
///
/// `raw` is an in-flight `struct io_uring_cmd` that nothing else completes.
pub(crate) struct PendingCmd {
    raw: NonNull<RawUringCmd>,
}

// SAFETY: an in-flight command may be completed from any thread (through task work).
unsafe impl Send for PendingCmd {}
// SAFETY: shared references only compare the pointer.
unsafe impl Sync for PendingCmd {}

impl PendingCmd {
    /// Completes the command from any context; the CQE is posted from task work in the
    /// submitter's context.
    pub(crate) fn complete_in_task(self, res: i32) {
        self.complete(res, 0, None, false);
    }

    /// Completes the command from any context as lazy task work: `res` and `res2` go to
    /// a 32-byte CQE (`big_cqe[0]`), and `writeback`'s bytes, if any, to user memory just
    /// before it, in the submitter's context.
    ///
    /// Lazy task work (`IOU_F_TWQ_LAZY_WAKE`): on a `IORING_SETUP_DEFER_TASKRUN` ring, a
    /// task waiting for N completions is woken once, when the N-th is ready, instead of once
    /// per completion (NVMe passthrough does the same). The command must post exactly one
    /// CQE, as lazy wake-ups require.
    pub(crate) fn complete_lazy(self, res: i32, res2: u64, writeback: Option<UserWriteback>) {
        self.complete(res, res2, writeback, true);
    }

    fn complete(self, res: i32, res2: u64, out: Option<UserWriteback>, lazy: bool) {
        let raw = self.raw.as_ptr();
        core::mem::forget(self);
        let out = out.map_or(core::ptr::null_mut(), UserWriteback::into_raw);
        // SAFETY: `raw` is in flight and completed only here (type invariant; `self` is
        // forgotten so `Drop` does not complete it again). `out` is null or a writeback from
        // `fgrab_shim_writeback_alloc` whose ownership passes to the shim, which frees it.
        unsafe { shim::fgrab_shim_cmd_done_in_task(raw, res, res2, out, lazy) };
    }
}

impl Drop for PendingCmd {
    fn drop(&mut self) {
        // SAFETY: not completed yet (consuming methods forget `self`).
        unsafe {
            shim::fgrab_shim_cmd_done_in_task(
                self.raw.as_ptr(),
                ECANCELED.to_errno(),
                0,
                core::ptr::null_mut(),
                false,
            )
        };
    }
}

/// Most bytes a completion writes back to user memory ([`UserWriteback`]).
pub(crate) const MAX_WRITEBACK_BYTES: usize = 4096;

/// Bytes a command's completion copies to user memory just before its CQE is posted (in the
/// submitter's context, where the user address is valid): a frame's metadata, or a batch's.
///
/// # Invariants
///
/// `raw` comes from `fgrab_shim_writeback_alloc` with `len` bytes, owned here until passed
/// to the shim by [`PendingCmd::complete_lazy`] or freed by `Drop`.
pub(crate) struct UserWriteback {
    raw: NonNull<RawUserWriteback>,
    len: usize,
}

// SAFETY: the writeback is plain kmalloc'ed memory owned by this value.
unsafe impl Send for UserWriteback {}
// SAFETY: shared references give no access to the bytes.
unsafe impl Sync for UserWriteback {}

impl UserWriteback {
    /// `len` zeroed bytes for user address `addr`.
    ///
    /// # Errors
    ///
    /// `EINVAL` above [`MAX_WRITEBACK_BYTES`], `ENOMEM`.
    pub(crate) fn new(addr: u64, len: usize) -> Result<Self> {
        if len > MAX_WRITEBACK_BYTES {
            return Err(EINVAL);
        }
        // CAST: at most `MAX_WRITEBACK_BYTES`.
        // SAFETY: plain allocation; the result is null or `len` bytes owned by the caller.
        let raw = unsafe { shim::fgrab_shim_writeback_alloc(addr, len as u32) };
        // INVARIANT: allocated with `len` bytes, owned by the new value.
        Ok(Self {
            raw: NonNull::new(raw).ok_or(ENOMEM)?,
            len,
        })
    }

    /// The bytes to write.
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: the writeback has `len` bytes after its header (type invariant), owned by
        // `self`, which this borrow borrows mutably.
        unsafe {
            core::slice::from_raw_parts_mut(
                shim::fgrab_shim_writeback_bytes(self.raw.as_ptr()),
                self.len,
            )
        }
    }

    /// Gives up ownership to the shim.
    fn into_raw(self) -> *mut RawUserWriteback {
        let raw = self.raw.as_ptr();
        core::mem::forget(self);
        raw
    }
}

impl Drop for UserWriteback {
    fn drop(&mut self) {
        // SAFETY: owned by `self` and not passed to the shim (`into_raw` forgets `self`).
        unsafe { shim::fgrab_shim_writeback_free(self.raw.as_ptr()) };
    }
}

/// A byte range of the fixed buffer a command names, imported while that command is in
/// flight (io_uring keeps the pages pinned until it completes); released when dropped,
/// which marks its pages dirty.
///
/// # Invariants
///
/// `raw` is a live import from `fgrab_shim_fixed_import`, released once, by `Drop`;
/// `segments` and `skip` were read from it.
pub(crate) struct FixedBufferImport {
    pub(super) raw: NonNull<c_void>,
    /// Byte lengths of the bvec segments, read once at import.
    segments: KVec<u32>,
    /// Bytes of the first segments before the range.
    skip: u64,
}

// SAFETY: the import is plain memory (an iov_iter copy) owned by this value.
unsafe impl Send for FixedBufferImport {}
// SAFETY: shared references only read it.
unsafe impl Sync for FixedBufferImport {}

impl FixedBufferImport {
    fn new(raw: NonNull<c_void>) -> Result<Self> {
        // INVARIANT: `raw` is a live import; the rest is read from it below.
        let mut import = Self {
            raw,
            segments: KVec::new(),
            skip: 0,
        };
        // SAFETY: `raw` is a live import; `skip` is writable.
        let count = unsafe { shim::fgrab_shim_fixed_segments(raw.as_ptr(), &mut import.skip) };
        import.segments.reserve(count, GFP_KERNEL)?;
        for index in 0..count {
            // SAFETY: `raw` is a live import and `index` below its segment count.
            let len = unsafe { shim::fgrab_shim_fixed_segment_len(raw.as_ptr(), index) };
            import.segments.push(len, GFP_KERNEL)?;
        }
        Ok(import)
    }

    /// Byte lengths of the buffer's bvec segments that the range touches, in order.
    pub(crate) fn segments(&self) -> &[u32] {
        &self.segments
    }

    /// Bytes of the first segments before the range.
    pub(crate) fn skip(&self) -> u64 {
        self.skip
    }
}

impl Drop for FixedBufferImport {
    fn drop(&mut self) {
        // Marks the range's pages dirty (a device wrote them), then frees the import.
        // SAFETY: a live import released once (type invariant), while the command that
        // imported it is still in flight (its owner's duty: the pages are pinned).
        unsafe { shim::fgrab_shim_fixed_release(self.raw.as_ptr()) };
    }
}
