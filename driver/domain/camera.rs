// SPDX-License-Identifier: GPL-2.0

//! The camera's feature window and GenICam XML as the stream's owner sees them
//! (`docs/abi.md`, "Camera"; `docs/hardware.md` §3.8, §12): which areas a card may
//! announce, and which reads and writes of them a command may make.
//!
//! The card is not trusted: its areas are checked once, at probe ([`Camera::new`]), and a
//! card that breaks the rules keeps streaming without camera features. Commands are checked
//! against the accepted areas before any access, and the access itself is bounds-checked
//! again (`hardware/camera.rs`).

use kernel::prelude::*;

use crate::{
    hardware::{
        camera::{self, Announced},
        definition::{self, camera as card},
        regs::Registers,
    },
    uapi::MAX_PORT_BYTES,
};

/// Lowest BAR0 offset of a camera area: after the register block.
// CAST: 4 KiB fits a u32.
const AREAS_START: u32 = definition::REGISTER_BLOCK_SIZE as u32;
/// End of the camera areas: the MSI-X table.
const AREAS_END: u32 = definition::msix::TABLE_OFFSET;

/// A card's camera areas, as accepted at probe.
pub(crate) struct Camera {
    window_offset: u32,
    window_size: u32,
    xml_offset: u32,
    xml_size: u32,
}

/// A byte range of BAR0, `[start, start + len)`.
fn range_ok(start: u32, len: u32) -> bool {
    len > 0 && start >= AREAS_START && start.checked_add(len).is_some_and(|end| end <= AREAS_END)
}

impl Camera {
    /// The areas `announced` by a card, if they follow `docs/hardware.md` §3.1: inside
    /// `0x1000..0x8000` of BAR0, not overlapping, 4-byte aligned starts, the window a
    /// non-empty multiple of 4 bytes of at most 4 KiB, the XML non-empty and at most 24 KiB.
    ///
    /// # Errors
    ///
    /// The rule the card breaks, for the log.
    pub(crate) fn new(announced: &Announced) -> core::result::Result<Self, &'static str> {
        let Announced {
            window_offset,
            window_size,
            xml_offset,
            xml_size,
        } = *announced;
        if !range_ok(window_offset, window_size) || !range_ok(xml_offset, xml_size) {
            return Err("an area lies outside 0x1000..0x8000 of BAR0 or is empty");
        }
        if window_offset % 4 != 0 || xml_offset % 4 != 0 || window_size % 4 != 0 {
            return Err("an area is not 4-byte aligned");
        }
        if window_size > card::WINDOW_SIZE || xml_size > card::XML_MAX_SIZE {
            return Err("an area is larger than the interface allows");
        }
        // Both end at most at AREAS_END: no overflow.
        if window_offset < xml_offset + xml_size && xml_offset < window_offset + window_size {
            return Err("the feature window and the XML overlap");
        }
        Ok(Self {
            window_offset,
            window_size,
            xml_offset,
            xml_size,
        })
    }

    /// Bytes of the XML.
    pub(crate) fn xml_size(&self) -> u32 {
        self.xml_size
    }

    /// Reads up to `out.len()` bytes of the XML from byte `offset`; returns the bytes read
    /// (fewer at the XML's end).
    ///
    /// # Errors
    ///
    /// `EINVAL` for an offset beyond the XML or more than [`MAX_PORT_BYTES`]; `ENODEV` once
    /// the card is unbound.
    pub(crate) fn read_xml(&self, regs: &Registers, offset: u32, out: &mut [u8]) -> Result<usize> {
        if offset > self.xml_size || out.len() > MAX_PORT_BYTES as usize {
            return Err(EINVAL);
        }
        // CAST: u32 to usize, widening.
        let len = out.len().min((self.xml_size - offset) as usize);
        camera::read(regs, (self.xml_offset + offset) as usize, &mut out[..len])?;
        Ok(len)
    }

    /// Checks a window access of `size` bytes at `offset`.
    ///
    /// # Errors
    ///
    /// `EINVAL` unless both are multiples of 4, `size` is in `1..=MAX_PORT_BYTES` and the
    /// bytes lie inside the window.
    fn check(&self, offset: u32, size: usize) -> Result<u32> {
        let size = u32::try_from(size).map_err(|_| EINVAL)?;
        if offset % 4 != 0 || size % 4 != 0 || size == 0 || size > MAX_PORT_BYTES {
            return Err(EINVAL);
        }
        if offset
            .checked_add(size)
            .is_none_or(|end| end > self.window_size)
        {
            return Err(EINVAL);
        }
        Ok(size)
    }

    /// Reads `out.len()` bytes of the feature window at `offset`.
    ///
    /// # Errors
    ///
    /// Those of [`Self::check`]; `ENODEV` once the card is unbound.
    pub(crate) fn read_window(&self, regs: &Registers, offset: u32, out: &mut [u8]) -> Result {
        self.check(offset, out.len())?;
        // CAST: u32 to usize, widening.
        camera::read(regs, (self.window_offset + offset) as usize, out)
    }

    /// Writes `data` into the feature window at `offset`. `streaming`: the card streams, so
    /// the image format is fixed.
    ///
    /// # Errors
    ///
    /// Those of [`Self::check`]; `EBUSY` if `streaming` and the bytes touch `Width`,
    /// `Height` or `PixelFormat` (nothing is written then); `ENODEV` once unbound.
    pub(crate) fn write_window(
        &self,
        regs: &Registers,
        offset: u32,
        data: &[u8],
        streaming: bool,
    ) -> Result {
        let size = self.check(offset, data.len())?;
        if streaming && card::touches_size(offset, size) {
            return Err(EBUSY);
        }
        // CAST: u32 to usize, widening.
        camera::write(regs, (self.window_offset + offset) as usize, data)
    }
}
