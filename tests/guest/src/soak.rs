//! Soak: a stream verified byte by byte while the guest is put under the memory pressure
//! that broke the classic driver: a memory hog, page cache churn, compaction, THP
//! allocation and splitting, cache drops, and fork() of the streaming process.

use crate::ensure;
use crate::harness::{self, TestResult};
use crate::streamer::{Layout, Streamer};
use fgrab_uapi::ops;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How much pressure was applied.
#[derive(Default)]
struct Pressure {
    hog_cycles: AtomicU64,
    files_written: AtomicU64,
    compactions: AtomicU64,
    thp_splits: AtomicU64,
    cache_drops: AtomicU64,
}

fn map(len: usize, advice: libc::c_int) -> Option<*mut u8> {
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
        return None;
    }
    // SAFETY: advice on the mapping just created.
    unsafe { libc::madvise(ptr, len, advice) };
    Some(ptr.cast())
}

fn touch(ptr: *mut u8, len: usize) {
    for page in (0..len).step_by(4096) {
        // SAFETY: inside a writable mapping of `len` bytes.
        unsafe { ptr.add(page).write_volatile(page as u8) };
    }
}

/// Starts the pressure workers; they run until `stop` is set, resting `rest` between
/// rounds (the emulated guest CPU is slow: pressure without rest starves the stream).
fn start_pressure(
    stop: &Arc<AtomicBool>,
    pressure: &Arc<Pressure>,
    rest: Duration,
) -> Vec<std::thread::JoinHandle<()>> {
    let mut workers = Vec::new();
    let spawn = |work: Box<dyn Fn(&Pressure) + Send>| {
        let stop = stop.clone();
        let pressure = pressure.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                work(&pressure);
                std::thread::sleep(rest);
            }
        })
    };
    // A hog: fill 300 MiB, let it go.
    workers.push(spawn(Box::new(|p| {
        const LEN: usize = 300 << 20;
        if let Some(ptr) = map(LEN, libc::MADV_NOHUGEPAGE) {
            touch(ptr, LEN);
            // SAFETY: unmapping the mapping just made.
            unsafe { libc::munmap(ptr.cast(), LEN) };
            p.hog_cycles.fetch_add(1, Ordering::Relaxed);
        }
        std::thread::sleep(Duration::from_millis(50));
    })));
    // Page cache churn: write, read back and delete files, and walk the file tree.
    workers.push(spawn(Box::new(|p| {
        let data = vec![0x3cu8; 1 << 20];
        for i in 0..16 {
            let path = format!("/tmp/soak-{i}");
            if std::fs::write(&path, &data).is_ok() {
                let _ = std::fs::read(&path);
                p.files_written.fetch_add(1, Ordering::Relaxed);
            }
        }
        for i in 0..16 {
            let _ = std::fs::remove_file(format!("/tmp/soak-{i}"));
        }
        fn walk(dir: &std::path::Path, depth: u32) {
            if depth == 0 {
                return;
            }
            if let Ok(entries) = std::fs::read_dir(dir) {
                for entry in entries.flatten() {
                    let _ = entry.metadata();
                    if entry.file_type().is_ok_and(|t| t.is_dir()) {
                        walk(&entry.path(), depth - 1);
                    }
                }
            }
        }
        walk(std::path::Path::new("/sys/bus"), 4);
    })));
    // Compaction and cache drops.
    workers.push(spawn(Box::new(|p| {
        if std::fs::write("/proc/sys/vm/compact_memory", "1").is_ok() {
            p.compactions.fetch_add(1, Ordering::Relaxed);
        }
        std::thread::sleep(Duration::from_millis(200));
        if std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok() {
            p.cache_drops.fetch_add(1, Ordering::Relaxed);
        }
        std::thread::sleep(Duration::from_millis(200));
    })));
    // THP: fault in huge pages, then punch 4 KiB holes so they split.
    workers.push(spawn(Box::new(|p| {
        const LEN: usize = 64 << 20;
        if let Some(ptr) = map(LEN, libc::MADV_HUGEPAGE) {
            touch(ptr, LEN);
            for hole in (0..LEN).step_by(2 << 20) {
                // SAFETY: a page inside the mapping.
                unsafe { libc::munmap(ptr.add(hole + 4096).cast(), 4096) };
            }
            p.thp_splits
                .fetch_add((LEN / (2 << 20)) as u64, Ordering::Relaxed);
            // SAFETY: the whole range (holes included) was mapped by `map`.
            unsafe { libc::munmap(ptr.cast(), LEN) };
        }
        std::thread::sleep(Duration::from_millis(100));
    })));
    workers
}

/// Streams `layout` for `seconds` (or `frames`) under pressure; every frame and guard byte
/// checked.
fn soak(layout: Layout, seconds: u64, frames: Option<u64>, rest: Duration) -> TestResult {
    let stop = Arc::new(AtomicBool::new(false));
    let pressure = Arc::new(Pressure::default());
    let mut streamer = Streamer::attach("/dev/fgrab0", layout)?;
    streamer.queue_all()?;
    let workers = start_pressure(&stop, &pressure, rest);
    ensure!(streamer.control(ops::START)? == 0, "START failed");
    let started = Instant::now();
    let mut forks = 0u64;
    let mut next_fork = Instant::now();
    let mut next_report = Instant::now() + Duration::from_secs(10);
    let result = (|| -> TestResult {
        loop {
            let done = match frames {
                Some(frames) => streamer.tally.verified >= frames,
                None => started.elapsed() >= Duration::from_secs(seconds),
            };
            if done {
                return Ok(());
            }
            for completion in streamer.reap(Duration::from_millis(100))? {
                streamer.check(completion, true)?;
            }
            streamer.flush()?;
            if Instant::now() >= next_fork {
                // fork() of the streaming process: the child shares the pinned buffer's
                // pages copy-on-write, dirties memory and exits.
                // SAFETY: the child only touches its own memory and calls _exit.
                let pid = unsafe { libc::fork() };
                if pid == 0 {
                    let len = 16 << 20;
                    if let Some(ptr) = map(len, libc::MADV_NORMAL) {
                        touch(ptr, len);
                    }
                    // SAFETY: ends the child without running the parent's destructors.
                    unsafe { libc::_exit(0) };
                }
                if pid > 0 {
                    // SAFETY: reaping our own child.
                    unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
                    forks += 1;
                }
                next_fork += Duration::from_millis(500) + rest * 4;
            }
            if Instant::now() >= next_report {
                harness::info(&format!(
                    "soak: {:.0} s, {} frames verified",
                    started.elapsed().as_secs_f64(),
                    streamer.tally.verified
                ));
                next_report += Duration::from_secs(if frames.is_some() { 60 } else { 10 });
            }
        }
    })();
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        let _ = worker.join();
    }
    result?;
    let elapsed = started.elapsed().as_secs_f64();
    streamer.stop()?;
    let stats = streamer.stats()?;
    streamer.check_guards()?;
    let drops = streamer.reconcile_drops()?;
    let tally = &streamer.tally;
    harness::info(&format!(
        "soak: {} frames streamed, {:.2} GB verified byte by byte in {elapsed:.0} s, 0 corrupted \
         bytes, guard bytes intact, {} frames failed, {drops}; pressure: {} hog \
         cycles of 300 MiB, {} files written, {} compactions, {} cache drops, {} THPs split, \
         {forks} forks",
        tally.verified,
        tally.bytes as f64 / 1e9,
        stats.frames_failed,
        pressure.hog_cycles.load(Ordering::Relaxed),
        pressure.files_written.load(Ordering::Relaxed),
        pressure.compactions.load(Ordering::Relaxed),
        pressure.cache_drops.load(Ordering::Relaxed),
        pressure.thp_splits.load(Ordering::Relaxed),
    ));
    ensure!(
        stats.frames_failed == 0,
        "{} frames failed",
        stats.frames_failed
    );
    streamer.detach()
}

/// The short profile inside `cargo xtask test`.
pub fn soak_short() -> TestResult {
    soak(Layout::UNALIGNED, 20, None, Duration::ZERO)
}

/// `cargo xtask soak`: duration or frame count from the kernel command line.
pub fn soak_long() -> TestResult {
    let seconds = std::env::var("fgrab_soak_seconds")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let frames = std::env::var("fgrab_soak_frames")
        .ok()
        .and_then(|s| s.parse().ok());
    // Pressure in bursts with rests, so that a long run also moves a lot of frames.
    // Smaller frames than the other tests (still nothing aligned): a million of them fit in
    // a session on the emulated CPU.
    let layout = Layout {
        frame_bytes: 16_411,
        stride: 16_411 + 37,
        count: 32,
        offset: 0x4d1,
    };
    soak(layout, seconds, frames, Duration::from_millis(500))
}
