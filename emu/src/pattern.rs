//! Frame content pattern of interface v1 (docs/hardware.md, "Frame content").
//!
//! Byte `o` of the frame with sequence number `s` is byte `o % 8` (little endian) of
//! `word(s, o / 8)`. Every receiver can therefore check every byte it got, including the
//! partial first and last words of a frame that is not 8-byte aligned in memory: the
//! pattern depends on the offset inside the frame, never on the buffer address.
//!
//! This file depends on `core` only so that guest programs (musl, `no_std` or not) can
//! include it with `#[path = ".../emu/src/pattern.rs"] mod pattern;`.

/// Multiplier that spreads the sequence number over all 64 bits (golden ratio, as in
/// splitmix64), so that frames with neighbouring sequence numbers differ everywhere.
const SEQUENCE_SPREAD: u64 = 0x9e37_79b9_7f4a_7c15;

/// Offset added to the word index so that word 0 of sequence 0 is not mixed from zero.
const WORD_OFFSET: u64 = 0xd1b5_4a32_d192_ed03;

/// PFNC code of `Mono8`, whose frames carry the unsalted pattern.
pub const MONO8: u32 = 0x0108_0001;

/// The salt of pixel format `pfnc` (docs/hardware.md, "Frame content"): 0 for `Mono8`, so
/// its frames are the interface 1.0 pattern byte for byte, the PFNC code shifted into the
/// upper half for every other format, so formats never share a frame's bytes (sequence
/// numbers stay below 2^32 in any run).
#[inline]
pub const fn salt(pfnc: u32) -> u64 {
    if pfnc == MONO8 {
        0
    } else {
        (pfnc as u64) << 32
    }
}

/// The sequence number whose plain pattern is frame `sequence` in format `pfnc`: pass it to
/// [`fill`], [`verify`], [`byte`] and [`word`]. Pixel `i` is then byte `i` (8-bit formats)
/// or the little-endian `u16` of bytes `2i..2i + 2` (`Mono16`).
#[inline]
pub const fn salted(sequence: u64, pfnc: u32) -> u64 {
    sequence ^ salt(pfnc)
}

/// Pattern word `word_index` (the 8 bytes at frame offset `8 * word_index`) of the frame
/// with sequence number `sequence`.
///
/// The mix is the splitmix64 finalizer: two multiplications per 8 bytes, cheap enough to
/// generate and check at memory bandwidth.
#[inline]
pub const fn word(sequence: u64, word_index: u64) -> u64 {
    let mut x = sequence.wrapping_mul(SEQUENCE_SPREAD) ^ word_index.wrapping_add(WORD_OFFSET);
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Byte at frame offset `offset` of the frame with sequence number `sequence`.
#[inline]
pub const fn byte(sequence: u64, offset: u64) -> u8 {
    // CAST: truncation to the addressed byte is the point.
    (word(sequence, offset / 8) >> (8 * (offset % 8))) as u8
}

/// Fills `buf` with the frame bytes `offset..offset + buf.len()` of frame `sequence`.
pub fn fill(buf: &mut [u8], sequence: u64, offset: u64) {
    let head = head_len(offset, buf.len());
    let (head_bytes, rest) = buf.split_at_mut(head);
    for (i, b) in head_bytes.iter_mut().enumerate() {
        *b = byte(sequence, offset + i as u64);
    }
    // After the head, `offset + head` is a multiple of 8.
    let mut index = (offset + head as u64) / 8;
    let mut words = rest.chunks_exact_mut(8);
    for chunk in &mut words {
        chunk.copy_from_slice(&word(sequence, index).to_le_bytes());
        index += 1;
    }
    let tail = words.into_remainder();
    let bytes = word(sequence, index).to_le_bytes();
    tail.copy_from_slice(&bytes[..tail.len()]);
}

/// The first byte of a received frame slice that differs from the pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// Frame offset of the byte.
    pub offset: u64,
    /// The pattern byte expected there.
    pub expected: u8,
    /// The byte found.
    pub found: u8,
}

impl core::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "frame offset {}: expected {:#04x}, found {:#04x}",
            self.offset, self.expected, self.found
        )
    }
}

/// Checks that `buf` holds the frame bytes `offset..offset + buf.len()` of frame
/// `sequence`.
///
/// # Errors
///
/// Returns the first byte that differs.
pub fn verify(buf: &[u8], sequence: u64, offset: u64) -> Result<(), Mismatch> {
    let head = head_len(offset, buf.len());
    let (head_bytes, rest) = buf.split_at(head);
    check_bytes(head_bytes, sequence, offset)?;
    let mut index = (offset + head as u64) / 8;
    let mut words = rest.chunks_exact(8);
    for chunk in &mut words {
        let expected = word(sequence, index);
        let mut found = [0u8; 8];
        found.copy_from_slice(chunk);
        if u64::from_le_bytes(found) != expected {
            return check_bytes(chunk, sequence, index * 8);
        }
        index += 1;
    }
    check_bytes(words.remainder(), sequence, index * 8)
}

/// Searches the sequence number of a frame from its first bytes: useful to report which
/// frame a buffer holds when it is not the expected one. Tries `candidates` in order.
pub fn identify(buf: &[u8], offset: u64, candidates: impl IntoIterator<Item = u64>) -> Option<u64> {
    let probe = &buf[..buf.len().min(16)];
    if probe.is_empty() {
        return None;
    }
    candidates
        .into_iter()
        .find(|&sequence| verify(probe, sequence, offset).is_ok())
}

/// Length of the part of a slice starting at frame `offset` that precedes the first
/// 8-byte aligned frame offset, bounded by the slice length.
#[inline]
fn head_len(offset: u64, len: usize) -> usize {
    // CAST: the value is below 8.
    let to_boundary = ((8 - offset % 8) % 8) as usize;
    to_boundary.min(len)
}

fn check_bytes(bytes: &[u8], sequence: u64, offset: u64) -> Result<(), Mismatch> {
    for (i, &found) in bytes.iter().enumerate() {
        let at = offset + i as u64;
        let expected = byte(sequence, at);
        if found != expected {
            return Err(Mismatch {
                offset: at,
                expected,
                found,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    extern crate std;
    use std::vec;

    #[test]
    fn byte_matches_little_endian_word() {
        let w = word(7, 3).to_le_bytes();
        for (i, &b) in w.iter().enumerate() {
            assert_eq!(byte(7, 24 + i as u64), b);
        }
    }

    #[test]
    fn fill_then_verify_at_every_misalignment() {
        for offset in 0..17u64 {
            for len in [0usize, 1, 5, 7, 8, 9, 15, 16, 17, 63, 64, 100] {
                let mut buf = vec![0u8; len];
                fill(&mut buf, 42, offset);
                assert_eq!(
                    verify(&buf, 42, offset),
                    Ok(()),
                    "offset {offset} len {len}"
                );
                for (i, &b) in buf.iter().enumerate() {
                    assert_eq!(b, byte(42, offset + i as u64));
                }
            }
        }
    }

    #[test]
    fn split_slices_equal_whole_frame() {
        let mut whole = vec![0u8; 1000];
        fill(&mut whole, 9, 0);
        // Cut at arbitrary byte positions, as a scatter list of unaligned pages would.
        let mut parts = vec![0u8; 1000];
        let cuts = [0usize, 3, 4, 11, 500, 501, 999, 1000];
        for pair in cuts.windows(2) {
            fill(&mut parts[pair[0]..pair[1]], 9, pair[0] as u64);
        }
        assert_eq!(whole, parts);
    }

    #[test]
    fn verify_reports_first_mismatch() {
        let mut buf = vec![0u8; 64];
        fill(&mut buf, 1, 5);
        buf[20] ^= 0x10;
        buf[40] ^= 0x01;
        let mismatch = verify(&buf, 1, 5).unwrap_err();
        assert_eq!(mismatch.offset, 25);
        assert_eq!(mismatch.found, mismatch.expected ^ 0x10);
    }

    #[test]
    fn formats_differ_and_mono8_is_unsalted() {
        assert_eq!(salted(5, MONO8), 5);
        let mut mono16 = vec![0u8; 64];
        fill(&mut mono16, salted(5, 0x0110_0007), 0);
        assert!(verify(&mono16, 5, 0).is_err());
        assert!(verify(&mono16, salted(5, 0x0108_0009), 0).is_err());
        assert_eq!(verify(&mono16, salted(5, 0x0110_0007), 0), Ok(()));
        assert_eq!(salt(0x0108_0009), 0x0108_0009_0000_0000);
    }

    #[test]
    fn sequences_differ() {
        let mut a = vec![0u8; 64];
        fill(&mut a, 1, 0);
        assert!(verify(&a, 2, 0).is_err());
        assert_eq!(identify(&a, 0, 0..10), Some(1));
        assert_eq!(identify(&a[3..], 3, 0..10), Some(1));
    }
}
