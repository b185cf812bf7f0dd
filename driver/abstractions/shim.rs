// SPDX-License-Identifier: GPL-2.0

//! Declarations of the C shim (`shim.c`, `shim.h`): the kernel APIs that 7.3 offers no Rust
//! abstraction for. Only the abstractions beside this file call them; no other module of
//! the driver declares `extern "C"` items.
//!
//! Kernel structs are declared as `c_void` here: some of their bindgen types embed members
//! that rustc does not consider FFI-safe (`improper_ctypes`), and the shim only needs their
//! addresses. The C prototypes in `shim.h` carry the real types, so a change of a kernel
//! API breaks the C build, loudly.

use core::ffi::{c_int, c_uint, c_void};
use kernel::ffi::c_char;

// Types shared with `shim.h`, re-exported by the abstractions that use them.

/// `struct io_uring_cmd`, only ever handled by pointer.
#[repr(C)]
pub(crate) struct RawUringCmd {
    _opaque: [u8; 0],
}

/// `struct fgrab_user_writeback`: bytes copied to user memory by a command's completion,
/// just before its CQE is posted. Only ever handled by pointer (it ends in a flexible
/// array); owned by `UserWriteback` in `uring_cmd.rs`.
#[repr(C)]
pub(crate) struct RawUserWriteback {
    _opaque: [u8; 0],
}

/// A byte range of one bvec segment; layout shared with `struct fgrab_piece` in `shim.h`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BvecPiece {
    /// Index of the bvec segment.
    pub(crate) segment: u32,
    /// Offset of the first byte within the segment's data.
    pub(crate) offset: u32,
    /// Bytes.
    pub(crate) len: u32,
    /// Zero.
    pub(crate) reserved: u32,
}

// `struct fgrab_piece` is four `u32`s.
const _: () = assert!(core::mem::size_of::<BvecPiece>() == 16);

/// Where a piece of a `PageFrame` is for the CPU; layout shared with
/// `struct fgrab_cpu_range` in `shim.h`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct CpuRange {
    /// Kernel address of the first byte.
    pub(super) addr: *const u8,
    /// Bytes.
    pub(super) len: usize,
}

extern "C" {
    // Misc device (misc.rs).
    pub(super) fn fgrab_shim_misc_register(
        misc: *mut c_void,
        name: *const c_char,
        parent: *mut c_void,
        attribute_names: *const *const c_char,
        attribute_count: c_uint,
    ) -> c_int;
    pub(super) fn fgrab_shim_misc_deregister(misc: *mut c_void);

    // PCI and DMA queries (pci.rs).
    pub(super) fn fgrab_shim_pci_location(pdev: *mut c_void) -> u32;
    pub(super) fn fgrab_shim_bus_master(pdev: *mut c_void, enable: bool);
    pub(super) fn fgrab_shim_max_sg_entry(pdev: *mut c_void) -> u64;
    pub(super) fn fgrab_shim_bounce_pool_bytes(pdev: *mut c_void) -> u64;
    pub(super) fn fgrab_shim_dma_alignment(pdev: *mut c_void) -> u32;

    // Logging (log.rs).
    pub(super) fn fgrab_shim_warn_ratelimit() -> bool;
    pub(super) fn fgrab_shim_warn_ratelimited(pdev: *mut c_void, message: *const c_char);

    // Small-number allocator (ids.rs).
    pub(super) fn fgrab_shim_index_alloc() -> c_int;
    pub(super) fn fgrab_shim_index_free(index: c_int);

    // io_uring commands (uring_cmd.rs).
    pub(super) fn fgrab_shim_cmd_op(cmd: *const RawUringCmd) -> u32;
    pub(super) fn fgrab_shim_cmd_file(cmd: *const RawUringCmd) -> *mut c_void;
    pub(super) fn fgrab_shim_cmd_payload(
        cmd: *const RawUringCmd,
        issue_flags: c_uint,
        dst: *mut c_void,
        len: usize,
    ) -> c_int;
    pub(super) fn fgrab_shim_cmd_is_fixed(cmd: *const RawUringCmd) -> bool;
    pub(super) fn fgrab_shim_issue_is_cancel(issue_flags: c_uint) -> bool;
    pub(super) fn fgrab_shim_issue_has_cqe32(issue_flags: c_uint) -> bool;
    pub(super) fn fgrab_shim_cmd_ring(cmd: *mut RawUringCmd) -> *const c_void;
    pub(super) fn fgrab_shim_cmd_mark_cancelable(cmd: *mut RawUringCmd, issue_flags: c_uint);
    pub(super) fn fgrab_shim_cmd_done_in_task(
        cmd: *mut RawUringCmd,
        res: i32,
        res2: u64,
        writeback: *mut RawUserWriteback,
        lazy: bool,
    );
    pub(super) fn fgrab_shim_writeback_alloc(addr: u64, len: u32) -> *mut RawUserWriteback;
    pub(super) fn fgrab_shim_writeback_bytes(writeback: *mut RawUserWriteback) -> *mut u8;
    pub(super) fn fgrab_shim_writeback_free(writeback: *mut RawUserWriteback);
    pub(super) fn fgrab_shim_fixed_import(
        cmd: *mut RawUringCmd,
        issue_flags: c_uint,
        addr: u64,
        len: u64,
        err: *mut c_int,
    ) -> *mut c_void;
    pub(super) fn fgrab_shim_fixed_release(import: *mut c_void);
    pub(super) fn fgrab_shim_fixed_segments(import: *const c_void, skip: *mut u64) -> usize;
    pub(super) fn fgrab_shim_fixed_segment_len(import: *const c_void, index: usize) -> u32;

    // Scatter/gather tables (sg_table.rs, page_frame.rs).
    pub(super) fn fgrab_shim_sg_map(
        import: *const c_void,
        pieces: *const BvecPiece,
        count: c_uint,
        pdev: *mut c_void,
        err: *mut c_int,
    ) -> *mut c_void;
    pub(super) fn fgrab_shim_sg_unmap(sgt: *mut c_void, pdev: *mut c_void);
    pub(super) fn fgrab_shim_sg_sync(sgt: *mut c_void, pdev: *mut c_void, for_cpu: bool);
    pub(super) fn fgrab_shim_page_frame_alloc(
        pdev: *mut c_void,
        bytes: u32,
        max_chunk: u64,
        err: *mut c_int,
    ) -> *mut c_void;
    pub(super) fn fgrab_shim_page_frame_free(sgt: *mut c_void, pdev: *mut c_void);
    pub(super) fn fgrab_shim_page_frame_ranges(
        sgt: *const c_void,
        ranges: *mut CpuRange,
        max: c_uint,
    ) -> c_uint;

    // Coherent memory (coherent.rs).
    pub(super) fn fgrab_shim_dma_alloc(
        pdev: *mut c_void,
        size: usize,
        dma: *mut u64,
    ) -> *mut c_void;
    pub(super) fn fgrab_shim_dma_free(pdev: *mut c_void, size: usize, cpu: *mut c_void, dma: u64);

    // Periodic work (periodic.rs).
    pub(super) fn fgrab_shim_periodic_start(
        run: unsafe extern "C" fn(*mut c_void),
        data: *mut c_void,
        period_ms: c_uint,
    ) -> *mut c_void;
    pub(super) fn fgrab_shim_periodic_stop(work: *mut c_void);
    pub(super) fn fgrab_shim_periodic_kick(work: *mut c_void);
}
