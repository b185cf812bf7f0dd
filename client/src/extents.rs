//! How many physically contiguous pieces a piece of this process's memory is made of.
//!
//! Without an IOMMU a frame needs one DMA descriptor per physically contiguous extent (split
//! at the card's largest segment), so this is what the driver's `descriptors` counters should
//! equal; benchmarks and tests compare the two. The answer comes from `/proc/self/pagemap`,
//! whose frame numbers only a privileged process (`CAP_SYS_ADMIN`) can see.

/// Number of physically contiguous extents of the `len` bytes at virtual address `addr` of
/// this process, each extent counted `ceil(bytes / max_segment)` times. `None` if the
/// pagemap cannot be read, hides frame numbers (unprivileged) or a page is not present.
pub fn physical_extents(addr: usize, len: usize, max_segment: u64) -> Option<u64> {
    use std::os::unix::fs::FileExt;
    const PAGE: usize = 4096;
    const PRESENT: u64 = 1 << 63;
    const PFN_MASK: u64 = (1 << 55) - 1;
    if len == 0 || max_segment == 0 {
        return Some(0);
    }
    let pagemap = std::fs::File::open("/proc/self/pagemap").ok()?;
    let first = addr / PAGE;
    let last = (addr + len - 1) / PAGE;
    let mut entries = vec![0u8; (last - first + 1) * 8];
    pagemap
        .read_exact_at(&mut entries, (first * 8) as u64)
        .ok()?;
    let mut extents = 0u64;
    let mut run: Option<(u64, u64)> = None; // (physical start, bytes)
    for (index, chunk) in entries.chunks_exact(8).enumerate() {
        let entry = u64::from_le_bytes(chunk.try_into().ok()?);
        let pfn = entry & PFN_MASK;
        if entry & PRESENT == 0 || pfn == 0 {
            return None;
        }
        let page = first + index;
        let start_in_page = if page == first { addr % PAGE } else { 0 };
        let end_in_page = if page == last {
            (addr + len - 1) % PAGE + 1
        } else {
            PAGE
        };
        let physical = pfn * PAGE as u64 + start_in_page as u64;
        let bytes = (end_in_page - start_in_page) as u64;
        run = match run {
            Some((start, length)) if start + length == physical => Some((start, length + bytes)),
            Some((_, length)) => {
                extents += length.div_ceil(max_segment);
                Some((physical, bytes))
            }
            None => Some((physical, bytes)),
        };
    }
    run.map(|(_, length)| extents + length.div_ceil(max_segment))
}
