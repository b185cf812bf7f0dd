// SPDX-License-Identifier: GPL-2.0

//! Two values that must go in a fixed order: [`DropOrder`].
//!
//! Rust drops a struct's fields in declaration order, so an order between two fields is
//! otherwise held by where a line sits in a struct, which nothing checks when the struct is
//! edited. This type makes the order part of the type: whatever contains it and however it
//! ends (dropped on an error path, or taken apart with [`DropOrder::end`]), `First` is gone
//! before `Then` is dropped or handed out.

use core::mem::ManuallyDrop;

/// Owns a `First` and a `Then`; `First` is always dropped before `Then`.
pub(crate) struct DropOrder<First, Then> {
    // INVARIANT: both are initialised until `drop` or `end`, which each release both once.
    first: ManuallyDrop<First>,
    then: ManuallyDrop<Then>,
}

impl<First, Then> DropOrder<First, Then> {
    /// Takes ownership of both values.
    pub(crate) fn new(first: First, then: Then) -> Self {
        // INVARIANT: both initialised.
        Self {
            first: ManuallyDrop::new(first),
            then: ManuallyDrop::new(then),
        }
    }

    /// The value dropped first.
    pub(crate) fn first(&self) -> &First {
        &self.first
    }

    /// The value dropped last.
    pub(crate) fn then(&self) -> &Then {
        &self.then
    }

    /// Drops `First`, then hands `Then` to the caller (to end it with a result of its
    /// choosing rather than by its own `Drop`).
    pub(crate) fn end(self) -> Then {
        // `Self::drop` must not run as well: each value is released exactly once below.
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `first` is initialised (type invariant) and, since `this` is never dropped,
        // is released only here.
        unsafe { ManuallyDrop::drop(&mut this.first) };
        // SAFETY: `then` is initialised (type invariant) and is moved out only here; `this`
        // is never dropped, so it is not dropped again.
        unsafe { ManuallyDrop::take(&mut this.then) }
    }
}

impl<First, Then> Drop for DropOrder<First, Then> {
    fn drop(&mut self) {
        // SAFETY: both are initialised (type invariant; `end` forgets `self` instead of
        // dropping it) and are released once here, in the required order.
        unsafe {
            ManuallyDrop::drop(&mut self.first);
            ManuallyDrop::drop(&mut self.then);
        }
    }
}

#[kernel::macros::kunit_tests(fgrab_drop_order)]
mod tests {
    use super::DropOrder;
    use core::sync::atomic::{AtomicU32, Ordering};

    /// Records the order in which markers are dropped: each drop shifts its tag in.
    struct Marker<'a>(&'a AtomicU32, u32);

    impl Drop for Marker<'_> {
        fn drop(&mut self) {
            let previous = self.0.load(Ordering::Relaxed);
            self.0.store(previous * 10 + self.1, Ordering::Relaxed);
        }
    }

    #[test]
    fn drop_releases_first_then_then() {
        let log = AtomicU32::new(0);
        // Declared in the "wrong" order on purpose: the type decides, not the call site.
        let pair = DropOrder::new(Marker(&log, 1), Marker(&log, 2));
        drop(pair);
        assert_eq!(log.load(Ordering::Relaxed), 12);
    }

    #[test]
    fn end_releases_first_and_hands_out_then() {
        let log = AtomicU32::new(0);
        let pair = DropOrder::new(Marker(&log, 1), Marker(&log, 2));
        assert_eq!(pair.first().1, 1);
        let then = pair.end();
        assert_eq!(log.load(Ordering::Relaxed), 1);
        drop(then);
        assert_eq!(log.load(Ordering::Relaxed), 12);
    }
}
