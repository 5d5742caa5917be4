//! What this thread is doing for a request: the request whose handler, stream or layer is being
//! polled (or dropped) here, and the backend call whose future, or the stream relaying whose
//! answer, is. Both are set for the length of one poll and restored after it (a request polled
//! inside another's poll, or a panic, leave no trace), so that what runs inside (a stage, a
//! `current::fail`, a usage report) finds its request and its call without being handed them.

use std::cell::Cell;
use std::ptr;

use super::state::RequestState;

thread_local! {
    /// The request whose handler or stream is being polled (or dropped) on this thread, or null.
    static CURRENT: Cell<*const RequestState> = const { Cell::new(std::ptr::null()) };
}

/// The current request's state, if the caller runs inside a request.
#[inline]
pub(crate) fn state() -> Option<&'static RequestState> {
    let current = CURRENT.try_with(Cell::get).ok()?;
    // SAFETY: the pointer is non-null only while `enter`'s guard lives, and whoever entered
    // (a `Run` or a `TrackedStream`) holds a counted reference to the state meanwhile: the slot
    // cannot go back to the pool. `'static` is the slot's own lifetime (pool slots are leaked);
    // callers take a counted reference before keeping it past the call, but for the guards of
    // an endpoint's own statements, which its `Run` outlives (`Owner::current`).
    unsafe { current.as_ref() }
}

/// Makes `state` current on this thread until the returned guard is dropped, which restores the
/// previous one (a request polled inside another's poll, or a panic, leave no trace).
#[inline]
pub(crate) fn enter(state: &RequestState) -> Entered {
    Entered(CURRENT.with(|current| current.replace(state)))
}

/// Restores the previous current request when dropped.
pub(crate) struct Entered(*const RequestState);

impl Entered {
    /// How many handles on `state`, the request entered, are on this thread for the length of
    /// the entry: the enterer's, and one more if `state` was current already (entered by an
    /// enterer polling this one, which holds its handle meanwhile).
    #[inline]
    pub fn handles_here(&self, state: &RequestState) -> u64 {
        1 + u64::from(ptr::eq(self.0, state))
    }
}

impl Drop for Entered {
    #[inline]
    fn drop(&mut self) {
        let _ = CURRENT.try_with(|current| current.set(self.0));
    }
}

/// A call of a request, as the thread that acts for it knows it: the state, the request's
/// generation (a pooled state reused by a later request is not this one), the record's index,
/// and whether a stream relays its answer; 16 bytes, saved and restored around each poll.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct CallRef {
    /// The state's address: kept as a number, so that a guard holding a `CallRef` stays `Send`.
    state: usize,
    generation: u32,
    /// The record's index, with [`RELAY`] for the call a stream relays.
    call: u32,
}

/// In [`CallRef::call`]: a stream relays the call's answer.
const RELAY: u32 = 1 << 31;

impl CallRef {
    pub const NONE: CallRef = CallRef {
        state: 0,
        generation: 0,
        call: 0,
    };

    #[inline]
    pub fn new(state: &RequestState, index: u32) -> Self {
        CallRef {
            state: ptr::from_ref(state) as usize,
            generation: state.generation(),
            call: index,
        }
    }

    /// The call a stream relays: current while the stream is polled, though it has ended.
    #[inline]
    pub fn relayed(state: &RequestState, index: u32) -> Self {
        CallRef {
            call: index | RELAY,
            ..CallRef::new(state, index)
        }
    }

    #[inline]
    fn relay(self) -> bool {
        self.call & RELAY != 0
    }

    /// Its index, if it is a call of `state`'s current request.
    #[inline]
    fn index_in(self, state: &RequestState) -> Option<u32> {
        (self.state == ptr::from_ref(state) as usize && self.generation == state.generation())
            .then_some(self.call & !RELAY)
    }

    /// The call a fact found now belongs to, if this one of `state`'s request: the call being
    /// made, or the one a stream being read relays. (A call a guard noted on a thread and ended
    /// on another is not current any more.)
    #[inline]
    pub fn of(self, state: &RequestState) -> Option<u32> {
        self.index_in(state)
            .filter(|&index| self.relay() || state.call(index).is_open())
    }

    /// The call a backend call opened now joins, if this is one of `state`'s request being made
    /// (not one a stream relays: a call made as a stream is read is a call of its own).
    #[inline]
    pub fn joined_by(self, state: &RequestState) -> Option<u32> {
        self.index_in(state)
            .filter(|&index| !self.relay() && state.call(index).is_open())
    }
}

thread_local! {
    /// The call whose future (or the stream relaying whose answer) is being polled on this
    /// thread, or a backend statement's call while it is evaluated.
    static CURRENT_CALL: Cell<CallRef> = const { Cell::new(CallRef::NONE) };
}

/// The call current on this thread.
#[inline]
pub(crate) fn current_call() -> CallRef {
    CURRENT_CALL.try_with(Cell::get).unwrap_or(CallRef::NONE)
}

/// Makes `call` current until the returned guard drops, which restores the one before.
#[inline]
pub(crate) fn enter_call(call: CallRef) -> EnteredCall {
    EnteredCall(
        CURRENT_CALL
            .try_with(|c| c.replace(call))
            .unwrap_or(CallRef::NONE),
    )
}

/// Restores the call current before [`enter_call`].
pub(crate) struct EnteredCall(CallRef);

impl EnteredCall {
    /// Leaves the entered call current: returns the one before, for the caller to restore.
    #[inline]
    pub fn keep(self) -> CallRef {
        let before = self.0;
        std::mem::forget(self);
        before
    }
}

impl Drop for EnteredCall {
    #[inline]
    fn drop(&mut self) {
        let _ = CURRENT_CALL.try_with(|c| c.set(self.0));
    }
}
