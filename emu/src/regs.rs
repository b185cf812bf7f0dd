//! BAR0 registers as the model decodes them (docs/hardware.md, "BAR0 register map").
//!
//! Offsets and bits are the card's definition, `fgrab-hw` (shared with the driver and checked
//! against the document); this module gives them the model's types: [`Register`], an enum to
//! match MMIO accesses on, and `bitflags` types for the bit registers.

use bitflags::bitflags;
use fgrab_hw::{msix, regs};

/// Interrupt vector of frame completions, as an index.
pub const VECTOR_FRAME: usize = msix::FRAME_VECTOR as usize;
/// Interrupt vector of errors and status changes, as an index.
pub const VECTOR_ERROR: usize = msix::ERROR_VECTOR as usize;

macro_rules! registers {
    ($($(#[$doc:meta])* $name:ident = $offset:ident,)*) => {
        /// A 32-bit register of BAR0. The discriminant is its offset.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u32)]
        pub enum Register {
            $($(#[$doc])* $name = regs::$offset,)*
        }

        impl Register {
            /// Every register, in offset order.
            pub const ALL: &'static [Register] = &[$(Register::$name,)*];

            /// The register at byte `offset` of BAR0, if one is defined there.
            pub fn at(offset: u64) -> Option<Register> {
                match u32::try_from(offset).ok()? {
                    $(regs::$offset => Some(Register::$name),)*
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
    /// RO: [`fgrab_hw::MAGIC`].
    Id = ID,
    /// RO: [`fgrab_hw::INTERFACE_VERSION`], major in bits 31:16, minor in 15:0.
    Version = VERSION,
    /// RO: [`fgrab_hw::caps::MAX_SEGMENT_BYTES`].
    MaxSegmentBytes = MAX_SEGMENT_BYTES,
    /// RO: [`fgrab_hw::caps::MAX_DESCRIPTORS`].
    MaxDescriptors = MAX_DESCRIPTORS,
    /// RO: [`fgrab_hw::caps::RING_MAX_ENTRIES`].
    RingMaxEntries = RING_MAX_ENTRIES,
    /// RO: [`fgrab_hw::caps::MAX_FRAME_SLOTS`].
    MaxFrameSlots = MAX_FRAME_SLOTS,
    /// RO: [`fgrab_hw::caps::TIMESTAMP_HZ`].
    TimestampHz = TIMESTAMP_HZ,
    /// RO: [`Features`].
    Features = FEATURES,
    /// RO: [`fgrab_hw::caps::MAX_FRAME_BYTES`].
    MaxFrameBytes = MAX_FRAME_BYTES,
    /// RO: [`fgrab_hw::camera::WINDOW_OFFSET`].
    FeatureWindowOffset = FEATURE_WINDOW_OFFSET,
    /// RO: [`fgrab_hw::camera::WINDOW_SIZE`].
    FeatureWindowSize = FEATURE_WINDOW_SIZE,
    /// RO: [`fgrab_hw::camera::XML_OFFSET`].
    XmlOffset = XML_OFFSET,
    /// RO: bytes of [`crate::camera::XML`].
    XmlSize = XML_SIZE,
    /// RW: no effect; for the driver's probe-time access test.
    Scratch = SCRATCH,
    /// RW: [`Control`].
    Control = CONTROL,
    /// RO: [`Status`].
    Status = STATUS,
    /// RW1C: [`IrqCause`] bits raised since last cleared.
    IrqStatus = IRQ_STATUS,
    /// RW: [`IrqCause`] bits whose messages are suppressed (1 = masked).
    IrqMask = IRQ_MASK,
    /// RW: minimum microseconds between two frame-vector messages (0 = no moderation).
    IrqModerationUs = IRQ_MODERATION_US,
    /// RW: records per frame-vector message (0 or 1: every record).
    IrqModerationFrames = IRQ_MODERATION_FRAMES,
    /// RW (idle only): bytes per frame.
    FrameBytes = FRAME_BYTES,
    /// RO: frame period in nanoseconds for the current frame size.
    FramePeriodNs = FRAME_PERIOD_NS,
    /// RO: frame starts, including dropped frames.
    FramesProducedLo = FRAMES_PRODUCED_LO,
    /// RO: upper half latched by the last `*Lo` read.
    FramesProducedHi = FRAMES_PRODUCED_HI,
    /// RO: completions with status OK or INCOMPLETE.
    FramesCompletedLo = FRAMES_COMPLETED_LO,
    /// RO: upper half latched by the last `*Lo` read.
    FramesCompletedHi = FRAMES_COMPLETED_HI,
    /// RO: frames dropped because no submission was queued.
    FramesDroppedUnderrunLo = FRAMES_DROPPED_UNDERRUN_LO,
    /// RO: upper half latched by the last `*Lo` read.
    FramesDroppedUnderrunHi = FRAMES_DROPPED_UNDERRUN_HI,
    /// RO: frames dropped because the device was still busy or could not DMA.
    FramesDroppedOverrunLo = FRAMES_DROPPED_OVERRUN_LO,
    /// RO: upper half latched by the last `*Lo` read.
    FramesDroppedOverrunHi = FRAMES_DROPPED_OVERRUN_HI,
    /// RO: frames dropped because the completion ring was full.
    FramesDroppedBackpressureLo = FRAMES_DROPPED_BACKPRESSURE_LO,
    /// RO: upper half latched by the last `*Lo` read.
    FramesDroppedBackpressureHi = FRAMES_DROPPED_BACKPRESSURE_HI,
    /// RO: DMA faults (frame data writes and descriptor reads).
    DmaErrorsLo = DMA_ERRORS_LO,
    /// RO: upper half latched by the last `*Lo` read.
    DmaErrorsHi = DMA_ERRORS_HI,
    /// RO: submissions rejected with DESC_ERROR.
    DescErrorsLo = DESC_ERRORS_LO,
    /// RO: upper half latched by the last `*Lo` read.
    DescErrorsHi = DESC_ERRORS_HI,
    /// RO: sequence number the next frame start will get.
    NextSequenceLo = NEXT_SEQUENCE_LO,
    /// RO: upper half latched by the last `*Lo` read.
    NextSequenceHi = NEXT_SEQUENCE_HI,
    /// RO: device clock, nanoseconds.
    TimestampLo = TIMESTAMP_LO,
    /// RO: upper half latched by the last `*Lo` read.
    TimestampHi = TIMESTAMP_HI,
    /// RW (idle only): submit ring DMA address, bits 31:0 (16-byte aligned).
    SubmitBaseLo = SUBMIT_BASE_LO,
    /// RW (idle only): submit ring DMA address, bits 63:32.
    SubmitBaseHi = SUBMIT_BASE_HI,
    /// RW (idle only): submit ring entries (power of two).
    SubmitSize = SUBMIT_SIZE,
    /// RW: submit doorbell, index of the next entry the host will write.
    SubmitTail = SUBMIT_TAIL,
    /// RO: index of the next entry the device will read.
    SubmitHead = SUBMIT_HEAD,
    /// RW (idle only): completion ring DMA address, bits 31:0 (32-byte aligned).
    CompletionBaseLo = COMPLETION_BASE_LO,
    /// RW (idle only): completion ring DMA address, bits 63:32.
    CompletionBaseHi = COMPLETION_BASE_HI,
    /// RW (idle only): completion ring entries (power of two).
    CompletionSize = COMPLETION_SIZE,
    /// RW: index of the next record the host will consume.
    CompletionHead = COMPLETION_HEAD,
    /// RO: index of the next record the device will write.
    CompletionTail = COMPLETION_TAIL,
    /// RW (idle only): tail writeback DMA address, bits 31:0 (4-byte aligned; 0 = off).
    CompletionWritebackLo = COMPLETION_WRITEBACK_LO,
    /// RW (idle only): tail writeback DMA address, bits 63:32.
    CompletionWritebackHi = COMPLETION_WRITEBACK_HI,
    /// RW1C: [`FaultStatus`].
    FaultStatus = FAULT_STATUS,
    /// RO: cookie of the submission involved in the last fault.
    FaultCookie = FAULT_COOKIE,
    /// RO: DMA address of the last fault, bits 31:0.
    FaultAddrLo = FAULT_ADDR_LO,
    /// RO: DMA address of the last fault, bits 63:32.
    FaultAddrHi = FAULT_ADDR_HI,
}

// Flag names are the definition's; `flags_are_the_definitions` checks the sets match.
bitflags! {
    /// [`Register::Features`] bits.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Features: u32 {
        /// [`Register::CompletionWritebackLo`] is implemented.
        const COMPLETION_WRITEBACK = regs::features::COMPLETION_WRITEBACK;
        /// [`Register::IrqModerationUs`] is implemented.
        const IRQ_MODERATION = regs::features::IRQ_MODERATION;
        /// The feature window and the GenICam XML are implemented.
        const CAMERA = regs::features::CAMERA;
        /// [`Register::IrqModerationFrames`] is implemented.
        const IRQ_MODERATION_FRAMES = regs::features::IRQ_MODERATION_FRAMES;
    }

    /// [`Register::Control`] bits.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Control: u32 {
        /// Start producing frames (0 -> 1 while idle). Writing 0 while running is a stop
        /// request.
        const ENABLE = regs::control::ENABLE;
        /// Stop: abort the frame in progress, flush every queued submission, go idle.
        /// Reads 1 until the device is idle.
        const STOP = regs::control::STOP;
        /// Reset: reads 1 until the reset is complete.
        const RESET = regs::control::RESET;
    }

    /// [`Register::Status`] bits.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Status: u32 {
        /// Frames are being produced.
        const RUNNING = regs::status::RUNNING;
        /// No DMA in progress, no submission held; ring registers may be written.
        const IDLE = regs::status::IDLE;
        /// A stop is in progress.
        const STOPPING = regs::status::STOPPING;
        /// A fatal fault stopped the device; only a reset leaves this state.
        const HALTED = regs::status::HALTED;
        /// Completion records are waiting for room in the completion ring.
        const COMPLETION_FULL = regs::status::COMPLETION_FULL;
        /// PCI Bus Master Enable is clear: the device issues no DMA.
        const BUS_MASTER_OFF = regs::status::BUS_MASTER_OFF;
        /// Some [`FaultStatus`] bit is set.
        const FAULT = regs::status::FAULT;
    }

    /// [`Register::IrqStatus`] and [`Register::IrqMask`] bits.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct IrqCause: u32 {
        /// A completion record was published (vector 0).
        const FRAME_DONE = regs::irq_status::FRAME_DONE;
        /// A fault was recorded in [`Register::FaultStatus`] (vector 1).
        const ERROR = regs::irq_status::ERROR;
        /// A stop completed: the device is idle (vector 1).
        const STOPPED = regs::irq_status::STOPPED;
        /// The completion ring became full (vector 1).
        const COMPLETION_FULL = regs::irq_status::COMPLETION_FULL;
    }

    /// [`Register::FaultStatus`] bits.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct FaultStatus: u32 {
        /// A frame data write hit an address that is not mapped for device writes.
        const DMA_WRITE = regs::fault_status::DMA_WRITE;
        /// A descriptor list read hit an address that is not mapped for device reads.
        const DMA_READ = regs::fault_status::DMA_READ;
        /// A submission was rejected with DESC_ERROR.
        const DESCRIPTOR = regs::fault_status::DESCRIPTOR;
        /// ENABLE was refused: ring configuration invalid.
        const CONFIG = regs::fault_status::CONFIG;
        /// A submit ring read or completion ring write failed (fatal: HALTED).
        const RING_ACCESS = regs::fault_status::RING_ACCESS;
        /// The device needs a reset (fatal: HALTED).
        const RESET_REQUIRED = regs::fault_status::RESET_REQUIRED;
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

#[cfg(test)]
mod tests {
    use super::*;
    use bitflags::Flags;

    #[test]
    fn offsets_are_unique_aligned_and_inside_the_block() {
        let mut seen = std::collections::HashSet::new();
        for &r in Register::ALL {
            assert_eq!(r.offset() % 4, 0, "{r:?}");
            assert!((r.offset() as usize) < fgrab_hw::REGISTER_BLOCK_SIZE);
            assert!(seen.insert(r.offset()));
            assert_eq!(Register::at(u64::from(r.offset())), Some(r));
        }
        assert_eq!(Register::at(0x004 + 1), None);
        assert_eq!(Register::at(1 << 32), None);
    }

    /// `FramesDroppedUnderrunLo` -> `FRAMES_DROPPED_UNDERRUN_LO`.
    fn screaming_snake(camel: &str) -> String {
        let mut out = String::new();
        for (i, c) in camel.chars().enumerate() {
            if c.is_ascii_uppercase() && i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_uppercase());
        }
        out
    }

    #[test]
    fn registers_are_the_definitions() {
        let ours: Vec<(String, u32)> = Register::ALL
            .iter()
            .map(|r| (screaming_snake(&format!("{r:?}")), r.offset()))
            .collect();
        let definition: Vec<(String, u32)> = regs::ALL
            .iter()
            .map(|&(name, offset)| (name.to_string(), offset))
            .collect();
        assert_eq!(ours, definition);
    }

    fn flags<F: Flags<Bits = u32>>() -> Vec<(String, u32)> {
        F::FLAGS
            .iter()
            .map(|flag| (flag.name().to_string(), flag.value().bits()))
            .collect()
    }

    #[test]
    fn flags_are_the_definitions() {
        let definition = |bits: &[(&str, u32)]| -> Vec<(String, u32)> {
            bits.iter()
                .map(|&(name, bit)| (name.to_string(), bit))
                .collect()
        };
        assert_eq!(flags::<Features>(), definition(regs::features::ALL));
        assert_eq!(flags::<Control>(), definition(regs::control::ALL));
        assert_eq!(flags::<Status>(), definition(regs::status::ALL));
        assert_eq!(flags::<IrqCause>(), definition(regs::irq_status::ALL));
        assert_eq!(flags::<FaultStatus>(), definition(regs::fault_status::ALL));
    }

    #[test]
    fn vectors_are_the_definitions() {
        assert_eq!(IrqCause::FRAME_DONE.vector(), VECTOR_FRAME);
        for cause in [
            IrqCause::ERROR,
            IrqCause::STOPPED,
            IrqCause::COMPLETION_FULL,
        ] {
            assert_eq!(cause.vector(), VECTOR_ERROR);
        }
        assert!(VECTOR_FRAME < usize::from(msix::VECTORS));
        assert!(VECTOR_ERROR < usize::from(msix::VECTORS));
    }
}
