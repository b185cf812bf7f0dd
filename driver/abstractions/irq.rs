// SPDX-License-Identifier: GPL-2.0

//! MSI-X vectors of a PCI device with a threaded handler on each ([`MsixHandlers`]), over
//! `kernel::pci::IrqVectorRegistration` and `kernel::irq::ThreadedRegistration`.
//!
//! The vectors of 7.3's registration borrow it, so a driver's per-binding data cannot hold
//! the registration and the handlers side by side; this type owns both, the registration
//! boxed (its address never changes) and dropped after the handlers.

use kernel::{
    device::Bound,
    irq::{Flags, IrqRequest, ThreadedHandler, ThreadedRegistration},
    pci::{self, IrqType, IrqTypes, IrqVectorRegistration},
    prelude::*,
};

/// One threaded handler per MSI-X vector of a device; freed when dropped, handlers first.
///
/// # Invariants
///
/// `_handlers` borrow `*_vectors` for `'a`: the box is never moved out or replaced, and is
/// dropped after them (field order).
pub(crate) struct MsixHandlers<'a, T: ThreadedHandler + 'static> {
    _handlers: KVec<Pin<KBox<ThreadedRegistration<'a, T>>>>,
    _vectors: KBox<IrqVectorRegistration<'a>>,
}

impl<'a, T: ThreadedHandler + 'static> MsixHandlers<'a, T> {
    /// Allocates one MSI-X vector of `pdev` per handler and requests the threaded handlers,
    /// the `index`-th on vector `index`, with its name in /proc/interrupts.
    /// The hard half only wakes the thread (`ThreadedHandler::handle`'s default): MSI-X
    /// needs nothing acknowledged at the line.
    ///
    /// # Errors
    ///
    /// Those of `pci_alloc_irq_vectors` (fewer vectors than names) and
    /// `request_threaded_irq`; `ENOMEM`.
    pub(crate) fn new<const N: usize>(
        pdev: &'a pci::Device<Bound>,
        handlers: [(&'static CStr, T); N],
    ) -> Result<Self> {
        let count = u32::try_from(N)?;
        let vectors = KBox::new(
            pdev.alloc_irq_vectors(count, count, IrqTypes::default().with(IrqType::MsiX))?,
            GFP_KERNEL,
        )?;
        // SAFETY: the box's contents never move and outlive every handler that borrows
        // them: the box is dropped after `_handlers` and never moved out (type invariant).
        let borrowed: &'a IrqVectorRegistration<'a> = unsafe { &*core::ptr::from_ref(&*vectors) };
        let mut registered = KVec::with_capacity(N, GFP_KERNEL)?;
        for (index, (name, handler)) in handlers.into_iter().enumerate() {
            let request: IrqRequest<'a> = borrowed.index(index)?.into();
            // SAFETY: the registration is pinned in a box owned by this value; if this value
            // is forgotten, the box leaks with it and stays valid, and `T: 'static` borrows
            // nothing that could end.
            let registration = unsafe {
                ThreadedRegistration::new(
                    request,
                    Flags::TRIGGER_NONE,
                    name,
                    Ok::<T, Error>(handler),
                )
            };
            registered.push(KBox::pin_init(registration, GFP_KERNEL)?, GFP_KERNEL)?;
        }
        // INVARIANT: the handlers borrow `*vectors`, dropped after them.
        Ok(Self {
            _handlers: registered,
            _vectors: vectors,
        })
    }
}
