// SPDX-License-Identifier: GPL-2.0

//! Coherent DMA memory allocated after probe ([`DmaBuffer`]).
//!
//! `kernel::dma::Coherent` needs `&Device<Bound>`, a proof that only probe and unbind
//! callbacks hold in 7.3; buffers sized by a later request (from a file operation) are
//! allocated here instead, by a driver that frees them before its unbind completes.

use core::ptr::NonNull;

use kernel::{pci, prelude::*, sync::aref::ARef};

use super::{pci::raw, shim};

/// Coherent DMA memory a device reads, freed when dropped.
///
/// # Invariants
///
/// `cpu` is a coherent allocation of `size` bytes for `pdev` at bus address `dma`.
pub(crate) struct DmaBuffer {
    cpu: NonNull<u8>,
    dma: u64,
    size: usize,
    pdev: ARef<pci::Device>,
}

// SAFETY: plain memory owned by this value.
unsafe impl Send for DmaBuffer {}
// SAFETY: shared references only read the address.
unsafe impl Sync for DmaBuffer {}

impl DmaBuffer {
    /// Allocates `size` zeroed bytes of coherent memory for `pdev`.
    ///
    /// # Errors
    ///
    /// `ENOMEM`.
    pub(crate) fn new(pdev: &ARef<pci::Device>, size: usize) -> Result<Self> {
        let mut dma = 0;
        // SAFETY: the device is bound (callers run before unbind finishes); `dma` writable.
        let cpu = unsafe { shim::fgrab_shim_dma_alloc(raw(pdev), size, &mut dma) };
        let cpu = NonNull::new(cpu.cast()).ok_or(ENOMEM)?;
        // INVARIANT: just allocated.
        Ok(Self {
            cpu,
            dma,
            size,
            pdev: pdev.clone(),
        })
    }

    /// Bus address of byte `offset`.
    pub(crate) fn dma_address(&self, offset: usize) -> u64 {
        // CAST: offsets are below `size`, which fits the bus address space.
        self.dma + offset as u64
    }

    /// Copies `bytes` to `offset`. Exclusive access: only while the card has not been given
    /// the address yet.
    ///
    /// # Errors
    ///
    /// `EINVAL` if the range is outside the buffer.
    pub(crate) fn write(&mut self, offset: usize, bytes: &[u8]) -> Result {
        let end = offset.checked_add(bytes.len()).ok_or(EINVAL)?;
        if end > self.size {
            return Err(EINVAL);
        }
        // SAFETY: `offset..end` is inside the allocation (checked above), which nothing else
        // accesses while `self` is borrowed mutably.
        unsafe {
            core::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.cpu.as_ptr().add(offset),
                bytes.len(),
            )
        };
        Ok(())
    }
}

impl Drop for DmaBuffer {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` for this device with this size (type invariant).
        unsafe {
            shim::fgrab_shim_dma_free(
                raw(&self.pdev),
                self.size,
                self.cpu.as_ptr().cast(),
                self.dma,
            )
        };
    }
}
