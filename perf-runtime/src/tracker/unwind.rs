//! A panic inside a poll of a request's future or stream makes the request an `error`, even when
//! the panic is caught later.

use super::state::RequestState;

/// Held across each poll of a request's future or stream and let go by [`passed`](Self::passed)
/// when the poll returns: dropped, it is dropped by unwinding, and marks the request as
/// panicked. So a panic caught by a `catch_unwind` around the future or stream (a panic layer),
/// which drops it later when `std::thread::panicking()` no longer tells, still counts as an
/// `error`, not a cancellation; and a poll that returns asks nothing (no call to
/// `std::thread::panicking()` per poll).
pub(crate) struct UnwindWatch<'a>(&'a RequestState);

impl<'a> UnwindWatch<'a> {
    /// Watches a poll for `state`'s request.
    #[inline]
    pub fn new(state: &'a RequestState) -> Self {
        UnwindWatch(state)
    }

    /// The poll returned: nothing to mark.
    #[inline]
    pub fn passed(self) {
        std::mem::forget(self);
    }
}

impl Drop for UnwindWatch<'_> {
    /// Reached only by unwinding: a returning poll forgets the watch.
    #[cold]
    fn drop(&mut self) {
        self.0.panicked();
    }
}
