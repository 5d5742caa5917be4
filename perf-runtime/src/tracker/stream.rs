//! A response stream that carries its request past the handler's return.

use std::cell::Cell;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use pin_project_lite::pin_project;

use super::classify::Classify;
use super::on_thread::{self, enter_call, CallRef};
use super::pool::{HandOff, StateRef};
use super::state::RequestState;
use super::unwind::UnwindWatch;
use crate::clock::Clock;

thread_local! {
    /// The request of the tracked stream being polled on this thread: a tracked stream polled
    /// inside another of the same request (one stream marked twice) leaves the timing to it.
    static POLLING: Cell<*const RequestState> = const { Cell::new(std::ptr::null()) };
}

/// Marks `state`'s stream as being polled on this thread until dropped, which restores the
/// outer one: a poll that panics leaves no trace (a pooled state reused by a later request must
/// not look nested in its own stream).
struct Polling(*const RequestState);

impl Polling {
    #[inline]
    fn enter(state: &RequestState) -> Polling {
        Polling(POLLING.with(|polling| polling.replace(state)))
    }
}

impl Drop for Polling {
    #[inline]
    fn drop(&mut self) {
        let _ = POLLING.try_with(|polling| polling.set(self.0));
    }
}

/// How far a tracked stream has been read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// Not polled yet: dropped now, it says `cancelled` unless a stream that was read says
    /// otherwise (a fallback's first try, dropped unread, has no verdict on the answer).
    Unread,
    /// Polled since `start` (the stream's field, kept apart so that the tag fits beside its
    /// number).
    Read,
    /// Polled only from inside another tracked stream of the same request, which times it.
    Inner,
    /// Ended or dropped: it has let go of the request.
    Released,
}

pin_project! {
    /// A stream that holds a share of its request until it ends or is dropped.
    ///
    /// Made by [`PerformanceTracker::stream`](crate::PerformanceTracker::stream) or
    /// [`current::stream`](crate::current::stream) (`#[perf_stream]`). While it is polled or
    /// dropped its request is current, so stages, backend calls and
    /// [`current::fail`](crate::current::fail) inside it record into the request. Its streaming
    /// is timed from its first poll until the inner stream yields `None` or this stream is
    /// dropped (a client that hangs up), less any backend call made meanwhile, and recorded once,
    /// at the request's end.
    ///
    /// It relays the answer of the backend call that answered last before it was made (or, if
    /// none had, before its first item): that call's facts (an error reported while it is
    /// polled, the time to first token from the call's start, the usage its items report) go to
    /// that call.
    pub struct TrackedStream<S, C = ()> {
        #[pin]
        inner: Option<S>,
        state: StateRef,
        number: u32,
        // The call it relays, as its index + 1 (0: none yet).
        call: u32,
        reading: Reading,
        start: Clock,
        // What each item is (`()`: not looked at), and for a classifier the content seen so far.
        classify: C,
    }

    impl<S, C> PinnedDrop for TrackedStream<S, C> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            let current = on_thread::enter(this.state);
            this.inner.set(None);
            let call = this.call.checked_sub(1);
            let here = current.handles_here(this.state);
            release(this.state, *this.number, call, this.reading, *this.start, false, here);
        }
    }
}

impl<S> TrackedStream<S> {
    /// Holds the request's share `handed`.
    #[inline]
    pub(crate) fn new(inner: S, handed: HandOff) -> Self {
        Self::classified(inner, handed, ())
    }
}

impl<S, C> TrackedStream<S, C> {
    /// Holds the request's share `handed`; `classify` tells what each item is.
    #[inline]
    pub(crate) fn classified(inner: S, handed: HandOff, classify: C) -> Self {
        let HandOff { state, number } = handed;
        let call = state.last_answered().map_or(0, |index| index + 1);
        TrackedStream {
            inner: Some(inner),
            state,
            number,
            call,
            reading: Reading::Unread,
            start: Clock(0),
            classify,
        }
    }
}

/// How a stream's first poll reads it: from inside another tracked stream of its request
/// (`outer`), or as the request's streaming, from now. Not inlined, as [`release`] is not:
/// each item's poll stays small.
#[inline(never)]
fn first_poll(
    state: &RequestState,
    outer: *const RequestState,
    start: &mut Clock,
    here: u64,
) -> Reading {
    if std::ptr::eq(outer, state) {
        return Reading::Inner;
    }
    *start = Clock::now();
    // Relaying the provider's answer: a backend window until the stream lets go.
    state.open_stream(*start, state.access_with(here));
    Reading::Read
}

/// Lets go of the request, once: a stream that was read since `start` closes its window (and
/// `call`'s, the call it relays, ends no earlier), `here` of the request's handles on this
/// thread (its own, and an enterer's it is polled inside), and
/// says whether it was read to its end if it was read directly after the handler let go
/// (handed to the answer); a stream dropped in the handler, or never read, has no say.
// Not inlined: once per stream, it would weigh on every item's poll.
#[inline(never)]
fn release(
    state: &RequestState,
    number: u32,
    call: Option<u32>,
    reading: &mut Reading,
    start: Clock,
    to_the_end: bool,
    here: u64,
) {
    let access = state.access_with(here);
    let mut at = None;
    let verdict = match *reading {
        Reading::Released => return,
        Reading::Read => {
            let end = Clock::now();
            state.close_stream(start, end, access);
            // The call it relays lasts until its answer is read.
            if let Some(call) = call {
                state.call(call).finish(end, access);
            }
            at = Some(end);
            state.handler_gone().then_some(to_the_end)
        }
        Reading::Unread | Reading::Inner => None,
    };
    *reading = Reading::Released;
    if state.is_panicking() {
        state.panicked();
    }
    state.release_stream(number, verdict, at, access);
}

/// An `Err` item of a stream relaying `call`'s answer: if the stream is the answer (read after
/// its handler let go), the call broke off and the request failed. A stream read inside its
/// handler leaves both to the handler (it may retry, or report its own kind of failure).
#[inline(never)]
fn broke_off(state: &RequestState, call: Option<u32>) {
    if !state.handler_gone() {
        return;
    }
    if let Some(call) = call {
        state
            .call(call)
            .fail(crate::metrics::BackendErrorKind::BrokenOff);
    }
    state.fail();
}

impl<S: Stream, C: Classify<S::Item>> Stream for TrackedStream<S, C> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let mut this = self.project();
        let state: &RequestState = this.state;
        let current = on_thread::enter(state);
        let here = current.handles_here(state);
        let polling = Polling::enter(state);
        let outer = polling.0;
        if let Reading::Unread = this.reading {
            *this.reading = first_poll(state, outer, this.start, here);
        }
        let call = this.call.checked_sub(1);
        let relayed = call.map(|index| enter_call(CallRef::relayed(state, index)));
        let watch = UnwindWatch::new(state);
        let polled = match this.inner.as_mut().as_pin_mut() {
            Some(inner) => inner.poll_next(cx),
            None => Poll::Ready(None),
        };
        watch.passed();
        drop(relayed);
        drop(polling);
        if let Poll::Ready(Some(item)) = &polled {
            if this.classify.failed(item) {
                broke_off(state, call);
            }
            if let Some(chunk) = this.classify.classify(item) {
                if let Some(gaps) = this.classify.gaps() {
                    // A call made as the stream is read (a provider called lazily).
                    if *this.call == 0 {
                        *this.call = state.last_answered().map_or(0, |index| index + 1);
                    }
                    let call = this.call.checked_sub(1);
                    state.chunk(call, *this.number, chunk, &mut gaps.0);
                }
            }
        }
        if let Poll::Ready(None) = polled {
            this.inner.set(None);
            // The gaps still kept go to their series now (a dropped stream's, when it drops).
            if let Some(gaps) = this.classify.gaps() {
                gaps.0.record();
            }
            let call = this.call.checked_sub(1);
            release(
                state,
                *this.number,
                call,
                this.reading,
                *this.start,
                true,
                here,
            );
        }
        polled
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.as_ref().map_or((0, Some(0)), Stream::size_hint)
    }
}
