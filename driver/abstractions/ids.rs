// SPDX-License-Identifier: GPL-2.0

//! Small numbers handed out lowest first, e.g. the N of a device node name.
//!
//! A static IDA in the shim: `kernel::id_pool::IdPool` needs a lock that lives as long as
//! the module, and `module_pci_driver!` gives no init hook to set one up, whereas
//! `DEFINE_IDA` is a static initializer (a C macro).

use core::ffi::c_int;

use kernel::{error::to_result, prelude::*};

use super::shim;

/// A number taken from the module's pool, returned when dropped.
///
/// # Invariants
///
/// `0` is non-negative and allocated from the pool, freed once, by `Drop`.
pub(crate) struct Index(c_int);

impl Index {
    /// Takes the smallest free number.
    ///
    /// # Errors
    ///
    /// `ENOMEM`, `ENOSPC`.
    pub(crate) fn alloc() -> Result<Self> {
        // SAFETY: no preconditions; the IDA is static in the shim.
        let index = unsafe { shim::fgrab_shim_index_alloc() };
        to_result(index)?;
        // INVARIANT: allocated, and `to_result` accepted it, so it is not negative.
        Ok(Self(index))
    }

    /// The number.
    pub(crate) fn get(&self) -> u32 {
        // CAST: non-negative (type invariant).
        self.0 as u32
    }
}

impl Drop for Index {
    fn drop(&mut self) {
        // SAFETY: allocated from the pool and freed once (type invariant).
        unsafe { shim::fgrab_shim_index_free(self.0) };
    }
}
