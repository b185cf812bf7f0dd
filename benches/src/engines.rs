//! The frame paths under test. Each runs one job on one card and returns what it saw.
//!
//! The io_uring code builds its commands with `fgrab::raw` but drives its own ring (not the
//! `fgrab` client's `Stream`): the benchmark controls batching, SQPOLL and every system call
//! it makes, so it can count them.

use crate::job::{Backing, Engine, Job};
use crate::measure::{Cpu, Latencies};
use fgrab::{physical_extents, raw};
use fgrab_uapi::{ioctls, DeviceInfo, FrameMeta, Stats, META_FRAME};
use io_uring::{cqueue, squeue, IoUring};
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};
use zerocopy::FromZeros;

/// What one job measured.
#[derive(Default)]
pub struct Outcome {
    /// Frames delivered to user space.
    pub frames: u64,
    /// Their bytes.
    pub bytes: u64,
    /// From `START` to the last frame.
    pub elapsed: Duration,
    /// Frames the card dropped because none was queued.
    pub drops_underrun: u64,
    /// Frames the card dropped for other reasons (its own DMA engine busy).
    pub drops_other: u64,
    /// Frame-done (card clock) to user space seeing the frame.
    pub latencies: Latencies,
    /// CPU time during the stream.
    pub cpu: Cpu,
    /// System calls made during the stream.
    pub syscalls: u64,
    /// Descriptors per frame the driver built.
    pub descriptors_per_frame: Option<f64>,
    /// Physically contiguous extents per frame (split at the card's maximum segment).
    pub extents_per_frame: Option<f64>,
    /// Frame interrupts the driver handled per frame delivered.
    pub irqs_per_frame: Option<f64>,
}

const ATTACH: u64 = u64::MAX - 1;
const CONTROL: u64 = u64::MAX - 2;

type Uring = IoUring<squeue::Entry128, cqueue::Entry32>;

/// A ring for one job. Without SQPOLL, task work is deferred to the waiting task
/// (`DEFER_TASKRUN`, which needs `SINGLE_ISSUER`) unless the job turns it off: with the
/// driver's lazy frame completions, a wait for N frames then wakes once, not N times.
fn ring(sqpoll: bool, defer_taskrun: bool) -> Result<Uring, String> {
    let mut builder = IoUring::<squeue::Entry128, cqueue::Entry32>::builder();
    if sqpoll {
        builder.setup_sqpoll(2000);
    } else if defer_taskrun {
        builder.setup_single_issuer().setup_defer_taskrun();
    }
    builder
        .build(256)
        .map_err(|error| format!("io_uring setup: {error}"))
}

/// Queues an entry built with `fgrab::raw`.
fn push(ring: &mut Uring, entry: squeue::Entry128) -> Result<(), String> {
    loop {
        // SAFETY: the entry carries copied bytes; memory its payload points to (metadata,
        // copy-out targets) outlives the command, as every caller waits for completions.
        if unsafe { ring.submission().push(&entry) }.is_ok() {
            return Ok(());
        }
        ring.submit().map_err(|error| format!("submit: {error}"))?;
    }
}

/// Sends a command and waits for its completion; other completions are dropped.
fn call(ring: &mut Uring, entry: squeue::Entry128) -> Result<i32, String> {
    push(ring, entry.user_data(CONTROL))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        ring.submit_and_wait(1)
            .map_err(|error| format!("wait: {error}"))?;
        if let Some(res) = ring
            .completion()
            .find(|cqe| cqe.user_data() == CONTROL)
            .map(|cqe| cqe.result())
        {
            return Ok(res);
        }
        if Instant::now() > deadline {
            return Err("no completion for a command within 10 s".into());
        }
    }
}

/// `INFO` through `ring`.
fn device_info(ring: &mut Uring, fd: i32) -> Result<DeviceInfo, String> {
    let mut info = DeviceInfo::new_zeroed();
    let res = call(ring, raw::Info::new(fd, &mut info).build())?;
    if res < 0 {
        return Err(format!("INFO: errno {}", -res));
    }
    Ok(info)
}

/// `STATS` through `ring`.
fn read_stats(ring: &mut Uring, fd: i32) -> Result<Stats, String> {
    let mut stats = Stats::new_zeroed();
    let res = call(ring, raw::StatsCmd::new(fd, &mut stats).build())?;
    if res < 0 {
        return Err(format!("STATS: errno {}", -res));
    }
    Ok(stats)
}

/// The card's identity and limits.
pub fn info(device: &str) -> Result<DeviceInfo, String> {
    let file = open(device)?;
    let mut ring = ring(false, false)?;
    device_info(&mut ring, file.as_raw_fd())
}

fn open(device: &str) -> Result<File, String> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(device)
        .map_err(|error| format!("{device}: {error}"))
}

/// An anonymous mapping for the frames, populated before registration.
struct Buffer {
    ptr: *mut u8,
    len: usize,
}

impl Buffer {
    fn new(len: usize, backing: Backing) -> Result<Self, String> {
        let len = len.next_multiple_of(2 << 20);
        // SAFETY: anonymous mapping at an address of the kernel's choice.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(format!("mmap {len}: {}", std::io::Error::last_os_error()));
        }
        let thp = "/sys/kernel/mm/transparent_hugepage/enabled";
        let saved = std::fs::read_to_string(thp).unwrap_or_default();
        let mode = match backing {
            Backing::Pages4k => "never",
            Backing::Huge => "always",
        };
        let _ = std::fs::write(thp, mode);
        if backing == Backing::Huge {
            // SAFETY: advice on the mapping just created.
            unsafe { libc::madvise(ptr, len, libc::MADV_HUGEPAGE) };
        }
        for page in 0..len / 4096 {
            // SAFETY: inside the writable mapping.
            unsafe { ptr.cast::<u8>().add(page * 4096).write_volatile(0) };
        }
        if let Some(mode) = saved.split_whitespace().find(|word| word.starts_with('[')) {
            let _ = std::fs::write(thp, mode.trim_matches(['[', ']']));
        }
        Ok(Self {
            ptr: ptr.cast(),
            len,
        })
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        // SAFETY: unmapping the mapping created in `new`.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// `CLOCK_MONOTONIC` now, the clock of frame timestamps.
fn monotonic_ns() -> u64 {
    // SAFETY: clock_gettime fills the zeroed timespec it is given.
    let ts = unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
        ts
    };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Runs `job` on its card.
pub fn run(job: &Job, info: &DeviceInfo) -> Result<Outcome, String> {
    match job.engine {
        Engine::Uring | Engine::UringSqpoll | Engine::Ioctl => zero_copy(job, info),
        Engine::Read => copy(job),
    }
}

fn done(job: &Job, frames: u64, started: Instant) -> bool {
    match job.frames {
        Some(limit) => frames >= limit,
        None => started.elapsed() >= job.runtime,
    }
}

/// The io_uring and ioctl engines: a fixed buffer attached once, frames recycled.
fn zero_copy(job: &Job, info: &DeviceInfo) -> Result<Outcome, String> {
    let sqpoll = job.engine == Engine::UringSqpoll;
    let frame_bytes = job.frame_bytes as usize;
    let count = job.queue_depth;
    let buffer = Buffer::new(job.offset + frame_bytes * count as usize, job.backing)?;
    let file = open(&job.device)?;
    let fd = file.as_raw_fd();
    let mut ring = ring(sqpoll, job.defer_taskrun)?;
    let iovec = libc::iovec {
        iov_base: buffer.ptr.cast(),
        iov_len: buffer.len,
    };
    // SAFETY: `buffer` outlives the ring's use of it: the region is detached and the ring
    // dropped before this function returns.
    unsafe { ring.submitter().register_buffers(&[iovec]) }
        .map_err(|error| format!("register_buffers: {error}"))?;
    let base = buffer.ptr as u64 + job.offset as u64;
    let attach = raw::Attach::new(
        fd,
        0,
        base,
        frame_bytes as u64 * u64::from(count),
        job.frame_bytes,
        count,
    );
    push(&mut ring, attach.build().user_data(ATTACH))?;
    ring.submit().map_err(|error| format!("submit: {error}"))?;
    let stats = read_stats(&mut ring, fd)?;
    if stats.frame_count != count {
        return Err(format!("attach failed: {stats:?}"));
    }
    let mut outcome = Outcome {
        descriptors_per_frame: Some(f64::from(stats.descriptors_total) / f64::from(count)),
        ..Outcome::default()
    };
    let extents: Option<u64> = (0..count as usize)
        .map(|i| {
            physical_extents(
                base as usize + i * frame_bytes,
                frame_bytes,
                u64::from(info.max_segment_bytes),
            )
        })
        .sum();
    outcome.extents_per_frame = extents.map(|e| e as f64 / f64::from(count));

    let mut metas = vec![FrameMeta::new_zeroed(); count as usize];
    let queue = |ring: &mut Uring, metas: &mut [FrameMeta], index: u32| -> Result<(), String> {
        let entry = raw::Queue::new(fd, index)
            .meta(&mut metas[index as usize])
            .build()
            .user_data(u64::from(index));
        push(ring, entry)
    };
    let qbuf = |index: u32| -> Result<(), String> {
        // SAFETY: QBUF reads the `u32` the pointer points to.
        let res = unsafe { libc::ioctl(fd, ioctls::QBUF as _, &index as *const u32) };
        if res < 0 {
            return Err(format!("QBUF: {}", std::io::Error::last_os_error()));
        }
        Ok(())
    };
    for index in 0..count {
        match job.engine {
            Engine::Ioctl => qbuf(index)?,
            _ => queue(&mut ring, &mut metas, index)?,
        }
    }
    let cpu = Cpu::now(info.card_index);
    let res = call(&mut ring, raw::Start::new(fd).build())?;
    if res < 0 {
        return Err(format!("START: errno {}", -res));
    }
    let started = Instant::now();
    let seen = |outcome: &mut Outcome, meta: &FrameMeta, bytes: u64| {
        outcome.frames += 1;
        outcome.bytes += bytes;
        if meta.flags & META_FRAME != 0 {
            outcome
                .latencies
                .push(monotonic_ns().saturating_sub(meta.timestamp_ns));
        }
    };
    match job.engine {
        Engine::Ioctl => {
            while !done(job, outcome.frames, started) {
                let mut meta = FrameMeta::new_zeroed();
                // SAFETY: DQBUF writes a `FrameMeta` where the pointer points.
                let res =
                    unsafe { libc::ioctl(fd, ioctls::DQBUF as _, &mut meta as *mut FrameMeta) };
                if res < 0 {
                    return Err(format!("DQBUF: {}", std::io::Error::last_os_error()));
                }
                seen(&mut outcome, &meta, u64::from(meta.bytes));
                qbuf(meta.frame)?;
                outcome.syscalls += 2;
            }
        }
        _ => {
            while !done(job, outcome.frames, started) {
                if sqpoll {
                    // The kernel thread picks up submissions; only a sleeping one needs a
                    // system call to wake it. Completions are polled from the ring.
                    if ring.submission().need_wakeup() {
                        ring.submit().map_err(|error| format!("submit: {error}"))?;
                        outcome.syscalls += 1;
                    }
                    let wait = Instant::now();
                    while ring.completion().len() < job.batch as usize {
                        std::hint::spin_loop();
                        ring.completion().sync();
                        if wait.elapsed() > Duration::from_millis(100) {
                            break;
                        }
                    }
                } else {
                    ring.submit_and_wait(job.batch as usize)
                        .map_err(|error| format!("submit_and_wait: {error}"))?;
                    outcome.syscalls += 1;
                }
                let completions: Vec<(u64, i32)> = ring
                    .completion()
                    .map(|cqe| (cqe.user_data(), cqe.result()))
                    .collect();
                for (data, res) in completions {
                    if data >= u64::from(count) {
                        continue;
                    }
                    if res > 0 {
                        let meta = metas[data as usize];
                        seen(&mut outcome, &meta, res as u64);
                    }
                    // CAST: below `count`.
                    queue(&mut ring, &mut metas, data as u32)?;
                }
            }
        }
    }
    outcome.elapsed = started.elapsed();
    outcome.cpu = cpu.since(Cpu::now(info.card_index));
    let res = call(&mut ring, raw::Stop::new(fd).build())?;
    if res < 0 {
        return Err(format!("STOP: errno {}", -res));
    }
    let stats = read_stats(&mut ring, fd)?;
    outcome.irqs_per_frame = Some(stats.frame_irqs as f64 / stats.frames_delivered.max(1) as f64);
    outcome.drops_underrun = stats.frames_dropped_underrun;
    outcome.drops_other = stats.frames_dropped_other;
    if job.engine == Engine::Ioctl {
        // Collect the frames the stop gave back.
        let mut meta = FrameMeta::new_zeroed();
        // SAFETY: as above.
        while unsafe { libc::ioctl(fd, ioctls::DQBUF as _, &mut meta as *mut FrameMeta) } == 0 {}
    }
    push(&mut ring, raw::Detach::new(fd).build().user_data(CONTROL))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        ring.submit_and_wait(1)
            .map_err(|error| format!("wait: {error}"))?;
        if ring.completion().any(|cqe| cqe.user_data() == ATTACH) {
            break;
        }
        if Instant::now() > deadline {
            return Err("the attach command did not complete after DETACH".into());
        }
    }
    Ok(outcome)
}

/// The copy engine: `read()` of driver-owned frames.
fn copy(job: &Job) -> Result<Outcome, String> {
    let info = info(&job.device)?;
    let mut file = open(&job.device)?;
    let observer = open(&job.device)?;
    let mut ring = ring(false, false)?;
    let mut frame = vec![0u8; job.frame_bytes as usize];
    let mut outcome = Outcome::default();
    let cpu = Cpu::now(info.card_index);
    let started = Instant::now();
    while !done(job, outcome.frames, started) {
        let got = file
            .read(&mut frame)
            .map_err(|error| format!("read: {error}"))?;
        outcome.syscalls += 1;
        outcome.frames += 1;
        outcome.bytes += got as u64;
    }
    outcome.elapsed = started.elapsed();
    outcome.cpu = cpu.since(Cpu::now(info.card_index));
    let stats = read_stats(&mut ring, observer.as_raw_fd())?;
    outcome.irqs_per_frame = Some(stats.frame_irqs as f64 / stats.frames_delivered.max(1) as f64);
    outcome.drops_underrun = stats.frames_dropped_underrun;
    outcome.drops_other = stats.frames_dropped_other;
    outcome.descriptors_per_frame =
        Some(f64::from(stats.descriptors_total) / f64::from(stats.frame_count.max(1)));
    Ok(outcome)
}
