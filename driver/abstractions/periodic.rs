// SPDX-License-Identifier: GPL-2.0

//! Work that runs every period until stopped, and can be run early from any context
//! ([`Periodic`], [`Kick`]).
//!
//! A self-rearming delayed work in the shim: `kernel::workqueue::DelayedWork` in 7.3 has no
//! cancel, and a periodic work must be canceled synchronously before what it polls goes.

use core::{
    ffi::{c_uint, c_void},
    ptr::NonNull,
};
use kernel::{prelude::*, sync::Arc};

use super::shim;

/// What a [`Periodic`] runs.
pub(crate) trait PeriodicWork: Send + Sync + 'static {
    /// One period's run, in process context (a workqueue).
    fn run(&self);
}

/// Calls `T::run` every period until dropped; the drop waits for a running call.
///
/// # Invariants
///
/// `raw` is a started shim work whose data is the address of `_target`'s value.
pub(crate) struct Periodic<T: PeriodicWork> {
    raw: NonNull<c_void>,
    /// Kept alive for the work, which borrows it without a count; released after the work
    /// is stopped (fields drop after `Drop::drop`).
    _target: Arc<T>,
}

// SAFETY: the C object is only touched by `Drop` and `Kick`; `T` is `Send + Sync`.
unsafe impl<T: PeriodicWork> Send for Periodic<T> {}
// SAFETY: shared references do not touch the C object.
unsafe impl<T: PeriodicWork> Sync for Periodic<T> {}

/// The shim's call of one period.
///
/// # Safety
///
/// `data` is the address of the `T` given to `fgrab_shim_periodic_start` by
/// [`Periodic::start`], valid until that work is stopped.
unsafe extern "C" fn run<T: PeriodicWork>(data: *mut c_void) {
    // SAFETY: the `Periodic` holds a reference to the value until the work is stopped.
    let target = unsafe { &*data.cast::<T>() };
    target.run();
}

impl<T: PeriodicWork> Periodic<T> {
    /// Starts running `target` every `period_ms`, the first time one period from now.
    ///
    /// # Errors
    ///
    /// `ENOMEM`.
    pub(crate) fn start(target: &Arc<T>, period_ms: u32) -> Result<Self> {
        let data = Arc::as_ptr(target).cast_mut().cast();
        // SAFETY: `data` stays valid until `Drop` stopped the work: `target` is kept here;
        // `run::<T>` matches it.
        let raw = unsafe { shim::fgrab_shim_periodic_start(run::<T>, data, period_ms as c_uint) };
        // INVARIANT: started with `target`'s address.
        Ok(Self {
            raw: NonNull::new(raw).ok_or(ENOMEM)?,
            _target: target.clone(),
        })
    }

    /// A handle that runs this work early; see [`Kick`] for how long it is valid.
    pub(crate) fn kick_handle(&self) -> Kick {
        // INVARIANT: a started work; keeping it started is the holder's duty.
        Kick { raw: self.raw }
    }
}

impl<T: PeriodicWork> Drop for Periodic<T> {
    fn drop(&mut self) {
        // SAFETY: started (type invariant), stopped once; afterwards no run is in progress
        // or queued.
        unsafe { shim::fgrab_shim_periodic_stop(self.raw.as_ptr()) };
    }
}

/// Runs a [`Periodic`] now rather than at its next period, from any context.
///
/// # Invariants
///
/// `raw` is a started shim work. Whoever holds the handle drops it before the
/// [`Periodic`] it came from stops.
pub(crate) struct Kick {
    raw: NonNull<c_void>,
}

// SAFETY: `fgrab_shim_periodic_kick` may be called from any thread.
unsafe impl Send for Kick {}

impl Kick {
    /// Queues the work's run now.
    pub(crate) fn kick(&self) {
        // SAFETY: started, and not stopped while this handle exists (type invariant).
        unsafe { shim::fgrab_shim_periodic_kick(self.raw.as_ptr()) };
    }
}
