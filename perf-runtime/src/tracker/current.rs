//! The current request: the one a `#[perf_endpoint]` handler (or [`PerformanceTracker::run`])
//! makes visible to everything it awaits, nested functions in any module included, and that a
//! tracked stream makes current again while it is read or dropped, after the handler returned.
//!
//! These functions are what the macros expand to, and can be called by hand the same way. Outside
//! any request (a `#[perf_stage]` function called from a background job, or from a task spawned
//! by the handler, which does not inherit the request) they still time their work, under
//! `endpoint="none"`, and never panic.

use std::cell::Cell;

use futures_core::Stream;

use std::future::Future;

use super::backend_call::BackendCall;
use super::chunks::{Chunk, ChunksBy, Probed, Usage};
use super::guards::{after_last_close, BackendGuard, Owner, StageGuard};
use super::state::{RequestState, StateRef};
use super::{PerformanceTracker, TrackedStream};
use crate::clock::Clock;
use crate::metrics::{BackendErrorKind, Endpoint, EndpointMetrics};
use crate::stage::{Stage, StageName};
use crate::trace::TraceId;

thread_local! {
    /// The request whose handler or stream is being polled (or dropped) on this thread, or null.
    static CURRENT: Cell<*const RequestState> = const { Cell::new(std::ptr::null()) };
}

/// The `endpoint` label of work done outside any request.
pub const UNSCOPED_ENDPOINT: &str = "none";

pub(crate) fn unscoped() -> &'static EndpointMetrics {
    static NONE: Endpoint = Endpoint::new(UNSCOPED_ENDPOINT);
    NONE.metrics()
}

/// The current request's state, if the caller runs inside a request.
#[inline]
pub(crate) fn state() -> Option<&'static RequestState> {
    let current = CURRENT.try_with(Cell::get).ok()?;
    // SAFETY: the pointer is non-null only while `enter`'s guard lives, and whoever entered
    // (a `Run` or a `TrackedStream`) holds a counted reference to the state meanwhile: the slot
    // cannot go back to the pool. `'static` is the slot's own lifetime (pool slots are leaked);
    // callers take a counted reference before keeping it past the call.
    unsafe { current.as_ref() }
}

/// Calls `f` with a tracker of the current request, if the caller runs inside a request. The
/// tracker is a view: dropping it, or its [`record_percentages`](PerformanceTracker::record_percentages),
/// neither ends nor cancels the request (who owns the request ends it).
pub fn with<R>(f: impl FnOnce(&PerformanceTracker) -> R) -> Option<R> {
    let state = state()?;
    let view = PerformanceTracker::view(state.counted());
    Some(f(&view))
}

/// Makes `state` current on this thread until the returned guard is dropped, which restores the
/// previous one (a request polled inside another's poll, or a panic, leave no trace).
#[inline]
pub(crate) fn enter(state: &RequestState) -> Entered {
    Entered(CURRENT.with(|current| current.replace(state)))
}

/// Restores the previous current request when dropped.
pub(crate) struct Entered(*const RequestState);

impl Drop for Entered {
    #[inline]
    fn drop(&mut self) {
        let _ = CURRENT.try_with(|current| current.set(self.0));
    }
}

/// Marks the current request as failed: it ends as `requests_total{outcome="error"}`, whoever
/// ends it. Call it from a handler, or from inside a tracked stream (a provider that broke off
/// mid-answer). Outside a request, does nothing.
#[inline]
pub fn fail() {
    if let Some(state) = state() {
        state.fail();
    }
}

/// Counts a failure of a backend call of the current request in
/// `backend_errors_total{provider, model, endpoint, kind}`, once per call: call it where the
/// failure is found, inside the `#[perf_backend]` call (a timeout, a refused connection, an error
/// status: it is that call's, under `select!` and `join!` too) or in the stream that relays its
/// answer (a provider that broke off: the call that stream relays). Elsewhere it is the call
/// started last. Outside a request, or before any backend call, does nothing. It does not fail
/// the request: return an `Err` or call [`fail`].
pub fn backend_error(kind: BackendErrorKind) {
    if let Some(state) = state() {
        state.backend_error(kind);
    }
}

/// Starts timing `stage` in the current request; see [`PerformanceTracker::stage`].
#[inline]
pub fn stage(stage: &StageName) -> StageGuard<'static> {
    stage_at(stage, Clock::now)
}

/// [`stage`], begun where the stage or backend call closed last on this thread ended: what
/// the macros expand a statement to that directly follows a timed statement (one clock reading
/// where one ends and the next begins). Not for calling by hand.
#[doc(hidden)]
#[inline]
pub fn next_stage(stage: &StageName) -> StageGuard<'static> {
    stage_at(stage, after_last_close)
}

#[inline]
fn stage_at(stage: &StageName, start: fn() -> Clock) -> StageGuard<'static> {
    let stage: Stage = stage.get();
    match state() {
        Some(state) => StageGuard::begin_at(Owner::Held(state.counted()), stage, start),
        None => StageGuard::detached(unscoped(), stage, start),
    }
}

/// Starts timing a backend call of the current request; see
/// [`PerformanceTracker::backend_request`].
#[inline]
pub fn backend_request(provider: impl AsRef<str>, model: impl AsRef<str>) -> BackendGuard<'static> {
    backend_request_at(provider.as_ref(), model.as_ref(), Clock::now)
}

/// [`backend_request`], begun where the stage or backend call closed last on this thread ended
/// (see [`next_stage`]). Not for calling by hand.
#[doc(hidden)]
#[inline]
pub fn next_backend_request(
    provider: impl AsRef<str>,
    model: impl AsRef<str>,
) -> BackendGuard<'static> {
    backend_request_at(provider.as_ref(), model.as_ref(), after_last_close)
}

#[inline]
fn backend_request_at(provider: &str, model: &str, start: fn() -> Clock) -> BackendGuard<'static> {
    match state() {
        Some(state) => BackendGuard::begin_at(Owner::Held(state.counted()), provider, model, start),
        None => BackendGuard::detached(unscoped(), provider, model, start),
    }
}

/// Hands the current request to `stream`: the request ends once the handler has returned and
/// this stream (and any other handed the request) has ended or been dropped; the stream makes
/// the request current while it is read. See [`PerformanceTracker::stream`]. Outside a request,
/// the stream is a request of its own under `endpoint="none"`.
pub fn stream<S: Stream>(stream: S) -> TrackedStream<S> {
    handed(|state| TrackedStream::new(stream, state))
}

/// A `#[perf_backend]` fn's body, `future`, timed as the backend call `guard` opened (before
/// the body was made: the body may move what the call's `provider` and `model` borrow):
/// answered when `succeeded` says its output is a success. What the attribute expands to; not
/// for calling by hand.
#[doc(hidden)]
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

/// [`stream`], with `failed` telling an item that is a failure (an `Err`: the provider broke
/// off): what `#[perf_stream]` expands to. Not for calling by hand.
#[doc(hidden)]
pub fn stream_probed<S, P>(stream: S, failed: P) -> TrackedStream<S, Probed<(), P>>
where
    S: Stream,
    P: FnMut(&S::Item) -> bool,
{
    handed(|state| TrackedStream::classified(stream, state, Probed((), failed)))
}

/// [`stream_chunks`] with `failed` as in [`stream_probed`]. Not for calling by hand.
#[doc(hidden)]
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
    handed(|state| TrackedStream::classified(stream, state, Probed(ChunksBy::new(chunks), failed)))
}

/// What `make` builds with a share of the current request, or outside one, with a request of
/// its own under `endpoint="none"` whose handler lets go at once.
fn handed<T>(make: impl FnOnce(StateRef) -> T) -> T {
    match state() {
        Some(state) => make(state.counted()),
        None => StateRef::new(unscoped()).hand_over(make),
    }
}

/// [`stream`], with `chunks` telling what each item is (what `#[perf_stream(chunks = f)]`
/// expands to): the stream records `backend_ttft_seconds` at its first content chunk,
/// `backend_chunk_gap_seconds` between content chunks, and `backend_tokens_total` for the usage
/// a chunk reports, under the labels of the backend that answered.
pub fn stream_chunks<S, F>(stream: S, chunks: F) -> TrackedStream<S, ChunksBy<F>>
where
    S: Stream,
    F: FnMut(&S::Item) -> Chunk,
{
    handed(|state| TrackedStream::classified(stream, state, ChunksBy::new(chunks)))
}

/// Sets the provider's token `usage` (from a non-streamed answer's body) on a backend call of
/// the current request: the `#[perf_backend]` call it is found in, else the call that answered
/// last. Usage is a fact of the call: reported twice, it is counted once
/// (`backend_tokens_total` grows by what exceeds the counts seen so far). Outside a request, or
/// before any backend call, does nothing.
pub fn usage(usage: Usage) {
    if let Some(state) = state() {
        state.usage(usage);
    }
}

/// Makes the current request `tenant`'s (from its API key, say): when it ends, it is counted in
/// `tenant_requests_total{tenant, endpoint, outcome}`, and its calls' tokens and cost in
/// `tenant_tokens_total{tenant, type}` and `tenant_cost_usd_total{tenant}`. The label is
/// bounded like `model`: cut to 128 bytes, `other` past the tenant cap or off the allow-list
/// ([`MetricsBuilder::tenant_cap`](crate::MetricsBuilder::tenant_cap)), and a tenant spelled
/// `other` recorded as `other_`. Set again, the latest tenant counts. Outside a request, does
/// nothing. A request with no tenant is in none of the tenant families.
///
/// ```
/// use perf_runtime::{current, perf_endpoint};
///
/// #[perf_endpoint("/v1/chat/completions")]
/// async fn chat(api_key: &str) -> String {
///     current::set_tenant(if api_key == "sk-acme" { "acme" } else { "guest" });
///     current::tenant().unwrap().to_owned()
/// }
/// # assert_eq!(futures_util::FutureExt::now_or_never(chat("sk-acme")).unwrap(), "acme");
/// ```
pub fn set_tenant(tenant: &str) {
    if let Some(state) = state() {
        state.set_tenant(tenant);
    }
}

/// The current request's `tenant` label (after the budget: `other` past the cap), if it has
/// one.
pub fn tenant() -> Option<&'static str> {
    state().and_then(RequestState::tenant)
}

/// Sets `backend_ratelimit_remaining`, `backend_ratelimit_limit` and
/// `backend_ratelimit_reset_seconds` `{provider, model, resource}` to what a provider's answer
/// said of its limits ([`RateLimits::from_headers`]), for the provider and model of the backend
/// call it belongs to: the `#[perf_backend]` call it is found in, else the call that answered
/// last. The latest answer's word stands. Outside a request, or before any call, does nothing.
///
/// [`RateLimits::from_headers`]: crate::ratelimits::RateLimits::from_headers
pub fn rate_limits(limits: &crate::ratelimits::RateLimits) {
    if let Some(state) = state() {
        state.rate_limits(limits);
    }
}

/// The value of a `Server-Timing` response header for the current request so far: one entry per
/// stage that ran and one for the backend, in milliseconds
/// (`request_parsing;dur=0.041, backend;dur=501.700`); `None` outside a request.
pub fn server_timing() -> Option<String> {
    state().map(RequestState::server_timing)
}

/// The current request's trace id: the one given to [`set_trace_id`], else the random one it
/// was given when it started. `None` outside a request.
pub fn trace_id() -> Option<TraceId> {
    state().map(RequestState::trace_id)
}

/// Gives the current request the trace id of the client's W3C `traceparent` header (see
/// [`TraceId::from_traceparent`]): the exemplars of the buckets it lands in carry it from now
/// on. Call it first thing in the handler. Outside a request, does nothing.
///
/// ```
/// use perf_runtime::{current, perf_endpoint, TraceId};
///
/// #[perf_endpoint("/v1/chat/completions")]
/// async fn chat(traceparent: Option<&str>) -> String {
///     if let Some(id) = traceparent.and_then(TraceId::from_traceparent) {
///         current::set_trace_id(id);
///     }
///     current::trace_id().unwrap().to_string()
/// }
/// # let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
/// # let id = futures_util::FutureExt::now_or_never(chat(Some(header))).unwrap();
/// # assert_eq!(id, "4bf92f3577b34da6a3ce929d0e0e4736");
/// ```
pub fn set_trace_id(id: TraceId) {
    if let Some(state) = state() {
        state.set_trace_id(id);
    }
}
