// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The fgrab card's hardware interface, version 1 (`docs/hardware.md`): BAR0 and its
//! registers, the MSI-X vectors, and the structures the card reads and writes in host memory.
//!
//! One source, used three times: compiled into the kernel module (through `#[path]`, with the
//! kernel's own zerocopy crates, like the user ABI `uapi`), used by the device model
//! (`fgrab-emu`), and checked against the tables of `docs/hardware.md` (`tests/docs.rs`). So
//! the driver, the model and the specification cannot drift apart unnoticed:
//!
//! - the model takes its register offsets, bits and structures from here;
//! - the driver's register map is written with the kernel's `register!` macro, which needs
//!   literal offsets, and asserts at build time that every offset and field matches this
//!   definition (`driver/hardware/regs.rs`); its DMA structures are these;
//! - the document's tables are parsed and compared with this definition, both ways.
//!
//! Everything here is what the interface defines, not what one implementation chooses: the
//! model's own behaviour (its data rate, its faults) stays in the model. Only `core` is used,
//! nothing that allocates, so the file builds as a kernel module too.

#![no_std]
#![deny(missing_docs)]

use zerocopy_derive::{FromBytes, Immutable, IntoBytes, KnownLayout};

#[cfg(target_endian = "big")]
compile_error!("fgrab's DMA structures are little endian; add byte swapping for this host");

/// Size of BAR0, the card's only BAR (64 KiB, 32-bit, non-prefetchable).
pub const BAR0_SIZE: usize = 0x1_0000;

/// The registers occupy BAR0 offsets `0..REGISTER_BLOCK_SIZE`; the rest holds MSI-X.
pub const REGISTER_BLOCK_SIZE: usize = 0x1000;

/// Value of [`regs::ID`] on every fgrab card: "FGRB" read as a big-endian ASCII string.
/// A card that reads anything else is not an fgrab card (all ones: it is gone).
pub const MAGIC: u32 = 0x4647_5242;

/// Interface major version ([`regs::version::MAJOR`]): bumped by incompatible changes, so a
/// driver refuses every major it was not written for.
pub const INTERFACE_MAJOR: u32 = 1;

/// Interface minor version ([`regs::version::MINOR`]): compatible additions.
pub const INTERFACE_MINOR: u32 = 2;

/// Value of [`regs::VERSION`]: [`INTERFACE_MAJOR`] and [`INTERFACE_MINOR`] in their fields.
pub const INTERFACE_VERSION: u32 = (INTERFACE_MAJOR << regs::version::MAJOR.trailing_zeros())
    | (INTERFACE_MINOR << regs::version::MINOR.trailing_zeros());

pub mod camera;

/// PCI identity (`docs/hardware.md` §2): what a driver binds to.
pub mod pci {
    /// Vendor ID (Xilinx, as FPGA designs ship).
    pub const VENDOR_ID: u16 = 0x10ee;
    /// Device ID.
    pub const DEVICE_ID: u16 = 0xf9a0;
    /// Subsystem vendor ID.
    pub const SUBSYSTEM_VENDOR_ID: u16 = 0x10ee;
    /// Subsystem ID.
    pub const SUBSYSTEM_ID: u16 = 0x0001;
    /// Revision ID.
    pub const REVISION: u8 = 0x01;
    /// Class code: multimedia controller (0x04), video (0x00), programming interface 0.
    pub const CLASS_CODE: u32 = 0x04_00_00;
}

/// MSI-X (`docs/hardware.md` §2, §3.7, §7): the card has no INTx, so these vectors are its
/// only interrupts. Table and PBA live in BAR0, after the register block.
pub mod msix {
    /// Number of vectors.
    pub const VECTORS: u16 = 2;
    /// Vector of frame completions (`IRQ_STATUS.FRAME_DONE`): its own vector, so the hot
    /// path's handler never has to look at error state.
    pub const FRAME_VECTOR: u16 = 0;
    /// Vector of errors and status changes (`ERROR`, `STOPPED`, `COMPLETION_FULL`).
    pub const ERROR_VECTOR: u16 = 1;
    /// BAR0 offset of the MSI-X table (BIR 0).
    pub const TABLE_OFFSET: u32 = 0x8000;
    /// Size of one MSI-X table entry (the PCI standard's).
    pub const TABLE_ENTRY_SIZE: u32 = 16;
    /// BAR0 offset of the pending bit array (BIR 0).
    pub const PBA_OFFSET: u32 = 0x9000;
    /// Size of the pending bit array: one 64-bit word covers every vector.
    pub const PBA_SIZE: u32 = 8;

    const _: () = {
        assert!(FRAME_VECTOR < VECTORS && ERROR_VECTOR < VECTORS);
        assert!(FRAME_VECTOR != ERROR_VECTOR);
        // CAST: u16 to u32, widening (`From` is not const).
        assert!(TABLE_OFFSET + VECTORS as u32 * TABLE_ENTRY_SIZE <= PBA_OFFSET);
        // CAST: u32 to usize, widening on every target the kernel and the model build for.
        assert!(PBA_OFFSET as usize + PBA_SIZE as usize <= super::BAR0_SIZE);
        assert!(super::REGISTER_BLOCK_SIZE <= TABLE_OFFSET as usize);
    };
}

/// Capability registers' values on an interface v1 card, as `docs/hardware.md` §3.1 states
/// them. The registers are the authority: a driver reads them (and must not trust them, see
/// the capability checks of §3.1); the device model reports these.
pub mod caps {
    /// [`super::regs::MAX_SEGMENT_BYTES`]: largest descriptor `len` (1 MiB).
    pub const MAX_SEGMENT_BYTES: u32 = 1 << 20;
    /// [`super::regs::MAX_DESCRIPTORS`]: largest `desc_count` of one submission.
    pub const MAX_DESCRIPTORS: u32 = 16384;
    /// [`super::regs::RING_MAX_ENTRIES`]: largest ring size, both rings.
    pub const RING_MAX_ENTRIES: u32 = 4096;
    /// Smallest ring size, both rings (not a register: a ring holds `size - 1` entries, so a
    /// smaller one holds nothing).
    pub const RING_MIN_ENTRIES: u32 = 2;
    /// [`super::regs::MAX_FRAME_SLOTS`]: most submissions outstanding, a full submit ring.
    pub const MAX_FRAME_SLOTS: u32 = RING_MAX_ENTRIES - 1;
    /// [`super::regs::TIMESTAMP_HZ`]: the device clock counts nanoseconds.
    pub const TIMESTAMP_HZ: u32 = 1_000_000_000;
    /// [`super::regs::MAX_FRAME_BYTES`]: largest `FRAME_BYTES`.
    pub const MAX_FRAME_BYTES: u32 = 1 << 30;

    /// Every capability register with a value of its own: (register name, value).
    pub const ALL: &[(&str, u32)] = &[
        ("MAX_SEGMENT_BYTES", MAX_SEGMENT_BYTES),
        ("MAX_DESCRIPTORS", MAX_DESCRIPTORS),
        ("RING_MAX_ENTRIES", RING_MAX_ENTRIES),
        ("MAX_FRAME_SLOTS", MAX_FRAME_SLOTS),
        ("TIMESTAMP_HZ", TIMESTAMP_HZ),
        ("MAX_FRAME_BYTES", MAX_FRAME_BYTES),
    ];
}

/// Defines named `u32` constants and `ALL`, the table of (name, value) a check can walk.
macro_rules! table {
    ($what:literal: $($(#[$doc:meta])* $name:ident = $value:expr,)*) => {
        $($(#[$doc])* pub const $name: u32 = $value;)*

        #[doc = concat!("Every ", $what, ": (name as `docs/hardware.md` writes it, value).")]
        pub const ALL: &[(&str, u32)] = &[$((stringify!($name), $name),)*];
    };
}

/// BAR0 registers (`docs/hardware.md` §3): 32 bits each, at these byte offsets, accessed
/// with naturally aligned 32-bit reads and writes. 64-bit values are `_LO`/`_HI` pairs; a
/// `_LO` read of a counter latches its high half for the next `_HI` read.
///
/// Fields are masks in place, in a module named after the register; a field's shift is its
/// mask's `trailing_zeros()`.
pub mod regs {
    table! {
        "register offset":
        /// RO: [`super::MAGIC`].
        ID = 0x000,
        /// RO: [`super::INTERFACE_VERSION`], fields in [`version`].
        VERSION = 0x004,
        /// RO: largest descriptor `len` ([`super::caps::MAX_SEGMENT_BYTES`]).
        MAX_SEGMENT_BYTES = 0x008,
        /// RO: largest `desc_count` ([`super::caps::MAX_DESCRIPTORS`]).
        MAX_DESCRIPTORS = 0x00c,
        /// RO: largest ring size ([`super::caps::RING_MAX_ENTRIES`]).
        RING_MAX_ENTRIES = 0x010,
        /// RO: most submissions outstanding ([`super::caps::MAX_FRAME_SLOTS`]).
        MAX_FRAME_SLOTS = 0x014,
        /// RO: frequency of the timestamp clock ([`super::caps::TIMESTAMP_HZ`]).
        TIMESTAMP_HZ = 0x018,
        /// RO: optional features, bits in [`features`].
        FEATURES = 0x01c,
        /// RO: largest `FRAME_BYTES` ([`super::caps::MAX_FRAME_BYTES`]).
        MAX_FRAME_BYTES = 0x020,
        /// RO: BAR0 offset of the camera's feature window (with [`features::CAMERA`]).
        FEATURE_WINDOW_OFFSET = 0x024,
        /// RO: bytes in the feature window.
        FEATURE_WINDOW_SIZE = 0x028,
        /// RO: BAR0 offset of the camera's GenICam XML.
        XML_OFFSET = 0x02c,
        /// RO: bytes of GenICam XML.
        XML_SIZE = 0x030,
        /// RW: no effect; for a driver's probe-time access test. Reset 0.
        SCRATCH = 0x03c,
        /// RW: engine control, bits in [`control`].
        CONTROL = 0x040,
        /// RO: engine state, bits in [`status`].
        STATUS = 0x044,
        /// RW1C: interrupt causes raised since last cleared, bits in [`irq_status`].
        IRQ_STATUS = 0x048,
        /// RW: interrupt causes whose messages are suppressed (1 = masked), the bits of
        /// [`irq_status`]. Reset [`irq_status::MASK_RESET`].
        IRQ_MASK = 0x04c,
        /// RW: minimum microseconds between two frame-vector messages (0 = no moderation);
        /// with [`IRQ_MODERATION_FRAMES`] above 1, the longest a published record waits for
        /// its message.
        IRQ_MODERATION_US = 0x050,
        /// RW (with [`features::IRQ_MODERATION_FRAMES`]): records per frame-vector message
        /// (0 or 1: every record, under [`IRQ_MODERATION_US`]'s interval rule). Reset 0.
        IRQ_MODERATION_FRAMES = 0x054,
        /// RW (idle only): bytes per frame, `1..=MAX_FRAME_BYTES`.
        FRAME_BYTES = 0x060,
        /// RO: time between frame starts for the current `FRAME_BYTES`, in nanoseconds.
        FRAME_PERIOD_NS = 0x064,
        /// RO: frame starts, dropped frames included; low half.
        FRAMES_PRODUCED_LO = 0x080,
        /// RO: high half of [`FRAMES_PRODUCED_LO`].
        FRAMES_PRODUCED_HI = 0x084,
        /// RO: completion records with status OK or INCOMPLETE; low half.
        FRAMES_COMPLETED_LO = 0x088,
        /// RO: high half of [`FRAMES_COMPLETED_LO`].
        FRAMES_COMPLETED_HI = 0x08c,
        /// RO: frame starts with no submission queued; low half.
        FRAMES_DROPPED_UNDERRUN_LO = 0x090,
        /// RO: high half of [`FRAMES_DROPPED_UNDERRUN_LO`].
        FRAMES_DROPPED_UNDERRUN_HI = 0x094,
        /// RO: frame starts the device could not serve (late, bus mastering off); low half.
        FRAMES_DROPPED_OVERRUN_LO = 0x098,
        /// RO: high half of [`FRAMES_DROPPED_OVERRUN_LO`].
        FRAMES_DROPPED_OVERRUN_HI = 0x09c,
        /// RO: frame starts while completion records were held back; low half.
        FRAMES_DROPPED_BACKPRESSURE_LO = 0x0a0,
        /// RO: high half of [`FRAMES_DROPPED_BACKPRESSURE_LO`].
        FRAMES_DROPPED_BACKPRESSURE_HI = 0x0a4,
        /// RO: DMA faults (frame data writes and descriptor list reads); low half.
        DMA_ERRORS_LO = 0x0a8,
        /// RO: high half of [`DMA_ERRORS_LO`].
        DMA_ERRORS_HI = 0x0ac,
        /// RO: submissions completed with DESC_ERROR; low half.
        DESC_ERRORS_LO = 0x0b0,
        /// RO: high half of [`DESC_ERRORS_LO`].
        DESC_ERRORS_HI = 0x0b4,
        /// RO: sequence number the next frame start will get; low half.
        NEXT_SEQUENCE_LO = 0x0b8,
        /// RO: high half of [`NEXT_SEQUENCE_LO`].
        NEXT_SEQUENCE_HI = 0x0bc,
        /// RO: device clock in nanoseconds (the clock of completion timestamps); low half.
        TIMESTAMP_LO = 0x0c0,
        /// RO: high half of [`TIMESTAMP_LO`].
        TIMESTAMP_HI = 0x0c4,
        /// RW (idle only): submit ring DMA address, bits 31:0 (16-byte aligned, non-zero).
        SUBMIT_BASE_LO = 0x100,
        /// RW (idle only): submit ring DMA address, bits 63:32.
        SUBMIT_BASE_HI = 0x104,
        /// RW (idle only): submit ring entries, a power of two.
        SUBMIT_SIZE = 0x108,
        /// RW: doorbell, the index of the next entry the host will write.
        SUBMIT_TAIL = 0x10c,
        /// RO: index of the next entry the device will read.
        SUBMIT_HEAD = 0x110,
        /// RW (idle only): completion ring DMA address, bits 31:0 (32-byte aligned, non-zero).
        COMPLETION_BASE_LO = 0x120,
        /// RW (idle only): completion ring DMA address, bits 63:32.
        COMPLETION_BASE_HI = 0x124,
        /// RW (idle only): completion ring records, a power of two.
        COMPLETION_SIZE = 0x128,
        /// RW: index of the next record the host will consume; writing it frees records.
        COMPLETION_HEAD = 0x12c,
        /// RO: index of the next record the device will write.
        COMPLETION_TAIL = 0x130,
        /// RW (idle only): where the device writes `COMPLETION_TAIL` after each update,
        /// bits 31:0 (4-byte aligned; 0 = off).
        COMPLETION_WRITEBACK_LO = 0x138,
        /// RW (idle only): the writeback address, bits 63:32.
        COMPLETION_WRITEBACK_HI = 0x13c,
        /// RW1C: fault causes, bits in [`fault_status`].
        FAULT_STATUS = 0x180,
        /// RO: cookie of the submission involved in the most recent fault.
        FAULT_COOKIE = 0x184,
        /// RO: DMA address of the most recent fault, bits 31:0.
        FAULT_ADDR_LO = 0x188,
        /// RO: DMA address of the most recent fault, bits 63:32.
        FAULT_ADDR_HI = 0x18c,
    }

    /// The registers made of named one-bit flags, with their bits: (register name, its
    /// module's `ALL`). [`IRQ_MASK`] has the bits of [`IRQ_STATUS`].
    pub const FLAGS: &[(&str, &[(&str, u32)])] = &[
        ("FEATURES", features::ALL),
        ("CONTROL", control::ALL),
        ("STATUS", status::ALL),
        ("IRQ_STATUS", irq_status::ALL),
        ("FAULT_STATUS", fault_status::ALL),
    ];

    /// [`VERSION`] fields.
    pub mod version {
        /// Major version: incompatible changes.
        pub const MAJOR: u32 = 0xffff_0000;
        /// Minor version: compatible additions.
        pub const MINOR: u32 = 0x0000_ffff;
    }

    /// [`FEATURES`] bits: optional parts of the interface the card implements.
    pub mod features {
        table! {
            "feature bit":
            /// [`super::COMPLETION_WRITEBACK_LO`] is implemented.
            COMPLETION_WRITEBACK = 1 << 0,
            /// [`super::IRQ_MODERATION_US`] is implemented.
            IRQ_MODERATION = 1 << 1,
            /// The card is a camera: a feature window and a GenICam XML
            /// ([`super::FEATURE_WINDOW_OFFSET`], [`super::XML_OFFSET`], `crate::camera`).
            CAMERA = 1 << 2,
            /// [`super::IRQ_MODERATION_FRAMES`] is implemented (interface 1.2).
            IRQ_MODERATION_FRAMES = 1 << 3,
        }
    }

    /// [`CONTROL`] bits. Writes request state changes (`docs/hardware.md` §3.2).
    pub mod control {
        table! {
            "control bit":
            /// Start producing frames (0 -> 1 while idle). Writing 0 while running is a stop
            /// request. Reads 1 while running.
            ENABLE = 1 << 0,
            /// Stop: abort the frame in progress, flush every queued submission, go idle.
            /// Reads 1 until the device is idle.
            STOP = 1 << 1,
            /// Reset, from any state (other bits ignored). Reads 1 until the reset is done.
            RESET = 1 << 31,
        }
    }

    /// [`STATUS`] bits.
    pub mod status {
        table! {
            "status bit":
            /// Frames are being produced.
            RUNNING = 1 << 0,
            /// No DMA in progress, no submission held; ring registers may be written.
            IDLE = 1 << 1,
            /// A stop is in progress.
            STOPPING = 1 << 2,
            /// A fatal fault stopped the device; only a reset leaves this state (`IDLE` is
            /// set too).
            HALTED = 1 << 3,
            /// Completion records are held back: the completion ring is full.
            COMPLETION_FULL = 1 << 4,
            /// PCI Bus Master Enable is clear: the device issues no DMA.
            BUS_MASTER_OFF = 1 << 5,
            /// Some [`super::FAULT_STATUS`] bit is set.
            FAULT = 1 << 8,
        }
    }

    /// [`IRQ_STATUS`] and [`IRQ_MASK`] bits: interrupt causes.
    pub mod irq_status {
        table! {
            "interrupt cause":
            /// A completion record was published (frame vector).
            FRAME_DONE = 1 << 0,
            /// A fault was recorded in [`super::FAULT_STATUS`] (error vector).
            ERROR = 1 << 1,
            /// A stop completed: the device is idle (error vector).
            STOPPED = 1 << 2,
            /// The completion ring became full (error vector).
            COMPLETION_FULL = 1 << 3,
        }

        /// Reset value of [`super::IRQ_MASK`]: everything masked until the driver unmasks,
        /// so no message reaches a host that is not ready for it.
        pub const MASK_RESET: u32 = u32::MAX;
    }

    /// [`FAULT_STATUS`] bits: fault causes.
    pub mod fault_status {
        table! {
            "fault cause":
            /// A frame data write hit an address not mapped for device writes.
            DMA_WRITE = 1 << 0,
            /// A descriptor list read hit an address not mapped for device reads.
            DMA_READ = 1 << 1,
            /// A submission was rejected with DESC_ERROR.
            DESCRIPTOR = 1 << 2,
            /// ENABLE was refused: the ring configuration is invalid.
            CONFIG = 1 << 3,
            /// A submit ring read or completion ring write failed (fatal: HALTED).
            RING_ACCESS = 1 << 4,
            /// The device needs a reset (fatal: HALTED).
            RESET_REQUIRED = 1 << 5,
        }
    }

    const _: () = {
        let mut i = 0;
        while i < ALL.len() {
            let offset = ALL[i].1;
            // CAST: u32 to usize, widening.
            assert!(offset % 4 == 0 && (offset as usize) < super::REGISTER_BLOCK_SIZE);
            // Strictly increasing: no two registers share an offset.
            assert!(i == 0 || ALL[i - 1].1 < offset);
            i += 1;
        }
    };
}

/// One field of a DMA structure, for checks that walk the layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// The field's name, as `docs/hardware.md` writes it.
    pub name: &'static str,
    /// Byte offset in the structure.
    pub offset: usize,
    /// Size in bytes.
    pub size: usize,
}

/// `&[Field]` of the named fields of a structure, with their types' sizes.
macro_rules! fields {
    ($structure:ident { $($field:ident: $type:ty),* $(,)? }) => {
        &[$(Field {
            name: stringify!($field),
            offset: core::mem::offset_of!($structure, $field),
            size: core::mem::size_of::<$type>(),
        }),*]
    };
}

/// Whether `fields` cover all of `T` one after another, without gaps: then every field is
/// listed, with its type's size (a wrong size moves the next offset).
const fn covers<T>(fields: &[Field]) -> bool {
    let mut end = 0;
    let mut i = 0;
    while i < fields.len() {
        if fields[i].offset != end {
            return false;
        }
        end += fields[i].size;
        i += 1;
    }
    end == core::mem::size_of::<T>()
}

/// Descriptor lists must start on this boundary (the card fetches them in 16-byte units).
pub const DESCRIPTOR_LIST_ALIGN: usize = 16;
/// The submit ring's base must be aligned to this (one entry).
pub const SUBMIT_RING_ALIGN: usize = 16;
/// The completion ring's base must be aligned to this (one record).
pub const COMPLETION_RING_ALIGN: usize = 32;
/// The completion tail writeback address must be aligned to this (one `u32`).
pub const WRITEBACK_ALIGN: usize = 4;

/// Scatter/gather descriptor (`docs/hardware.md` §4.1): one contiguous DMA range of a frame.
/// A frame is written over its descriptors in list order.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct Descriptor {
    /// DMA address of the segment's first byte (any alignment).
    pub addr: u64,
    /// Bytes, `1..=MAX_SEGMENT_BYTES`.
    pub len: u32,
    /// [`Descriptor::LAST`] on the last descriptor of the list, and only there; other bits
    /// reserved (0).
    pub flags: u32,
}

impl Descriptor {
    /// [`Self::flags`]: the last descriptor of a list (the card checks it is exactly there,
    /// so a list's end is never guessed from a count alone).
    pub const LAST: u32 = 1 << 0;
    /// Every flag: (name, bit).
    pub const FLAGS: &'static [(&'static str, u32)] = &[("LAST", Self::LAST)];
    /// The layout, field by field.
    pub const FIELDS: &'static [Field] = fields!(Descriptor {
        addr: u64,
        len: u32,
        flags: u32,
    });
}

/// Submit ring entry (`docs/hardware.md` §4.2, host -> device): a frame buffer handed to the
/// card. The card reads it (and its list) when a frame starts and takes it.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct SubmitEntry {
    /// DMA address of the descriptor list ([`DESCRIPTOR_LIST_ALIGN`]-aligned).
    pub desc_addr: u64,
    /// Descriptors in the list, `1..=MAX_DESCRIPTORS`.
    pub desc_count: u16,
    /// Must be 0 (the card checks, so the field can gain meaning later).
    pub reserved: u16,
    /// Opaque tag returned in the completion record (the driver's frame index).
    pub cookie: u32,
}

impl SubmitEntry {
    /// The layout, field by field.
    pub const FIELDS: &'static [Field] = fields!(SubmitEntry {
        desc_addr: u64,
        desc_count: u16,
        reserved: u16,
        cookie: u32,
    });
}

/// Completion record (`docs/hardware.md` §4.3, device -> host): one per submission the card
/// took, in submit order.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct CompletionRecord {
    /// The submission's cookie.
    pub cookie: u32,
    /// One of [`completion_status`].
    pub status: u16,
    /// [`CompletionRecord::FRAME`]; other bits 0.
    pub flags: u16,
    /// Frame bytes written into the buffer (a prefix of the frame).
    pub bytes: u32,
    /// 0.
    pub reserved: u32,
    /// Frame sequence number; without [`CompletionRecord::FRAME`], `NEXT_SEQUENCE` at the time.
    pub sequence: u64,
    /// Device clock at the end of the frame, in nanoseconds; 0 without
    /// [`CompletionRecord::FRAME`].
    pub timestamp_ns: u64,
}

impl CompletionRecord {
    /// [`Self::flags`]: the record describes a frame, so `sequence` and `timestamp_ns` are
    /// valid. Clear for submissions completed without a frame (DESC_ERROR, descriptor list
    /// read errors, flushed before use).
    pub const FRAME: u16 = 1 << 0;
    /// Every flag: (name, bit).
    pub const FLAGS: &'static [(&'static str, u16)] = &[("FRAME", Self::FRAME)];
    /// The layout, field by field.
    pub const FIELDS: &'static [Field] = fields!(CompletionRecord {
        cookie: u32,
        status: u16,
        flags: u16,
        bytes: u32,
        reserved: u32,
        sequence: u64,
        timestamp_ns: u64,
    });
}

/// [`CompletionRecord::status`] values.
pub mod completion_status {
    /// The frame filled the buffer: `bytes` is `FRAME_BYTES`.
    pub const OK: u16 = 0;
    /// The buffer was shorter than the frame: it holds the frame's first `bytes` bytes.
    pub const INCOMPLETE: u16 = 1;
    /// A DMA access faulted: `bytes` were written before the fault.
    pub const DMA_ERROR: u16 = 2;
    /// The submission was invalid; nothing was written.
    pub const DESC_ERROR: u16 = 3;
    /// Returned by a stop: unused, or aborted after `bytes`.
    pub const FLUSHED: u16 = 4;
    /// Every status: (name, value).
    pub const ALL: &[(&str, u16)] = &[
        ("OK", OK),
        ("INCOMPLETE", INCOMPLETE),
        ("DMA_ERROR", DMA_ERROR),
        ("DESC_ERROR", DESC_ERROR),
        ("FLUSHED", FLUSHED),
    ];
}

// The sizes are the interface; `covers` proves each `FIELDS` table complete and exact.
const _: () = {
    use core::mem::size_of;
    assert!(size_of::<Descriptor>() == 16);
    assert!(size_of::<SubmitEntry>() == 16);
    assert!(size_of::<CompletionRecord>() == 32);
    assert!(covers::<Descriptor>(Descriptor::FIELDS));
    assert!(covers::<SubmitEntry>(SubmitEntry::FIELDS));
    assert!(covers::<CompletionRecord>(CompletionRecord::FIELDS));
    assert!(DESCRIPTOR_LIST_ALIGN == size_of::<Descriptor>());
    assert!(SUBMIT_RING_ALIGN == size_of::<SubmitEntry>());
    assert!(COMPLETION_RING_ALIGN == size_of::<CompletionRecord>());
};
