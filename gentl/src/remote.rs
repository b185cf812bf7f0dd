//! The remote device behind the device's port: the camera's feature registers and its
//! GenICam XML, and the image geometry the data stream needs.
//!
//! [`RemoteDevice`] is the one interface the producer reaches the camera through, so that
//! wiring it to the card's camera API (the client library's `read_port`, `write_port`,
//! `genicam_xml` and the geometry features) is a change to one implementation.
//! [`CardRemote`] is the implementation for cards whose camera API this build does not use
//! yet: no feature registers and no XML (`GC_ERR_NOT_AVAILABLE`, saying why), and an image
//! of one line of the card's frame size, so that data streams work without it.

use crate::abi::*;
use crate::error::{fail, Result};
use fgrab::Card;
use std::sync::Mutex;

/// `PixelFormat` PFNC code of 8-bit monochrome.
pub const PFNC_MONO8: u32 = 0x0108_0001;

/// What the camera sends: each frame is one image of this geometry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Image {
    /// `Width`, pixels.
    pub width: u32,
    /// `Height`, lines.
    pub height: u32,
    /// `PixelFormat`, a PFNC code.
    pub pixel_format: u32,
    /// `PayloadSize`: bytes per frame.
    pub payload_size: u32,
}

/// The camera as the remote device port sees it.
pub trait RemoteDevice: Send + Sync + std::fmt::Debug {
    /// Reads feature registers from `address` (bytes from the feature window's start).
    ///
    /// # Errors
    ///
    /// `GC_ERR_INVALID_ADDRESS` outside the window, `GC_ERR_IO` if the card fails.
    fn read(&self, address: u64, data: &mut [u8]) -> Result<()>;

    /// Writes feature registers at `address`.
    ///
    /// # Errors
    ///
    /// As [`Self::read`], and `GC_ERR_ACCESS_DENIED` for read-only registers.
    fn write(&self, address: u64, data: &[u8]) -> Result<()>;

    /// The camera's GenICam XML.
    ///
    /// # Errors
    ///
    /// `GC_ERR_NOT_AVAILABLE` if the card has none, `GC_ERR_IO` if it cannot be read.
    fn xml(&self) -> Result<Vec<u8>>;

    /// The current image geometry (read at `DSStartAcquisition` and for `PAYLOAD_SIZE`).
    ///
    /// # Errors
    ///
    /// `GC_ERR_IO` if the card cannot be asked.
    fn image(&self) -> Result<Image>;
}

/// A card used without its camera API: see the module's documentation.
#[derive(Debug)]
pub struct CardRemote {
    card: Mutex<Card>,
}

impl CardRemote {
    /// The remote device of an open card.
    pub fn new(card: Card) -> Self {
        Self {
            card: Mutex::new(card),
        }
    }
}

const NO_CAMERA_API: &str = "this build of fgrab.cti does not reach the camera's feature \
     registers and GenICam XML yet (the client library's camera API is not wired in)";

impl RemoteDevice for CardRemote {
    fn read(&self, _address: u64, _data: &mut [u8]) -> Result<()> {
        fail(GC_ERR_NOT_AVAILABLE, NO_CAMERA_API)
    }

    fn write(&self, _address: u64, _data: &[u8]) -> Result<()> {
        fail(GC_ERR_NOT_AVAILABLE, NO_CAMERA_API)
    }

    fn xml(&self) -> Result<Vec<u8>> {
        fail(GC_ERR_NOT_AVAILABLE, NO_CAMERA_API)
    }

    fn image(&self) -> Result<Image> {
        let info = self
            .card
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .info()?;
        Ok(Image {
            width: info.frame_bytes,
            height: 1,
            pixel_format: PFNC_MONO8,
            payload_size: info.frame_bytes,
        })
    }
}
