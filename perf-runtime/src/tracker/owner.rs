//! The request a guard adds its time to, and what its closing reads from it: the guards
//! (`guards.rs`) hold an [`Owner`] and close through [`closing`].

use super::access::Access;
use super::handoff::closed_at;
use super::on_thread;
use super::pool::StateRef;
use super::state::RequestState;
use crate::clock::Clock;
use crate::trace::TraceId;

/// What a guard closing needs: its end (the reading taken by hand, if it was ended by hand and
/// dropped right after, else now; noted as this thread's last close), the time it ran in clock
/// ticks, and its request with that request's trace id, if it has one.
pub(super) struct Closing<'s> {
    pub end: Clock,
    pub ticks: u64,
    pub state: Option<&'s RequestState>,
    pub trace: Option<TraceId>,
    pub access: Access,
}

/// A guard's closing, begun at `start` and ended at `end` (0: not ended by hand, so now).
#[inline]
pub(super) fn closing<'s>(owner: &'s Owner<'_>, start: Clock, end: Clock) -> Closing<'s> {
    let end = if end.0 != 0 { end } else { Clock::now() };
    closed_at(end);
    let state = owner.state();
    Closing {
        end,
        ticks: start.ticks_until(end),
        state,
        trace: state.map(RequestState::trace_id),
        access: owner.access(),
    }
}

/// The request a guard adds its time to when it is dropped.
pub(crate) enum Owner<'a> {
    /// A tracker's request, borrowed with the tracker (by a scoped thread, maybe).
    Borrowed(&'a RequestState),
    /// The request of the endpoint whose own statement the guard times, borrowed: see
    /// [`Owner::current`].
    Body(&'static RequestState),
    /// The request that was current when the guard opened (the `#[perf_*]` macros), held by
    /// count: a guard moved to another task or request still closes on its own.
    Held(StateRef),
    /// No request: the guard only observes its histograms.
    Detached,
}

impl Owner<'static> {
    /// The request current on this thread, `state`: held by count, or, `in_body`, borrowed;
    /// and how the guard opens on it.
    ///
    /// `in_body` is for a guard the macros open in a statement of an endpoint's own body (not
    /// in a closure or an `async` block inside it, which could be sent elsewhere): it lives in
    /// the body's future, which the endpoint's [`Run`](super::Run) drops before letting go of
    /// its own counted share of the request (on completion, and first thing in its drop), so
    /// the request's slot cannot go back to the pool while the guard lives, and the guard need
    /// not count. Two locked operations fewer per guard. It is opened and closed in the `Run`'s
    /// polls, on the thread that polls it: while the `Run`'s handle is the request's only one,
    /// the guard changes the request alone ([`Access::Alone`]).
    ///
    /// A guard that counts opens alone too where the current request's enterer (whose handle
    /// is on this thread) held it alone: the guard's new handle is on this thread as well. It
    /// closes alone where the request is current on its thread again and the two handles are
    /// still all it has ([`access`](Self::access)).
    #[inline]
    pub(crate) fn current(state: &'static RequestState, in_body: bool) -> (Self, Access) {
        let access = state.access();
        let owner = if in_body {
            Owner::Body(state)
        } else {
            Owner::Held(state.counted())
        };
        (owner, access)
    }
}

impl<'a> Owner<'a> {
    /// The same request, for a guard that follows this one's.
    pub(super) fn share(&self) -> Owner<'a> {
        match self {
            Owner::Borrowed(state) => Owner::Borrowed(state),
            Owner::Body(state) => Owner::Body(state),
            Owner::Held(state) => Owner::Held(state.clone()),
            Owner::Detached => Owner::Detached,
        }
    }

    /// Its request, if it has one.
    #[inline]
    pub(super) fn state(&self) -> Option<&RequestState> {
        match self {
            Owner::Borrowed(state) => Some(state),
            Owner::Body(state) => Some(state),
            Owner::Held(state) => Some(state),
            Owner::Detached => None,
        }
    }

    /// How the guard changes its request now: alone only for an endpoint's own statement
    /// while the endpoint's handle is the request's only one (a held guard's handle is one
    /// more; a tracker's borrowed request may be shared by scoped threads).
    #[inline]
    pub(super) fn access(&self) -> Access {
        match self {
            Owner::Body(state) => state.access(),
            // With its enterer's, two handles here if the request is current on this thread.
            Owner::Held(state) => match on_thread::state() {
                Some(current) if std::ptr::eq(current, &**state) => state.access_with(2),
                _ => Access::Shared,
            },
            Owner::Borrowed(_) | Owner::Detached => Access::Shared,
        }
    }

    /// Lets go of a held handle, as `access` (the guard's closing) allows; the guard is done
    /// with its request.
    #[inline]
    pub(super) fn let_go(&mut self, access: Access) {
        // Only a held owner is taken apart: the others need no store on the way out.
        if matches!(self, Owner::Held(_)) {
            if let Owner::Held(state) = std::mem::replace(self, Owner::Detached) {
                state.let_go(access);
            }
        }
    }
}
