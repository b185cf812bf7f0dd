// SPDX-License-Identifier: GPL-2.0

//! The card's frame engine: its two DMA rings and the register sequences that drive them
//! (`docs/hardware.md` §5, §6, §10).
//!
//! [`Engine`] knows nothing about regions or io_uring: it submits descriptor lists under a
//! cookie and hands completion records back. `domain::stream` decides what they mean. Every
//! method takes the card's revocable BAR and fails with `ENODEV` once it is revoked
//! (unbind); all run under `Card::stream`, and may sleep (never inside a BAR access).

use kernel::{
    device::{Bound, Device},
    dma::Coherent,
    io::{io_project, Io},
    pci,
    prelude::*,
    sync::{
        aref::ARef,
        barrier::{dma_mb, Read},
    },
    time::{delay::fsleep, Delta, Instant, Monotonic},
};

use crate::{
    abstractions::{log::warn_ratelimit, pci::set_bus_master, time::monotonic_ns},
    hardware::{
        dma::{CompletionRecord, SubmitEntry},
        regs::{self, Bar0, Registers},
    },
};

/// Entries of both rings: one more than the most frames a region may have
/// ([`crate::uapi::MAX_FRAMES`]), so neither ring can fill (a ring holds `size - 1`).
pub(crate) const RING_ENTRIES: u32 = 4096;

/// How long a stop may take before the card is reset (the model needs microseconds; a
/// frame being written at 1 GB/s with the largest frame takes about a second). Measured on
/// the clock: counting 1 ms sleeps made it 8 s under emulation, where each sleep overran.
const STOP_TIMEOUT_MS: i64 = 2000;

/// How long a reset may take (`docs/hardware.md` §6.7: allow 100 ms).
const RESET_TIMEOUT_MS: i64 = 100;

/// Readings of the card's clock when translating it to the host's.
const CLOCK_SAMPLES: u32 = 8;

/// Interrupt causes the driver handles: frame done, error, stopped, completion ring full.
const IRQ_CAUSES: u32 = {
    use super::definition::regs::irq_status::{COMPLETION_FULL, ERROR, FRAME_DONE, STOPPED};
    FRAME_DONE | ERROR | STOPPED | COMPLETION_FULL
};

/// Frame-interrupt moderation when `START` does not choose: half the card's frame period
/// (the card is not trusted: at most [`DEFAULT_IRQ_DELAY_MAX_US`]). A steady stream keeps
/// one interrupt per frame and no added latency; frames that complete in a burst (small
/// frames, a card catching up) share one.
fn default_irq_delay_us(period_ns: u32) -> u32 {
    (period_ns / 2000).min(DEFAULT_IRQ_DELAY_MAX_US)
}

/// Ceiling of [`default_irq_delay_us`]: a millisecond of added latency at most.
const DEFAULT_IRQ_DELAY_MAX_US: u32 = 1000;

/// Time bound of moderation by count when `START` gives none: `frames` times the longer
/// of the card's frame period and the time a frame of `frame_bytes` takes at
/// [`SLOWEST_DMA_BYTES_PER_S`]. In a steady stream the count is reached first (its last
/// frame completes `frames - 1` frame times after its first), so the bound only ends the
/// waits a count cannot: the last frames of a stream, drops, fewer frames queued than the
/// count. The period alone is not enough: it is the sensor's, and a DMA engine slower than
/// the sensor (a busy host, a narrow link, an emulated card) completes frames further
/// apart, so `frames` periods expire before `frames` frames arrive (the benchmark saw 0.39
/// interrupts per frame for a count of 16). At most [`crate::uapi::MAX_IRQ_DELAY_US`], the
/// watchdog's period (a card reporting any period is not trusted), at least 1 (0 would
/// turn counting off).
fn count_bound_us(period_ns: u32, frame_bytes: u32, frames: u32) -> u32 {
    let transfer_ns = u64::from(frame_bytes) * 1_000_000_000 / SLOWEST_DMA_BYTES_PER_S;
    let us = u64::from(period_ns).max(transfer_ns) * u64::from(frames) / 1000;
    // CAST: clamped to at most `MAX_IRQ_DELAY_US`, a u32.
    us.clamp(1, u64::from(crate::uapi::MAX_IRQ_DELAY_US)) as u32
}

/// The slowest frame transfer [`count_bound_us`] waits for: half the 1 GB/s the card's
/// stream is specified for, so that the count, not the bound, decides whenever frames move
/// at least that fast; the price is at most 2 ns per byte of each counted frame added to
/// the wait of a stream's last frames.
const SLOWEST_DMA_BYTES_PER_S: u64 = 500_000_000;

/// Frame-interrupt moderation, as `START` asks for it (`docs/abi.md`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct IrqModeration {
    /// Least time between two frame interrupts or, with `frames` above 1, the longest a
    /// frame waits for one (`None`: the driver's default).
    pub(crate) delay_us: Option<u32>,
    /// Frames per interrupt (0 and 1: every frame).
    pub(crate) frames: u32,
}

impl IrqModeration {
    /// What is written to `IRQ_MODERATION_US` and `IRQ_MODERATION_FRAMES` on a card with a
    /// frame period of `period_ns` and frames of `frame_bytes`. A card without moderation
    /// by count takes the time as its interval, which also gives about one interrupt per
    /// `frames` frames in a steady stream.
    fn registers(self, period_ns: u32, frame_bytes: u32) -> (u32, u32) {
        let frames = self.frames.max(1);
        let delay = match self.delay_us {
            Some(delay) => delay,
            None if frames > 1 => count_bound_us(period_ns, frame_bytes, frames),
            None => default_irq_delay_us(period_ns),
        };
        (delay, frames)
    }
}

/// How the card left the running state.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Stopped {
    /// It stopped: every submission came back with a record, and no record came for a
    /// submission it did not have.
    Clean,
    /// It did not stop in time, had halted, or went idle while its records did not match
    /// the submissions, and was reset: submissions without a record are reclaimed by the
    /// caller; the card does no more DMA.
    Reset,
    /// It no longer answers (surprise removal), or would not reset: its bus mastering was
    /// turned off, so it does no DMA either.
    Gone,
}

/// The rings of one card, allocated at probe and freed before unbind completes.
///
/// Bus mastering (which gates all of the card's DMA) is turned on only by
/// [`Self::configure`], right after a successful reset, and turned off whenever the card
/// will not stop or reset, and at unbind. So a card the driver cannot stop never writes into
/// memory whose frames were reclaimed, unmapped and unpinned.
pub(crate) struct Engine {
    submit: Coherent<[SubmitEntry]>,
    completion: Coherent<[CompletionRecord]>,
    /// Where the card writes its completion tail after every record.
    writeback: Coherent<u32>,
    /// Next submit ring index the driver writes.
    submit_tail: u32,
    /// Next completion record the driver reads.
    completion_head: u32,
    /// `COMPLETION_HEAD` as last written to the card (see [`Self::drain`]).
    reported_head: u32,
    /// Submissions the card has not answered with a record yet.
    on_card: u32,
    /// The card published a record for no outstanding submission since the last reset:
    /// its account of the frames differs from the driver's.
    surplus_records: bool,
    /// The card, for its Bus Master Enable bit.
    pdev: ARef<pci::Device>,
}

impl Engine {
    /// Allocates the rings for the card `pdev` (bound as `dev`).
    ///
    /// # Errors
    ///
    /// `ENOMEM`.
    pub(crate) fn new(dev: &Device<Bound>, pdev: ARef<pci::Device>) -> Result<Self> {
        // CAST: 4096 entries.
        let entries = RING_ENTRIES as usize;
        Ok(Self {
            submit: Coherent::zeroed_slice(dev, entries, GFP_KERNEL)?,
            completion: Coherent::zeroed_slice(dev, entries, GFP_KERNEL)?,
            writeback: Coherent::zeroed(dev, GFP_KERNEL)?,
            submit_tail: 0,
            completion_head: 0,
            reported_head: 0,
            on_card: 0,
            surplus_records: false,
            pdev,
        })
    }

    /// Turns off bus mastering of a card that will not stop or reset, or no longer answers:
    /// from then on it can do no DMA, so its submissions may be reclaimed.
    fn cut_off(&mut self) -> Stopped {
        set_bus_master(&self.pdev, false);
        Stopped::Gone
    }

    /// Resets the card, or cuts it off the bus if it will not reset: either way it does no
    /// DMA afterwards, and every submission without a record may be reclaimed.
    pub(crate) fn quiesce(&mut self, regs: &Registers) -> Stopped {
        match self.reset(regs) {
            Ok(()) => Stopped::Reset,
            Err(_) => self.cut_off(),
        }
    }

    /// The driver lets go of the card (unbind): quiesced and off the bus.
    pub(crate) fn release(mut self, regs: &Registers) {
        self.quiesce(regs);
        self.cut_off();
    }

    /// Resets the card: no DMA afterwards until [`Self::enable`]; every submission without a
    /// record is forgotten by the card (`docs/hardware.md` §6.7).
    ///
    /// # Errors
    ///
    /// `ENODEV` if the card is unbound or no longer answers, `ETIMEDOUT` if the reset does
    /// not finish.
    pub(crate) fn reset(&mut self, regs: &Registers) -> Result {
        with_bar(regs, |bar| {
            bar.write_reg(regs::CONTROL::zeroed().with_reset(true))
        })?;
        let begun = Instant::<Monotonic>::now();
        loop {
            let control = with_bar(regs, |bar| bar.read(regs::CONTROL))?;
            if control.into_raw() == u32::MAX {
                return Err(ENODEV);
            }
            if !control.reset() {
                break;
            }
            if begun.elapsed() >= Delta::from_millis(RESET_TIMEOUT_MS) {
                return Err(ETIMEDOUT);
            }
            fsleep(Delta::from_millis(1));
        }
        // Reset cleared the ring registers, so every index restarts at 0, and the card
        // forgot its submissions.
        self.submit_tail = 0;
        self.completion_head = 0;
        self.reported_head = 0;
        self.on_card = 0;
        self.surplus_records = false;
        Ok(())
    }

    /// Resets the card, turns its bus mastering on and programs it for frames of
    /// `frame_bytes`: rings, completion writeback, interrupt causes. Submissions may follow;
    /// [`Self::enable`] starts frames.
    ///
    /// # Errors
    ///
    /// Those of [`Self::reset`]; `EINVAL` if the card refuses the frame size.
    pub(crate) fn configure(
        &mut self,
        regs: &Registers,
        frame_bytes: u32,
        moderation: IrqModeration,
    ) -> Result {
        self.reset(regs)?;
        // Reset: the card holds no submission from before, so DMA may be allowed.
        set_bus_master(&self.pdev, true);
        // The card was just reset and does no DMA until enabled.
        (&self.writeback).write_val(0);
        let submit = self.submit.dma_address();
        let completion = self.completion.dma_address();
        let writeback = self.writeback.dma_address();
        with_bar(regs, |bar| {
            bar.write_reg(regs::FRAME_BYTES::zeroed().with_bytes(frame_bytes));
            if bar.read(regs::FRAME_BYTES).bytes().get() != frame_bytes {
                return Err(EINVAL);
            }
            let features = bar.read(regs::FEATURES);
            if features.irq_moderation() {
                let period_ns = bar.read(regs::FRAME_PERIOD_NS).nanoseconds().get();
                let (delay, frames) = moderation.registers(period_ns, frame_bytes);
                bar.write_reg(regs::IRQ_MODERATION_US::zeroed().with_microseconds(delay));
                if features.irq_moderation_frames() {
                    bar.write_reg(regs::IRQ_MODERATION_FRAMES::zeroed().with_frames(frames));
                }
            }
            // CAST: the low and high halves of 64-bit bus addresses.
            bar.write_reg(regs::SUBMIT_BASE_LO::zeroed().with_address(submit as u32));
            bar.write_reg(regs::SUBMIT_BASE_HI::zeroed().with_address((submit >> 32) as u32));
            bar.write_reg(regs::SUBMIT_SIZE::zeroed().with_entries(RING_ENTRIES));
            bar.write_reg(regs::COMPLETION_BASE_LO::zeroed().with_address(completion as u32));
            bar.write_reg(
                regs::COMPLETION_BASE_HI::zeroed().with_address((completion >> 32) as u32),
            );
            bar.write_reg(regs::COMPLETION_SIZE::zeroed().with_entries(RING_ENTRIES));
            bar.write_reg(regs::COMPLETION_WRITEBACK_LO::zeroed().with_address(writeback as u32));
            bar.write_reg(
                regs::COMPLETION_WRITEBACK_HI::zeroed().with_address((writeback >> 32) as u32),
            );
            bar.write_reg(regs::IRQ_STATUS::from_raw(IRQ_CAUSES));
            bar.write_reg(regs::IRQ_MASK::zeroed().with_masked(!IRQ_CAUSES));
            Ok(())
        })?
    }

    /// Queues a descriptor list (`count` descriptors at bus address `list`) under `cookie`.
    /// The ring cannot overflow: a frame is on the card at most once, and a region has fewer
    /// frames than the ring has usable entries.
    ///
    /// # Errors
    ///
    /// `EINVAL` for an empty or too long list; `ENODEV` once the card is unbound.
    pub(crate) fn submit(
        &mut self,
        regs: &Registers,
        list: u64,
        count: u32,
        cookie: u32,
    ) -> Result {
        if count == 0 {
            return Err(EINVAL);
        }
        let entry = SubmitEntry {
            desc_addr: list,
            desc_count: u16::try_from(count).map_err(|_| EINVAL)?,
            reserved: 0,
            cookie,
        };
        // CAST: ring indexes are below 4096.
        io_project!(&self.submit, [try: self.submit_tail as usize]).copy_write(entry);
        let tail = (self.submit_tail + 1) % RING_ENTRIES;
        // The MMIO write is ordered after the entry's write to coherent memory (writel()).
        with_bar(regs, |bar| {
            bar.write_reg(regs::SUBMIT_TAIL::zeroed().with_index(tail))
        })?;
        self.submit_tail = tail;
        self.on_card += 1;
        // The entry is the card's now: nothing after this point may fail the submission.
        self.release_records(regs);
        Ok(())
    }

    /// Sets `ENABLE`: the first frame starts one period later.
    ///
    /// # Errors
    ///
    /// `EIO` if the card refuses; `ENODEV` if it is unbound or no longer answers.
    pub(crate) fn enable(&mut self, regs: &Registers) -> Result {
        let status = with_bar(regs, |bar| {
            bar.write_reg(regs::CONTROL::zeroed().with_enable(true));
            bar.read(regs::STATUS)
        })?;
        if status.into_raw() == u32::MAX {
            return Err(ENODEV);
        }
        if !status.running() {
            return Err(EIO);
        }
        Ok(())
    }

    /// Hands every record the card published to `handle`, in order.
    ///
    /// Consumed records are handed back to the card (`COMPLETION_HEAD`) only once they
    /// and the records the card still owes would fill half the ring: the card can never run
    /// out of room (a full ring holds `RING_ENTRIES - 1`), and a busy stream costs one
    /// register write per couple of thousand frames instead of one per interrupt.
    ///
    /// # Errors
    ///
    /// `EIO` if the card's tail is out of range (a broken or vanished card); `ENODEV` once
    /// the card is unbound.
    pub(crate) fn drain(
        &mut self,
        regs: &Registers,
        mut handle: impl FnMut(CompletionRecord),
    ) -> Result {
        // A `u32` the card writes by DMA: read volatile, by value.
        let tail = (&self.writeback).read_val();
        if tail >= RING_ENTRIES {
            return Err(EIO);
        }
        if tail == self.completion_head {
            return Ok(());
        }
        // Records are visible before the tail that announces them (`docs/hardware.md` §5.3).
        dma_mb(Read);
        while self.completion_head != tail {
            // CAST: ring indexes are below 4096.
            let record =
                io_project!(&self.completion, [try: self.completion_head as usize]).copy_read();
            self.completion_head = (self.completion_head + 1) % RING_ENTRIES;
            match self.on_card.checked_sub(1) {
                Some(left) => self.on_card = left,
                None => self.surplus_records = true,
            }
            handle(record);
        }
        self.release_records(regs);
        Ok(())
    }

    /// Hands consumed records back to the card once they and the records it still owes
    /// reach half the completion ring. Called after every submission and drain, so between
    /// calls the card holds at most half a ring of records plus the ones it owes, which
    /// always fits (see [`Self::drain`]). Without a BAR (unbind) there is nothing to tell.
    fn release_records(&mut self, regs: &Registers) {
        let unreported = (self.completion_head + RING_ENTRIES - self.reported_head) % RING_ENTRIES;
        if unreported + self.on_card < RING_ENTRIES / 2 {
            return;
        }
        let head = self.completion_head;
        if with_bar(regs, |bar| {
            bar.write_reg(regs::COMPLETION_HEAD::zeroed().with_index(head))
        })
        .is_ok()
        {
            self.reported_head = head;
        }
    }

    /// Stops the card and hands every record of a submission to `handle` (flushed ones
    /// included); resets it if it does not stop in time or had halted.
    pub(crate) fn stop(
        &mut self,
        regs: &Registers,
        mut handle: impl FnMut(CompletionRecord),
    ) -> Stopped {
        let Ok(status) = with_bar(regs, |bar| {
            let status = bar.read(regs::STATUS);
            if !status.halted() && !status.idle() {
                bar.write_reg(regs::CONTROL::zeroed().with_stop(true));
            }
            status
        }) else {
            return self.cut_off();
        };
        if status.into_raw() == u32::MAX {
            return self.cut_off();
        }
        let begun = Instant::<Monotonic>::now();
        loop {
            if self.drain(regs, &mut handle).is_err() {
                break;
            }
            let Ok(status) = with_bar(regs, |bar| bar.read(regs::STATUS)) else {
                return self.cut_off();
            };
            if status.into_raw() == u32::MAX {
                return self.cut_off();
            }
            if status.halted() {
                break;
            }
            if begun.elapsed() >= Delta::from_millis(STOP_TIMEOUT_MS) {
                if warn_ratelimit() {
                    let pdev: &pci::Device = &self.pdev;
                    dev_warn!(
                        pdev,
                        "not idle {} ms after a stop request; resetting the card\n",
                        STOP_TIMEOUT_MS
                    );
                }
                break;
            }
            if status.idle() {
                // Idle after a stop: every record is published; collect the last ones.
                if self.drain(regs, &mut handle).is_err() {
                    break;
                }
                if self.on_card == 0 && !self.surplus_records {
                    return Stopped::Clean;
                }
                // Idle, yet its records do not match the submissions: a card that may still
                // hold frames (and write them) must not have them reclaimed as it is.
                if warn_ratelimit() {
                    let pdev: &pci::Device = &self.pdev;
                    dev_warn!(
                        pdev,
                        "idle after stop with {} frames unaccounted for{}; resetting the card\n",
                        self.on_card,
                        if self.surplus_records {
                            " and records for no frame"
                        } else {
                            ""
                        }
                    );
                }
                break;
            }
            fsleep(Delta::from_millis(1));
        }
        self.quiesce(regs)
    }

    /// `CLOCK_MONOTONIC` minus the card's clock (`TIMESTAMP`, ns), to give frame timestamps
    /// in the host's clock. The card's clock is read between two host readings, a few times;
    /// the narrowest window wins, and the error is at most half of it.
    pub(crate) fn clock_offset(&self, regs: &Registers) -> Result<i64> {
        let mut best: Option<(u64, u64)> = None; // (window, offset)
        for _ in 0..CLOCK_SAMPLES {
            let (before, card, after) = with_bar(regs, |bar| {
                let before = monotonic_ns();
                let low = bar.read(regs::TIMESTAMP_LO).value().get();
                let high = bar.read(regs::TIMESTAMP_HI).value().get();
                (before, read_counter(low, high), monotonic_ns())
            })?;
            let window = after.saturating_sub(before);
            let offset = (before / 2 + after / 2).wrapping_sub(card);
            if best.is_none_or(|(narrowest, _)| window < narrowest) {
                best = Some((window, offset));
            }
        }
        // CAST: the difference of two clocks, reinterpreted as signed.
        best.map(|(_, offset)| offset as i64).ok_or(EIO)
    }

    /// Whether the card still answers: a removed card reads all ones (`docs/hardware.md`
    /// §6.9), and an unbound one has no BAR.
    pub(crate) fn responds(regs: &Registers) -> bool {
        with_bar(regs, |bar| bar.read(regs::STATUS).into_raw() != u32::MAX).unwrap_or(false)
    }

    /// Whether the card halted on a fatal fault (only a reset leaves that state).
    pub(crate) fn halted(regs: &Registers) -> bool {
        with_bar(regs, |bar| {
            let status = bar.read(regs::STATUS);
            status.into_raw() != u32::MAX && status.halted()
        })
        .unwrap_or(false)
    }

    /// Reads and clears the error causes: `(IRQ_STATUS, FAULT_STATUS, FAULT_COOKIE)`.
    pub(crate) fn take_errors(regs: &Registers) -> Option<(u32, u32, u32)> {
        with_bar(regs, |bar| {
            let irq = bar.read(regs::IRQ_STATUS);
            let fault = bar.read(regs::FAULT_STATUS).bits().get();
            let cookie = bar.read(regs::FAULT_COOKIE).cookie().get();
            // Frame-done stays for the frames vector, which drains without looking at it.
            bar.write_reg(irq.with_frame_done(false));
            bar.write_reg(regs::FAULT_STATUS::zeroed().with_bits(fault));
            (irq.into_raw(), fault, cookie)
        })
        .ok()
    }

    /// The card's drop counters since the last reset: `(underrun, other)`.
    pub(crate) fn drops(regs: &Registers) -> (u64, u64) {
        with_bar(regs, |bar| {
            // Each low half is read first: it latches the high half.
            let underrun_low = bar.read(regs::FRAMES_DROPPED_UNDERRUN_LO).value().get();
            let underrun = read_counter(
                underrun_low,
                bar.read(regs::FRAMES_DROPPED_UNDERRUN_HI).value().get(),
            );
            let overrun_low = bar.read(regs::FRAMES_DROPPED_OVERRUN_LO).value().get();
            let overrun = read_counter(
                overrun_low,
                bar.read(regs::FRAMES_DROPPED_OVERRUN_HI).value().get(),
            );
            let backpressure_low = bar.read(regs::FRAMES_DROPPED_BACKPRESSURE_LO).value().get();
            let backpressure = read_counter(
                backpressure_low,
                bar.read(regs::FRAMES_DROPPED_BACKPRESSURE_HI).value().get(),
            );
            (underrun, overrun.saturating_add(backpressure))
        })
        .unwrap_or((0, 0))
    }
}

/// Runs `f` on the mapped BAR, or fails with `ENODEV` once the card is unbound. `f` runs
/// inside an RCU read-side section (the BAR is revocable): it must not sleep.
fn with_bar<R>(regs: &Registers, f: impl FnOnce(&Bar0<'_>) -> R) -> Result<R> {
    let bar = regs.try_access().ok_or(ENODEV)?;
    Ok(f(&bar))
}

/// A 64-bit counter from its halves, read low first (reading low latches high).
fn read_counter(low: u32, high: u32) -> u64 {
    if low == u32::MAX && high == u32::MAX {
        // A vanished card reads all ones.
        return 0;
    }
    u64::from(high) << 32 | u64::from(low)
}

#[kernel::macros::kunit_tests(fgrab_irq_moderation)]
mod tests {
    use super::IrqModeration;
    use crate::uapi::MAX_IRQ_DELAY_US;

    /// (delay asked, frames asked, card's period in ns, frame bytes) ->
    /// (IRQ_MODERATION_US, _FRAMES).
    type Case = (Option<u32>, u32, u32, u32, (u32, u32));

    #[test]
    fn moderation_registers() {
        let cases: [Case; 10] = [
            // The default: half a period, one interrupt per frame.
            (None, 0, 262_144, 262_144, (131, 1)),
            (None, 1, 262_144, 262_144, (131, 1)),
            // Half a period, at most a millisecond.
            (None, 0, 100_000_000, 262_144, (1000, 1)),
            // By count, bounded by that many periods of a sensor slower than 500 MB/s ...
            (None, 16, 262_144, 1000, (4194, 16)),
            // ... or that many frames at 500 MB/s (2 ns a byte) when the sensor is faster
            // (a 1 us period, 256 KiB frames: 16 * 524 us).
            (None, 16, 1000, 262_144, (8388, 16)),
            // ... at most the watchdog's period, at least 1 us.
            (None, 16, u32::MAX, 262_144, (MAX_IRQ_DELAY_US, 16)),
            (None, 16, 1000, u32::MAX, (MAX_IRQ_DELAY_US, 16)),
            (None, 16, 0, 0, (1, 16)),
            // What START asked for.
            (Some(2000), 0, 262_144, 262_144, (2000, 1)),
            (Some(5000), 8, 262_144, 262_144, (5000, 8)),
        ];
        for (delay_us, frames, period_ns, frame_bytes, expected) in cases {
            let moderation = IrqModeration { delay_us, frames };
            assert_eq!(moderation.registers(period_ns, frame_bytes), expected);
        }
    }
}
