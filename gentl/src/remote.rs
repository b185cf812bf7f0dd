//! The remote device behind the device's port: the camera's feature registers and its
//! GenICam XML, and the image geometry the data stream needs.
//!
//! [`RemoteDevice`] is the one interface the producer reaches the camera through;
//! [`CameraRemote`] implements it over the client library's [`fgrab::Features`].
//!
//! Which file writes. The driver lets any file of the card read the feature window, but
//! lets only the file that attached the card's regions (the stream's owner) write it while
//! a region is attached (`EBUSY` for every other file). The device's own file writes while
//! the data stream has no card stream of its own; once it has one (its first
//! `DSStartAcquisition` opens it, `DSClose` ends it), writes go through that stream's file,
//! which owns the card while a region is attached and otherwise writes like any file.
//! [`Attachment`] is the one place that knows which, under one lock, so a write never goes
//! to a file that does not own the card at that moment (`AcquisitionStart` after
//! `DSStartAcquisition` reaches the card through the stream's file; `Width` after
//! `DSStopAcquisition` too, the image format being writable while stopped; after `DSClose`
//! the device's own file writes again).

use crate::abi::*;
use crate::error::{Failure, Result};
use fgrab::{Card, Features, SharedRegions};
use std::sync::{Arc, Mutex, MutexGuard};

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

/// The card stream of a data stream's regions, if it has one: the card's owning file while
/// a region is attached (see the module's documentation). Shared by a device and its data
/// stream's path.
#[derive(Debug, Default)]
pub struct Attachment {
    slot: Mutex<Option<SharedRegions<'static>>>,
}

impl Attachment {
    fn lock(&self) -> MutexGuard<'_, Option<SharedRegions<'static>>> {
        // Every critical section leaves the slot consistent before it can panic.
        self.slot
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The data stream's card stream, made by `make` (on a file of its own) if there is
    /// none yet.
    ///
    /// # Errors
    ///
    /// `make`'s.
    pub fn regions_or(
        &self,
        make: impl FnOnce() -> Result<SharedRegions<'static>>,
    ) -> Result<SharedRegions<'static>> {
        let mut slot = self.lock();
        if let Some(regions) = slot.as_ref() {
            return Ok(regions.clone());
        }
        let regions = make()?;
        *slot = Some(regions.clone());
        Ok(regions)
    }

    /// The data stream's card stream, if it has one.
    pub fn regions(&self) -> Option<SharedRegions<'static>> {
        self.lock().clone()
    }

    /// The data stream closed: ends every region (the card is then free for the device's
    /// file and other programs) and drops the card stream (its file closes with the last
    /// wait that still holds a clone).
    ///
    /// # Errors
    ///
    /// [`fgrab::Error::Unreclaimable`] if a region's end could not be confirmed.
    pub fn end(&self) -> fgrab::Result<()> {
        let regions = self.lock().take();
        match regions {
            Some(regions) => regions.end().map(drop),
            None => Ok(()),
        }
    }

    /// Whether the data stream has a card stream with a region attached (then its file
    /// owns the card).
    pub fn is_attached(&self) -> bool {
        self.lock()
            .as_ref()
            .is_some_and(|regions| !regions.ids().is_empty())
    }

    /// Runs `write` with the features of the file that may write now: the data stream's
    /// whenever it has a card stream (its file owns the card while a region is attached,
    /// and otherwise writes like any file: so no attach or detach can slip between the
    /// choice and the write), else `own`. The flag says whether the chosen file owns the
    /// card (for the error message of a refusal).
    fn write_through<T>(&self, own: &Features, write: impl FnOnce(&Features, bool) -> T) -> T {
        let slot = self.lock();
        match slot.as_ref() {
            Some(regions) => write(regions.features(), !regions.ids().is_empty()),
            None => write(own, false),
        }
    }
}

/// The camera of an open card, over the client library's [`Features`].
#[derive(Debug)]
pub struct CameraRemote {
    /// The device's own file: reads, the XML, and writes while no stream owns the card.
    card: Mutex<Card>,
    attachment: Arc<Attachment>,
}

impl CameraRemote {
    /// The camera of `card`; its data stream attaches regions through `attachment`.
    pub fn new(card: Card, attachment: Arc<Attachment>) -> Self {
        Self {
            card: Mutex::new(card),
            attachment,
        }
    }

    fn card(&self) -> MutexGuard<'_, Card> {
        self.card
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The feature window's offset of port address `address`.
fn window_offset(address: u64, length: usize) -> Result<u32> {
    u32::try_from(address).map_err(|_| {
        Failure::new(
            GC_ERR_INVALID_ADDRESS,
            format!("{length} bytes at {address:#x} are outside the feature window"),
        )
    })
}

/// The GenTL error of a failed port access of `length` bytes at `address`; `owner`: the
/// write went through the stream's file (which owns the card).
pub fn port_failure(error: fgrab::Error, address: u64, length: usize, owner: bool) -> Failure {
    use fgrab::Error;
    match error {
        Error::Busy { .. } if owner => Failure::new(
            GC_ERR_BUSY,
            format!(
                "the camera refused the write of {length} bytes at {address:#x} while the \
                 stream runs: Width, Height and PixelFormat are fixed until acquisition stops"
            ),
        ),
        Error::Busy { .. } => Failure::new(
            GC_ERR_ACCESS_DENIED,
            format!(
                "the write of {length} bytes at {address:#x} was refused: another program \
                 streams from this card and owns the camera's settings until it stops"
            ),
        ),
        Error::Command { errno, .. } if errno == libc::EINVAL => Failure::new(
            GC_ERR_INVALID_ADDRESS,
            format!(
                "{length} bytes at {address:#x}: outside the feature window, or not whole \
                 32-bit registers"
            ),
        ),
        Error::InvalidValue { .. } => Failure::new(
            GC_ERR_INVALID_ADDRESS,
            format!("{length} bytes at {address:#x} are outside the feature window"),
        ),
        Error::NoCamera => Failure::new(GC_ERR_NOT_AVAILABLE, NO_CAMERA),
        other => Failure::from(other),
    }
}

const NO_CAMERA: &str = "the card has no camera features (or its driver predates them): no \
     feature registers, no GenICam XML";

impl RemoteDevice for CameraRemote {
    fn read(&self, address: u64, data: &mut [u8]) -> Result<()> {
        let length = data.len();
        let offset = window_offset(address, length)?;
        // Any file may read.
        self.card()
            .features()
            .read_port(offset, data)
            .map_err(|error| port_failure(error, address, length, false))
    }

    fn write(&self, address: u64, data: &[u8]) -> Result<()> {
        let length = data.len();
        let offset = window_offset(address, length)?;
        let card = self.card();
        self.attachment
            .write_through(card.features(), |features, owner| {
                features
                    .write_port(offset, data)
                    .map_err(|error| port_failure(error, address, length, owner))
            })
    }

    fn xml(&self) -> Result<Vec<u8>> {
        self.card()
            .features()
            .genicam_xml()
            .map_err(|error| match error {
                fgrab::Error::NoCamera => Failure::new(GC_ERR_NOT_AVAILABLE, NO_CAMERA),
                other => Failure::from(other),
            })
    }

    fn image(&self) -> Result<Image> {
        let mut card = self.card();
        let features = card.features();
        let read = || -> fgrab::Result<Image> {
            Ok(Image {
                width: features.width()?,
                height: features.height()?,
                pixel_format: features.pixel_format()?.pfnc(),
                payload_size: features.payload_size()?,
            })
        };
        match read() {
            Ok(image) => Ok(image),
            // A card without a camera: frames of its frame size, one Mono8 line.
            Err(fgrab::Error::NoCamera) => {
                let info = card.info()?;
                Ok(Image {
                    width: info.frame_bytes,
                    height: 1,
                    pixel_format: PFNC_MONO8,
                    payload_size: info.frame_bytes,
                })
            }
            Err(error) => Err(error.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn busy() -> fgrab::Error {
        fgrab::Error::Busy {
            name: "port".into(),
            reason: "test",
        }
    }

    #[test]
    fn port_errors_map_to_gentl_codes() {
        // Through the stream's own file: the image format is fixed while it runs.
        assert_eq!(port_failure(busy(), 0x100, 4, true).code, GC_ERR_BUSY);
        // Through the device's file while another program owns the card.
        let denied = port_failure(busy(), 0x120, 4, false);
        assert_eq!(denied.code, GC_ERR_ACCESS_DENIED);
        assert!(
            denied.message.contains("another program"),
            "{}",
            denied.message
        );
        let einval = fgrab::Error::Command {
            command: "FEATURE_READ",
            errno: libc::EINVAL,
        };
        let invalid = port_failure(einval, 0x2000, 8, false);
        assert_eq!(invalid.code, GC_ERR_INVALID_ADDRESS);
        assert!(invalid.message.contains("0x2000"), "{}", invalid.message);
        assert_eq!(
            port_failure(fgrab::Error::NoCamera, 0, 4, false).code,
            GC_ERR_NOT_AVAILABLE
        );
        let gone = fgrab::Error::Command {
            command: "FEATURE_WRITE",
            errno: libc::ENODEV,
        };
        assert_eq!(port_failure(gone, 0, 4, true).code, GC_ERR_IO);
    }

    #[test]
    fn addresses_above_the_window_are_invalid() {
        assert_eq!(window_offset(0x13c, 4), Ok(0x13c));
        assert_eq!(
            window_offset(1 << 32, 4).unwrap_err().code,
            GC_ERR_INVALID_ADDRESS
        );
    }

    #[test]
    fn an_empty_attachment_routes_writes_to_the_device_file() {
        let attachment = Attachment::default();
        assert!(!attachment.is_attached());
        assert!(attachment.regions().is_none());
        assert!(attachment.end().is_ok());
        assert!(!attachment.is_attached());
    }
}
