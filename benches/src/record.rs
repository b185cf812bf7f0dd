//! Recording jobs (issue 15): frames from the card to a disk, next to the disk's own rate.
//!
//! - `record`: `fgrab::Recorder`: the card fills the fixed buffer, `IORING_OP_WRITE_FIXED`
//!   on the same ring writes each frame to `--target` (`O_DIRECT` where aligned), the frame
//!   goes back to the card when its write completed. No copy in user space.
//! - `record-copy`: the peer: `read()` copies each frame out of the driver, `write()` (with
//!   `O_DIRECT` from an aligned buffer where the frame size allows) puts it on the target.
//! - `disk-write`: the target's own sequential write rate: `O_DIRECT` io_uring writes of
//!   `bs` bytes from memory, `iodepth` in flight: the limit a recording can reach.
//!
//! Every job writes from offset 0 until its runtime (or frame count) ends or the target is
//! full, then syncs; its time runs from the start to the end of the sync.

use crate::job::Job;
use fgrab::{Card, Geometry, RecordOptions, Recorder};
use io_uring::{opcode, types, IoUring};
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::time::Instant;

/// Which recording job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordEngine {
    /// `fgrab::Recorder`.
    Record,
    /// `read()` + `write()`.
    Copy,
    /// The disk alone.
    DiskWrite,
}

impl RecordEngine {
    /// The engine named `text`, if it is a recording one.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "record" => Self::Record,
            "record-copy" => Self::Copy,
            "disk-write" => Self::DiskWrite,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Record => "record",
            Self::Copy => "record-copy",
            Self::DiskWrite => "disk-write",
        }
    }
}

/// What a recording job measured: one JSON line (`cargo xtask bench` reads it,
/// `xtask/src/bench_record.rs`).
#[derive(Debug, Serialize)]
pub struct RecordFigures {
    name: String,
    engine: &'static str,
    target: String,
    frame_bytes: u32,
    queue_depth: u32,
    frames: u64,
    bytes: u64,
    seconds: f64,
    mb_per_s: f64,
    /// Frames the card dropped (`None` for the disk alone).
    drops: Option<u64>,
    /// `O_DIRECT` or `buffered`, and why.
    mode: String,
}

impl RecordFigures {
    /// One line of JSON.
    pub fn json(&self) -> String {
        serde_json::to_string(self).expect("plain data serializes")
    }

    /// For people.
    pub fn human(&self) -> String {
        format!(
            "{}: {} to {} bs={} iodepth={}\n  {} frames, {} bytes in {:.3} s: {:.1} MB/s, drops {}\n  {}",
            self.name,
            self.engine,
            self.target,
            self.frame_bytes,
            self.queue_depth,
            self.frames,
            self.bytes,
            self.seconds,
            self.mb_per_s,
            self.drops.map_or("n/a".into(), |drops| drops.to_string()),
            self.mode
        )
    }
}

/// Runs a recording job.
pub fn run(job: &Job, engine: RecordEngine) -> Result<RecordFigures, String> {
    let target = job
        .target
        .clone()
        .ok_or("recording jobs need --target (a file or block device)")?;
    let capacity = capacity(&target)?;
    let slots = capacity / u64::from(job.frame_bytes);
    let frames = job.frames.unwrap_or(u64::MAX).min(slots);
    if frames == 0 {
        return Err(format!(
            "{target}: no room for a frame of {} bytes",
            job.frame_bytes
        ));
    }
    let started = Instant::now();
    let (frames, bytes, drops, mode) = match engine {
        RecordEngine::Record => record(job, &target, frames)?,
        RecordEngine::Copy => copy(job, &target, frames)?,
        RecordEngine::DiskWrite => disk_write(job, &target, frames)?,
    };
    let seconds = started.elapsed().as_secs_f64().max(1e-9);
    Ok(RecordFigures {
        name: job.name.clone(),
        engine: engine.name(),
        target,
        frame_bytes: job.frame_bytes,
        queue_depth: job.queue_depth,
        frames,
        bytes,
        seconds: (seconds * 1000.0).round() / 1000.0,
        mb_per_s: (bytes as f64 / seconds / 1e6 * 10.0).round() / 10.0,
        drops,
        mode,
    })
}

/// Bytes the target holds (a block device's size; a file's room, or a character device's
/// such as `/dev/null`, is not known: 64 GiB).
fn capacity(target: &str) -> Result<u64, String> {
    use std::os::unix::fs::FileTypeExt;
    match File::open(target) {
        Ok(mut file)
            if file
                .metadata()
                .is_ok_and(|m| m.file_type().is_block_device()) =>
        {
            file.seek(SeekFrom::End(0))
                .map_err(|error| format!("{target}: {error}"))
        }
        _ => Ok(64 << 30),
    }
}

type Outcome = (u64, u64, Option<u64>, String);

/// `fgrab::Recorder` on the card's stream, batched as the job says (`--queue_batch`:
/// `Options::batch`), on the single-thread ring unless `--defer_taskrun=0` (as
/// `fgrab capture` does). To `/dev/null` it measures the card side alone: what the stream
/// delivers to a recorder whose writes cost nothing.
fn record(job: &Job, target: &str, frames: u64) -> Result<Outcome, String> {
    let geometry = Geometry::new(job.frame_bytes, job.queue_depth).offset(job.offset);
    let buffer =
        fgrab::Buffer::allocate(job.offset + job.frame_bytes as usize * job.queue_depth as usize)
            .map_err(|error| error.to_string())?;
    let mut stream = Card::open(&job.device)
        .map_err(|error| error.to_string())?
        .attach_with(
            buffer,
            geometry,
            fgrab::Options::default()
                .batch(job.queue_batch)
                .single_thread(job.defer_taskrun),
        )
        .map_err(|failed| failed.error.to_string())?;
    let options = RecordOptions::default()
        .frames(frames)
        .duration(job.runtime)
        .write_index(false);
    let mut recorder =
        Recorder::create(&stream, target, options).map_err(|error| error.to_string())?;
    let summary = recorder
        .record(&mut stream, |_| {})
        .map_err(|error| error.to_string())?;
    let stats = stream.stats().map_err(|error| error.to_string())?;
    stream.detach().map_err(|error| error.to_string())?;
    Ok((
        summary.progress.frames,
        summary.progress.bytes,
        Some(stats.frames_dropped_underrun + stats.frames_dropped_other),
        summary.mode.to_string(),
    ))
}

/// `len` bytes of memory aligned to 4 KiB (direct I/O's strictest usual rule).
fn aligned(len: usize) -> (Vec<u8>, usize) {
    let memory = vec![0x5au8; len + 4096];
    let start = memory.as_ptr().align_offset(4096);
    (memory, start)
}

/// Opens the target for writing, `O_DIRECT` if `direct` and the file takes it.
fn open_target(target: &str, direct: bool) -> Result<(File, String), String> {
    let open = |flags: i32| {
        OpenOptions::new()
            .write(true)
            .create(true)
            .custom_flags(flags)
            .open(target)
    };
    if direct {
        if let Ok(file) = open(libc::O_DIRECT) {
            return Ok((file, "O_DIRECT".into()));
        }
    }
    let file = open(0).map_err(|error| format!("{target}: {error}"))?;
    Ok((file, "buffered".into()))
}

/// `read()` from the card, `write()` to the target.
fn copy(job: &Job, target: &str, frames: u64) -> Result<Outcome, String> {
    let bytes = job.frame_bytes as usize;
    let (mut memory, start) = aligned(bytes);
    let frame = &mut memory[start..start + bytes];
    let (output, mode) = open_target(target, bytes.is_multiple_of(4096))?;
    let mut card = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&job.device)
        .map_err(|error| format!("{}: {error}", job.device))?;
    let started = Instant::now();
    let (mut written, mut offset) = (0u64, 0u64);
    while written < frames && started.elapsed() < job.runtime {
        let got = card.read(frame).map_err(|error| format!("read: {error}"))?;
        // O_DIRECT writes whole frames (their sizes are aligned), as the recorder does.
        let len = if mode == "O_DIRECT" { bytes } else { got };
        output
            .write_all_at(&frame[..len], offset)
            .map_err(|error| format!("{target}: {error}"))?;
        offset += len as u64;
        written += 1;
    }
    drop(card);
    output
        .sync_data()
        .map_err(|error| format!("{target}: sync: {error}"))?;
    Ok((written, offset, None, mode))
}

/// The target alone: `O_DIRECT` io_uring writes of `bs` from memory, `iodepth` in flight.
fn disk_write(job: &Job, target: &str, blocks: u64) -> Result<Outcome, String> {
    let bytes = job.frame_bytes as usize;
    let depth = job.queue_depth.max(1) as usize;
    let (memory, start) = aligned(bytes * depth);
    let (output, mode) = open_target(target, bytes.is_multiple_of(4096))?;
    let mut ring = IoUring::new(2 * depth as u32).map_err(|error| format!("io_uring: {error}"))?;
    let started = Instant::now();
    let (mut issued, mut completed, mut in_flight) = (0u64, 0u64, 0usize);
    loop {
        while in_flight < depth && issued < blocks && started.elapsed() < job.runtime {
            let slot = (issued % depth as u64) as usize;
            let entry = opcode::Write::new(
                types::Fd(output.as_raw_fd()),
                memory[start + slot * bytes..].as_ptr(),
                job.frame_bytes,
            )
            .offset(issued * bytes as u64)
            .build()
            .user_data(issued);
            // SAFETY: the write reads `memory`, which lives until every write completed
            // (this loop waits for all of them before returning).
            unsafe { ring.submission().push(&entry) }
                .map_err(|_| "submission queue full".to_string())?;
            issued += 1;
            in_flight += 1;
        }
        if in_flight == 0 {
            break;
        }
        ring.submit_and_wait(1)
            .map_err(|error| format!("io_uring wait: {error}"))?;
        let results: Vec<i32> = ring.completion().map(|cqe| cqe.result()).collect();
        in_flight -= results.len();
        if let Some(&bad) = results.iter().find(|&&res| res != job.frame_bytes as i32) {
            // Drain the others before failing: they read `memory`.
            while in_flight > 0 {
                let _ = ring.submit_and_wait(in_flight);
                in_flight -= ring.completion().count();
            }
            return Err(format!("{target}: write returned {bad}"));
        }
        completed += results.len() as u64;
    }
    output
        .sync_data()
        .map_err(|error| format!("{target}: sync: {error}"))?;
    Ok((completed, completed * bytes as u64, None, mode))
}
