// SPDX-License-Identifier: GPL-2.0

//! Structures the card reads and writes in host memory (`docs/hardware.md` §4): descriptors,
//! submit entries, completion records. They are the card's definition ([`super::definition`],
//! shared with the device model); this module adds what the kernel needs to put them in
//! coherent DMA memory.

use kernel::transmute::{AsBytes, FromBytes};

pub(crate) use super::definition::{
    completion_status as status, CompletionRecord, Descriptor, SubmitEntry, DESCRIPTOR_LIST_ALIGN,
};

// SAFETY: `repr(C)` structures of integers without padding (the definition's zerocopy
// `IntoBytes` derive checks that); every bit pattern is a valid value.
unsafe impl AsBytes for SubmitEntry {}
// SAFETY: as above.
unsafe impl FromBytes for SubmitEntry {}
// SAFETY: as above.
unsafe impl AsBytes for CompletionRecord {}
// SAFETY: as above.
unsafe impl FromBytes for CompletionRecord {}
