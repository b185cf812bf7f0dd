// SPDX-License-Identifier: GPL-2.0

//! Rate-limited warnings: what a hostile device or an unprivileged caller can trigger must
//! not flood the kernel log (`__ratelimit`, `dev_warn_ratelimited`; 7.3 has no Rust form).

use kernel::{
    fmt, pci,
    str::{CStrExt, CString},
};

use super::{pci::raw, shim};

/// Whether a warning may be logged now (one budget for the whole module).
pub(crate) fn warn_ratelimit() -> bool {
    // SAFETY: `__ratelimit` on a static state takes its own lock; callable in any context.
    unsafe { shim::fgrab_shim_warn_ratelimit() }
}

/// Logs `message` as a warning of `pdev`, rate limited.
pub(crate) fn warn_ratelimited(pdev: &pci::Device, message: fmt::Arguments<'_>) {
    if let Ok(message) = CString::try_from_fmt(message) {
        // SAFETY: `raw` gives a valid `struct pci_dev` for as long as `pdev` is borrowed;
        // `message` is NUL-terminated and outlives the call.
        unsafe { shim::fgrab_shim_warn_ratelimited(raw(pdev), message.as_char_ptr()) };
    }
}
