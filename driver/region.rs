// SPDX-License-Identifier: GPL-2.0

//! A region of an io_uring fixed buffer attached to a card: its frames, each DMA-mapped
//! once at attach time, and each frame's descriptor list.
//!
//! The pages stay pinned by io_uring for as long as the attach command is in flight; a
//! [`Region`] must therefore be dropped (frames unmapped) before that command completes.
//! `stream.rs` guarantees the order.

use kernel::{pci, prelude::*, sync::aref::ARef};

use crate::{
    descriptors::{self, Segment},
    shim::{FrameMapping, RegionImport, UringCmd},
    uapi::{AttachCmd, DeviceInfo, Stats, STATE_ATTACHED},
};

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

    /// Region offset of frame `index`.
    fn offset(&self, index: u32) -> u64 {
        // No overflow: `new` checked the last frame's end.
        self.stride * u64::from(index)
    }
}

/// One frame: its DMA mapping and the card's descriptor list for it.
struct Frame {
    /// Unmapped when the frame is dropped.
    _mapping: FrameMapping,
    descriptors: KVec<Segment>,
}

/// An attached region. Field order is drop order: frames are unmapped before the import
/// is released.
pub(crate) struct Region {
    frames: KVec<Frame>,
    _import: RegionImport,
    geometry: Geometry,
    mapped_entries: u32,
}

impl Region {
    /// Imports the region an attach command names and maps every frame for device writes.
    ///
    /// # Errors
    ///
    /// Those of [`Geometry::new`] and [`UringCmd::import_region`]; `E2BIG` if a frame needs
    /// more descriptors than the card accepts; mapping errors.
    pub(crate) fn attach(
        cmd: &UringCmd,
        request: &AttachCmd,
        info: &DeviceInfo,
        pdev: &ARef<pci::Device>,
    ) -> Result<Self> {
        let geometry = Geometry::new(request, info)?;
        let import = cmd.import_region(request.addr, geometry.len)?;
        let mut frames = KVec::with_capacity(geometry.count as usize, GFP_KERNEL)?;
        let mut mapped_entries = 0u32;
        for index in 0..geometry.count {
            let mapping = import.map_frame(
                geometry.offset(index),
                u64::from(geometry.frame_bytes),
                pdev,
            )?;
            let mut descriptors = KVec::new();
            let count = descriptors::build(mapping.extents(), info.max_segment_bytes, |segment| {
                descriptors.push(segment, GFP_KERNEL)?;
                Ok(())
            })?;
            if count > info.max_descriptors_per_frame {
                return Err(E2BIG);
            }
            // CAST: a frame has at most `frame_bytes` entries.
            mapped_entries = mapped_entries.saturating_add(mapping.extents().count() as u32);
            frames.push(
                Frame {
                    _mapping: mapping,
                    descriptors,
                },
                GFP_KERNEL,
            )?;
        }
        Ok(Self {
            frames,
            _import: import,
            geometry,
            mapped_entries,
        })
    }

    /// Fills the region's part of [`Stats`].
    pub(crate) fn fill_stats(&self, stats: &mut Stats) {
        let per_frame = self.frames.iter().map(|frame| frame.descriptors.len());
        stats.state = STATE_ATTACHED;
        stats.frame_count = self.geometry.count;
        stats.frame_bytes = self.geometry.frame_bytes;
        stats.frame_stride = self.geometry.stride;
        stats.region_bytes = self.geometry.len;
        // CAST: at most `MAX_FRAMES` frames of at most `max_descriptors_per_frame` each.
        stats.descriptors_total = per_frame.clone().sum::<usize>() as u32;
        stats.descriptors_max_per_frame = per_frame.max().unwrap_or(0) as u32;
        stats.mapped_entries = self.mapped_entries;
    }
}
