// SPDX-License-Identifier: GPL-2.0

//! BAR0 register map (interface v1, `docs/hardware.md`). No register offset appears
//! anywhere else in the driver.

use kernel::io::register;

/// Size of BAR0.
pub(crate) const BAR0_SIZE: usize = 0x1_0000;

/// [`ID`] of every fgrab card: "FGRB".
pub(crate) const MAGIC: u32 = 0x4647_5242;

/// Interface major version this driver implements.
pub(crate) const INTERFACE_MAJOR: u32 = 1;

register! {
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

    /// Most submissions the card holds at once (a full submit ring).
    pub(crate) MAX_FRAME_SLOTS(u32) @ 0x014 {
        31:0 count;
    }

    /// Largest value `FRAME_BYTES` accepts.
    pub(crate) MAX_FRAME_BYTES(u32) @ 0x020 {
        31:0 bytes;
    }

    /// Bytes per frame the sensor produces.
    pub(crate) FRAME_BYTES(u32) @ 0x060 {
        31:0 bytes;
    }

    /// Time between frame starts for the current frame size.
    pub(crate) FRAME_PERIOD_NS(u32) @ 0x064 {
        31:0 nanoseconds;
    }
}
