// SPDX-License-Identifier: GPL-2.0

//! BAR0 register map (interface v1, `docs/hardware.md`). No other file of `driver/` writes
//! a register offset.
//!
//! The kernel's `register!` macro needs literal offsets and bit ranges, so the map is written
//! here once more than in the card's definition ([`super::definition::regs`], shared with
//! the device model and checked against the document); [`checked_registers!`] makes the
//! build fail unless every register's offset and every field's bits are the definition's.

use kernel::io::{register, register::Register};

use super::definition;

/// Size of BAR0.
pub(crate) const BAR0_SIZE: usize = definition::BAR0_SIZE;

/// [`ID`] of every fgrab card: "FGRB".
pub(crate) const MAGIC: u32 = definition::MAGIC;

/// Interface major version this driver implements.
pub(crate) const INTERFACE_MAJOR: u32 = definition::INTERFACE_MAJOR;

/// [`register!`], plus build-time checks against the card's definition: each register's
/// `OFFSET` must be [`definition::regs`]' offset of the same name, and each field narrower
/// than the register must have the mask (and so the shift) of the same name in the
/// definition's module for that register (`CONTROL.reset` is `regs::control::RESET`). A
/// field that is the whole register (`31:0`) is its value: nothing to compare.
macro_rules! checked_registers {
    (
        $(
            $(#[$attr:meta])* $vis:vis $name:ident($storage:ty) @ $offset:literal {
                $($fields:tt)*
            }
        )*
    ) => {
        register! {
            $($(#[$attr])* $vis $name($storage) @ $offset { $($fields)* })*
        }

        $(
            const _: () = assert!(
                // CAST: u32 to usize, widening.
                <$name as Register>::OFFSET == definition::regs::$name as usize,
                concat!(stringify!($name), "'s offset is not the definition's")
            );
            checked_registers!(@fields $name { $($fields)* });
        )*
    };
    (@fields $name:ident {}) => {};
    (@fields $name:ident { 31:0 $field:ident $(=> $type:ty)?; $($rest:tt)* }) => {
        checked_registers!(@fields $name { $($rest)* });
    };
    (
        @fields $name:ident {
            $hi:literal:$lo:literal $field:ident $(=> $type:ty)?; $($rest:tt)*
        }
    ) => {
        kernel::macros::paste! {
            const _: () = assert!(
                $name::[<$field:upper _MASK>]
                    == definition::regs::[<$name:lower>]::[<$field:upper>]
                    && $name::[<$field:upper _SHIFT>]
                        == definition::regs::[<$name:lower>]::[<$field:upper>].trailing_zeros(),
                concat!(stringify!($name), ".", stringify!($field), " is not the definition's")
            );
        }
        checked_registers!(@fields $name { $($rest)* });
    };
}

checked_registers! {
    /// Identification: always [`MAGIC`].
    pub(crate) ID(u32) @ 0x000 {
        31:0 magic;
    }

    /// Interface version: incompatible changes bump `major`.
    pub(crate) VERSION(u32) @ 0x004 {
        31:16 major;
        15:0 minor;
    }

    /// Largest byte count one scatter/gather descriptor may carry.
    pub(crate) MAX_SEGMENT_BYTES(u32) @ 0x008 {
        31:0 bytes;
    }

    /// Most descriptors one frame may use.
    pub(crate) MAX_DESCRIPTORS(u32) @ 0x00c {
        31:0 count;
    }

    /// Largest ring size (both rings) the card accepts.
    pub(crate) RING_MAX_ENTRIES(u32) @ 0x010 {
        31:0 entries;
    }

    /// Most submissions the card holds at once (a full submit ring).
    pub(crate) MAX_FRAME_SLOTS(u32) @ 0x014 {
        31:0 count;
    }

    /// Optional parts of the interface the card implements.
    pub(crate) FEATURES(u32) @ 0x01c {
        3:3 irq_moderation_frames => bool;
        2:2 camera => bool;
        1:1 irq_moderation => bool;
        0:0 completion_writeback => bool;
    }

    /// Largest value `FRAME_BYTES` accepts.
    pub(crate) MAX_FRAME_BYTES(u32) @ 0x020 {
        31:0 bytes;
    }

    /// BAR0 offset of the camera's feature window (with `FEATURES.camera`).
    pub(crate) FEATURE_WINDOW_OFFSET(u32) @ 0x024 {
        31:0 offset;
    }

    /// Bytes in the feature window.
    pub(crate) FEATURE_WINDOW_SIZE(u32) @ 0x028 {
        31:0 bytes;
    }

    /// BAR0 offset of the camera's GenICam XML.
    pub(crate) XML_OFFSET(u32) @ 0x02c {
        31:0 offset;
    }

    /// Bytes of GenICam XML.
    pub(crate) XML_SIZE(u32) @ 0x030 {
        31:0 bytes;
    }

    /// Bytes per frame the sensor produces; writable while the engine is idle.
    pub(crate) FRAME_BYTES(u32) @ 0x060 {
        31:0 bytes;
    }

    /// Time between frame starts for the current frame size.
    pub(crate) FRAME_PERIOD_NS(u32) @ 0x064 {
        31:0 nanoseconds;
    }
}

checked_registers! {
    /// Engine control. Writes of `enable` and `stop` request state changes (see
    /// `docs/hardware.md` §3.2); `reset` reads 1 until the reset is done.
    pub(crate) CONTROL(u32) @ 0x040 {
        31:31 reset => bool;
        1:1 stop => bool;
        0:0 enable => bool;
    }

    /// Engine state.
    pub(crate) STATUS(u32) @ 0x044 {
        8:8 fault => bool;
        5:5 bus_master_off => bool;
        4:4 completion_full => bool;
        3:3 halted => bool;
        2:2 stopping => bool;
        1:1 idle => bool;
        0:0 running => bool;
    }

    /// Interrupt causes (write 1 to clear); same bits in [`IRQ_MASK`].
    pub(crate) IRQ_STATUS(u32) @ 0x048 {
        3:3 completion_full => bool;
        2:2 stopped => bool;
        1:1 error => bool;
        0:0 frame_done => bool;
    }

    /// Interrupt mask: a set bit suppresses that cause's message. Reset: all masked.
    pub(crate) IRQ_MASK(u32) @ 0x04c {
        31:0 masked;
    }

    /// Least time between two frame-vector messages, in microseconds (0: one per record);
    /// with `IRQ_MODERATION_FRAMES` above 1, the longest a record waits for its message.
    pub(crate) IRQ_MODERATION_US(u32) @ 0x050 {
        31:0 microseconds;
    }

    /// Records per frame-vector message (0 or 1: every record), each message at most
    /// `IRQ_MODERATION_US` after the first record it covers (`FEATURES.irq_moderation_frames`).
    pub(crate) IRQ_MODERATION_FRAMES(u32) @ 0x054 {
        31:0 frames;
    }

    /// Frame starts while no submission was queued; low half (reading it latches the high
    /// half for the next read of a `_HI` counter register).
    pub(crate) FRAMES_DROPPED_UNDERRUN_LO(u32) @ 0x090 {
        31:0 value;
    }

    /// High half of [`FRAMES_DROPPED_UNDERRUN_LO`].
    pub(crate) FRAMES_DROPPED_UNDERRUN_HI(u32) @ 0x094 {
        31:0 value;
    }

    /// Frame starts the device could not serve (late, bus mastering off); low half.
    pub(crate) FRAMES_DROPPED_OVERRUN_LO(u32) @ 0x098 {
        31:0 value;
    }

    /// High half of [`FRAMES_DROPPED_OVERRUN_LO`].
    pub(crate) FRAMES_DROPPED_OVERRUN_HI(u32) @ 0x09c {
        31:0 value;
    }

    /// Frame starts while completion records were held back; low half.
    pub(crate) FRAMES_DROPPED_BACKPRESSURE_LO(u32) @ 0x0a0 {
        31:0 value;
    }

    /// High half of [`FRAMES_DROPPED_BACKPRESSURE_LO`].
    pub(crate) FRAMES_DROPPED_BACKPRESSURE_HI(u32) @ 0x0a4 {
        31:0 value;
    }

    /// The card's clock in nanoseconds (the clock of completion timestamps); low half.
    pub(crate) TIMESTAMP_LO(u32) @ 0x0c0 {
        31:0 value;
    }

    /// High half of [`TIMESTAMP_LO`].
    pub(crate) TIMESTAMP_HI(u32) @ 0x0c4 {
        31:0 value;
    }

    /// Submit ring base, low half (writable while idle).
    pub(crate) SUBMIT_BASE_LO(u32) @ 0x100 {
        31:0 address;
    }

    /// Submit ring base, high half.
    pub(crate) SUBMIT_BASE_HI(u32) @ 0x104 {
        31:0 address;
    }

    /// Submit ring entries, a power of two.
    pub(crate) SUBMIT_SIZE(u32) @ 0x108 {
        31:0 entries;
    }

    /// Doorbell: the index of the next entry the host will write.
    pub(crate) SUBMIT_TAIL(u32) @ 0x10c {
        31:0 index;
    }

    /// Completion ring base, low half (writable while idle).
    pub(crate) COMPLETION_BASE_LO(u32) @ 0x120 {
        31:0 address;
    }

    /// Completion ring base, high half.
    pub(crate) COMPLETION_BASE_HI(u32) @ 0x124 {
        31:0 address;
    }

    /// Completion ring records, a power of two.
    pub(crate) COMPLETION_SIZE(u32) @ 0x128 {
        31:0 entries;
    }

    /// Index of the next record the host will consume; writing it frees records.
    pub(crate) COMPLETION_HEAD(u32) @ 0x12c {
        31:0 index;
    }

    /// Index of the next record the device will write.
    pub(crate) COMPLETION_TAIL(u32) @ 0x130 {
        31:0 index;
    }

    /// Where the device writes `COMPLETION_TAIL` after each update, low half.
    pub(crate) COMPLETION_WRITEBACK_LO(u32) @ 0x138 {
        31:0 address;
    }

    /// Where the device writes `COMPLETION_TAIL`, high half.
    pub(crate) COMPLETION_WRITEBACK_HI(u32) @ 0x13c {
        31:0 address;
    }

    /// Fault causes (write 1 to clear).
    pub(crate) FAULT_STATUS(u32) @ 0x180 {
        31:0 bits;
    }

    /// Cookie of the submission in the most recent fault.
    pub(crate) FAULT_COOKIE(u32) @ 0x184 {
        31:0 cookie;
    }
}

/// BAR0 as mapped by the driver.
pub(crate) type Bar0<'a> = kernel::pci::Bar<'a, BAR0_SIZE>;

/// BAR0 as the card and its open files hold it: revoked when the card unbinds.
pub(crate) type Registers = kernel::pci::DevresBar<BAR0_SIZE>;
