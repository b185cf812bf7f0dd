// SPDX-License-Identifier: GPL-2.0

//! The camera's areas of BAR0 (`docs/hardware.md` §3.8): the feature window and the
//! GenICam XML, read and written as 32-bit words at offsets the caller validated
//! (`domain/camera.rs`). Every access is bounds-checked against BAR0 once more at run
//! time, so an offset that escaped validation fails with `EINVAL` instead of reaching past
//! the mapping.

use kernel::{io::Io, prelude::*};

use crate::hardware::regs::{self, Bar0, Registers};

/// Where a card says its camera areas are: BAR0 offsets and sizes, unchecked.
#[derive(Clone, Copy)]
pub(crate) struct Announced {
    /// `FEATURE_WINDOW_OFFSET`.
    pub(crate) window_offset: u32,
    /// `FEATURE_WINDOW_SIZE`.
    pub(crate) window_size: u32,
    /// `XML_OFFSET`.
    pub(crate) xml_offset: u32,
    /// `XML_SIZE`.
    pub(crate) xml_size: u32,
}

/// The camera registers of a card with `FEATURES.camera`, `None` for a card without.
pub(crate) fn announced(bar: &Bar0<'_>) -> Option<Announced> {
    if !bar.read(regs::FEATURES).camera() {
        return None;
    }
    Some(Announced {
        window_offset: bar.read(regs::FEATURE_WINDOW_OFFSET).offset().get(),
        window_size: bar.read(regs::FEATURE_WINDOW_SIZE).bytes().get(),
        xml_offset: bar.read(regs::XML_OFFSET).offset().get(),
        xml_size: bar.read(regs::XML_SIZE).bytes().get(),
    })
}

/// Reads `out.len()` bytes at BAR0 offset `start` (any alignment) with aligned 32-bit reads.
///
/// # Errors
///
/// `ENODEV` once the card is unbound, `EINVAL` for bytes beyond BAR0.
pub(crate) fn read(regs: &Registers, start: usize, out: &mut [u8]) -> Result {
    let mut done = 0;
    while done < out.len() {
        let at = start.checked_add(done).ok_or(EINVAL)?;
        let aligned = at & !3;
        let word = with_bar(regs, |bar| bar.try_read32(aligned))??.to_le_bytes();
        let first = at - aligned;
        let n = (4 - first).min(out.len() - done);
        out[done..done + n].copy_from_slice(&word[first..first + n]);
        done += n;
    }
    Ok(())
}

/// Writes `data` (a multiple of 4 bytes) at BAR0 offset `start` (4-byte aligned) as 32-bit
/// little-endian writes in address order.
///
/// # Errors
///
/// `ENODEV` once the card is unbound, `EINVAL` for a misaligned or out-of-bounds access.
pub(crate) fn write(regs: &Registers, start: usize, data: &[u8]) -> Result {
    if start % 4 != 0 || data.len() % 4 != 0 {
        return Err(EINVAL);
    }
    for (index, word) in data.chunks_exact(4).enumerate() {
        let at = start.checked_add(index * 4).ok_or(EINVAL)?;
        let value = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        with_bar(regs, |bar| bar.try_write32(value, at))??;
    }
    Ok(())
}

/// Runs `f` on the mapped BAR (no sleeping: the BAR is revocable, `f` runs under RCU).
fn with_bar<R>(regs: &Registers, f: impl FnOnce(&Bar0<'_>) -> R) -> Result<R> {
    let bar = regs.try_access().ok_or(ENODEV)?;
    Ok(f(&bar))
}
