//! A panic inside a poll of a request's future or stream makes the request an `error`, even when
//! the panic is caught later.

use super::state::RequestState;

/// Held across each poll of a request's future or stream: dropped while unwinding, it marks the
/// request as panicked. So a panic caught by a `catch_unwind` around the future or stream (a
/// panic layer), which drops it later when `std::thread::panicking()` no longer tells, still
/// counts as an `error`, not a cancellation.
pub(crate) struct UnwindWatch<'a>(pub Option<&'a RequestState>);

impl Drop for UnwindWatch<'_> {
    #[inline]
    fn drop(&mut self) {
        if let (Some(state), true) = (self.0, std::thread::panicking()) {
            state.panicked();
        }
    }
}
