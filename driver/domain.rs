// SPDX-License-Identifier: GPL-2.0

//! Layer 3: what streaming into a user's buffer means, independent of how requests arrive:
//! a region of a fixed buffer and its frames ([`region`]), which bytes of the buffer form a
//! frame ([`sglist`]), the card's descriptor lists ([`descriptors`]) and the stream state
//! machine with its teardown order ([`stream`]). Built on layers 1 and 2.

pub(crate) mod camera;
pub(crate) mod descriptors;
pub(crate) mod region;
pub(crate) mod sglist;
pub(crate) mod stream;
