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
    /// Copies a [`super::DeviceInfo`] to user memory. Payload: [`super::CopyOutCmd`].
    /// Allowed on any open file, also while another file streams. Completes at once with
    /// the number of bytes written.
    pub const INFO: u32 = super::op(0x01);
    /// Attaches a region of an io_uring fixed buffer as the card's frame buffers.
    /// Payload: [`super::AttachCmd`]; the SQE must set `IORING_URING_CMD_FIXED` and
    /// `buf_index`. On success the command stays in flight for the life of the region and
    /// completes when it ends: 0 after [`DETACH`], `-ECANCELED` when the ring exits,
    /// `-ENODEV` when the card goes away. Errors complete it at once.
    pub const ATTACH: u32 = super::op(0x02);
    /// Detaches one region this file attached (the others keep streaming). Payload:
    /// [`super::DetachCmd`]. Completes at once with 0; the region's attach command
    /// completes afterwards, once the card can no longer write it.
    pub const DETACH: u32 = super::op(0x03);
    /// Copies a [`super::Stats`] to user memory. Payload: [`super::CopyOutCmd`]. Allowed on
    /// any open file. Completes at once with the number of bytes written.
    pub const STATS: u32 = super::op(0x04);
    /// Hands one frame of an attached region to the card. Payload: [`super::QueueCmd`].
    /// Must come from the file and ring that attached the region. Completes when the card
    /// has filled the frame (`res` = bytes, CQE32 `big_cqe[0]` = sequence number), or with a
    /// negative errno when the frame failed or the stream stopped (see `docs/abi.md`).
    pub const QUEUE: u32 = super::op(0x05);
    /// Starts the stream: queued frames go to the card, which fills one per frame period.
    /// Payload: [`super::ControlCmd`]. Completes at once with 0.
    pub const START: u32 = super::op(0x06);
    /// Stops the stream: the card gives every queued frame back and each completes with
    /// `-ECANCELED`. Payload: [`super::ControlCmd`]. Completes at once with 0, after those.
    pub const STOP: u32 = super::op(0x07);
    /// Reads the card's GenICam XML. Payload: [`super::PortCmd`] (`offset`: byte in the
    /// XML, any alignment; `size`: at most [`super::MAX_PORT_BYTES`]). Completes at once
    /// with the bytes copied (fewer at the XML's end), or with the XML's size when `size` is
    /// 0. Allowed on any open file. `-EOPNOTSUPP` for a card without camera features.
    pub const XML_READ: u32 = super::op(0x08);
    /// Reads bytes of the camera's feature window (the GenICam port "Device"). Payload:
    /// [`super::PortCmd`], `offset` and `size` multiples of 4, inside the window, `size` at
    /// most [`super::MAX_PORT_BYTES`]. Completes at once with `size`. Allowed on any open
    /// file.
    pub const FEATURE_READ: u32 = super::op(0x09);
    /// Writes bytes of the camera's feature window, as 32-bit registers in address order.
    /// Payload: [`super::PortCmd`], rules of [`FEATURE_READ`]. Completes at once with
    /// `size`. `-EBUSY` if another file attached the card's region, or if the write touches
    /// `Width`, `Height` or `PixelFormat` while the stream runs.
    pub const FEATURE_WRITE: u32 = super::op(0x0a);
    /// Hands several consecutive frames of an attached region to the card with one
    /// submission (issue 15). Payload: [`super::QueueBatchCmd`]. Rules of [`QUEUE`] for each
    /// frame, checked for all of them before any is queued. Completes once, when every
    /// frame of the batch is no longer the card's: `res` = frames filled (or, if none was,
    /// the first frame's negative errno), CQE32 `big_cqe[0]` = sequence number of the
    /// batch's last frame; each frame's [`super::FrameMeta`] goes to the array at
    /// `meta_addr` (see `docs/abi.md`).
    pub const QUEUE_BATCH: u32 = super::op(0x0b);
}

/// `ioctl` numbers of the per-frame blocking path, kept for applications built around
/// V4L2-style calls (and as a benchmark peer): one system call per frame and direction.
/// The region is attached (and the stream started) through io_uring as usual.
pub mod ioctls {
    /// The `_IOC` layout of `asm/ioctl.h` on powerpc, mips and sparc: 13 size bits, 3
    /// direction bits, write 4, read 2. (Alpha has it too, and parisc swaps the generic
    /// read and write values; Rust targets neither.)
    #[cfg(any(
        target_arch = "powerpc",
        target_arch = "powerpc64",
        target_arch = "mips",
        target_arch = "mips64",
        target_arch = "mips32r6",
        target_arch = "mips64r6",
        target_arch = "sparc",
        target_arch = "sparc64"
    ))]
    mod layout {
        pub(super) const SIZE_BITS: u32 = 13;
        pub(super) const WRITE: u32 = 4;
        pub(super) const READ: u32 = 2;
    }

    /// The generic `_IOC` layout (`asm-generic/ioctl.h`): x86, arm, arm64, riscv, s390,
    /// loongarch and the rest: 14 size bits, 2 direction bits, write 1, read 2.
    #[cfg(not(any(
        target_arch = "powerpc",
        target_arch = "powerpc64",
        target_arch = "mips",
        target_arch = "mips64",
        target_arch = "mips32r6",
        target_arch = "mips64r6",
        target_arch = "sparc",
        target_arch = "sparc64"
    )))]
    mod layout {
        pub(super) const SIZE_BITS: u32 = 14;
        pub(super) const WRITE: u32 = 1;
        pub(super) const READ: u32 = 2;
    }

    /// `_IOC(dir, 'F', nr, size)` for the target architecture: number bits 7:0, type bits
    /// 15:8, size above, direction on top.
    const fn ioc(dir: u32, nr: u32, size: usize) -> u32 {
        assert!(size < 1 << layout::SIZE_BITS, "ioctl argument too large");
        // CAST: checked above to fit the size field.
        (dir << (16 + layout::SIZE_BITS)) | ((size as u32) << 16) | ((b'F' as u32) << 8) | nr
    }
    /// Queues one frame (`u32` frame index, read by the driver) for [`DQBUF`]:
    /// `_IOW('F', 0x10, uint32_t)`.
    pub const QBUF: u32 = ioc(layout::WRITE, 0x10, core::mem::size_of::<u32>());
    /// Waits for the oldest frame queued by [`QBUF`] to complete and writes its
    /// [`super::FrameMeta`]; `EAGAIN` if no frame is queued:
    /// `_IOR('F', 0x11, struct fgrab_frame_meta)`.
    pub const DQBUF: u32 = ioc(layout::READ, 0x11, core::mem::size_of::<super::FrameMeta>());
}

/// Payload of the commands that copy a structure out to user memory ([`ops::INFO`],
/// [`ops::STATS`]).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct CopyOutCmd {
    /// User address to write the structure to.
    pub addr: u64,
    /// Bytes available at `addr`; the kernel writes `min(size, size of the structure)`, so
    /// an older program with a smaller structure keeps working. Must not be zero.
    pub size: u32,
    /// Must be zero.
    pub flags: u32,
    /// Must be zero.
    pub reserved: [u64; 8],
}

/// Payload of [`ops::ATTACH`].
///
/// The region is `len` bytes at user address `addr`, inside the fixed buffer `buf_index`
/// (both may have any alignment). Frame `i` is the `frame_bytes` bytes at region offset
/// `i * frame_stride`; bytes between frames (`frame_stride - frame_bytes`) are never
/// written by the card.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct AttachCmd {
    /// User address of the region's first byte.
    pub addr: u64,
    /// Bytes in the region.
    pub len: u64,
    /// Distance between the starts of consecutive frames, at least `frame_bytes`.
    pub frame_stride: u64,
    /// Bytes of one frame, at least 1.
    pub frame_bytes: u32,
    /// Number of frames, at least 1 and at most [`MAX_FRAMES`] (over all regions of the
    /// stream together).
    pub frame_count: u32,
    /// Must be zero.
    pub flags: u32,
    /// Id of the region in the file's stream, below [`MAX_REGIONS`], chosen by user space
    /// (0: the one region of programs that know one; it was a reserved zero field).
    pub region: u32,
    /// Must be zero.
    pub reserved: [u64; 5],
}

/// Payload of [`ops::QUEUE`].
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct QueueCmd {
    /// Index of the frame in the attached region.
    pub frame: u32,
    /// Must be zero.
    pub flags: u32,
    /// User address of a [`FrameMeta`] the driver fills just before the command
    /// completes, or 0 for none. Faults writing it are ignored: the CQE is authoritative.
    pub meta_addr: u64,
    /// Id of the region `frame` belongs to ([`AttachCmd::region`]; 0 for programs that
    /// know one region: it was a reserved zero field).
    pub region: u32,
    /// Must be zero.
    pub reserved0: u32,
    /// Must be zero.
    pub reserved: [u64; 7],
}

/// Most frames one [`ops::QUEUE_BATCH`] hands to the card.
pub const MAX_BATCH_FRAMES: u32 = 64;

/// Payload of [`ops::QUEUE_BATCH`]: frames `first..first + count` of region `region`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct QueueBatchCmd {
    /// Index of the batch's first frame in its region.
    pub first: u32,
    /// Frames in the batch, `1..=MAX_BATCH_FRAMES`.
    pub count: u32,
    /// User address of an array of `count` [`FrameMeta`], one per frame in order, that the
    /// driver fills just before the command completes, or 0 for none. Faults writing it
    /// are ignored: the CQE is authoritative.
    pub meta_addr: u64,
    /// Id of the region the frames belong to ([`AttachCmd::region`]).
    pub region: u32,
    /// Must be zero.
    pub flags: u32,
    /// Must be zero.
    pub reserved: [u64; 7],
}

/// Most bytes one [`ops::XML_READ`], [`ops::FEATURE_READ`] or [`ops::FEATURE_WRITE`]
/// moves: the driver copies through a kernel buffer of at most this size.
pub const MAX_PORT_BYTES: u32 = 4096;

/// Payload of [`ops::XML_READ`], [`ops::FEATURE_READ`] and [`ops::FEATURE_WRITE`]: `size`
/// bytes at `offset` of the XML or the feature window, from or to user address `addr`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct PortCmd {
    /// User address of the bytes.
    pub addr: u64,
    /// Byte offset in the XML or the window.
    pub offset: u32,
    /// Bytes, at most [`MAX_PORT_BYTES`] (`XML_READ`: 0 asks for the XML's size).
    pub size: u32,
    /// Must be zero.
    pub flags: u32,
    /// Must be zero.
    pub reserved0: u32,
    /// Must be zero.
    pub reserved: [u64; 7],
}

/// [`FrameMeta::flags`]: `sequence` and `timestamp_ns` describe a frame the card started.
pub const META_FRAME: u32 = 1 << 0;
/// [`FrameMeta::flags`]: the card's frame was longer than the buffer; `bytes` is its prefix.
pub const META_INCOMPLETE: u32 = 1 << 1;
/// [`FrameMeta::flags`]: the card reported a DMA or descriptor error for this frame.
pub const META_ERROR: u32 = 1 << 2;
/// [`FrameMeta::flags`]: the frame was given back unfilled (stream stopped or region ended).
pub const META_FLUSHED: u32 = 1 << 3;

/// What the card reported about one queued frame, written to [`QueueCmd::meta_addr`].
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct FrameMeta {
    /// Frame sequence number since [`ops::START`] (dropped frames use numbers too, so gaps
    /// are drops). Valid with [`META_FRAME`].
    pub sequence: u64,
    /// End of the frame in `CLOCK_MONOTONIC` nanoseconds (the card's clock, translated at
    /// [`ops::START`]). Valid with [`META_FRAME`].
    pub timestamp_ns: u64,
    /// Bytes the card wrote into the frame.
    pub bytes: u32,
    /// `META_*` bits.
    pub flags: u32,
    /// Index of the frame in the region.
    pub frame: u32,
    /// Id of the region ([`QueueCmd::region`]; 0 for the one region of older programs).
    pub region: u32,
}

/// Payload of [`ops::DETACH`]: the region to detach (0 for the one region of older
/// programs, which sent a zeroed [`ControlCmd`]: the two layouts are the same).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct DetachCmd {
    /// Must be zero.
    pub flags: u32,
    /// Id of the region ([`AttachCmd::region`]).
    pub region: u32,
    /// Must be zero.
    pub reserved: [u64; 9],
}

/// Most regions one stream may hold at once: ids run `0..MAX_REGIONS`. Bounded so that the
/// driver's bookkeeping per stream is (a table of this many entries, reserved with the
/// stream's first region).
pub const MAX_REGIONS: u32 = 64;

/// Payload of [`ops::START`] and [`ops::STOP`] (and, with `reserved0` 0, of [`ops::DETACH`]
/// as older programs send it): nothing but zeros, kept so the commands can gain arguments.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct ControlCmd {
    /// Must be zero.
    pub flags: u32,
    /// Must be zero.
    pub reserved0: u32,
    /// Must be zero.
    pub reserved: [u64; 9],
}

/// [`StartCmd::flags`]: [`StartCmd::irq_delay_us`] says how to moderate frame interrupts;
/// without it the driver chooses.
pub const START_IRQ_DELAY: u32 = 1 << 0;

/// Largest [`StartCmd::irq_delay_us`]: 100 ms, the period of the driver's watchdog, which
/// completes frames whose interrupt never came anyway.
pub const MAX_IRQ_DELAY_US: u32 = 100_000;

/// [`StartCmd::flags`]: [`StartCmd::irq_frames`] asks for frame interrupts moderated by
/// count: one interrupt per that many completed frames, bounded in time (`docs/abi.md`).
pub const START_IRQ_FRAMES: u32 = 1 << 1;

/// Largest [`StartCmd::irq_frames`]: the most frames a stream may have queued.
pub const MAX_IRQ_FRAMES: u32 = MAX_FRAMES;

/// Payload of [`ops::START`] (the zeros of a [`ControlCmd`] are a valid one: the driver's
/// defaults).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct StartCmd {
    /// [`START_IRQ_DELAY`], [`START_IRQ_FRAMES`], both or zero.
    pub flags: u32,
    /// With [`START_IRQ_DELAY`]: the least time, in microseconds, between two frame
    /// interrupts (`0`: one per frame; at most [`MAX_IRQ_DELAY_US`]). Frames completed
    /// meanwhile are reported together, at the latest this long after the first of them.
    /// Without the flag: zero, and the driver moderates to half the card's frame period
    /// (bursts coalesce, a steady stream keeps one interrupt per frame).
    ///
    /// With [`START_IRQ_FRAMES`] and a count above 1 this is the time bound instead: no
    /// frame waits longer than this for its interrupt (then not 0); without
    /// [`START_IRQ_DELAY`] the driver bounds it to `irq_frames` frame periods.
    pub irq_delay_us: u32,
    /// With [`START_IRQ_FRAMES`]: one frame interrupt per this many completed frames
    /// (`0`: the driver chooses a quarter of the frames attached, at most 16; `1`: every
    /// frame; at most [`MAX_IRQ_FRAMES`]). Without the flag: zero.
    pub irq_frames: u32,
    /// Must be zero.
    pub reserved0: u32,
    /// Must be zero.
    pub reserved: [u64; 8],
}

/// Most frames one region may have, and all regions of a stream together (the card's submit
/// ring holds 4095 entries).
pub const MAX_FRAMES: u32 = 4095;

/// [`Stats::state`]: no region attached.
pub const STATE_IDLE: u32 = 0;
/// [`Stats::state`]: a region is attached, the stream is stopped.
pub const STATE_ATTACHED: u32 = 1;
/// [`Stats::state`]: a region is attached and the stream runs.
pub const STATE_STREAMING: u32 = 2;

/// Stream state and counters of one card, as returned by [`ops::STATS`].
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct Stats {
    /// `size_of::<Stats>()` as the kernel knows it.
    pub struct_size: u32,
    /// [`STATE_IDLE`], [`STATE_ATTACHED`] or [`STATE_STREAMING`].
    pub state: u32,
    /// Frames of the attached region (0 when idle).
    pub frame_count: u32,
    /// Bytes per frame of the attached region.
    pub frame_bytes: u32,
    /// Frame stride of the attached region.
    pub frame_stride: u64,
    /// Bytes of the attached region.
    pub region_bytes: u64,
    /// Descriptors over all frames of the attached region.
    pub descriptors_total: u32,
    /// Most descriptors any one frame needs.
    pub descriptors_max_per_frame: u32,
    /// DMA-mapped scatterlist entries over all frames (after IOMMU merging).
    pub mapped_entries: u32,
    /// Frames queued and not completed yet.
    pub frames_queued: u32,
    /// Frames filled and completed since the last [`ops::START`].
    pub frames_delivered: u64,
    /// Frames the card started while no frame was queued (underrun) since the last start.
    pub frames_dropped_underrun: u64,
    /// Frames the card dropped for other reasons (late, completions held back).
    pub frames_dropped_other: u64,
    /// Frames completed with an error (DMA or descriptor) since the last start.
    pub frames_failed: u64,
    /// Bytes of the frames delivered since the last start.
    pub bytes_delivered: u64,
    /// Frame interrupts the driver handled since the last start (each completes every frame
    /// the card finished since the previous one).
    pub frame_irqs: u64,
    /// Frame commands completed since the last start, whatever their result (delivered,
    /// failed, canceled by a stop): the divisor of the per-frame ratios below. Added with
    /// `struct_size` 120.
    pub frames_completed: u64,
    /// `URING_CMD` submissions of any file the driver handled for this card since the last
    /// start (cancel calls at ring exit are not submissions): SQEs.
    pub commands: u64,
    /// Completions the driver posted for them since the last start, inline and deferred:
    /// CQEs.
    pub cqes: u64,
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
    /// Bytes per frame the sensor produced when the driver probed the card. Read once at
    /// probe: `START` programs the region's frame size, after which this is stale (the
    /// attached region's frame size is in [`Stats::frame_bytes`]).
    pub frame_bytes: u32,
    /// Bits of DMA address the card can generate.
    pub dma_address_bits: u32,
    /// Time between frame starts at [`Self::frame_bytes`], in nanoseconds, read at probe
    /// like it. The period follows the frame size, so it is stale after `START` as well; the
    /// frames' timestamps show the current one.
    pub frame_period_ns: u64,
    /// Largest `frame_bytes` the sensor can produce.
    pub max_frame_bytes: u32,
    /// Most frames one region may have ([`MAX_FRAMES`] or less).
    pub max_frames: u32,
    /// Zero.
    pub reserved: [u64; 3],
}

/// Compile-time layout checks: these values are part of the ABI and mirrored in the C header.
const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<CopyOutCmd>() == CMD_PAYLOAD_BYTES);
    assert!(offset_of!(CopyOutCmd, size) == 8);
    assert!(offset_of!(CopyOutCmd, reserved) == 16);
    assert!(size_of::<AttachCmd>() == CMD_PAYLOAD_BYTES);
    assert!(offset_of!(AttachCmd, frame_bytes) == 24);
    assert!(offset_of!(AttachCmd, reserved) == 40);
    assert!(offset_of!(AttachCmd, region) == 36);
    assert!(size_of::<ControlCmd>() == CMD_PAYLOAD_BYTES);
    assert!(size_of::<DetachCmd>() == CMD_PAYLOAD_BYTES);
    assert!(offset_of!(DetachCmd, region) == offset_of!(ControlCmd, reserved0));
    assert!(offset_of!(QueueCmd, region) == 16);
    assert!(offset_of!(QueueCmd, reserved) == 24);
    assert!(offset_of!(FrameMeta, region) == 28);
    assert!(size_of::<StartCmd>() == CMD_PAYLOAD_BYTES);
    assert!(offset_of!(StartCmd, irq_delay_us) == 4);
    assert!(offset_of!(StartCmd, irq_frames) == 8);
    assert!(offset_of!(StartCmd, reserved) == 16);
    assert!(size_of::<QueueCmd>() == CMD_PAYLOAD_BYTES);
    assert!(size_of::<QueueBatchCmd>() == CMD_PAYLOAD_BYTES);
    assert!(offset_of!(QueueBatchCmd, count) == 4);
    assert!(offset_of!(QueueBatchCmd, meta_addr) == 8);
    assert!(offset_of!(QueueBatchCmd, region) == 16);
    assert!(offset_of!(QueueBatchCmd, reserved) == 24);
    assert!(size_of::<PortCmd>() == CMD_PAYLOAD_BYTES);
    assert!(offset_of!(PortCmd, offset) == 8);
    assert!(offset_of!(PortCmd, flags) == 16);
    assert!(offset_of!(PortCmd, reserved) == 24);
    assert!(offset_of!(QueueCmd, meta_addr) == 8);
    assert!(size_of::<FrameMeta>() == 32);
    assert!(offset_of!(FrameMeta, bytes) == 16);
    assert!(offset_of!(FrameMeta, frame) == 24);
    assert!(size_of::<Stats>() == 120);
    assert!(offset_of!(Stats, frames_completed) == 96);
    assert!(offset_of!(Stats, cqes) == 112);
    assert!(offset_of!(Stats, frame_stride) == 16);
    assert!(offset_of!(Stats, descriptors_total) == 32);
    assert!(offset_of!(Stats, frames_queued) == 44);
    assert!(offset_of!(Stats, frames_delivered) == 48);
    assert!(offset_of!(Stats, frame_irqs) == 88);
    assert!(size_of::<DeviceInfo>() == 88);
    assert!(offset_of!(DeviceInfo, vendor_id) == 16);
    assert!(offset_of!(DeviceInfo, pci_location) == 24);
    assert!(offset_of!(DeviceInfo, max_segment_bytes) == 32);
    assert!(offset_of!(DeviceInfo, frame_period_ns) == 48);
    assert!(offset_of!(DeviceInfo, max_frame_bytes) == 56);
    assert!(offset_of!(DeviceInfo, reserved) == 64);
};
