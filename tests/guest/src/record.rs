//! Recording (issue 15): frames written to files by `fgrab::Recorder` with io_uring writes
//! from the fixed buffer, on tmpfs and on the virtio disk (`/dev/vda`, which the `vm`
//! suite attaches), read back and checked byte by byte against the card's pattern through
//! the index; `O_DIRECT` where aligned, buffered otherwise; a full file system and a full
//! disk give a typed error, a consistent index and a stream that still works.

use crate::harness::{self, TestResult};
use crate::{ensure, pattern, sys};
use fgrab::{Buffer, Card, Error, Geometry, Index, RecordOptions, Recorder};
use std::io::Read;
use std::process::Command;
use std::time::Duration;

const CARD0: &str = "/dev/fgrab0";
/// The virtio disk of the `vm` suite (`xtask/src/test.rs`, `RECORD_DISK_MIB`).
const DISK: &str = "/dev/vda";
/// An unaligned geometry: odd frame size, 13 bytes into the buffer.
const ODD_FRAME: u32 = 65_543;
const ODD_OFFSET: usize = 13;
/// An aligned geometry: frames of 256 KiB from the start of a huge-page buffer.
const ALIGNED_FRAME: u32 = 256 << 10;
const FRAMES_IN_BUFFER: u32 = 8;

fn err(error: impl std::fmt::Display) -> String {
    error.to_string()
}

/// A stream on card 0 of `FRAMES_IN_BUFFER` frames of `frame_bytes`, `offset` into a
/// buffer the library allocates, given back `batch` frames per submission.
fn stream(frame_bytes: u32, offset: usize, batch: u32) -> Result<fgrab::Stream<'static>, String> {
    let geometry = Geometry::new(frame_bytes, FRAMES_IN_BUFFER).offset(offset);
    let buffer =
        Buffer::allocate(offset + (frame_bytes * FRAMES_IN_BUFFER) as usize).map_err(err)?;
    Card::open(CARD0)
        .map_err(err)?
        .attach_with(buffer, geometry, fgrab::Options::default().batch(batch))
        .map_err(|failed| err(failed.error))
}

/// The first `len` bytes of `path` (a file or the disk).
fn read_back(path: &str, len: u64) -> Result<Vec<u8>, String> {
    let mut data = Vec::new();
    std::fs::File::open(path)
        .map_err(|error| format!("{path}: {error}"))?
        .take(len)
        .read_to_end(&mut data)
        .map_err(|error| format!("reading {path}: {error}"))?;
    ensure!(
        data.len() as u64 == len,
        "{path}: {} bytes, the index needs {len}",
        data.len()
    );
    Ok(data)
}

/// Checks an index against the data file: sequences only go up, frames are where the
/// layout of `direct` puts them, and every frame's bytes are the card's pattern. Returns
/// the index and the bytes of the data file it covers.
fn verify(path: &str, index_path: &str, direct: bool) -> Result<(Index, u64), String> {
    let index =
        Index::parse(&std::fs::read(index_path).map_err(|error| format!("{index_path}: {error}"))?)
            .map_err(|error| format!("{index_path}: {error}"))?;
    ensure!(
        (index.flags & fgrab::INDEX_DIRECT != 0) == direct,
        "index flags {:#x}, written with O_DIRECT: {direct}",
        index.flags
    );
    let mut expected_offset = 0u64;
    let mut last = None;
    for entry in &index.entries {
        ensure!(
            last.is_none_or(|last| entry.sequence > last),
            "index: sequence {} after {last:?}",
            entry.sequence
        );
        last = Some(entry.sequence);
        ensure!(
            entry.offset == expected_offset,
            "index: frame {} at {}, expected {expected_offset}",
            entry.sequence,
            entry.offset
        );
        ensure!(
            entry.bytes == index.frame_bytes,
            "index: frame {} of {} bytes",
            entry.sequence,
            entry.bytes
        );
        expected_offset += u64::from(if direct {
            index.frame_bytes
        } else {
            entry.bytes
        });
    }
    let data = read_back(path, expected_offset)?;
    for entry in &index.entries {
        // CAST: inside `data`, whose length was checked above.
        let at = entry.offset as usize;
        pattern::verify(&data[at..at + entry.bytes as usize], entry.sequence, 0)
            .map_err(|mismatch| format!("{path}: frame {} at {at}: {mismatch}", entry.sequence))?;
    }
    Ok((index, expected_offset))
}

/// Records `frames` frames of a stream (given back `batch` frames per submission) to
/// `path` and checks mode, summary, index and every byte; the stream detaches cleanly after.
fn record_and_verify(
    path: &str,
    frame_bytes: u32,
    offset: usize,
    frames: u64,
    direct: bool,
    batch: u32,
) -> TestResult {
    let index_path = format!("/tmp/record-{}.idx", path.replace('/', "_"));
    let mut stream = stream(frame_bytes, offset, batch)?;
    let mut recorder = Recorder::create(
        &stream,
        path,
        RecordOptions::default().frames(frames).index(&index_path),
    )
    .map_err(err)?;
    ensure!(
        recorder.mode().is_direct() == direct,
        "{path}: writing {}, expected O_DIRECT: {direct}",
        recorder.mode()
    );
    let summary = recorder.record(&mut stream, |_| {}).map_err(err)?;
    ensure!(
        !stream.is_running(),
        "the recording left the stream running"
    );
    // Batched: the frames went back to the card a group per command.
    let stats = stream.stats().map_err(err)?;
    ensure!(
        batch == 1 || stats.commands * u64::from(batch) <= stats.frames_completed * 2 + 16,
        "{} commands for {} frames in groups of {batch}",
        stats.commands,
        stats.frames_completed
    );
    stream.detach().map_err(err)?;
    let (index, file_bytes) = verify(path, &index_path, direct)?;
    let _ = std::fs::remove_file(&index_path);
    ensure!(
        index.entries.len() as u64 == frames && summary.progress.frames == frames,
        "{frames} frames asked, index has {}, summary {}",
        index.entries.len(),
        summary.progress.frames
    );
    ensure!(
        summary.file_bytes == file_bytes,
        "summary says {} file bytes, index {file_bytes}",
        summary.file_bytes
    );
    let gaps: u64 = index
        .entries
        .windows(2)
        .map(|pair| pair[1].sequence - pair[0].sequence - 1)
        .sum();
    ensure!(
        gaps == summary.progress.dropped,
        "index gaps {gaps}, summary dropped {}",
        summary.progress.dropped
    );
    harness::info(&format!(
        "record {path}: {frames} frames of {frame_bytes} bytes verified through the index, \
         {gaps} dropped, {:.1} MB/s, {}",
        summary.progress.bytes as f64 / summary.progress.elapsed.as_secs_f64() / 1e6,
        recorder.mode()
    ));
    Ok(())
}

/// Unaligned frames to a file on tmpfs: buffered writes, frames back to back.
pub fn record_tmpfs_buffered() -> TestResult {
    const PATH: &str = "/tmp/record.raw";
    let result = record_and_verify(PATH, ODD_FRAME, ODD_OFFSET, 300, false, 1);
    let _ = std::fs::remove_file(PATH);
    result
}

/// Aligned frames to the raw virtio disk: O_DIRECT from the fixed buffer.
pub fn record_disk_direct() -> TestResult {
    record_and_verify(DISK, ALIGNED_FRAME, 0, 200, true, 1)
}

/// Aligned frames to the raw virtio disk from a batched stream (`Options::batch`: the
/// frames go back to the card four at a time, once all four were written).
pub fn record_disk_batched() -> TestResult {
    record_and_verify(DISK, ALIGNED_FRAME, 0, 200, true, FRAMES_IN_BUFFER / 2)
}

/// Unaligned frames to the raw virtio disk: buffered writes through its page cache.
pub fn record_disk_buffered() -> TestResult {
    record_and_verify(DISK, ODD_FRAME, ODD_OFFSET, 200, false, 1)
}

/// Checks a recording that ended with [`Error::DiskFull`]: the index lists what it says,
/// every listed frame is whole in the file, and the stream still streams.
fn check_full(
    path: &str,
    index_path: &str,
    result: fgrab::Result<fgrab::RecordSummary>,
    direct: bool,
    mut stream: fgrab::Stream<'static>,
) -> Result<u64, String> {
    let written = match result {
        Err(Error::DiskFull {
            frames,
            index_written: true,
            ..
        }) => frames,
        other => return Err(format!("{path}: expected a full device, got {other:?}")),
    };
    ensure!(
        !stream.is_running(),
        "the failed recording left the stream running"
    );
    let (index, _) = verify(path, index_path, direct)?;
    ensure!(
        index.entries.len() as u64 == written,
        "the error says {written} frames, the index lists {}",
        index.entries.len()
    );
    // The stream is undisturbed: it starts again and delivers the card's frames.
    stream.start().map_err(err)?;
    for _ in 0..3 {
        let frame = stream
            .next_frame(Some(Duration::from_secs(5)))
            .map_err(err)?
            .ok_or("no frame after the full device")?;
        pattern::verify(&frame, frame.sequence(), 0)
            .map_err(|mismatch| format!("frame after the full device: {mismatch}"))?;
    }
    stream.stop().map_err(err)?;
    stream.detach().map_err(err)?;
    Ok(written)
}

/// A 1 MiB tmpfs fills: a short write, then ENOSPC; the error is typed, the index (on
/// another file system) lists exactly the frames in the file.
pub fn record_tmpfs_full() -> TestResult {
    tmpfs_full(1)
}

/// The same from a batched stream, whose frames are written four at a time: the write
/// that fills the file system is short, and the whole frames it wrote are in the index
/// all the same (more than the 12 of the three whole writes before it).
pub fn record_tmpfs_full_batched() -> TestResult {
    tmpfs_full(FRAMES_IN_BUFFER / 2)
}

fn tmpfs_full(batch: u32) -> TestResult {
    const MOUNT: &str = "/tmp/record-tiny";
    const PATH: &str = "/tmp/record-tiny/frames.raw";
    const INDEX: &str = "/tmp/record-tiny.idx";
    std::fs::create_dir_all(MOUNT).map_err(err)?;
    sys::mount_with("tmpfs", MOUNT, "tmpfs", 0, "size=1m").map_err(err)?;
    let result = (|| {
        let mut stream = stream(ODD_FRAME, ODD_OFFSET, batch)?;
        let mut recorder = Recorder::create(
            &stream,
            PATH,
            RecordOptions::default().frames(100).index(INDEX),
        )
        .map_err(err)?;
        let result = recorder.record(&mut stream, |_| {});
        let written = check_full(PATH, INDEX, result, false, stream)?;
        // 1 MiB holds 15 whole frames of 65,543 bytes and part of the 16th.
        ensure!(
            (1..=16).contains(&written) && (batch == 1 || written > 12),
            "{written} frames fit into 1 MiB, written {batch} at a time?"
        );
        harness::info(&format!(
            "record to a full 1 MiB tmpfs, {batch} frame(s) per write: DiskFull after \
             {written} frames, index consistent, stream still streaming"
        ));
        Ok(())
    })();
    let _ = std::fs::remove_file(INDEX);
    sys::unmount(MOUNT).map_err(err)?;
    result
}

/// The virtio disk fills under O_DIRECT: the frames that fit are in the index and on the
/// disk, the rest is refused with a typed error.
pub fn record_disk_full() -> TestResult {
    const INDEX: &str = "/tmp/record-disk-full.idx";
    let capacity = std::fs::read_to_string("/sys/block/vda/size")
        .map_err(err)?
        .trim()
        .parse::<u64>()
        .map_err(err)?
        * 512;
    let frame_bytes: u32 = 1 << 20;
    let fit = capacity / u64::from(frame_bytes);
    let mut stream = stream(frame_bytes, 0, 1)?;
    let mut recorder = Recorder::create(
        &stream,
        DISK,
        RecordOptions::default().frames(fit + 20).index(INDEX),
    )
    .map_err(err)?;
    ensure!(recorder.mode().is_direct(), "{DISK}: {}", recorder.mode());
    let result = recorder.record(&mut stream, |_| {});
    let written = check_full(DISK, INDEX, result, true, stream)?;
    let _ = std::fs::remove_file(INDEX);
    ensure!(
        written == fit,
        "{fit} frames of 1 MiB fit the disk, {written} were written"
    );
    harness::info(&format!(
        "record to a full {} MiB disk with O_DIRECT: DiskFull after {written} frames, index \
         consistent, stream still streaming",
        capacity >> 20
    ));
    Ok(())
}

/// `fgrab capture --output`: the mode line, the index, the summary, and a full file system
/// refused with a message.
pub fn record_cli() -> TestResult {
    const INDEX: &str = "/tmp/record-cli.idx";
    let frame_bytes = ALIGNED_FRAME.to_string();
    let output = Command::new("/bin/fgrab")
        .args([
            "capture",
            "--frames",
            "100",
            "--frame-bytes",
            &frame_bytes,
            "--output",
            DISK,
            "--index",
            INDEX,
        ])
        .output()
        .map_err(err)?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(output.status.success(), "fgrab capture: {stderr}");
    ensure!(
        stderr.contains("writing: O_DIRECT"),
        "fgrab capture did not say it wrote with O_DIRECT: {stderr}"
    );
    let (index, _) = verify(DISK, INDEX, true)?;
    let _ = std::fs::remove_file(INDEX);
    ensure!(
        index.entries.len() == 100 && stderr.contains("100 frames ("),
        "{} frames indexed; output: {stderr}",
        index.entries.len()
    );
    // The default output, /dev/null: no sync to make, no index next to it. Frames go back
    // to the card 4 at a time.
    let null = Command::new("/bin/fgrab")
        .args(["capture", "--frames", "20", "--batch", "4"])
        .output()
        .map_err(err)?;
    let null_err = String::from_utf8_lossy(&null.stderr);
    ensure!(
        null.status.success() && null_err.contains("given back 4 at a time"),
        "fgrab capture --batch 4 to /dev/null: {null_err}"
    );
    // A batch above half the queue: refused with the reason, nothing captured.
    let refused = Command::new("/bin/fgrab")
        .args(["capture", "--frames", "20", "--batch", "5"])
        .output()
        .map_err(err)?;
    let refused_err = String::from_utf8_lossy(&refused.stderr);
    ensure!(
        !refused.status.success() && refused_err.contains("at most half"),
        "fgrab capture --batch 5 of 8 frames: {} {refused_err}",
        refused.status
    );
    ensure!(
        !std::path::Path::new("/dev/null.idx").exists(),
        "fgrab capture wrote an index next to /dev/null"
    );
    // Unaligned frames to a tmpfs too small for them.
    const MOUNT: &str = "/tmp/record-cli-tiny";
    std::fs::create_dir_all(MOUNT).map_err(err)?;
    sys::mount_with("tmpfs", MOUNT, "tmpfs", 0, "size=512k").map_err(err)?;
    let full = Command::new("/bin/fgrab")
        .args([
            "capture",
            "--frames",
            "100",
            "--frame-bytes",
            "65543",
            "--output",
        ])
        .arg(format!("{MOUNT}/frames.raw"))
        .args(["--index", "/tmp/record-cli-full.idx"])
        .output()
        .map_err(err);
    let _ = std::fs::remove_file("/tmp/record-cli-full.idx");
    sys::unmount(MOUNT).map_err(err)?;
    let full = full?;
    let full_err = String::from_utf8_lossy(&full.stderr);
    ensure!(
        !full.status.success() && full_err.contains("no space left on the device"),
        "fgrab capture to a full file system: {} {full_err}",
        full.status
    );
    harness::info(&format!(
        "fgrab capture: O_DIRECT to {DISK}, 100 frames verified through --index; a full file \
         system: `{}`",
        full_err.lines().last().unwrap_or("").trim()
    ));
    Ok(())
}

/// `cargo xtask bench`'s recording jobs (on the fast kernel, `xtask/src/bench_record.rs`):
/// the disk filled once, then per frame size the disk's own sequential write rate before
/// and after, the recorder and its `read()` + `write()` peer, all onto the virtio disk.
pub fn bench_record() -> TestResult {
    let runtime = std::env::var("fgrab_bench_runtime").unwrap_or_else(|_| "2".into());
    // The host allocates the sparse image's blocks on first write, far slower than
    // rewriting them: fill the disk once, so that every measured job rewrites.
    let fill = Command::new("/bin/fgrab-bench")
        .args([
            "--name=disk-fill",
            "--ioengine=disk-write",
            "--bs=4M",
            "--iodepth=8",
            &format!("--target={DISK}"),
            "--runtime=600",
        ])
        .output()
        .map_err(|error| format!("fgrab-bench: {error}"))?;
    ensure!(
        fill.status.success(),
        "filling {DISK}: {}",
        String::from_utf8_lossy(&fill.stderr).trim()
    );
    harness::info(&format!(
        "disk filled once before measuring: {}",
        String::from_utf8_lossy(&fill.stdout)
            .lines()
            .nth(1)
            .unwrap_or("")
            .trim()
    ));
    for bs in ["1M", "4M"] {
        // The recorder gets 16 frames given back 4 at a time (`Options::batch`); its peer
        // and the disk alone 8 in flight. `record-card` is the recorder writing to
        // /dev/null: what the card side delivers, the other limit of a recording.
        for (name, engine, target, depth) in [
            ("disk-write", "disk-write", DISK, 8),
            ("record", "record", DISK, 16),
            ("record-card", "record", "/dev/null", 16),
            ("record-copy", "record-copy", DISK, 8),
            ("disk-write-after", "disk-write", DISK, 8),
        ] {
            let batch = if engine == "record" { 4 } else { 0 };
            let output = Command::new("/bin/fgrab-bench")
                .args([
                    format!("--name={name}-{bs}"),
                    format!("--ioengine={engine}"),
                    format!("--bs={bs}"),
                    format!("--iodepth={depth}"),
                    format!("--queue_batch={batch}"),
                    format!("--target={target}"),
                    format!("--runtime={runtime}"),
                    "--output-format=json".into(),
                ])
                .output()
                .map_err(|error| format!("fgrab-bench: {error}"))?;
            let stdout = String::from_utf8_lossy(&output.stdout);
            ensure!(
                output.status.success(),
                "fgrab-bench {name}-{bs}: {} {}",
                stdout.trim(),
                String::from_utf8_lossy(&output.stderr).trim()
            );
            for line in stdout.lines() {
                harness::info(&format!("bench-record-json {line}"));
            }
        }
    }
    Ok(())
}
