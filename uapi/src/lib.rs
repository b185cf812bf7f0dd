// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The fgrab user/kernel ABI (version [`ABI_VERSION`]).
//!
//! One source, compiled twice: into the kernel module (through `#[path]`, with the kernel's
//! own zerocopy crates) and into user space (this crate). `include/fgrab.h` is the C mirror,
//! checked against these definitions by `tests/c_header.rs`. `docs/abi.md` explains the
//! protocol; this file is the authority on layout.
//!
//! Commands are io_uring `IORING_OP_URING_CMD` submissions on `/dev/fgrabN`. The ring must be
//! created with `IORING_SETUP_SQE128` (every command carries an 80-byte payload, one of the
//! `*Cmd` structures below) and `IORING_SETUP_CQE32` (frame completions carry metadata in the
//! second half of the CQE). Errors are negative errno values in the CQE's `res`.
//!
//! Rules every structure follows: `#[repr(C)]`, fixed-width fields, explicit padding named
//! `reserved*` that must be zero (the kernel checks, so the fields can gain meaning later),
//! sizes and offsets asserted at compile time.

#![no_std]

use zerocopy_derive::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// ABI version reported by [`DeviceInfo::abi_version`]; bumped on incompatible changes.
pub const ABI_VERSION: u32 = 1;

/// Size of every command payload: the `cmd` area of a 128-byte SQE.
pub const CMD_PAYLOAD_BYTES: usize = 80;

/// Builds a command opcode: "FG" in the upper half keeps fgrab's opcodes apart from other
/// drivers' `cmd_op` values when seen in traces.
const fn op(number: u32) -> u32 {
    0x4647_0000 | number
}

/// Command opcodes (`sqe->cmd_op`).
pub mod ops {
    /// Copies a [`super::DeviceInfo`] to user memory. Payload: [`super::InfoCmd`].
    /// Allowed on any open file, also while another file streams. Completes at once with
    /// the number of bytes written.
    pub const INFO: u32 = super::op(0x01);
}

/// Payload of [`ops::INFO`].
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct InfoCmd {
    /// User address to write the [`DeviceInfo`] to.
    pub addr: u64,
    /// Bytes available at `addr`; the kernel writes `min(size, size_of::<DeviceInfo>())`, so
    /// an older program with a smaller structure keeps working.
    pub size: u32,
    /// Must be zero.
    pub flags: u32,
    /// Must be zero.
    pub reserved: [u64; 8],
}

/// Identity and capabilities of one card, as returned by [`ops::INFO`].
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct DeviceInfo {
    /// `size_of::<DeviceInfo>()` as the kernel knows it.
    pub struct_size: u32,
    /// [`ABI_VERSION`] of the running driver.
    pub abi_version: u32,
    /// N of `/dev/fgrabN`.
    pub card_index: u32,
    /// Hardware interface version read from the card (`docs/hardware.md`).
    pub hw_version: u32,
    /// PCI vendor ID.
    pub vendor_id: u16,
    /// PCI device ID.
    pub device_id: u16,
    /// PCI subsystem vendor ID.
    pub subsystem_vendor_id: u16,
    /// PCI subsystem ID.
    pub subsystem_id: u16,
    /// PCI location: `domain << 16 | bus << 8 | devfn`.
    pub pci_location: u32,
    /// PCI revision ID.
    pub revision: u8,
    /// Zero.
    pub reserved0: [u8; 3],
    /// Largest DMA segment one descriptor may describe, in bytes.
    pub max_segment_bytes: u32,
    /// Most descriptors the card accepts for one frame.
    pub max_descriptors_per_frame: u32,
    /// Bytes per frame the sensor currently produces.
    pub frame_bytes: u32,
    /// Bits of DMA address the card can generate.
    pub dma_address_bits: u32,
    /// Time between frame starts, in nanoseconds.
    pub frame_period_ns: u64,
    /// Zero.
    pub reserved: [u64; 4],
}

/// Compile-time layout checks: these values are part of the ABI and mirrored in the C header.
const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<InfoCmd>() == CMD_PAYLOAD_BYTES);
    assert!(offset_of!(InfoCmd, size) == 8);
    assert!(offset_of!(InfoCmd, reserved) == 16);
    assert!(size_of::<DeviceInfo>() == 88);
    assert!(offset_of!(DeviceInfo, vendor_id) == 16);
    assert!(offset_of!(DeviceInfo, pci_location) == 24);
    assert!(offset_of!(DeviceInfo, max_segment_bytes) == 32);
    assert!(offset_of!(DeviceInfo, frame_period_ns) == 48);
    assert!(offset_of!(DeviceInfo, reserved) == 56);
};
