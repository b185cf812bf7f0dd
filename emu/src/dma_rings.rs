//! The card's DMA rings as the model runs them (docs/hardware.md, "DMA structures" and
//! "Rings"): the validation rules that turn a submission into DESC_ERROR, the ring
//! configuration check at ENABLE, and ring index arithmetic. The structures themselves are
//! the card's definition, `fgrab-hw`, re-exported here.

use thiserror::Error;
use zerocopy::FromBytes;

use fgrab_hw::{
    caps::{MAX_DESCRIPTORS, MAX_SEGMENT_BYTES, RING_MAX_ENTRIES, RING_MIN_ENTRIES},
    DESCRIPTOR_LIST_ALIGN,
};
pub use fgrab_hw::{completion_status, CompletionRecord, Descriptor, SubmitEntry};

/// Status of a completion record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum CompletionStatus {
    /// The frame filled the buffer: `bytes` == FRAME_BYTES.
    Ok = completion_status::OK,
    /// The buffer was smaller than the frame: `bytes` is the buffer size.
    Incomplete = completion_status::INCOMPLETE,
    /// A DMA access failed: `bytes` were written before the fault.
    DmaError = completion_status::DMA_ERROR,
    /// The submission was invalid; nothing was written.
    DescError = completion_status::DESC_ERROR,
    /// Returned by a stop (unused, or aborted with `bytes` written).
    Flushed = completion_status::FLUSHED,
}

impl TryFrom<u16> for CompletionStatus {
    type Error = u16;

    fn try_from(value: u16) -> Result<Self, u16> {
        Ok(match value {
            completion_status::OK => Self::Ok,
            completion_status::INCOMPLETE => Self::Incomplete,
            completion_status::DMA_ERROR => Self::DmaError,
            completion_status::DESC_ERROR => Self::DescError,
            completion_status::FLUSHED => Self::Flushed,
            other => return Err(other),
        })
    }
}

/// Why a submission is rejected with DESC_ERROR.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum DescriptorError {
    /// `desc_count` is 0.
    #[error("descriptor count is 0")]
    Empty,
    /// `desc_count` exceeds MAX_DESCRIPTORS.
    #[error("descriptor count {0} exceeds {max}", max = MAX_DESCRIPTORS)]
    TooMany(u16),
    /// The submit entry's reserved field is not 0.
    #[error("submit entry reserved field is {0:#x}")]
    ReservedEntry(u16),
    /// The descriptor list address is not [`DESCRIPTOR_LIST_ALIGN`]-aligned.
    #[error("descriptor list address {0:#x} is not {DESCRIPTOR_LIST_ALIGN}-byte aligned")]
    ListAlignment(u64),
    /// A descriptor has `len` 0.
    #[error("descriptor {0} has length 0")]
    ZeroLength(usize),
    /// A descriptor is longer than MAX_SEGMENT_BYTES.
    #[error("descriptor {index} length {len} exceeds {max}", max = MAX_SEGMENT_BYTES)]
    TooLong {
        /// Descriptor index.
        index: usize,
        /// Its length.
        len: u32,
    },
    /// A descriptor sets reserved flag bits.
    #[error("descriptor {index} sets reserved flags {flags:#x}")]
    ReservedFlags {
        /// Descriptor index.
        index: usize,
        /// Its flags.
        flags: u32,
    },
    /// LAST is set before the end of the list.
    #[error("descriptor {0} sets LAST before the end of the list")]
    EarlyLast(usize),
    /// LAST is missing on the final descriptor.
    #[error("last descriptor lacks LAST")]
    MissingLast,
    /// `addr + len` wraps around the 64-bit address space.
    #[error("descriptor {0} wraps the address space")]
    Wraps(usize),
    /// Rejected by fault injection.
    #[error("rejected by fault injection")]
    Injected,
}

/// Checks the submit entry itself, before its descriptor list is fetched.
///
/// # Errors
///
/// The rule the entry breaks.
pub fn check_entry(entry: &SubmitEntry) -> Result<(), DescriptorError> {
    if entry.reserved != 0 {
        return Err(DescriptorError::ReservedEntry(entry.reserved));
    }
    if entry.desc_count == 0 {
        return Err(DescriptorError::Empty);
    }
    if u32::from(entry.desc_count) > MAX_DESCRIPTORS {
        return Err(DescriptorError::TooMany(entry.desc_count));
    }
    // CAST: usize to u64, widening.
    if entry.desc_addr % DESCRIPTOR_LIST_ALIGN as u64 != 0 {
        return Err(DescriptorError::ListAlignment(entry.desc_addr));
    }
    Ok(())
}

/// Parses a descriptor list fetched from host memory (`bytes.len()` is 16 times the
/// count) and checks every rule.
///
/// # Errors
///
/// The first rule a descriptor breaks.
pub fn parse_descriptors(bytes: &[u8]) -> Result<Vec<Descriptor>, DescriptorError> {
    // read_from_bytes copies, so the fetched bytes need no particular alignment.
    let list: Vec<Descriptor> = bytes
        .chunks_exact(core::mem::size_of::<Descriptor>())
        .filter_map(|chunk| Descriptor::read_from_bytes(chunk).ok())
        .collect();
    check_descriptors(&list)?;
    Ok(list)
}

/// Checks the rules of a descriptor list.
///
/// # Errors
///
/// The first rule a descriptor breaks.
pub fn check_descriptors(list: &[Descriptor]) -> Result<(), DescriptorError> {
    let Some(last_index) = list.len().checked_sub(1) else {
        return Err(DescriptorError::Empty);
    };
    for (index, d) in list.iter().enumerate() {
        if d.len == 0 {
            return Err(DescriptorError::ZeroLength(index));
        }
        if d.len > MAX_SEGMENT_BYTES {
            return Err(DescriptorError::TooLong { index, len: d.len });
        }
        if d.flags & !Descriptor::LAST != 0 {
            return Err(DescriptorError::ReservedFlags {
                index,
                flags: d.flags,
            });
        }
        if d.addr.checked_add(u64::from(d.len)).is_none() {
            return Err(DescriptorError::Wraps(index));
        }
        let last = d.flags & Descriptor::LAST != 0;
        if last && index != last_index {
            return Err(DescriptorError::EarlyLast(index));
        }
        if !last && index == last_index {
            return Err(DescriptorError::MissingLast);
        }
    }
    Ok(())
}

/// Why a ring configuration is refused at ENABLE.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum RingConfigError {
    /// The size is not a power of two in `RING_MIN_ENTRIES..=RING_MAX_ENTRIES`.
    #[error("ring size {0} is not a power of two in {min}..={max}", min = RING_MIN_ENTRIES, max = RING_MAX_ENTRIES)]
    Size(u32),
    /// The base address is 0 or not aligned to the entry size.
    #[error("ring base {0:#x} is 0 or misaligned")]
    Base(u64),
    /// An index register is not below the size.
    #[error("ring index {0} out of range")]
    Index(u32),
    /// The writeback address is not 4-byte aligned.
    #[error("writeback address {0:#x} is misaligned")]
    Writeback(u64),
}

/// One ring's geometry and indexes. Indexes run `0..size` and wrap; the ring is empty
/// when `head == tail` and full when `tail + 1 == head` (one entry stays unused).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ring {
    /// DMA address of entry 0.
    pub base: u64,
    /// Entries.
    pub size: u32,
    /// Next entry the consumer reads.
    pub head: u32,
    /// Next entry the producer writes.
    pub tail: u32,
}

impl Ring {
    /// Checks size, base alignment (`align`: the ring's, `fgrab_hw::SUBMIT_RING_ALIGN` or
    /// `fgrab_hw::COMPLETION_RING_ALIGN`) and index range.
    ///
    /// # Errors
    ///
    /// The rule the configuration breaks.
    pub fn check(&self, align: u64) -> Result<(), RingConfigError> {
        if !self.size.is_power_of_two()
            || !(RING_MIN_ENTRIES..=RING_MAX_ENTRIES).contains(&self.size)
        {
            return Err(RingConfigError::Size(self.size));
        }
        if self.base == 0 || self.base % align != 0 {
            return Err(RingConfigError::Base(self.base));
        }
        for index in [self.head, self.tail] {
            if index >= self.size {
                return Err(RingConfigError::Index(index));
            }
        }
        Ok(())
    }

    /// Entries between head and tail.
    pub fn len(&self) -> u32 {
        self.tail.wrapping_sub(self.head) & self.size.wrapping_sub(1)
    }

    /// Whether head equals tail.
    pub fn is_empty(&self) -> bool {
        self.head == self.tail
    }

    /// Whether the producer must wait for the consumer.
    pub fn is_full(&self) -> bool {
        self.next(self.tail) == self.head
    }

    /// Index after `index`.
    pub fn next(&self, index: u32) -> u32 {
        (index + 1) & self.size.wrapping_sub(1)
    }

    /// DMA address of entry `index`.
    pub fn entry_addr(&self, index: u32, entry_size: u64) -> u64 {
        self.base
            .wrapping_add(u64::from(index).wrapping_mul(entry_size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::IntoBytes;

    fn desc(addr: u64, len: u32, flags: u32) -> Descriptor {
        Descriptor { addr, len, flags }
    }

    #[test]
    fn entry_rules() {
        let ok = SubmitEntry {
            desc_addr: 0x1000,
            desc_count: 3,
            reserved: 0,
            cookie: 7,
        };
        assert_eq!(check_entry(&ok), Ok(()));
        let cases = [
            (
                SubmitEntry {
                    desc_count: 0,
                    ..ok
                },
                DescriptorError::Empty,
            ),
            (
                SubmitEntry { reserved: 1, ..ok },
                DescriptorError::ReservedEntry(1),
            ),
            (
                SubmitEntry {
                    desc_addr: 0x1008,
                    ..ok
                },
                DescriptorError::ListAlignment(0x1008),
            ),
        ];
        for (entry, expected) in cases {
            assert_eq!(check_entry(&entry), Err(expected));
        }
    }

    #[test]
    fn descriptor_rules() {
        let last = Descriptor::LAST;
        let cases: &[(&[Descriptor], Result<(), DescriptorError>)] = &[
            (&[desc(0x1003, 5, last)], Ok(())),
            (&[desc(1, 4095, 0), desc(0x9000, 1, last)], Ok(())),
            (&[], Err(DescriptorError::Empty)),
            (&[desc(1, 0, last)], Err(DescriptorError::ZeroLength(0))),
            (
                &[desc(1, MAX_SEGMENT_BYTES + 1, last)],
                Err(DescriptorError::TooLong {
                    index: 0,
                    len: MAX_SEGMENT_BYTES + 1,
                }),
            ),
            (&[desc(1, 1, 0)], Err(DescriptorError::MissingLast)),
            (
                &[desc(1, 1, last), desc(2, 1, last)],
                Err(DescriptorError::EarlyLast(0)),
            ),
            (
                &[desc(1, 1, last | 4)],
                Err(DescriptorError::ReservedFlags { index: 0, flags: 5 }),
            ),
            (&[desc(u64::MAX, 2, last)], Err(DescriptorError::Wraps(0))),
        ];
        for (list, expected) in cases {
            assert_eq!(check_descriptors(list), *expected, "{list:?}");
        }
    }

    #[test]
    fn statuses_are_the_definitions() {
        for &(name, value) in completion_status::ALL {
            let status = CompletionStatus::try_from(value);
            assert_eq!(status.map(|status| status as u16), Ok(value), "{name}");
        }
        let highest = completion_status::ALL.iter().map(|&(_, value)| value).max();
        assert_eq!(CompletionStatus::try_from(highest.unwrap() + 1), Err(5));
    }

    #[test]
    fn parse_from_unaligned_bytes() {
        let list = [
            desc(0x1234_5678_9abc, 100, 0),
            desc(0x42, 7, Descriptor::LAST),
        ];
        let mut bytes = vec![0u8; 1];
        bytes.extend_from_slice(list.as_bytes());
        assert_eq!(parse_descriptors(&bytes[1..]).unwrap(), list.to_vec());
    }

    #[test]
    fn ring_arithmetic() {
        let mut ring = Ring {
            base: 0x10_0000,
            size: 4,
            head: 0,
            tail: 0,
        };
        assert_eq!(ring.check(16), Ok(()));
        assert!(ring.is_empty());
        ring.tail = 3;
        assert!(ring.is_full());
        assert_eq!(ring.len(), 3);
        ring.head = 3;
        ring.tail = 1;
        assert_eq!(ring.len(), 2);
        assert_eq!(ring.next(3), 0);
        assert_eq!(ring.entry_addr(2, 32), 0x10_0040);
        assert_eq!(
            Ring { size: 3, ..ring }.check(16),
            Err(RingConfigError::Size(3))
        );
        assert_eq!(
            Ring { base: 8, ..ring }.check(16),
            Err(RingConfigError::Base(8))
        );
        assert_eq!(
            Ring { head: 4, ..ring }.check(16),
            Err(RingConfigError::Index(4))
        );
    }
}
