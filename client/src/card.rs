//! One frame grabber card (`/dev/fgrabN`).

use crate::ring::Ring;
use crate::{Error, Result};
use fgrab_uapi::{ops, CopyOutCmd, DeviceInfo, ABI_VERSION};
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use zerocopy::{FromZeros, IntoBytes};

/// An open card with its command ring.
pub struct Card {
    // Field order: the ring closes before the file it submits to.
    ring: Ring,
    _file: File,
    path: PathBuf,
}

impl Card {
    /// Opens the card at `path` (e.g. `/dev/fgrab0`).
    ///
    /// # Errors
    /// [`Error::Open`] if the node cannot be opened, [`Error::Ring`] if io_uring is unavailable.
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
        let ring = Ring::new(file.as_raw_fd())?;
        Ok(Self {
            ring,
            _file: file,
            path,
        })
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
        let mut info = DeviceInfo::new_zeroed();
        let request = CopyOutCmd {
            addr: info.as_mut_bytes().as_mut_ptr() as u64,
            size: size_of::<DeviceInfo>() as u32,
            ..CopyOutCmd::new_zeroed()
        };
        let completion = self.raw_command(ops::INFO, request.as_bytes())?;
        if completion < 0 {
            return Err(Error::Command {
                command: "INFO",
                errno: -completion,
            });
        }
        if info.abi_version != ABI_VERSION {
            return Err(Error::AbiMismatch {
                driver: info.abi_version,
                library: ABI_VERSION,
            });
        }
        Ok(info)
    }

    /// Sends a command with an arbitrary payload and returns the raw CQE result.
    ///
    /// For tests and tools that probe the driver's validation; applications use the typed
    /// calls. Payloads shorter than 80 bytes are zero-padded.
    pub fn raw_command(&mut self, op: u32, payload: &[u8]) -> Result<i32> {
        let mut bytes = [0u8; 80];
        let len = payload.len().min(bytes.len());
        bytes[..len].copy_from_slice(&payload[..len]);
        self.ring.command(op, bytes)
    }
}
