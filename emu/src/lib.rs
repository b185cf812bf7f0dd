//! Device model of the fgrab PCIe frame grabber (interface v1, `docs/hardware.md`),
//! served to QEMU's `vfio-user-pci` over a unix socket.
#![deny(missing_docs)]

pub mod bench;
pub mod camera;
pub mod config;
pub mod dma;
pub mod dma_rings;
pub mod engine;
pub mod fault;
pub mod irq;
pub mod pattern;
pub mod regs;
pub mod server;
