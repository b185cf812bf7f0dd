//! The frame engine: register file, run state machine and the producer thread that
//! writes patterned frames into submitted buffers (docs/hardware.md, "Operation").
//!
//! Threads: the vfio-user server thread reads and writes registers; the engine thread
//! starts frames on the period's cadence, performs all DMA and raises interrupts.
//!
//! Lock order: `Device::state` before the eventfd table inside [`Interrupts`]. The state
//! lock is released while frame data is written, so register accesses stay fast; a stop,
//! reset or removal interrupts that write through `Device::abort`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use zerocopy::{FromBytes, IntoBytes};

use crate::dma::{DmaFault, DmaSpace};
use crate::fault::{Fault, FaultKind, FaultPlan, LYING_STOP_WRITE_DELAY};
use crate::irq::Interrupts;
use crate::pattern;
use crate::regs::{
    Control, FaultStatus, Features, IrqCause, Register, Status, INTERFACE_VERSION, IRQ_MASK_RESET,
    MAGIC, MAX_DESCRIPTORS, MAX_FRAME_BYTES, MAX_FRAME_SLOTS, MAX_SEGMENT_BYTES, RING_MAX_ENTRIES,
    TIMESTAMP_HZ,
};
use crate::ring::{
    check_entry, parse_descriptors, CompletionRecord, CompletionStatus, Descriptor,
    DescriptorError, Ring, RingConfigError, SubmitEntry,
};

/// Size of the staging buffer the pattern is generated into before each DMA write: small
/// enough to stay in L2, large enough that the per-write translation cost vanishes.
pub const CHUNK: usize = 64 * 1024;
/// Submit ring entry size.
const SUBMIT_ENTRY: u64 = 16;
/// Completion record size.
const COMPLETION_ENTRY: u64 = 32;
/// Longest wait for the engine to complete a reset requested by the client.
const RESET_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a starved engine sleeps at most before it counts the frames it missed (drop
/// counters are at most this stale while no buffer is queued).
const STARVED_POLL: Duration = Duration::from_millis(1);

/// Run parameters from the command line.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Sensor data rate in bytes per second; sets the period from the frame size.
    pub rate: u64,
    /// FRAME_BYTES after reset.
    pub frame_bytes: u32,
    /// Fixed frame period, overriding the one derived from `rate`.
    pub period: Option<Duration>,
    /// Injected faults.
    pub faults: Vec<Fault>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            rate: 1_000_000_000,
            frame_bytes: 4 << 20,
            period: None,
            faults: Vec::new(),
        }
    }
}

impl EngineConfig {
    /// Frame period in ns for `frame_bytes`, clamped to `1_000..=u32::MAX`.
    pub fn period_ns(&self, frame_bytes: u32) -> u32 {
        let ns = match self.period {
            Some(p) => p.as_nanos(),
            None => u128::from(frame_bytes) * 1_000_000_000 / u128::from(self.rate.max(1)),
        };
        // CAST: clamped into u32 range first.
        ns.clamp(1_000, u128::from(u32::MAX)) as u32
    }
}

/// Run state (docs/hardware.md, "States").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Run {
    Idle,
    Running,
    Stopping,
    Halted,
}

/// 64-bit counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frame starts, dropped ones included.
    pub produced: u64,
    /// Completions with status OK or INCOMPLETE.
    pub completed: u64,
    /// Frames dropped: no submission queued.
    pub dropped_underrun: u64,
    /// Frames dropped: device late or bus mastering off.
    pub dropped_overrun: u64,
    /// Frames dropped: completion ring full.
    pub dropped_backpressure: u64,
    /// DMA faults.
    pub dma_errors: u64,
    /// DESC_ERROR completions.
    pub desc_errors: u64,
    /// Interrupt messages sent.
    pub irqs: u64,
    /// Frame bytes written into host memory.
    pub dma_bytes: u64,
    /// Time spent producing and writing them, in nanoseconds: `dma_bytes` over this is
    /// the fastest the model can fill buffers (the "physical limit" of benchmarks).
    pub dma_busy_ns: u64,
    /// Time between `ENABLE` and the stop request, in nanoseconds.
    pub running_ns: u64,
    /// Part of `running_ns` the engine spent starved: a frame was due but no submission
    /// was queued (underrun) or the completion ring was full (backpressure), until the next
    /// frame could start. With `dma_busy_ns` it splits a stream's time between the host
    /// keeping the card fed, the writes themselves and the model's own per-frame work.
    pub starved_ns: u64,
}

struct Pending {
    record: CompletionRecord,
    suppress_irq: bool,
}

struct State {
    run: Run,
    reset_requested: bool,
    frame_in_flight: bool,
    next_frame_at: Instant,
    frame_bytes: u32,
    period_ns: u32,
    scratch: u32,
    irq_status: IrqCause,
    irq_mask: IrqCause,
    moderation_us: u32,
    last_frame_irq: Option<Instant>,
    frame_irq_deadline: Option<Instant>,
    running_since: Option<Instant>,
    /// Since when frame starts find no submission (or no completion room: `true`).
    starved_since: Option<(Instant, bool)>,
    submit: Ring,
    completion: Ring,
    writeback: u64,
    fault_status: FaultStatus,
    fault_cookie: u32,
    fault_addr: u64,
    counters: Counters,
    next_sequence: u64,
    hi_latch: u32,
    pending: VecDeque<Pending>,
    full_reported: bool,
    bus_master_warned: bool,
    faults: FaultPlan,
    /// After a lying stop (fault injection): when the device writes a submission it kept.
    kept_write_at: Option<Instant>,
}

impl State {
    /// Opens a starved stretch at `at` unless one is open: frame starts find no submission,
    /// or (`backpressure`) completion records are held back.
    fn starve(&mut self, at: Instant, backpressure: bool) {
        self.starved_since.get_or_insert((at, backpressure));
    }

    /// Ends a starved stretch (if one is open) and counts it.
    fn end_starvation(&mut self) {
        if let Some((since, _)) = self.starved_since.take() {
            self.counters.starved_ns += nanos(since.elapsed());
        }
    }

    fn new(config: &EngineConfig, faults: FaultPlan) -> Self {
        Self {
            run: Run::Idle,
            reset_requested: false,
            frame_in_flight: false,
            next_frame_at: Instant::now(),
            frame_bytes: config.frame_bytes,
            period_ns: config.period_ns(config.frame_bytes),
            scratch: 0,
            irq_status: IrqCause::empty(),
            irq_mask: IrqCause::from_bits_retain(IRQ_MASK_RESET),
            moderation_us: 0,
            last_frame_irq: None,
            frame_irq_deadline: None,
            running_since: None,
            starved_since: None,
            submit: Ring::default(),
            completion: Ring::default(),
            writeback: 0,
            fault_status: FaultStatus::empty(),
            fault_cookie: 0,
            fault_addr: 0,
            counters: Counters::default(),
            next_sequence: 0,
            hi_latch: 0,
            pending: VecDeque::new(),
            full_reported: false,
            bus_master_warned: false,
            faults,
            kept_write_at: None,
        }
    }

    fn counter(&self, reg: Register) -> Option<u64> {
        let c = &self.counters;
        Some(match reg {
            Register::FramesProducedLo => c.produced,
            Register::FramesCompletedLo => c.completed,
            Register::FramesDroppedUnderrunLo => c.dropped_underrun,
            Register::FramesDroppedOverrunLo => c.dropped_overrun,
            Register::FramesDroppedBackpressureLo => c.dropped_backpressure,
            Register::DmaErrorsLo => c.dma_errors,
            Register::DescErrorsLo => c.desc_errors,
            Register::NextSequenceLo => self.next_sequence,
            _ => return None,
        })
    }

    fn status(&self, bus_master: bool) -> Status {
        let mut s = Status::empty();
        s.set(Status::RUNNING, self.run == Run::Running);
        s.set(
            Status::IDLE,
            matches!(self.run, Run::Idle | Run::Halted) && !self.frame_in_flight,
        );
        s.set(Status::STOPPING, self.run == Run::Stopping);
        s.set(Status::HALTED, self.run == Run::Halted);
        s.set(Status::COMPLETION_FULL, !self.pending.is_empty());
        s.set(Status::BUS_MASTER_OFF, !bus_master);
        s.set(Status::FAULT, !self.fault_status.is_empty());
        s
    }
}

/// Result of fetching a submission's descriptor list.
enum Fetch {
    Frame(SubmitEntry, Vec<Descriptor>),
    Rejected(SubmitEntry, DescriptorError),
    ReadFault(SubmitEntry, DmaFault),
}

/// How a frame's data transfer ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// Frame bytes written (a prefix of the frame).
    pub bytes: u32,
    /// The DMA fault that ended the transfer early.
    pub fault: Option<DmaFault>,
    /// A stop, reset or removal interrupted the transfer.
    pub aborted: bool,
}

/// Writes frame `sequence` (`frame_bytes` long) into the buffer described by `list`,
/// as the device does after taking a submission: pattern bytes are generated into `buf`
/// (staging, any size > 0) and written with one DMA write per chunk. `fail_at` makes the
/// descriptor with that index fault (fault injection); `abort` is polled per chunk.
pub fn write_frame(
    dma: &dyn DmaSpace,
    list: &[Descriptor],
    frame_bytes: u32,
    sequence: u64,
    fail_at: Option<usize>,
    abort: &AtomicBool,
    buf: &mut [u8],
) -> Transfer {
    let mut offset = 0u32;
    for (index, d) in list.iter().enumerate() {
        if offset == frame_bytes {
            break;
        }
        if fail_at == Some(index) {
            return Transfer {
                bytes: offset,
                fault: Some(DmaFault {
                    iova: d.addr,
                    write: true,
                }),
                aborted: false,
            };
        }
        let segment = d.len.min(frame_bytes - offset);
        let mut done = 0u32;
        while done < segment {
            if abort.load(Ordering::Acquire) {
                return Transfer {
                    bytes: offset + done,
                    fault: None,
                    aborted: true,
                };
            }
            let n = (segment - done).min(u32::try_from(buf.len()).unwrap_or(u32::MAX));
            let chunk = &mut buf[..n as usize];
            pattern::fill(chunk, sequence, u64::from(offset + done));
            let at = d.addr + u64::from(done);
            if let Err(fault) = dma.write(at, chunk) {
                // CAST: the fault lies inside this chunk.
                let written = (fault.iova - at) as u32;
                return Transfer {
                    bytes: offset + done + written,
                    fault: Some(fault),
                    aborted: false,
                };
            }
            done += n;
        }
        offset += segment;
    }
    Transfer {
        bytes: offset,
        fault: None,
        aborted: false,
    }
}

/// The device: registers, state machine and the engine thread's shared half.
pub struct Device {
    state: Mutex<State>,
    /// Wakes the engine (doorbells, control writes) and reset waiters.
    wake: Condvar,
    /// Interrupts the frame data transfer in progress (stop, reset, removal).
    abort: AtomicBool,
    removed: AtomicBool,
    bus_master: AtomicBool,
    shutdown: AtomicBool,
    dma: Arc<dyn DmaSpace>,
    irqs: Arc<Interrupts>,
    clock: Instant,
    config: EngineConfig,
}

impl Device {
    /// Creates the device and starts its engine thread.
    ///
    /// # Errors
    ///
    /// The thread could not be spawned.
    pub fn start(
        config: EngineConfig,
        dma: Arc<dyn DmaSpace>,
        irqs: Arc<Interrupts>,
    ) -> std::io::Result<(Arc<Device>, JoinHandle<()>)> {
        let faults = FaultPlan::new(config.faults.clone());
        let device = Arc::new(Device {
            state: Mutex::new(State::new(&config, faults)),
            wake: Condvar::new(),
            abort: AtomicBool::new(false),
            removed: AtomicBool::new(false),
            bus_master: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            dma,
            irqs,
            clock: Instant::now(),
            config,
        });
        let engine = Arc::clone(&device);
        let handle = std::thread::Builder::new()
            .name("fgrab-engine".into())
            .spawn(move || engine.run_engine())?;
        Ok((device, handle))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays usable after a panic elsewhere; serving on beats aborting.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now_ns(&self) -> u64 {
        // CAST: u64 nanoseconds last 584 years.
        self.clock.elapsed().as_nanos() as u64
    }

    /// Whether the device stopped responding (surprise-removal fault).
    pub fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }

    /// Follows the PCI command register's Bus Master Enable bit.
    pub fn set_bus_master(&self, enabled: bool) {
        self.bus_master.store(enabled, Ordering::Release);
        self.wake.notify_all();
    }

    /// Counter snapshot.
    pub fn counters(&self) -> Counters {
        self.lock().counters
    }

    /// Stops the engine thread (process exit).
    pub fn shutdown(&self) {
        self.shutdown.store(true, Ordering::Release);
        self.abort.store(true, Ordering::Release);
        self.wake.notify_all();
    }

    /// The card is plugged in again after its client left (`serve --persist`): a removed
    /// card answers again, from reset.
    pub fn replug(&self) {
        self.removed.store(false, Ordering::Release);
        self.reset_and_wait();
    }

    /// Resets the device and waits until the engine has done it (client DEVICE_RESET or
    /// Function Level Reset).
    pub fn reset_and_wait(&self) {
        let mut st = self.lock();
        st.reset_requested = true;
        self.abort.store(true, Ordering::Release);
        self.wake.notify_all();
        let deadline = Instant::now() + RESET_TIMEOUT;
        while st.reset_requested {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                log::error!("engine did not complete the reset in {RESET_TIMEOUT:?}");
                return;
            }
            st = self
                .wake
                .wait_timeout(st, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Reads a register.
    pub fn read_register(&self, reg: Register) -> u32 {
        let mut st = self.lock();
        if let Some(value) = st.counter(reg) {
            st.hi_latch = hi(value);
            return lo(value);
        }
        let hostile = st.faults.has(FaultKind::HostileCapabilities);
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
            Register::Features => {
                (Features::COMPLETION_WRITEBACK | Features::IRQ_MODERATION).bits()
            }
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
            Register::FrameBytes if idle => {
                if (1..=MAX_FRAME_BYTES).contains(&value) {
                    st.frame_bytes = value;
                    st.period_ns = self.config.period_ns(value);
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
                let writeback = if st.writeback % 4 == 0 {
                    Ok(())
                } else {
                    Err(RingConfigError::Writeback(st.writeback))
                };
                let checked = st
                    .submit
                    .check(SUBMIT_ENTRY)
                    .and_then(|()| st.completion.check(COMPLETION_ENTRY))
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
                st.running_since = Some(Instant::now());
                st.next_frame_at = Instant::now() + Duration::from_nanos(st.period_ns.into());
                self.wake.notify_all();
            }
            _ => {}
        }
    }

    /// Sets `cause` in IRQ_STATUS and sends its vector unless masked.
    fn raise(&self, st: &mut State, cause: IrqCause) {
        st.irq_status |= cause;
        if !st.irq_mask.contains(cause) {
            self.send(st, cause.vector());
        }
    }

    fn send(&self, st: &mut State, vector: usize) {
        if self.irqs.signal_msix(vector) {
            st.counters.irqs += 1;
        } else {
            log::debug!("vector {vector} has no eventfd: message dropped");
        }
    }

    /// Frame-done message, subject to moderation.
    fn raise_frame_done(&self, st: &mut State, now: Instant) {
        st.irq_status |= IrqCause::FRAME_DONE;
        if st.irq_mask.contains(IrqCause::FRAME_DONE) {
            return;
        }
        let interval = Duration::from_micros(st.moderation_us.into());
        match st.last_frame_irq {
            Some(last) if !interval.is_zero() && now < last + interval => {
                st.frame_irq_deadline.get_or_insert(last + interval);
            }
            _ => {
                st.last_frame_irq = Some(now);
                st.frame_irq_deadline = None;
                self.send(st, IrqCause::FRAME_DONE.vector());
            }
        }
    }

    fn record_fault(&self, st: &mut State, fault: FaultStatus, addr: u64, cookie: u32) {
        st.fault_status |= fault;
        st.fault_addr = addr;
        st.fault_cookie = cookie;
        self.raise(st, IrqCause::ERROR);
    }

    fn halt(&self, st: &mut State, fault: FaultStatus, addr: u64) {
        log::error!("device halted: {fault:?} at {addr:#x}; reset required");
        st.run = Run::Halted;
        st.pending.clear();
        self.record_fault(st, fault, addr, 0);
    }

    fn wait<'a>(
        &self,
        st: MutexGuard<'a, State>,
        deadline: Option<Instant>,
    ) -> MutexGuard<'a, State> {
        match deadline {
            None => self.wake.wait(st).unwrap_or_else(|e| e.into_inner()),
            Some(at) => {
                let left = at.saturating_duration_since(Instant::now());
                self.wake
                    .wait_timeout(st, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
        }
    }

    fn run_engine(self: Arc<Self>) {
        // Frame starts are microseconds apart at high rates; the default 50 us timer slack
        // would stretch every wait for the next one into a gap in the stream.
        // SAFETY: PR_SET_TIMERSLACK takes a value and changes only this thread's timers.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong) };
        let mut buf = vec![0u8; CHUNK];
        let mut st = self.lock();
        loop {
            if self.shutdown.load(Ordering::Acquire) {
                return;
            }
            if self.is_removed() {
                st = self.wait(st, None);
                continue;
            }
            if st.reset_requested {
                let faults = std::mem::take(&mut st.faults);
                *st = State::new(&self.config, faults);
                self.abort.store(false, Ordering::Release);
                log::info!("device reset");
                self.wake.notify_all();
                continue;
            }
            if st.run == Run::Stopping {
                self.continue_stop(&mut st);
            }
            self.publish_pending(&mut st);
            let now = Instant::now();
            if st.frame_irq_deadline.is_some_and(|at| now >= at) {
                st.frame_irq_deadline = None;
                st.last_frame_irq = Some(now);
                self.send(&mut st, IrqCause::FRAME_DONE.vector());
            }
            if st.kept_write_at.is_some_and(|at| now >= at) {
                st.kept_write_at = None;
                self.write_kept(&mut st, &mut buf);
            }
            let mut deadline = match (st.frame_irq_deadline, st.kept_write_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if st.run == Run::Running {
                if now >= st.next_frame_at {
                    st = self.frame(st, &mut buf);
                    continue;
                }
                // With no buffer to fill (or no room to complete into) the next frame start
                // can only be a drop: sleep until a doorbell or for STARVED_POLL, and count
                // the frames that went by then (`frame`), instead of waking every period.
                let fed = !st.submit.is_empty() && st.pending.is_empty();
                let start_at = if fed {
                    st.next_frame_at
                } else {
                    let due = st.next_frame_at;
                    let backpressure = !st.pending.is_empty();
                    st.starve(due, backpressure);
                    due.max(now + STARVED_POLL)
                };
                deadline = Some(deadline.map_or(start_at, |d| d.min(start_at)));
            }
            st = self.wait(st, deadline);
        }
    }

    /// Starts the frame due now and carries it to its completion.
    fn frame<'a>(&'a self, mut st: MutexGuard<'a, State>, buf: &mut [u8]) -> MutexGuard<'a, State> {
        let period = Duration::from_nanos(st.period_ns.into());
        let late = Instant::now().saturating_duration_since(st.next_frame_at);
        // CAST: a u32 period divides any realistic lateness into a u64.
        let missed = (late.as_nanos() / period.as_nanos().max(1)) as u64;
        // Frame starts that went by while the card was starved are dropped for the reason it
        // was starved (docs/hardware.md 6.2), else the card itself was late.
        let starved = st.starved_since.map(|(_, backpressure)| backpressure);
        for _ in 0..missed {
            st.next_sequence += 1;
            st.counters.produced += 1;
            match starved {
                Some(true) => st.counters.dropped_backpressure += 1,
                Some(false) => st.counters.dropped_underrun += 1,
                None => st.counters.dropped_overrun += 1,
            }
        }
        if missed > 0 {
            log::debug!("engine late: {missed} frame starts dropped");
        }
        // CAST: missed is small whenever this is reached in practice; saturate otherwise.
        st.next_frame_at += period.saturating_mul(u32::try_from(missed + 1).unwrap_or(u32::MAX));

        let sequence = st.next_sequence;
        st.next_sequence += 1;
        st.counters.produced += 1;

        if st.faults.take_kind(sequence, FaultKind::ResetRequest) {
            self.halt(&mut st, FaultStatus::RESET_REQUIRED, 0);
            return st;
        }
        if st.faults.take_kind(sequence, FaultKind::Remove) {
            log::warn!("device removed: no more responses, DMA or interrupts");
            self.removed.store(true, Ordering::Release);
            return st;
        }
        if st.faults.take_kind(sequence, FaultKind::UnplugRequest) && !self.irqs.signal_request() {
            log::warn!("unplug request: client installed no REQ eventfd");
        }
        if !self.bus_master.load(Ordering::Acquire) {
            if !st.bus_master_warned {
                log::warn!("Bus Master Enable is clear: frames dropped until it is set");
                st.bus_master_warned = true;
            }
            st.counters.dropped_overrun += 1;
            return st;
        }
        if !st.pending.is_empty() {
            st.counters.dropped_backpressure += 1;
            st.starve(Instant::now(), true);
            return st;
        }

        let (entry, list) = loop {
            if st.submit.is_empty() {
                st.counters.dropped_underrun += 1;
                st.starve(Instant::now(), false);
                return st;
            }
            let fetched = match self.take_submission(&mut st) {
                Some(f) => f,
                None => return st,
            };
            match fetched {
                Fetch::Frame(entry, _) if st.faults.take_kind(sequence, FaultKind::DescReject) => {
                    self.reject(&mut st, entry, DescriptorError::Injected);
                }
                Fetch::Frame(entry, list) => break (entry, list),
                Fetch::Rejected(entry, e) => self.reject(&mut st, entry, e),
                Fetch::ReadFault(entry, fault) => {
                    log::warn!(
                        "cookie {}: descriptor list read fault at {:#x}",
                        entry.cookie,
                        fault.iova
                    );
                    st.counters.dma_errors += 1;
                    self.record_fault(&mut st, FaultStatus::DMA_READ, fault.iova, entry.cookie);
                    let record =
                        no_frame_record(entry.cookie, CompletionStatus::DmaError, st.next_sequence);
                    self.post(&mut st, record, false);
                }
            }
        };

        st.end_starvation();
        let frame_bytes = st.frame_bytes;
        let inject_dma_error = st.faults.take_kind(sequence, FaultKind::DmaError);
        let stall = match st
            .faults
            .take(sequence, |k| matches!(k, FaultKind::StallCompletion(_)))
        {
            Some(FaultKind::StallCompletion(d)) => Some(d),
            _ => None,
        };
        let lost_irq = st.faults.take_kind(sequence, FaultKind::LostIrq);
        let hostile_bytes = st.faults.take_kind(sequence, FaultKind::HostileBytes);
        st.frame_in_flight = true;
        drop(st);

        let fail_at = inject_dma_error.then_some(list.len() / 2);
        let started = Instant::now();
        let transfer = write_frame(
            &*self.dma,
            &list,
            frame_bytes,
            sequence,
            fail_at,
            &self.abort,
            buf,
        );
        if let Some(delay) = stall {
            self.sleep_abortable(delay);
        }

        let busy = started.elapsed();
        let mut st = self.lock();
        st.frame_in_flight = false;
        st.counters.dma_bytes += u64::from(transfer.bytes);
        st.counters.dma_busy_ns += nanos(busy);
        if st.reset_requested || self.is_removed() {
            // Reset discards everything; a removed device says nothing more.
            return st;
        }
        // A stop seen before the completion is published returns the frame FLUSHED.
        let aborted = transfer.aborted || self.abort.load(Ordering::Acquire);
        let status = if aborted {
            CompletionStatus::Flushed
        } else if let Some(fault) = transfer.fault {
            log::warn!(
                "frame {sequence} cookie {}: DMA write fault at {:#x}",
                entry.cookie,
                fault.iova
            );
            st.counters.dma_errors += 1;
            self.record_fault(&mut st, FaultStatus::DMA_WRITE, fault.iova, entry.cookie);
            CompletionStatus::DmaError
        } else if transfer.bytes < frame_bytes {
            CompletionStatus::Incomplete
        } else {
            CompletionStatus::Ok
        };
        if matches!(status, CompletionStatus::Ok | CompletionStatus::Incomplete) {
            st.counters.completed += 1;
        }
        let record = CompletionRecord {
            cookie: entry.cookie,
            status: status as u16,
            flags: CompletionRecord::FRAME,
            bytes: if hostile_bytes {
                0xffff_ff00
            } else {
                transfer.bytes
            },
            reserved: 0,
            sequence,
            timestamp_ns: self.now_ns(),
        };
        self.post(&mut st, record, lost_irq);
        st
    }

    /// The lying stop's late write (fault injection): the oldest kept submission gets a
    /// frame, without a record, as a card that went idle too early would still do.
    fn write_kept(&self, st: &mut State, buf: &mut [u8]) {
        if st.run != Run::Idle || st.submit.is_empty() {
            return;
        }
        if !self.bus_master.load(Ordering::Acquire) {
            log::warn!("fault injection: kept submission not written, Bus Master Enable clear");
            return;
        }
        let Some(Fetch::Frame(entry, list)) = self.take_submission(st) else {
            return;
        };
        let transfer = write_frame(
            &*self.dma,
            &list,
            st.frame_bytes,
            st.next_sequence,
            None,
            &AtomicBool::new(false),
            buf,
        );
        log::warn!(
            "fault injection: wrote {} bytes into kept cookie {} after the stop",
            transfer.bytes,
            entry.cookie
        );
    }

    fn reject(&self, st: &mut State, entry: SubmitEntry, error: DescriptorError) {
        log::warn!("cookie {}: DESC_ERROR: {error}", entry.cookie);
        st.counters.desc_errors += 1;
        self.record_fault(st, FaultStatus::DESCRIPTOR, entry.desc_addr, entry.cookie);
        let record = no_frame_record(entry.cookie, CompletionStatus::DescError, st.next_sequence);
        self.post(st, record, false);
    }

    /// Reads the submit entry at SUBMIT_HEAD, advances the head and fetches the
    /// descriptor list. `None` when the ring itself cannot be read (device halted).
    fn take_submission(&self, st: &mut State) -> Option<Fetch> {
        let addr = st.submit.entry_addr(st.submit.head, SUBMIT_ENTRY);
        let mut raw = [0u8; SUBMIT_ENTRY as usize];
        if let Err(fault) = self.dma.read(addr, &mut raw) {
            self.halt(st, FaultStatus::RING_ACCESS, fault.iova);
            return None;
        }
        st.submit.head = st.submit.next(st.submit.head);
        let entry = SubmitEntry::read_from_bytes(&raw).unwrap_or_default();
        if let Err(e) = check_entry(&entry) {
            return Some(Fetch::Rejected(entry, e));
        }
        let mut list = vec![0u8; usize::from(entry.desc_count) * 16];
        if let Err(fault) = self.dma.read(entry.desc_addr, &mut list) {
            return Some(Fetch::ReadFault(entry, fault));
        }
        Some(match parse_descriptors(&list) {
            Ok(descriptors) => Fetch::Frame(entry, descriptors),
            Err(e) => Fetch::Rejected(entry, e),
        })
    }

    fn sleep_abortable(&self, delay: Duration) {
        let end = Instant::now() + delay;
        while !self.abort.load(Ordering::Acquire) {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(5)));
        }
    }

    /// Queues a completion behind earlier ones, publishing it if the ring has room.
    fn post(&self, st: &mut State, record: CompletionRecord, suppress_irq: bool) {
        st.pending.push_back(Pending {
            record,
            suppress_irq,
        });
        self.publish_pending(st);
        if !st.pending.is_empty() && !st.full_reported && st.run != Run::Halted {
            st.full_reported = true;
            log::warn!("completion ring full: {} records waiting", st.pending.len());
            self.raise(st, IrqCause::COMPLETION_FULL);
        }
    }

    /// Record, then tail (register and writeback), then interrupt, in that order.
    fn publish_pending(&self, st: &mut State) {
        while !st.completion.is_full() {
            let Some(p) = st.pending.pop_front() else {
                st.full_reported = false;
                return;
            };
            let addr = st
                .completion
                .entry_addr(st.completion.tail, COMPLETION_ENTRY);
            if let Err(fault) = self.dma.write(addr, p.record.as_bytes()) {
                self.halt(st, FaultStatus::RING_ACCESS, fault.iova);
                return;
            }
            // Record bytes must be visible before the tail that exposes them.
            std::sync::atomic::fence(Ordering::Release);
            st.completion.tail = st.completion.next(st.completion.tail);
            if st.writeback != 0 {
                if let Err(fault) = self
                    .dma
                    .write(st.writeback, &st.completion.tail.to_le_bytes())
                {
                    self.halt(st, FaultStatus::RING_ACCESS, fault.iova);
                    return;
                }
            }
            if p.suppress_irq {
                log::warn!(
                    "fault injection: interrupt of cookie {} not sent",
                    p.record.cookie
                );
                st.irq_status |= IrqCause::FRAME_DONE;
            } else {
                self.raise_frame_done(st, Instant::now());
            }
        }
    }

    /// Returns every still-queued submission as FLUSHED; idle once all are published.
    fn continue_stop(&self, st: &mut State) {
        while !st.submit.is_empty() {
            let addr = st.submit.entry_addr(st.submit.head, SUBMIT_ENTRY);
            let mut raw = [0u8; SUBMIT_ENTRY as usize];
            if let Err(fault) = self.dma.read(addr, &mut raw) {
                self.halt(st, FaultStatus::RING_ACCESS, fault.iova);
                return;
            }
            st.submit.head = st.submit.next(st.submit.head);
            let entry = SubmitEntry::read_from_bytes(&raw).unwrap_or_default();
            let record = no_frame_record(entry.cookie, CompletionStatus::Flushed, st.next_sequence);
            self.post(st, record, false);
        }
        if st.pending.is_empty() && st.run == Run::Stopping {
            st.run = Run::Idle;
            self.abort.store(false, Ordering::Release);
            log::info!("stopped: idle");
            let c = st.counters;
            if c.dma_busy_ns > 0 {
                // One line per stream, parsed by `cargo xtask bench`.
                log::info!(
                    "stream: produced {} completed {} dma_bytes {} dma_busy_ns {} running_ns {} \
                     starved_ns {} rate {:.3} GB/s",
                    c.produced,
                    c.completed,
                    c.dma_bytes,
                    c.dma_busy_ns,
                    c.running_ns,
                    c.starved_ns,
                    c.dma_bytes as f64 / c.dma_busy_ns as f64
                );
            }
            self.raise(st, IrqCause::STOPPED);
        }
    }
}

/// Nanoseconds of `duration`, saturating.
fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

fn no_frame_record(cookie: u32, status: CompletionStatus, next_sequence: u64) -> CompletionRecord {
    CompletionRecord {
        cookie,
        status: status as u16,
        flags: 0,
        bytes: 0,
        reserved: 0,
        sequence: next_sequence,
        timestamp_ns: 0,
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

fn lo(v: u64) -> u32 {
    // CAST: lower half by design.
    v as u32
}

fn hi(v: u64) -> u32 {
    // CAST: upper half by design.
    (v >> 32) as u32
}

fn set_lo(v: u64, lo: u32) -> u64 {
    (v & !0xffff_ffff) | u64::from(lo)
}

fn set_hi(v: u64, hi: u32) -> u64 {
    (v & 0xffff_ffff) | (u64::from(hi) << 32)
}

#[cfg(test)]
mod tests;
