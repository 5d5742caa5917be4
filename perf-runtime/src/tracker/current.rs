//! The current request: the one a `#[perf_endpoint]` handler (or [`PerformanceTracker::run`])
//! makes visible to everything it awaits, nested functions in any module included, and that a
//! tracked stream makes current again while it is read or dropped, after the handler returned.
//!
//! These functions are what the macros expand to, and can be called by hand the same way. Outside
//! any request (a `#[perf_stage]` function called from a background job, or from a task spawned
//! by the handler, which does not inherit the request) they still time their work, under
//! `endpoint="none"`, and never panic.

use futures_core::Stream;

use super::classify::ChunksBy;
use super::guards::{BackendGuard, StageGuard};
use super::handoff::unscoped;
pub use super::handoff::UNSCOPED_ENDPOINT;
use super::on_thread::state;
use super::owner::Owner;
use super::performance_tracker::PerformanceTracker;
use super::pool::{HandOff, StateRef};
use super::state::RequestState;
use super::stream::TrackedStream;
use crate::chunk::{Chunk, Usage};
use crate::clock::Clock;
use crate::metrics::BackendErrorKind;
use crate::stage::{Stage, StageName};
use crate::trace::TraceId;

/// Calls `f` with a tracker of the current request, if the caller runs inside a request. The
/// tracker is a view: dropping it, or its [`record_percentages`](PerformanceTracker::record_percentages),
/// neither ends nor cancels the request (who owns the request ends it).
pub fn with<R>(f: impl FnOnce(&PerformanceTracker) -> R) -> Option<R> {
    let state = state()?;
    let view = PerformanceTracker::view(state.counted());
    Some(f(&view))
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
    stage_at(stage, Clock::now, false)
}

/// [`stage`], begun at the reading `start` gives; `in_body`: see [`Owner::current`].
#[inline]
pub(crate) fn stage_at(
    stage: &StageName,
    start: fn() -> Clock,
    in_body: bool,
) -> StageGuard<'static> {
    let stage: Stage = stage.get();
    match state() {
        Some(state) => {
            let (owner, access) = Owner::current(state, in_body);
            StageGuard::begin_at(owner, access, stage, start)
        }
        None => StageGuard::detached(unscoped(), stage, start),
    }
}

/// Starts timing a backend call of the current request; see
/// [`PerformanceTracker::backend_request`].
#[inline]
pub fn backend_request(provider: impl AsRef<str>, model: impl AsRef<str>) -> BackendGuard<'static> {
    backend_request_at(provider.as_ref(), model.as_ref(), Clock::now, false)
}

/// [`backend_request`], begun at the reading `start` gives; `in_body`: see [`Owner::current`].
#[inline]
pub(crate) fn backend_request_at(
    provider: &str,
    model: &str,
    start: fn() -> Clock,
    in_body: bool,
) -> BackendGuard<'static> {
    match state() {
        Some(state) => {
            let (owner, access) = Owner::current(state, in_body);
            BackendGuard::begin_at(owner, access, provider, model, start)
        }
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

/// What `make` builds with a share of the current request, or outside one, with a request of
/// its own under `endpoint="none"` whose handler lets go at once.
pub(crate) fn handed<T>(make: impl FnOnce(HandOff) -> T) -> T {
    match state() {
        Some(state) => make(state.hand_off()),
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
