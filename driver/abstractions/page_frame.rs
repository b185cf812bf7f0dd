// SPDX-License-Identifier: GPL-2.0

//! A driver-owned buffer for device writes ([`PageFrame`]): zeroed pages charged to the
//! memory cgroup of the task that allocates it, DMA-mapped as one `sg_table`, copied to user
//! space by the CPU when the device is done with it. See `fgrab_shim_page_frame_alloc` in
//! `shim.c` for why this is not coherent memory.

use core::{
    ffi::c_void,
    ptr::NonNull,
    sync::atomic::{AtomicU32, Ordering},
};
use kernel::{pci, prelude::*, sync::aref::ARef, uaccess::UserSliceWriter};

use super::{
    pci::{max_sg_entry, raw},
    sg_table::{dma_ranges, DmaRange},
    shim,
    shim::CpuRange,
    uring_cmd::non_null_or,
};

/// [`PageFrame::owner`]: the device may write the pages (synced for the device).
const DEVICE: u32 = u32::MAX;

/// Pages mapped for writes by a device; unmapped and freed when dropped.
///
/// Who may touch the bytes follows the DMA API: the device between
/// [`Self::sync_for_device`] and [`Self::sync_for_cpu`], the CPU otherwise. The type keeps
/// the CPU's side of that rule: [`Self::copy_to_user`] fails while the device owns the
/// pages, and [`Self::sync_for_device`] fails while a copy runs.
///
/// # Invariants
///
/// `sgt` came from `fgrab_shim_page_frame_alloc` for `pdev`; `ranges` are its chunks, in
/// order. `owner` is [`DEVICE`] or the number of copies running.
pub(crate) struct PageFrame {
    sgt: NonNull<kernel::bindings::sg_table>,
    pdev: ARef<pci::Device>,
    ranges: KVec<CpuRange>,
    owner: AtomicU32,
}

// SAFETY: the table and its pages are owned by this value; the CPU addresses point into
// them and are only read under the ownership rule of `owner`.
unsafe impl Send for PageFrame {}
// SAFETY: as above; `owner` is atomic.
unsafe impl Sync for PageFrame {}

impl PageFrame {
    /// Allocates and maps `bytes` for `pdev`, charged to the current task's memory cgroup.
    /// The CPU owns them at first.
    ///
    /// # Errors
    ///
    /// `EINVAL` for 0 bytes; `ENOMEM` (also at the cgroup's limit); mapping errors.
    pub(crate) fn new(pdev: &ARef<pci::Device>, bytes: u32) -> Result<Self> {
        let max_chunk = max_sg_entry(pdev);
        let mut err = 0;
        // SAFETY: the device is valid while `pdev` is held and bound while its driver holds
        // it (mappings end before unbind completes); `err` is writable.
        let sgt =
            unsafe { shim::fgrab_shim_page_frame_alloc(raw(pdev), bytes, max_chunk, &mut err) };
        let sgt = non_null_or::<kernel::bindings::sg_table>(sgt, err)?;
        // INVARIANT: allocated for `pdev`; `ranges` filled below; the CPU owns it.
        let mut frame = Self {
            sgt,
            pdev: pdev.clone(),
            ranges: KVec::new(),
            owner: AtomicU32::new(0),
        };
        // SAFETY: a live table; a null array with `max` 0 only asks for the count.
        let count = unsafe {
            shim::fgrab_shim_page_frame_ranges(frame.sgt_raw(), core::ptr::null_mut(), 0)
        };
        frame.ranges.reserve(count as usize, GFP_KERNEL)?;
        // SAFETY: the array has room for `count` ranges, which the call fills.
        unsafe {
            shim::fgrab_shim_page_frame_ranges(frame.sgt_raw(), frame.ranges.as_mut_ptr(), count);
            frame.ranges.inc_len(count as usize);
        }
        Ok(frame)
    }

    /// The entries the DMA mapping produced.
    pub(crate) fn dma_ranges(&self) -> impl Iterator<Item = DmaRange> + '_ {
        // SAFETY: mapped (type invariant) and not modified while `self` is borrowed.
        unsafe { dma_ranges(self.sgt) }
    }

    /// Gives the pages to the CPU after the device wrote them.
    pub(crate) fn sync_for_cpu(&self) {
        // SAFETY: mapped for this device until `self` drops (type invariant).
        unsafe { shim::fgrab_shim_sg_sync(self.sgt_raw(), raw(&self.pdev), true) };
        let _ = self
            .owner
            .compare_exchange(DEVICE, 0, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Gives the pages to the device before it writes them.
    ///
    /// # Errors
    ///
    /// `EBUSY` while [`Self::copy_to_user`] reads them.
    pub(crate) fn sync_for_device(&self) -> Result {
        match self
            .owner
            .compare_exchange(0, DEVICE, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) | Err(DEVICE) => {}
            Err(_) => return Err(EBUSY),
        }
        // SAFETY: mapped for this device until `self` drops (type invariant).
        unsafe { shim::fgrab_shim_sg_sync(self.sgt_raw(), raw(&self.pdev), false) };
        Ok(())
    }

    /// Copies the first `len` bytes to `writer`; returns how many were copied (at most the
    /// frame's size and `writer`'s length).
    ///
    /// # Errors
    ///
    /// `EBUSY` while the device owns the pages; `EFAULT`.
    pub(crate) fn copy_to_user(&self, writer: &mut UserSliceWriter, len: usize) -> Result<usize> {
        let wanted = len.min(writer.len());
        if wanted == 0 {
            return Ok(0);
        }
        let mut readers = self.owner.load(Ordering::Acquire);
        loop {
            if readers == DEVICE || readers == DEVICE - 1 {
                return Err(EBUSY);
            }
            match self.owner.compare_exchange_weak(
                readers,
                readers + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => readers = now,
            }
        }
        let mut copied = 0usize;
        let mut result = Ok(());
        for range in &self.ranges {
            let len = range.len.min(wanted - copied);
            if len == 0 {
                break;
            }
            // SAFETY: the range lies in pages this value owns (type invariant) and the CPU
            // owns them: `owner` counts this copy, so `sync_for_device` cannot hand them to
            // the device before it ends.
            let bytes = unsafe { core::slice::from_raw_parts(range.addr, len) };
            result = writer.write_slice(bytes);
            if result.is_err() {
                break;
            }
            copied += len;
        }
        self.owner.fetch_sub(1, Ordering::AcqRel);
        result.map(|()| copied)
    }

    fn sgt_raw(&self) -> *mut c_void {
        self.sgt.as_ptr().cast()
    }
}

impl Drop for PageFrame {
    fn drop(&mut self) {
        // SAFETY: allocated and mapped for this device (type invariant); freed once.
        unsafe { shim::fgrab_shim_page_frame_free(self.sgt_raw(), raw(&self.pdev)) };
    }
}
