// SPDX-License-Identifier: GPL-2.0

//! A frame's scatter/gather list for the card, built from the frame's DMA mapping.
//!
//! Input is the list of entries the DMA mapping returned (`sg_dma_address`/`sg_dma_len` of
//! the first `nents` entries: never the CPU-side page list, whose count differs when an
//! IOMMU merges; using the wrong one was the classic driver's fatal mistake). Output is the
//! card's descriptor list: contiguous entries merged (4 KiB pages that happen to be
//! physically adjacent, or entries of a huge page), runs split at the card's maximum
//! segment size. The number of descriptors is the number of bus-contiguous extents of the
//! frame (times the split factor for extents longer than the maximum segment).

use kernel::prelude::*;

/// One DMA-mapped extent, in frame order.
use crate::abstractions::sg_table::DmaRange as Extent;

/// One descriptor as the card reads it: a bus address and a byte count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Segment {
    /// Bus address.
    pub(crate) addr: u64,
    /// Bytes, at most the card's maximum segment size.
    pub(crate) len: u32,
}

/// Emits the descriptors covering `extents` and returns how many there are.
///
/// # Errors
///
/// `EINVAL` if there is no byte to describe or `max_segment` is 0; whatever `emit` returns.
pub(crate) fn build(
    extents: impl IntoIterator<Item = Extent>,
    max_segment: u32,
    mut emit: impl FnMut(Segment) -> Result,
) -> Result<u32> {
    if max_segment == 0 {
        return Err(EINVAL);
    }
    let mut count = 0;
    let mut run: Option<Extent> = None;
    for extent in extents.into_iter().filter(|extent| extent.len > 0) {
        run = match run {
            Some(current) if current.dma.checked_add(current.len) == Some(extent.dma) => {
                Some(Extent {
                    dma: current.dma,
                    len: current.len + extent.len,
                })
            }
            Some(current) => {
                count += split(current, max_segment, &mut emit)?;
                Some(extent)
            }
            None => Some(extent),
        };
    }
    match run {
        Some(last) => Ok(count + split(last, max_segment, &mut emit)?),
        None => Err(EINVAL),
    }
}

/// Emits one bus-contiguous run as descriptors of at most `max_segment` bytes.
fn split(run: Extent, max_segment: u32, emit: &mut impl FnMut(Segment) -> Result) -> Result<u32> {
    let mut count = 0;
    let mut offset = 0;
    while offset < run.len {
        let piece = (run.len - offset).min(u64::from(max_segment));
        // CAST: `piece <= max_segment`, a `u32`. `run.dma + offset` stays inside the run,
        // which a mapping never places across the end of the address space.
        emit(Segment {
            addr: run.dma.wrapping_add(offset),
            len: piece as u32,
        })?;
        offset += piece;
        count += 1;
    }
    Ok(count)
}

#[kernel::macros::kunit_tests(fgrab_descriptors)]
mod tests {
    use super::*;

    const PAGE: u64 = 4096;
    const MIB: u32 = 1 << 20;

    fn build_all(extents: &[Extent], max: u32) -> Result<KVec<Segment>> {
        let mut out = KVec::new();
        let count = build(extents.iter().copied(), max, |segment| {
            out.push(segment, GFP_KERNEL)?;
            Ok(())
        })?;
        assert_eq!(count as usize, out.len());
        Ok(out)
    }

    fn extent(dma: u64, len: u64) -> Extent {
        Extent { dma, len }
    }

    fn seg(addr: u64, len: u32) -> Segment {
        Segment { addr, len }
    }

    #[test]
    fn partial_first_and_last_pages_stay_exact() -> Result {
        // A frame starting 100 bytes into a page and ending 50 bytes into a third page,
        // pages scattered: one descriptor per page, trimmed at both ends.
        let extents = [
            extent(0x10_0000 + 100, PAGE - 100),
            extent(0x13_0000, PAGE),
            extent(0x16_0000, 50),
        ];
        let got = build_all(&extents, MIB)?;
        let want = [
            seg(0x10_0000 + 100, 4096 - 100),
            seg(0x13_0000, 4096),
            seg(0x16_0000, 50),
        ];
        assert_eq!(&got[..], &want[..]);
        Ok(())
    }

    #[test]
    fn adjacent_pages_merge() -> Result {
        let mut extents = KVec::new();
        for page in 0..8 {
            extents.push(extent(0x20_0000 + page * PAGE, PAGE), GFP_KERNEL)?;
        }
        let got = build_all(&extents, MIB)?;
        assert_eq!(&got[..], &[seg(0x20_0000, 8 * 4096)][..]);
        Ok(())
    }

    #[test]
    fn huge_page_splits_at_max_segment() -> Result {
        // One 2 MiB huge page, frame from byte 512 to 512 bytes before its end.
        let huge = [extent(0x4000_0000 + 512, (2 << 20) - 1024)];
        let want = [
            seg(0x4000_0000 + 512, MIB),
            seg(0x4000_0000 + 512 + u64::from(MIB), MIB - 1024),
        ];
        assert_eq!(&build_all(&huge, MIB)?[..], &want[..]);
        // A card with a larger maximum takes the frame in one descriptor.
        assert_eq!(build_all(&huge, u32::MAX)?.len(), 1);
        Ok(())
    }

    #[test]
    fn frames_sharing_a_page() -> Result {
        // Two frames meet 3000 bytes into a page: each gets its own part of it.
        let first = [extent(0x30_0000, 3000)];
        let second = [extent(0x30_0000 + 3000, 1096), extent(0x50_0000, 904)];
        assert_eq!(&build_all(&first, MIB)?[..], &[seg(0x30_0000, 3000)][..]);
        assert_eq!(
            &build_all(&second, MIB)?[..],
            &[seg(0x30_0000 + 3000, 1096), seg(0x50_0000, 904)][..]
        );
        Ok(())
    }

    #[test]
    fn merged_iommu_range_is_one_descriptor_per_max_segment() -> Result {
        // Behind an IOMMU the whole frame is one IOVA range of 3 MiB + 10 bytes.
        let iova = [extent(0xfff0_0000, 3 * u64::from(MIB) + 10)];
        let got = build_all(&iova, MIB)?;
        assert_eq!(got.len(), 4);
        assert_eq!(got[3], seg(0xfff0_0000 + 3 * u64::from(MIB), 10));
        Ok(())
    }

    #[test]
    fn nothing_to_describe_is_rejected() -> Result {
        assert_eq!(build_all(&[], MIB).err(), Some(EINVAL));
        assert_eq!(build_all(&[extent(0x1000, 0)], MIB).err(), Some(EINVAL));
        assert_eq!(build_all(&[extent(0x1000, 1)], 0).err(), Some(EINVAL));
        Ok(())
    }

    #[test]
    fn address_space_end_does_not_wrap_into_a_merge() -> Result {
        let extents = [extent(u64::MAX - 9, 10), extent(0, 10)];
        assert_eq!(build_all(&extents, MIB)?.len(), 2);
        Ok(())
    }
}
