//! The seam between the macros and the runtime: every item the `#[perf_*]` expansions name,
//! and nothing else, reached as `perf_runtime::__private::*`. Not a public API: it may change in
//! any release.

pub use crate::metrics::known::KnownEndpoint;
pub use crate::tracker::classify::{ChunksBy, Classify, Gaps, Probed};
pub use crate::tracker::BackendCall;
pub use inventory;

use std::future::Future;

use futures_core::Stream;

use crate::chunk::Chunk;
use crate::clock::Clock;
use crate::stage::StageName;
use crate::tracker::after_last_close;
use crate::tracker::current;
use crate::tracker::{BackendGuard, PerformanceTracker, Run, StageGuard, TrackedStream};
use crate::Endpoint;

/// A `#[perf_endpoint]` handler's body run as its request: a new request of `endpoint`, or,
/// called inside a request (the layer's exchange, or another endpoint's), part of that one.
#[inline]
pub fn endpoint<F, C>(endpoint: &Endpoint, body: F, succeeded: C) -> Run<F, C>
where
    F: Future,
    C: FnOnce(&F::Output) -> bool,
{
    match crate::tracker::on_thread::state() {
        Some(state) => Run::joined(state, body, succeeded),
        None => PerformanceTracker::at(endpoint).run_checked(body, succeeded),
    }
}

/// Wraps a value to ask, by autoref specialization, whether it means success: an `Err` does not,
/// any other value does. `#[perf_backend]` asks whether the backend answered, `#[perf_endpoint]`
/// whether the handler failed.
pub struct Success<'a, T>(pub &'a T);

/// An `Err` is a failure.
pub trait ResultSuccess {
    /// Whether the value means success.
    fn succeeded(&self) -> bool;
}

impl<T, E> ResultSuccess for Success<'_, Result<T, E>> {
    fn succeeded(&self) -> bool {
        self.0.is_ok()
    }
}

/// Any other value is a success.
pub trait AnySuccess {
    /// Whether the value means success.
    fn succeeded(&self) -> bool;
}

impl<T> AnySuccess for &Success<'_, T> {
    fn succeeded(&self) -> bool {
        true
    }
}

/// What `#[perf_stream(chunks = f)]` becomes with the instrumentation compiled out: `f` is still
/// checked against the stream's items, and the stream is returned as it was.
pub fn check_chunks<S, F>(stream: S, _chunks: F) -> S
where
    S: futures_core::Stream,
    F: FnMut(&S::Item) -> crate::Chunk,
{
    stream
}

/// [`stage`](crate::current::stage) for what the macros time: `follows`, a statement that
/// directly follows a timed one, begins where the stage or backend call closed last on this
/// thread ended (one clock reading where one ends and the next begins); `in_body`, a statement
/// of an endpoint's own body (not in a closure or `async` block inside it), borrows the request
/// instead of counting a share of it, since the endpoint's `Run` outlives it.
#[inline]
pub fn open_stage(stage: &StageName, follows: bool, in_body: bool) -> StageGuard<'static> {
    current::stage_at(stage, opened_at(follows), in_body)
}

/// [`backend_request`](crate::current::backend_request) for what the macros time; `follows`
/// and `in_body` as in [`open_stage`].
#[inline]
pub fn open_backend_request(
    provider: impl AsRef<str>,
    model: impl AsRef<str>,
    follows: bool,
    in_body: bool,
) -> BackendGuard<'static> {
    let (provider, model) = (provider.as_ref(), model.as_ref());
    current::backend_request_at(provider, model, opened_at(follows), in_body)
}

/// Where a timed statement begins: at the last close's reading if it `follows` one, else now.
#[inline(always)]
fn opened_at(follows: bool) -> fn() -> Clock {
    if follows {
        after_last_close
    } else {
        Clock::now
    }
}

/// A `#[perf_backend]` fn's body, `future`, timed as the backend call `guard` opened (before
/// the body was made: the body may move what the call's `provider` and `model` borrow):
/// answered when `succeeded` says its output is a success. What the attribute expands to.
#[inline]
pub fn backend_call<F, C>(
    guard: BackendGuard<'static>,
    future: F,
    succeeded: C,
) -> BackendCall<F, C>
where
    F: Future,
    C: FnOnce(&F::Output) -> bool,
{
    BackendCall::new(guard, future, succeeded)
}

/// [`current::stream`], with `failed` telling an item that is a failure (an `Err`: the provider broke
/// off): what `#[perf_stream]` expands to.
pub fn stream_probed<S, P>(stream: S, failed: P) -> TrackedStream<S, Probed<(), P>>
where
    S: Stream,
    P: FnMut(&S::Item) -> bool,
{
    current::handed(|state| TrackedStream::classified(stream, state, Probed((), failed)))
}

/// [`current::stream_chunks`] with `failed` as in [`stream_probed`].
pub fn stream_chunks_probed<S, F, P>(
    stream: S,
    chunks: F,
    failed: P,
) -> TrackedStream<S, Probed<ChunksBy<F>, P>>
where
    S: Stream,
    F: FnMut(&S::Item) -> Chunk,
    P: FnMut(&S::Item) -> bool,
{
    current::handed(|state| {
        TrackedStream::classified(stream, state, Probed(ChunksBy::new(chunks), failed))
    })
}
