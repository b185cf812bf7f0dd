// SPDX-License-Identifier: GPL-2.0

//! Rust side of the C shim (`shim.c`): its raw declarations, and the safe types built on
//! them. No other module declares `extern "C"` items.

use core::{
    ffi::{c_int, c_uint, c_void},
    ptr::NonNull,
};
use kernel::{
    bindings,
    error::to_result,
    fmt, pci,
    prelude::*,
    scatterlist::SGTable,
    str::CString,
    sync::{aref::ARef, Arc},
    types::Opaque,
};

use crate::{
    card::Card,
    descriptors::Extent,
    sglist::{self, Piece},
};

/// `kernel::pci::Device` is `#[repr(transparent)]` over `struct pci_dev`, which is what lets
/// [`raw_pci_dev`] hand it to C. Fence that assumption.
const _: () = assert!(
    core::mem::size_of::<kernel::pci::Device>() == core::mem::size_of::<bindings::pci_dev>()
);

/// The `struct pci_dev` behind a Rust PCI device, for the shim.
fn raw_pci_dev(pdev: &kernel::pci::Device) -> *mut c_void {
    // CAST: `pci::Device` is `#[repr(transparent)]` over `Opaque<bindings::pci_dev>`.
    core::ptr::from_ref(pdev).cast_mut().cast()
}

/// PCI location of `pdev` as `domain << 16 | bus << 8 | devfn`.
pub(crate) fn pci_location(pdev: &kernel::pci::Device) -> u32 {
    // SAFETY: `raw_pci_dev` gives a valid `struct pci_dev` for as long as `pdev` is borrowed.
    unsafe { fgrab_shim_pci_location(raw_pci_dev(pdev)) }
}

/// Sets or clears Bus Master Enable of `pdev`: while clear, the card can do no DMA.
pub(crate) fn set_bus_master(pdev: &kernel::pci::Device, enable: bool) {
    // SAFETY: `raw_pci_dev` gives a valid `struct pci_dev` for as long as `pdev` is borrowed;
    // the command register may be written in any process context.
    unsafe { fgrab_shim_bus_master(raw_pci_dev(pdev), enable) }
}

/// Whether a warning about the card's behaviour may be logged now (`__ratelimit`, one budget
/// for all cards): a hostile or broken card must not flood the kernel log.
pub(crate) fn warn_ratelimit() -> bool {
    // SAFETY: `__ratelimit` on a static state takes its own lock; callable in any context.
    unsafe { fgrab_shim_warn_ratelimit() }
}

/// Size of the swiotlb pool that streaming mappings of `pdev` are bounced through, or
/// `None` if they are not bounced (see `fgrab_shim_bounce_pool_bytes` in `shim.c`).
pub(crate) fn bounce_pool_bytes(pdev: &kernel::pci::Device) -> Option<u64> {
    // SAFETY: `raw_pci_dev` gives a valid `struct pci_dev` for as long as `pdev` is borrowed.
    let bytes = unsafe { fgrab_shim_bounce_pool_bytes(raw_pci_dev(pdev)) };
    (bytes != 0).then_some(bytes)
}

/// Alignment, in bytes, that `pdev`'s frames need so that syncing one for the CPU never
/// touches another's bytes: 1 where DMA is coherent, else the DMA cache-line size.
pub(crate) fn dma_alignment(pdev: &kernel::pci::Device) -> u32 {
    // SAFETY: `raw_pci_dev` gives a valid `struct pci_dev` for as long as `pdev` is borrowed.
    unsafe { fgrab_shim_dma_alignment(raw_pci_dev(pdev)) }.max(1)
}

/// Logs why `pdev` refused a request, rate limited (any opener can trigger it).
pub(crate) fn warn_ratelimited(pdev: &kernel::pci::Device, message: fmt::Arguments<'_>) {
    if let Ok(message) = CString::try_from_fmt(message) {
        // SAFETY: `raw_pci_dev` gives a valid `struct pci_dev` for as long as `pdev` is
        // borrowed; `message` is NUL-terminated and outlives the call.
        unsafe { fgrab_shim_warn_ratelimited(raw_pci_dev(pdev), message.as_char_ptr()) };
    }
}

/// `struct io_uring_cmd`, only ever handled by pointer.
#[repr(C)]
pub(crate) struct RawUringCmd {
    _opaque: [u8; 0],
}

// Kernel structs are declared as `c_void` here: some of their bindgen types embed members
// that rustc does not consider FFI-safe (`improper_ctypes`), and the shim only needs their
// addresses. The C prototypes in shim.c carry the real types.
extern "C" {
    fn fgrab_shim_misc_register(
        misc: *mut c_void,
        name: *const kernel::ffi::c_char,
        pdev: *mut c_void,
    ) -> c_int;
    fn fgrab_shim_pci_location(pdev: *mut c_void) -> u32;
    fn fgrab_shim_bus_master(pdev: *mut c_void, enable: bool);
    fn fgrab_shim_warn_ratelimit() -> bool;
    fn fgrab_shim_misc_deregister(misc: *mut c_void);
    fn fgrab_shim_card_index_alloc() -> c_int;
    fn fgrab_shim_card_index_free(index: c_int);
    fn fgrab_shim_cmd_op(cmd: *const RawUringCmd) -> u32;
    fn fgrab_shim_cmd_file(cmd: *const RawUringCmd) -> *mut c_void;
    fn fgrab_shim_cmd_payload(
        cmd: *const RawUringCmd,
        issue_flags: c_uint,
        dst: *mut c_void,
        len: usize,
    ) -> c_int;
    fn fgrab_shim_cmd_is_fixed(cmd: *const RawUringCmd) -> bool;
    fn fgrab_shim_issue_is_cancel(issue_flags: c_uint) -> bool;
    fn fgrab_shim_issue_has_cqe32(issue_flags: c_uint) -> bool;
    fn fgrab_shim_cmd_ring(cmd: *mut RawUringCmd) -> *const c_void;
    fn fgrab_shim_cmd_mark_cancelable(cmd: *mut RawUringCmd, issue_flags: c_uint);
    fn fgrab_shim_cmd_done_in_task(
        cmd: *mut RawUringCmd,
        res: i32,
        res2: u64,
        out: *mut FrameOut,
        lazy: bool,
    );
    fn fgrab_shim_region_import(
        cmd: *mut RawUringCmd,
        issue_flags: c_uint,
        addr: u64,
        len: u64,
        err: *mut c_int,
    ) -> *mut c_void;
    fn fgrab_shim_region_release(region: *mut c_void);
    fn fgrab_shim_max_sg_entry(pdev: *mut c_void) -> u64;
    fn fgrab_shim_bounce_pool_bytes(pdev: *mut c_void) -> u64;
    fn fgrab_shim_dma_alignment(pdev: *mut c_void) -> u32;
    fn fgrab_shim_warn_ratelimited(pdev: *mut c_void, message: *const kernel::ffi::c_char);
    fn fgrab_shim_region_segments(region: *const c_void, skip: *mut u64) -> usize;
    fn fgrab_shim_region_segment_len(region: *const c_void, index: usize) -> u32;
    fn fgrab_shim_frame_map(
        region: *const c_void,
        pieces: *const Piece,
        count: c_uint,
        pdev: *mut c_void,
        err: *mut c_int,
    ) -> *mut c_void;
    fn fgrab_shim_frame_unmap(sgt: *mut c_void, pdev: *mut c_void);
    fn fgrab_shim_frame_sync(sgt: *mut c_void, pdev: *mut c_void, for_cpu: bool);
    fn fgrab_shim_kernel_frame_alloc(
        pdev: *mut c_void,
        bytes: u32,
        max_chunk: u64,
        err: *mut c_int,
    ) -> *mut c_void;
    fn fgrab_shim_kernel_frame_free(sgt: *mut c_void, pdev: *mut c_void);
    fn fgrab_shim_kernel_frame_pieces(
        sgt: *const c_void,
        pieces: *mut CpuPiece,
        max: c_uint,
    ) -> c_uint;
    fn fgrab_shim_dma_alloc(pdev: *mut c_void, size: usize, dma: *mut u64) -> *mut c_void;
    fn fgrab_shim_dma_free(pdev: *mut c_void, size: usize, cpu: *mut c_void, dma: u64);
    fn fgrab_shim_irq_vectors_alloc(pdev: *mut c_void, count: c_uint) -> c_int;
    fn fgrab_shim_irq_vector(pdev: *mut c_void, index: c_uint) -> c_int;
    fn fgrab_shim_irq_vectors_free(pdev: *mut c_void);
    fn fgrab_shim_irq_request(
        irq: c_uint,
        name: *const kernel::ffi::c_char,
        data: *mut c_void,
    ) -> c_int;
    fn fgrab_shim_irq_free(irq: c_uint, data: *mut c_void);
    fn fgrab_shim_watchdog_start(data: *mut c_void, period_ms: c_uint) -> *mut c_void;
    fn fgrab_shim_watchdog_stop(watchdog: *mut c_void);
    fn fgrab_shim_watchdog_kick(watchdog: *mut c_void);
}

/// Turns the shim's "pointer or NULL with `*err`" convention into a `Result`.
fn non_null_or<T>(ptr: *mut c_void, err: c_int) -> Result<NonNull<T>> {
    NonNull::new(ptr.cast()).ok_or_else(|| {
        if err < 0 {
            Error::from_errno(err)
        } else {
            EINVAL
        }
    })
}

/// A card number (the N of `/dev/fgrabN`), returned to the pool when dropped.
pub(crate) struct CardIndex(c_int);

impl CardIndex {
    /// Takes the smallest free card number.
    pub(crate) fn alloc() -> Result<Self> {
        // SAFETY: no preconditions; the IDA is static in the shim.
        let index = unsafe { fgrab_shim_card_index_alloc() };
        to_result(index)?;
        Ok(Self(index))
    }

    /// The number.
    pub(crate) fn get(&self) -> u32 {
        // CAST: `alloc` only keeps non-negative values.
        self.0 as u32
    }
}

impl Drop for CardIndex {
    fn drop(&mut self) {
        // SAFETY: `self.0` came from `fgrab_shim_card_index_alloc` and is freed once.
        unsafe { fgrab_shim_card_index_free(self.0) };
    }
}

/// The registered `struct miscdevice` and what an opening file needs from it.
///
/// Lives in a pinned box: `misc_open()` hands its address to [`MiscNode::from_raw`].
pub(crate) struct MiscNode {
    raw: Opaque<bindings::miscdevice>,
    name: CString,
    card: Arc<Card>,
}

// SAFETY: the `struct miscdevice` is written only by `misc_register()` and
// `misc_deregister()`, which serialize on `misc_mtx`; its raw pointers (name, fops, parent)
// refer to data that lives at least as long as the node. `card` is an `Arc` of a `Sync` type.
unsafe impl Send for MiscNode {}
// SAFETY: shared references only read `card` and hand `raw` to C, see `Send` above.
unsafe impl Sync for MiscNode {}

impl MiscNode {
    /// The card behind an open of this node.
    pub(crate) fn card(&self) -> &Arc<Card> {
        &self.card
    }

    /// Recovers the node from the `struct miscdevice` that `misc_open()` stored in
    /// `file->private_data`.
    ///
    /// # Safety
    ///
    /// `misc` must point to the `raw` field of a [`MiscNode`] that stays registered for `'a`
    /// (true during `open`: `misc_open()` holds `misc_mtx`, which `misc_deregister()` takes).
    pub(crate) unsafe fn from_raw<'a>(misc: *mut bindings::miscdevice) -> &'a MiscNode {
        let raw = misc.cast::<Opaque<bindings::miscdevice>>();
        // SAFETY: per the function's contract `raw` is the `raw` field of a live `MiscNode`.
        unsafe { &*kernel::container_of!(raw, MiscNode, raw) }
    }
}

/// A registered `/dev/fgrabN`; deregistered when dropped. Open files keep the [`Card`]
/// alive on their own, so dropping this while files are open is fine.
pub(crate) struct MiscRegistration(Pin<KBox<MiscNode>>);

impl MiscRegistration {
    /// Registers `/dev/<name>` for `card`, as a child of `parent` in sysfs.
    pub(crate) fn new(
        name: CString,
        card: Arc<Card>,
        parent: &kernel::pci::Device,
    ) -> Result<Self> {
        let node = KBox::pin(
            MiscNode {
                raw: Opaque::zeroed(),
                name,
                card,
            },
            GFP_KERNEL,
        )?;
        // SAFETY: `node.raw` is zeroed, pinned and outlives the registration (deregistered in
        // `Drop` before the box is freed); `name` lives as long as `node`; `parent` is a
        // bound device that outlives the registration (dropped with the driver data).
        to_result(unsafe {
            fgrab_shim_misc_register(
                node.raw.get().cast(),
                node.name.as_char_ptr(),
                raw_pci_dev(parent),
            )
        })?;
        // INVARIANT: the node is registered and deregistered exactly once, in `Drop`.
        Ok(Self(node))
    }
}

impl Drop for MiscRegistration {
    fn drop(&mut self) {
        // SAFETY: registered in `new` (type invariant); deregistered once, here.
        unsafe { fgrab_shim_misc_deregister(self.0.raw.get().cast()) };
    }
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
    pub(crate) unsafe fn from_raw(raw: *mut RawUringCmd, issue_flags: c_uint) -> Option<Self> {
        Some(Self {
            raw: NonNull::new(raw)?,
            issue_flags,
        })
    }

    /// `sqe->cmd_op`.
    pub(crate) fn op(&self) -> u32 {
        // SAFETY: `raw` is valid for this call (type invariant).
        unsafe { fgrab_shim_cmd_op(self.raw.as_ptr()) }
    }

    /// The file the command was submitted on.
    pub(crate) fn file(&self) -> *mut bindings::file {
        // SAFETY: `raw` is valid for this call (type invariant).
        unsafe { fgrab_shim_cmd_file(self.raw.as_ptr()) }.cast()
    }

    /// Whether this is io_uring asking to cancel a command marked cancelable (ring exit).
    pub(crate) fn is_cancel(&self) -> bool {
        // SAFETY: pure flag test.
        unsafe { fgrab_shim_issue_is_cancel(self.issue_flags) }
    }

    /// Whether the ring posts 32-byte CQEs, which frame completions need (the sequence
    /// number travels in the CQE's first extra word).
    pub(crate) fn has_cqe32(&self) -> bool {
        // SAFETY: pure flag test.
        unsafe { fgrab_shim_issue_has_cqe32(self.issue_flags) }
    }

    /// Whether the SQE set `IORING_URING_CMD_FIXED` (a fixed buffer is named by `buf_index`).
    pub(crate) fn is_fixed(&self) -> bool {
        // SAFETY: `raw` is valid for this call (type invariant).
        unsafe { fgrab_shim_cmd_is_fixed(self.raw.as_ptr()) }
    }

    /// The ring the command was submitted on, as an identity to compare.
    pub(crate) fn ring(&self) -> RingId {
        // SAFETY: `raw` is valid for this call (type invariant).
        RingId(unsafe { fgrab_shim_cmd_ring(self.raw.as_ptr()) } as usize)
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
    pub(crate) fn import_region(&self, addr: u64, len: u64) -> Result<RegionImport> {
        if !self.is_fixed() {
            // io_uring_cmd_import_fixed() would WARN; refuse before calling it.
            return Err(EINVAL);
        }
        let mut err = 0;
        // SAFETY: `raw` is valid for this call; `err` is writable.
        let raw = unsafe {
            fgrab_shim_region_import(self.raw.as_ptr(), self.issue_flags, addr, len, &mut err)
        };
        RegionImport::new(non_null_or(raw, err)?)
    }

    /// Keeps the command in flight beyond this call, cancelable on ring exit. The caller
    /// must then return `-EIOCBQUEUED` from `->uring_cmd`.
    pub(crate) fn into_pending(self) -> PendingCmd {
        // SAFETY: `raw` is valid for this call and `issue_flags` are this call's.
        unsafe { fgrab_shim_cmd_mark_cancelable(self.raw.as_ptr(), self.issue_flags) };
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
    pub(crate) fn payload(&self) -> Result<[u8; crate::uapi::CMD_PAYLOAD_BYTES]> {
        let mut payload = [0u8; crate::uapi::CMD_PAYLOAD_BYTES];
        // SAFETY: `raw` is valid for this call; `payload` is writable for its length.
        to_result(unsafe {
            fgrab_shim_cmd_payload(
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

    /// Completes a frame command from any context: `res` and `sequence` go to the CQE
    /// (`big_cqe[0]`), and `out`'s metadata, if any, to user memory just before it.
    ///
    /// Frame completions are lazy task work (`IOU_F_TWQ_LAZY_WAKE`): on a
    /// `IORING_SETUP_DEFER_TASKRUN` ring, a task waiting for N completions is woken once, when
    /// the N-th frame is ready, instead of once per frame (NVMe passthrough does the same).
    /// Each frame command posts exactly one CQE, as lazy wake-ups require.
    pub(crate) fn complete_frame(self, res: i32, sequence: u64, out: Option<KBox<FrameOut>>) {
        self.complete(res, sequence, out, true);
    }

    fn complete(self, res: i32, res2: u64, out: Option<KBox<FrameOut>>, lazy: bool) {
        let raw = self.raw.as_ptr();
        core::mem::forget(self);
        let out = out.map_or(core::ptr::null_mut(), KBox::into_raw);
        // SAFETY: `raw` is in flight and completed only here (type invariant; `self` is
        // forgotten so `Drop` does not complete it again). `out` is null or a kmalloc'ed
        // `FrameOut` whose ownership passes to the shim, which kfree()s it.
        unsafe { fgrab_shim_cmd_done_in_task(raw, res, res2, out, lazy) };
    }
}

impl Drop for PendingCmd {
    fn drop(&mut self) {
        // SAFETY: not completed yet (consuming methods forget `self`).
        unsafe {
            fgrab_shim_cmd_done_in_task(
                self.raw.as_ptr(),
                ECANCELED.to_errno(),
                0,
                core::ptr::null_mut(),
                false,
            )
        };
    }
}

/// A region of a fixed buffer imported by the command that attaches it; released when
/// dropped. Valid only while that command is in flight.
pub(crate) struct RegionImport {
    raw: NonNull<c_void>,
    /// Byte lengths of the bvec segments, read once at import.
    segments: KVec<u32>,
    /// Bytes of the first segments before the region.
    skip: u64,
}

// SAFETY: the import is plain memory (an iov_iter copy) owned by this value.
unsafe impl Send for RegionImport {}
// SAFETY: shared references only read it.
unsafe impl Sync for RegionImport {}

impl RegionImport {
    fn new(raw: NonNull<c_void>) -> Result<Self> {
        let mut import = Self {
            raw,
            segments: KVec::new(),
            skip: 0,
        };
        // SAFETY: `raw` is a live import; `skip` is writable.
        let count = unsafe { fgrab_shim_region_segments(raw.as_ptr(), &mut import.skip) };
        import.segments.reserve(count, GFP_KERNEL)?;
        for index in 0..count {
            // SAFETY: `raw` is a live import and `index` below its segment count.
            let len = unsafe { fgrab_shim_region_segment_len(raw.as_ptr(), index) };
            import.segments.push(len, GFP_KERNEL)?;
        }
        Ok(import)
    }

    /// DMA-maps region bytes `offset..offset + len` for device writes.
    ///
    /// # Errors
    ///
    /// `EINVAL` for an empty or out-of-range span; mapping errors (`ENOMEM`, `EIO`).
    pub(crate) fn map_frame(
        &self,
        offset: u64,
        len: u64,
        pdev: &ARef<pci::Device>,
    ) -> Result<FrameMapping> {
        // SAFETY: the device is valid while `pdev` is held.
        let max = unsafe { fgrab_shim_max_sg_entry(raw_pci_dev(pdev)) };
        let max = u32::try_from(max).unwrap_or(u32::MAX);
        let mut pieces = KVec::new();
        sglist::frame_pieces(&self.segments, self.skip, offset, len, max, |piece| {
            pieces.push(piece, GFP_KERNEL)?;
            Ok(())
        })?;
        let count = c_uint::try_from(pieces.len()).map_err(|_| EINVAL)?;
        let mut err = 0;
        // SAFETY: `self.raw` is a live import; `pieces` holds `count` initialized entries
        // laid out as `struct fgrab_piece`; the device is valid while `pdev` is held.
        let sgt = unsafe {
            fgrab_shim_frame_map(
                self.raw.as_ptr(),
                pieces.as_ptr(),
                count,
                raw_pci_dev(pdev),
                &mut err,
            )
        };
        Ok(FrameMapping {
            sgt: non_null_or(sgt, err)?,
            pdev: pdev.clone(),
        })
    }
}

impl Drop for RegionImport {
    fn drop(&mut self) {
        // Marks the region's pages dirty (the card wrote them), then frees the import.
        // SAFETY: created by `fgrab_shim_region_import`, released once, while the command
        // that imported it is still in flight (the pages are pinned).
        unsafe { fgrab_shim_region_release(self.raw.as_ptr()) };
    }
}

/// One frame's DMA mapping (its own `sg_table`, mapped for device writes); unmapped when
/// dropped.
pub(crate) struct FrameMapping {
    sgt: NonNull<bindings::sg_table>,
    pdev: ARef<pci::Device>,
}

// SAFETY: the table is owned by this value and only read after mapping.
unsafe impl Send for FrameMapping {}
// SAFETY: shared references only read the table.
unsafe impl Sync for FrameMapping {}

impl FrameMapping {
    /// The entries the DMA mapping produced (the first `nents`, after IOMMU merging).
    pub(crate) fn extents(&self) -> impl Iterator<Item = Extent> + '_ {
        // SAFETY: the table is valid and not modified while `self` is borrowed.
        let table = unsafe { SGTable::from_raw(self.sgt.as_ptr()) };
        table.iter().map(|entry| Extent {
            dma: entry.dma_address(),
            len: entry.dma_len(),
        })
    }
}

impl FrameMapping {
    /// Gives the frame to the CPU after the card wrote it (bounce buffers are copied back).
    pub(crate) fn sync_for_cpu(&self) {
        // SAFETY: the table is mapped for this device until `self` drops.
        unsafe { fgrab_shim_frame_sync(self.sgt.as_ptr().cast(), raw_pci_dev(&self.pdev), true) };
    }

    /// Gives the frame back to the card before it is queued again.
    pub(crate) fn sync_for_device(&self) {
        // SAFETY: the table is mapped for this device until `self` drops.
        unsafe { fgrab_shim_frame_sync(self.sgt.as_ptr().cast(), raw_pci_dev(&self.pdev), false) };
    }
}

impl Drop for FrameMapping {
    fn drop(&mut self) {
        // SAFETY: mapped by `fgrab_shim_frame_map` for this device; unmapped once.
        unsafe { fgrab_shim_frame_unmap(self.sgt.as_ptr().cast(), raw_pci_dev(&self.pdev)) };
    }
}

/// Mirror of `struct fgrab_cpu_piece` (shim.h): where a piece of a driver-owned frame is.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct CpuPiece {
    /// Kernel address of the first byte.
    pub(crate) addr: *const u8,
    /// Bytes.
    pub(crate) len: usize,
}

/// A driver-owned frame of the copy path: zeroed pages charged to the memory cgroup of the
/// task that allocated it, DMA-mapped for device writes (its own `sg_table`, like
/// [`FrameMapping`]); unmapped and freed when dropped. See `fgrab_shim_kernel_frame_alloc`
/// in `shim.c` for why this is not coherent memory.
///
/// # Invariants
///
/// `sgt` came from `fgrab_shim_kernel_frame_alloc` for `pdev`; `pieces` are its chunks.
pub(crate) struct KernelFrame {
    sgt: NonNull<bindings::sg_table>,
    pdev: ARef<pci::Device>,
    pieces: KVec<CpuPiece>,
}

// SAFETY: the table and its pages are owned by this value; the CPU addresses point into
// them and are only read by a caller that knows the card does not write the frame.
unsafe impl Send for KernelFrame {}
// SAFETY: shared references only read the table and the addresses.
unsafe impl Sync for KernelFrame {}

impl KernelFrame {
    /// Allocates and maps a frame of `bytes`, charged to the current task's memory cgroup.
    ///
    /// # Errors
    ///
    /// `ENOMEM` (also when the cgroup's limit is reached); mapping errors.
    pub(crate) fn new(pdev: &ARef<pci::Device>, bytes: u32) -> Result<Self> {
        // SAFETY: the device is valid while `pdev` is held.
        let max_chunk = unsafe { fgrab_shim_max_sg_entry(raw_pci_dev(pdev)) };
        let mut err = 0;
        // SAFETY: the device is bound (the caller holds a reservation that unbind waits
        // for); `err` is writable.
        let sgt =
            unsafe { fgrab_shim_kernel_frame_alloc(raw_pci_dev(pdev), bytes, max_chunk, &mut err) };
        let sgt = non_null_or::<bindings::sg_table>(sgt, err)?;
        // SAFETY: `sgt` is a live table from `fgrab_shim_kernel_frame_alloc`; a null
        // array with `max` 0 only asks for the count.
        let count = unsafe {
            fgrab_shim_kernel_frame_pieces(sgt.as_ptr().cast(), core::ptr::null_mut(), 0)
        };
        let mut frame = Self {
            sgt,
            pdev: pdev.clone(),
            pieces: KVec::new(),
        };
        frame.pieces.reserve(count as usize, GFP_KERNEL)?;
        // SAFETY: the array has room for `count` pieces, which the call fills.
        unsafe {
            fgrab_shim_kernel_frame_pieces(sgt.as_ptr().cast(), frame.pieces.as_mut_ptr(), count);
            frame.pieces.inc_len(count as usize);
        }
        // INVARIANT: allocated for `pdev` above, `pieces` filled from it.
        Ok(frame)
    }

    /// The entries the DMA mapping produced (see [`FrameMapping::extents`]).
    pub(crate) fn extents(&self) -> impl Iterator<Item = Extent> + '_ {
        // SAFETY: the table is valid and not modified while `self` is borrowed.
        let table = unsafe { SGTable::from_raw(self.sgt.as_ptr()) };
        table.iter().map(|entry| Extent {
            dma: entry.dma_address(),
            len: entry.dma_len(),
        })
    }

    /// The frame's chunks as the CPU sees them, in frame order.
    pub(crate) fn pieces(&self) -> &[CpuPiece] {
        &self.pieces
    }

    /// Gives the frame to the CPU after the card wrote it (bounce buffers are copied back).
    pub(crate) fn sync_for_cpu(&self) {
        // SAFETY: the table is mapped for this device until `self` drops.
        unsafe { fgrab_shim_frame_sync(self.sgt.as_ptr().cast(), raw_pci_dev(&self.pdev), true) };
    }

    /// Gives the frame back to the card before it is queued again.
    pub(crate) fn sync_for_device(&self) {
        // SAFETY: the table is mapped for this device until `self` drops.
        unsafe { fgrab_shim_frame_sync(self.sgt.as_ptr().cast(), raw_pci_dev(&self.pdev), false) };
    }
}

impl Drop for KernelFrame {
    fn drop(&mut self) {
        // SAFETY: allocated and mapped by `fgrab_shim_kernel_frame_alloc` for this device
        // (type invariant); freed once.
        unsafe { fgrab_shim_kernel_frame_free(self.sgt.as_ptr().cast(), raw_pci_dev(&self.pdev)) };
    }
}

/// Mirror of `struct fgrab_frame_out` (shim.h): a frame's metadata and where user space wants
/// it, handed to the completion's task work.
#[repr(C)]
pub(crate) struct FrameOut {
    /// User address from [`crate::uapi::QueueCmd::meta_addr`].
    pub(crate) meta_addr: u64,
    /// What is copied there.
    pub(crate) meta: crate::uapi::FrameMeta,
}

const _: () = assert!(core::mem::size_of::<FrameOut>() == 40);

/// Coherent DMA memory the card reads (descriptor lists), freed when dropped.
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
        let cpu = unsafe { fgrab_shim_dma_alloc(raw_pci_dev(pdev), size, &mut dma) };
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
            fgrab_shim_dma_free(
                raw_pci_dev(&self.pdev),
                self.size,
                self.cpu.as_ptr().cast(),
                self.dma,
            )
        };
    }
}

/// The card's MSI-X vectors (`docs/hardware.md` §2).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Vector {
    /// Frame completions.
    Frames = 0,
    /// Errors and state changes.
    Errors = 1,
}

/// What a vector's thread handler needs.
struct IrqContext {
    card: Arc<Card>,
    vector: Vector,
    /// Shown in /proc/interrupts; lives as long as the handler.
    name: CString,
}

/// Allocated MSI-X vectors, freed when dropped (after their handlers).
struct IrqVectors {
    pdev: ARef<pci::Device>,
}

impl Drop for IrqVectors {
    fn drop(&mut self) {
        // SAFETY: vectors were allocated for this device; their handlers are freed already
        // (field order of `Interrupts`).
        unsafe { fgrab_shim_irq_vectors_free(raw_pci_dev(&self.pdev)) };
    }
}

/// One requested threaded handler, freed when dropped.
///
/// # Invariants
///
/// `context` came from `KBox::into_raw` and is the cookie of the handler on `irq`.
struct IrqHandler {
    irq: c_uint,
    context: NonNull<IrqContext>,
}

impl Drop for IrqHandler {
    fn drop(&mut self) {
        // SAFETY: the handler was requested with this cookie (type invariant). `free_irq`
        // waits for a running thread handler, after which nothing uses `context`.
        unsafe { fgrab_shim_irq_free(self.irq, self.context.as_ptr().cast()) };
        // SAFETY: from `KBox::into_raw` (type invariant), no longer shared.
        drop(unsafe { KBox::from_raw(self.context.as_ptr()) });
    }
}

// SAFETY: the context is only shared with the interrupt thread, and `IrqContext` is `Sync`.
unsafe impl Send for IrqHandler {}
// SAFETY: as above; shared references do not touch the context.
unsafe impl Sync for IrqHandler {}

/// The card's interrupt vectors with their thread handlers, which call
/// [`Card::interrupt`]. Field order is drop order: handlers before vectors.
pub(crate) struct Interrupts {
    _handlers: KVec<IrqHandler>,
    _vectors: IrqVectors,
}

impl Interrupts {
    /// Allocates both MSI-X vectors of `pdev` and requests a thread handler on each.
    ///
    /// # Errors
    ///
    /// Those of `pci_alloc_irq_vectors` and `request_threaded_irq`.
    pub(crate) fn new(pdev: &ARef<pci::Device>, card: &Arc<Card>) -> Result<Self> {
        let vectors = [Vector::Frames, Vector::Errors];
        // SAFETY: the device is being probed; CAST: two vectors.
        to_result(unsafe {
            fgrab_shim_irq_vectors_alloc(raw_pci_dev(pdev), vectors.len() as c_uint)
        })?;
        let allocated = IrqVectors { pdev: pdev.clone() };
        let mut handlers = KVec::with_capacity(vectors.len(), GFP_KERNEL)?;
        for vector in vectors {
            // SAFETY: vectors are allocated; CAST: the index is 0 or 1.
            let irq = unsafe { fgrab_shim_irq_vector(raw_pci_dev(pdev), vector as c_uint) };
            to_result(irq)?;
            let name = match vector {
                Vector::Frames => CString::try_from_fmt(fmt!("fgrab{}-frames", card.index()))?,
                Vector::Errors => CString::try_from_fmt(fmt!("fgrab{}-errors", card.index()))?,
            };
            let context = KBox::new(
                IrqContext {
                    card: card.clone(),
                    vector,
                    name,
                },
                GFP_KERNEL,
            )?;
            let context = NonNull::from(KBox::leak(context));
            // CAST: `to_result` accepted `irq`, so it is not negative.
            let irq = irq as c_uint;
            // SAFETY: `context` stays valid until `IrqHandler::drop` frees the handler first;
            // its name outlives the registration.
            let ret = unsafe {
                fgrab_shim_irq_request(
                    irq,
                    (*context.as_ptr()).name.as_char_ptr(),
                    context.as_ptr().cast(),
                )
            };
            if ret < 0 {
                // SAFETY: not registered; from `KBox::leak` above.
                drop(unsafe { KBox::from_raw(context.as_ptr()) });
                return Err(Error::from_errno(ret));
            }
            // INVARIANT: registered with `context` as cookie.
            handlers.push(IrqHandler { irq, context }, GFP_KERNEL)?;
        }
        Ok(Self {
            _handlers: handlers,
            _vectors: allocated,
        })
    }
}

/// Thread half of both vectors (`shim.c` requests it).
///
/// # Safety
///
/// Called by the IRQ core with the cookie given to `request_threaded_irq` in
/// [`Interrupts::new`], which stays valid until `free_irq` returned.
#[no_mangle]
unsafe extern "C" fn fgrab_irq_thread(_irq: c_int, data: *mut c_void) -> bindings::irqreturn_t {
    // SAFETY: `data` is the live `IrqContext` of this handler (see `IrqHandler`).
    let context = unsafe { &*data.cast::<IrqContext>() };
    context.card.interrupt(context.vector);
    bindings::irqreturn::IRQ_HANDLED
}

/// Calls [`Card::poll`] every `period_ms` from a work item until dropped; the drop waits
/// for a running call to finish.
///
/// # Invariants
///
/// `raw` is a started `struct fgrab_watchdog` whose `data` is `card`'s address.
pub(crate) struct Watchdog {
    raw: NonNull<c_void>,
    /// Kept alive for the work item, which borrows it without a count; released after the
    /// work is stopped (fields drop after `Drop::drop`).
    _card: Arc<Card>,
}

// SAFETY: the C object is only touched by `Drop`; the card is `Sync`.
unsafe impl Send for Watchdog {}
// SAFETY: shared references do not touch the C object.
unsafe impl Sync for Watchdog {}

impl Watchdog {
    /// Starts polling `card`.
    ///
    /// # Errors
    ///
    /// `ENOMEM`.
    pub(crate) fn start(card: &Arc<Card>, period_ms: u32) -> Result<Self> {
        let data = Arc::as_ptr(card).cast_mut().cast();
        // SAFETY: `data` stays valid until `Drop` stopped the work: `card` is kept here.
        let raw = unsafe { fgrab_shim_watchdog_start(data, period_ms) };
        // INVARIANT: started with `card`'s address.
        Ok(Self {
            raw: NonNull::new(raw).ok_or(ENOMEM)?,
            _card: card.clone(),
        })
    }

    /// A handle that runs this watchdog early; see [`WatchdogKick`] for how long it is valid.
    pub(crate) fn kick_handle(&self) -> WatchdogKick {
        // INVARIANT: a started watchdog; keeping it started is the holder's duty.
        WatchdogKick { raw: self.raw }
    }
}

/// Runs a card's watchdog now rather than at its next period, from any context.
///
/// # Invariants
///
/// `raw` is a started `struct fgrab_watchdog`. Its holder (the card's [`Stream`]) drops
/// the handle at unbind, before the binding stops the watchdog.
///
/// [`Stream`]: crate::stream::Stream
pub(crate) struct WatchdogKick {
    raw: NonNull<c_void>,
}

// SAFETY: `fgrab_shim_watchdog_kick` may be called from any thread.
unsafe impl Send for WatchdogKick {}

impl WatchdogKick {
    /// Queues the watchdog's run now.
    pub(crate) fn kick(&self) {
        // SAFETY: started, and not stopped while this handle exists (type invariant).
        unsafe { fgrab_shim_watchdog_kick(self.raw.as_ptr()) };
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // SAFETY: started in `start` (type invariant), stopped once; after this returns no
        // run is in progress or queued.
        unsafe { fgrab_shim_watchdog_stop(self.raw.as_ptr()) };
    }
}

/// One watchdog period (`shim.c` queues it).
///
/// # Safety
///
/// `data` is the card address given to `fgrab_shim_watchdog_start` by [`Watchdog::start`],
/// valid until that watchdog is stopped.
#[no_mangle]
unsafe extern "C" fn fgrab_watchdog_run(data: *mut c_void) {
    // SAFETY: the `Watchdog` holds a reference to the card until the work is stopped.
    let card = unsafe { &*data.cast::<Card>() };
    card.poll();
}

/// Mirror of `struct fgrab_snapshot` (shim.h): what sysfs shows of a card.
#[repr(C)]
pub(crate) struct Snapshot {
    pub(crate) hw_version: u32,
    pub(crate) card_index: u32,
    pub(crate) state: u32,
    pub(crate) frame_bytes: u32,
    pub(crate) frame_count: u32,
    pub(crate) frames_queued: u32,
    pub(crate) descriptors_max_per_frame: u32,
    pub(crate) reserved: u32,
    pub(crate) frames_delivered: u64,
    pub(crate) frames_dropped_underrun: u64,
    pub(crate) frames_dropped_other: u64,
    pub(crate) frames_failed: u64,
    pub(crate) bytes_delivered: u64,
}

/// Fills a card's sysfs snapshot (`shim.c` calls it from attribute reads).
///
/// # Safety
///
/// `misc` is the `struct miscdevice` of a registered [`MiscNode`] (the drvdata of its class
/// device, whose attributes are removed before it is deregistered); `snapshot` is writable.
#[no_mangle]
unsafe extern "C" fn fgrab_card_snapshot(misc: *mut bindings::miscdevice, snapshot: *mut Snapshot) {
    // SAFETY: per the function's contract the node is registered for this call.
    let card = unsafe { MiscNode::from_raw(misc) }.card();
    let info = card.info();
    let stats = card.stats();
    let value = Snapshot {
        hw_version: info.hw_version,
        card_index: info.card_index,
        state: stats.state,
        frame_bytes: stats.frame_bytes,
        frame_count: stats.frame_count,
        frames_queued: stats.frames_queued,
        descriptors_max_per_frame: stats.descriptors_max_per_frame,
        reserved: 0,
        frames_delivered: stats.frames_delivered,
        frames_dropped_underrun: stats.frames_dropped_underrun,
        frames_dropped_other: stats.frames_dropped_other,
        frames_failed: stats.frames_failed,
        bytes_delivered: stats.bytes_delivered,
    };
    // SAFETY: `snapshot` is writable (contract).
    unsafe { snapshot.write(value) };
}

/// `CLOCK_MONOTONIC` now, in nanoseconds (`kernel::time::Instant` keeps its value private).
pub(crate) fn monotonic_ns() -> u64 {
    // SAFETY: `ktime_get` has no preconditions.
    let now = unsafe { bindings::ktime_get() };
    // CAST: monotonic time is never negative.
    now as u64
}
