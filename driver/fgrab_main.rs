// SPDX-License-Identifier: GPL-2.0

//! fgrab: driver for the fgrab PCIe FPGA frame grabber.
//!
//! One misc character device per card (`/dev/fgrabN`). User space talks to it through
//! io_uring `URING_CMD` submissions (`docs/abi.md`); the hardware interface is described in
//! `docs/hardware.md`.
//!
//! The modules are layers, each built only on those below it (`docs/design.md`, "Layers";
//! `cargo xtask layers` prints the graph and checks it):
//!
//! 1. [`abstractions`]: kernel abstractions 7.3 lacks; the only `unsafe` code and the only
//!    caller of the C shim. Nothing in it knows fgrab.
//! 2. [`hardware`]: registers, DMA structures, the engine.
//! 3. [`domain`]: regions, frame slicing, descriptor lists, the stream state machine.
//! 4. [`card`]: one card's state, its interrupts and watchdog.
//! 5. [`file`], [`commands`], [`binding`]: file operations, command decoding, PCI probe.
//!
//! [`uapi`] is the ABI shared with user space, usable from every layer.

// The ABI source is shared with user space, where it is a `#![no_std]` crate root; here it is
// a module, so that crate-level attribute is inert. `pub` because its items are `pub`.
#[allow(unused_attributes)]
#[path = "../uapi/src/lib.rs"]
pub mod uapi;

mod abstractions;
mod binding;
mod card;
mod commands;
mod domain;
mod file;
mod hardware;

kernel::module_pci_driver! {
    type: binding::FgrabDriver,
    name: "fgrab",
    authors: ["fgrab developers"],
    description: "fgrab PCIe frame grabber (zero-copy acquisition over io_uring)",
    license: "GPL",
}
