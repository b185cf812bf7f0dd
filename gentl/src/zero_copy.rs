//! [`ZeroCopyPath`]: the card writes each frame straight into an announced buffer.
//!
//! Each announced buffer (the consumer's memory at its own address, any alignment, or
//! memory `DSAllocAndAnnounceBuffer` allocated) is one region of one frame on the data
//! stream's own card stream ([`fgrab::SharedRegions`], on a file of its own that owns the
//! card while a region is attached): registered as an io_uring fixed buffer and attached at
//! `DSStartAcquisition` (the frame size is `PayloadSize`, known only then; a buffer
//! announced while acquisition runs is attached at once). `DSQueueBuffer` queues the
//! region's frame on the card; the card's completion names the region, which names the
//! buffer the NEW_BUFFER event delivers, filled by the card's DMA, never copied.
//! `DSRevokeBuffer` detaches that region alone while the others stream; a start with
//! another `PayloadSize` (Width, Height or PixelFormat changed while stopped) detaches
//! every region and attaches them anew with the new frame size, which every region of a
//! stream shares. A buffer smaller than the payload cannot hold a frame the card writes
//! whole: `DSStartAcquisition` refuses it with `GC_ERR_BUFFER_TOO_SMALL`, as does
//! `DSAnnounceBuffer` while acquisition runs. At most [`MAX_REGIONS`] buffers can be
//! announced for an acquisition (`GC_ERR_RESOURCE_EXHAUSTED` beyond).
//!
//! Lock order: the data stream's lock, then `buffers`, then the card stream's own lock.

use crate::abi::*;
use crate::error::{fail, Failure, Result};
use crate::path::{BufferPath, Filled, Missed, Target, Targets};
use crate::remote::{Attachment, Image};
use fgrab::uapi::MAX_REGIONS;
use fgrab::uapi::{META_ERROR, META_FLUSHED, META_FRAME, META_INCOMPLETE};
use fgrab::{Buffer, Card, Geometry, RegionId, SharedRegions};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// An announced buffer, as the card sees it.
#[derive(Debug)]
struct Announced {
    target: Target,
    /// Its region, while attached.
    region: Option<RegionId>,
    /// The driver never confirmed its region's end: the card may still write it, so it is
    /// never reported free (revoking it fails with `GC_ERR_IO`).
    leaked: bool,
}

#[derive(Debug, Default)]
struct Buffers {
    by_key: HashMap<usize, Announced>,
    /// Region id -> buffer key, for the attached ones.
    by_region: HashMap<u32, usize>,
    /// The attached regions' frame size.
    frame_bytes: Option<u32>,
    /// The last FRAMEID delivered in this acquisition (gaps are drops).
    last_frame_id: Option<u64>,
}

/// The zero-copy path (see the module's documentation).
#[derive(Debug)]
pub struct ZeroCopyPath {
    node: PathBuf,
    attachment: Arc<Attachment>,
    buffers: Mutex<Buffers>,
}

/// The GenTL error of a client library error on the card stream.
fn failure(error: fgrab::Error, what: &str) -> Failure {
    match error {
        fgrab::Error::Busy { .. }
        | fgrab::Error::Command {
            errno: libc::EBUSY, ..
        } => Failure::new(
            GC_ERR_RESOURCE_IN_USE,
            format!("{what}: another program streams from this card"),
        ),
        fgrab::Error::Unreclaimable => Failure::new(
            GC_ERR_IO,
            format!("{what}: the driver did not confirm that the card stopped writing the buffer; it is never freed"),
        ),
        other => {
            let failure = Failure::from(other);
            Failure::new(failure.code, format!("{what}: {}", failure.message))
        }
    }
}

impl ZeroCopyPath {
    /// A path for the card at `node`, whose card stream the device's `attachment` holds.
    pub fn new(node: PathBuf, attachment: Arc<Attachment>) -> Self {
        Self {
            node,
            attachment,
            buffers: Mutex::new(Buffers::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Buffers> {
        // Every critical section leaves the maps consistent before it can fail.
        self.buffers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The card stream, opened on a file of its own at first use.
    fn regions(&self) -> Result<SharedRegions<'static>> {
        self.attachment.regions_or(|| {
            Card::open(&self.node)
                .and_then(Card::into_shared_regions)
                .map_err(|error| failure(error, "opening the card's stream"))
        })
    }

    /// Attaches `announced`'s buffer as a region of one `frame_bytes` frame.
    fn attach(
        regions: &SharedRegions<'static>,
        buffers: &mut Buffers,
        key: usize,
        frame_bytes: u32,
    ) -> Result<RegionId> {
        let Some(announced) = buffers.by_key.get_mut(&key) else {
            return fail(GC_ERR_INVALID_HANDLE, "the buffer is not announced");
        };
        if let Some(id) = announced.region {
            return Ok(id);
        }
        let target = announced.target;
        if target.size < frame_bytes as usize {
            return too_small(target.size, frame_bytes);
        }
        // SAFETY: an announced buffer is `size` writable bytes at `base` that the consumer
        // keeps allocated until it is revoked (GenTL's contract for DSAnnounceBuffer; the
        // producer's own for DSAllocAndAnnounceBuffer), and revoke and close detach the
        // region, confirmed, before the memory goes back (or leak it: never freed).
        let buffer = unsafe { Buffer::from_raw_parts(target.base, target.size) };
        let id = regions
            .attach_region(buffer, Geometry::new(frame_bytes, 1))
            .map_err(|(error, _buffer)| failure(error, "attaching an announced buffer"))?;
        announced.region = Some(id);
        buffers.by_region.insert(id.0, key);
        Ok(id)
    }

    /// Queues buffer `key`'s frame on the card; one the card holds or filled already stays.
    fn queue_region(regions: &SharedRegions<'static>, id: RegionId) -> Result<()> {
        match regions.queue(id, 0) {
            Ok(()) => Ok(()),
            Err(fgrab::Error::Command { errno, .. }) if errno == libc::EALREADY => Ok(()),
            Err(error) => Err(failure(error, "queueing a buffer on the card")),
        }
    }

    /// Detaches every region (the card is stopped): for a new frame size. A region whose
    /// detach fails stays booked (attached, or leaked if its end was never confirmed), so
    /// that its buffer is never reported free while the card may write it.
    fn detach_all(regions: &SharedRegions<'static>, buffers: &mut Buffers) -> Result<()> {
        let mut first = None;
        let attached: Vec<(u32, usize)> = buffers.by_region.drain().collect();
        for (id, key) in attached {
            let result = regions.detach_region(RegionId(id));
            let Some(announced) = buffers.by_key.get_mut(&key) else {
                continue;
            };
            match result {
                Ok(_) => announced.region = None,
                Err(fgrab::Error::Unreclaimable) => {
                    announced.region = None;
                    announced.leaked = true;
                    first.get_or_insert(fgrab::Error::Unreclaimable);
                }
                Err(error) => {
                    buffers.by_region.insert(id, key);
                    first.get_or_insert(error);
                }
            }
        }
        if buffers.by_region.is_empty() {
            buffers.frame_bytes = None;
        }
        match first {
            None => Ok(()),
            Some(error) => Err(failure(
                error,
                "detaching the buffers for a new PayloadSize",
            )),
        }
    }
}

/// `GC_ERR_BUFFER_TOO_SMALL` for an announced buffer of `size` bytes and frames of
/// `frame_bytes`.
fn too_small<T>(size: usize, frame_bytes: u32) -> Result<T> {
    fail(
        GC_ERR_BUFFER_TOO_SMALL,
        format!(
            "an announced buffer of {size} bytes cannot hold a frame of PayloadSize \
             {frame_bytes} bytes: revoke it and announce one of at least PayloadSize"
        ),
    )
}

/// Why a leaked buffer cannot be revoked.
const LEAKED: &str = "the driver never confirmed that the card stopped writing this buffer: \
                      it must stay allocated (the producer leaked its region)";

impl BufferPath for ZeroCopyPath {
    fn announce(&self, target: Target, acquiring: bool) -> Result<()> {
        let mut buffers = self.lock();
        buffers.by_key.insert(
            target.key,
            Announced {
                target,
                region: None,
                leaked: false,
            },
        );
        let frame_bytes = match buffers.frame_bytes {
            Some(frame_bytes) if acquiring => frame_bytes,
            // Attached at the next start, with the frame size of then.
            _ => return Ok(()),
        };
        let attached = self
            .regions()
            .and_then(|regions| Self::attach(&regions, &mut buffers, target.key, frame_bytes));
        if attached.is_err() {
            buffers.by_key.remove(&target.key);
        }
        attached.map(drop)
    }

    fn revoke(&self, key: usize) -> Result<()> {
        let mut buffers = self.lock();
        let Some(announced) = buffers.by_key.get(&key) else {
            return Ok(());
        };
        if announced.leaked {
            return fail(GC_ERR_IO, LEAKED);
        }
        let region = announced.region;
        let regions = self.attachment.regions();
        let (Some(id), Some(regions)) = (region, regions) else {
            buffers.by_key.remove(&key);
            return Ok(());
        };
        // The bookkeeping goes only once the driver confirmed the end: until then the
        // consumer must not free the memory, and a retry must find the region.
        match regions.detach_region(id) {
            // The buffer view is the consumer's memory: dropping it frees nothing.
            Ok(_) => {
                buffers.by_region.remove(&id.0);
                buffers.by_key.remove(&key);
                Ok(())
            }
            Err(error) => {
                if matches!(error, fgrab::Error::Unreclaimable) {
                    buffers.by_region.remove(&id.0);
                    if let Some(announced) = buffers.by_key.get_mut(&key) {
                        announced.region = None;
                        announced.leaked = true;
                    }
                }
                Err(failure(error, "revoking a buffer"))
            }
        }
    }

    fn queue(&self, key: usize) -> Result<()> {
        let buffers = self.lock();
        let Some(id) = buffers
            .by_key
            .get(&key)
            .and_then(|announced| announced.region)
        else {
            return Ok(());
        };
        let Some(regions) = self.attachment.regions() else {
            return Ok(());
        };
        if !regions.is_running() {
            return Ok(()); // queued at the next start
        }
        Self::queue_region(&regions, id)
    }

    fn start(&self, image: &Image, announced: &[Target], queued: &[usize]) -> Result<()> {
        let frame_bytes = image.payload_size;
        if frame_bytes == 0 {
            return fail(GC_ERR_INVALID_PARAMETER, "PayloadSize is 0");
        }
        if announced.len() > MAX_REGIONS as usize {
            return fail(
                GC_ERR_RESOURCE_EXHAUSTED,
                format!(
                    "{} buffers are announced: the card fills at most {MAX_REGIONS} buffers \
                     of one stream",
                    announced.len()
                ),
            );
        }
        if let Some(small) = announced
            .iter()
            .find(|target| target.size < frame_bytes as usize)
        {
            return too_small(small.size, frame_bytes);
        }
        let regions = self.regions()?;
        let mut buffers = self.lock();
        if buffers
            .frame_bytes
            .is_some_and(|bytes| bytes != frame_bytes)
        {
            Self::detach_all(&regions, &mut buffers)?;
        }
        // Frames filled in an earlier acquisition and never delivered are stale.
        regions.discard_ready();
        // Set before attaching: a start that fails part way leaves regions of this size,
        // and the next start must know it (a new size detaches them first).
        buffers.frame_bytes = Some(frame_bytes);
        for target in announced {
            buffers.by_key.entry(target.key).or_insert(Announced {
                target: *target,
                region: None,
                leaked: false,
            });
            Self::attach(&regions, &mut buffers, target.key, frame_bytes)?;
        }
        buffers.last_frame_id = None;
        for key in queued {
            if let Some(id) = buffers
                .by_key
                .get(key)
                .and_then(|announced| announced.region)
            {
                Self::queue_region(&regions, id)?;
            }
        }
        regions
            .start()
            .map_err(|error| failure(error, "starting the card"))
    }

    fn stop(&self, discard: bool) -> Result<()> {
        let Some(regions) = self.attachment.regions() else {
            return Ok(());
        };
        let result = match regions.stop() {
            // Not running (stopped already, or never started): nothing to do.
            Ok(()) | Err(fgrab::Error::Command { .. }) => Ok(()),
            Err(error) => Err(failure(error, "stopping the card")),
        };
        if discard {
            regions.discard_ready();
        }
        result
    }

    fn next(
        &self,
        timeout: Option<Duration>,
        targets: &dyn Targets,
        underrun: &dyn Fn(u64),
    ) -> std::result::Result<(usize, Filled), Missed> {
        let Some(regions) = self.attachment.regions() else {
            return Err(Missed::Stopped);
        };
        let deadline = timeout.map(|timeout| Instant::now() + timeout);
        loop {
            let left = deadline.map(|deadline| deadline.saturating_duration_since(Instant::now()));
            let frame = match regions.next_frame(left) {
                Ok(frame) => frame,
                Err(fgrab::Error::Timeout { .. }) => return Err(Missed::Timeout),
                Err(fgrab::Error::Canceled) => return Err(Missed::Canceled),
                Err(fgrab::Error::Stopped) => return Err(Missed::Stopped),
                Err(error) => return Err(Missed::Failed(error.into())),
            };
            let (key, gap) = {
                let mut buffers = self.lock();
                let Some(&key) = buffers.by_region.get(&frame.region.0) else {
                    continue; // revoked meanwhile
                };
                let sequence = frame.info.sequence;
                // Only a frame the card numbered counts (a failed frame may carry none:
                // `u64::MAX`); the sequence comes from the card, so no loop runs over it.
                let numbered = frame.info.flags & META_FRAME != 0 && sequence != u64::MAX;
                let mut gap = 0;
                if numbered {
                    if let Some(last) = buffers.last_frame_id {
                        gap = sequence
                            .checked_sub(last)
                            .map_or(0, |delta| delta.saturating_sub(1));
                    }
                    buffers.last_frame_id = Some(sequence);
                }
                (key, gap)
            };
            // The card had no buffer for the frames between: their FRAMEIDs are the gap.
            if gap > 0 {
                underrun(gap);
            }
            // Flushed (or revoked) while on the card: the frame stays off the card until
            // DSQueueBuffer queues the buffer again.
            if !targets.claim(key) {
                continue;
            }
            let info = frame.info;
            return Ok((
                key,
                Filled {
                    size_filled: info.bytes as usize,
                    frame_id: info.sequence,
                    timestamp_ns: info.timestamp_ns,
                    incomplete: info.flags & (META_INCOMPLETE | META_ERROR | META_FLUSHED) != 0,
                    larger_than_buffer: false,
                },
            ));
        }
    }

    fn cancel(&self) {
        if let Some(regions) = self.attachment.regions() {
            regions.canceler().cancel();
        }
    }

    fn close(&self) -> Result<()> {
        let mut buffers = self.lock();
        buffers.by_region.clear();
        buffers.by_key.clear();
        buffers.frame_bytes = None;
        self.attachment
            .end()
            .map_err(|error| failure(error, "closing the data stream"))
    }

    fn copies(&self) -> u64 {
        0
    }
}
