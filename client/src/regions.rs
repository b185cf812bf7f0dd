//! One stream, several regions (`docs/abi.md`, "Regions"): each buffer is attached on its
//! own, at its own address, and detached on its own while the others keep streaming. The
//! shape a GenTL producer needs: one region of one frame per announced buffer,
//! `DSRevokeBuffer` is [`Regions::detach_region`].

use crate::buffer::Buffer;
use crate::features::Features;
use crate::raw;
use crate::stream::{FrameInfo, Geometry};
use crate::uring::{Completion, Uring};
use crate::{Card, Error, Result};
use fgrab_uapi::{FrameMeta, MAX_REGIONS, META_ERROR};
use std::collections::VecDeque;
use std::fs::File;
use std::time::{Duration, Instant};
use zerocopy::FromZeros;

mod shared;
pub use shared::SharedRegions;

/// `user_data` of region `id`'s attach command: `ATTACH_TAG | id`.
const ATTACH_TAG: u64 = 0xa77a_0000_0000_0000;
/// `user_data` of frame `f` of region `id`: `FRAME_TAG | id << 32 | f`.
const FRAME_TAG: u64 = 0xf4a3_0000_0000_0000;
/// Mask of the tags above.
const TAG_MASK: u64 = 0xffff_0000_0000_0000;

/// How long a detach or a stop may take before the library gives up on the region (and
/// leaks its buffer: the card might still write it).
const END_TIMEOUT: Duration = Duration::from_secs(10);

/// The id of a region in a [`Regions`] stream, below [`MAX_REGIONS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegionId(pub u32);

/// A filled frame of one region, handed out by [`Regions::next_frame`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegionFrame {
    /// The region.
    pub region: RegionId,
    /// The frame's index in the region and what the card reported.
    pub info: FrameInfo,
}

/// Where a frame is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    /// The application has it (never queued, or released without queueing).
    Idle,
    /// A `QUEUE` command is in flight.
    Queued,
    /// Filled, waiting for [`Regions::next_frame`].
    Ready,
    /// Handed out: the application reads it until [`Regions::queue`] gives it back.
    Held,
}

/// One attached region.
struct Region<'a> {
    buffer: Buffer<'a>,
    geometry: Geometry,
    states: Vec<State>,
    /// Metadata the driver writes per frame; boxed so the addresses stay put.
    metas: Box<[FrameMeta]>,
    /// The attach command's result once it completed.
    ended: Option<i32>,
}

impl Region<'_> {
    fn queued(&self) -> bool {
        self.states.contains(&State::Queued)
    }
}

/// A stream of several regions on one card: buffers attached one at a time
/// ([`Self::attach_region`]), frames queued by region and index, frames handed out with
/// their region ([`Self::next_frame`]), regions detached one at a time while the others
/// stream ([`Self::detach_region`], which gives the buffer back once the card can no
/// longer write it).
///
/// Every region has frames of the same size (the driver refuses others). Dropping the
/// stream detaches every region and waits for the driver to confirm; a buffer whose end
/// cannot be confirmed is leaked, never freed.
pub struct Regions<'a> {
    // Field order is drop order, but `Drop` ends every region first.
    ring: Uring,
    features: Features,
    _file: File,
    regions: Vec<Option<Region<'a>>>,
    ready: VecDeque<(u32, u32)>,
    streaming: bool,
}

impl std::fmt::Debug for Regions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Regions")
            .field("regions", &self.ids())
            .field("streaming", &self.streaming)
            .field("ready", &self.ready.len())
            .finish()
    }
}

impl<'a> Regions<'a> {
    /// A stream on `file` without regions; its ring has a table of [`MAX_REGIONS`] fixed
    /// buffers, one per region id.
    pub(crate) fn new(file: File) -> Result<Self> {
        use std::os::fd::AsRawFd;
        let ring = Uring::new(file.as_raw_fd(), false)?;
        ring.register_sparse(MAX_REGIONS)?;
        Ok(Self {
            ring,
            features: Features::new(file.as_raw_fd()),
            _file: file,
            regions: (0..MAX_REGIONS).map(|_| None).collect(),
            ready: VecDeque::new(),
            streaming: false,
        })
    }

    /// The camera features of the card (this file owns the stream, so it may set them,
    /// the image format only while stopped).
    pub fn features(&self) -> &Features {
        &self.features
    }

    /// The ids of the attached regions, in order.
    pub fn ids(&self) -> Vec<RegionId> {
        (0..MAX_REGIONS)
            .filter(|&id| self.regions[id as usize].is_some())
            .map(RegionId)
            .collect()
    }

    fn region(&mut self, id: RegionId) -> Result<&mut Region<'a>> {
        self.regions
            .get_mut(id.0 as usize)
            .and_then(Option::as_mut)
            .ok_or(Error::command("region", -libc::ENOENT))
    }

    /// Attaches `geometry` of `buffer` as a new region (the lowest free id) and returns its
    /// id. Its frames are not queued: [`Self::queue`] them. Only the bytes the frames span
    /// are registered with io_uring (and pinned).
    ///
    /// # Errors
    ///
    /// The buffer comes back with the error: [`Error::Geometry`] for a layout that does not
    /// fit; [`Error::Command`] if the driver refuses (`EINVAL`: another frame size than the
    /// stream's; `ENOSPC`: more than `MAX_FRAMES` frames in all; `EBUSY`: another file
    /// streams); [`Error::Command`] with `ENOSPC` when all [`MAX_REGIONS`] ids are taken.
    #[allow(clippy::result_large_err)]
    pub fn attach_region(
        &mut self,
        mut buffer: Buffer<'a>,
        geometry: Geometry,
    ) -> std::result::Result<RegionId, (Error, Buffer<'a>)> {
        let Some(id) = (0..MAX_REGIONS).find(|&id| self.regions[id as usize].is_none()) else {
            return Err((Error::command("ATTACH", -libc::ENOSPC), buffer));
        };
        if let Err(error) = geometry.validate(buffer.len()) {
            return Err((error, buffer));
        }
        let offset = geometry.frame_offset(0);
        // Validated against the buffer length.
        let span = geometry.span().unwrap_or(offset) - offset;
        // SAFETY: inside the buffer (validated). The region keeps the buffer until the
        // driver confirmed its end and the slot is emptied again (`detach_region`), or leaks
        // it (`Drop`).
        let addr = unsafe { buffer.as_mut_ptr().add(offset) };
        // SAFETY: as above.
        if let Err(error) = unsafe { self.ring.register_at(id, addr, span) } {
            return Err((error, buffer));
        }
        let count = geometry.count() as usize;
        self.regions[id as usize] = Some(Region {
            buffer,
            geometry,
            states: vec![State::Idle; count],
            metas: vec![FrameMeta::new_zeroed(); count].into_boxed_slice(),
            ended: None,
        });
        let attach = raw::Attach::new(
            self.ring.fd(),
            // CAST: below `MAX_REGIONS`.
            id as u16,
            addr as u64,
            span as u64,
            geometry.frame_bytes(),
            geometry.count(),
        )
        .frame_stride(geometry.frame_stride())
        .region(id)
        .build()
        .user_data(ATTACH_TAG | u64::from(id));
        // The attach command stays in flight; an error completes it at once, which STATS
        // (issued after it on the same ring) reveals.
        let result = self
            .ring
            .push(attach)
            .and_then(|()| self.ring.submit())
            .and_then(|()| self.stats().map(drop))
            .and_then(|()| self.collect(Some(Duration::ZERO)));
        let ended = self.regions[id as usize]
            .as_ref()
            .and_then(|region| region.ended);
        match (result, ended) {
            (Ok(()), None) => Ok(RegionId(id)),
            (result, ended) => {
                let error = match (result, ended) {
                    (Err(error), _) => error,
                    (Ok(()), Some(res)) => Error::command("ATTACH", res),
                    (Ok(()), None) => Error::Unreclaimable,
                };
                if ended.is_none() {
                    // Not confirmed: the region may be attached; the buffer stays with it.
                    return Err((error, self.abandon_region(id)));
                }
                let region = self.regions[id as usize].take();
                let _ = self.ring.unregister_at(id);
                match region {
                    Some(region) => Err((error, region.buffer)),
                    None => Err((error, Buffer::from_vec(Vec::new()))),
                }
            }
        }
    }

    /// Gives up on region `id` whose end the driver did not confirm: its buffer is leaked
    /// (the card might still write it); an empty buffer stands in for it.
    fn abandon_region(&mut self, id: u32) -> Buffer<'a> {
        if let Some(region) = self.regions[id as usize].take() {
            std::mem::forget(region);
        }
        Buffer::from_vec(Vec::new())
    }

    /// `STATS` of the card.
    ///
    /// # Errors
    ///
    /// [`Error::Command`], [`Error::Ring`].
    pub fn stats(&mut self) -> Result<fgrab_uapi::Stats> {
        let (res, stats) = self
            .ring
            .copy_out(|fd, target| raw::StatsCmd::new(fd, target).build())?;
        if res < 0 {
            return Err(Error::command("STATS", res));
        }
        Ok(stats)
    }

    /// Queues frame `index` of region `id` (a frame never queued, or one handed out by
    /// [`Self::next_frame`], whose bytes the application no longer reads).
    ///
    /// # Errors
    ///
    /// [`Error::Command`] with `ENOENT` for a region not attached, `EINVAL` for an index
    /// out of range, `EALREADY` for a frame queued already, or the region's end errno
    /// (`ECANCELED`, `ENODEV`, ...) for a region the driver ended: detach it;
    /// [`Error::Ring`].
    ///
    /// A frame the card failed (`-EIO`) is handed out by [`Self::next_frame`] with
    /// `META_ERROR` and no bytes, to be queued again like any other.
    pub fn queue(&mut self, id: RegionId, index: u32) -> Result<()> {
        let fd = self.ring.fd();
        let region = self.region(id)?;
        if let Some(errno) = region.ended {
            // The driver ended the region (ring exit, unbind, a card that would not stop):
            // a queue would only fail later, unseen.
            return Err(Error::command(
                "QUEUE",
                if errno < 0 { errno } else { -libc::ENOENT },
            ));
        }
        let state = region
            .states
            .get_mut(index as usize)
            .ok_or(Error::command("QUEUE", -libc::EINVAL))?;
        match *state {
            State::Idle | State::Held => {}
            State::Queued | State::Ready => return Err(Error::command("QUEUE", -libc::EALREADY)),
        }
        *state = State::Queued;
        let entry = raw::Queue::new(fd, index)
            .region(id.0)
            .meta(&mut region.metas[index as usize])
            .build()
            .user_data(FRAME_TAG | u64::from(id.0) << 32 | u64::from(index));
        self.ring.push(entry)?;
        self.ring.submit()
    }

    /// Starts the card: queued frames of every region fill, sequence numbers restart at 0.
    ///
    /// # Errors
    ///
    /// [`Error::Command`] (`EALREADY` if running, `ENOENT` without a region).
    pub fn start(&mut self) -> Result<()> {
        let res = self.ring.command(raw::Start::new(self.ring.fd()).build())?;
        if res < 0 {
            return Err(Error::command("START", res));
        }
        self.streaming = true;
        Ok(())
    }

    /// Stops the card; every queued frame comes back (filled ones are still handed out by
    /// [`Self::next_frame`], the others are idle again).
    ///
    /// # Errors
    ///
    /// [`Error::Command`] (`EALREADY` if not running); [`Error::Timeout`] if the frames do
    /// not come back within 10 s.
    pub fn stop(&mut self) -> Result<()> {
        let res = self.ring.command(raw::Stop::new(self.ring.fd()).build())?;
        if res < 0 {
            return Err(Error::command("STOP", res));
        }
        self.streaming = false;
        let deadline = Instant::now() + END_TIMEOUT;
        while self.regions.iter().flatten().any(Region::queued) {
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: "frames coming back after STOP",
                });
            }
            self.collect(Some(Duration::from_millis(100)))?;
        }
        Ok(())
    }

    /// Whether the card is running.
    pub fn is_running(&self) -> bool {
        self.streaming
    }

    /// Books completions that arrive within `timeout` (at least one, unless it passes).
    fn collect(&mut self, timeout: Option<Duration>) -> Result<()> {
        for completion in self.ring.reap(1, timeout)? {
            self.handle(completion);
        }
        Ok(())
    }

    /// Books one completion.
    fn handle(&mut self, completion: Completion) {
        // CAST: the low bits of a tag are a region id or a frame index.
        let id = (completion.user_data >> 32 & 0xffff) as usize;
        match completion.user_data & TAG_MASK {
            ATTACH_TAG => {
                let id = (completion.user_data & 0xffff) as usize;
                if let Some(Some(region)) = self.regions.get_mut(id) {
                    region.ended = Some(completion.res);
                }
                if completion.res == -libc::ENODEV {
                    self.streaming = false;
                }
            }
            FRAME_TAG => {
                let index = (completion.user_data & 0xffff_ffff) as u32;
                let Some(Some(region)) = self.regions.get_mut(id) else {
                    return;
                };
                let Some(state) = region.states.get_mut(index as usize) else {
                    return;
                };
                if *state != State::Queued {
                    return;
                }
                if completion.res >= 0 {
                    // The CQE is authoritative (`docs/abi.md`).
                    let meta = &mut region.metas[index as usize];
                    // CAST: non-negative.
                    meta.bytes = (completion.res as u32).min(region.geometry.frame_bytes());
                    meta.sequence = completion.sequence.unwrap_or(u64::MAX);
                    *state = State::Ready;
                    // CAST: below `MAX_REGIONS`.
                    self.ready.push_back((id as u32, index));
                } else if completion.res == -libc::EIO {
                    // The card failed this frame (`docs/abi.md`): it is off the card, so it
                    // is handed out flagged, never silently dropped; the application queues
                    // it again as any other (a GenTL buffer would be lost to the consumer
                    // otherwise).
                    let meta = &mut region.metas[index as usize];
                    meta.bytes = 0;
                    meta.flags |= META_ERROR;
                    meta.sequence = completion.sequence.unwrap_or(u64::MAX);
                    *state = State::Ready;
                    // CAST: below `MAX_REGIONS`.
                    self.ready.push_back((id as u32, index));
                } else {
                    // Given back unfilled (stop, detach, ring exit, card gone).
                    *state = State::Idle;
                }
            }
            _ => {}
        }
    }

    /// Waits up to `timeout` (forever with `None`) for the next filled frame of any region
    /// and hands it out (read it with [`Self::frame_bytes`], give it back with
    /// [`Self::queue`]); `Ok(None)` on timeout. Frames come in the card's order.
    ///
    /// # Errors
    ///
    /// [`Error::Ring`].
    pub fn next_frame(&mut self, timeout: Option<Duration>) -> Result<Option<RegionFrame>> {
        let deadline = timeout.map(|timeout| Instant::now() + timeout);
        loop {
            if let Some((id, index)) = self.ready.pop_front() {
                let Some(Some(region)) = self.regions.get_mut(id as usize) else {
                    continue;
                };
                region.states[index as usize] = State::Held;
                let meta = region.metas[index as usize];
                return Ok(Some(RegionFrame {
                    region: RegionId(id),
                    info: FrameInfo {
                        index,
                        sequence: meta.sequence,
                        timestamp_ns: meta.timestamp_ns,
                        bytes: meta.bytes,
                        flags: meta.flags,
                    },
                }));
            }
            let left = match deadline {
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(None);
                    }
                    Some(left)
                }
                None => None,
            };
            self.collect(left)?;
        }
    }

    /// The bytes of frame `index` of region `id` while it is handed out, `None` otherwise
    /// (the card may write a queued frame at any time).
    pub fn frame_bytes(&self, id: RegionId, index: u32) -> Option<&[u8]> {
        let region = self.regions.get(id.0 as usize)?.as_ref()?;
        if *region.states.get(index as usize)? != State::Held {
            return None;
        }
        let meta = &region.metas[index as usize];
        region
            .buffer
            .bytes(region.geometry.frame_offset(index), meta.bytes as usize)
    }

    /// Detaches region `id` while the others keep streaming (GenTL's `DSRevokeBuffer`) and
    /// returns its buffer once the driver confirmed that the card can no longer write it.
    /// Its queued frames come back (filled ones are dropped: their region is gone).
    ///
    /// # Errors
    ///
    /// [`Error::Command`] (`ENOENT`: not attached); [`Error::Unreclaimable`] if the driver
    /// did not confirm the end within 10 s: the buffer is then leaked.
    pub fn detach_region(&mut self, id: RegionId) -> Result<Buffer<'a>> {
        self.region(id)?;
        if self.regions[id.0 as usize]
            .as_ref()
            .is_some_and(|region| region.ended.is_none())
        {
            let res = self
                .ring
                .command(raw::Detach::new(self.ring.fd()).region(id.0).build())?;
            if res < 0 && res != -libc::ENOENT {
                return Err(Error::command("DETACH", res));
            }
        }
        if !self.wait_ended(id.0) {
            self.abandon_region(id.0);
            return Err(Error::Unreclaimable);
        }
        self.ready.retain(|&(region, _)| region != id.0);
        let region = self.regions[id.0 as usize]
            .take()
            .ok_or(Error::Unreclaimable)?;
        let _ = self.ring.unregister_at(id.0);
        Ok(region.buffer)
    }

    /// Waits until region `id`'s attach command and frame commands completed.
    fn wait_ended(&mut self, id: u32) -> bool {
        let deadline = Instant::now() + END_TIMEOUT;
        loop {
            match self.regions[id as usize].as_ref() {
                Some(region) if region.ended.is_some() && !region.queued() => return true,
                Some(_) => {}
                None => return false,
            }
            if Instant::now() > deadline || self.collect(Some(Duration::from_millis(100))).is_err()
            {
                return false;
            }
        }
    }
}

impl Drop for Regions<'_> {
    fn drop(&mut self) {
        for id in self.ids() {
            if self.detach_region(id).is_err() {
                self.abandon_region(id.0);
            }
        }
    }
}

impl Card {
    /// Turns the card into a stream of several regions, none attached yet (see
    /// [`Regions`]).
    ///
    /// # Errors
    ///
    /// [`Error::Ring`] if the ring cannot be set up.
    pub fn into_regions<'a>(self) -> Result<Regions<'a>> {
        Regions::new(self.into_file())
    }
}
