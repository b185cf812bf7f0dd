//! Errors of the fgrab client library.

use std::path::PathBuf;

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// What went wrong, with the context a user needs to act on it.
///
/// New variants may be added: a `match` needs a `_` arm.
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
    /// A stream made for one thread ([`crate::Options::single_thread`]) was used from
    /// another: its ring accepts submissions and waits from the thread that attached it only.
    #[error("a single-thread stream was used from another thread than the one that attached it")]
    WrongThread,
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
    /// Registering the frame buffer with io_uring would take the user's locked memory past
    /// the process's `RLIMIT_MEMLOCK` (io_uring refused it with `ENOMEM`).
    ///
    /// io_uring charges a registered buffer, in whole pages, to one account per user
    /// shared by all of the user's processes; processes with `CAP_IPC_LOCK` are not
    /// charged. The message names both figures, the shortfall and how to raise the limit.
    #[error("{}", memlock_message(*.needed, *.limit))]
    MemlockLimit {
        /// Bytes of locked memory the registration needed, at least: the buffer's pages
        /// plus what the user's processes had registered already (as far as this process
        /// can see: their `VmPin`).
        needed: u64,
        /// The process's `RLIMIT_MEMLOCK` (soft limit) in bytes.
        limit: u64,
    },
    /// The card has no camera features (or its driver predates them, or refused the card's
    /// description at probe).
    #[error("the card has no camera features")]
    NoCamera,
    /// The feature cannot be written now: the stream runs and the feature sets the image
    /// format, or another file owns the stream.
    #[error("feature {name} is busy: {reason}")]
    Busy {
        /// The feature (or `port` for a raw write).
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// No feature has this name.
    #[error("no feature named {name:?}")]
    NoSuchFeature {
        /// The name asked for.
        name: String,
    },
    /// A value the feature does not take (wrong type, out of range, not a step of its
    /// increment, not one of its entries), or a read-only feature.
    #[error("feature {name}: {reason}")]
    InvalidValue {
        /// The feature.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A recording's output or its index could not be opened, written or synced
    /// ([`crate::Recorder`]). The stream was stopped; frames written before are in the index.
    #[error("{}: {what}: {source}", path.display())]
    Record {
        /// The data file or the index.
        path: PathBuf,
        /// Which step.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The device holding a recording is full (`ENOSPC`, or a write that wrote nothing):
    /// the stream was stopped, every write in flight completed, and the index lists
    /// exactly the frames whose bytes all reached the file.
    #[error(
        "{}: no space left on the device after {frames} frames ({bytes} bytes); {}",
        path.display(),
        if *index_written { "the index lists them" } else { "the index could not be written either" }
    )]
    DiskFull {
        /// The data file.
        path: PathBuf,
        /// Frames written whole.
        frames: u64,
        /// Their bytes.
        bytes: u64,
        /// Whether the index file was written (it may be on the same full device; it is
        /// also in [`crate::Recorder::index`]).
        index_written: bool,
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

/// Bytes in binary units, for messages: `8388608 bytes (8.0 MiB)`.
fn bytes(count: u64) -> String {
    // CAST: a figure for people, precision loss irrelevant.
    format!(
        "{count} bytes ({:.1} MiB)",
        count as f64 / f64::from(1u32 << 20)
    )
}

/// The text of [`Error::MemlockLimit`].
fn memlock_message(needed: u64, limit: u64) -> String {
    let short = needed.saturating_sub(limit);
    let kib = needed.div_ceil(1024);
    format!(
        "registering the frame buffer takes the user's locked memory to at least {}, over \
         RLIMIT_MEMLOCK of {}: short by at least {}. io_uring charges registered buffers, \
         in whole pages, to one account shared by all of the user's processes (this buffer \
         plus what they had pinned already). Raise the limit to at least {kib} KiB plus a \
         margin: `ulimit -l {kib}` in the shell that starts the program (up to the hard \
         limit), `@fgrab - memlock <KiB>` in /etc/security/limits.d/ for logins of the \
         fgrab group (packaging/limits.d/90-fgrab-memlock.conf), or `LimitMEMLOCK=` in a \
         systemd service (packaging/systemd/fgrab-memlock.conf)",
        bytes(needed),
        bytes(limit),
        bytes(short),
    )
}

/// Locked-memory accounting as `/proc` shows it, for [`memlock_limit`].
pub(crate) mod memlock {
    /// `CAP_IPC_LOCK`: io_uring does not charge locked memory of processes that have it.
    const CAP_IPC_LOCK: u32 = 14;

    /// A `/proc/PID/status` field's first word (`VmPin:\t  12 kB` gives `12`).
    pub(super) fn field<'a>(status: &'a str, name: &str) -> Option<&'a str> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))?
            .split_whitespace()
            .next()
    }

    /// `VmPin` in bytes: memory pinned by the process (io_uring's registered buffers
    /// among it), or `None` (kernel threads have none).
    pub(super) fn pinned(status: &str) -> Option<u64> {
        field(status, "VmPin")?
            .parse::<u64>()
            .ok()?
            .checked_mul(1024)
    }

    /// The real uid: io_uring charges the account of the user the real uid names.
    pub(super) fn real_uid(status: &str) -> Option<u32> {
        field(status, "Uid")?.parse().ok()
    }

    /// Whether the effective capabilities include `CAP_IPC_LOCK`.
    pub(super) fn ipc_lock(status: &str) -> bool {
        field(status, "CapEff")
            .and_then(|mask| u64::from_str_radix(mask, 16).ok())
            .is_some_and(|mask| mask & (1 << CAP_IPC_LOCK) != 0)
    }

    /// Whether `uid_map` is the initial user namespace's (the identity over all uids):
    /// io_uring honours `CAP_IPC_LOCK` only there.
    pub(super) fn initial_namespace(uid_map: &str) -> bool {
        uid_map.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"]
    }

    /// Bytes the processes of `uid` have pinned, as far as this process can see them
    /// (`hidepid` hides others): a lower bound of the user's locked-memory account.
    pub(super) fn pinned_by_user(uid: u32) -> u64 {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return 0;
        };
        entries
            .filter_map(|entry| {
                let path = entry.ok()?.path();
                path.file_name()?.to_str()?.parse::<u32>().ok()?;
                let status = std::fs::read_to_string(path.join("status")).ok()?;
                (real_uid(&status)? == uid).then(|| pinned(&status))?
            })
            .sum()
    }
}

/// The error for an io_uring buffer registration of `buffer` bytes (whole pages) refused
/// with `ENOMEM` under an `RLIMIT_MEMLOCK` of `limit` bytes: [`Error::MemlockLimit`] if
/// the limit explains it (no `CAP_IPC_LOCK`, and the buffer plus what the user's processes
/// have pinned already exceeds the limit), `None` if not (a real shortage of memory).
pub(crate) fn memlock_limit(buffer: u64, limit: u64) -> Option<Error> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let namespace = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    if memlock::ipc_lock(&status) && memlock::initial_namespace(&namespace) {
        return None;
    }
    // The refused registration was taken back before the error came: what is pinned
    // now belongs to earlier registrations (this process's other rings included).
    let already = match memlock::real_uid(&status) {
        Some(uid) => memlock::pinned_by_user(uid),
        None => memlock::pinned(&status).unwrap_or(0),
    };
    let needed = buffer.saturating_add(already);
    (needed > limit).then_some(Error::MemlockLimit { needed, limit })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tcat\nUid:\t1000\t1000\t1000\t1000\nVmLck:\t       0 kB\n\
        VmPin:\t    6144 kB\nCapEff:\t0000000000004000\n";

    #[test]
    fn status_fields() {
        assert_eq!(memlock::pinned(STATUS), Some(6144 * 1024));
        assert_eq!(memlock::real_uid(STATUS), Some(1000));
        assert!(memlock::ipc_lock(STATUS));
        assert!(!memlock::ipc_lock(&STATUS.replace("4000", "3fff")));
        assert_eq!(memlock::pinned("Name:\tkthreadd\n"), None);
    }

    #[test]
    fn user_namespaces() {
        assert!(memlock::initial_namespace(
            "         0          0 4294967295\n"
        ));
        assert!(!memlock::initial_namespace(
            "         0       1000          1\n"
        ));
    }

    #[test]
    fn memlock_message_names_limit_and_shortfall() {
        let text = Error::MemlockLimit {
            needed: 16 << 20,
            limit: 8 << 20,
        }
        .to_string();
        for part in [
            "to at least 16777216 bytes (16.0 MiB)",
            "RLIMIT_MEMLOCK of 8388608 bytes (8.0 MiB)",
            "short by at least 8388608 bytes",
            "ulimit -l 16384",
            "90-fgrab-memlock.conf",
            "LimitMEMLOCK=",
        ] {
            assert!(text.contains(part), "`{part}` missing from: {text}");
        }
    }
}
