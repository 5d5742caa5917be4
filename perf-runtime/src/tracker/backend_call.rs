//! A `#[perf_backend]` call as a future: its call is current on the thread for each of its
//! polls, so the facts found inside it (an error, a usage) are its own, under `select!` and
//! `join!` too; a request other than its own that polls it (a call shared by coalesced
//! requests) is waiting for the provider as well.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use super::access::Access;
use super::guards::BackendGuard;
use super::on_thread::{self, enter_call};
use super::pool::StateRef;
use super::state::RequestState;
use crate::clock::Clock;

pin_project! {
    /// A backend call's future: what `#[perf_backend]` on a fn expands to. Not for use by hand:
    /// write `#[perf_backend]`, or hold a [`BackendGuard`].
    #[doc(hidden)]
    pub struct BackendCall<F, C> {
        #[pin]
        future: F,
        guard: Option<BackendGuard<'static>>,
        succeeded: Option<C>,
        guest: Option<Guest>,
    }
}

impl<F, C> BackendCall<F, C> {
    pub(crate) fn new(guard: BackendGuard<'static>, future: F, succeeded: C) -> Self {
        BackendCall {
            future,
            guard: Some(guard.unscoped()),
            succeeded: Some(succeeded),
            guest: None,
        }
    }
}

impl<F: Future, C: FnOnce(&F::Output) -> bool> Future for BackendCall<F, C> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let Some(guard) = this.guard.as_mut() else {
            return Poll::Pending;
        };
        let call = guard.call_ref();
        if this.guest.is_none() {
            if let Some(waiting) = on_thread::state() {
                if call.of(waiting).is_none() && !guard.is_detached() {
                    *this.guest = Some(Guest::open(waiting, guard));
                }
            }
        }
        let entered = enter_call(call);
        let out = std::task::ready!(this.future.poll(cx));
        let answered = this.succeeded.take().is_none_or(|ok| ok(&out));
        if answered {
            guard.set_answered();
        }
        if let Some(guest) = this.guest.take() {
            guest.close(answered);
        }
        *this.guard = None;
        drop(entered);
        Poll::Ready(out)
    }
}

/// Another request waiting on this call (it polled it): the call is one of its backend
/// calls too, from the first poll it made until the call ends.
struct Guest {
    state: StateRef,
    call: u32,
    start: Clock,
    closed: bool,
}

impl Guest {
    fn open(waiting: &'static RequestState, guard: &BackendGuard<'_>) -> Self {
        let set = guard.series_in(waiting.endpoint());
        let start = Clock::now();
        let call = waiting.open_call(start, set, Access::Shared);
        Guest {
            state: waiting.counted(),
            call,
            start,
            closed: false,
        }
    }

    fn close(mut self, answered: bool) {
        let end = Clock::now();
        if answered {
            let set = self.state.call(self.call).set();
            let trace = Some(self.state.trace_id());
            set.ttfb
                .observe_traced(self.start.ticks_until(end), trace, end);
        }
        self.state
            .close_call(self.call, end, answered, Access::Shared);
        self.closed = true;
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        if !self.closed {
            self.state
                .close_call(self.call, Clock::now(), false, Access::Shared);
        }
    }
}
