//! The card's own frame counters, read from BAR0 through sysfs (`resource0`), to hold the
//! driver's figures and the sequence numbers a stream saw against the hardware.
//!
//! `STATS` reports drops but not how many sequence numbers the card used, which is what
//! frames dropped after the last delivered one need. Only read while the card is stopped:
//! a read of a counter's low half latches its high half for the next high-half read, so a
//! concurrent reader (the driver answering `STATS`) could pair halves of different values.

use crate::regs::Register;
use std::os::fd::AsRawFd;

/// BAR0 counters of a stopped card (docs/hardware.md 3.4), since its last reset (`START`).
#[derive(Clone, Copy, Debug)]
pub struct CardCounters {
    /// `FRAMES_PRODUCED`: frame starts, dropped ones included.
    pub produced: u64,
    /// `NEXT_SEQUENCE`: the sequence number the next frame start gets.
    pub next_sequence: u64,
    /// `FRAMES_DROPPED_UNDERRUN`.
    pub underrun: u64,
    /// `FRAMES_DROPPED_OVERRUN`.
    pub overrun: u64,
    /// `FRAMES_DROPPED_BACKPRESSURE`.
    pub backpressure: u64,
}

/// Reads the counters of the PCI device at `address` (`dddd:bb:dd.f`).
pub fn read_counters(address: &str) -> Result<CardCounters, String> {
    let path = format!("/sys/bus/pci/devices/{address}/resource0");
    let file = std::fs::File::open(&path).map_err(|error| format!("{path}: {error}"))?;
    // Only the register block is needed: one page.
    let len = 4096;
    // SAFETY: a fresh shared read-only mapping of the BAR; nothing else refers to it.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(format!("mmap {path}: {}", std::io::Error::last_os_error()));
    }
    let read = |register: Register| -> u32 {
        // SAFETY: every register offset is inside the mapped page and 4-byte aligned; MMIO
        // is read with one volatile 32-bit load per register, low half before high half.
        unsafe {
            std::ptr::read_volatile(
                base.cast::<u8>()
                    .add(register.offset() as usize)
                    .cast::<u32>(),
            )
        }
    };
    let counter = |low: Register, high: Register| -> u64 {
        let low = read(low);
        u64::from(read(high)) << 32 | u64::from(low)
    };
    let counters = CardCounters {
        produced: counter(Register::FramesProducedLo, Register::FramesProducedHi),
        next_sequence: counter(Register::NextSequenceLo, Register::NextSequenceHi),
        underrun: counter(
            Register::FramesDroppedUnderrunLo,
            Register::FramesDroppedUnderrunHi,
        ),
        overrun: counter(
            Register::FramesDroppedOverrunLo,
            Register::FramesDroppedOverrunHi,
        ),
        backpressure: counter(
            Register::FramesDroppedBackpressureLo,
            Register::FramesDroppedBackpressureHi,
        ),
    };
    // SAFETY: the mapping made above, no longer used.
    unsafe { libc::munmap(base, len) };
    Ok(counters)
}
