// SPDX-License-Identifier: GPL-2.0

//! Layer 4: per-card state shared between the PCI binding and open files.
//!
//! A [`Card`] is reference counted: the binding holds one reference, every open file
//! another, so a file may outlive an unbind (it then finds the card gone). The card's
//! interrupt handlers ([`CardInterrupt`]) and its watchdog ([`PeriodicWork`]) call into it
//! from the layer-1 abstractions that run them.

mod copy;
mod ioctl;

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use kernel::{
    irq::{IrqReturn, ThreadedHandler},
    new_condvar, new_mutex, pci,
    prelude::*,
    sync::{aref::ARef, Arc, CondVar, Mutex},
};

use crate::{
    abstractions::{
        ids::Index,
        periodic::{Kick, PeriodicWork},
        uring_cmd::UringCmd,
    },
    domain::{
        camera::Camera,
        region::Region,
        stream::{BatchRequest, StartModeration, Stream},
    },
    hardware::{definition::msix, engine::Engine, regs::Registers},
    uapi::{AttachCmd, DeviceInfo, QueueCmd, Stats, MAX_PORT_BYTES, MAX_REGIONS, STATE_IDLE},
};

/// One frame grabber.
#[pin_data]
pub(crate) struct Card {
    index: Index,
    info: DeviceInfo,
    /// The PCI device, for DMA mappings; they all end before unbind completes.
    pdev: ARef<pci::Device>,
    /// BAR0, revoked at unbind.
    regs: Registers,
    /// The camera's feature window and XML, if the card has them and they passed the
    /// probe's checks.
    camera: Option<Camera>,
    /// Streaming state; the driver's only lock (see `domain/stream.rs` for the order).
    #[pin]
    stream: Mutex<Stream>,
    /// Signalled when the stream changes: an `ATTACH` reservation or a `read()` copy ends
    /// (unbind waits for both), frames complete (`DQBUF` and `read()` wait for them).
    #[pin]
    changed: CondVar,
    /// Identity of the attach command of each region id whose cancel was taken and whose
    /// region waits for the watchdog to end it (0: none). io_uring repeats a cancel call,
    /// under its ring lock, until the command completes; the repeats find it here and return
    /// without waiting for `stream`, which the watchdog holds while it ends the region.
    canceling: [AtomicUsize; MAX_REGIONS as usize],
    /// Commands and inline completions, for `STATS`.
    traffic: Traffic,
}

/// Commands handled and completions answered at once, counted without a lock (every
/// command would otherwise take `Card::stream` once more), and their values at the last
/// `START`, from which `STATS` counts.
#[derive(Default)]
struct Traffic {
    commands: AtomicU64,
    inline_cqes: AtomicU64,
    commands_at_start: AtomicU64,
    inline_cqes_at_start: AtomicU64,
}

impl Traffic {
    fn count(&self, inline: bool) {
        self.commands.fetch_add(1, Ordering::Relaxed);
        if inline {
            self.inline_cqes.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counting starts again (`START`, under `Card::stream`).
    fn restart(&self) {
        let commands = self.commands.load(Ordering::Relaxed);
        let inline_cqes = self.inline_cqes.load(Ordering::Relaxed);
        self.commands_at_start.store(commands, Ordering::Relaxed);
        self.inline_cqes_at_start
            .store(inline_cqes, Ordering::Relaxed);
    }

    /// (commands, inline completions) since the last `START`.
    fn since_start(&self) -> (u64, u64) {
        let since = |counter: &AtomicU64, at_start: &AtomicU64| {
            counter
                .load(Ordering::Relaxed)
                .saturating_sub(at_start.load(Ordering::Relaxed))
        };
        (
            since(&self.commands, &self.commands_at_start),
            since(&self.inline_cqes, &self.inline_cqes_at_start),
        )
    }
}

impl Card {
    /// A card numbered `index` whose identity was read at probe time.
    pub(crate) fn new(
        index: Index,
        info: DeviceInfo,
        pdev: ARef<pci::Device>,
        regs: Registers,
        camera: Option<Camera>,
        engine: Engine,
    ) -> impl PinInit<Self> {
        pin_init!(Self {
            index,
            info,
            pdev,
            regs,
            camera,
            stream <- new_mutex!(Stream::new(engine)),
            changed <- new_condvar!(),
            canceling: [const { AtomicUsize::new(0) }; MAX_REGIONS as usize],
            traffic: Traffic::default(),
        })
    }

    /// Resets the card at probe, before bus mastering may be turned on: whatever it was
    /// doing before (for a previous kernel or driver) ends here.
    ///
    /// # Errors
    ///
    /// Those of `Engine::reset`.
    pub(crate) fn reset(&self) -> Result {
        self.stream.lock().reset(&self.regs)
    }

    /// The N of `/dev/fgrabN`.
    pub(crate) fn index(&self) -> u32 {
        self.index.get()
    }

    /// Identity and capabilities, as answered to `INFO`.
    pub(crate) fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// Stream state and counters, as answered to `STATS`.
    pub(crate) fn stats(&self) -> Stats {
        let mut stats = Stats {
            // CAST: the structure is 96 bytes.
            struct_size: core::mem::size_of::<Stats>() as u32,
            ..Stats::default()
        };
        let stream = self.stream.lock();
        stream.fill_stats(&self.regs, &mut stats);
        if stats.state != STATE_IDLE {
            let (commands, inline_cqes) = self.traffic.since_start();
            stats.commands = commands;
            stats.cqes = stats.cqes.saturating_add(inline_cqes);
        }
        stats
    }

    /// `ATTACH` from file `owner`: on success `cmd` stays in flight for the region's life.
    ///
    /// The region is imported, mapped and `cmd` marked cancelable outside the lock (see
    /// `domain/stream.rs`), under a reservation of its region id.
    ///
    /// # Errors
    ///
    /// Those of [`Stream::reserve`] and [`Region::attach`].
    pub(crate) fn attach(&self, owner: u64, cmd: UringCmd, request: &AttachCmd) -> Result {
        let id = request.region;
        self.stream
            .lock()
            .reserve(owner, id, request.frame_bytes, request.frame_count)?;
        let reservation = Reservation {
            card: self,
            region: Some((id, request.frame_count)),
        };
        let region = Region::attach(&cmd, request, &self.info, &self.pdev)?;
        let ring = cmd.ring();
        let pending = cmd.into_pending();
        core::mem::forget(reservation);
        self.stream.lock().fill(owner, id, ring, region, pending);
        self.changed.notify_all();
        Ok(())
    }

    /// The camera, or `EOPNOTSUPP` for a card without one.
    fn camera(&self) -> Result<&Camera> {
        self.camera.as_ref().ok_or(EOPNOTSUPP)
    }

    /// `XML_READ`: up to `size` bytes of the XML from `offset` (`size` 0: the XML's size,
    /// nothing read). Any file may read; no lock is taken (the XML is read only).
    ///
    /// # Errors
    ///
    /// `EOPNOTSUPP` without a camera; those of [`Camera::read_xml`]; `ENOMEM`.
    pub(crate) fn xml_read(&self, offset: u32, size: u32) -> Result<(u32, KVec<u8>)> {
        let camera = self.camera()?;
        if size == 0 {
            return Ok((camera.xml_size(), KVec::new()));
        }
        let mut bytes = port_buffer(size)?;
        let len = camera.read_xml(&self.regs, offset, &mut bytes)?;
        bytes.truncate(len);
        // CAST: at most `MAX_PORT_BYTES`.
        Ok((len as u32, bytes))
    }

    /// `FEATURE_READ`: `size` bytes of the feature window at `offset`. Any file may read;
    /// registers are read one at a time, without the stream lock.
    ///
    /// # Errors
    ///
    /// `EOPNOTSUPP` without a camera; those of [`Camera::read_window`]; `ENOMEM`.
    pub(crate) fn feature_read(&self, offset: u32, size: u32) -> Result<KVec<u8>> {
        let camera = self.camera()?;
        let mut bytes = port_buffer(size)?;
        camera.read_window(&self.regs, offset, &mut bytes)?;
        Ok(bytes)
    }

    /// `FEATURE_WRITE` from file `owner`: `data` into the feature window at `offset`, under
    /// the stream lock, so that no `START` comes between the busy check and the write.
    ///
    /// # Errors
    ///
    /// `EOPNOTSUPP` without a camera; those of [`Stream::feature_writer`] and
    /// [`Camera::write_window`].
    pub(crate) fn feature_write(&self, owner: u64, offset: u32, data: &[u8]) -> Result {
        let camera = self.camera()?;
        let stream = self.stream.lock();
        let streaming = stream.feature_writer(owner)?;
        camera.write_window(&self.regs, offset, data, streaming)
    }

    /// `DETACH` of region `region` from file `owner`; see [`Stream::detach`].
    pub(crate) fn detach(&self, owner: u64, region: u32) -> Result {
        let result = self.stream.lock().detach(&self.regs, owner, region);
        self.changed.notify_all();
        result
    }

    /// `QUEUE` from file `owner`; see [`Stream::queue`].
    pub(crate) fn queue(&self, owner: u64, cmd: UringCmd, request: &QueueCmd) -> Result {
        self.stream.lock().queue(
            &self.regs,
            owner,
            cmd,
            (request.region, request.frame),
            request.meta_addr,
        )
    }

    /// `QUEUE_BATCH` from file `owner`; see [`Stream::queue_batch`].
    pub(crate) fn queue_batch(&self, owner: u64, cmd: UringCmd, request: &BatchRequest) -> Result {
        self.stream
            .lock()
            .queue_batch(&self.regs, owner, cmd, request)
    }

    /// `START` from file `owner`, frame interrupts moderated as asked; see
    /// [`Stream::start`]. The counters of `STATS` start again from here.
    pub(crate) fn start(&self, owner: u64, moderation: StartModeration) -> Result {
        let mut stream = self.stream.lock();
        stream.start(&self.regs, owner, moderation)?;
        self.traffic.restart();
        Ok(())
    }

    /// Counts a command handled, and its completion if it was answered at once (`inline`);
    /// deferred completions are counted by the stream.
    pub(crate) fn count_command(&self, inline: bool) {
        self.traffic.count(inline);
    }

    /// `STOP` from file `owner`; see [`Stream::stop`].
    pub(crate) fn stop(&self, owner: u64) -> Result {
        let result = self.stream.lock().stop(&self.regs, owner);
        self.changed.notify_all();
        result
    }

    /// Lets a cancel run the watchdog at once; see [`Stream::set_watchdog`].
    pub(crate) fn set_watchdog(&self, watchdog: Kick) {
        self.stream.lock().set_watchdog(watchdog);
    }

    /// io_uring cancels `cmd`, holding its ring lock: the region leaves its owner at once
    /// and the watchdog ends it (see [`Stream::cancel`]).
    pub(crate) fn cancel(&self, cmd: &UringCmd) {
        if self
            .canceling
            .iter()
            .any(|canceling| canceling.load(Ordering::Acquire) == cmd.id())
        {
            return;
        }
        let mut stream = self.stream.lock();
        if let Some(slot) = stream
            .cancel(cmd)
            .and_then(|id| self.canceling.get(id as usize))
        {
            slot.store(cmd.id(), Ordering::Release);
        }
        drop(stream);
        self.changed.notify_all();
    }

    /// File `owner` is released; see [`Stream::release`].
    pub(crate) fn release(&self, owner: u64) {
        self.stream.lock().release(&self.regs, owner);
        self.changed.notify_all();
    }

    /// Thread half of interrupt `vector`.
    pub(crate) fn interrupt(&self, vector: Vector) {
        let mut stream = self.stream.lock();
        match vector {
            Vector::Frames => stream.frame_interrupt(&self.regs),
            Vector::Errors => {
                stream.errors(&self.regs, self.index());
                // A record may have been published without its message.
                stream.frames_done(&self.regs);
            }
        }
        drop(stream);
        self.changed.notify_all();
    }

    /// The watchdog's periodic call while the card is bound: interrupt messages can be
    /// lost (`docs/hardware.md` §7), and a lost one must not stall a stream.
    ///
    /// It also ends a region whose attach command was canceled (see [`Self::cancel`]).
    pub(crate) fn poll(&self) {
        let mut stream = self.stream.lock();
        self.forget_canceled(stream.end_canceled(&self.regs));
        stream.poll(&self.regs, self.index());
        drop(stream);
        self.changed.notify_all();
    }

    /// Forgets the canceled attach commands of the region ids in `ended` (a bit per id):
    /// their regions ended, and the commands completed.
    fn forget_canceled(&self, ended: u64) {
        for (id, canceling) in self.canceling.iter().enumerate() {
            if ended & 1 << id != 0 {
                canceling.store(0, Ordering::Release);
            }
        }
    }

    /// The card is unbound: waits for an `ATTACH` in progress, then ends the region
    /// (see [`Stream::shutdown`]) and wakes every waiter (`DQBUF`, `read()`), which finds
    /// the card gone and returns `ENODEV`: nothing else would wake them once the watchdog
    /// stops with the binding.
    pub(crate) fn shutdown(&self) {
        let mut stream = self.stream.lock();
        stream.depart();
        // Waiters need not wait for the region to end to learn that the card is going.
        self.changed.notify_all();
        while stream.busy() {
            self.changed.wait(&mut stream);
        }
        stream.shutdown(&self.regs);
        self.forget_canceled(u64::MAX);
        drop(stream);
        self.changed.notify_all();
    }
}

/// The card's MSI-X vectors (`docs/hardware.md` §2), in vector order.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Vector {
    /// Frame completions.
    Frames = 0,
    /// Errors and state changes.
    Errors = 1,
}

// The vectors are the card's definition's (and `CardInterrupt::all` has one handler for each
// of its vectors).
const _: () = {
    // CAST: the discriminants are 0 and 1.
    assert!(Vector::Frames as u16 == msix::FRAME_VECTOR);
    // CAST: as above.
    assert!(Vector::Errors as u16 == msix::ERROR_VECTOR);
};

impl CardInterrupt {
    /// The handlers of every vector of `card`, in vector order, with their names in
    /// /proc/interrupts (the IRQ core wants `'static` names: the device's PCI address,
    /// shown beside them, tells cards apart).
    pub(crate) fn all(
        card: &Arc<Card>,
    ) -> [(&'static CStr, CardInterrupt); msix::VECTORS as usize] {
        [
            (c"fgrab-frames", Vector::Frames),
            (c"fgrab-errors", Vector::Errors),
        ]
        .map(|(name, vector)| {
            (
                name,
                CardInterrupt {
                    card: card.clone(),
                    vector,
                },
            )
        })
    }
}

/// The threaded handler of one of a card's vectors.
pub(crate) struct CardInterrupt {
    /// The card; its binding frees the handler before letting go of it.
    pub(crate) card: Arc<Card>,
    /// Which vector this handler serves.
    pub(crate) vector: Vector,
}

impl ThreadedHandler for CardInterrupt {
    fn handle_threaded(&self) -> IrqReturn {
        self.card.interrupt(self.vector);
        IrqReturn::Handled
    }
}

/// The watchdog's run: see [`Card::poll`].
impl PeriodicWork for Card {
    fn run(&self) {
        self.poll();
    }
}

/// A zeroed kernel buffer for one camera command: at most [`MAX_PORT_BYTES`].
///
/// # Errors
///
/// `EINVAL` above the maximum, `ENOMEM`.
fn port_buffer(size: u32) -> Result<KVec<u8>> {
    if size > MAX_PORT_BYTES {
        return Err(EINVAL);
    }
    // CAST: u32 to usize, widening.
    Ok(KVec::from_elem(0u8, size as usize, GFP_KERNEL)?)
}

/// A reservation whose `ATTACH` (region id and frame count) or copy-path start (`None`)
/// has not succeeded yet; released when dropped.
struct Reservation<'a> {
    card: &'a Card,
    region: Option<(u32, u32)>,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let mut stream = self.card.stream.lock();
        match self.region {
            Some((id, frame_count)) => stream.unreserve(id, frame_count),
            None => stream.unreserve_copy(),
        }
        drop(stream);
        self.card.changed.notify_all();
    }
}
