// SPDX-License-Identifier: GPL-2.0

//! fgrab: driver for the fgrab PCIe FPGA frame grabber.
//!
//! One misc character device per card (`/dev/fgrabN`). User space talks to it only through
//! io_uring `URING_CMD` submissions (`docs/abi.md`); the hardware interface is described in
//! `docs/hardware.md`.
//!
//! Layout: `pci` binds cards, `card` holds per-card state shared with open files, `stream`
//! the attach/detach state machine and teardown order, `region` a fixed-buffer region and
//! its per-frame DMA mappings, `sglist` which bytes of the buffer's segments form a frame,
//! `descriptors` the card's scatter/gather lists, `drop_order` a pair dropped in a fixed
//! order (a region before the command that pins it), `file` the
//! file operations, `uring` decodes and answers commands, `regs` is the register map, and
//! `shim` the only place with raw bindings to the C shim (`shim.c`).

// The ABI source is shared with user space, where it is a `#![no_std]` crate root; here it is
// a module, so that crate-level attribute is inert. `pub` because its items are `pub`.
#[allow(unused_attributes)]
#[path = "../uapi/src/lib.rs"]
pub mod uapi;

mod card;
mod descriptors;
mod drop_order;
mod engine;
mod file;
mod hw;
mod pci;
mod region;
mod regs;
mod sglist;
mod shim;
mod stream;
mod uring;

kernel::module_pci_driver! {
    type: pci::FgrabDriver,
    name: "fgrab",
    authors: ["fgrab developers"],
    description: "fgrab PCIe frame grabber (zero-copy acquisition over io_uring)",
    license: "GPL",
}
