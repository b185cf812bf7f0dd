// SPDX-License-Identifier: GPL-2.0

//! Which bytes of a fixed buffer's segments make up one frame (the CPU side of a frame's
//! scatterlist, before DMA mapping).
//!
//! io_uring describes a registered buffer as bvec segments: one per 4 KiB page, or one per
//! huge page when the buffer is backed by huge pages. An imported region starts `skip`
//! bytes into the first segment. A frame is a byte range of the region; neither need be page
//! aligned, so the frame's first and last pieces are usually partial, and two frames may
//! share a segment. Pieces are split at the DMA layer's largest entry (swiotlb maps at most
//! 256 KiB at once, the card takes at most its maximum segment).

use kernel::prelude::*;

use crate::abstractions::sg_table::BvecPiece as Piece;

/// Emits the pieces covering region bytes `offset..offset + len`, where the region starts
/// `skip` bytes into segments of the given lengths, each piece at most `max` bytes. Returns
/// the number of pieces.
///
/// # Errors
///
/// `EINVAL` for an empty range, a range past the segments, or `max` 0; what `emit` returns.
pub(crate) fn frame_pieces(
    segments: &[u32],
    skip: u64,
    offset: u64,
    len: u64,
    max: u32,
    mut emit: impl FnMut(Piece) -> Result,
) -> Result<u32> {
    if len == 0 || max == 0 {
        return Err(EINVAL);
    }
    let mut to_skip = skip.checked_add(offset).ok_or(EINVAL)?;
    let mut left = len;
    let mut count = 0;
    for (index, &segment_len) in segments.iter().enumerate() {
        let segment_len = u64::from(segment_len);
        if to_skip >= segment_len {
            to_skip -= segment_len;
            continue;
        }
        let mut at = to_skip;
        to_skip = 0;
        while at < segment_len && left > 0 {
            let piece = (segment_len - at).min(left).min(u64::from(max));
            // CAST: `at < segment_len` and `piece <= max`, both `u32`; `index` is below
            // the segment count, which io_uring keeps far below `u32::MAX`.
            emit(Piece {
                segment: index as u32,
                offset: at as u32,
                len: piece as u32,
                reserved: 0,
            })?;
            at += piece;
            left -= piece;
            count += 1;
        }
        if left == 0 {
            return Ok(count);
        }
    }
    Err(EINVAL)
}

#[kernel::macros::kunit_tests(fgrab_sglist)]
mod tests {
    use super::*;

    const PAGE: u32 = 4096;
    const HUGE: u32 = 2 << 20;

    fn pieces(segments: &[u32], skip: u64, offset: u64, len: u64, max: u32) -> Result<KVec<Piece>> {
        let mut out = KVec::new();
        let count = frame_pieces(segments, skip, offset, len, max, |piece| {
            out.push(piece, GFP_KERNEL)?;
            Ok(())
        })?;
        assert_eq!(count as usize, out.len());
        Ok(out)
    }

    fn piece(segment: u32, offset: u32, len: u32) -> Piece {
        Piece {
            segment,
            offset,
            len,
            reserved: 0,
        }
    }

    #[test]
    fn partial_first_and_last_pages() -> Result {
        // Region starts 100 bytes into page 0; the frame is its bytes 0..8242: the rest of
        // page 0, all of page 1, 150 bytes of page 2.
        let got = pieces(&[PAGE; 4], 100, 0, 8242, 1 << 20)?;
        let want = [piece(0, 100, 3996), piece(1, 0, 4096), piece(2, 0, 150)];
        assert_eq!(&got[..], &want[..]);
        Ok(())
    }

    #[test]
    fn frames_sharing_a_page() -> Result {
        // Two 3000-byte frames, stride 3000: the second starts in page 0 and ends in page 1.
        let first = pieces(&[PAGE; 2], 0, 0, 3000, 1 << 20)?;
        let second = pieces(&[PAGE; 2], 0, 3000, 3000, 1 << 20)?;
        assert_eq!(&first[..], &[piece(0, 0, 3000)][..]);
        assert_eq!(&second[..], &[piece(0, 3000, 1096), piece(1, 0, 1904)][..]);
        Ok(())
    }

    #[test]
    fn huge_page_segments_split_at_max() -> Result {
        // Two 2 MiB segments; a frame of 3 MiB starting 1000 bytes into the region, with
        // a 256 KiB limit (swiotlb): 12 pieces plus the partial tail.
        let got = pieces(&[HUGE; 2], 0, 1000, 3 << 20, 256 << 10)?;
        assert_eq!(got.len(), 13);
        assert_eq!(got[0], piece(0, 1000, 256 << 10));
        // The first segment ends with a partial piece, the second starts at its offset 0.
        assert_eq!(
            got[7],
            piece(0, 1000 + 7 * (256 << 10), HUGE - 1000 - 7 * (256 << 10))
        );
        assert_eq!(got[8], piece(1, 0, 256 << 10));
        let total: u64 = got.iter().map(|piece| u64::from(piece.len)).sum();
        assert_eq!(total, 3 << 20);
        Ok(())
    }

    #[test]
    fn skip_lands_in_a_later_segment() -> Result {
        let got = pieces(&[PAGE; 3], 5000, 10, 20, 1 << 20)?;
        assert_eq!(&got[..], &[piece(1, 914, 20)][..]);
        Ok(())
    }

    #[test]
    fn out_of_range_is_rejected() -> Result {
        assert_eq!(pieces(&[PAGE; 2], 0, 0, 0, PAGE).err(), Some(EINVAL));
        assert_eq!(pieces(&[PAGE; 2], 0, 0, 8193, PAGE).err(), Some(EINVAL));
        assert_eq!(pieces(&[PAGE; 2], 0, 8192, 1, PAGE).err(), Some(EINVAL));
        assert_eq!(pieces(&[PAGE; 2], u64::MAX, 1, 1, PAGE).err(), Some(EINVAL));
        assert_eq!(pieces(&[PAGE; 2], 0, 0, 1, 0).err(), Some(EINVAL));
        Ok(())
    }
}
