//! The frame engine: register file, run state machine and the producer thread that
//! writes patterned frames into submitted buffers (docs/hardware.md, "Operation").
//!
//! Threads: the vfio-user server thread reads and writes registers; the engine thread
//! starts frames on the period's cadence, performs all DMA and raises interrupts.
//!
//! Files: this one holds the state, the run state machine and the engine thread;
//! `mmio.rs` decodes register reads and writes; `frame.rs` takes submissions and writes
//! frames.
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

use crate::camera::Camera;
use crate::dma::DmaSpace;
use crate::dma_rings::{CompletionRecord, CompletionStatus, Ring, SubmitEntry};
use crate::fault::{Fault, FaultKind, FaultPlan};
use crate::irq::Interrupts;
use crate::regs::{FaultStatus, IrqCause, Register, Status};

/// Size of the staging buffer the pattern is generated into before each DMA write: small
/// enough to stay in L2, large enough that the per-write translation cost vanishes.
pub const CHUNK: usize = 64 * 1024;
/// Submit ring entry size.
const SUBMIT_ENTRY: u64 = std::mem::size_of::<SubmitEntry>() as u64;
/// Completion record size.
const COMPLETION_ENTRY: u64 = std::mem::size_of::<CompletionRecord>() as u64;
/// Longest wait for the engine to complete a reset requested by the client.
const RESET_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a starved engine sleeps at most before it counts the frames it missed (drop
/// counters are at most this stale while no buffer is queued).
const STARVED_POLL: Duration = Duration::from_millis(1);
/// `DeviceSerialNumber` of the model.
const SERIAL: &str = "FGRAB-EMU-0001";

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
    /// IRQ_MODERATION_FRAMES.
    moderation_frames: u32,
    /// Records published since the last frame-vector message (moderation by count).
    unsignalled: u32,
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
    /// Feature registers and acquisition (docs/hardware.md §12); outlives resets.
    camera: Camera,
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

    /// The frame period in force: the link's for FRAME_BYTES, or the camera's frame rate
    /// if slower.
    fn update_period(&mut self, config: &EngineConfig) {
        self.period_ns = self.camera.period_ns(config.period_ns(self.frame_bytes));
    }

    fn new(config: &EngineConfig, faults: FaultPlan, camera: Camera) -> Self {
        let period_ns = camera.period_ns(config.period_ns(config.frame_bytes));
        Self {
            run: Run::Idle,
            reset_requested: false,
            frame_in_flight: false,
            next_frame_at: Instant::now(),
            frame_bytes: config.frame_bytes,
            period_ns,
            scratch: 0,
            irq_status: IrqCause::empty(),
            irq_mask: IrqCause::from_bits_retain(fgrab_hw::regs::irq_status::MASK_RESET),
            moderation_us: 0,
            moderation_frames: 0,
            unsignalled: 0,
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
            camera,
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
            state: Mutex::new(State::new(&config, faults, Camera::new(SERIAL))),
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
        // Plugged in anew: the camera's settings take their power-up values.
        self.lock().camera = Camera::new(SERIAL);
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

    /// Frame-done message, subject to moderation (docs/hardware.md §7): by count and time
    /// with IRQ_MODERATION_FRAMES above 1 and a time bound, else at most one per interval.
    fn raise_frame_done(&self, st: &mut State, now: Instant) {
        st.irq_status |= IrqCause::FRAME_DONE;
        if st.irq_mask.contains(IrqCause::FRAME_DONE) {
            return;
        }
        let interval = Duration::from_micros(st.moderation_us.into());
        if st.faults.has(FaultKind::HostileModeration) {
            // Hostile: announces moderation, then signals every record regardless.
            self.send_frame_done(st, now);
            return;
        }
        if st.moderation_frames > 1 && !interval.is_zero() {
            st.unsignalled += 1;
            if st.unsignalled >= st.moderation_frames {
                self.send_frame_done(st, now);
            } else {
                // The first record of the count starts the time bound.
                st.frame_irq_deadline.get_or_insert(now + interval);
            }
            return;
        }
        match st.last_frame_irq {
            Some(last) if !interval.is_zero() && now < last + interval => {
                st.frame_irq_deadline.get_or_insert(last + interval);
            }
            _ => self.send_frame_done(st, now),
        }
    }

    /// Sends the frame vector now; whatever moderation held back is covered by it.
    fn send_frame_done(&self, st: &mut State, now: Instant) {
        st.last_frame_irq = Some(now);
        st.frame_irq_deadline = None;
        st.unsignalled = 0;
        self.send(st, IrqCause::FRAME_DONE.vector());
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
                let mut camera = st.camera.clone();
                camera.reset();
                *st = State::new(&self.config, faults, camera);
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
                self.send_frame_done(&mut st, now);
            }
            if st.kept_write_at.is_some_and(|at| now >= at) {
                st.kept_write_at = None;
                self.write_kept(&mut st, &mut buf);
            }
            let mut deadline = match (st.frame_irq_deadline, st.kept_write_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if st.run == Run::Running && st.camera.triggered() {
                // A trigger starts its frame now: no frame start went by unseen.
                st.next_frame_at = now;
                st = self.frame(st, &mut buf);
                continue;
            }
            if st.run == Run::Running && st.camera.free_running() {
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

pub use frame::{write_frame, Transfer};

mod frame;
mod mmio;
#[cfg(test)]
mod tests;
