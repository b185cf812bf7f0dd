// SPDX-License-Identifier: GPL-2.0

//! A region of an io_uring fixed buffer attached to a card: its frames, each DMA-mapped
//! once at attach time, and each frame's descriptor list in coherent memory the card reads.
//!
//! The pages stay pinned by io_uring for as long as the attach command is in flight; a
//! [`Region`] must therefore be dropped (frames unmapped) before that command completes.
//! `domain/stream.rs` guarantees the order.
//!
//! Both kinds of memory come from layer 1: [`MappedSgTable`] over the user's pinned pages,
//! [`PageFrame`] for the copy path's driver-owned frames.

use kernel::{
    pci,
    prelude::*,
    sync::{aref::ARef, Arc},
};

use crate::{
    abstractions::{
        coherent::DmaBuffer,
        log::warn_ratelimited,
        page_frame::PageFrame,
        pci::{bounce_pool_bytes, dma_alignment, max_sg_entry},
        sg_table::{DmaRange, MappedSgTable},
        uring_cmd::{FixedBufferImport, UringCmd},
    },
    domain::{descriptors, sglist},
    hardware::dma::{Descriptor, DESCRIPTOR_LIST_ALIGN},
    uapi::{AttachCmd, DeviceInfo, Stats},
};

/// Descriptor lists are packed into coherent chunks of this size (a list longer than that
/// gets a chunk of its own): small allocations stay easy to satisfy on a fragmented system,
/// and the card only needs each list to be contiguous by itself.
const LIST_CHUNK_BYTES: usize = 64 * 1024;

/// A region's frames may hold at most this share (1/N) of the swiotlb pool when their
/// mappings are bounced: bounce slots stay taken for the region's whole life, and every
/// other device of the machine (disks, network) needs the same pool for its short-lived
/// mappings. A quarter leaves a second card room, and the rest of the system most of it.
const BOUNCE_POOL_SHARE: u64 = 4;

/// Refuses `bytes` of frames that would be bounced through more than the region's share
/// of the swiotlb pool (see [`BOUNCE_POOL_SHARE`]), before a single slot is taken.
///
/// # Errors
///
/// `ENOBUFS` (the pool is the buffer space there is no room in; `ENOMEM` would suggest
/// a transient shortage, `E2BIG` is the descriptor limit).
fn check_bounce(pdev: &ARef<pci::Device>, bytes: u64) -> Result {
    let Some(pool) = bounce_pool_bytes(pdev) else {
        return Ok(());
    };
    let cap = pool / BOUNCE_POOL_SHARE;
    if bytes > cap {
        warn_ratelimited(
            pdev,
            fmt!(
                "region of {} bytes of frames refused (ENOBUFS): its DMA is bounced through \
                 swiotlb and would hold that much of the {} byte pool for its whole life; \
                 the limit is {} bytes (a quarter). Use fewer or smaller frames, or boot \
                 with a larger pool (swiotlb=<slabs of 2 KiB>)",
                bytes,
                pool,
                cap
            ),
        );
        return Err(ENOBUFS);
    }
    Ok(())
}

/// DMA-maps region bytes `offset..offset + len` of `import` for device writes, as one
/// table of its own (frames are synced one at a time, and the DMA API syncs whole tables).
///
/// # Errors
///
/// `EINVAL` for an empty or out-of-range span; mapping errors (`ENOMEM`, `EIO`).
fn map_frame(
    import: &FixedBufferImport,
    offset: u64,
    len: u64,
    pdev: &ARef<pci::Device>,
) -> Result<MappedSgTable> {
    let max = u32::try_from(max_sg_entry(pdev)).unwrap_or(u32::MAX);
    let mut pieces = KVec::new();
    sglist::frame_pieces(
        import.segments(),
        import.skip(),
        offset,
        len,
        max,
        |piece| {
            pieces.push(piece, GFP_KERNEL)?;
            Ok(())
        },
    )?;
    MappedSgTable::map(import, &pieces, pdev)
}

/// Validated frame layout of a region.
#[derive(Clone, Copy)]
pub(crate) struct Geometry {
    /// Region bytes.
    len: u64,
    /// Distance between frame starts.
    stride: u64,
    /// Bytes per frame.
    frame_bytes: u32,
    /// Number of frames.
    count: u32,
}

impl Geometry {
    /// Checks an attach request against the card's limits.
    ///
    /// # Errors
    ///
    /// `EINVAL` for zero sizes, a stride shorter than a frame, frames beyond the region,
    /// arithmetic overflow, or limits exceeded.
    pub(crate) fn new(request: &AttachCmd, info: &DeviceInfo) -> Result<Self> {
        let geometry = Self {
            len: request.len,
            stride: request.frame_stride,
            frame_bytes: request.frame_bytes,
            count: request.frame_count,
        };
        if geometry.len == 0
            || geometry.frame_bytes == 0
            || geometry.frame_bytes > info.max_frame_bytes
            || geometry.count == 0
            || geometry.count > info.max_frames
            || geometry.stride < u64::from(geometry.frame_bytes)
        {
            return Err(EINVAL);
        }
        let end = geometry
            .stride
            .checked_mul(u64::from(geometry.count - 1))
            .and_then(|last| last.checked_add(u64::from(geometry.frame_bytes)))
            .ok_or(EINVAL)?;
        if end > geometry.len || request.addr.checked_add(geometry.len).is_none() {
            return Err(EINVAL);
        }
        Ok(geometry)
    }

    /// Bytes of all frames (what bounce buffering would hold).
    fn frames_bytes(&self) -> u64 {
        // No overflow: at most `MAX_FRAMES` frames of at most `u32::MAX` bytes.
        u64::from(self.frame_bytes) * u64::from(self.count)
    }

    /// Whether frames starting at user address `addr` share no cache line with each other
    /// when lines are `alignment` bytes: the region's start and the stride are multiples of
    /// it. Where DMA is not coherent, syncing a frame for the CPU invalidates whole lines,
    /// so a frame sharing a line with its neighbour would lose the bytes the card wrote
    /// there for the neighbour.
    fn cache_aligned(&self, addr: u64, alignment: u32) -> bool {
        let alignment = u64::from(alignment.max(1));
        addr % alignment == 0 && (self.count == 1 || self.stride % alignment == 0)
    }

    /// Region offset of frame `index`.
    fn offset(&self, index: u32) -> u64 {
        // No overflow: `new` checked the last frame's end.
        self.stride * u64::from(index)
    }
}

/// Where a frame's bytes live.
enum Memory {
    /// Bytes of the user's fixed buffer, DMA-mapped for this frame alone.
    User(MappedSgTable),
    /// Driver-owned pages, charged to the reader's memory cgroup (copy mode, `read()`);
    /// shared with a `read()` that copies them outside the card's lock.
    Kernel(Arc<PageFrame>),
}

/// One frame: its memory and where the card finds its descriptor list.
struct Frame {
    memory: Memory,
    /// Bus address of the descriptor list.
    list: u64,
    /// Descriptors in the list.
    descriptors: u32,
}

/// Packs descriptor lists into coherent chunks.
struct ListWriter<'a> {
    chunks: KVec<DmaBuffer>,
    /// Bytes used in the last chunk.
    used: usize,
    /// Its size.
    size: usize,
    pdev: &'a ARef<pci::Device>,
    /// The list being built.
    scratch: KVec<Descriptor>,
}

impl<'a> ListWriter<'a> {
    /// No list yet; chunks are allocated for `pdev` as lists need them.
    fn new(pdev: &'a ARef<pci::Device>) -> Self {
        Self {
            chunks: KVec::new(),
            used: 0,
            size: 0,
            pdev,
            scratch: KVec::new(),
        }
    }

    /// Builds the descriptor list of a frame from its DMA extents (merged, split at the
    /// card's maximum segment), writes it, and returns its bus address and length.
    ///
    /// # Errors
    ///
    /// `E2BIG` if the card does not accept that many descriptors; allocation errors.
    fn write_frame(
        &mut self,
        extents: impl IntoIterator<Item = DmaRange>,
        info: &DeviceInfo,
    ) -> Result<(u64, u32)> {
        let mut list = core::mem::take(&mut self.scratch);
        list.clear();
        let count = descriptors::build(extents, info.max_segment_bytes, |segment| {
            list.push(
                Descriptor {
                    addr: segment.addr,
                    len: segment.len,
                    flags: 0,
                },
                GFP_KERNEL,
            )?;
            Ok(())
        })?;
        if count > info.max_descriptors_per_frame {
            return Err(E2BIG);
        }
        if let Some(last) = list.last_mut() {
            last.flags = Descriptor::LAST;
        }
        let address = self.write(&list);
        self.scratch = list;
        Ok((address?, count))
    }

    /// Copies `list` into coherent memory and returns its bus address.
    fn write(&mut self, list: &[Descriptor]) -> Result<u64> {
        let bytes = <[Descriptor] as IntoBytes>::as_bytes(list);
        let needed = bytes.len().next_multiple_of(DESCRIPTOR_LIST_ALIGN);
        if self.chunks.is_empty() || self.size - self.used < needed {
            let size = needed.max(LIST_CHUNK_BYTES);
            self.chunks
                .push(DmaBuffer::new(self.pdev, size)?, GFP_KERNEL)?;
            self.used = 0;
            self.size = size;
        }
        let chunk = self.chunks.last_mut().ok_or(EINVAL)?;
        chunk.write(self.used, bytes)?;
        let address = chunk.dma_address(self.used);
        self.used += needed;
        Ok(address)
    }
}

/// An attached region. Field order is drop order: frames are unmapped, then their lists
/// freed, then the import released, which marks the region's pages dirty: the card wrote
/// them, and io_uring unpins them without doing so.
pub(crate) struct Region {
    frames: KVec<Frame>,
    _lists: KVec<DmaBuffer>,
    /// The fixed-buffer import (none for driver-owned frames).
    _import: Option<FixedBufferImport>,
    geometry: Geometry,
    mapped_entries: u32,
}

impl Region {
    /// Imports the region an attach command names, maps every frame for device writes and
    /// writes every frame's descriptor list.
    ///
    /// # Errors
    ///
    /// Those of [`Geometry::new`] and [`UringCmd::import_fixed`]; `EINVAL` where DMA is
    /// not coherent and the region's address or stride is not a multiple of the DMA cache
    /// alignment; `ENOBUFS` if bounced frames would hold more than their share of the
    /// swiotlb pool; `E2BIG` if a frame needs more descriptors than the card accepts;
    /// mapping and allocation errors.
    pub(crate) fn attach(
        cmd: &UringCmd,
        request: &AttachCmd,
        info: &DeviceInfo,
        pdev: &ARef<pci::Device>,
    ) -> Result<Self> {
        let geometry = Geometry::new(request, info)?;
        let alignment = dma_alignment(pdev);
        if !geometry.cache_aligned(request.addr, alignment) {
            warn_ratelimited(
                pdev,
                fmt!(
                    "region refused (EINVAL): DMA is not coherent here, so the region's \
                     address (here {} bytes into a cache line) and frame stride ({}) must be \
                     multiples of the {} byte DMA cache alignment, or syncing one frame would \
                     discard bytes of another",
                    request.addr % u64::from(alignment),
                    geometry.stride,
                    alignment
                ),
            );
            return Err(EINVAL);
        }
        check_bounce(pdev, geometry.frames_bytes())?;
        let import = cmd.import_fixed(request.addr, geometry.len)?;
        let mut frames = KVec::with_capacity(geometry.count as usize, GFP_KERNEL)?;
        let mut lists = ListWriter::new(pdev);
        let mut mapped_entries = 0u32;
        for index in 0..geometry.count {
            let mapping = map_frame(
                &import,
                geometry.offset(index),
                u64::from(geometry.frame_bytes),
                pdev,
            )?;
            let (address, count) = lists.write_frame(mapping.dma_ranges(), info)?;
            // CAST: a frame has at most `frame_bytes` entries.
            mapped_entries = mapped_entries.saturating_add(mapping.dma_ranges().count() as u32);
            frames.push(
                Frame {
                    memory: Memory::User(mapping),
                    list: address,
                    descriptors: count,
                },
                GFP_KERNEL,
            )?;
        }
        Ok(Self {
            frames,
            _lists: lists.chunks,
            _import: Some(import),
            geometry,
            mapped_entries,
        })
    }

    /// Allocates `count` driver-owned frames of `frame_bytes`, charged to the calling task's
    /// memory cgroup, for the copy path (`read()`): the card writes them, `read()` copies
    /// them out. May take long (reclaim): the caller must not hold the card's lock.
    ///
    /// # Errors
    ///
    /// `EINVAL` for sizes outside the card's limits; `ENOBUFS` if the frames would be
    /// bounced through more than their share of the swiotlb pool; `ENOMEM` (also at the
    /// memory cgroup's limit); mapping errors.
    pub(crate) fn kernel(
        frame_bytes: u32,
        count: u32,
        info: &DeviceInfo,
        pdev: &ARef<pci::Device>,
    ) -> Result<Self> {
        let request = AttachCmd {
            addr: 0,
            len: u64::from(frame_bytes) * u64::from(count),
            frame_stride: u64::from(frame_bytes),
            frame_bytes,
            frame_count: count,
            ..AttachCmd::default()
        };
        let geometry = Geometry::new(&request, info)?;
        check_bounce(pdev, geometry.frames_bytes())?;
        let mut frames = KVec::with_capacity(count as usize, GFP_KERNEL)?;
        let mut lists = ListWriter::new(pdev);
        for _ in 0..count {
            let frame = Arc::new(PageFrame::new(pdev, frame_bytes)?, GFP_KERNEL)?;
            let (address, descriptors) = lists.write_frame(frame.dma_ranges(), info)?;
            frames.push(
                Frame {
                    memory: Memory::Kernel(frame),
                    list: address,
                    descriptors,
                },
                GFP_KERNEL,
            )?;
        }
        Ok(Self {
            frames,
            _lists: lists.chunks,
            _import: None,
            geometry,
            mapped_entries: 0,
        })
    }

    /// Whether the frames are driver-owned (copy mode).
    pub(crate) fn is_kernel(&self) -> bool {
        self._import.is_none()
    }

    /// Driver-owned frame `index` (none for a fixed-buffer frame), for `read()` to copy
    /// outside the card's lock.
    pub(crate) fn page_frame(&self, index: u32) -> Option<Arc<PageFrame>> {
        match &self.frames.get(index as usize)?.memory {
            Memory::Kernel(frame) => Some(frame.clone()),
            Memory::User(_) => None,
        }
    }

    /// Frames in the region.
    pub(crate) fn frame_count(&self) -> u32 {
        self.geometry.count
    }

    /// Bytes per frame.
    pub(crate) fn frame_bytes(&self) -> u32 {
        self.geometry.frame_bytes
    }

    /// Bus address and length of frame `index`'s descriptor list.
    pub(crate) fn list(&self, index: u32) -> Option<(u64, u32)> {
        let frame = self.frames.get(index as usize)?;
        Some((frame.list, frame.descriptors))
    }

    /// Gives frame `index` to the CPU after the card wrote it.
    pub(crate) fn sync_for_cpu(&self, index: u32) {
        match self.frames.get(index as usize).map(|frame| &frame.memory) {
            Some(Memory::User(mapping)) => mapping.sync_for_cpu(),
            Some(Memory::Kernel(frame)) => frame.sync_for_cpu(),
            None => {}
        }
    }

    /// Gives frame `index` back to the card.
    ///
    /// # Errors
    ///
    /// `EBUSY` while a `read()` copies the driver-owned frame.
    pub(crate) fn sync_for_device(&self, index: u32) -> Result {
        match self.frames.get(index as usize).map(|frame| &frame.memory) {
            Some(Memory::User(mapping)) => {
                mapping.sync_for_device();
                Ok(())
            }
            Some(Memory::Kernel(frame)) => frame.sync_for_device(),
            None => Err(EINVAL),
        }
    }

    /// Fills the region's part of [`Stats`].
    pub(crate) fn fill_stats(&self, stats: &mut Stats) {
        let per_frame = self.frames.iter().map(|frame| frame.descriptors);
        stats.frame_count = self.geometry.count;
        stats.frame_bytes = self.geometry.frame_bytes;
        stats.frame_stride = self.geometry.stride;
        stats.region_bytes = self.geometry.len;
        stats.descriptors_total = per_frame.clone().fold(0u32, u32::saturating_add);
        stats.descriptors_max_per_frame = per_frame.max().unwrap_or(0);
        stats.mapped_entries = self.mapped_entries;
    }
}
