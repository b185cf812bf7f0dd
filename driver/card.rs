// SPDX-License-Identifier: GPL-2.0

//! Per-card state shared between the PCI binding and open files.
//!
//! A [`Card`] is reference counted: the binding holds one reference, every open file
//! another, so a file may outlive an unbind (it then finds the hardware gone).

use crate::{shim::CardIndex, uapi::DeviceInfo};

/// One frame grabber.
pub(crate) struct Card {
    index: CardIndex,
    info: DeviceInfo,
}

impl Card {
    /// A card numbered `index` whose identity was read at probe time.
    pub(crate) fn new(index: CardIndex, info: DeviceInfo) -> Self {
        Self { index, info }
    }

    /// The N of `/dev/fgrabN`.
    pub(crate) fn index(&self) -> u32 {
        self.index.get()
    }

    /// Identity and capabilities, as answered to `INFO`.
    pub(crate) fn info(&self) -> &DeviceInfo {
        &self.info
    }
}
