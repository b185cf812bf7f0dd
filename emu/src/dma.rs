//! Device DMA: translation of I/O virtual addresses (the guest's DMA addresses) to host
//! memory.
//!
//! QEMU announces guest memory with DMA_MAP messages carrying a file descriptor whose
//! offset is the guest-physical address. With a virtual IOMMU it sends one message per
//! 4 KiB page, each with a fresh descriptor of the same memfd. Mapping each message would
//! exhaust `vm.max_map_count` at ~256 MiB, so each underlying file (identified by device
//! and inode) is mapped once and IOVA ranges are translated through a table. Adjacent
//! ranges that continue each other in the same file are merged, so a linear guest map
//! ends up as a handful of table entries.
//!
//! An access to an IOVA without a mapping (or without the needed permission) is a
//! [`DmaFault`] that the device reports to the driver; it never aborts the model.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, MutexGuard};

use thiserror::Error;

/// A device access to an address that is not mapped for it.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
#[error("DMA fault at IOVA {iova:#x} (write: {write})")]
pub struct DmaFault {
    /// First address of the access that could not be performed.
    pub iova: u64,
    /// Whether the access was a write.
    pub write: bool,
}

/// Errors of DMA_MAP / DMA_UNMAP handling.
#[derive(Debug, Error)]
pub enum MapError {
    /// The map message carried no file descriptor: the region is not shareable.
    #[error("DMA_MAP of IOVA {iova:#x} without a file descriptor (guest RAM must be share=on)")]
    NoFd {
        /// IOVA of the map.
        iova: u64,
    },
    /// The range is empty, wraps, or lies outside the file.
    #[error("invalid DMA range IOVA {iova:#x} size {size:#x} offset {offset:#x}")]
    Range {
        /// IOVA of the map.
        iova: u64,
        /// Its size.
        size: u64,
        /// Its file offset.
        offset: u64,
    },
    /// fstat or mmap failed.
    #[error("mapping guest memory: {0}")]
    Io(#[from] std::io::Error),
}

/// Device view of host memory.
pub trait DmaSpace: Send + Sync {
    /// Writes `data` at `iova`. On a fault, the bytes before the faulting address have
    /// been written.
    ///
    /// # Errors
    ///
    /// The first address that is not mapped for writing.
    fn write(&self, iova: u64, data: &[u8]) -> Result<(), DmaFault>;

    /// Reads `data.len()` bytes at `iova`.
    ///
    /// # Errors
    ///
    /// The first address that is not mapped for reading.
    fn read(&self, iova: u64, data: &mut [u8]) -> Result<(), DmaFault>;
}

/// A whole file mapped shared into this process.
///
/// INVARIANT: `ptr..ptr + len` is a live `MAP_SHARED` mapping until drop.
struct FileMapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory; the raw pointer is only used for copies
// that the table bounds-checks, from any thread.
unsafe impl Send for FileMapping {}
// SAFETY: as above; no interior state besides the memory itself.
unsafe impl Sync for FileMapping {}

impl FileMapping {
    fn new(file: &File, len: usize) -> std::io::Result<Self> {
        // SAFETY: mapping a file we hold open; the kernel picks the address, so no
        // existing memory is affected. The result is checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_NORESERVE,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<u8>())
            .ok_or_else(|| std::io::Error::other("mmap returned NULL"))?;
        // INVARIANT: mmap succeeded for `len` bytes.
        Ok(Self { ptr, len })
    }
}

impl Drop for FileMapping {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping created in `new`; no references into it
        // exist (accesses are raw copies that finished while holding an `Arc` to self).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// One translated IOVA range.
#[derive(Clone)]
struct Range {
    len: u64,
    file: Arc<FileMapping>,
    /// Offset of the range's first byte in `file`.
    offset: u64,
    readable: bool,
    writable: bool,
}

impl Range {
    /// Whether `next` (starting at `iova + self.len`) continues this range in the file.
    fn continued_by(&self, next: &Range) -> bool {
        Arc::ptr_eq(&self.file, &next.file)
            && self.offset + self.len == next.offset
            && self.readable == next.readable
            && self.writable == next.writable
    }
}

/// File identity: a new descriptor of an already mapped file reuses its mapping.
type FileKey = (u64, u64);

#[derive(Default)]
struct Table {
    files: HashMap<FileKey, Arc<FileMapping>>,
    /// Keyed by first IOVA; ranges never overlap.
    ranges: BTreeMap<u64, Range>,
}

/// IOVA translation table fed by DMA_MAP / DMA_UNMAP.
#[derive(Default)]
pub struct IovaTable {
    table: Mutex<Table>,
}

impl IovaTable {
    /// An empty table: every access faults.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // A panic while holding the lock cannot leave the table inconsistent in a way
        // that matters more than stopping DMA would; keep serving.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `iova..iova + size` -> `fd` at `offset`, replacing any overlapped range.
    ///
    /// # Errors
    ///
    /// No descriptor, a range outside the file, or a failing fstat/mmap.
    pub fn map(
        &self,
        iova: u64,
        size: u64,
        offset: u64,
        fd: Option<File>,
        readable: bool,
        writable: bool,
    ) -> Result<(), MapError> {
        let file = fd.ok_or(MapError::NoFd { iova })?;
        let bad_range = MapError::Range { iova, size, offset };
        if size == 0 || iova.checked_add(size).is_none() {
            return Err(bad_range);
        }
        let end_in_file = offset
            .checked_add(size)
            .ok_or(MapError::Range { iova, size, offset })?;
        let meta = file.metadata()?;
        if end_in_file > meta.size() {
            return Err(bad_range);
        }
        let key = (meta.dev(), meta.ino());
        let mut table = self.lock();
        let mapping = match table.files.get(&key) {
            Some(m) if m.len as u64 >= end_in_file => Arc::clone(m),
            _ => {
                // First map of this file, or the file grew: map its current size once.
                let len = usize::try_from(meta.size()).map_err(|_| MapError::Range {
                    iova,
                    size,
                    offset,
                })?;
                let m = Arc::new(FileMapping::new(&file, len)?);
                log::debug!("mapped guest memory file {key:?}: {len:#x} bytes");
                table.files.insert(key, Arc::clone(&m));
                m
            }
        };
        table.remove(iova, size);
        table.insert(
            iova,
            Range {
                len: size,
                file: mapping,
                offset,
                readable,
                writable,
            },
        );
        // A remap may have replaced the last range of another file.
        table.drop_unused_files();
        Ok(())
    }

    /// Removes `iova..iova + size` (splitting ranges that straddle its ends).
    pub fn unmap(&self, iova: u64, size: u64) {
        let mut table = self.lock();
        table.remove(iova, size);
        table.drop_unused_files();
    }

    /// Removes every range and drops every file mapping.
    pub fn unmap_all(&self) {
        let mut table = self.lock();
        table.ranges.clear();
        table.files.clear();
    }

    /// Number of table entries after merging (for tests and diagnostics).
    pub fn ranges(&self) -> usize {
        self.lock().ranges.len()
    }

    /// Number of distinct files mapped.
    pub fn files(&self) -> usize {
        self.lock().files.len()
    }

    /// Translates the longest prefix (at most `len`) of `iova..` that is contiguous in one
    /// file and has the needed permission.
    fn resolve(
        &self,
        iova: u64,
        len: u64,
        write: bool,
    ) -> Result<(Arc<FileMapping>, usize, usize), DmaFault> {
        let fault = DmaFault { iova, write };
        let table = self.lock();
        let (&start, range) = table.ranges.range(..=iova).next_back().ok_or(fault)?;
        let within = iova - start;
        if within >= range.len
            || !(if write {
                range.writable
            } else {
                range.readable
            })
        {
            return Err(fault);
        }
        let chunk = len.min(range.len - within);
        // CAST: offsets and lengths are below the mapping length, a usize.
        let at = (range.offset + within) as usize;
        Ok((Arc::clone(&range.file), at, chunk as usize))
    }
}

impl Table {
    fn insert(&mut self, iova: u64, mut range: Range) {
        let mut start = iova;
        // Merge with the predecessor that ends where this one starts.
        if let Some((&prev_start, prev)) = self.ranges.range(..iova).next_back() {
            if prev_start + prev.len == iova && prev.continued_by(&range) {
                range = Range {
                    len: prev.len + range.len,
                    ..prev.clone()
                };
                start = prev_start;
            }
        }
        // Merge with the successor that starts where this one ends.
        let end = start + range.len;
        if let Some(next) = self.ranges.get(&end) {
            if range.continued_by(next) {
                range.len += next.len;
                self.ranges.remove(&end);
            }
        }
        self.ranges.insert(start, range);
    }

    fn remove(&mut self, iova: u64, size: u64) {
        let end = iova.saturating_add(size);
        let overlapping: Vec<u64> = self
            .ranges
            .range(..end)
            .rev()
            .take_while(|(&s, r)| s + r.len > iova)
            .map(|(&s, _)| s)
            .collect();
        for start in overlapping {
            let Some(range) = self.ranges.remove(&start) else {
                continue;
            };
            let range_end = start + range.len;
            if start < iova {
                let left = Range {
                    len: iova - start,
                    ..range.clone()
                };
                self.ranges.insert(start, left);
            }
            if range_end > end {
                let cut = end - start;
                let right = Range {
                    len: range_end - end,
                    offset: range.offset + cut,
                    ..range.clone()
                };
                self.ranges.insert(end, right);
            }
        }
    }

    /// Drops file mappings that no range uses any more.
    fn drop_unused_files(&mut self) {
        let used: Vec<*const FileMapping> =
            self.ranges.values().map(|r| Arc::as_ptr(&r.file)).collect();
        self.files.retain(|_, m| used.contains(&Arc::as_ptr(m)));
    }
}

impl DmaSpace for IovaTable {
    fn write(&self, iova: u64, data: &[u8]) -> Result<(), DmaFault> {
        let mut done = 0usize;
        while done < data.len() {
            let at = iova.wrapping_add(done as u64);
            let (file, offset, chunk) = self.resolve(at, (data.len() - done) as u64, true)?;
            // SAFETY: `resolve` bounds `offset + chunk` by the range, which lies inside
            // the mapping (checked against the file size at map time); `file` keeps the
            // mapping alive for the copy. The destination is guest memory that the guest
            // may access concurrently, as with a real device's DMA; no Rust reference to it
            // is created.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    data[done..].as_ptr(),
                    file.ptr.as_ptr().add(offset),
                    chunk,
                );
            }
            done += chunk;
        }
        Ok(())
    }

    fn read(&self, iova: u64, data: &mut [u8]) -> Result<(), DmaFault> {
        let mut done = 0usize;
        while done < data.len() {
            let at = iova.wrapping_add(done as u64);
            let (file, offset, chunk) = self.resolve(at, (data.len() - done) as u64, false)?;
            // SAFETY: as in `write`, with source and destination swapped.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    file.ptr.as_ptr().add(offset),
                    data[done..].as_mut_ptr(),
                    chunk,
                );
            }
            done += chunk;
        }
        Ok(())
    }
}

/// Creates an anonymous memory file of `size` bytes, like QEMU's memory-backend-memfd
/// (used by tests and the benchmark).
///
/// # Errors
///
/// memfd_create or ftruncate failure.
pub fn memfd(name: &str, size: u64) -> std::io::Result<File> {
    use std::os::fd::FromRawFd;
    let name = std::ffi::CString::new(name)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: plain syscall with a valid NUL-terminated name; the result is checked.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    let file = unsafe { File::from_raw_fd(fd) };
    file.set_len(size)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: u64 = 4096;

    fn table_with_pages(file: &File, iova: u64, gpa: u64, pages: u64) -> IovaTable {
        let table = IovaTable::new();
        for p in 0..pages {
            table
                .map(
                    iova + p * PAGE,
                    PAGE,
                    gpa + p * PAGE,
                    Some(file.try_clone().unwrap()),
                    true,
                    true,
                )
                .unwrap();
        }
        table
    }

    #[test]
    fn page_maps_share_one_mapping_and_merge() {
        let file = memfd("t", 64 * PAGE).unwrap();
        let table = table_with_pages(&file, 0x10_0000, 0, 64);
        assert_eq!(table.files(), 1);
        assert_eq!(table.ranges(), 1);
        // A write across all pages lands at file offset 0..
        let data: Vec<u8> = (0..64 * PAGE).map(|i| i as u8).collect();
        table.write(0x10_0000, &data).unwrap();
        let mut back = vec![0u8; data.len()];
        table.read(0x10_0000, &mut back).unwrap();
        assert_eq!(back, data);
        // ... and is visible through the file, as the guest would see it.
        let mut via_file = vec![0u8; 16];
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut via_file, PAGE + 3).unwrap();
        assert_eq!(via_file, data[(PAGE + 3) as usize..][..16]);
    }

    #[test]
    fn scattered_pages_translate_piecewise() {
        let file = memfd("t", 16 * PAGE).unwrap();
        let table = IovaTable::new();
        // IOVA-contiguous, file-discontiguous: page 0 -> gpa 5, page 1 -> gpa 2.
        table
            .map(
                0,
                PAGE,
                5 * PAGE,
                Some(file.try_clone().unwrap()),
                true,
                true,
            )
            .unwrap();
        table
            .map(
                PAGE,
                PAGE,
                2 * PAGE,
                Some(file.try_clone().unwrap()),
                true,
                true,
            )
            .unwrap();
        assert_eq!(table.ranges(), 2);
        table.write(PAGE - 2, &[1, 2, 3, 4]).unwrap();
        let mut b = [0u8; 2];
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut b, 6 * PAGE - 2).unwrap();
        assert_eq!(b, [1, 2]);
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut b, 2 * PAGE).unwrap();
        assert_eq!(b, [3, 4]);
    }

    #[test]
    fn unmapped_iova_is_a_fault_after_partial_write() {
        let file = memfd("t", 4 * PAGE).unwrap();
        let table = table_with_pages(&file, 0, 0, 4);
        table.unmap(2 * PAGE, PAGE);
        assert_eq!(table.ranges(), 2);
        let data = vec![0xaau8; (2 * PAGE) as usize];
        assert_eq!(
            table.write(PAGE, &data),
            Err(DmaFault {
                iova: 2 * PAGE,
                write: true
            })
        );
        let mut b = [0u8; 1];
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut b, 2 * PAGE - 1).unwrap();
        assert_eq!(b, [0xaa]);
        assert!(table.read(100 * PAGE, &mut b).is_err());
        assert!(table.write(u64::MAX, &[1, 2]).is_err());
        table.unmap_all();
        assert_eq!(table.files(), 0);
        assert!(table.read(0, &mut b).is_err());
    }

    #[test]
    fn read_only_range_refuses_writes() {
        let file = memfd("t", PAGE).unwrap();
        let table = IovaTable::new();
        table.map(0, PAGE, 0, Some(file), true, false).unwrap();
        assert!(table.write(0, &[1]).is_err());
        assert!(table.read(0, &mut [0u8]).is_ok());
    }

    #[test]
    fn map_rejects_ranges_outside_the_file_and_missing_fd() {
        let file = memfd("t", PAGE).unwrap();
        let table = IovaTable::new();
        assert!(matches!(
            table.map(0, 2 * PAGE, 0, Some(file), true, true),
            Err(MapError::Range { .. })
        ));
        assert!(matches!(
            table.map(0, PAGE, 0, None, true, true),
            Err(MapError::NoFd { .. })
        ));
    }

    #[test]
    fn remapping_replaces_overlap() {
        let a = memfd("a", 4 * PAGE).unwrap();
        let b = memfd("b", 4 * PAGE).unwrap();
        let table = table_with_pages(&a, 0, 0, 4);
        table
            .map(PAGE, PAGE, 0, Some(b.try_clone().unwrap()), true, true)
            .unwrap();
        assert_eq!(table.files(), 2);
        assert_eq!(table.ranges(), 3);
        table.write(PAGE, &[9]).unwrap();
        let mut x = [0u8; 1];
        std::os::unix::fs::FileExt::read_exact_at(&b, &mut x, 0).unwrap();
        assert_eq!(x, [9]);
        table.unmap(PAGE, PAGE);
        assert_eq!(table.files(), 1);
    }
}
