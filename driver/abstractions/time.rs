// SPDX-License-Identifier: GPL-2.0

//! `CLOCK_MONOTONIC` as a number: `kernel::time::Instant` keeps its value private, and a
//! device clock is related to it by an offset in nanoseconds.

use kernel::bindings;

/// `CLOCK_MONOTONIC` now, in nanoseconds.
pub(crate) fn monotonic_ns() -> u64 {
    // SAFETY: `ktime_get` has no preconditions.
    let now = unsafe { bindings::ktime_get() };
    // CAST: monotonic time is never negative.
    now as u64
}
