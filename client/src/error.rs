//! Errors of the fgrab client library.

use std::path::PathBuf;

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// What went wrong, with the context a user needs to act on it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The device node could not be opened.
    #[error("cannot open {path}: {source}")]
    Open {
        /// The node.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The io_uring instance could not be created or used.
    #[error("io_uring {operation} failed: {source}")]
    Ring {
        /// Which ring operation.
        operation: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The driver rejected a command.
    #[error("{command} rejected by the driver: {}", std::io::Error::from_raw_os_error(*.errno))]
    Command {
        /// Which command.
        command: &'static str,
        /// Positive errno.
        errno: i32,
    },
    /// A frame layout that does not fit the buffer or the card.
    #[error("invalid frame geometry: {reason}")]
    Geometry {
        /// What is wrong.
        reason: String,
    },
    /// Frame memory could not be provided.
    #[error("buffer {what} failed: {reason}")]
    Buffer {
        /// Which operation.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The region ended (card unplugged or reset, ring failure): the stream is over.
    #[error("the stream ended: the driver gave the region back")]
    Ended,
    /// The card went away (unbound, unplugged, or it stopped answering): the stream is
    /// over; frames filled before were handed out.
    #[error("the card is gone")]
    CardGone,
    /// The driver did not confirm that the region ended, so the card might still write the
    /// buffer: it was leaked rather than freed or returned.
    #[error("the buffer could not be reclaimed from the card (leaked, never reused)")]
    Unreclaimable,
    /// A [`crate::Canceler`] ended the wait.
    #[error("the wait was canceled")]
    Canceled,
    /// The stream is stopped and every frame filled before the stop was handed out.
    #[error("the stream is stopped")]
    Stopped,
    /// Other clones of a shared stream or frame handles still exist.
    #[error("the stream is still in use ({holders} other handles)")]
    InUse {
        /// Clones and frame handles besides the caller's.
        holders: usize,
    },
    /// The driver did not finish something in time.
    #[error("timed out waiting for {what}")]
    Timeout {
        /// What was waited for.
        what: &'static str,
    },
    /// A frame was released that the caller does not hold.
    #[error("frame {index} is not held by the application")]
    NotHeld {
        /// The frame index.
        index: u32,
    },
    /// The driver speaks another ABI version than this library.
    #[error("driver ABI version {driver}, library expects {library}")]
    AbiMismatch {
        /// What the driver reported.
        driver: u32,
        /// What this library was built for.
        library: u32,
    },
}

impl Error {
    /// A command the driver answered with `-errno`.
    pub(crate) fn command(command: &'static str, res: i32) -> Self {
        Error::Command {
            command,
            errno: -res,
        }
    }

    /// The errno of a rejected command, if this is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Command { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}
