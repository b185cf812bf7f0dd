//! The library as multi-threaded applications use it: a [`fgrab::SharedStream`] whose frames
//! are owned by handles that worker threads hold and release in any order, waits ended
//! from another thread, stop and start from another thread, and the `tokio` source.

use crate::ensure;
use crate::harness::{self, TestResult};
use crate::pattern;
use fgrab::{Buffer, Card, Error, FrameStatus, Geometry, OwnedFrame, SharedStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

const CARD0: &str = "/dev/fgrab0";
const FRAME_BYTES: u32 = 65_543;
/// Frames `STRIDE` apart: the 37 bytes between two frames are guard bytes.
const STRIDE: u64 = FRAME_BYTES as u64 + 37;
const FRAMES: u32 = 16;
const OFFSET: usize = 13;
const GUARD: u8 = 0x5a;
const WORKERS: usize = 4;
/// Frames each worker keeps (it gives one back when a third arrives): 8 held at once.
const HELD_PER_WORKER: usize = 2;

fn err(error: impl std::fmt::Display) -> String {
    error.to_string()
}

/// Bytes of the caller's buffer: frames, the gaps between them, and a tail.
fn buffer_len() -> usize {
    OFFSET + (STRIDE * u64::from(FRAMES - 1)) as usize + FRAME_BYTES as usize + 4096
}

fn attach() -> Result<SharedStream<'static>, String> {
    let geometry = Geometry::new(FRAME_BYTES, FRAMES)
        .stride(STRIDE)
        .offset(OFFSET);
    Card::open(CARD0)
        .map_err(err)?
        .attach(Buffer::from_vec(vec![GUARD; buffer_len()]), geometry)
        .map_err(err)?
        .into_shared()
        .map_err(err)
}

/// Checks a frame's bytes against the card's pattern.
fn verify(frame: &OwnedFrame<'_>) -> Result<(), String> {
    ensure!(
        frame.status() == FrameStatus::Complete,
        "frame {} has status {:?}",
        frame.sequence(),
        frame.status()
    );
    ensure!(
        frame.len() == FRAME_BYTES as usize,
        "frame {} has {} bytes",
        frame.sequence(),
        frame.len()
    );
    pattern::verify(frame, frame.sequence(), 0)
        .map_err(|mismatch| format!("frame {}: {mismatch}", frame.sequence()))
}

/// Detaches the stream and checks every byte the card must not have written: before the
/// first frame, between frames, after the last.
fn check_guards(stream: SharedStream<'static>) -> TestResult {
    let buffer = stream
        .detach()
        .map_err(|(error, _)| format!("detach: {error}"))?;
    let memory = buffer
        .into_box()
        .ok_or("the adopted Vec did not come back")?;
    let mut start = 0usize;
    for index in 0..=FRAMES {
        let end = if index < FRAMES {
            OFFSET + (STRIDE * u64::from(index)) as usize
        } else {
            memory.len()
        };
        if let Some(at) = memory[start..end].iter().position(|&b| b != GUARD) {
            return Err(format!(
                "guard byte {} (before frame {index}) was written: {:#x}",
                start + at,
                memory[start + at]
            ));
        }
        start = end + FRAME_BYTES as usize;
    }
    Ok(())
}

/// A small generator for the workers' release order.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) as usize) % n
    }
}

/// 10,000 frames handed to 4 worker threads that each keep 2 (8 held at once in all),
/// verify them and release them in random order; every byte and guard byte checked.
pub fn client_shared_threads() -> TestResult {
    const TOTAL: u64 = 10_000;
    let stream = attach()?;
    stream.start().map_err(err)?;
    let held = Arc::new(AtomicUsize::new(0));
    let most_held = Arc::new(AtomicUsize::new(0));
    let mut senders = Vec::new();
    let mut workers = Vec::new();
    for worker in 0..WORKERS {
        let (send, receive) = mpsc::channel::<OwnedFrame<'static>>();
        senders.push(send);
        let held = held.clone();
        let most_held = most_held.clone();
        workers.push(std::thread::spawn(move || -> TestResult {
            let mut random = Lcg(worker as u64 + 1);
            let mut mine: Vec<OwnedFrame<'static>> = Vec::new();
            for frame in receive {
                verify(&frame)?;
                mine.push(frame);
                let now = held.fetch_add(1, Ordering::AcqRel) + 1;
                most_held.fetch_max(now.min(WORKERS * HELD_PER_WORKER), Ordering::AcqRel);
                if mine.len() > HELD_PER_WORKER {
                    // Keep two: give back one of the three, chosen at random.
                    let victim = mine.swap_remove(random.below(mine.len()));
                    held.fetch_sub(1, Ordering::AcqRel);
                    victim.release().map_err(err)?;
                }
            }
            held.fetch_sub(mine.len(), Ordering::AcqRel);
            Ok(())
        }));
    }
    let started = Instant::now();
    let mut handed = 0u64;
    let result = (|| -> TestResult {
        while handed < TOTAL {
            let frame = stream
                .next_frame(Some(Duration::from_secs(5)))
                .map_err(|error| format!("after {handed} frames: {error}"))?;
            senders[(handed % WORKERS as u64) as usize]
                .send(frame)
                .map_err(|_| "a worker is gone".to_string())?;
            handed += 1;
        }
        Ok(())
    })();
    drop(senders);
    for worker in workers {
        worker.join().map_err(|_| "a worker panicked")??;
    }
    result?;
    let elapsed = started.elapsed();
    stream.stop().map_err(err)?;
    let counters = stream.counters();
    ensure!(counters.failed == 0, "{} frames failed", counters.failed);
    let most = most_held.load(Ordering::Acquire);
    ensure!(
        most == WORKERS * HELD_PER_WORKER,
        "at most {most} frames were held at once, not {}",
        WORKERS * HELD_PER_WORKER
    );
    check_guards(stream)?;
    harness::info(&format!(
        "shared stream: {TOTAL} frames verified by {WORKERS} threads holding up to {most} at \
         once, released in random order, in {:.1} s; {} dropped by the card; guard bytes intact",
        elapsed.as_secs_f64(),
        counters.dropped
    ));
    Ok(())
}

/// A wait blocked in one thread ends with `Canceled` when another thread cancels it (the
/// latency is printed); a cancel with no wait in progress ends the next one; a stop from
/// another thread ends a waiter with `Stopped`, and a start from another thread brings
/// frames again.
pub fn client_shared_cancel() -> TestResult {
    let stream = attach()?;
    // A wait on a stream not started ends at once: no frame can come.
    match stream.next_frame(None) {
        Err(Error::Stopped) => {}
        other => return Err(format!("a wait before START returned {other:?}")),
    }
    // Every frame held by this thread: nothing comes, so only the cancel ends the wait.
    stream.start().map_err(err)?;
    let mut all = Vec::new();
    for _ in 0..FRAMES {
        let frame = stream
            .next_frame(Some(Duration::from_secs(5)))
            .map_err(err)?;
        verify(&frame)?;
        all.push(frame);
    }
    let waiter = {
        let stream = stream.clone();
        std::thread::spawn(move || {
            let result = stream.next_frame(None).map(|frame| frame.sequence());
            (result, Instant::now())
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let canceled_at = Instant::now();
    stream.canceler().cancel();
    let (result, woke_at) = waiter.join().map_err(|_| "the waiter panicked")?;
    ensure!(
        matches!(result, Err(Error::Canceled)),
        "the canceled wait returned {result:?}"
    );
    let latency = woke_at.saturating_duration_since(canceled_at);
    // A cancel without a wait in progress ends the next wait, at once.
    stream.canceler().cancel();
    let early = Instant::now();
    match stream.next_frame(Some(Duration::from_secs(10))) {
        Err(Error::Canceled) => {}
        other => return Err(format!("the wait after a cancel returned {other:?}")),
    }
    ensure!(
        early.elapsed() < Duration::from_secs(5),
        "the pending cancel did not end the next wait"
    );
    // Stop from another thread: a waiter that takes frames ends with `Stopped`.
    drop(all);
    let consumer = {
        let stream = stream.clone();
        std::thread::spawn(move || -> Result<u64, String> {
            let mut verified = 0;
            loop {
                match stream.next_frame(Some(Duration::from_secs(10))) {
                    Ok(frame) => {
                        verify(&frame)?;
                        verified += 1;
                    }
                    Err(Error::Stopped) => return Ok(verified),
                    Err(error) => return Err(format!("after {verified} frames: {error}")),
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    stream.stop().map_err(err)?;
    let before_stop = consumer.join().map_err(|_| "the consumer panicked")??;
    ensure!(before_stop > 0, "no frame came before the stop");
    // Start from this thread, frames from another.
    stream.start().map_err(err)?;
    let again = {
        let stream = stream.clone();
        std::thread::spawn(move || -> Result<(), String> {
            for _ in 0..100 {
                verify(
                    &stream
                        .next_frame(Some(Duration::from_secs(5)))
                        .map_err(err)?,
                )?;
            }
            Ok(())
        })
    };
    again.join().map_err(|_| "the second consumer panicked")??;
    stream.stop().map_err(err)?;
    check_guards(stream)?;
    harness::info(&format!(
        "cancel from another thread woke a blocked wait in {:.2} ms; a stop from another \
         thread ended a consumer after {before_stop} frames; a start from another thread \
         brought 100 more",
        latency.as_secs_f64() * 1e3
    ));
    Ok(())
}

/// The `tokio` source: 1,000 frames verified from an async task.
pub fn client_tokio() -> TestResult {
    const TOTAL: u64 = 1_000;
    let stream = attach()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|error| format!("tokio runtime: {error}"))?;
    let started = Instant::now();
    let verified = runtime.block_on(async {
        let mut frames = stream.async_frames().map_err(err)?;
        stream.start().map_err(err)?;
        let mut verified = 0u64;
        while verified < TOTAL {
            let frame = tokio::time::timeout(Duration::from_secs(5), frames.next())
                .await
                .map_err(|_| format!("no frame within 5 s after {verified}"))?
                .map_err(err)?;
            verify(&frame)?;
            verified += 1;
        }
        Ok::<u64, String>(verified)
    })?;
    drop(runtime);
    stream.stop().map_err(err)?;
    check_guards(stream)?;
    harness::info(&format!(
        "tokio: {verified} frames verified from an async task in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// The types applications move between threads are `Send` (and `Sync` where shared).
#[allow(dead_code)]
fn assert_thread_safe() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<SharedStream<'static>>();
    send_sync::<OwnedFrame<'static>>();
    send_sync::<fgrab::Canceler>();
}
