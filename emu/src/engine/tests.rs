//! Engine tests: the real engine thread and IOVA table over an in-process memfd that
//! plays guest RAM; the test plays the driver through registers and rings.

use std::fs::File;
use std::io::Read;
use std::os::fd::FromRawFd;
use std::os::unix::fs::FileExt;

use vfio_bindings::bindings::vfio::{
    VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_DATA_EVENTFD, VFIO_PCI_MSIX_IRQ_INDEX,
};

use super::mmio::{hi, lo};
use super::*;
use crate::dma::{memfd, IovaTable};
use crate::dma_rings::Descriptor;
use crate::fault::LYING_STOP_WRITE_DELAY;
use crate::pattern;
use crate::regs::{Control, Features};
use crate::regs::{VECTOR_ERROR, VECTOR_FRAME};

const IOVA: u64 = 0x4000_0000;
const MEM: u64 = 8 << 20;
const SUBMIT_RING: u64 = IOVA;
const COMPLETION_RING: u64 = IOVA + 0x1000;
const WRITEBACK: u64 = IOVA + 0x2000;
const DESC_LISTS: u64 = IOVA + 0x1_0000;
const BUFFERS: u64 = IOVA + 0x10_0000;
const TIMEOUT: Duration = Duration::from_secs(10);

/// Frame period of tests that check which frame a fault or a sequence number lands on: long
/// enough that an engine thread started late on a loaded host skips no frame start (at
/// 1-2 ms it did, and a fault planned for the second frame hit the first).
const SEQUENCED_PERIOD: Duration = Duration::from_millis(25);

struct Rig {
    file: File,
    device: Arc<Device>,
    engine: Option<JoinHandle<()>>,
    eventfds: [File; 2],
    submit_size: u32,
    completion_size: u32,
    tail: u32,
    head: u32,
}

fn eventfd() -> File {
    // SAFETY: plain syscall; checked below.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    assert!(fd >= 0);
    // SAFETY: fresh descriptor owned by nobody else.
    unsafe { File::from_raw_fd(fd) }
}

impl Rig {
    fn new(frame_bytes: u32, period: Duration, faults: &[&str]) -> Rig {
        Self::with_rings(frame_bytes, period, faults, 16, 16)
    }

    fn with_rings(
        frame_bytes: u32,
        period: Duration,
        faults: &[&str],
        submit_size: u32,
        completion_size: u32,
    ) -> Rig {
        let file = memfd("guest", MEM).unwrap();
        let table = Arc::new(IovaTable::new());
        table
            .map(IOVA, MEM, 0, Some(file.try_clone().unwrap()), true, true)
            .unwrap();
        let irqs = Arc::new(Interrupts::new());
        let eventfds = [eventfd(), eventfd()];
        irqs.set(
            VFIO_PCI_MSIX_IRQ_INDEX,
            VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_DATA_EVENTFD,
            0,
            2,
            eventfds.iter().map(|f| f.try_clone().unwrap()).collect(),
        )
        .unwrap();
        let config = EngineConfig {
            rate: 1,
            frame_bytes,
            period: Some(period),
            faults: faults.iter().map(|f| f.parse().unwrap()).collect(),
        };
        let (device, engine) = Device::start(config, table, irqs).unwrap();
        device.set_bus_master(true);
        let rig = Rig {
            file,
            device,
            engine: Some(engine),
            eventfds,
            submit_size,
            completion_size,
            tail: 0,
            head: 0,
        };
        rig.program_rings();
        rig
    }

    fn program_rings(&self) {
        self.set(Register::SubmitBaseLo, lo(SUBMIT_RING));
        self.set(Register::SubmitBaseHi, hi(SUBMIT_RING));
        self.set(Register::SubmitSize, self.submit_size);
        self.set(Register::CompletionBaseLo, lo(COMPLETION_RING));
        self.set(Register::CompletionBaseHi, hi(COMPLETION_RING));
        self.set(Register::CompletionSize, self.completion_size);
        self.set(Register::CompletionWritebackLo, lo(WRITEBACK));
        self.set(Register::CompletionWritebackHi, hi(WRITEBACK));
        self.set(Register::IrqMask, 0);
    }

    fn reg(&self, r: Register) -> u32 {
        self.device.read_register(r)
    }

    fn reg64(&self, lo_reg: Register) -> u64 {
        let lo = self.reg(lo_reg);
        let hi_reg = Register::at(u64::from(lo_reg.offset()) + 4).unwrap();
        u64::from(self.reg(hi_reg)) << 32 | u64::from(lo)
    }

    fn set(&self, r: Register, v: u32) {
        self.device.write_register(r, v);
    }

    fn put(&self, iova: u64, bytes: &[u8]) {
        self.file.write_all_at(bytes, iova - IOVA).unwrap();
    }

    fn get(&self, iova: u64, len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        self.file.read_exact_at(&mut b, iova - IOVA).unwrap();
        b
    }

    /// Queues a frame; the descriptor list goes to a slot per ring index.
    fn submit(&mut self, cookie: u32, list: &[Descriptor]) {
        let desc_addr = DESC_LISTS + u64::from(self.tail) * 0x1000;
        self.put(desc_addr, list.as_bytes());
        let entry = SubmitEntry {
            desc_addr,
            desc_count: list.len() as u16,
            reserved: 0,
            cookie,
        };
        self.put(SUBMIT_RING + u64::from(self.tail) * 16, entry.as_bytes());
        self.tail = (self.tail + 1) % self.submit_size;
        self.set(Register::SubmitTail, self.tail);
    }

    fn enable(&self) {
        self.set(Register::Control, Control::ENABLE.bits());
        assert_eq!(
            self.reg(Register::Status) & Status::RUNNING.bits(),
            Status::RUNNING.bits()
        );
    }

    fn wait_until(&self, what: &str, mut done: impl FnMut(&Rig) -> bool) {
        let end = Instant::now() + TIMEOUT;
        while !done(self) {
            assert!(Instant::now() < end, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Waits for `n` records and consumes them.
    fn completions(&mut self, n: u32) -> Vec<CompletionRecord> {
        let size = self.completion_size;
        let head = self.head;
        self.wait_until("completions", |rig| {
            (rig.reg(Register::CompletionTail) + size - head) % size >= n
        });
        let records = (0..n)
            .map(|i| {
                let index = (self.head + i) % size;
                let raw = self.get(COMPLETION_RING + u64::from(index) * 32, 32);
                CompletionRecord::read_from_bytes(&raw).unwrap()
            })
            .collect();
        self.head = (self.head + n) % size;
        self.set(Register::CompletionHead, self.head);
        records
    }

    fn irq_count(&self, vector: usize) -> u64 {
        let mut b = [0u8; 8];
        match (&self.eventfds[vector]).read(&mut b) {
            Ok(8) => u64::from_ne_bytes(b),
            _ => 0,
        }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.device.shutdown();
        if let Some(engine) = self.engine.take() {
            let _ = engine.join();
        }
    }
}

fn desc(addr: u64, len: u32, last: bool) -> Descriptor {
    Descriptor {
        addr,
        len,
        flags: if last { Descriptor::LAST } else { 0 },
    }
}

fn status(r: &CompletionRecord) -> CompletionStatus {
    CompletionStatus::try_from(r.status).unwrap()
}

#[test]
fn frames_fill_unaligned_scattered_buffers_with_the_pattern() {
    let mut rig = Rig::new(10_000, Duration::from_millis(2), &[]);
    let mut lists = Vec::new();
    for cookie in 0..3u32 {
        let base = BUFFERS + u64::from(cookie) * 0x10_0000;
        // Three segments at odd, non-adjacent addresses: 4000 + 5001 + 2000 > frame.
        let list = vec![
            desc(base + 3, 4000, false),
            desc(base + 0x8001, 5001, false),
            desc(base + 0x2_0007, 2000, true),
        ];
        rig.submit(100 + cookie, &list);
        lists.push(list);
    }
    rig.enable();
    let records = rig.completions(3);
    let mut previous = None;
    for (cookie, (r, list)) in records.iter().zip(&lists).enumerate() {
        assert_eq!(r.cookie, 100 + cookie as u32);
        assert_eq!(status(r), CompletionStatus::Ok);
        assert_eq!(r.bytes, 10_000);
        assert_eq!(r.flags & CompletionRecord::FRAME, CompletionRecord::FRAME);
        assert!(previous.is_none_or(|p| r.sequence > p));
        previous = Some(r.sequence);
        let mut offset = 0u64;
        for d in list {
            let len = d.len.min(10_000 - offset as u32) as usize;
            let got = rig.get(d.addr, d.len as usize);
            pattern::verify(&got[..len], r.sequence, offset).unwrap();
            assert!(
                got[len..].iter().all(|&b| b == 0),
                "bytes past the frame untouched"
            );
            // Neighbours of each segment are untouched.
            assert_eq!(rig.get(d.addr - 1, 1), [0]);
            offset += len as u64;
        }
    }
    let writeback = u32::from_le_bytes(rig.get(WRITEBACK, 4).try_into().unwrap());
    assert_eq!(writeback, 3);
    assert_eq!(rig.reg64(Register::FramesCompletedLo), 3);
    std::thread::sleep(Duration::from_millis(20));
    assert!(rig.irq_count(VECTOR_FRAME) >= 3);
}

#[test]
fn underrun_drops_frames_and_sequence_counts_them() {
    let mut rig = Rig::new(4096, Duration::from_millis(1), &[]);
    rig.enable();
    rig.wait_until("drops", |rig| {
        rig.reg64(Register::FramesDroppedUnderrunLo) >= 5
    });
    rig.submit(1, &[desc(BUFFERS, 4096, true)]);
    let r = rig.completions(1)[0];
    assert_eq!(status(&r), CompletionStatus::Ok);
    assert!(r.sequence >= 5, "sequence {} shows the drops", r.sequence);
    let dropped =
        rig.reg64(Register::FramesDroppedUnderrunLo) + rig.reg64(Register::FramesDroppedOverrunLo);
    assert!(dropped >= r.sequence);
    pattern::verify(&rig.get(BUFFERS, 4096), r.sequence, 0).unwrap();
    assert!(rig.reg64(Register::FramesProducedLo) > r.sequence);
}

#[test]
fn small_buffer_gives_incomplete_frame() {
    let mut rig = Rig::new(1000, Duration::from_millis(1), &[]);
    rig.submit(
        7,
        &[
            desc(BUFFERS + 5, 60, false),
            desc(BUFFERS + 0x1000, 40, true),
        ],
    );
    rig.enable();
    let r = rig.completions(1)[0];
    assert_eq!(status(&r), CompletionStatus::Incomplete);
    assert_eq!(r.bytes, 100);
    pattern::verify(&rig.get(BUFFERS + 0x1000, 40), r.sequence, 60).unwrap();
}

#[test]
fn unmapped_iova_is_a_reported_fault_and_the_device_keeps_running() {
    let mut rig = Rig::new(200, Duration::from_millis(1), &[]);
    let unmapped = IOVA + MEM + 0x1000;
    rig.submit(1, &[desc(BUFFERS, 100, false), desc(unmapped, 100, true)]);
    rig.submit(2, &[desc(BUFFERS + 0x1000, 200, true)]);
    rig.enable();
    let r = rig.completions(2);
    assert_eq!(status(&r[0]), CompletionStatus::DmaError);
    assert_eq!(r[0].bytes, 100);
    assert_eq!(status(&r[1]), CompletionStatus::Ok);
    assert_eq!(rig.reg64(Register::FaultAddrLo), unmapped);
    assert_eq!(rig.reg(Register::FaultCookie), 1);
    assert_ne!(
        rig.reg(Register::FaultStatus) & FaultStatus::DMA_WRITE.bits(),
        0
    );
    assert_eq!(rig.reg64(Register::DmaErrorsLo), 1);
    assert_ne!(rig.reg(Register::Status) & Status::RUNNING.bits(), 0);
    std::thread::sleep(Duration::from_millis(20));
    assert!(rig.irq_count(VECTOR_ERROR) >= 1);
    // Write-1-to-clear.
    rig.set(Register::FaultStatus, u32::MAX);
    assert_eq!(rig.reg(Register::FaultStatus), 0);
}

#[test]
fn invalid_descriptors_are_rejected_and_the_frame_takes_the_next_submission() {
    let mut rig = Rig::new(64, SEQUENCED_PERIOD, &[]);
    rig.submit(1, &[desc(BUFFERS, 0, true)]);
    rig.submit(2, &[desc(BUFFERS, 64, false)]);
    rig.submit(3, &[desc(BUFFERS + 0x1000, 64, true)]);
    rig.enable();
    let r = rig.completions(3);
    assert_eq!(
        r.iter().map(|r| (r.cookie, status(r))).collect::<Vec<_>>(),
        [
            (1, CompletionStatus::DescError),
            (2, CompletionStatus::DescError),
            (3, CompletionStatus::Ok)
        ]
    );
    assert_eq!(r[0].flags & CompletionRecord::FRAME, 0);
    assert_eq!(
        r[2].sequence, 0,
        "rejected submissions do not consume frames"
    );
    assert_eq!(rig.reg64(Register::DescErrorsLo), 2);
}

#[test]
fn stop_returns_every_queued_submission_then_goes_idle() {
    let mut rig = Rig::new(64, Duration::from_secs(60), &[]);
    for cookie in 0..4 {
        rig.submit(cookie, &[desc(BUFFERS, 64, true)]);
    }
    rig.enable();
    rig.set(Register::Control, Control::STOP.bits());
    let r = rig.completions(4);
    assert!(r.iter().all(|r| status(r) == CompletionStatus::Flushed));
    assert_eq!(r.iter().map(|r| r.cookie).collect::<Vec<_>>(), [0, 1, 2, 3]);
    rig.wait_until("idle", |rig| {
        rig.reg(Register::Status) & Status::IDLE.bits() != 0
    });
    assert_ne!(rig.reg(Register::IrqStatus) & IrqCause::STOPPED.bits(), 0);
    assert_eq!(rig.reg(Register::Control), 0);
    assert_eq!(rig.reg(Register::SubmitHead), rig.reg(Register::SubmitTail));
}

#[test]
fn stop_aborts_the_frame_in_progress() {
    // A frame large enough that the stop lands while it is being written.
    let frame = 6 << 20;
    let mut rig = Rig::new(frame, Duration::from_millis(1), &["stall@0:5s"]);
    let list = crate::bench::segments(BUFFERS, u64::from(frame));
    rig.submit(9, &list);
    rig.submit(10, &list);
    rig.enable();
    rig.wait_until("frame start", |rig| rig.reg(Register::SubmitHead) == 1);
    rig.set(Register::Control, 0);
    let r = rig.completions(2);
    assert_eq!((r[0].cookie, status(&r[0])), (9, CompletionStatus::Flushed));
    assert_eq!(
        r[0].flags & CompletionRecord::FRAME,
        CompletionRecord::FRAME
    );
    assert_eq!(
        (r[1].cookie, status(&r[1])),
        (10, CompletionStatus::Flushed)
    );
    rig.wait_until("idle", |rig| {
        rig.reg(Register::Status) & Status::IDLE.bits() != 0
    });
}

#[test]
fn reset_clears_rings_counters_and_masks_interrupts() {
    let mut rig = Rig::new(64, Duration::from_millis(1), &[]);
    rig.submit(1, &[desc(BUFFERS, 64, true)]);
    rig.enable();
    rig.completions(1);
    rig.set(Register::Scratch, 0x1234);
    rig.set(Register::Control, Control::RESET.bits());
    rig.wait_until("reset", |rig| {
        rig.reg(Register::Control) & Control::RESET.bits() == 0
    });
    assert_eq!(rig.reg(Register::Status), Status::IDLE.bits());
    for r in [
        Register::FramesProducedLo,
        Register::FramesCompletedLo,
        Register::NextSequenceLo,
        Register::SubmitSize,
        Register::SubmitHead,
        Register::CompletionTail,
        Register::Scratch,
    ] {
        assert_eq!(rig.reg(r), 0, "{r:?}");
    }
    assert_eq!(
        rig.reg(Register::IrqMask),
        fgrab_hw::regs::irq_status::MASK_RESET
    );
    // ENABLE without rings is refused with a CONFIG fault.
    rig.set(Register::Control, Control::ENABLE.bits());
    assert_eq!(rig.reg(Register::Status) & Status::RUNNING.bits(), 0);
    assert_ne!(
        rig.reg(Register::FaultStatus) & FaultStatus::CONFIG.bits(),
        0
    );
}

#[test]
fn injected_lost_interrupt_and_descriptor_rejection() {
    let mut rig = Rig::new(64, SEQUENCED_PERIOD, &["lost-irq@1", "desc-reject@2"]);
    for cookie in 0..5 {
        rig.submit(
            cookie,
            &[desc(BUFFERS + u64::from(cookie) * 0x1000, 64, true)],
        );
    }
    rig.enable();
    let r = rig.completions(5);
    let summary: Vec<_> = r.iter().map(|r| (r.cookie, status(r))).collect();
    assert_eq!(
        summary,
        [
            (0, CompletionStatus::Ok),
            (1, CompletionStatus::Ok),
            (2, CompletionStatus::DescError),
            (3, CompletionStatus::Ok),
            (4, CompletionStatus::Ok),
        ]
    );
    assert_eq!(r[3].sequence, 2);
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(
        rig.irq_count(VECTOR_FRAME),
        4,
        "one message lost of five records"
    );
}

#[test]
fn injected_dma_error_and_reset_request() {
    let mut rig = Rig::new(64, SEQUENCED_PERIOD, &["dma-error@0", "reset-request@1"]);
    rig.submit(0, &[desc(BUFFERS, 64, true)]);
    rig.submit(1, &[desc(BUFFERS, 64, true)]);
    rig.enable();
    let r = rig.completions(1)[0];
    assert_eq!(status(&r), CompletionStatus::DmaError);
    assert_eq!(rig.reg64(Register::FaultAddrLo), BUFFERS);
    rig.wait_until("halt", |rig| {
        rig.reg(Register::Status) & Status::HALTED.bits() != 0
    });
    assert_ne!(
        rig.reg(Register::FaultStatus) & FaultStatus::RESET_REQUIRED.bits(),
        0
    );
    // Halted means no DMA: the queued submission stays unanswered until reset.
    std::thread::sleep(Duration::from_millis(10));
    assert_eq!(rig.reg(Register::CompletionTail), 1);
    rig.set(Register::Control, Control::RESET.bits());
    rig.wait_until("reset", |rig| {
        rig.reg(Register::Status) == Status::IDLE.bits()
    });
}

#[test]
fn full_completion_ring_holds_records_and_drops_frames() {
    // Completion ring of 2 entries holds one record.
    let mut rig = Rig::with_rings(64, Duration::from_millis(1), &[], 4, 2);
    for cookie in 0..3 {
        rig.submit(cookie, &[desc(BUFFERS, 64, true)]);
    }
    rig.enable();
    rig.wait_until("ring full", |rig| {
        rig.reg(Register::Status) & Status::COMPLETION_FULL.bits() != 0
    });
    rig.wait_until("backpressure drop", |rig| {
        rig.reg64(Register::FramesDroppedBackpressureLo) > 0
    });
    let mut cookies = Vec::new();
    for _ in 0..3 {
        let r = rig.completions(1)[0];
        assert_eq!(status(&r), CompletionStatus::Ok);
        cookies.push(r.cookie);
    }
    assert_eq!(cookies, [0, 1, 2]);
    assert_ne!(
        rig.reg(Register::IrqStatus) & IrqCause::COMPLETION_FULL.bits(),
        0
    );
}

#[test]
fn bus_master_off_means_no_dma() {
    let mut rig = Rig::new(64, Duration::from_millis(1), &[]);
    rig.device.set_bus_master(false);
    rig.submit(1, &[desc(BUFFERS, 64, true)]);
    rig.enable();
    rig.wait_until("drops", |rig| {
        rig.reg64(Register::FramesDroppedOverrunLo) >= 3
    });
    assert_ne!(rig.reg(Register::Status) & Status::BUS_MASTER_OFF.bits(), 0);
    assert_eq!(rig.reg(Register::SubmitHead), 0);
    rig.device.set_bus_master(true);
    assert_eq!(status(&rig.completions(1)[0]), CompletionStatus::Ok);
}

#[test]
fn ring_registers_are_read_only_while_running() {
    let rig = Rig::new(64, Duration::from_millis(50), &[]);
    rig.enable();
    rig.set(Register::SubmitSize, 8);
    rig.set(Register::FrameBytes, 128);
    assert_eq!(rig.reg(Register::SubmitSize), 16);
    assert_eq!(rig.reg(Register::FrameBytes), 64);
}

#[test]
fn frame_period_follows_frame_bytes_at_the_configured_rate() {
    let config = EngineConfig {
        rate: 1_000_000_000,
        frame_bytes: 4 << 20,
        period: None,
        faults: Vec::new(),
    };
    assert_eq!(config.period_ns(1_000_000), 1_000_000);
    assert_eq!(config.period_ns(1), 1_000, "clamped to 1 us");
}

#[test]
fn hostile_capabilities_and_record_bytes() {
    let mut rig = Rig::new(64, SEQUENCED_PERIOD, &["hostile-caps@0", "hostile-bytes@1"]);
    assert_eq!(rig.reg(Register::MaxSegmentBytes), 0);
    assert_eq!(rig.reg(Register::MaxDescriptors), 1 << 16);
    assert_eq!(rig.reg(Register::RingMaxEntries), 16);
    assert_eq!(rig.reg(Register::MaxFrameSlots), 0);
    assert_eq!(rig.reg(Register::MaxFrameBytes), u32::MAX);
    rig.submit(0, &[desc(BUFFERS, 64, true)]);
    rig.submit(1, &[desc(BUFFERS + 64, 64, true)]);
    rig.enable();
    let r = rig.completions(2);
    assert_eq!((status(&r[0]), r[0].bytes), (CompletionStatus::Ok, 64));
    assert_eq!(
        (status(&r[1]), r[1].bytes),
        (CompletionStatus::Ok, 0xffff_ff00)
    );
}

#[test]
fn lying_stop_keeps_submissions_and_writes_one_later_unless_reset() {
    for reset in [false, true] {
        let mut rig = Rig::new(64, Duration::from_millis(2), &["lying-stop@0"]);
        rig.submit(0, &[desc(BUFFERS, 64, true)]);
        rig.enable();
        assert_eq!(status(&rig.completions(1)[0]), CompletionStatus::Ok);
        rig.put(BUFFERS + 0x1000, &[0xee; 64]);
        rig.submit(1, &[desc(BUFFERS + 0x1000, 64, true)]);
        rig.set(Register::Control, Control::STOP.bits());
        rig.wait_until("idle", |rig| {
            rig.reg(Register::Status) & Status::IDLE.bits() != 0
        });
        // Idle, yet submission 1 got no record.
        assert_eq!(rig.reg(Register::CompletionTail), 1);
        if reset {
            rig.set(Register::Control, Control::RESET.bits());
            rig.wait_until("reset", |rig| rig.reg(Register::Control) == 0);
        }
        std::thread::sleep(LYING_STOP_WRITE_DELAY * 3);
        let written = rig.get(BUFFERS + 0x1000, 64) != [0xee; 64];
        assert_eq!(written, !reset, "late write with reset {reset}");
    }
}

#[test]
fn deaf_stop_keeps_streaming_until_reset() {
    let mut rig = Rig::new(64, Duration::from_millis(2), &["deaf-stop@0"]);
    rig.submit(0, &[desc(BUFFERS, 64, true)]);
    rig.enable();
    assert_eq!(status(&rig.completions(1)[0]), CompletionStatus::Ok);
    rig.set(Register::Control, Control::STOP.bits());
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        rig.reg(Register::Status) & Status::IDLE.bits(),
        0,
        "idle after an ignored stop"
    );
    // Still streaming: a new submission is written.
    rig.submit(1, &[desc(BUFFERS + 0x1000, 64, true)]);
    assert_eq!(status(&rig.completions(1)[0]), CompletionStatus::Ok);
    rig.set(Register::Control, Control::RESET.bits());
    rig.wait_until("reset", |rig| rig.reg(Register::Control) == 0);
    rig.wait_until("idle after reset", |rig| {
        rig.reg(Register::Status) & Status::IDLE.bits() != 0
    });
}

#[test]
fn camera_triggers_start_exactly_one_frame_each_in_the_chosen_format() {
    use fgrab_hw::camera::{address, pfnc, trigger_mode};
    let mut rig = Rig::new(4096, Duration::from_millis(1), &[]);
    rig.device
        .write_feature(address::PIXEL_FORMAT, pfnc::MONO16);
    rig.device
        .write_feature(address::TRIGGER_MODE, trigger_mode::ON);
    for cookie in 0..4 {
        rig.submit(
            cookie,
            &[desc(BUFFERS + u64::from(cookie) * 0x2000 + 1, 4096, true)],
        );
    }
    rig.enable();
    // No frame starts on its own: no sequence number is used, nothing is dropped.
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(rig.reg64(Register::FramesProducedLo), 0);
    for trigger in 0..2u64 {
        rig.device.write_feature(address::TRIGGER_SOFTWARE, 1);
        let r = rig.completions(1)[0];
        assert_eq!(status(&r), CompletionStatus::Ok);
        assert_eq!(r.sequence, trigger);
        let got = rig.get(BUFFERS + u64::from(r.cookie) * 0x2000 + 1, 4096);
        pattern::verify(&got, pattern::salted(r.sequence, pfnc::MONO16), 0).unwrap();
        assert!(
            pattern::verify(&got, r.sequence, 0).is_err(),
            "Mono16 is not Mono8"
        );
    }
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(rig.reg64(Register::FramesProducedLo), 2);
    // The format is fixed while running.
    rig.device.write_feature(address::PIXEL_FORMAT, pfnc::MONO8);
    assert_eq!(rig.device.read_feature(address::PIXEL_FORMAT), pfnc::MONO16);
}

#[test]
fn camera_multi_frame_stops_after_its_count_and_survives_reset() {
    use fgrab_hw::camera::{acquisition_mode, address};
    let mut rig = Rig::new(4096, Duration::from_millis(2), &[]);
    rig.device
        .write_feature(address::ACQUISITION_MODE, acquisition_mode::MULTI_FRAME);
    rig.device
        .write_feature(address::ACQUISITION_FRAME_COUNT, 3);
    rig.device.write_feature(address::WIDTH, 640);
    for cookie in 0..8 {
        rig.submit(
            cookie,
            &[desc(BUFFERS + u64::from(cookie) * 0x2000, 4096, true)],
        );
    }
    rig.enable();
    let records = rig.completions(3);
    assert_eq!(
        records.iter().map(|r| r.sequence).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(rig.reg64(Register::FramesProducedLo), 3);
    // AcquisitionStart re-arms for three more.
    rig.device.write_feature(address::ACQUISITION_START, 1);
    let records = rig.completions(3);
    assert_eq!(
        records.iter().map(|r| r.sequence).collect::<Vec<_>>(),
        [3, 4, 5]
    );
    rig.set(Register::Control, Control::RESET.bits());
    rig.wait_until("reset", |rig| rig.reg(Register::Control) == 0);
    assert_eq!(rig.device.read_feature(address::WIDTH), 640);
    assert_eq!(rig.device.read_feature(address::PAYLOAD_SIZE), 640 * 2048);
}

#[test]
fn camera_frame_rate_sets_the_period() {
    use fgrab_hw::camera::address;
    let rig = Rig::new(4096, Duration::from_millis(1), &[]);
    assert_eq!(rig.reg(Register::FramePeriodNs), 1_000_000);
    rig.device
        .write_feature(address::ACQUISITION_FRAME_RATE, 50f32.to_bits());
    rig.device
        .write_feature(address::ACQUISITION_FRAME_RATE_ENABLE, 1);
    assert_eq!(rig.reg(Register::FramePeriodNs), 20_000_000);
    assert_eq!(
        rig.reg(Register::Features) & Features::CAMERA.bits(),
        Features::CAMERA.bits()
    );
    assert_eq!(
        rig.reg(Register::XmlSize) as usize,
        crate::camera::XML.len()
    );
}

/// Streams `frames` frames of 64 bytes with moderation by `count` records and `us`
/// microseconds, consumes their records, and returns the frame-vector messages sent once
/// every record is published (plus `settle` for the time rule to act).
fn moderated_messages(rig: &mut Rig, frames: u32, count: u32, us: u32, settle: Duration) -> u64 {
    rig.set(Register::IrqModerationFrames, count);
    rig.set(Register::IrqModerationUs, us);
    assert_eq!(rig.reg(Register::IrqModerationFrames), count);
    for cookie in 0..frames {
        rig.submit(
            cookie,
            &[desc(BUFFERS + u64::from(cookie) * 0x1000, 64, true)],
        );
    }
    rig.enable();
    let records = rig.completions(frames);
    assert!(records.iter().all(|r| status(r) == CompletionStatus::Ok));
    std::thread::sleep(settle);
    rig.irq_count(VECTOR_FRAME)
}

#[test]
fn moderation_by_count_sends_one_message_per_count_of_records() {
    let mut rig = Rig::new(64, Duration::from_millis(1), &[]);
    assert_ne!(
        rig.reg(Register::Features) & Features::IRQ_MODERATION_FRAMES.bits(),
        0
    );
    // A time bound far beyond the test: only the count sends messages.
    let messages = moderated_messages(&mut rig, 12, 4, 60_000_000, Duration::ZERO);
    assert_eq!(messages, 3, "12 records, one message per 4");
}

#[test]
fn moderation_time_bound_sends_what_the_count_holds_back() {
    let mut rig = Rig::new(64, Duration::from_millis(1), &[]);
    // 6 records with a count of 4: one message by count; the last 2 wait for the bound.
    let sent = moderated_messages(&mut rig, 6, 4, 20_000, Duration::ZERO);
    assert!(
        sent <= 1,
        "{sent} messages before the time bound of the last two records"
    );
    let mut total = sent;
    rig.wait_until("the time bound's message", |rig| {
        total += rig.irq_count(VECTOR_FRAME);
        total >= 2
    });
    std::thread::sleep(Duration::from_millis(60));
    total += rig.irq_count(VECTOR_FRAME);
    assert_eq!(total, 2, "one message by count, one by the time bound");
    assert_eq!(
        rig.reg(Register::IrqStatus) & IrqCause::FRAME_DONE.bits(),
        1
    );
}

#[test]
fn moderation_count_without_time_bound_signals_every_record() {
    let mut rig = Rig::new(64, Duration::from_millis(1), &[]);
    // A count alone could hold records back forever: it is ignored.
    let messages = moderated_messages(&mut rig, 5, 4, 0, Duration::from_millis(30));
    assert_eq!(messages, 5);
}

#[test]
fn moderation_count_is_cleared_by_reset() {
    let rig = Rig::new(64, Duration::from_millis(1), &[]);
    rig.set(Register::IrqModerationFrames, 16);
    assert_eq!(rig.reg(Register::IrqModerationFrames), 16);
    rig.device.reset_and_wait();
    assert_eq!(rig.reg(Register::IrqModerationFrames), 0);
    assert_eq!(rig.reg(Register::IrqModerationUs), 0);
}

#[test]
fn hostile_moderation_signals_every_record_whatever_the_registers_say() {
    let mut rig = Rig::new(64, Duration::from_millis(1), &["hostile-moderation@0"]);
    assert_ne!(
        rig.reg(Register::Features) & Features::IRQ_MODERATION_FRAMES.bits(),
        0
    );
    let messages = moderated_messages(&mut rig, 8, 4, 60_000_000, Duration::from_millis(30));
    assert_eq!(messages, 8);
}
