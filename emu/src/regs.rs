//! BAR0 register map of interface v1 (docs/hardware.md, "BAR0 registers").
//!
//! The only place that knows register offsets: everything else names registers through
//! [`Register`] and fields through the bit types below.

use bitflags::bitflags;

/// Size of BAR0 in bytes.
pub const BAR0_SIZE: u64 = 0x1_0000;
/// Register block: offsets `0..REGISTER_BLOCK_SIZE` of BAR0.
pub const REGISTER_BLOCK_SIZE: u64 = 0x1000;
/// Offset of the MSI-X table in BAR0.
pub const MSIX_TABLE_OFFSET: u32 = 0x8000;
/// Offset of the MSI-X pending bit array in BAR0.
pub const MSIX_PBA_OFFSET: u32 = 0x9000;
/// Number of MSI-X vectors.
pub const MSIX_VECTORS: u16 = 2;
/// Size of one MSI-X table entry.
pub const MSIX_ENTRY_SIZE: u32 = 16;

/// Value of [`Register::Id`]: "FGRB" read as a big-endian ASCII string.
pub const MAGIC: u32 = 0x4647_5242;
/// Value of [`Register::Version`]: major 1, minor 0.
pub const INTERFACE_VERSION: u32 = 0x0001_0000;
/// Largest `len` of one scatter/gather descriptor.
pub const MAX_SEGMENT_BYTES: u32 = 1 << 20;
/// Largest `desc_count` of one submission.
pub const MAX_DESCRIPTORS: u32 = 16384;
/// Largest ring size in entries (both rings).
pub const RING_MAX_ENTRIES: u32 = 4096;
/// Smallest ring size in entries (both rings).
pub const RING_MIN_ENTRIES: u32 = 2;
/// Largest number of submissions outstanding at once (a full submit ring).
pub const MAX_FRAME_SLOTS: u32 = RING_MAX_ENTRIES - 1;
/// Frequency of the device clock that timestamps count.
pub const TIMESTAMP_HZ: u32 = 1_000_000_000;
/// Largest value accepted by [`Register::FrameBytes`].
pub const MAX_FRAME_BYTES: u32 = 1 << 30;

/// Interrupt vector of frame completions.
pub const VECTOR_FRAME: usize = 0;
/// Interrupt vector of errors and status changes.
pub const VECTOR_ERROR: usize = 1;

macro_rules! registers {
    ($($(#[$doc:meta])* $name:ident = $offset:literal,)*) => {
        /// A 32-bit register of BAR0. The discriminant is its offset.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u32)]
        pub enum Register {
            $($(#[$doc])* $name = $offset,)*
        }

        impl Register {
            /// Every register, in offset order.
            pub const ALL: &'static [Register] = &[$(Register::$name,)*];

            /// The register at byte `offset` of BAR0, if one is defined there.
            pub fn at(offset: u64) -> Option<Register> {
                match offset {
                    $($offset => Some(Register::$name),)*
                    _ => None,
                }
            }

            /// Byte offset in BAR0.
            pub const fn offset(self) -> u32 {
                self as u32
            }
        }
    };
}

registers! {
    /// RO: [`MAGIC`].
    Id = 0x000,
    /// RO: [`INTERFACE_VERSION`], major in bits 31:16, minor in 15:0.
    Version = 0x004,
    /// RO: [`MAX_SEGMENT_BYTES`].
    MaxSegmentBytes = 0x008,
    /// RO: [`MAX_DESCRIPTORS`].
    MaxDescriptors = 0x00c,
    /// RO: [`RING_MAX_ENTRIES`].
    RingMaxEntries = 0x010,
    /// RO: [`MAX_FRAME_SLOTS`].
    MaxFrameSlots = 0x014,
    /// RO: [`TIMESTAMP_HZ`].
    TimestampHz = 0x018,
    /// RO: [`Features`].
    Features = 0x01c,
    /// RO: [`MAX_FRAME_BYTES`].
    MaxFrameBytes = 0x020,
    /// RW: no effect; for the driver's probe-time access test.
    Scratch = 0x03c,
    /// RW: [`Control`].
    Control = 0x040,
    /// RO: [`Status`].
    Status = 0x044,
    /// RW1C: [`IrqCause`] bits raised since last cleared.
    IrqStatus = 0x048,
    /// RW: [`IrqCause`] bits whose messages are suppressed (1 = masked).
    IrqMask = 0x04c,
    /// RW: minimum microseconds between two frame-vector messages (0 = no moderation).
    IrqModerationUs = 0x050,
    /// RW (idle only): bytes per frame.
    FrameBytes = 0x060,
    /// RO: frame period in nanoseconds for the current frame size.
    FramePeriodNs = 0x064,
    /// RO: frame starts, including dropped frames.
    FramesProducedLo = 0x080,
    /// RO: upper half latched by the last `*Lo` read.
    FramesProducedHi = 0x084,
    /// RO: completions with status OK or INCOMPLETE.
    FramesCompletedLo = 0x088,
    /// RO: upper half latched by the last `*Lo` read.
    FramesCompletedHi = 0x08c,
    /// RO: frames dropped because no submission was queued.
    FramesDroppedUnderrunLo = 0x090,
    /// RO: upper half latched by the last `*Lo` read.
    FramesDroppedUnderrunHi = 0x094,
    /// RO: frames dropped because the device was still busy or could not DMA.
    FramesDroppedOverrunLo = 0x098,
    /// RO: upper half latched by the last `*Lo` read.
    FramesDroppedOverrunHi = 0x09c,
    /// RO: frames dropped because the completion ring was full.
    FramesDroppedBackpressureLo = 0x0a0,
    /// RO: upper half latched by the last `*Lo` read.
    FramesDroppedBackpressureHi = 0x0a4,
    /// RO: DMA faults (frame data writes and descriptor reads).
    DmaErrorsLo = 0x0a8,
    /// RO: upper half latched by the last `*Lo` read.
    DmaErrorsHi = 0x0ac,
    /// RO: submissions rejected with DESC_ERROR.
    DescErrorsLo = 0x0b0,
    /// RO: upper half latched by the last `*Lo` read.
    DescErrorsHi = 0x0b4,
    /// RO: sequence number the next frame start will get.
    NextSequenceLo = 0x0b8,
    /// RO: upper half latched by the last `*Lo` read.
    NextSequenceHi = 0x0bc,
    /// RO: device clock, nanoseconds.
    TimestampLo = 0x0c0,
    /// RO: upper half latched by the last `*Lo` read.
    TimestampHi = 0x0c4,
    /// RW (idle only): submit ring DMA address, bits 31:0 (16-byte aligned).
    SubmitBaseLo = 0x100,
    /// RW (idle only): submit ring DMA address, bits 63:32.
    SubmitBaseHi = 0x104,
    /// RW (idle only): submit ring entries (power of two).
    SubmitSize = 0x108,
    /// RW: submit doorbell, index of the next entry the host will write.
    SubmitTail = 0x10c,
    /// RO: index of the next entry the device will read.
    SubmitHead = 0x110,
    /// RW (idle only): completion ring DMA address, bits 31:0 (32-byte aligned).
    CompletionBaseLo = 0x120,
    /// RW (idle only): completion ring DMA address, bits 63:32.
    CompletionBaseHi = 0x124,
    /// RW (idle only): completion ring entries (power of two).
    CompletionSize = 0x128,
    /// RW: index of the next record the host will consume.
    CompletionHead = 0x12c,
    /// RO: index of the next record the device will write.
    CompletionTail = 0x130,
    /// RW (idle only): tail writeback DMA address, bits 31:0 (4-byte aligned; 0 = off).
    CompletionWritebackLo = 0x138,
    /// RW (idle only): tail writeback DMA address, bits 63:32.
    CompletionWritebackHi = 0x13c,
    /// RW1C: [`FaultStatus`].
    FaultStatus = 0x180,
    /// RO: cookie of the submission involved in the last fault.
    FaultCookie = 0x184,
    /// RO: DMA address of the last fault, bits 31:0.
    FaultAddrLo = 0x188,
    /// RO: DMA address of the last fault, bits 63:32.
    FaultAddrHi = 0x18c,
}

bitflags! {
    /// [`Register::Features`] bits.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Features: u32 {
        /// [`Register::CompletionWritebackLo`] is implemented.
        const COMPLETION_WRITEBACK = 1 << 0;
        /// [`Register::IrqModerationUs`] is implemented.
        const IRQ_MODERATION = 1 << 1;
    }

    /// [`Register::Control`] bits.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Control: u32 {
        /// Start producing frames (0 -> 1 while idle). Writing 0 while running is a stop
        /// request.
        const ENABLE = 1 << 0;
        /// Stop: abort the frame in progress, flush every queued submission, go idle.
        /// Reads 1 until the device is idle.
        const STOP = 1 << 1;
        /// Reset: reads 1 until the reset is complete.
        const RESET = 1 << 31;
    }

    /// [`Register::Status`] bits.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Status: u32 {
        /// Frames are being produced.
        const RUNNING = 1 << 0;
        /// No DMA in progress, no submission held; ring registers may be written.
        const IDLE = 1 << 1;
        /// A stop is in progress.
        const STOPPING = 1 << 2;
        /// A fatal fault stopped the device; only a reset leaves this state.
        const HALTED = 1 << 3;
        /// Completion records are waiting for room in the completion ring.
        const COMPLETION_FULL = 1 << 4;
        /// PCI Bus Master Enable is clear: the device issues no DMA.
        const BUS_MASTER_OFF = 1 << 5;
        /// Some [`FaultStatus`] bit is set.
        const FAULT = 1 << 8;
    }

    /// [`Register::IrqStatus`] and [`Register::IrqMask`] bits.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct IrqCause: u32 {
        /// A completion record was published (vector 0).
        const FRAME_DONE = 1 << 0;
        /// A fault was recorded in [`Register::FaultStatus`] (vector 1).
        const ERROR = 1 << 1;
        /// A stop completed: the device is idle (vector 1).
        const STOPPED = 1 << 2;
        /// The completion ring became full (vector 1).
        const COMPLETION_FULL = 1 << 3;
    }

    /// [`Register::FaultStatus`] bits.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct FaultStatus: u32 {
        /// A frame data write hit an address that is not mapped for device writes.
        const DMA_WRITE = 1 << 0;
        /// A descriptor list read hit an address that is not mapped for device reads.
        const DMA_READ = 1 << 1;
        /// A submission was rejected with DESC_ERROR.
        const DESCRIPTOR = 1 << 2;
        /// ENABLE was refused: ring configuration invalid.
        const CONFIG = 1 << 3;
        /// A submit ring read or completion ring write failed (fatal: HALTED).
        const RING_ACCESS = 1 << 4;
        /// The device needs a reset (fatal: HALTED).
        const RESET_REQUIRED = 1 << 5;
    }
}

impl IrqCause {
    /// Interrupt vector that signals this cause.
    pub fn vector(self) -> usize {
        if self == IrqCause::FRAME_DONE {
            VECTOR_FRAME
        } else {
            VECTOR_ERROR
        }
    }
}

/// Reset value of [`Register::IrqMask`]: everything masked until the driver unmasks.
pub const IRQ_MASK_RESET: u32 = u32::MAX;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_unique_aligned_and_inside_the_block() {
        let mut seen = std::collections::HashSet::new();
        for &r in Register::ALL {
            assert_eq!(r.offset() % 4, 0, "{r:?}");
            assert!(u64::from(r.offset()) < REGISTER_BLOCK_SIZE);
            assert!(seen.insert(r.offset()));
            assert_eq!(Register::at(u64::from(r.offset())), Some(r));
        }
        assert_eq!(Register::at(0x004 + 1), None);
    }

    #[test]
    fn msix_structures_fit_in_bar0() {
        let table_end = MSIX_TABLE_OFFSET + u32::from(MSIX_VECTORS) * MSIX_ENTRY_SIZE;
        assert!(table_end <= MSIX_PBA_OFFSET);
        assert!(u64::from(MSIX_PBA_OFFSET) + 8 <= BAR0_SIZE);
    }
}
