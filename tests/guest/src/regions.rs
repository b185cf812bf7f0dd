//! Several regions on one stream (issue 17): each region a separately allocated, unaligned
//! fixed buffer kept pinned by its own `ATTACH`; frames of every region stream and are
//! checked byte by byte (guard bytes around every frame); one region is detached while the
//! others stream (its pages are not written afterwards); its id is used again; every
//! teardown path with several regions attached; bad region ids and geometry.

use crate::ensure;
use crate::harness::{self, TestResult};
use crate::pattern;
use crate::streamer::{
    pci_address, pci_remove, stream_briefly, wait_for_node, wait_idle, CARD0, GUARD,
};
use crate::uring::{Completion, Memory, TestUring};
use fgrab::raw;
use fgrab_uapi::{
    FrameMeta, Stats, MAX_FRAMES, MAX_REGIONS, META_ERROR, META_FLUSHED, META_FRAME,
    STATE_ATTACHED, STATE_IDLE, STATE_STREAMING,
};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use zerocopy::FromZeros;

/// Bytes per frame: odd, so no frame ends on a page or cache line.
const FRAME_BYTES: u32 = 40_009;
/// Guard bytes between frames of a region.
const GAP: u64 = 37;
/// `user_data` of region `id`'s attach command: `ATTACH_TAG | id`.
const ATTACH_TAG: u64 = 0xa7_0000;
/// `user_data` of frame `f` of region `id`: `FRAME_TAG | id << 16 | f`.
const FRAME_TAG: u64 = 0xf1_0000_0000;
/// `user_data` of a command [`Multi::call`] waits for.
const CALL: u64 = 0xca11;
/// Written into a frame before it is queued: a frame the card did not write cannot pass.
const POISON: u8 = 0xee;

/// One attached region: its own memory, at an odd offset in it.
struct Region {
    memory: Memory,
    offset: usize,
    frame_bytes: u32,
    count: u32,
    queued: Vec<bool>,
    metas: Box<[FrameMeta]>,
    delivered: u64,
    /// The attach command's result once it completed.
    ended: Option<i32>,
    /// Frames are not queued again (a detach is coming).
    draining: bool,
}

impl Region {
    fn stride(&self) -> u64 {
        u64::from(self.frame_bytes) + GAP
    }

    fn len(&self) -> usize {
        // CAST: test regions are small.
        (self.stride() * u64::from(self.count - 1)) as usize + self.frame_bytes as usize
    }

    fn frame_start(&self, frame: u32) -> usize {
        // CAST: as above.
        self.offset + (self.stride() * u64::from(frame)) as usize
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping is `memory`'s, alive while `self` is.
        unsafe { std::slice::from_raw_parts(self.memory.addr() as *const u8, self.memory.len()) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above; the card writes only frames that are queued, never these.
        unsafe { std::slice::from_raw_parts_mut(self.memory.addr() as *mut u8, self.memory.len()) }
    }

    /// Every byte outside the frames still holds [`GUARD`].
    fn check_guards(&self, id: u32) -> TestResult {
        let bytes = self.bytes();
        let mut frames = (0..self.count)
            .map(|frame| self.frame_start(frame))
            .peekable();
        let mut offset = 0;
        while offset < bytes.len() {
            if frames.peek() == Some(&offset) {
                frames.next();
                offset += self.frame_bytes as usize;
                continue;
            }
            ensure!(
                bytes[offset] == GUARD,
                "region {id}: guard byte at offset {offset} overwritten ({:#x})",
                bytes[offset]
            );
            offset += 1;
        }
        Ok(())
    }
}

/// A stream of several regions on one ring of `/dev/fgrab0` (or another card).
pub(crate) struct Multi {
    /// Dropped first (fields drop in order): the regions end before their memory goes.
    ring: TestUring,
    /// Region `id` at index `id`.
    regions: Vec<Option<Region>>,
    /// Regions detached, kept mapped to check the card no longer writes them.
    revoked: Vec<(u32, Region, Vec<u8>)>,
    last_sequence: Option<u64>,
    requeue: bool,
    canceled: u64,
    /// Frames may fail with this errno (`-ENODEV`: the card is being removed; `-EIO`: it
    /// is being reset); they are counted in `failed`.
    tolerated: Option<i32>,
    failed: u64,
    path: &'static str,
}

impl Multi {
    /// A ring on `path` with an empty table of `MAX_REGIONS` fixed buffers.
    fn open(path: &'static str) -> Result<Self, String> {
        let mut ring = TestUring::open(path)?;
        ring.register_sparse(MAX_REGIONS)?;
        Ok(Self {
            ring,
            regions: (0..MAX_REGIONS).map(|_| None).collect(),
            revoked: Vec::new(),
            last_sequence: None,
            requeue: true,
            canceled: 0,
            tolerated: None,
            failed: 0,
            path,
        })
    }

    /// Attaches region `id` of `count` frames of `frame_bytes` in new memory registered as
    /// fixed buffer `buf`; returns the attach command's immediate result (0: in flight).
    fn attach_with(
        &mut self,
        id: u32,
        buf: u32,
        count: u32,
        frame_bytes: u32,
    ) -> Result<i32, String> {
        let offset = 0x123 + 7 * id as usize;
        let stride = u64::from(frame_bytes) + GAP;
        // CAST: test regions are small.
        let len = (stride * u64::from(count - 1)) as usize + frame_bytes as usize;
        let memory = Memory::new(offset + len + 4096 + 333)?;
        let mut region = Region {
            memory,
            offset,
            frame_bytes,
            count,
            queued: vec![false; count as usize],
            metas: vec![FrameMeta::new_zeroed(); count as usize].into_boxed_slice(),
            delivered: 0,
            ended: None,
            draining: false,
        };
        region.bytes_mut().fill(GUARD);
        // SAFETY: the memory lives in `self.regions` or `self.revoked` until the ring is gone
        // (`Multi` drops the ring first).
        unsafe { self.ring.register_at(buf, &region.memory)? };
        let entry = raw::Attach::new(
            self.ring.fd(),
            // CAST: below `MAX_REGIONS`.
            buf as u16,
            region.memory.addr() + offset as u64,
            region.len() as u64,
            frame_bytes,
            count,
        )
        .frame_stride(stride)
        .region(id)
        .build()
        .user_data(ATTACH_TAG | u64::from(id));
        self.ring.push_entry(entry)?;
        self.ring.flush()?;
        // An error completes the command at once; on success it stays in flight.
        let mut immediate = 0;
        for completion in self.ring.reap(0, Duration::ZERO)? {
            if completion.user_data == ATTACH_TAG | u64::from(id) {
                immediate = completion.res;
                ensure!(
                    immediate < 0,
                    "ATTACH of region {id} completed with {immediate}"
                );
            } else {
                self.handle(completion)?;
            }
        }
        if immediate == 0 {
            ensure!(
                self.regions.get(id as usize).is_some_and(Option::is_none),
                "region {id} attached twice"
            );
            self.regions[id as usize] = Some(region);
        }
        Ok(immediate)
    }

    /// Attaches region `id` (fixed buffer `id`) of `count` frames; it must succeed.
    fn attach(&mut self, id: u32, count: u32) -> TestResult {
        let res = self.attach_with(id, id, count, FRAME_BYTES)?;
        ensure!(res == 0, "ATTACH of region {id}: {res}");
        Ok(())
    }

    fn region(&mut self, id: u32) -> Result<&mut Region, String> {
        self.regions
            .get_mut(id as usize)
            .and_then(Option::as_mut)
            .ok_or(format!("region {id} is not attached"))
    }

    /// Poisons frame `frame` of region `id` and queues it (submitted with the next wait).
    fn queue(&mut self, id: u32, frame: u32) -> TestResult {
        let fd = self.ring.fd();
        let region = self.region(id)?;
        let start = region.frame_start(frame);
        let end = start + region.frame_bytes as usize;
        region.bytes_mut()[start..end].fill(POISON);
        ensure!(
            !region.queued[frame as usize],
            "region {id} frame {frame} queued twice"
        );
        region.queued[frame as usize] = true;
        let entry = raw::Queue::new(fd, frame)
            .region(id)
            .meta(&mut region.metas[frame as usize])
            .build()
            .user_data(FRAME_TAG | u64::from(id) << 16 | u64::from(frame));
        self.ring.push_entry(entry)
    }

    /// Queues every idle frame of region `id`.
    fn queue_all(&mut self, id: u32) -> TestResult {
        let count = self.region(id)?.count;
        for frame in 0..count {
            if !self.region(id)?.queued[frame as usize] {
                self.queue(id, frame)?;
            }
        }
        Ok(())
    }

    fn ids(&self) -> Vec<u32> {
        (0..MAX_REGIONS)
            .filter(|&id| self.regions[id as usize].is_some())
            .collect()
    }

    /// Books one completion: a frame is checked byte by byte against the pattern of its
    /// sequence number, its metadata against the CQE, the guard bytes after it; an attach
    /// command may complete only once none of its frames is queued any more.
    fn handle(&mut self, completion: Completion) -> TestResult {
        if completion.user_data & !0xffff == ATTACH_TAG {
            // CAST: masked.
            let id = (completion.user_data & 0xffff) as u32;
            let region = self.region(id)?;
            ensure!(
                region.ended.is_none(),
                "region {id}: attach completed twice"
            );
            ensure!(
                !region.queued.iter().any(|&queued| queued),
                "region {id}: attach completed ({}) while frames were queued",
                completion.res
            );
            region.ended = Some(completion.res);
            return Ok(());
        }
        ensure!(
            completion.user_data & !0xffff_ffff == FRAME_TAG,
            "unexpected completion {completion:?}"
        );
        // CAST: masked to 16 bits each.
        let id = (completion.user_data >> 16 & 0xffff) as u32;
        let frame = (completion.user_data & 0xffff) as u32;
        let requeue = self.requeue;
        let last = self.last_sequence;
        let tolerated = self.tolerated;
        let region = self.region(id)?;
        ensure!(
            region.queued.get(frame as usize) == Some(&true),
            "region {id} frame {frame} completed but was not queued"
        );
        region.queued[frame as usize] = false;
        let meta = region.metas[frame as usize];
        ensure!(
            meta.region == id && meta.frame == frame,
            "region {id} frame {frame}: metadata names region {} frame {}",
            meta.region,
            meta.frame
        );
        if completion.res < 0 && Some(completion.res) == tolerated {
            ensure!(
                meta.flags & (META_FLUSHED | META_ERROR) != 0,
                "region {id} frame {frame} failed: res {}, metadata {meta:?}",
                completion.res
            );
            self.failed += 1;
            return Ok(());
        }
        if completion.res < 0 {
            ensure!(
                completion.res == -libc::ECANCELED && meta.flags & META_FLUSHED != 0,
                "region {id} frame {frame} failed: res {}, metadata {meta:?}",
                completion.res
            );
            self.canceled += 1;
            return Ok(());
        }
        let sequence = completion.extra;
        ensure!(
            completion.res == region.frame_bytes as i32
                && meta.bytes == region.frame_bytes
                && meta.sequence == sequence
                && meta.flags == META_FRAME,
            "region {id} frame {frame}: res {} sequence {sequence}, metadata {meta:?}",
            completion.res
        );
        let start = region.frame_start(frame);
        let end = start + region.frame_bytes as usize;
        if let Err(mismatch) = pattern::verify(&region.bytes()[start..end], sequence, 0) {
            return Err(format!(
                "region {id} frame {frame} (sequence {sequence}): {mismatch}"
            ));
        }
        ensure!(
            region.bytes()[end..end + GAP as usize]
                .iter()
                .all(|&byte| byte == GUARD),
            "region {id}: guard bytes after frame {frame} overwritten"
        );
        region.delivered += 1;
        let draining = region.draining;
        if let Some(last) = last {
            // One stream: frames of every region share the card's sequence numbers.
            ensure!(
                sequence > last,
                "region {id} frame {frame}: sequence {sequence} after {last}"
            );
        }
        self.last_sequence = Some(sequence);
        if requeue && !draining {
            self.queue(id, frame)?;
        }
        Ok(())
    }

    /// Submits what is queued and handles completions for up to `timeout`, until `done`.
    fn run_until(&mut self, timeout: Duration, done: impl Fn(&Self) -> bool) -> TestResult {
        let deadline = Instant::now() + timeout;
        while !done(self) {
            ensure!(Instant::now() < deadline, "no progress within {timeout:?}");
            for completion in self.ring.reap(1, Duration::from_millis(100))? {
                self.handle(completion)?;
            }
        }
        Ok(())
    }

    /// Delivered frames of region `id` (0 if not attached).
    fn delivered(&self, id: u32) -> u64 {
        self.regions[id as usize]
            .as_ref()
            .map_or(0, |region| region.delivered)
    }

    /// Submits `entry` and waits for its result, handling the frames that complete
    /// meanwhile.
    fn call(&mut self, entry: io_uring::squeue::Entry128) -> Result<i32, String> {
        self.ring.push_entry(entry.user_data(CALL))?;
        self.ring.flush()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            ensure!(
                Instant::now() < deadline,
                "no answer to a command within 10 s"
            );
            let mut answer = None;
            for completion in self.ring.reap(1, Duration::from_millis(100))? {
                if completion.user_data == CALL {
                    answer = Some(completion.res);
                } else {
                    self.handle(completion)?;
                }
            }
            if let Some(res) = answer {
                return Ok(res);
            }
        }
    }

    fn start(&mut self) -> TestResult {
        self.last_sequence = None;
        self.requeue = true;
        let res = self.call(raw::Start::new(self.ring.fd()).build())?;
        ensure!(res == 0, "START: {res}");
        Ok(())
    }

    /// Stops the stream and collects every frame.
    fn stop(&mut self) -> TestResult {
        // Frames the stop returns stay with the test.
        self.requeue = false;
        let res = self.call(raw::Stop::new(self.ring.fd()).build())?;
        ensure!(res == 0, "STOP: {res}");
        self.run_until(Duration::from_secs(10), |multi| {
            multi
                .regions
                .iter()
                .flatten()
                .all(|region| !region.queued.iter().any(|&queued| queued))
        })
    }

    /// Detaches region `id`: `DETACH` answers 0, then its attach command completes with 0
    /// once its frames came back. The region is kept (mapped) with a snapshot of its bytes.
    fn detach(&mut self, id: u32) -> TestResult {
        self.region(id)?.draining = true;
        let res = self.call(raw::Detach::new(self.ring.fd()).region(id).build())?;
        ensure!(res == 0, "DETACH of region {id}: {res}");
        self.run_until(Duration::from_secs(10), |multi| {
            multi.regions[id as usize]
                .as_ref()
                .is_some_and(|region| region.ended.is_some())
        })?;
        let region = self.regions[id as usize].take().ok_or("region vanished")?;
        ensure!(
            region.ended == Some(0),
            "region {id}: attach completed with {:?}",
            region.ended
        );
        region.check_guards(id)?;
        let snapshot = region.bytes().to_vec();
        self.revoked.push((id, region, snapshot));
        Ok(())
    }

    /// Detached regions still hold exactly what they held when their attach completed.
    fn check_revoked(&self) -> TestResult {
        for (id, region, snapshot) in &self.revoked {
            if let Some(offset) = region
                .bytes()
                .iter()
                .zip(snapshot)
                .position(|(now, then)| now != then)
            {
                return Err(format!(
                    "detached region {id} was written after its attach completed (offset \
                     {offset})"
                ));
            }
        }
        Ok(())
    }

    fn check_guards(&self) -> TestResult {
        for id in self.ids() {
            if let Some(region) = &self.regions[id as usize] {
                region.check_guards(id)?;
            }
        }
        Ok(())
    }

    /// `STATS` through another file (this ring's completions are the test's).
    fn stats(&self) -> Result<Stats, String> {
        TestUring::open(self.path)?.stats()
    }
}

/// Region ids the tests use: spread over the whole range.
const IDS: [u32; 8] = [0, 1, 5, 9, 17, 33, 62, 63];

/// Attaches the regions of [`IDS`]: even positions one frame (a GenTL buffer), odd ones
/// three.
fn attach_eight(multi: &mut Multi) -> TestResult {
    for (position, id) in IDS.into_iter().enumerate() {
        multi.attach(id, if position % 2 == 0 { 1 } else { 3 })?;
    }
    Ok(())
}

/// Eight separately allocated, unaligned regions on one stream: frames of every region are
/// filled (checked byte by byte, guard bytes around every frame), in one sequence; `STATS`
/// counts them all; each region detaches on its own.
pub fn regions_stream() -> TestResult {
    let mut multi = Multi::open(CARD0)?;
    attach_eight(&mut multi)?;
    let stats = multi.stats()?;
    ensure!(
        stats.state == STATE_ATTACHED
            && stats.frame_count == 16
            && stats.frame_bytes == FRAME_BYTES,
        "STATS with eight regions: {stats:?}"
    );
    for id in IDS {
        multi.queue_all(id)?;
    }
    multi.start()?;
    multi.run_until(Duration::from_secs(60), |multi| {
        IDS.iter().all(|&id| multi.delivered(id) >= 4)
    })?;
    multi.stop()?;
    multi.check_guards()?;
    let delivered: u64 = IDS.iter().map(|&id| multi.delivered(id)).sum();
    let stats = multi.stats()?;
    ensure!(
        stats.frames_delivered == delivered && stats.frames_failed == 0,
        "delivered {delivered} frames, STATS says {stats:?}"
    );
    for id in IDS {
        multi.detach(id)?;
    }
    ensure!(multi.stats()?.state == STATE_IDLE, "regions left attached");
    multi.check_revoked()?;
    harness::info(&format!(
        "8 regions streamed {delivered} verified frames in one sequence"
    ));
    Ok(())
}

/// One region detached while the others stream: they keep streaming (the stream is never
/// stopped, sequence numbers go on), its attach command completes after its frames came
/// back, its pages are not written afterwards, and a new region takes its id.
pub fn regions_revoke() -> TestResult {
    let mut multi = Multi::open(CARD0)?;
    attach_eight(&mut multi)?;
    for id in IDS {
        multi.queue_all(id)?;
    }
    multi.start()?;
    multi.run_until(Duration::from_secs(60), |multi| {
        IDS.iter().all(|&id| multi.delivered(id) >= 3)
    })?;
    let mut revokes = 0;
    // Detach the three-frame regions one after the other, each while some of its frames
    // are on the card.
    for id in [1, 9, 17] {
        multi.run_until(Duration::from_secs(10), |multi| {
            multi.regions[id as usize]
                .as_ref()
                .is_some_and(|region| region.queued.iter().any(|&queued| queued))
        })?;
        let before = multi.last_sequence;
        multi.detach(id)?;
        revokes += 1;
        let stats = multi.stats()?;
        ensure!(
            stats.state == STATE_STREAMING,
            "the stream stopped when region {id} was detached: {stats:?}"
        );
        let others: Vec<u32> = multi.ids();
        let target: Vec<(u32, u64)> = others
            .iter()
            .map(|&other| (other, multi.delivered(other) + 3))
            .collect();
        multi.run_until(Duration::from_secs(60), |multi| {
            target
                .iter()
                .all(|&(other, count)| multi.delivered(other) >= count)
        })?;
        ensure!(
            multi.last_sequence > before,
            "sequence numbers restarted after the detach"
        );
        multi.check_revoked()?;
    }
    // A new region takes a freed id (and fixed buffer slot) while the others stream.
    multi.attach(9, 2)?;
    multi.queue_all(9)?;
    multi.run_until(Duration::from_secs(60), |multi| multi.delivered(9) >= 4)?;
    multi.stop()?;
    multi.check_guards()?;
    multi.check_revoked()?;
    let stats = multi.stats()?;
    ensure!(stats.frames_failed == 0, "frames failed: {stats:?}");
    for id in multi.ids() {
        multi.detach(id)?;
    }
    ensure!(multi.stats()?.state == STATE_IDLE, "regions left attached");
    harness::info(&format!(
        "{revokes} regions detached while streaming, {} frames of theirs canceled; the \
         others streamed on",
        multi.canceled
    ));
    drop(multi);
    stream_briefly(CARD0, 50).map(|_| ())
}

/// Bad region ids and geometry are refused with their errno and disturb nothing.
pub fn regions_rejects() -> TestResult {
    let mut multi = Multi::open(CARD0)?;
    multi.attach(0, 2)?;
    let fd = multi.ring.fd();
    let cases: Vec<(&str, i32, i32)> = vec![
        (
            "region id MAX_REGIONS",
            multi.attach_with(MAX_REGIONS, 3, 1, FRAME_BYTES)?,
            -libc::EINVAL,
        ),
        (
            "region id in use",
            multi.attach_with(0, 4, 1, FRAME_BYTES)?,
            -libc::EBUSY,
        ),
        (
            "another frame size",
            multi.attach_with(2, 2, 1, FRAME_BYTES + 1)?,
            -libc::EINVAL,
        ),
        (
            "QUEUE of a region not attached",
            multi.call(raw::Queue::new(fd, 0).region(5).build())?,
            -libc::ENOENT,
        ),
        (
            "QUEUE of region MAX_REGIONS",
            multi.call(raw::Queue::new(fd, 0).region(MAX_REGIONS).build())?,
            -libc::EINVAL,
        ),
        (
            "QUEUE of a frame beyond the region",
            multi.call(raw::Queue::new(fd, 2).region(0).build())?,
            -libc::EINVAL,
        ),
        (
            "DETACH of a region not attached",
            multi.call(raw::Detach::new(fd).region(7).build())?,
            -libc::ENOENT,
        ),
        (
            "DETACH of region MAX_REGIONS",
            multi.call(raw::Detach::new(fd).region(MAX_REGIONS).build())?,
            -libc::EINVAL,
        ),
    ];
    for (what, res, expected) in cases {
        ensure!(res == expected, "{what}: expected {expected}, got {res}");
    }
    // Another file cannot add a region to this file's stream.
    let mut other = Multi::open(CARD0)?;
    let res = other.attach_with(3, 3, 1, FRAME_BYTES)?;
    ensure!(
        res == -libc::EBUSY,
        "another file's region: expected -EBUSY, got {res}"
    );
    drop(other);
    let stats = multi.stats()?;
    ensure!(
        stats.state == STATE_ATTACHED && stats.frame_count == 2 && stats.frames_queued == 0,
        "the refusals disturbed the stream: {stats:?}"
    );
    // The stream's frames are bounded by the card's submit ring, over all regions.
    drop(multi);
    wait_idle(CARD0)?;
    const PER_REGION: u32 = 1000;
    let mut small = Multi::open(CARD0)?;
    let mut left = MAX_FRAMES;
    let mut id = 0;
    while left >= PER_REGION {
        let res = small.attach_with(id, id, PER_REGION, 16)?;
        ensure!(res == 0, "region {id} of {PER_REGION} frames: {res}");
        left -= PER_REGION;
        id += 1;
    }
    let res = small.attach_with(id, id, left + 1, 16)?;
    ensure!(
        res == -libc::ENOSPC,
        "frames beyond MAX_FRAMES over {} regions: expected -ENOSPC, got {res}",
        id + 1
    );
    let res = small.attach_with(id, id, left, 16)?;
    ensure!(
        res == 0,
        "frames up to MAX_FRAMES over {} regions: {res}",
        id + 1
    );
    drop(small);
    wait_idle(CARD0)?;
    // The surviving region streams normally.
    let mut multi = Multi::open(CARD0)?;
    multi.attach(0, 2)?;
    multi.queue_all(0)?;
    multi.start()?;
    multi.run_until(Duration::from_secs(60), |multi| multi.delivered(0) >= 5)?;
    multi.stop()?;
    multi.detach(0)?;
    Ok(())
}

/// With eight regions streaming, the ring exits (the file is closed first, so the ring's
/// exit is also the file's release): every region ends, the card streams again.
pub fn regions_ring_exit() -> TestResult {
    let mut multi = Multi::open(CARD0)?;
    attach_eight(&mut multi)?;
    for id in IDS {
        multi.queue_all(id)?;
    }
    multi.start()?;
    multi.run_until(Duration::from_secs(60), |multi| {
        IDS.iter().all(|&id| multi.delivered(id) >= 2)
    })?;
    // One region detached first: a revoke followed by the others' cancel.
    multi.detach(9)?;
    // Submit the frames queued again, then close the file: the commands hold it, so the
    // frames on the card still complete, and the regions stay until the ring goes.
    multi.requeue = false;
    multi.ring.flush()?;
    multi.ring.close_file()?;
    multi.run_until(Duration::from_secs(10), |multi| {
        multi
            .regions
            .iter()
            .flatten()
            .all(|region| !region.queued.iter().any(|&queued| queued))
    })?;
    ensure!(
        multi.stats()?.state == STATE_STREAMING,
        "the regions ended when the file was closed, although commands hold it"
    );
    drop(multi);
    wait_idle(CARD0)?;
    stream_briefly(CARD0, 100).map(|_| ())
}

/// A process streaming eight regions is killed: every region ends, the card streams
/// again.
pub fn regions_process_killed() -> TestResult {
    let mut child = Command::new("/bin/fgrab-guest")
        .args(["regions-child", CARD0])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|error| format!("spawning the streaming process: {error}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|error| error.to_string())?;
    ensure!(line.trim() == "streaming", "child said `{}`", line.trim());
    let _ = child.kill();
    let _ = child.wait();
    wait_idle(CARD0)?;
    stream_briefly(CARD0, 100).map(|_| ())
}

/// The streaming process of [`regions_process_killed`].
pub fn regions_child(path: &'static str) -> ! {
    let result = (|| -> TestResult {
        let mut multi = Multi::open(path)?;
        attach_eight(&mut multi)?;
        for id in IDS {
            multi.queue_all(id)?;
        }
        multi.start()?;
        multi.run_until(Duration::from_secs(60), |multi| {
            IDS.iter().all(|&id| multi.delivered(id) >= 2)
        })?;
        println!("streaming");
        multi.run_until(Duration::from_secs(3600), |_| false)
    })();
    println!("error: {}", result.err().unwrap_or_default());
    std::process::exit(1)
}

/// Hostile cards (`vm-hostile`): a region detached while streaming on a card whose stop
/// does not stop cleanly (`path`: one that answers idle while keeping frames and writes one
/// late, or one that ignores the stop). The driver resets the card before it lets the
/// region go: the stream stops, the other regions' frames fail with `-EIO`, the detached
/// region is not written afterwards, and the card streams again.
fn hostile_revoke(path: &'static str, lying: bool) -> TestResult {
    let mut multi = Multi::open(path)?;
    for id in [0, 1, 2] {
        multi.attach(id, 4)?;
        multi.queue_all(id)?;
    }
    multi.start()?;
    // The card's fault fires at the first stop after sequence 50 (lying) or at once (deaf).
    multi.run_until(Duration::from_secs(60), |multi| {
        multi.last_sequence.is_some_and(|last| last >= 60)
    })?;
    // Region 1's frames all go to the card in the same submission as its DETACH, so that
    // they are on the card (it takes one per frame period) when the detach comes.
    multi.region(1)?.draining = true;
    multi.run_until(Duration::from_secs(10), |multi| {
        multi.regions[1]
            .as_ref()
            .is_some_and(|region| !region.queued.iter().any(|&queued| queued))
    })?;
    multi.queue_all(1)?;
    multi.requeue = false;
    // The card is reset: the other regions' frames on it fail with -EIO.
    multi.tolerated = Some(-libc::EIO);
    let begun = Instant::now();
    let res = multi.call(raw::Detach::new(multi.ring.fd()).region(1).build())?;
    ensure!(res == 0, "DETACH: {res}");
    let took = begun.elapsed();
    multi.run_until(Duration::from_secs(10), |multi| {
        multi.regions.iter().flatten().all(|region| {
            !region.queued.iter().any(|&queued| queued)
                && (!region.draining || region.ended.is_some())
        })
    })?;
    let failed = multi.failed;
    let region = multi.regions[1].take().ok_or("region 1 vanished")?;
    ensure!(
        region.ended == Some(0),
        "region 1 ended with {:?}",
        region.ended
    );
    let snapshot = region.bytes().to_vec();
    multi.revoked.push((1, region, snapshot));
    // A late write would land 500 ms after the stop.
    std::thread::sleep(Duration::from_millis(1500));
    multi.check_revoked()?;
    let stats = multi.stats()?;
    ensure!(
        stats.state == STATE_ATTACHED,
        "a card that was reset still streams: {stats:?}"
    );
    ensure!(
        crate::hostile::kernel_log()?.contains(if lying {
            "frames unaccounted for; resetting the card"
        } else {
            "after a stop request; resetting the card"
        }),
        "the kernel log does not say the card was reset"
    );
    harness::info(&format!(
        "detach on a card that {} took {} ms; {failed} frames of the other regions failed",
        if lying {
            "lies about its stop"
        } else {
            "ignores its stop"
        },
        took.as_millis()
    ));
    // The card streams again.
    multi.tolerated = None;
    for id in multi.ids() {
        multi.region(id)?.draining = false;
        multi.queue_all(id)?;
    }
    multi.start()?;
    multi.run_until(Duration::from_secs(60), |multi| {
        multi.delivered(0) >= 8 && multi.delivered(2) >= 8
    })?;
    multi.stop()?;
    multi.check_guards()?;
    multi.check_revoked()?;
    for id in multi.ids() {
        multi.detach(id)?;
    }
    Ok(())
}

/// [`hostile_revoke`] on the card that answers a stop with idle while keeping frames.
pub fn hostile_regions_lying_stop() -> TestResult {
    hostile_revoke("/dev/fgrab3", true)
}

/// [`hostile_revoke`] on the card that ignores its first stop.
pub fn hostile_regions_deaf_stop() -> TestResult {
    hostile_revoke("/dev/fgrab4", false)
}

/// The client library's [`fgrab::Regions`], as a GenTL producer uses it: one buffer of one
/// frame per announced buffer (and one of three frames), each allocated on its own, frames
/// checked byte by byte. On a triggered camera (no frame starts without a trigger), a
/// buffer whose frame waits on the card is revoked: it comes back untouched, the other
/// buffers' frames stay queued in their order, and the next triggers fill them with
/// consecutive sequence numbers (the revoke used none).
pub fn client_regions() -> TestResult {
    use fgrab::{Buffer, Card, FeatureValue, Geometry, RegionId};
    let err = |error: fgrab::Error| error.to_string();
    let _restore = crate::camera::Restore;
    let card = Card::open(CARD0).map_err(err)?;
    card.features()
        .set_feature("TriggerMode", FeatureValue::Enum("On".into()))
        .map_err(err)?;
    let mut regions = card.into_regions().map_err(err)?;
    let offset = 11;
    let mut ids = Vec::new();
    for count in [1, 1, 1, 1, 1, 3] {
        let stride = u64::from(FRAME_BYTES) + GAP;
        // CAST: small.
        let len = offset + (stride * u64::from(count)) as usize + 100;
        let geometry = Geometry::new(FRAME_BYTES, count)
            .stride(stride)
            .offset(offset);
        let id = regions
            .attach_region(Buffer::from_vec(vec![GUARD; len]), geometry)
            .map_err(|(error, _)| err(error))?;
        ids.push((id, count));
    }
    ensure!(
        ids.iter().map(|(id, _)| id.0).collect::<Vec<_>>() == [0, 1, 2, 3, 4, 5],
        "ids {ids:?}"
    );
    // Another frame size is refused, the buffer comes back.
    let refused = regions.attach_region(
        Buffer::from_vec(vec![0; 200_000]),
        Geometry::new(FRAME_BYTES + 1, 1),
    );
    ensure!(
        matches!(&refused, Err((error, buffer)) if error.errno() == Some(libc::EINVAL) && buffer.len() == 200_000),
        "another frame size: {:?}",
        refused.map_err(|(error, _)| error)
    );
    for &(id, count) in &ids {
        for index in 0..count {
            regions.queue(id, index).map_err(err)?;
        }
    }
    regions.start().map_err(err)?;
    ensure!(
        regions
            .next_frame(Some(Duration::from_millis(300)))
            .map_err(err)?
            .is_none(),
        "a frame without a trigger"
    );
    // Region 1's frame is second on the card: revoke it while it waits there.
    let buffer = regions.detach_region(RegionId(1)).map_err(err)?;
    ensure!(
        buffer
            .into_box()
            .is_some_and(|bytes| bytes.iter().all(|&byte| byte == GUARD)),
        "the revoked buffer was written"
    );
    let stats = regions.stats().map_err(err)?;
    ensure!(
        stats.state == STATE_STREAMING && stats.frames_queued == 7,
        "after the revoke: {stats:?}"
    );
    // One frame per trigger, in queue order, sequence numbers 0, 1, ...
    let expected: Vec<(u32, u32)> = vec![(0, 0), (2, 0), (3, 0), (4, 0), (5, 0), (5, 1), (5, 2)];
    for (sequence, &(id, index)) in expected.iter().enumerate() {
        regions.features().trigger_software().map_err(err)?;
        let frame = regions
            .next_frame(Some(Duration::from_secs(5)))
            .map_err(err)?
            .ok_or(format!("no frame for trigger {sequence}"))?;
        ensure!(
            frame.region == RegionId(id) && frame.info.index == index,
            "trigger {sequence}: frame {frame:?}, expected region {id} frame {index}"
        );
        ensure!(
            frame.info.sequence == sequence as u64 && frame.info.bytes == FRAME_BYTES,
            "trigger {sequence}: {frame:?}"
        );
        let bytes = regions
            .frame_bytes(frame.region, index)
            .ok_or("frame bytes not available")?;
        pattern::verify(bytes, frame.info.sequence, 0).map_err(|error| error.to_string())?;
    }
    // GenTL revokes buffers that are not queued: region 2's frame is handed out.
    let buffer = regions.detach_region(RegionId(2)).map_err(err)?;
    ensure!(
        buffer.into_box().is_some_and(|bytes| {
            bytes[..offset].iter().all(|&byte| byte == GUARD)
                && pattern::verify(&bytes[offset..offset + FRAME_BYTES as usize], 1, 0).is_ok()
                && bytes[offset + FRAME_BYTES as usize..]
                    .iter()
                    .all(|&byte| byte == GUARD)
        }),
        "region 2's buffer does not hold its frame between intact guard bytes"
    );
    regions.stop().map_err(err)?;
    let stats = regions.stats().map_err(err)?;
    ensure!(
        stats.frames_delivered == 7 && stats.frames_dropped_other == 0,
        "{stats:?}"
    );
    drop(regions);
    harness::info("GenTL-style buffers: one revoked while queued on a triggered camera");
    wait_idle(CARD0)
}

/// The card is hot-removed (`vm-removal`) while eight regions stream: every frame and every
/// attach command completes with `-ENODEV` (frames filled before the removal normally), no
/// guard byte is touched; found again by a bus rescan, the card streams.
pub fn regions_hot_unplug() -> TestResult {
    let address = pci_address(0)?;
    {
        let mut multi = Multi::open(CARD0)?;
        attach_eight(&mut multi)?;
        for id in IDS {
            multi.queue_all(id)?;
        }
        multi.start()?;
        multi.run_until(Duration::from_secs(60), |multi| {
            IDS.iter().all(|&id| multi.delivered(id) >= 2)
        })?;
        multi.requeue = false;
        multi.tolerated = Some(-libc::ENODEV);
        multi.ring.flush()?;
        pci_remove(&address)?;
        multi.run_until(Duration::from_secs(30), |multi| {
            multi
                .regions
                .iter()
                .flatten()
                .all(|region| region.ended.is_some() && !region.queued.iter().any(|&queued| queued))
        })?;
        for id in IDS {
            let ended = multi.region(id)?.ended;
            ensure!(
                ended == Some(-libc::ENODEV),
                "region {id} ended with {ended:?} on removal"
            );
        }
        multi.check_guards()?;
    }
    wait_for_node(CARD0, false, Duration::from_secs(10))?;
    std::fs::write("/sys/bus/pci/rescan", "1").map_err(|error| format!("rescan: {error}"))?;
    wait_for_node(CARD0, true, Duration::from_secs(30))?;
    stream_briefly(CARD0, 100).map(|_| ())
}
