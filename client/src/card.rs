//! One frame grabber card (`/dev/fgrabN`).

use crate::features::Features;
use crate::raw;
use crate::uring::Uring;
use crate::{Buffer, Error, Geometry, Options, Result, Stream};
use fgrab_uapi::{DeviceInfo, Stats, ABI_VERSION};
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// A failed [`Card::attach`] (boxed: a card is a few hundred bytes): the error, and the card
/// and buffer given back (`None` only
/// where they could not be: a buffer the driver did not confirm it let go of is leaked, see
/// [`Error::Unreclaimable`]). Converts into [`Error`] for `?`.
#[derive(Debug)]
#[non_exhaustive]
pub struct AttachError<'a> {
    /// What went wrong.
    pub error: Error,
    /// The card, ready for another attach.
    pub card: Option<Card>,
    /// The buffer, no longer registered or attached.
    pub buffer: Option<Buffer<'a>>,
}

impl std::fmt::Display for AttachError<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for AttachError<'_> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
}

impl From<Box<AttachError<'_>>> for Error {
    fn from(failed: Box<AttachError<'_>>) -> Self {
        failed.error
    }
}

/// An open card with its command ring.
pub struct Card {
    // Field order: the ring closes before the file it submits to.
    ring: Uring,
    features: Features,
    _file: File,
    path: PathBuf,
}

impl std::fmt::Debug for Card {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Card")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Card {
    /// Opens the card at `path` (e.g. `/dev/fgrab0`) and checks that its driver speaks this
    /// library's ABI version.
    ///
    /// # Errors
    /// [`Error::Open`] if the node cannot be opened, [`Error::Ring`] if io_uring is unavailable,
    /// [`Error::AbiMismatch`] for a driver of another ABI version, [`Error::Command`] if it
    /// does not answer `INFO`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|source| Error::Open {
                path: path.clone(),
                source,
            })?;
        let ring = Uring::new(file.as_raw_fd(), false)?;
        let mut card = Self {
            ring,
            features: Features::new(file.as_raw_fd()),
            _file: file,
            path,
        };
        card.info()?;
        Ok(card)
    }

    /// The camera features of the card (any file may read them; writes belong to the
    /// stream's owner, or to anyone while no stream is attached).
    pub fn features(&self) -> &Features {
        &self.features
    }

    /// The node this card was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Identity and capabilities of the card.
    ///
    /// # Errors
    /// [`Error::Command`] if the driver rejects the request, [`Error::AbiMismatch`] if it
    /// speaks another ABI version.
    pub fn info(&mut self) -> Result<DeviceInfo> {
        let (res, info) = self
            .ring
            .copy_out(|fd, target| raw::Info::new(fd, target).build())?;
        if res < 0 {
            return Err(Error::command("INFO", res));
        }
        if info.abi_version != ABI_VERSION {
            return Err(Error::AbiMismatch {
                driver: info.abi_version,
                library: ABI_VERSION,
            });
        }
        Ok(info)
    }

    /// The card's stream state and counters.
    ///
    /// # Errors
    /// [`Error::Command`] if the driver rejects the request.
    pub fn stats(&mut self) -> Result<Stats> {
        let (res, stats) = self
            .ring
            .copy_out(|fd, target| raw::StatsCmd::new(fd, target).build())?;
        if res < 0 {
            return Err(Error::command("STATS", res));
        }
        Ok(stats)
    }

    /// Attaches `geometry` of `buffer` and queues every frame; [`Stream::start`] starts the
    /// card. The card is then the stream's: this file owns it until the stream ends. Only
    /// the bytes the frames span are registered with io_uring (and pinned).
    ///
    /// # Errors
    /// An [`AttachError`] that gives the card and the buffer back: [`Error::Geometry`] for a
    /// layout that does not fit; [`Error::Command`] if the driver refuses (`EBUSY`: another
    /// file streams).
    pub fn attach<'a>(
        self,
        buffer: Buffer<'a>,
        geometry: Geometry,
    ) -> std::result::Result<Stream<'a>, Box<AttachError<'a>>> {
        self.attach_with(buffer, geometry, Options::default())
    }

    /// [`Self::attach`] with options (SQPOLL).
    ///
    /// # Errors
    /// As [`Self::attach`].
    pub fn attach_with<'a>(
        self,
        buffer: Buffer<'a>,
        geometry: Geometry,
        options: Options,
    ) -> std::result::Result<Stream<'a>, Box<AttachError<'a>>> {
        let Self {
            ring,
            features,
            _file,
            path,
        } = self;
        drop(ring);
        drop(features);
        Stream::attach(_file, buffer, geometry, options).map_err(|failed| {
            Box::new(AttachError {
                error: failed.error,
                // A card needs a ring again; without one, only the error comes back.
                card: failed.file.and_then(|file| {
                    let ring = Uring::new(file.as_raw_fd(), false).ok()?;
                    Some(Card {
                        ring,
                        features: Features::new(file.as_raw_fd()),
                        _file: file,
                        path,
                    })
                }),
                buffer: failed.buffer,
            })
        })
    }

    /// The card file, its ring closed (for a stream that makes its own).
    pub(crate) fn into_file(self) -> File {
        let Self {
            ring,
            features,
            _file,
            path: _,
        } = self;
        drop(ring);
        drop(features);
        _file
    }

    /// Sends a command with an arbitrary payload and returns the raw CQE result, for tests
    /// and tools that probe the driver's validation (feature `raw-commands`).
    ///
    /// # Safety
    ///
    /// Payloads carry user addresses the driver writes to (`INFO`, `STATS`, `QUEUE`
    /// metadata) or imports (`ATTACH`): each must be memory the caller may have written, or
    /// memory the process cannot access (the driver then answers `-EFAULT`).
    #[cfg(feature = "raw-commands")]
    pub unsafe fn raw_command(&mut self, op: u32, payload: &[u8]) -> Result<i32> {
        let entry = raw::Command::new(self.ring.fd(), op)
            .payload(payload)
            .build();
        self.ring.command(entry)
    }
}

/// Numbers `N` of the cards present (`/dev/fgrabN`), ascending: for APIs that enumerate
/// cards (the legacy C API, the GenTL producer).
pub fn card_numbers() -> Vec<u32> {
    let mut numbers: Vec<u32> = std::fs::read_dir("/dev")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            entry
                .file_name()
                .to_str()?
                .strip_prefix("fgrab")?
                .parse()
                .ok()
        })
        .collect();
    numbers.sort_unstable();
    numbers
}
