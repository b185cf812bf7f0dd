// SPDX-License-Identifier: GPL-2.0

//! Structures the card reads and writes in host memory (`docs/hardware.md` §4): descriptors,
//! submit entries, completion records. The card defines them little endian; fields here are
//! native integers, so the driver refuses to build for big-endian hosts.

use kernel::{
    prelude::*,
    transmute::{AsBytes, FromBytes as KernelFromBytes},
};
use zerocopy_derive::{Immutable, KnownLayout};

#[cfg(target_endian = "big")]
compile_error!("fgrab's DMA structures are little endian; add byte swapping for this host");

/// [`Descriptor::flags`]: last descriptor of a list.
pub(crate) const DESCRIPTOR_LAST: u32 = 1 << 0;

/// One scatter/gather segment of a frame.
#[repr(C)]
#[derive(Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub(crate) struct Descriptor {
    /// Bus address of the segment's first byte (any alignment).
    pub(crate) addr: u64,
    /// Bytes, `1..=MAX_SEGMENT_BYTES`.
    pub(crate) len: u32,
    /// [`DESCRIPTOR_LAST`] on the last descriptor only.
    pub(crate) flags: u32,
}

/// Descriptor lists must start on this boundary.
pub(crate) const DESCRIPTOR_LIST_ALIGN: usize = 16;

/// One entry of the submit ring: a frame buffer handed to the card.
#[repr(C)]
#[derive(Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub(crate) struct SubmitEntry {
    /// Bus address of the descriptor list.
    pub(crate) desc_addr: u64,
    /// Descriptors in the list.
    pub(crate) desc_count: u16,
    /// Zero.
    pub(crate) reserved: u16,
    /// Returned in the completion record: the frame index.
    pub(crate) cookie: u32,
}

/// [`CompletionRecord::status`] values.
pub(crate) mod status {
    /// The frame was written.
    pub(crate) const OK: u16 = 0;
    /// The buffer was shorter than the frame: it holds the frame's first bytes.
    pub(crate) const INCOMPLETE: u16 = 1;
    /// A DMA access faulted.
    pub(crate) const DMA_ERROR: u16 = 2;
    /// The submission was invalid.
    pub(crate) const DESC_ERROR: u16 = 3;
    /// Returned unfilled (or partly filled) by a stop.
    pub(crate) const FLUSHED: u16 = 4;
}

/// [`CompletionRecord::flags`]: `sequence` and `timestamp_ns` describe a frame.
pub(crate) const RECORD_FRAME: u16 = 1 << 0;

/// One record of the completion ring, written by the card.
#[repr(C)]
#[derive(Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub(crate) struct CompletionRecord {
    /// The submission's cookie.
    pub(crate) cookie: u32,
    /// One of [`status`].
    pub(crate) status: u16,
    /// [`RECORD_FRAME`].
    pub(crate) flags: u16,
    /// Frame bytes written into the buffer.
    pub(crate) bytes: u32,
    /// Zero.
    pub(crate) reserved: u32,
    /// Frame sequence number.
    pub(crate) sequence: u64,
    /// Card clock at the end of the frame, in nanoseconds.
    pub(crate) timestamp_ns: u64,
}

// SAFETY: `repr(C)` structures of integers without padding (the zerocopy `IntoBytes` derive
// above checks that); every bit pattern is a valid value.
unsafe impl AsBytes for SubmitEntry {}
// SAFETY: as above.
unsafe impl KernelFromBytes for SubmitEntry {}
// SAFETY: as above.
unsafe impl AsBytes for CompletionRecord {}
// SAFETY: as above.
unsafe impl KernelFromBytes for CompletionRecord {}

const _: () = {
    assert!(core::mem::size_of::<Descriptor>() == 16);
    assert!(core::mem::size_of::<SubmitEntry>() == 16);
    assert!(core::mem::size_of::<CompletionRecord>() == 32);
};
