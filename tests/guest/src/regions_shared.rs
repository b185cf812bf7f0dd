//! `fgrab::SharedRegions` from several threads (issue 17, the shape the GenTL producer uses):
//! one thread waits in `next_frame` while another checks each frame byte by byte, queues it
//! again, revokes a region, cancels a wait and stops the card.

use crate::ensure;
use crate::harness::{self, TestResult};
use crate::pattern;
use crate::streamer::{wait_idle, CARD0, GUARD};
use fgrab::{Buffer, Card, Error, Geometry, RegionFrame, RegionId, SharedRegions};
use std::sync::mpsc;
use std::time::Duration;

/// Bytes per frame: odd, so no frame ends on a page or cache line.
const FRAME_BYTES: u32 = 40_009;
/// Regions, one frame each, as GenTL buffers.
const REGIONS: u32 = 8;
/// Bytes before each frame in its buffer (an odd address).
const OFFSET: usize = 7;
/// Bytes after it.
const TAIL: usize = 33;
/// The region revoked halfway.
const REVOKED: RegionId = RegionId(3);

/// What the waiting thread reports.
enum Report {
    Frame(RegionFrame),
    Canceled,
}

/// The waiting thread: every frame until the stream stops; a cancel is reported and the
/// wait goes on.
fn waiter(regions: SharedRegions<'static>, frames: mpsc::Sender<Report>) -> Result<(), String> {
    loop {
        match regions.next_frame(Some(Duration::from_secs(10))) {
            Ok(frame) => {
                if frames.send(Report::Frame(frame)).is_err() {
                    return Ok(());
                }
            }
            Err(Error::Canceled) => {
                if frames.send(Report::Canceled).is_err() {
                    return Ok(());
                }
            }
            Err(Error::Stopped) => return Ok(()),
            Err(error) => return Err(format!("the waiting thread: {error}")),
        }
    }
}

/// Checks a handed-out frame: the card's pattern of its sequence number, every byte.
fn check(regions: &SharedRegions<'static>, frame: &RegionFrame) -> TestResult {
    ensure!(frame.info.bytes == FRAME_BYTES, "frame {frame:?}");
    regions
        .with_frame(frame.region, frame.info.index, |bytes| {
            pattern::verify(bytes, frame.info.sequence, 0).map_err(|error| error.to_string())
        })
        .ok_or(format!("frame {frame:?} is not readable while handed out"))?
}

/// `SharedRegions` is `Send + Sync`: one value serves every thread.
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<SharedRegions<'static>>();
};

pub fn client_shared_regions() -> TestResult {
    let err = |error: Error| error.to_string();
    let _restore = crate::camera::Restore;
    let regions = Card::open(CARD0)
        .and_then(Card::into_shared_regions)
        .map_err(err)?;
    let len = OFFSET + FRAME_BYTES as usize + TAIL;
    for expected in 0..REGIONS {
        let id = regions
            .attach_region(
                Buffer::from_vec(vec![GUARD; len]),
                Geometry::new(FRAME_BYTES, 1).offset(OFFSET),
            )
            .map_err(|(error, _)| err(error))?;
        ensure!(
            id == RegionId(expected),
            "region id {id:?}, expected {expected}"
        );
        regions.queue(id, 0).map_err(err)?;
    }
    regions.start().map_err(err)?;
    let (frames, reports) = mpsc::channel();
    let waiting = {
        let regions = regions.clone();
        std::thread::spawn(move || waiter(regions, frames))
    };
    let receive = || {
        reports
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| "no frame from the waiting thread in 30 s".to_string())
    };
    let mut last = None;
    let mut revoked = false;
    let mut canceled = false;
    let mut late = 0u32;
    let mut checked = 0u32;
    while checked < 120 {
        let frame = match receive()? {
            Report::Frame(frame) => frame,
            Report::Canceled => {
                ensure!(!canceled, "two cancels reported for one");
                canceled = true;
                continue;
            }
        };
        if revoked && frame.region == REVOKED {
            // Handed out before the revoke, still in the channel: the one frame of the
            // region (it was not queued again), whose bytes went with its buffer.
            late += 1;
            ensure!(
                late == 1
                    && regions
                        .with_frame(frame.region, frame.info.index, |_| ())
                        .is_none(),
                "a frame of the revoked region: {frame:?}"
            );
            continue;
        }
        check(&regions, &frame)?;
        ensure!(
            last.is_none_or(|last| frame.info.sequence > last),
            "sequence {} after {last:?}",
            frame.info.sequence
        );
        last = Some(frame.info.sequence);
        checked += 1;
        if checked == 40 {
            // Revoke a region while the other thread waits; whether its frame is on the
            // card or handed out, the buffer comes back with its guard bytes intact.
            let buffer = regions.detach_region(REVOKED).map_err(err)?;
            let bytes = buffer
                .into_box()
                .ok_or("the revoked buffer is not the vec")?;
            ensure!(
                bytes[..OFFSET].iter().all(|&byte| byte == GUARD)
                    && bytes[OFFSET + FRAME_BYTES as usize..]
                        .iter()
                        .all(|&byte| byte == GUARD),
                "the revoked buffer's guard bytes were written"
            );
            revoked = true;
            ensure!(
                regions.ids().len() == REGIONS as usize - 1,
                "after the revoke: {:?}",
                regions.ids()
            );
        }
        if checked == 80 {
            // A cancel ends exactly one wait of the other thread, which waits on.
            regions.canceler().cancel();
        }
        if frame.region == REVOKED && revoked {
            // Revoked just now, its frame in hand: nothing to give back.
            continue;
        }
        regions.queue(frame.region, 0).map_err(err)?;
    }
    ensure!(canceled, "the cancel never reached the waiting thread");
    // A stop from this thread ends the other thread's waits (after the frames filled
    // before it are handed out).
    regions.stop().map_err(err)?;
    waiting
        .join()
        .map_err(|_| "the waiting thread panicked".to_string())??;
    let stats = regions.stats().map_err(err)?;
    // A free-running camera under emulation drops frames (no buffer queued, late, a
    // revoke's stop): gaps in the sequence, never failures.
    ensure!(
        stats.frames_failed == 0 && stats.frames_delivered >= u64::from(checked),
        "{stats:?}"
    );
    let buffers = regions.end().map_err(err)?;
    ensure!(
        buffers.len() == REGIONS as usize - 1 && regions.ids().is_empty(),
        "end gave {} buffers",
        buffers.len()
    );
    ensure!(
        matches!(
            regions.next_frame(Some(Duration::ZERO)),
            Err(Error::Stopped)
        ),
        "a wait after the end"
    );
    harness::info(&format!(
        "{checked} frames checked on one thread while another waited; region {} revoked \
         while streaming, one wait canceled, stopped from the checking thread ({} + {} \
         frames dropped by the card: underrun + other)",
        REVOKED.0, stats.frames_dropped_underrun, stats.frames_dropped_other
    ));
    drop(regions);
    wait_idle(CARD0)
}
