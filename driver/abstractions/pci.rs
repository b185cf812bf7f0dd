// SPDX-License-Identifier: GPL-2.0

//! PCI device control and DMA facts that `kernel::pci` and `kernel::dma` do not expose in
//! 7.3: Bus Master Enable at run time, the device's bus location, and what its streaming
//! mappings can do (largest entry, bouncing, cache alignment).

use core::ffi::c_void;

use kernel::{
    bindings,
    device::Core,
    dma::{Device as _, DmaMask},
    pci,
    prelude::*,
};

use super::shim;

/// `kernel::pci::Device` is `#[repr(transparent)]` over `struct pci_dev`, and 7.3 keeps
/// its `as_raw()` private: this cast is the only way to hand the device to C. Fence the
/// layout it relies on, so that a change breaks the build instead of the kernel.
const _: () =
    assert!(core::mem::size_of::<pci::Device>() == core::mem::size_of::<bindings::pci_dev>());

/// The `struct pci_dev` behind a Rust PCI device, for the shim.
pub(super) fn raw(pdev: &pci::Device) -> *mut c_void {
    // CAST: `pci::Device` is `#[repr(transparent)]` over `Opaque<bindings::pci_dev>`.
    core::ptr::from_ref(pdev).cast_mut().cast()
}

/// Sets the addressing `mask` of `pdev`'s streaming and coherent DMA and the longest
/// segment its mappings may produce. Only for probe, before anything is allocated or mapped
/// for the device: the DMA layer reads both without a lock.
///
/// # Errors
///
/// `EIO` if the platform cannot address the device with `mask`.
pub(crate) fn set_dma_limits(
    pdev: &pci::Device<Core<'_>>,
    mask: DmaMask,
    max_segment: u32,
) -> Result {
    // SAFETY: `Core` is held by probe and unbind only; the driver calls this from probe
    // before its first DMA allocation or mapping (see above), so no DMA operation of the
    // device runs concurrently.
    unsafe { pdev.dma_set_mask_and_coherent(mask)? };
    // SAFETY: as above.
    unsafe { pdev.dma_set_max_seg_size(max_segment) };
    Ok(())
}

/// PCI location of `pdev` as `domain << 16 | bus << 8 | devfn`.
pub(crate) fn location(pdev: &pci::Device) -> u32 {
    // SAFETY: `raw` gives a valid `struct pci_dev` for as long as `pdev` is borrowed.
    unsafe { shim::fgrab_shim_pci_location(raw(pdev)) }
}

/// Sets or clears Bus Master Enable of `pdev`: while clear, the device can do no DMA.
/// `kernel::pci` only sets it, during probe.
pub(crate) fn set_bus_master(pdev: &pci::Device, enable: bool) {
    // SAFETY: `raw` gives a valid `struct pci_dev` for as long as `pdev` is borrowed; the
    // command register may be written in any process context.
    unsafe { shim::fgrab_shim_bus_master(raw(pdev), enable) }
}

/// Longest scatterlist entry the DMA layer maps as one piece for `pdev` (the device's
/// maximum segment, and swiotlb's largest mapping), at least one page.
pub(crate) fn max_sg_entry(pdev: &pci::Device) -> u64 {
    // SAFETY: `raw` gives a valid `struct pci_dev` for as long as `pdev` is borrowed.
    unsafe { shim::fgrab_shim_max_sg_entry(raw(pdev)) }
}

/// Size of the swiotlb pool that streaming mappings of `pdev` are bounced through, or
/// `None` if they are not bounced (see `fgrab_shim_bounce_pool_bytes` in `shim.c`).
pub(crate) fn bounce_pool_bytes(pdev: &pci::Device) -> Option<u64> {
    // SAFETY: `raw` gives a valid `struct pci_dev` for as long as `pdev` is borrowed.
    let bytes = unsafe { shim::fgrab_shim_bounce_pool_bytes(raw(pdev)) };
    (bytes != 0).then_some(bytes)
}

/// Alignment, in bytes, that buffers mapped for `pdev` need so that syncing one for the
/// CPU never touches another's bytes: 1 where DMA is coherent, else the DMA cache-line size.
pub(crate) fn dma_alignment(pdev: &pci::Device) -> u32 {
    // SAFETY: `raw` gives a valid `struct pci_dev` for as long as `pdev` is borrowed.
    unsafe { shim::fgrab_shim_dma_alignment(raw(pdev)) }.max(1)
}
