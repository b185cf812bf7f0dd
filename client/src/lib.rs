//! Safe access to fgrab frame grabbers.
//!
//! A [`Card`] is one `/dev/fgrabN`. Commands travel as io_uring `URING_CMD` submissions
//! (see `docs/abi.md`); this crate hides the ring and exposes typed calls and errors.

#![deny(missing_docs)]

mod card;
mod error;
mod ring;

pub use card::Card;
pub use error::{Error, Result};
pub use fgrab_uapi as uapi;
