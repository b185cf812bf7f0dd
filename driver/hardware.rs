// SPDX-License-Identifier: GPL-2.0

//! Layer 2: the card's hardware interface (`docs/hardware.md`): its registers, the
//! structures it reads and writes in host memory, and the engine that drives its rings.
//! Built on layer 1 only.

// The card's definition is shared with the device model and checked against
// `docs/hardware.md` (`hw/`): a `#![no_std]` crate root there, a module here, so that
// crate-level attribute is inert. Its items are `pub` for the crate it is there; the driver
// uses part of the card's interface (not the model's half, such as FEATURES or the MSI-X
// table layout).
pub(crate) mod camera;
#[allow(unused_attributes, unreachable_pub, dead_code)]
#[path = "../hw/src/lib.rs"]
pub(crate) mod definition;
pub(crate) mod dma;
pub(crate) mod engine;
pub(crate) mod regs;
