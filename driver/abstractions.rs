// SPDX-License-Identifier: GPL-2.0

//! Layer 1: kernel abstractions that Linux 7.3's `kernel` crate lacks.
//!
//! Each module knows nothing of fgrab (it names no type of a higher layer and not the ABI)
//! and is shaped like the upstream proposal for the same thing where one exists, so that it
//! can be swapped for upstream's when that lands. This layer is the only place with
//! `unsafe` code, raw `bindings::` and calls into the C shim (`shim.c`, declared in
//! [`shim`]); every layer above builds on the safe types here.

pub(crate) mod coherent;
pub(crate) mod drop_order;
pub(crate) mod ids;
pub(crate) mod irq;
pub(crate) mod log;
pub(crate) mod misc;
pub(crate) mod page_frame;
pub(crate) mod pci;
pub(crate) mod periodic;
pub(crate) mod sg_table;
mod shim;
pub(crate) mod time;
pub(crate) mod uring_cmd;
