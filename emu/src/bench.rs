//! `fgrab-emu bench-dma`: the raw rate at which the model can write patterned frames into
//! guest-like memory (a memfd reached through the IOVA table, as QEMU provides it). This
//! is the physical limit of the emulated pipeline that end-to-end benchmarks compare to.

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use crate::dma::{memfd, DmaSpace, IovaTable, MapError};
use crate::dma_rings::Descriptor;
use crate::engine::{write_frame, CHUNK};
use crate::pattern;
use fgrab_hw::caps::MAX_SEGMENT_BYTES;

/// Benchmark parameters.
#[derive(Clone, Copy, Debug)]
pub struct BenchConfig {
    /// Memory size; frames are placed one after another and wrap around.
    pub memory_bytes: u64,
    /// Bytes per frame.
    pub frame_bytes: u32,
    /// Measurement time per test.
    pub duration: Duration,
    /// Map memory as 4 KiB pages (as QEMU does with a virtual IOMMU) instead of one map.
    pub page_maps: bool,
}

/// Measured rates in bytes per second.
#[derive(Clone, Copy, Debug)]
pub struct BenchReport {
    /// First write to never-touched memory (host page allocation).
    pub first_touch: f64,
    /// Patterned frames through the device write path (generation + DMA copy).
    pub pattern_frames: f64,
    /// Plain copies of a constant buffer through the same path (no generation).
    pub raw_copy: f64,
    /// Reading back and verifying every byte of the pattern.
    pub verify: f64,
    /// Table entries after mapping (merging works if this is small).
    pub table_ranges: usize,
}

/// IOVA where the benchmark memory is mapped (arbitrary, not 0 to catch offset bugs).
const IOVA_BASE: u64 = 0x1_0000_0000;

/// Runs the benchmark.
///
/// # Errors
///
/// memfd or mapping failures.
pub fn run(config: &BenchConfig) -> Result<BenchReport, MapError> {
    let file = memfd("fgrab-bench", config.memory_bytes)?;
    let table = IovaTable::new();
    if config.page_maps {
        for page in (0..config.memory_bytes).step_by(4096) {
            table.map(
                IOVA_BASE + page,
                4096,
                page,
                Some(file.try_clone()?),
                true,
                true,
            )?;
        }
    } else {
        table.map(IOVA_BASE, config.memory_bytes, 0, Some(file), true, true)?;
    }
    let mut buf = vec![0u8; CHUNK];
    let abort = AtomicBool::new(false);
    let frame = u64::from(config.frame_bytes);
    // Frames start at odd offsets, as unaligned user buffers do.
    let slots = (config.memory_bytes / (frame + 64)).max(1);
    let lists: Vec<Vec<Descriptor>> = (0..slots)
        .map(|slot| segments(IOVA_BASE + slot * (frame + 64) + 3, frame))
        .collect();

    // First touch: one pass over the whole memory.
    let start = Instant::now();
    let mut touched = 0u64;
    for (i, list) in lists.iter().enumerate() {
        let t = write_frame(
            &table,
            list,
            config.frame_bytes,
            i as u64,
            None,
            &abort,
            &mut buf,
        );
        touched += u64::from(t.bytes);
    }
    let first_touch = touched as f64 / start.elapsed().as_secs_f64();

    let mut sequence = 0u64;
    let pattern_frames = measure(config.duration, || {
        let list = &lists[(sequence % slots) as usize];
        let t = write_frame(
            &table,
            list,
            config.frame_bytes,
            sequence,
            None,
            &abort,
            &mut buf,
        );
        sequence += 1;
        u64::from(t.bytes)
    });

    let constant = vec![0x5au8; CHUNK];
    let mut n = 0u64;
    let raw_copy = measure(config.duration, || {
        let list = &lists[(n % slots) as usize];
        n += 1;
        let mut bytes = 0;
        for d in list {
            let mut done = 0u64;
            while done < u64::from(d.len) {
                let len = (u64::from(d.len) - done).min(CHUNK as u64) as usize;
                let _ = table.write(d.addr + done, &constant[..len]);
                done += len as u64;
            }
            bytes += u64::from(d.len);
        }
        bytes
    });

    // Rewrite known frames, then verify them.
    for (i, list) in lists.iter().enumerate() {
        write_frame(
            &table,
            list,
            config.frame_bytes,
            i as u64,
            None,
            &abort,
            &mut buf,
        );
    }
    let mut k = 0u64;
    let mut read_buf = vec![0u8; CHUNK];
    let verify = measure(config.duration, || {
        let slot = k % slots;
        k += 1;
        let mut offset = 0u64;
        for d in &lists[slot as usize] {
            let mut done = 0u64;
            while done < u64::from(d.len) {
                let len = (u64::from(d.len) - done).min(CHUNK as u64) as usize;
                let chunk = &mut read_buf[..len];
                if table.read(d.addr + done, chunk).is_err()
                    || pattern::verify(chunk, slot, offset + done).is_err()
                {
                    log::error!("verification failed in frame slot {slot}");
                }
                done += len as u64;
            }
            offset += u64::from(d.len);
        }
        offset
    });

    Ok(BenchReport {
        first_touch,
        pattern_frames,
        raw_copy,
        verify,
        table_ranges: table.ranges(),
    })
}

/// Descriptors covering `len` bytes at `addr`, split at the maximum segment size.
pub fn segments(addr: u64, len: u64) -> Vec<Descriptor> {
    let mut list = Vec::new();
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(u64::from(MAX_SEGMENT_BYTES));
        list.push(Descriptor {
            addr: addr + done,
            // CAST: bounded by MAX_SEGMENT_BYTES.
            len: n as u32,
            flags: 0,
        });
        done += n;
    }
    if let Some(last) = list.last_mut() {
        last.flags = Descriptor::LAST;
    }
    list
}

fn measure(duration: Duration, mut step: impl FnMut() -> u64) -> f64 {
    let start = Instant::now();
    let mut bytes = 0u64;
    while start.elapsed() < duration {
        bytes += step();
    }
    bytes as f64 / start.elapsed().as_secs_f64()
}
