//! The register file as the driver sees it: MMIO reads and writes decoded into the
//! engine's state (docs/hardware.md, "Registers").

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::camera::{Effect, XML};
use crate::dma_rings::{Ring, RingConfigError};
use crate::fault::{FaultKind, LYING_STOP_WRITE_DELAY};
use crate::regs::{Control, FaultStatus, Features, IrqCause, Register};
use fgrab_hw::caps::{
    MAX_DESCRIPTORS, MAX_FRAME_BYTES, MAX_FRAME_SLOTS, MAX_SEGMENT_BYTES, RING_MAX_ENTRIES,
    TIMESTAMP_HZ,
};
use fgrab_hw::{
    camera, COMPLETION_RING_ALIGN, INTERFACE_VERSION, MAGIC, SUBMIT_RING_ALIGN, WRITEBACK_ALIGN,
};

use super::{nanos, Device, Run, State};

impl Device {
    /// Reads a register.
    pub fn read_register(&self, reg: Register) -> u32 {
        let mut st = self.lock();
        if let Some(value) = st.counter(reg) {
            st.hi_latch = hi(value);
            return lo(value);
        }
        let hostile = st.faults.has(FaultKind::HostileCapabilities);
        let hostile_camera = st.faults.has(FaultKind::HostileCamera);
        match reg {
            Register::Id => MAGIC,
            Register::Version => INTERFACE_VERSION,
            Register::MaxSegmentBytes if hostile => 0,
            Register::MaxDescriptors if hostile => 1 << 16,
            Register::RingMaxEntries if hostile => 16,
            Register::MaxFrameSlots if hostile => 0,
            Register::MaxFrameBytes if hostile => u32::MAX,
            Register::MaxSegmentBytes => MAX_SEGMENT_BYTES,
            Register::MaxDescriptors => MAX_DESCRIPTORS,
            Register::RingMaxEntries => RING_MAX_ENTRIES,
            Register::MaxFrameSlots => MAX_FRAME_SLOTS,
            Register::TimestampHz => TIMESTAMP_HZ,
            Register::Features => (Features::COMPLETION_WRITEBACK
                | Features::IRQ_MODERATION
                | Features::CAMERA
                | Features::IRQ_MODERATION_FRAMES)
                .bits(),
            Register::FeatureWindowOffset if hostile_camera => 0xfffc,
            Register::FeatureWindowSize if hostile_camera => 0x1_0000,
            Register::XmlOffset if hostile_camera => 0x7ffe,
            Register::XmlSize if hostile_camera => u32::MAX,
            Register::FeatureWindowOffset => camera::WINDOW_OFFSET,
            Register::FeatureWindowSize => camera::WINDOW_SIZE,
            Register::XmlOffset => camera::XML_OFFSET,
            // CAST: the XML is checked to fit its area (hw/tests/genicam.rs).
            Register::XmlSize => XML.len() as u32,
            Register::MaxFrameBytes => MAX_FRAME_BYTES,
            Register::Scratch => st.scratch,
            Register::Control => {
                let mut c = Control::empty();
                c.set(Control::ENABLE, st.run == Run::Running);
                c.set(Control::STOP, st.run == Run::Stopping);
                c.set(Control::RESET, st.reset_requested);
                c.bits()
            }
            Register::Status => st.status(self.bus_master.load(Ordering::Acquire)).bits(),
            Register::IrqStatus => st.irq_status.bits(),
            Register::IrqMask => st.irq_mask.bits(),
            Register::IrqModerationUs => st.moderation_us,
            Register::IrqModerationFrames => st.moderation_frames,
            Register::FrameBytes => st.frame_bytes,
            Register::FramePeriodNs => st.period_ns,
            Register::TimestampLo => {
                let now = self.now_ns();
                st.hi_latch = hi(now);
                lo(now)
            }
            Register::FramesProducedHi
            | Register::FramesCompletedHi
            | Register::FramesDroppedUnderrunHi
            | Register::FramesDroppedOverrunHi
            | Register::FramesDroppedBackpressureHi
            | Register::DmaErrorsHi
            | Register::DescErrorsHi
            | Register::NextSequenceHi
            | Register::TimestampHi => st.hi_latch,
            Register::SubmitBaseLo => lo(st.submit.base),
            Register::SubmitBaseHi => hi(st.submit.base),
            Register::SubmitSize => st.submit.size,
            Register::SubmitTail => st.submit.tail,
            Register::SubmitHead => st.submit.head,
            Register::CompletionBaseLo => lo(st.completion.base),
            Register::CompletionBaseHi => hi(st.completion.base),
            Register::CompletionSize => st.completion.size,
            Register::CompletionHead => st.completion.head,
            Register::CompletionTail => st.completion.tail,
            Register::CompletionWritebackLo => lo(st.writeback),
            Register::CompletionWritebackHi => hi(st.writeback),
            Register::FaultStatus => st.fault_status.bits(),
            Register::FaultCookie => st.fault_cookie,
            Register::FaultAddrLo => lo(st.fault_addr),
            Register::FaultAddrHi => hi(st.fault_addr),
            // Counter LO registers were answered above.
            _ => 0,
        }
    }

    /// Writes a register.
    pub fn write_register(&self, reg: Register, value: u32) {
        let mut st = self.lock();
        let idle = st.run == Run::Idle && !st.frame_in_flight;
        match reg {
            Register::Scratch => st.scratch = value,
            Register::Control => self.write_control(&mut st, Control::from_bits_truncate(value)),
            Register::IrqStatus => st.irq_status &= !IrqCause::from_bits_truncate(value),
            Register::IrqMask => {
                let unmasked = st.irq_mask & !IrqCause::from_bits_retain(value);
                st.irq_mask = IrqCause::from_bits_retain(value);
                // A cause already pending when unmasked is signalled now.
                for cause in (unmasked & st.irq_status).iter() {
                    self.send(&mut st, cause.vector());
                }
            }
            Register::IrqModerationUs => st.moderation_us = value,
            Register::IrqModerationFrames => st.moderation_frames = value,
            Register::FrameBytes if idle => {
                if (1..=MAX_FRAME_BYTES).contains(&value) {
                    st.frame_bytes = value;
                    st.update_period(&self.config);
                } else {
                    log::warn!("FRAME_BYTES {value} out of range: ignored");
                }
            }
            Register::SubmitBaseLo if idle => set_ring_base(&mut st.submit, value, false),
            Register::SubmitBaseHi if idle => set_ring_base(&mut st.submit, value, true),
            Register::SubmitSize if idle => set_ring_size(&mut st.submit, value),
            Register::CompletionBaseLo if idle => set_ring_base(&mut st.completion, value, false),
            Register::CompletionBaseHi if idle => set_ring_base(&mut st.completion, value, true),
            Register::CompletionSize if idle => set_ring_size(&mut st.completion, value),
            Register::CompletionWritebackLo if idle => st.writeback = set_lo(st.writeback, value),
            Register::CompletionWritebackHi if idle => st.writeback = set_hi(st.writeback, value),
            Register::SubmitTail => {
                if value < st.submit.size {
                    st.submit.tail = value;
                    self.wake.notify_all();
                } else {
                    log::warn!("SUBMIT_TAIL {value} >= size {}: ignored", st.submit.size);
                }
            }
            Register::CompletionHead => {
                if value < st.completion.size {
                    st.completion.head = value;
                    self.wake.notify_all();
                } else {
                    log::warn!(
                        "COMPLETION_HEAD {value} >= size {}: ignored",
                        st.completion.size
                    );
                }
            }
            Register::FaultStatus => st.fault_status &= !FaultStatus::from_bits_truncate(value),
            other => log::debug!("write {value:#x} to {other:?} ignored (read-only or not idle)"),
        }
    }

    /// Reads the feature window register at window byte `offset` (4-byte aligned).
    pub fn read_feature(&self, offset: u32) -> u32 {
        self.lock().camera.read(offset)
    }

    /// Writes the feature window register at window byte `offset` (4-byte aligned).
    pub fn write_feature(&self, offset: u32, value: u32) {
        let mut st = self.lock();
        let running = st.run != Run::Idle || st.frame_in_flight;
        match st.camera.write(offset, value, running) {
            Effect::None => {}
            Effect::Armed => {
                st.next_frame_at = Instant::now() + Duration::from_nanos(st.period_ns.into());
                // A stretch of starvation ends with the acquisition that had it.
                st.end_starvation();
                self.wake.notify_all();
            }
            Effect::Triggered => self.wake.notify_all(),
            Effect::Period => {
                st.update_period(&self.config);
                self.wake.notify_all();
            }
        }
    }

    fn write_control(&self, st: &mut State, control: Control) {
        if control.contains(Control::RESET) {
            st.reset_requested = true;
            self.abort.store(true, Ordering::Release);
            self.wake.notify_all();
            return;
        }
        let stop = control.contains(Control::STOP) || !control.contains(Control::ENABLE);
        match st.run {
            Run::Running if stop => {
                log::info!("stop requested");
                st.end_starvation();
                if let Some(since) = st.running_since.take() {
                    st.counters.running_ns += nanos(since.elapsed());
                }
                let started = st.next_sequence;
                if started > 0 && st.faults.take_kind(started - 1, FaultKind::DeafStop) {
                    log::warn!("fault injection: stop request ignored, still streaming");
                    return;
                }
                if started > 0 && st.faults.take_kind(started - 1, FaultKind::LyingStop) {
                    // Idle at once (after a frame in flight), the queue kept, not flushed.
                    log::warn!(
                        "fault injection: stop answered idle, {} submissions kept",
                        st.submit.len()
                    );
                    st.run = Run::Idle;
                    st.kept_write_at = Some(Instant::now() + LYING_STOP_WRITE_DELAY);
                    self.raise(st, IrqCause::STOPPED);
                    self.wake.notify_all();
                    return;
                }
                st.run = Run::Stopping;
                self.abort.store(true, Ordering::Release);
                self.wake.notify_all();
            }
            Run::Idle if control.contains(Control::ENABLE) && !stop && !st.frame_in_flight => {
                let writeback = if st.writeback % WRITEBACK_ALIGN as u64 == 0 {
                    Ok(())
                } else {
                    Err(RingConfigError::Writeback(st.writeback))
                };
                let checked = st
                    .submit
                    .check(SUBMIT_RING_ALIGN as u64)
                    .and_then(|()| st.completion.check(COMPLETION_RING_ALIGN as u64))
                    .and(writeback);
                if let Err(e) = checked {
                    log::warn!("ENABLE refused: {e}");
                    self.record_fault(st, FaultStatus::CONFIG, 0, 0);
                    return;
                }
                log::info!(
                    "enabled: frame {} bytes every {} ns, rings {}/{}",
                    st.frame_bytes,
                    st.period_ns,
                    st.submit.size,
                    st.completion.size
                );
                self.abort.store(false, Ordering::Release);
                st.run = Run::Running;
                st.camera.arm();
                st.running_since = Some(Instant::now());
                st.next_frame_at = Instant::now() + Duration::from_nanos(st.period_ns.into());
                self.wake.notify_all();
            }
            _ => {}
        }
    }
}

/// Writing a ring's size register resets its indexes (docs/hardware.md 3.5).
fn set_ring_size(ring: &mut Ring, value: u32) {
    ring.size = value;
    ring.head = 0;
    ring.tail = 0;
}

/// Writing half of a ring's base address resets its indexes (docs/hardware.md 3.5).
fn set_ring_base(ring: &mut Ring, value: u32, high: bool) {
    ring.base = if high {
        set_hi(ring.base, value)
    } else {
        set_lo(ring.base, value)
    };
    ring.head = 0;
    ring.tail = 0;
}

pub(super) fn lo(v: u64) -> u32 {
    // CAST: lower half by design.
    v as u32
}

pub(super) fn hi(v: u64) -> u32 {
    // CAST: upper half by design.
    (v >> 32) as u32
}

fn set_lo(v: u64, lo: u32) -> u64 {
    (v & !0xffff_ffff) | u64::from(lo)
}

fn set_hi(v: u64, hi: u32) -> u64 {
    (v & 0xffff_ffff) | (u64::from(hi) << 32)
}
