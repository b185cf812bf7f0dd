// SPDX-License-Identifier: GPL-2.0

//! Layer 2: the card's hardware interface (`docs/hardware.md`): its registers, the
//! structures it reads and writes in host memory, and the engine that drives its rings.
//! Built on layer 1 only.

pub(crate) mod dma;
pub(crate) mod engine;
pub(crate) mod regs;
