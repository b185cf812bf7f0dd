// SPDX-License-Identifier: GPL-2.0

//! Per-card state shared between the PCI binding and open files.
//!
//! A [`Card`] is reference counted: the binding holds one reference, every open file
//! another, so a file may outlive an unbind (it then finds the card gone).

use kernel::{
    new_condvar, new_mutex, pci,
    prelude::*,
    sync::{aref::ARef, CondVar, Mutex},
};

use crate::{
    engine::Engine,
    region::Region,
    regs::Registers,
    shim::{CardIndex, UringCmd, Vector},
    stream::Stream,
    uapi::{AttachCmd, DeviceInfo, QueueCmd, Stats},
};

/// One frame grabber.
#[pin_data]
pub(crate) struct Card {
    index: CardIndex,
    info: DeviceInfo,
    /// The PCI device, for DMA mappings; they all end before unbind completes.
    pdev: ARef<pci::Device>,
    /// BAR0, revoked at unbind.
    regs: Registers,
    /// Streaming state; the driver's only lock (see `stream.rs` for the order).
    #[pin]
    stream: Mutex<Stream>,
    /// Signalled when an `ATTACH` reservation ends (unbind waits for it).
    #[pin]
    attach_done: CondVar,
}

impl Card {
    /// A card numbered `index` whose identity was read at probe time.
    pub(crate) fn new(
        index: CardIndex,
        info: DeviceInfo,
        pdev: ARef<pci::Device>,
        regs: Registers,
        engine: Engine,
    ) -> impl PinInit<Self> {
        pin_init!(Self {
            index,
            info,
            pdev,
            regs,
            stream <- new_mutex!(Stream::new(engine)),
            attach_done <- new_condvar!(),
        })
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
        self.stream.lock().fill_stats(&self.regs, &mut stats);
        stats
    }

    /// `ATTACH` from file `owner`: on success `cmd` stays in flight for the region's life.
    ///
    /// The region is imported, mapped and `cmd` marked cancelable outside the lock (see
    /// `stream.rs`), under a reservation of the card's region slot.
    ///
    /// # Errors
    ///
    /// Those of [`Stream::reserve`] and [`Region::attach`].
    pub(crate) fn attach(&self, owner: u64, cmd: UringCmd, request: &AttachCmd) -> Result {
        self.stream.lock().reserve()?;
        let reservation = Reservation(self);
        let region = Region::attach(&cmd, request, &self.info, &self.pdev)?;
        let ring = cmd.ring();
        let pending = cmd.into_pending();
        core::mem::forget(reservation);
        self.stream
            .lock()
            .fill(&self.regs, owner, ring, region, pending);
        self.attach_done.notify_all();
        Ok(())
    }

    /// `DETACH` from file `owner`; see [`Stream::detach`].
    pub(crate) fn detach(&self, owner: u64) -> Result {
        self.stream.lock().detach(&self.regs, owner)
    }

    /// `QUEUE` from file `owner`; see [`Stream::queue`].
    pub(crate) fn queue(&self, owner: u64, cmd: UringCmd, request: &QueueCmd) -> Result {
        self.stream
            .lock()
            .queue(&self.regs, owner, cmd, request.frame, request.meta_addr)
    }

    /// `START` from file `owner`; see [`Stream::start`].
    pub(crate) fn start(&self, owner: u64) -> Result {
        self.stream.lock().start(&self.regs, owner)
    }

    /// `STOP` from file `owner`; see [`Stream::stop`].
    pub(crate) fn stop(&self, owner: u64) -> Result {
        self.stream.lock().stop(&self.regs, owner)
    }

    /// io_uring cancels `cmd`; see [`Stream::cancel`].
    pub(crate) fn cancel(&self, cmd: &UringCmd) {
        self.stream.lock().cancel(&self.regs, cmd);
    }

    /// File `owner` is released; see [`Stream::release`].
    pub(crate) fn release(&self, owner: u64) {
        self.stream.lock().release(&self.regs, owner);
    }

    /// Thread half of interrupt `vector`.
    pub(crate) fn interrupt(&self, vector: Vector) {
        let mut stream = self.stream.lock();
        match vector {
            Vector::Frames => stream.frames_done(&self.regs),
            Vector::Errors => {
                stream.errors(&self.regs, self.index());
                // A record may have been published without its message.
                stream.frames_done(&self.regs);
            }
        }
    }

    /// The watchdog's periodic call while the card is bound: interrupt messages can be
    /// lost (`docs/hardware.md` §7), and a lost one must not stall a stream.
    pub(crate) fn poll(&self) {
        self.stream.lock().poll(&self.regs, self.index());
    }

    /// The card is unbound: waits for an `ATTACH` in progress, then ends the region
    /// (see [`Stream::shutdown`]).
    pub(crate) fn shutdown(&self) {
        let mut stream = self.stream.lock();
        while stream.attaching() {
            self.attach_done.wait(&mut stream);
        }
        stream.shutdown(&self.regs);
    }
}

/// A reserved region slot whose `ATTACH` has not succeeded yet; released when dropped.
struct Reservation<'a>(&'a Card);

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.0.stream.lock().unreserve();
        self.0.attach_done.notify_all();
    }
}
