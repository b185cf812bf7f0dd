//! Safe access to fgrab frame grabbers.
//!
//! A [`Card`] is one `/dev/fgrabN`. Commands travel as io_uring `URING_CMD` submissions
//! (see `docs/abi.md`); this crate hides the ring and exposes typed calls and errors.
//!
//! ```no_run
//! use fgrab::{Buffer, Card, Geometry};
//! use std::time::Duration;
//!
//! # fn main() -> fgrab::Result<()> {
//! let card = Card::open("/dev/fgrab0")?;
//! // 16 frames of 1,000,003 bytes, 13 bytes into a buffer the library allocates.
//! let geometry = Geometry::new(1_000_003, 16).offset(13);
//! let mut stream = card.attach(Buffer::allocate(16 * 1_000_003 + 13)?, geometry)?;
//! stream.start()?;
//! for _ in 0..100 {
//!     if let Some(frame) = stream.next_frame(Some(Duration::from_secs(1)))? {
//!         println!("frame {} has {} bytes", frame.sequence(), frame.len());
//!     } // the frame goes back to the card here
//! }
//! stream.stop()?;
//! # Ok(()) }
//! ```

#![deny(missing_docs, missing_debug_implementations)]

mod buffer;
mod card;
mod error;
mod extents;
mod features;
pub mod raw;
mod record;
mod regions;
mod shared;
mod stream;
mod uring;

pub use buffer::Buffer;
pub use card::{card_numbers, AttachError, Card};
pub use error::{Error, Result};
pub use extents::physical_extents;
pub use features::{FeatureValue, Features, PixelFormat};
pub use fgrab_uapi as uapi;

/// The README's Rust example, compiled as a doctest so that it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeExamples;
pub use record::{
    Index, IndexEntry, Progress, RecordOptions, RecordSummary, Recorder, WriteMode, INDEX_DIRECT,
    INDEX_HEADER_BYTES, INDEX_MAGIC, INDEX_RECORD_BYTES, INDEX_VERSION,
};
pub use regions::{RegionFrame, RegionId, Regions, SharedRegions};
#[cfg(feature = "tokio")]
pub use shared::AsyncFrames;
pub use shared::{Canceler, FrameStatus, OwnedFrame, SharedStream};
pub use stream::{Counters, Frame, FrameInfo, Geometry, Options, Stream};
pub use uring::RingCounters;
