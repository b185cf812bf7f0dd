//! Attaching regions of io_uring fixed buffers: lifetime, ownership, teardown triggers and
//! every malformed-request class.

use crate::ensure;
use crate::harness::{self, TestResult};
use crate::uring::{attach_request, Memory, TestUring};
use fgrab_uapi::{ops, AttachCmd, ControlCmd, MAX_FRAMES, STATE_ATTACHED, STATE_IDLE};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use zerocopy::{FromZeros, IntoBytes};

const CARD0: &str = "/dev/fgrab0";
const ATTACH: u64 = 0xa77a;
const DETACH: u64 = 0xde7a;
const MIB: usize = 1 << 20;

/// A non-page-aligned region of 10 non-aligned frames in a 2 MiB buffer.
fn small_request(memory: &Memory) -> AttachCmd {
    attach_request(memory.addr() + 100, 100_000, 100_003, 10)
}

/// Submits an attach that is expected to stay in flight, and waits until the card shows
/// the region (an `IOSQE_ASYNC` submission is issued later, from a worker).
fn attach(ring: &mut TestUring, request: &AttachCmd) -> TestResult {
    ring.submit(ops::ATTACH, request.as_bytes(), Some(0), ATTACH)?;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let early = ring.pending_completions();
        ensure!(early.is_empty(), "attach completed at once: {early:?}");
        if ring.stats()?.state == STATE_ATTACHED {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "the region did not appear within 5 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Detaches and checks that both the detach and the attach command complete with 0.
fn detach(ring: &mut TestUring) -> TestResult {
    ring.submit(
        ops::DETACH,
        ControlCmd::new_zeroed().as_bytes(),
        None,
        DETACH,
    )?;
    let mut seen = ring.wait_for(DETACH, Duration::from_secs(5))?;
    if !seen.iter().any(|(data, _)| *data == ATTACH) {
        seen.extend(ring.wait_for(ATTACH, Duration::from_secs(5))?);
    }
    ensure!(
        seen.contains(&(DETACH, 0)) && seen.contains(&(ATTACH, 0)),
        "detach and attach should both complete with 0: {seen:?}"
    );
    Ok(())
}

/// Waits until the card reports no region (teardown triggered elsewhere is asynchronous).
fn wait_idle(path: &str) -> TestResult {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut ring = TestUring::open(path)?;
    loop {
        let stats = ring.stats()?;
        if stats.state == STATE_IDLE {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "card still has a region attached: {stats:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Attaches and detaches a fresh region: the card is usable.
fn usable(path: &str) -> TestResult {
    let memory = Memory::new(2 * MIB)?;
    let mut ring = TestUring::open(path)?;
    // SAFETY: `memory` outlives `ring` (declared before it).
    unsafe { ring.register(&[&memory])? };
    attach(&mut ring, &small_request(&memory))?;
    detach(&mut ring)
}

/// Attach stays in flight, STATS shows the region, DETACH ends it, and again, the second
/// time issued from an io-wq worker (`IOSQE_ASYNC`).
pub fn attach_detach() -> TestResult {
    let memory = Memory::new(2 * MIB)?;
    let mut ring = TestUring::open(CARD0)?;
    // SAFETY: `memory` outlives `ring`.
    unsafe { ring.register(&[&memory])? };
    for round in 0..2 {
        ring.set_async(round == 1);
        attach(&mut ring, &small_request(&memory))?;
        let stats = ring.stats()?;
        ensure!(
            stats.state == STATE_ATTACHED,
            "round {round}: state {}",
            stats.state
        );
        ensure!(
            stats.frame_count == 10
                && stats.frame_bytes == 100_000
                && stats.frame_stride == 100_003,
            "round {round}: geometry {stats:?}"
        );
        // 100,000 bytes touch at most 26 pages: never more descriptors than that.
        ensure!(
            (1..=26).contains(&stats.descriptors_max_per_frame),
            "descriptors per frame {}",
            stats.descriptors_max_per_frame
        );
        if round == 0 {
            harness::info(&format!(
                "10 frames of 100000 B, stride 100003, region at page offset 100: {} descriptors \
                 ({} max per frame), {} mapped entries",
                stats.descriptors_total, stats.descriptors_max_per_frame, stats.mapped_entries
            ));
        }
        detach(&mut ring)?;
        ensure!(
            ring.stats()?.state == STATE_IDLE,
            "round {round}: still attached after detach"
        );
    }
    Ok(())
}

/// Every malformed attach/detach gets its errno and changes nothing.
pub fn attach_rejects_malformed() -> TestResult {
    let memory = Memory::new(2 * MIB)?;
    let mut ring = TestUring::open(CARD0)?;
    // SAFETY: `memory` outlives `ring`.
    unsafe { ring.register(&[&memory])? };
    let good = small_request(&memory);
    type Case = (&'static str, fn(&mut AttachCmd), Option<u16>, i32);
    let cases: [Case; 13] = [
        ("missing IORING_URING_CMD_FIXED", |_| {}, None, libc::EINVAL),
        ("unregistered buf_index", |_| {}, Some(3), libc::EFAULT),
        (
            "range beyond the fixed buffer",
            |r| r.addr += 2 * MIB as u64,
            Some(0),
            libc::EFAULT,
        ),
        ("zero region length", |r| r.len = 0, Some(0), libc::EINVAL),
        (
            "zero frame_bytes",
            |r| r.frame_bytes = 0,
            Some(0),
            libc::EINVAL,
        ),
        (
            "zero frame_count",
            |r| r.frame_count = 0,
            Some(0),
            libc::EINVAL,
        ),
        (
            "stride shorter than a frame",
            |r| r.frame_stride = 99_999,
            Some(0),
            libc::EINVAL,
        ),
        (
            "frames beyond the region",
            |r| r.len -= 1,
            Some(0),
            libc::EINVAL,
        ),
        (
            "geometry overflow",
            |r| r.frame_stride = u64::MAX / 2,
            Some(0),
            libc::EINVAL,
        ),
        (
            "too many frames",
            |r| r.frame_count = MAX_FRAMES + 1,
            Some(0),
            libc::EINVAL,
        ),
        (
            "address wraps",
            |r| r.addr = u64::MAX - 1000,
            Some(0),
            libc::EINVAL,
        ),
        ("nonzero flags", |r| r.flags = 1, Some(0), libc::EINVAL),
        (
            "nonzero reserved",
            |r| r.reserved[4] = 1,
            Some(0),
            libc::EINVAL,
        ),
    ];
    for (what, mutate, buf_index, errno) in cases {
        let mut request = good;
        mutate(&mut request);
        let res = ring.call(ops::ATTACH, request.as_bytes(), buf_index)?;
        ensure!(res == -errno, "{what}: expected -{errno}, got {res}");
        ensure!(
            ring.stats()?.state == STATE_IDLE,
            "{what}: left a region attached"
        );
    }
    let res = ring.detach()?;
    ensure!(
        res == -libc::ENOENT,
        "detach with nothing attached: expected -ENOENT, got {res}"
    );
    let mut bad_detach = ControlCmd::new_zeroed();
    bad_detach.reserved[8] = 1;
    let res = ring.call(ops::DETACH, bad_detach.as_bytes(), None)?;
    ensure!(
        res == -libc::EINVAL,
        "detach with reserved bits: expected -EINVAL, got {res}"
    );

    // One region per card: a second attach, from this file or another, is refused and the
    // first region is untouched.
    attach(&mut ring, &good)?;
    let res = ring.call(ops::ATTACH, good.as_bytes(), Some(0))?;
    ensure!(
        res == -libc::EBUSY,
        "second attach: expected -EBUSY, got {res}"
    );
    let other_memory = Memory::new(2 * MIB)?;
    let mut other = TestUring::open(CARD0)?;
    // SAFETY: `other_memory` outlives `other`.
    unsafe { other.register(&[&other_memory])? };
    let res = other.call(
        ops::ATTACH,
        small_request(&other_memory).as_bytes(),
        Some(0),
    )?;
    ensure!(
        res == -libc::EBUSY,
        "attach from another file: expected -EBUSY, got {res}"
    );
    let res = other.detach()?;
    ensure!(
        res == -libc::EBUSY,
        "detach from another file: expected -EBUSY, got {res}"
    );
    let stats = other.stats()?;
    ensure!(
        stats.state == STATE_ATTACHED && stats.frame_bytes == good.frame_bytes,
        "the first region changed: {stats:?}"
    );
    detach(&mut ring)
}

/// The ring exits with a region attached: io_uring cancels the attach command, the driver
/// unmaps and completes it, and the card is usable again.
pub fn attach_ring_exit() -> TestResult {
    {
        let memory = Memory::new(2 * MIB)?;
        let mut ring = TestUring::open(CARD0)?;
        // SAFETY: `memory` outlives `ring`.
        unsafe { ring.register(&[&memory])? };
        attach(&mut ring, &small_request(&memory))?;
        // `ring` (and the file) close here, with the attach command in flight.
    }
    wait_idle(CARD0)?;
    usable(CARD0)
}

/// Fixed buffers unregistered while attached: the attach command still holds the pages, so
/// the region stays valid until detach.
pub fn attach_survives_unregister() -> TestResult {
    let memory = Memory::new(2 * MIB)?;
    let mut ring = TestUring::open(CARD0)?;
    // SAFETY: `memory` outlives `ring`.
    unsafe { ring.register(&[&memory])? };
    attach(&mut ring, &small_request(&memory))?;
    ring.unregister()?;
    ensure!(
        ring.stats()?.state == STATE_ATTACHED,
        "region lost on unregister"
    );
    detach(&mut ring)
}

/// The owning process is killed with a region attached.
pub fn attach_process_killed() -> TestResult {
    let mut child = Command::new("/bin/fgrab-guest")
        .args(["attach-and-wait", CARD0])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|error| format!("spawning the attaching process: {error}"))?;
    let mut line = String::new();
    let stdout = child.stdout.take().ok_or("no stdout")?;
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|error| error.to_string())?;
    ensure!(line.trim() == "attached", "child said `{}`", line.trim());
    let _ = child.kill();
    let _ = child.wait();
    wait_idle(CARD0)?;
    usable(CARD0)
}

/// Helper process for [`attach_process_killed`]: attaches, says so, waits to be killed.
pub fn attach_and_wait(path: &str) -> ! {
    let result = (|| -> TestResult {
        let memory = Memory::new(2 * MIB)?;
        let mut ring = TestUring::open(path)?;
        // SAFETY: `memory` lives until the process dies.
        unsafe { ring.register(&[&memory])? };
        attach(&mut ring, &small_request(&memory))?;
        println!("attached");
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    })();
    println!("error: {}", result.err().unwrap_or_default());
    std::process::exit(1)
}

/// The card is unbound with a region attached: the attach command completes with -ENODEV,
/// the open file sees the card gone, and a rebind brings it back.
pub fn attach_unbind() -> TestResult {
    let driver = "/sys/bus/pci/drivers/fgrab";
    let device = std::fs::read_link("/sys/class/misc/fgrab0/device")
        .map_err(|error| format!("fgrab0's device: {error}"))?;
    let device = device
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .ok_or("no device name")?;
    {
        let memory = Memory::new(2 * MIB)?;
        let mut ring = TestUring::open(CARD0)?;
        // SAFETY: `memory` outlives `ring`.
        unsafe { ring.register(&[&memory])? };
        attach(&mut ring, &small_request(&memory))?;
        std::fs::write(format!("{driver}/unbind"), &device)
            .map_err(|error| format!("unbind {device}: {error}"))?;
        let seen = ring.wait_for(ATTACH, Duration::from_secs(10))?;
        ensure!(
            seen.contains(&(ATTACH, -libc::ENODEV)),
            "attach should complete with -ENODEV on unbind: {seen:?}"
        );
        let res = ring.call(ops::ATTACH, small_request(&memory).as_bytes(), Some(0))?;
        ensure!(
            res == -libc::ENODEV,
            "attach after unbind: expected -ENODEV, got {res}"
        );
    }
    std::fs::write(format!("{driver}/bind"), &device)
        .map_err(|error| format!("bind {device}: {error}"))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::path::Path::new(CARD0).exists() {
        ensure!(
            Instant::now() < deadline,
            "{CARD0} did not come back after bind"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    usable(CARD0)
}

/// Buffers backed by huge pages need fewer descriptors per frame than 4 KiB pages. With
/// direct DMA (no IOMMU, no bounce buffers) the descriptors of each frame must also equal the
/// frame's physically contiguous extents, split at the card's largest segment, as
/// `/proc/self/pagemap` shows them.
pub fn attach_huge_pages() -> TestResult {
    let behind_iommu = std::fs::read_link("/sys/class/misc/fgrab0/device/iommu_group").is_ok();
    let bounced = std::fs::read_to_string("/proc/cmdline")
        .map_err(|error| error.to_string())?
        .contains("swiotlb=force");
    let max_segment = fgrab::Card::open(CARD0)
        .and_then(|mut card| card.info())
        .map_err(|error| error.to_string())?
        .max_segment_bytes;
    // 8 frames of 1 MiB + 1000 bytes every 2 MiB, starting 300 bytes into the buffer.
    let (offset, frame_bytes, stride, count) = (300, MIB + 1000, 2 * MIB, 8);
    let mut counts = Vec::new();
    for huge in [false, true] {
        let memory = if huge {
            Memory::huge(16 * MIB)?
        } else {
            Memory::fragmented(16 * MIB)?
        };
        let base = memory.addr() as usize + offset;
        let extents = (0..count)
            .map(|frame| {
                fgrab::physical_extents(base + frame * stride, frame_bytes, max_segment.into())
                    .ok_or("/proc/self/pagemap shows no frame numbers")
            })
            .collect::<Result<Vec<u64>, _>>()?;
        let mut ring = TestUring::open(CARD0)?;
        // SAFETY: `memory` outlives `ring`.
        unsafe { ring.register(&[&memory])? };
        let request = attach_request(base as u64, frame_bytes as u32, stride as u64, count as u32);
        attach(&mut ring, &request)?;
        let stats = ring.stats()?;
        detach(&mut ring)?;
        let (extents_max, extents_total) = (
            extents.iter().copied().max().unwrap_or(0),
            extents.iter().sum::<u64>(),
        );
        harness::info(&format!(
            "{} pages{}: {} descriptors per 1 MiB frame at most, {} in all, {} mapped entries; \
             physically contiguous extents: {extents_max} per frame at most, {extents_total} in all",
            if huge { "2 MiB huge" } else { "4 KiB" },
            if behind_iommu {
                " behind the IOMMU"
            } else if bounced {
                " through swiotlb"
            } else {
                ""
            },
            stats.descriptors_max_per_frame,
            stats.descriptors_total,
            stats.mapped_entries
        ));
        if !behind_iommu && !bounced {
            ensure!(
                u64::from(stats.descriptors_total) == extents_total
                    && u64::from(stats.descriptors_max_per_frame) == extents_max,
                "descriptors ({} in all, {} per frame at most) differ from the physical \
                 extents ({extents_total}, {extents_max})",
                stats.descriptors_total,
                stats.descriptors_max_per_frame
            );
        }
        counts.push(stats.descriptors_max_per_frame);
    }
    ensure!(
        counts[1] <= counts[0],
        "huge pages need more descriptors: {counts:?}"
    );
    // Behind an IOMMU both map to one IOVA range per frame, and swiotlb bounces both into
    // its contiguous pool; with direct DMA only huge pages are physically contiguous.
    if !behind_iommu && !bounced {
        ensure!(
            counts[1] < counts[0],
            "huge pages did not reduce descriptors: {counts:?}"
        );
    }
    Ok(())
}

/// `fgrab_mode=demo`: attaches a non-aligned region of `path`, prints its DMA shape, detaches.
pub fn demo(path: &str) -> TestResult {
    let memory = Memory::new(16 * MIB)?;
    let mut ring = TestUring::open(path)?;
    // SAFETY: `memory` outlives `ring`.
    unsafe { ring.register(&[&memory])? };
    // 12 frames of 1 MB (not MiB) every 1,000,037 bytes, 12,345 bytes into the buffer.
    let request = attach_request(memory.addr() + 12_345, 1_000_000, 1_000_037, 12);
    attach(&mut ring, &request)?;
    let stats = ring.stats()?;
    harness::info(&format!(
        "{path}: attached {} frames of {} B (stride {}) from a fixed buffer at page offset {}: \
         {} DMA-mapped entries, {} descriptors, at most {} per frame",
        stats.frame_count,
        stats.frame_bytes,
        stats.frame_stride,
        request.addr % 4096,
        stats.mapped_entries,
        stats.descriptors_total,
        stats.descriptors_max_per_frame
    ));
    detach(&mut ring)?;
    harness::info(&format!(
        "{path}: detached; attach command completed with 0"
    ));
    Ok(())
}

/// A ring without 32-byte CQEs cannot carry frame sequence numbers: `ATTACH` and `QUEUE`
/// are refused with -EINVAL and nothing changes on the card; `INFO` still works there.
pub fn attach_rejects_small_cqe_ring() -> TestResult {
    use io_uring::{cqueue, squeue, IoUring};
    use std::os::fd::AsRawFd;
    let memory = Memory::new(2 << 20)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(CARD0)
        .map_err(|error| error.to_string())?;
    let mut ring = IoUring::<squeue::Entry128, cqueue::Entry>::builder()
        .build(8)
        .map_err(|error| error.to_string())?;
    // SAFETY: `memory` outlives the ring (declared before it, dropped after it).
    unsafe { ring.submitter().register_buffers(&[memory.iovec()]) }
        .map_err(|error| format!("register_buffers: {error}"))?;
    let mut info = fgrab_uapi::DeviceInfo::new_zeroed();
    let copy_out = fgrab_uapi::CopyOutCmd {
        addr: info.as_mut_bytes().as_mut_ptr() as u64,
        size: size_of::<fgrab_uapi::DeviceInfo>() as u32,
        ..fgrab_uapi::CopyOutCmd::new_zeroed()
    };
    let queue = fgrab_uapi::QueueCmd::new_zeroed();
    let region = small_request(&memory);
    let commands: [(u32, &[u8], bool, i32); 3] = [
        (ops::ATTACH, region.as_bytes(), true, -libc::EINVAL),
        (ops::QUEUE, queue.as_bytes(), false, -libc::EINVAL),
        (
            ops::INFO,
            copy_out.as_bytes(),
            false,
            size_of::<fgrab_uapi::DeviceInfo>() as i32,
        ),
    ];
    for (op, payload, fixed, want) in commands {
        let entry = fgrab::raw::Command::new(file.as_raw_fd(), op)
            .payload(payload)
            .buf_index(fixed.then_some(0))
            .build();
        // SAFETY: the payload points at `info` (alive until the completion is reaped below)
        // or at the registered `memory`.
        unsafe { ring.submission().push(&entry) }.map_err(|error| error.to_string())?;
        ring.submit_and_wait(1).map_err(|error| error.to_string())?;
        let cqe = ring.completion().next().ok_or("no completion")?;
        ensure!(
            cqe.result() == want,
            "op {op:#x} on a ring without CQE32: {} instead of {want}",
            cqe.result()
        );
    }
    ensure!(info.card_index == 0, "INFO wrote card {}", info.card_index);
    drop(ring);
    let state = TestUring::open(CARD0)?.stats()?.state;
    ensure!(state == STATE_IDLE, "the card changed state: {state}");
    Ok(())
}

/// `PG_dirty` of the pages behind `addr..addr + len` of this process, from
/// `/proc/self/pagemap` (virtual page to frame number) and `/proc/kpageflags`.
fn dirty_pages(addr: u64, len: u64) -> Result<(usize, usize), String> {
    use std::os::unix::fs::FileExt;
    const KPF_DIRTY: u64 = 1 << 4;
    const PRESENT: u64 = 1 << 63;
    let pagemap = std::fs::File::open("/proc/self/pagemap").map_err(|e| e.to_string())?;
    let flags = std::fs::File::open("/proc/kpageflags")
        .map_err(|e| format!("/proc/kpageflags (CONFIG_PROC_PAGE_MONITOR): {e}"))?;
    let (mut dirty, mut clean) = (0, 0);
    for page in addr / 4096..(addr + len).div_ceil(4096) {
        let mut entry = [0u8; 8];
        pagemap
            .read_exact_at(&mut entry, page * 8)
            .map_err(|e| format!("pagemap: {e}"))?;
        let entry = u64::from_le_bytes(entry);
        ensure!(entry & PRESENT != 0, "page {page:#x} is not present");
        let pfn = entry & ((1 << 55) - 1);
        let mut word = [0u8; 8];
        flags
            .read_exact_at(&mut word, pfn * 8)
            .map_err(|e| format!("kpageflags: {e}"))?;
        if u64::from_le_bytes(word) & KPF_DIRTY != 0 {
            dirty += 1;
        } else {
            clean += 1;
        }
    }
    Ok((dirty, clean))
}

/// The card writes pages io_uring unpins without dirtying: the driver marks every page of
/// a region dirty when the region ends (else a file-backed or swap-cached page written only
/// by DMA could be dropped as clean). Freshly written anonymous pages are clean as far as
/// `PG_dirty` goes (their dirt is in the page table), so the change is visible.
pub fn attach_marks_pages_dirty() -> TestResult {
    let memory = Memory::new(2 * MIB)?;
    let request = small_request(&memory);
    let (dirty_before, clean_before) = dirty_pages(request.addr, request.len)?;
    ensure!(
        clean_before > 0,
        "every page of the region is dirty before the attach: the test cannot tell"
    );
    let mut ring = TestUring::open(CARD0)?;
    // SAFETY: `memory` outlives `ring`.
    unsafe { ring.register(&[&memory])? };
    attach(&mut ring, &request)?;
    detach(&mut ring)?;
    let (dirty_after, clean_after) = dirty_pages(request.addr, request.len)?;
    harness::info(&format!(
        "region pages marked dirty: {dirty_before} of {} before the attach, {dirty_after} after \
         the detach",
        dirty_before + clean_before
    ));
    ensure!(
        clean_after == 0,
        "{clean_after} pages of the region are still clean after the detach"
    );
    Ok(())
}

/// Whether the guest forces every streaming DMA mapping through swiotlb bounce buffers.
fn swiotlb_forced() -> Result<bool, String> {
    Ok(std::fs::read_to_string("/proc/cmdline")
        .map_err(|error| error.to_string())?
        .contains("swiotlb=force"))
}

/// The kernel log so far.
fn kernel_log() -> Result<String, String> {
    let output = Command::new("/bin/busybox")
        .arg("dmesg")
        .output()
        .map_err(|error| format!("busybox dmesg: {error}"))?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// A region whose mappings are bounced through swiotlb holds its slots for its whole life,
/// so it may take at most a quarter of the pool: under `swiotlb=force` a larger one is
/// refused with `ENOBUFS` (and the kernel log says why) while one just under the limit
/// attaches; without bouncing (direct DMA, IOMMU) the larger region attaches.
pub fn attach_bounce_cap() -> TestResult {
    let bounced = swiotlb_forced()?;
    // The default pool (64 MiB) where nothing is bounced, for the same geometry everywhere.
    let pool = if bounced {
        let slabs = std::fs::read_to_string("/sys/kernel/debug/swiotlb/io_tlb_nslabs")
            .map_err(|error| format!("reading the swiotlb pool size: {error}"))?;
        let slabs: u64 = slabs
            .trim()
            .parse()
            .map_err(|error| format!("swiotlb slabs {slabs:?}: {error}"))?;
        slabs * 2048
    } else {
        64 * MIB as u64
    };
    let cap = pool / 4;
    // Non-aligned frames of 1 MiB + 1 byte, one more than fits under the cap.
    let (offset, frame_bytes, stride) = (100u64, MIB as u64 + 1, MIB as u64 + 61);
    let count = cap / frame_bytes + 1;
    let memory = Memory::new((offset + count * stride).next_multiple_of(2 * MIB as u64) as usize)?;
    let mut ring = TestUring::open(CARD0)?;
    // SAFETY: `memory` outlives `ring`.
    unsafe { ring.register(&[&memory])? };
    // CAST: a few MiB and a few dozen frames.
    let request = |count: u64| {
        attach_request(
            memory.addr() + offset,
            frame_bytes as u32,
            stride,
            count as u32,
        )
    };
    if bounced {
        let res = ring.call(ops::ATTACH, request(count).as_bytes(), Some(0))?;
        ensure!(
            res == -libc::ENOBUFS,
            "{count} frames of {frame_bytes} B through a {pool} B swiotlb pool: expected \
             -ENOBUFS, got {res}"
        );
        ensure!(
            ring.stats()?.state == STATE_IDLE,
            "the refused region is attached"
        );
        let log = kernel_log()?;
        ensure!(
            log.lines()
                .any(|line| line.contains("fgrab") && line.contains("swiotlb")),
            "no kernel message says why the region was refused"
        );
        attach(&mut ring, &request(count - 1))?;
        harness::info(&format!(
            "swiotlb pool {pool} B: {count} frames of {frame_bytes} B refused, {} attached",
            count - 1
        ));
    } else {
        attach(&mut ring, &request(count))?;
    }
    detach(&mut ring)
}

/// The driver's test-only knob: treat the cards as not DMA-coherent with this cache-line
/// size (0: ask the DMA API).
const TEST_DMA_ALIGNMENT: &str = "/sys/module/fgrab/parameters/test_dma_alignment";

/// Sets [`TEST_DMA_ALIGNMENT`] and puts 0 back when dropped, whatever the test's outcome.
struct ForcedAlignment;

impl ForcedAlignment {
    fn set(bytes: u32) -> Result<Self, String> {
        std::fs::write(TEST_DMA_ALIGNMENT, bytes.to_string())
            .map_err(|error| format!("writing {TEST_DMA_ALIGNMENT}: {error}"))?;
        Ok(Self)
    }
}

impl Drop for ForcedAlignment {
    fn drop(&mut self) {
        let _ = std::fs::write(TEST_DMA_ALIGNMENT, "0");
    }
}

/// Where DMA is not coherent, syncing a frame for the CPU invalidates whole cache lines, so
/// frames sharing a line corrupt each other: the driver then requires the region's address
/// and the stride to be multiples of the DMA cache alignment. x86 is coherent, so the test
/// forces the check on with the driver's test knob: the legacy unaligned geometry is
/// refused with `EINVAL`, an aligned one attaches, and with the knob reset the unaligned
/// one attaches again.
pub fn attach_cache_alignment() -> TestResult {
    const LINE: u64 = 128;
    let memory = Memory::new(2 * MIB)?;
    let mut ring = TestUring::open(CARD0)?;
    // SAFETY: `memory` outlives `ring`.
    unsafe { ring.register(&[&memory])? };
    let unaligned = small_request(&memory);
    {
        let _forced = ForcedAlignment::set(LINE as u32)?;
        let res = ring.call(ops::ATTACH, unaligned.as_bytes(), Some(0))?;
        ensure!(
            res == -libc::EINVAL,
            "unaligned region and stride on a non-coherent card: expected -EINVAL, got {res}"
        );
        let cases = [
            ("aligned address, unaligned stride", LINE, 100_003),
            ("unaligned address, aligned stride", LINE + 64, 100_096),
        ];
        for (what, offset, stride) in cases {
            let request = attach_request(memory.addr() + offset, 100_000, stride, 10);
            let res = ring.call(ops::ATTACH, request.as_bytes(), Some(0))?;
            ensure!(res == -libc::EINVAL, "{what}: expected -EINVAL, got {res}");
        }
        ensure!(
            ring.stats()?.state == STATE_IDLE,
            "a refused region is attached"
        );
        // Frames need not be a whole number of lines: only where they start matters.
        let aligned = attach_request(memory.addr() + LINE, 100_000, 100_096, 10);
        attach(&mut ring, &aligned)?;
        detach(&mut ring)?;
    }
    attach(&mut ring, &unaligned)?;
    detach(&mut ring)
}
