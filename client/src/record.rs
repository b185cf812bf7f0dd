//! Recording: frames written to a file straight from the fixed buffer the card filled,
//! with `IORING_OP_WRITE_FIXED` on the stream's own ring (no copy in user space).
//!
//! Each frame handed out by the stream gets one write (more if the kernel writes it in
//! parts) and goes back to the card only when all of its bytes are in the file: a frame is
//! never refilled while it is still being written. A batched stream's frames
//! (`Options::batch`) are written a group at a time where they are next to each other in
//! the buffer: one write for the frames one `QUEUE_BATCH` gives back together. `O_DIRECT`
//! is used when the frames' addresses and sizes meet the file's direct I/O alignment
//! (`alignment.rs`), buffered writes otherwise; [`Recorder::mode`] says which and why.

mod alignment;
mod index;

pub use index::{
    Index, IndexEntry, INDEX_DIRECT, INDEX_HEADER_BYTES, INDEX_MAGIC, INDEX_RECORD_BYTES,
    INDEX_VERSION,
};

use crate::stream::{FrameInfo, SequenceGaps, Stream};
use crate::uring::written_frame;
use crate::{Error, Result};
use io_uring::{opcode, types};
use std::collections::HashMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What a recording does: how long, where the index goes, whether `O_DIRECT` may be used.
/// `RecordOptions::default()` records until [`Self::frames`] or [`Self::duration`] ends it
/// (at least one of them must be set), index at `FILE.idx`, `O_DIRECT` where aligned.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RecordOptions {
    /// Stop after this many frames were written.
    pub frames: Option<u64>,
    /// Stop taking frames after this long.
    pub duration: Option<Duration>,
    /// Where the index goes (`None`: the data file's name plus `.idx`).
    pub index: Option<PathBuf>,
    /// Whether to write the index file at all (it is kept in [`Recorder::index`] anyway).
    pub write_index: bool,
    /// Use `O_DIRECT` when the geometry allows it (`false`: always buffered).
    pub direct: bool,
    /// How long to wait for a frame before giving up ([`Error::Timeout`]).
    pub frame_timeout: Duration,
    /// How often [`Recorder::record`] calls its progress callback.
    pub progress_interval: Duration,
}

impl Default for RecordOptions {
    fn default() -> Self {
        Self {
            frames: None,
            duration: None,
            index: None,
            write_index: true,
            direct: true,
            frame_timeout: Duration::from_secs(5),
            progress_interval: Duration::from_secs(1),
        }
    }
}

impl RecordOptions {
    /// Stop after `frames` frames ([`Self::frames`]).
    pub fn frames(mut self, frames: u64) -> Self {
        self.frames = Some(frames);
        self
    }

    /// Stop after `duration` ([`Self::duration`]).
    pub fn duration(mut self, duration: Duration) -> Self {
        self.duration = Some(duration);
        self
    }

    /// Where the index goes ([`Self::index`]).
    pub fn index(mut self, path: impl Into<PathBuf>) -> Self {
        self.index = Some(path.into());
        self
    }

    /// Whether to write the index file ([`Self::write_index`]).
    pub fn write_index(mut self, write: bool) -> Self {
        self.write_index = write;
        self
    }

    /// Whether `O_DIRECT` may be used ([`Self::direct`]).
    pub fn direct(mut self, direct: bool) -> Self {
        self.direct = direct;
        self
    }

    /// How long to wait for a frame ([`Self::frame_timeout`]).
    pub fn frame_timeout(mut self, timeout: Duration) -> Self {
        self.frame_timeout = timeout;
        self
    }
}

/// How a recording writes its file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteMode {
    /// `O_DIRECT`: from the frames' memory to the device, bypassing the page cache. Every
    /// frame fills a whole slot of the stream's frame size in the file (the index gives the
    /// bytes the card filled).
    Direct {
        /// Memory alignment the file asks for.
        memory_alignment: u32,
        /// Offset and length alignment the file asks for.
        offset_alignment: u32,
        /// Where the figures came from (`statx STATX_DIOALIGN`, logical block size).
        source: &'static str,
    },
    /// Through the page cache: frames follow one another with the bytes the card filled.
    Buffered {
        /// Why not `O_DIRECT`.
        reason: String,
    },
}

impl WriteMode {
    /// Whether this is [`WriteMode::Direct`].
    pub fn is_direct(&self) -> bool {
        matches!(self, Self::Direct { .. })
    }
}

impl std::fmt::Display for WriteMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Direct {
                memory_alignment,
                offset_alignment,
                source,
            } => write!(
                f,
                "O_DIRECT (memory aligned to {memory_alignment} bytes, offsets and sizes to \
                 {offset_alignment}, from {source})"
            ),
            Self::Buffered { reason } => write!(f, "buffered ({reason})"),
        }
    }
}

/// Where a recording is, for progress displays.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct Progress {
    /// Frames whose bytes all reached the file.
    pub frames: u64,
    /// Their bytes (as the card filled them).
    pub bytes: u64,
    /// Frames the card dropped (gaps in the sequence numbers of frames handed out).
    pub dropped: u64,
    /// Since the recording started.
    pub elapsed: Duration,
}

/// What a finished recording wrote.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct RecordSummary {
    /// Final figures.
    pub progress: Progress,
    /// Bytes of the data file the recording used (slots included for `O_DIRECT`).
    pub file_bytes: u64,
    /// How the data was written.
    pub mode: WriteMode,
    /// Where the index is (`None` if not written: [`RecordOptions::write_index`]).
    pub index_path: Option<PathBuf>,
}

/// One write: frames next to each other in the fixed buffer and in the file, of one group
/// of a batched stream (one frame otherwise). Its frames stay held (away from the card)
/// until every byte is written.
struct InFlight {
    /// The frames, in file order: index in the stream, index entry, bytes written for it.
    frames: Vec<(u32, IndexEntry, usize)>,
    /// The bytes to write: the frames' slots (or filled bytes) in the fixed buffer.
    address: *const u8,
    len: usize,
    written: usize,
    /// Frames whose bytes are all in the file (and in the index), from the first.
    done: usize,
}

impl InFlight {
    /// Whether frame `index`, `len` bytes at `address`, continues this write: the next
    /// frame of the same group (`batch` frames per group), starting where this write's
    /// bytes end, the whole still one write's length (a `u32`).
    fn continued_by(&self, index: u32, address: *const u8, len: usize, batch: u32) -> bool {
        let Some(&(last, _, _)) = self.frames.last() else {
            return false;
        };
        index == last.wrapping_add(1)
            && index / batch == last / batch
            && self.address.wrapping_add(self.len) == address
            && self
                .len
                .checked_add(len)
                .is_some_and(|total| u32::try_from(total).is_ok())
    }
}

/// Records a [`Stream`] into a file: [`Recorder::create`], then [`Recorder::record`].
///
/// ```no_run
/// use fgrab::{Buffer, Card, Geometry, RecordOptions, Recorder};
///
/// # fn main() -> fgrab::Result<()> {
/// let geometry = Geometry::new(4 << 20, 8); // aligned frames: O_DIRECT where the file allows
/// let mut stream = Card::open("/dev/fgrab0")?.attach(Buffer::allocate(32 << 20)?, geometry)?;
/// let mut recorder = Recorder::create(&stream, "frames.raw", RecordOptions::default().frames(1000))?;
/// println!("writing: {}", recorder.mode()); // O_DIRECT (...) or buffered (why)
/// let summary = recorder.record(&mut stream, |p| eprintln!("{} frames", p.frames))?;
/// println!("{} frames, index in {:?}", summary.progress.frames, summary.index_path);
/// # Ok(()) }
/// ```
///
/// Only for the exclusive [`Stream`] (its ring and its fixed buffer 0 carry the writes).
#[derive(Debug)]
pub struct Recorder {
    file: File,
    path: PathBuf,
    index_path: PathBuf,
    mode: WriteMode,
    options: RecordOptions,
    index: Index,
}

impl Recorder {
    /// Opens (creates, truncates) `path` for `stream`'s frames and decides how to write it:
    /// `O_DIRECT` if `options.direct` and every frame's address and the frame size meet the
    /// file's direct I/O alignment, buffered otherwise.
    ///
    /// # Errors
    ///
    /// [`Error::Record`] if the file cannot be opened; [`Error::Geometry`] if neither a
    /// frame count nor a duration ends the recording.
    pub fn create(
        stream: &Stream<'_>,
        path: impl AsRef<Path>,
        options: RecordOptions,
    ) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if options.frames.is_none() && options.duration.is_none() {
            return Err(Error::Geometry {
                reason: "a recording needs a frame count or a duration".into(),
            });
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|source| Error::Record {
                path: path.clone(),
                what: "opening",
                source,
            })?;
        let geometry = stream.geometry();
        let mode = if options.direct {
            // A frame without an address (no buffer: never for an attached stream) counts
            // as misaligned, so that it can only lead to buffered writes.
            let addresses =
                (0..geometry.count()).map(|index| stream.frame_address(index).unwrap_or(1));
            match alignment::probe(&file)
                .and_then(|found| {
                    alignment::check(found, addresses, geometry.frame_bytes()).map(|()| found)
                })
                .and_then(|found| alignment::enable_direct(&file).map(|()| found))
            {
                Ok(found) => WriteMode::Direct {
                    memory_alignment: found.memory,
                    offset_alignment: found.offset,
                    source: found.source,
                },
                Err(reason) => WriteMode::Buffered { reason },
            }
        } else {
            WriteMode::Buffered {
                reason: "direct I/O not requested".into(),
            }
        };
        let index_path = options.index.clone().unwrap_or_else(|| {
            let mut name = path.clone().into_os_string();
            name.push(".idx");
            PathBuf::from(name)
        });
        let index = Index {
            frame_bytes: geometry.frame_bytes(),
            flags: if mode.is_direct() { INDEX_DIRECT } else { 0 },
            entries: Vec::new(),
        };
        Ok(Self {
            file,
            path,
            index_path,
            mode,
            options,
            index,
        })
    }

    /// How the data is written, and why.
    pub fn mode(&self) -> &WriteMode {
        &self.mode
    }

    /// Where the index goes.
    pub fn index_path(&self) -> &Path {
        &self.index_path
    }

    /// The index of what was written so far (also when writing the index file failed).
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// Records: starts the stream if it is stopped, writes each frame as it comes, stops
    /// the stream when the frame count or the duration is reached, waits for every write,
    /// syncs the data and writes the index. `progress` is called about every
    /// [`RecordOptions::progress_interval`].
    ///
    /// On any failure the stream is stopped too, no write is left in flight (unless the
    /// ring itself failed), and the index lists exactly the frames whose bytes all reached
    /// the file.
    ///
    /// # Errors
    ///
    /// [`Error::DiskFull`]; [`Error::Record`] (a write, the sync or the index failed);
    /// [`Error::Timeout`] if no frame came within [`RecordOptions::frame_timeout`]; the
    /// stream's errors ([`Error::CardGone`], [`Error::Ring`], ...).
    pub fn record(
        &mut self,
        stream: &mut Stream<'_>,
        mut progress: impl FnMut(&Progress),
    ) -> Result<RecordSummary> {
        let started = Instant::now();
        self.index.entries.clear();
        if !stream.is_running() {
            stream.start()?;
        }
        let mut run = Run {
            in_flight: HashMap::new(),
            open: None,
            next_offset: 0,
            taken: 0,
            frames: 0,
            bytes: 0,
            dropped: 0,
            gaps: SequenceGaps::default(),
            failure: None,
        };
        let deadline = self.options.duration.map(|duration| started + duration);
        let mut next_progress = started + self.options.progress_interval;
        let mut last_activity = Instant::now();
        loop {
            for completion in stream.take_writes() {
                last_activity = Instant::now();
                self.written(stream, &mut run, completion.user_data, completion.res);
            }
            let frame_limit = self.options.frames;
            let wanted = |run: &Run| {
                run.failure.is_none()
                    && frame_limit.is_none_or(|frames| run.taken < frames)
                    && deadline.is_none_or(|deadline| Instant::now() < deadline)
            };
            while wanted(&run) {
                let Some(info) = stream.pop_ready() else {
                    break;
                };
                last_activity = Instant::now();
                self.write(stream, &mut run, info);
            }
            self.flush(stream, &mut run);
            if wanted(&run) && !stream.is_attached() && stream.ready_frames() == 0 {
                run.failure = Some(stream.end_error());
            }
            if !wanted(&run) && run.in_flight.is_empty() {
                break;
            }
            if Instant::now() >= next_progress {
                progress(&run.progress(started));
                next_progress += self.options.progress_interval;
            }
            if run.in_flight.is_empty() && last_activity.elapsed() > self.options.frame_timeout {
                run.failure = Some(Error::Timeout {
                    what: "a frame to record",
                });
                break;
            }
            if let Err(error) = stream.wait_any(Duration::from_millis(100)) {
                // The ring failed: writes in flight keep their pages (the fixed buffer's
                // pinning), but their frames stay held, never refilled.
                run.failure.get_or_insert(error);
                break;
            }
        }
        if stream.is_running() {
            if let Err(error) = stream.stop() {
                run.failure.get_or_insert(error);
            }
        }
        let elapsed_progress = run.progress(started);
        if run.failure.is_none() {
            match self.file.sync_data() {
                // Special files without synchronization (`/dev/null`, pipes) say so with
                // EINVAL or EROFS (fsync(2)): nothing was buffered to make durable.
                Err(source)
                    if !matches!(source.raw_os_error(), Some(libc::EINVAL | libc::EROFS)) =>
                {
                    run.failure = Some(self.write_error("syncing", source));
                }
                _ => {}
            }
        }
        self.index.entries.sort_by_key(|entry| entry.sequence);
        let index_result = if self.options.write_index {
            self.index.write(&self.index_path)
        } else {
            Ok(())
        };
        let written: u64 = self
            .index
            .entries
            .iter()
            .map(|entry| u64::from(entry.bytes))
            .sum();
        match run.failure {
            Some(Error::DiskFull { path, .. }) => Err(Error::DiskFull {
                path,
                frames: self.index.entries.len() as u64,
                bytes: written,
                index_written: index_result.is_ok(),
            }),
            Some(error) => Err(error),
            None => {
                index_result.map_err(|source| Error::Record {
                    path: self.index_path.clone(),
                    what: "writing the index",
                    source,
                })?;
                progress(&elapsed_progress);
                Ok(RecordSummary {
                    progress: elapsed_progress,
                    file_bytes: run.next_offset,
                    mode: self.mode.clone(),
                    index_path: self.options.write_index.then(|| self.index_path.clone()),
                })
            }
        }
    }

    /// Starts the write of a frame just handed out.
    fn write(&mut self, stream: &mut Stream<'_>, run: &mut Run, info: FrameInfo) {
        run.taken += 1;
        let numbered = info.flags & fgrab_uapi::META_FRAME != 0;
        run.dropped += run.gaps.next(numbered.then_some(info.sequence));
        let Some((address, slot)) = stream.held_slot(info.index) else {
            return;
        };
        // O_DIRECT writes whole slots (their sizes are aligned); buffered writes what was
        // filled, so that the file is the frames back to back.
        let len = if self.mode.is_direct() {
            slot
        } else {
            info.bytes as usize
        };
        let entry = IndexEntry {
            sequence: info.sequence,
            offset: run.next_offset,
            timestamp_ns: info.timestamp_ns,
            bytes: info.bytes,
            flags: info.flags,
        };
        run.next_offset += len as u64;
        if len == 0 {
            run.frames += 1;
            self.index.entries.push(entry);
            let _ = stream.release(info.index);
            return;
        }
        let batch = stream.batch_frames();
        if let Some(open) = run.open.as_mut() {
            if open.continued_by(info.index, address, len, batch) {
                open.frames.push((info.index, entry, len));
                open.len += len;
                return;
            }
        }
        self.flush(stream, run);
        run.open = Some(InFlight {
            frames: vec![(info.index, entry, len)],
            address,
            len,
            written: 0,
            done: 0,
        });
    }

    /// Starts the write gathered so far, if any.
    fn flush(&mut self, stream: &mut Stream<'_>, run: &mut Run) {
        let Some(write) = run.open.take() else {
            return;
        };
        let first = write.frames[0].0;
        run.in_flight.insert(first, write);
        self.submit(stream, run, first);
    }

    /// Writes what is left of the write of frames from `first`.
    fn submit(&mut self, stream: &mut Stream<'_>, run: &mut Run, first: u32) {
        let Some(pending) = run.in_flight.get(&first) else {
            return;
        };
        let left = pending.len - pending.written;
        let offset = pending.frames[0].1.offset + pending.written as u64;
        // CAST: at most u32::MAX bytes (`InFlight::continued_by`).
        let entry = opcode::WriteFixed::new(
            types::Fd(self.file.as_raw_fd()),
            pending.address.wrapping_add(pending.written),
            left as u32,
            0,
        )
        .offset(offset)
        .build();
        if let Err(error) = stream.push_write(first, entry) {
            if let Some(pending) = run.in_flight.remove(&first) {
                for (index, _, _) in pending.frames {
                    let _ = stream.release(index);
                }
            }
            run.failure.get_or_insert(error);
        }
    }

    /// Books the completion of a write of the frames from `user_data`'s.
    fn written(&mut self, stream: &mut Stream<'_>, run: &mut Run, user_data: u64, res: i32) {
        let Some(first) = written_frame(user_data) else {
            return;
        };
        let Some(pending) = run.in_flight.get_mut(&first) else {
            return;
        };
        match res {
            // CAST: positive.
            written if written > 0 => {
                pending.written += written as usize;
                // Frames whose bytes are now all in the file go to the index, so that it
                // lists them even if the rest of the write fails.
                let mut end: usize = pending.frames[..pending.done]
                    .iter()
                    .map(|&(_, _, len)| len)
                    .sum();
                for &(_, entry, len) in &pending.frames[pending.done..] {
                    if end + len > pending.written {
                        break;
                    }
                    end += len;
                    pending.done += 1;
                    run.frames += 1;
                    run.bytes += u64::from(entry.bytes);
                    self.index.entries.push(entry);
                }
                if pending.written < pending.len && run.failure.is_none() {
                    // A short write: the rest goes in another.
                    self.submit(stream, run, first);
                    return;
                }
            }
            0 => {
                run.failure.get_or_insert(self.disk_full());
            }
            error if -error == libc::EINTR || -error == libc::EAGAIN => {
                self.submit(stream, run, first);
                return;
            }
            error if -error == libc::ENOSPC || -error == libc::EDQUOT => {
                run.failure.get_or_insert(self.disk_full());
            }
            error => {
                let source = std::io::Error::from_raw_os_error(-error);
                run.failure
                    .get_or_insert(self.write_error("writing a frame", source));
            }
        }
        // All of the frames' writes are over: only now may the card have them again.
        if let Some(pending) = run.in_flight.remove(&first) {
            for (index, _, _) in pending.frames {
                let _ = stream.release(index);
            }
        }
    }

    fn disk_full(&self) -> Error {
        Error::DiskFull {
            path: self.path.clone(),
            frames: 0,
            bytes: 0,
            index_written: false,
        }
    }

    fn write_error(&self, what: &'static str, source: std::io::Error) -> Error {
        if source.raw_os_error() == Some(libc::ENOSPC) {
            return self.disk_full();
        }
        Error::Record {
            path: self.path.clone(),
            what,
            source,
        }
    }
}

/// The state of one [`Recorder::record`].
struct Run {
    /// Writes in flight, by their first frame's index.
    in_flight: HashMap<u32, InFlight>,
    /// The write being gathered from the frames handed out by one wait, not yet started.
    open: Option<InFlight>,
    /// File offset of the next frame.
    next_offset: u64,
    /// Frames taken from the stream.
    taken: u64,
    /// Frames whose bytes all reached the file.
    frames: u64,
    /// Bytes of frames written whole.
    bytes: u64,
    dropped: u64,
    gaps: SequenceGaps,
    /// The first failure: no frame is taken after it.
    failure: Option<Error>,
}

impl Run {
    fn progress(&self, started: Instant) -> Progress {
        Progress {
            frames: self.frames,
            bytes: self.bytes,
            dropped: self.dropped,
            elapsed: started.elapsed(),
        }
    }
}
