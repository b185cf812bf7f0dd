// SPDX-License-Identifier: GPL-2.0

//! A scatter/gather table over borrowed bvecs: byte ranges ([`BvecPiece`]) of a fixed
//! buffer's segments, DMA-mapped for device writes as one table ([`MappedSgTable`]), synced
//! and unmapped. `kernel::scatterlist::SGTable` in 7.3 owns its pages (vmalloc) or only
//! borrows an existing table; it cannot build one over pages io_uring pinned.

use core::{
    ffi::{c_uint, c_void},
    ptr::NonNull,
};
use kernel::{pci, prelude::*, scatterlist::SGTable, sync::aref::ARef};

pub(crate) use super::shim::BvecPiece;
use super::{pci::raw, shim, uring_cmd::non_null_or, uring_cmd::FixedBufferImport};

/// One entry of a DMA mapping as the device sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DmaRange {
    /// Bus address of the first byte.
    pub(crate) dma: u64,
    /// Bytes.
    pub(crate) len: u64,
}

/// The DMA-side entries of a mapped table: the first `nents` (after IOMMU merging), never
/// the CPU-side page list, whose count differs when an IOMMU merges.
///
/// # Safety
///
/// `sgt` is a mapped table, not modified for the returned lifetime.
pub(super) unsafe fn dma_ranges<'a>(
    sgt: NonNull<kernel::bindings::sg_table>,
) -> impl Iterator<Item = DmaRange> + 'a {
    // SAFETY: per the function's contract.
    let table = unsafe { SGTable::from_raw(sgt.as_ptr()) };
    table.iter().map(|entry| DmaRange {
        dma: entry.dma_address(),
        len: entry.dma_len(),
    })
}

/// Pieces of a [`FixedBufferImport`] mapped for device writes as one `sg_table`; unmapped
/// when dropped, without a CPU sync (see `fgrab_shim_sg_unmap`).
///
/// # Invariants
///
/// `sgt` was mapped by `fgrab_shim_sg_map` for `pdev`, and is unmapped once, by `Drop`.
/// The import it was built from outlives it (its owner's duty, see [`Self::map`]).
pub(crate) struct MappedSgTable {
    sgt: NonNull<kernel::bindings::sg_table>,
    pdev: ARef<pci::Device>,
}

// SAFETY: the table is owned by this value and only read after mapping.
unsafe impl Send for MappedSgTable {}
// SAFETY: shared references only read the table.
unsafe impl Sync for MappedSgTable {}

impl MappedSgTable {
    /// Maps `pieces` of `import` (in order, as one table) for writes by `pdev`.
    ///
    /// The table refers to the import's pages: drop it before the import, which
    /// [`FixedBufferImport`]'s owner arranges (the pages stay pinned only while the
    /// command that imported them is in flight).
    ///
    /// # Errors
    ///
    /// `EINVAL` for no piece, a piece outside the import or too many; mapping errors
    /// (`ENOMEM`, `EIO`).
    pub(crate) fn map(
        import: &FixedBufferImport,
        pieces: &[BvecPiece],
        pdev: &ARef<pci::Device>,
    ) -> Result<Self> {
        let count = c_uint::try_from(pieces.len()).map_err(|_| EINVAL)?;
        let mut err = 0;
        // SAFETY: `import.raw` is a live import (its invariant); `pieces` holds `count`
        // entries laid out as `struct fgrab_piece`, which the shim checks against the
        // import; the device is valid while `pdev` is held; `err` is writable.
        let sgt = unsafe {
            shim::fgrab_shim_sg_map(
                import.raw.as_ptr(),
                pieces.as_ptr(),
                count,
                raw(pdev),
                &mut err,
            )
        };
        // INVARIANT: mapped for `pdev` just now.
        Ok(Self {
            sgt: non_null_or(sgt, err)?,
            pdev: pdev.clone(),
        })
    }

    /// The entries the DMA mapping produced.
    pub(crate) fn dma_ranges(&self) -> impl Iterator<Item = DmaRange> + '_ {
        // SAFETY: mapped (type invariant) and not modified while `self` is borrowed.
        unsafe { dma_ranges(self.sgt) }
    }

    /// Gives the bytes to the CPU after the device wrote them (bounce buffers are copied
    /// back).
    pub(crate) fn sync_for_cpu(&self) {
        // SAFETY: mapped for this device until `self` drops (type invariant).
        unsafe { shim::fgrab_shim_sg_sync(self.sgt_raw(), raw(&self.pdev), true) };
    }

    /// Gives the bytes back to the device before it writes them again.
    pub(crate) fn sync_for_device(&self) {
        // SAFETY: mapped for this device until `self` drops (type invariant).
        unsafe { shim::fgrab_shim_sg_sync(self.sgt_raw(), raw(&self.pdev), false) };
    }

    fn sgt_raw(&self) -> *mut c_void {
        self.sgt.as_ptr().cast()
    }
}

impl Drop for MappedSgTable {
    fn drop(&mut self) {
        // SAFETY: mapped for this device, unmapped once (type invariant).
        unsafe { shim::fgrab_shim_sg_unmap(self.sgt_raw(), raw(&self.pdev)) };
    }
}
