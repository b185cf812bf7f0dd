//! Frame production: taking a submission, fetching its descriptor list, writing the
//! patterned frame through DMA and completing it, with the faults that hit a frame.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

use zerocopy::FromBytes;

use crate::dma::{DmaFault, DmaSpace};
use crate::dma_rings::{
    check_entry, parse_descriptors, CompletionRecord, CompletionStatus, Descriptor,
    DescriptorError, SubmitEntry,
};
use crate::fault::FaultKind;
use crate::pattern;
use crate::regs::FaultStatus;

use super::{nanos, no_frame_record, Device, Run, State, SUBMIT_ENTRY};

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

/// Writes the frame whose pattern seed is `sequence` (the sequence number salted with the
/// pixel format, [`pattern::salted`]; `frame_bytes` long) into the buffer described by `list`,
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

impl Device {
    /// Starts the frame due now and carries it to its completion.
    pub(super) fn frame<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        buf: &mut [u8],
    ) -> MutexGuard<'a, State> {
        let period = Duration::from_nanos(st.period_ns.into());
        let late = Instant::now().saturating_duration_since(st.next_frame_at);
        // CAST: a u32 period divides any realistic lateness into a u64.
        let missed = if st.camera.counts_frames() {
            // A SingleFrame or MultiFrame acquisition's frames start late rather than go by
            // as drops that would use up its count (docs/hardware.md §12, "Model").
            0
        } else {
            (late.as_nanos() / period.as_nanos().max(1)) as u64
        };
        // Frame starts that went by while the card was starved are dropped for the reason it
        // was starved (docs/hardware.md 6.2), else the card itself was late.
        let starved = st.starved_since.map(|(_, backpressure)| backpressure);
        for _ in 0..missed {
            if !st.camera.free_running() {
                // A SingleFrame or MultiFrame acquisition ended among the missed starts.
                break;
            }
            st.camera.count_start();
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

        if !st.camera.free_running() && !st.camera.triggered() {
            return st;
        }
        st.camera.count_start();
        let sequence = st.next_sequence;
        st.next_sequence += 1;
        st.counters.produced += 1;
        let seed = pattern::salted(sequence, st.camera.pixel_format());

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
            seed,
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
    pub(super) fn write_kept(&self, st: &mut State, buf: &mut [u8]) {
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
            pattern::salted(st.next_sequence, st.camera.pixel_format()),
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
}
