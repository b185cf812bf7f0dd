//! PCI configuration space (docs/hardware.md, "PCI configuration").
//!
//! vfio-user leaves config space to the device. This module builds the 4 KiB PCIe config
//! space once and applies writes through a per-byte writable mask, which is also what
//! makes BAR size probing work: writing all ones to BAR0 reads back the size mask.

use fgrab_hw::pci::{
    CLASS_CODE, DEVICE_ID, REVISION, SUBSYSTEM_ID, SUBSYSTEM_VENDOR_ID, VENDOR_ID,
};
use fgrab_hw::{msix, BAR0_SIZE};

/// Size of the config space (PCIe extended config space).
pub const CONFIG_SIZE: usize = 4096;
/// Offset of the PCI Express capability.
pub const PCIE_CAP_OFFSET: usize = 0x40;
/// Offset of the MSI-X capability.
pub const MSIX_CAP_OFFSET: usize = 0x80;

const COMMAND: usize = 0x04;
const STATUS: usize = 0x06;
const BAR0: usize = 0x10;
const CAPABILITIES_POINTER: usize = 0x34;
const INTERRUPT_LINE: usize = 0x3c;

/// Command register: Memory Space Enable.
pub const COMMAND_MEMORY: u16 = 1 << 1;
/// Command register: Bus Master Enable.
pub const COMMAND_BUS_MASTER: u16 = 1 << 2;
const COMMAND_WRITABLE: u16 = COMMAND_MEMORY | COMMAND_BUS_MASTER | (1 << 6) | (1 << 8) | (1 << 10);
const STATUS_CAP_LIST: u16 = 1 << 4;

const CAP_ID_PCIE: u8 = 0x10;
const CAP_ID_MSIX: u8 = 0x11;
/// PCIe capability version 2, device/port type 0 (PCI Express Endpoint).
const PCIE_FLAGS: u16 = 0x0002;
/// Device Capabilities: max payload 256 B, role-based error reporting, FLR capable.
const PCIE_DEVCAP: u32 = 0x1 | (1 << 15) | (1 << 28);
/// Device Control at reset: relaxed ordering, no snoop, MPS 128 B, MRRS 512 B.
const PCIE_DEVCTL: u16 = (1 << 4) | (1 << 11) | (2 << 12);
/// Device Control bits the driver may write (all but Initiate FLR, which acts).
const PCIE_DEVCTL_WRITABLE: u16 = 0x7fff;
/// Device Control: Initiate Function Level Reset.
const PCIE_DEVCTL_FLR: u16 = 1 << 15;
/// Link Capabilities: 8 GT/s, x8.
const PCIE_LNKCAP: u32 = 0x3 | (8 << 4);
/// Link Status: trained at 8 GT/s, x8.
const PCIE_LNKSTA: u16 = 0x3 | (8 << 4);
/// Link Capabilities 2: 2.5, 5 and 8 GT/s supported.
const PCIE_LNKCAP2: u32 = 0b1110;
/// Size of the version 2 PCIe capability.
const PCIE_CAP_SIZE: usize = 0x3c;

/// What a config write asks the device to do beyond storing bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConfigEffects {
    /// New Bus Master Enable value, if the command register was written.
    pub bus_master: Option<bool>,
    /// A Function Level Reset was initiated.
    pub function_reset: bool,
}

/// The device's config space.
pub struct ConfigSpace {
    bytes: [u8; CONFIG_SIZE],
    writable: [u8; CONFIG_SIZE],
}

impl Default for ConfigSpace {
    fn default() -> Self {
        Self::new()
    }
}

impl ConfigSpace {
    /// Config space at power-on.
    pub fn new() -> Self {
        let mut c = Self {
            bytes: [0; CONFIG_SIZE],
            writable: [0; CONFIG_SIZE],
        };
        c.put16(0x00, VENDOR_ID);
        c.put16(0x02, DEVICE_ID);
        c.put16(STATUS, STATUS_CAP_LIST);
        c.bytes[0x08] = REVISION;
        c.put_bytes(0x09, &CLASS_CODE.to_le_bytes()[..3]);
        // Header type 0, single function; BAR0 32-bit non-prefetchable memory.
        c.put16(0x2c, SUBSYSTEM_VENDOR_ID);
        c.put16(0x2e, SUBSYSTEM_ID);
        c.bytes[CAPABILITIES_POINTER] = PCIE_CAP_OFFSET as u8;
        // Interrupt pin 0: no INTx, MSI-X only.

        c.allow16(COMMAND, COMMAND_WRITABLE);
        // BAR0 address bits above the size are writable; the rest read 0 (memory, 32-bit,
        // non-prefetchable), so all-ones reads back !(size - 1).
        // CAST: BAR0_SIZE is 64 KiB.
        c.allow32(BAR0, !(BAR0_SIZE as u32 - 1));
        c.writable[0x0c] = 0xff; // cache line size
        c.writable[INTERRUPT_LINE] = 0xff;

        let pcie = PCIE_CAP_OFFSET;
        c.bytes[pcie] = CAP_ID_PCIE;
        c.bytes[pcie + 1] = MSIX_CAP_OFFSET as u8;
        c.put16(pcie + 0x02, PCIE_FLAGS);
        c.put32(pcie + 0x04, PCIE_DEVCAP);
        c.put16(pcie + 0x08, PCIE_DEVCTL);
        c.allow16(pcie + 0x08, PCIE_DEVCTL_WRITABLE | PCIE_DEVCTL_FLR);
        c.put32(pcie + 0x0c, PCIE_LNKCAP);
        c.allow16(pcie + 0x10, 0x0fff); // Link Control
        c.put16(pcie + 0x12, PCIE_LNKSTA);
        c.allow16(pcie + 0x28, 0xffff); // Device Control 2
        c.put32(pcie + 0x2c, PCIE_LNKCAP2);
        c.put16(pcie + 0x30, 0x3); // Link Control 2: target 8 GT/s
        c.allow16(pcie + 0x30, 0xffff);
        debug_assert!(pcie + PCIE_CAP_SIZE <= MSIX_CAP_OFFSET);

        let cap = MSIX_CAP_OFFSET;
        c.bytes[cap] = CAP_ID_MSIX;
        c.bytes[cap + 1] = 0; // end of list
        c.put16(cap + 0x02, msix::VECTORS - 1);
        c.allow16(cap + 0x02, 0xc000); // MSI-X Enable, Function Mask
        c.put32(cap + 0x04, msix::TABLE_OFFSET); // BIR 0
        c.put32(cap + 0x08, msix::PBA_OFFSET); // BIR 0
        c
    }

    /// Reads `data.len()` bytes at `offset`; bytes beyond the space read as 0xff.
    pub fn read(&self, offset: u64, data: &mut [u8]) {
        for (i, b) in data.iter_mut().enumerate() {
            *b = usize::try_from(offset)
                .ok()
                .and_then(|o| o.checked_add(i))
                .and_then(|o| self.bytes.get(o))
                .copied()
                .unwrap_or(0xff);
        }
    }

    /// Writes `data` at `offset` through the writable mask.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> ConfigEffects {
        let mut effects = ConfigEffects::default();
        let Ok(start) = usize::try_from(offset) else {
            return effects;
        };
        let before_command = self.get16(COMMAND);
        for (i, &b) in data.iter().enumerate() {
            let Some(o) = start.checked_add(i).filter(|&o| o < CONFIG_SIZE) else {
                break;
            };
            let mask = self.writable[o];
            self.bytes[o] = (self.bytes[o] & !mask) | (b & mask);
        }
        let end = start.saturating_add(data.len());
        if start < COMMAND + 2 && end > COMMAND {
            let command = self.get16(COMMAND);
            if command != before_command {
                log::debug!("PCI command {before_command:#06x} -> {command:#06x}");
            }
            effects.bus_master = Some(command & COMMAND_BUS_MASTER != 0);
        }
        let devctl = PCIE_CAP_OFFSET + 0x08;
        if start < devctl + 2 && end > devctl && self.get16(devctl) & PCIE_DEVCTL_FLR != 0 {
            // Initiate FLR reads back 0; the function resets.
            let value = self.get16(devctl) & !PCIE_DEVCTL_FLR;
            self.put16(devctl, value);
            self.put16(COMMAND, 0);
            effects.function_reset = true;
            effects.bus_master = Some(false);
        }
        effects
    }

    /// The command register.
    pub fn command(&self) -> u16 {
        self.get16(COMMAND)
    }

    fn get16(&self, o: usize) -> u16 {
        u16::from_le_bytes([self.bytes[o], self.bytes[o + 1]])
    }

    fn put_bytes(&mut self, o: usize, v: &[u8]) {
        self.bytes[o..o + v.len()].copy_from_slice(v);
    }

    fn put16(&mut self, o: usize, v: u16) {
        self.put_bytes(o, &v.to_le_bytes());
    }

    fn put32(&mut self, o: usize, v: u32) {
        self.put_bytes(o, &v.to_le_bytes());
    }

    fn allow16(&mut self, o: usize, mask: u16) {
        self.writable[o..o + 2].copy_from_slice(&mask.to_le_bytes());
    }

    fn allow32(&mut self, o: usize, mask: u32) {
        self.writable[o..o + 4].copy_from_slice(&mask.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read32(c: &ConfigSpace, o: u64) -> u32 {
        let mut b = [0u8; 4];
        c.read(o, &mut b);
        u32::from_le_bytes(b)
    }

    #[test]
    fn identity_and_class() {
        let c = ConfigSpace::new();
        assert_eq!(read32(&c, 0), 0xf9a0_10ee);
        assert_eq!(read32(&c, 8), 0x0400_0001);
        assert_eq!(read32(&c, 0x2c), 0x0001_10ee);
        assert_eq!(read32(&c, 0x3c) >> 8 & 0xff, 0, "no interrupt pin");
    }

    #[test]
    fn bar0_size_probe() {
        let mut c = ConfigSpace::new();
        c.write(0x10, &u32::MAX.to_le_bytes());
        assert_eq!(read32(&c, 0x10), 0xffff_0000);
        c.write(0x10, &0xfe00_0000u32.to_le_bytes());
        assert_eq!(read32(&c, 0x10), 0xfe00_0000);
        // Unimplemented BARs stay 0 when probed.
        c.write(0x14, &u32::MAX.to_le_bytes());
        assert_eq!(read32(&c, 0x14), 0);
    }

    #[test]
    fn capability_chain() {
        let c = ConfigSpace::new();
        let mut ids = Vec::new();
        let mut at = read32(&c, 0x34) as u64 & 0xff;
        while at != 0 {
            let header = read32(&c, at);
            ids.push(header as u8);
            at = u64::from(header >> 8 & 0xff);
        }
        assert_eq!(ids, [CAP_ID_PCIE, CAP_ID_MSIX]);
        let header = read32(&c, MSIX_CAP_OFFSET as u64);
        assert_eq!(header >> 16 & 0x7ff, u32::from(msix::VECTORS) - 1);
        assert_eq!(read32(&c, MSIX_CAP_OFFSET as u64 + 4), msix::TABLE_OFFSET);
        assert_eq!(read32(&c, 0x100), 0, "no extended capabilities");
    }

    #[test]
    fn command_bus_master_and_flr() {
        let mut c = ConfigSpace::new();
        let e = c.write(4, &[0x06, 0x00]);
        assert_eq!(e.bus_master, Some(true));
        assert_eq!(c.command(), 0x0006);
        // Status is read-only here.
        c.write(6, &[0xff, 0xff]);
        assert_eq!(read32(&c, 4) >> 16, u32::from(STATUS_CAP_LIST));
        let devctl = PCIE_CAP_OFFSET as u64 + 8;
        let e = c.write(devctl + 1, &[0x80]);
        assert!(e.function_reset);
        assert_eq!(c.command(), 0);
        let mut b = [0u8; 2];
        c.read(devctl, &mut b);
        assert_eq!(u16::from_le_bytes(b) & PCIE_DEVCTL_FLR, 0);
        c.read(4095, &mut b);
        assert_eq!(b, [0, 0xff]);
    }
}
