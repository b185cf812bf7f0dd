//! The frame index a recording writes next to its data (`FILE.idx` by default).
//!
//! Fixed little-endian layout, so that any language reads it with one struct (`docs/client.md`
//! "Recording"): a 32-byte header, then one 32-byte record per frame written, in sequence
//! order. A frame appears only once all of its bytes reached the file; gaps in sequence
//! numbers are frames the card dropped (or, after a write error, frames never written).

use std::io::Write;

/// First eight bytes of an index file.
pub const INDEX_MAGIC: [u8; 8] = *b"FGRABIDX";
/// Version of the layout described here.
pub const INDEX_VERSION: u32 = 1;
/// Bytes of the header.
pub const INDEX_HEADER_BYTES: usize = 32;
/// Bytes of one record.
pub const INDEX_RECORD_BYTES: usize = 32;
/// Header flag: the data was written with `O_DIRECT` (each frame fills a whole slot of
/// `frame_bytes` in the file, of which the record's `bytes` are the frame's).
pub const INDEX_DIRECT: u32 = 1 << 0;

/// One frame of a recording: where its bytes are in the data file and what the card said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// The card's sequence number (gaps are drops).
    pub sequence: u64,
    /// Offset of the frame's first byte in the data file.
    pub offset: u64,
    /// End of the frame, `CLOCK_MONOTONIC` nanoseconds.
    pub timestamp_ns: u64,
    /// Bytes of the frame (the card's byte count).
    pub bytes: u32,
    /// The card's `fgrab_uapi::META_*` bits.
    pub flags: u32,
}

impl IndexEntry {
    /// The record's 32 bytes: `sequence`, `offset`, `timestamp_ns` (u64 each), `bytes`,
    /// `flags` (u32 each), little-endian.
    pub fn to_bytes(&self) -> [u8; INDEX_RECORD_BYTES] {
        let mut record = [0; INDEX_RECORD_BYTES];
        record[0..8].copy_from_slice(&self.sequence.to_le_bytes());
        record[8..16].copy_from_slice(&self.offset.to_le_bytes());
        record[16..24].copy_from_slice(&self.timestamp_ns.to_le_bytes());
        record[24..28].copy_from_slice(&self.bytes.to_le_bytes());
        record[28..32].copy_from_slice(&self.flags.to_le_bytes());
        record
    }

    /// Decodes a record made by [`Self::to_bytes`].
    pub fn from_bytes(record: &[u8; INDEX_RECORD_BYTES]) -> Self {
        let u64_at =
            |at: usize| u64::from_le_bytes(record[at..at + 8].try_into().unwrap_or([0; 8]));
        let u32_at =
            |at: usize| u32::from_le_bytes(record[at..at + 4].try_into().unwrap_or([0; 4]));
        Self {
            sequence: u64_at(0),
            offset: u64_at(8),
            timestamp_ns: u64_at(16),
            bytes: u32_at(24),
            flags: u32_at(28),
        }
    }
}

/// A whole index: what a recording wrote, as [`Index::parse`] reads it back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Index {
    /// Frame size of the stream (the slot size of `O_DIRECT` recordings).
    pub frame_bytes: u32,
    /// `INDEX_*` header flags.
    pub flags: u32,
    /// The frames, in sequence order.
    pub entries: Vec<IndexEntry>,
}

impl Index {
    /// The header: `FGRABIDX`, version, record size, `frame_bytes`, flags (u32 each), the
    /// number of records (u64), little-endian.
    fn header(&self) -> [u8; INDEX_HEADER_BYTES] {
        let mut header = [0; INDEX_HEADER_BYTES];
        header[0..8].copy_from_slice(&INDEX_MAGIC);
        header[8..12].copy_from_slice(&INDEX_VERSION.to_le_bytes());
        // CAST: a constant that fits.
        header[12..16].copy_from_slice(&(INDEX_RECORD_BYTES as u32).to_le_bytes());
        header[16..20].copy_from_slice(&self.frame_bytes.to_le_bytes());
        header[20..24].copy_from_slice(&self.flags.to_le_bytes());
        header[24..32].copy_from_slice(&(self.entries.len() as u64).to_le_bytes());
        header
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes =
            Vec::with_capacity(INDEX_HEADER_BYTES + self.entries.len() * INDEX_RECORD_BYTES);
        bytes.extend_from_slice(&self.header());
        for entry in &self.entries {
            bytes.extend_from_slice(&entry.to_bytes());
        }
        bytes
    }

    /// Writes the index to `path` (replacing it) and makes it durable.
    pub(crate) fn write(&self, path: &std::path::Path) -> std::io::Result<()> {
        let mut file = std::fs::File::create(path)?;
        file.write_all(&self.to_bytes())?;
        file.sync_all()
    }

    /// Reads an index file's bytes.
    ///
    /// # Errors
    ///
    /// A message naming what is wrong: magic, version, record size, length.
    pub fn parse(bytes: &[u8]) -> std::result::Result<Self, String> {
        let header = bytes
            .get(..INDEX_HEADER_BYTES)
            .ok_or_else(|| format!("{} bytes: shorter than the header", bytes.len()))?;
        if header[0..8] != INDEX_MAGIC {
            return Err("not an fgrab index (magic)".into());
        }
        let u32_at =
            |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().unwrap_or([0; 4]));
        if u32_at(8) != INDEX_VERSION {
            return Err(format!(
                "index version {}, expected {INDEX_VERSION}",
                u32_at(8)
            ));
        }
        if u32_at(12) as usize != INDEX_RECORD_BYTES {
            return Err(format!(
                "record size {}, expected {INDEX_RECORD_BYTES}",
                u32_at(12)
            ));
        }
        let count = u64::from_le_bytes(header[24..32].try_into().unwrap_or([0; 8]));
        let body = &bytes[INDEX_HEADER_BYTES..];
        if body.len() as u64 != count.saturating_mul(INDEX_RECORD_BYTES as u64) {
            return Err(format!(
                "{} bytes of records for {count} records of {INDEX_RECORD_BYTES}",
                body.len()
            ));
        }
        let entries = body
            .chunks_exact(INDEX_RECORD_BYTES)
            .map(|record| {
                IndexEntry::from_bytes(record.try_into().unwrap_or(&[0; INDEX_RECORD_BYTES]))
            })
            .collect();
        Ok(Self {
            frame_bytes: u32_at(16),
            flags: u32_at(20),
            entries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_round_trip_and_layout() {
        let index = Index {
            frame_bytes: 65_543,
            flags: INDEX_DIRECT,
            entries: vec![
                IndexEntry {
                    sequence: 3,
                    offset: 0,
                    timestamp_ns: 7,
                    bytes: 65_543,
                    flags: 1,
                },
                IndexEntry {
                    sequence: 5,
                    offset: 65_543,
                    timestamp_ns: 9,
                    bytes: 100,
                    flags: 3,
                },
            ],
        };
        let bytes = index.to_bytes();
        assert_eq!(bytes.len(), INDEX_HEADER_BYTES + 2 * INDEX_RECORD_BYTES);
        assert_eq!(&bytes[..8], b"FGRABIDX");
        assert_eq!(bytes[24], 2, "record count");
        // The second record's offset, little-endian, 8 bytes into the record.
        let second = INDEX_HEADER_BYTES + INDEX_RECORD_BYTES;
        assert_eq!(&bytes[second + 8..second + 16], &65_543u64.to_le_bytes());
        assert_eq!(Index::parse(&bytes), Ok(index));
        assert!(Index::parse(&bytes[..40]).is_err(), "truncated");
        let mut wrong = bytes.clone();
        wrong[0] = b'X';
        assert!(Index::parse(&wrong).is_err(), "magic");
    }
}
