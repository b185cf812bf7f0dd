//! The frame paths under test. Each runs one job on one card and returns what it saw.
//!
//! The `uring` engine is the `fgrab` library itself (`Card::attach_with`, `Stream`): what
//! applications get is what is measured, its submission entries, completions and system
//! calls counted by the library's ring ([`fgrab::RingCounters`]). The raw engines
//! (`uring-raw`, `uring-sqpoll`) build their commands with `fgrab::raw` and drive a ring of
//! their own, hand-tuned: the gap between them and the library is the library's cost. The
//! raw loop recycles frames through one `queue` closure, so that a batched variant (one
//! recycling command for many frames) changes that closure and its call site only.

use crate::job::{Backing, Engine, Job};
use crate::measure::{Cpu, Interrupts, Latencies};
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
    /// Submission queue entries written during the stream (io_uring engines).
    pub sqes: Option<u64>,
    /// Completion queue entries reaped during the stream (io_uring engines).
    pub cqes: Option<u64>,
    /// The card's interrupts the guest took during the stream (`/proc/interrupts`).
    pub interrupts: Option<u64>,
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
        Engine::Uring => library(job, info),
        Engine::UringRaw | Engine::UringSqpoll | Engine::Ioctl => zero_copy(job, info),
        Engine::Read => copy(job),
    }
}

fn done(job: &Job, frames: u64, started: Instant) -> bool {
    match job.frames {
        Some(limit) => frames >= limit,
        None => started.elapsed() >= job.runtime,
    }
}

/// Physically contiguous extents per frame of `count` frames from `base`.
fn extents_per_frame(base: u64, frame_bytes: usize, count: u32, info: &DeviceInfo) -> Option<f64> {
    let extents: Option<u64> = (0..count as usize)
        .map(|i| {
            physical_extents(
                base as usize + i * frame_bytes,
                frame_bytes,
                u64::from(info.max_segment_bytes),
            )
        })
        .sum();
    extents.map(|e| e as f64 / f64::from(count))
}

/// Books a delivered frame: bytes, and its latency if the card stamped it.
fn seen(outcome: &mut Outcome, timestamp_ns: u64, flags: u32, bytes: u64) {
    outcome.frames += 1;
    outcome.bytes += bytes;
    if flags & META_FRAME != 0 {
        outcome
            .latencies
            .push(monotonic_ns().saturating_sub(timestamp_ns));
    }
}

/// How long the engines wait for one frame before calling the job failed.
const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// The library engine: `Card::attach_with` and `Stream::next_frame`, frames released by
/// dropping them, as an application does. With `defer_taskrun` (the default) the stream is
/// a single-thread one (`Options::single_thread`: `SINGLE_ISSUER | DEFER_TASKRUN`); with
/// `queue_batch` a batched one (`Options::batch`), moderated as the job says (by default
/// the library's one interrupt per batch).
fn library(job: &Job, info: &DeviceInfo) -> Result<Outcome, String> {
    let frame_bytes = job.frame_bytes as usize;
    let count = job.queue_depth;
    let memory = Buffer::new(job.offset + frame_bytes * count as usize, job.backing)?;
    // SAFETY: `memory` stays mapped until the stream is gone: it is unmapped after the
    // detach below confirmed the region ended, and leaked (never unmapped) otherwise.
    let buffer = unsafe { fgrab::Buffer::from_raw_parts(memory.ptr, memory.len) };
    let geometry = fgrab::Geometry::new(job.frame_bytes, count).offset(job.offset);
    let options = fgrab::Options::default()
        .single_thread(job.defer_taskrun)
        .batch(job.queue_batch)
        .irq_frames(job.irq_frames)
        .irq_delay_us(job.irq_delay_us);
    let card = fgrab::Card::open(&job.device).map_err(|error| error.to_string())?;
    let mut stream = match card.attach_with(buffer, geometry, options) {
        Ok(stream) => stream,
        Err(failed) => {
            // The buffer comes back unless the driver could not confirm the region ended.
            if failed.buffer.is_none() {
                std::mem::forget(memory);
            }
            return Err(format!("attach: {}", failed.error));
        }
    };
    let failure = |error: fgrab::Error| error.to_string();
    let result = (|| {
        let base = memory.ptr as u64 + job.offset as u64;
        let stats = stream.stats().map_err(failure)?;
        let mut outcome = Outcome {
            descriptors_per_frame: Some(f64::from(stats.descriptors_total) / f64::from(count)),
            extents_per_frame: extents_per_frame(base, frame_bytes, count, info),
            ..Outcome::default()
        };
        let ring = stream.ring_counters();
        let interrupts = Interrupts::now(info.card_index);
        let cpu = Cpu::now(info.card_index);
        stream.start().map_err(failure)?;
        let started = Instant::now();
        while !done(job, outcome.frames, started) {
            let frame = stream
                .next_frame(Some(FRAME_TIMEOUT))
                .map_err(failure)?
                .ok_or("no frame within 10 s")?;
            let frame_info = frame.info();
            seen(
                &mut outcome,
                frame_info.timestamp_ns,
                frame_info.flags,
                u64::from(frame_info.bytes),
            );
            // Dropping the frame releases it: queued again with the next wait's submission.
        }
        outcome.elapsed = started.elapsed();
        outcome.cpu = cpu.since(Cpu::now(info.card_index));
        outcome.interrupts = interrupts.since(info.card_index);
        let after = stream.ring_counters();
        outcome.syscalls = after.enters - ring.enters;
        outcome.sqes = Some(after.sqes - ring.sqes);
        outcome.cqes = Some(after.cqes - ring.cqes);
        stream.stop().map_err(failure)?;
        let stats = stream.stats().map_err(failure)?;
        outcome.irqs_per_frame =
            Some(stats.frame_irqs as f64 / stats.frames_delivered.max(1) as f64);
        outcome.drops_underrun = stats.frames_dropped_underrun;
        outcome.drops_other = stats.frames_dropped_other;
        Ok(outcome)
    })();
    if stream.detach().is_err() {
        std::mem::forget(memory);
        return Err("the driver did not confirm the region ended: buffer leaked".into());
    }
    result
}

/// The raw io_uring and ioctl engines: a fixed buffer attached once, frames recycled.
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
        extents_per_frame: extents_per_frame(base, frame_bytes, count, info),
        ..Outcome::default()
    };
    let raw_ring = job.engine != Engine::Ioctl;
    let (mut sqes, mut cqes) = (0u64, 0u64);

    let mut metas = vec![FrameMeta::new_zeroed(); count as usize];
    // Frames given back per submission: 1 (`QUEUE`), or `queue_batch` (`QUEUE_BATCH`: the
    // frames `index..index + batch`, one submission and one completion for all of them).
    let batch = match job.queue_batch {
        0 => 1,
        frames if job.engine == Engine::UringRaw && count.is_multiple_of(frames) => frames,
        frames => {
            return Err(format!(
                "--queue_batch={frames}: the uring (library) and uring-raw engines only, \
                 dividing --iodepth={count} on uring-raw"
            ))
        }
    };
    // The recycling of frames `index..index + batch`: one submission.
    let queue = |ring: &mut Uring, metas: &mut [FrameMeta], index: u32| -> Result<(), String> {
        let first = index as usize;
        let entry = if job.queue_batch == 0 {
            raw::Queue::new(fd, index).meta(&mut metas[first]).build()
        } else {
            let metas = &mut metas[first..first + batch as usize];
            metas.fill(FrameMeta::new_zeroed());
            raw::QueueBatch::new(fd, index, batch)
                .meta(metas.as_mut_ptr())
                .build()
        };
        push(ring, entry.user_data(u64::from(index)))
    };
    let qbuf = |index: u32| -> Result<(), String> {
        // SAFETY: QBUF reads the `u32` the pointer points to.
        let res = unsafe { libc::ioctl(fd, ioctls::QBUF as _, &index as *const u32) };
        if res < 0 {
            return Err(format!("QBUF: {}", std::io::Error::last_os_error()));
        }
        Ok(())
    };
    for index in (0..count).step_by(batch as usize) {
        match job.engine {
            Engine::Ioctl => qbuf(index)?,
            _ => queue(&mut ring, &mut metas, index)?,
        }
    }
    let interrupts = Interrupts::now(info.card_index);
    let cpu = Cpu::now(info.card_index);
    let mut start = raw::Start::new(fd);
    if let Some(frames) = job.irq_frames {
        start = start.irq_frames(frames);
    }
    if let Some(us) = job.irq_delay_us {
        start = start.irq_delay_us(us);
    }
    let res = call(&mut ring, start.build())?;
    if res < 0 {
        return Err(format!("START: errno {}", -res));
    }
    let started = Instant::now();
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
                seen(
                    &mut outcome,
                    meta.timestamp_ns,
                    meta.flags,
                    u64::from(meta.bytes),
                );
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
                    // At least `batch` completions (1 by default: never wait for a batch
                    // that a slow producer may take long to fill while completed frames
                    // are kept from the card), then every one available.
                    ring.submit_and_wait(job.batch as usize)
                        .map_err(|error| format!("submit_and_wait: {error}"))?;
                    outcome.syscalls += 1;
                }
                let completions: Vec<(u64, i32)> = ring
                    .completion()
                    .map(|cqe| (cqe.user_data(), cqe.result()))
                    .collect();
                // CAST: a completion queue holds at most a few thousand entries.
                cqes += completions.len() as u64;
                for (data, res) in completions {
                    if data >= u64::from(count) {
                        continue;
                    }
                    if job.queue_batch > 0 {
                        // `res` frames of the batch were filled; each meta says which.
                        if res > 0 {
                            // CAST: below `count`.
                            let first = data as usize;
                            for meta in &metas[first..first + batch as usize] {
                                if meta.bytes > 0 {
                                    let bytes = u64::from(meta.bytes);
                                    seen(&mut outcome, meta.timestamp_ns, meta.flags, bytes);
                                }
                            }
                        }
                    } else if res > 0 {
                        let meta = metas[data as usize];
                        seen(&mut outcome, meta.timestamp_ns, meta.flags, res as u64);
                    }
                    // CAST: below `count`.
                    queue(&mut ring, &mut metas, data as u32)?;
                    sqes += 1;
                }
            }
        }
    }
    outcome.elapsed = started.elapsed();
    outcome.cpu = cpu.since(Cpu::now(info.card_index));
    outcome.interrupts = interrupts.since(info.card_index);
    if raw_ring {
        outcome.sqes = Some(sqes);
        outcome.cqes = Some(cqes);
    }
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
    let interrupts = Interrupts::now(info.card_index);
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
    outcome.interrupts = interrupts.since(info.card_index);
    let stats = read_stats(&mut ring, observer.as_raw_fd())?;
    outcome.irqs_per_frame = Some(stats.frame_irqs as f64 / stats.frames_delivered.max(1) as f64);
    outcome.drops_underrun = stats.frames_dropped_underrun;
    outcome.drops_other = stats.frames_dropped_other;
    outcome.descriptors_per_frame =
        Some(f64::from(stats.descriptors_total) / f64::from(stats.frame_count.max(1)));
    Ok(outcome)
}
