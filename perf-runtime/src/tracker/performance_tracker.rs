//! [`PerformanceTracker`]: the runtime API of one request, what the macros expand to and what a
//! handler written by hand holds.

use std::future::Future;

use super::classify::ChunksBy;
use super::guards::{BackendGuard, StageGuard, StreamingGuard};
use super::handler::HandlerShare;
use super::owner::Owner;
use super::pool::StateRef;
use super::run::Run;
use super::state::{HandlerExit, RequestState};
use super::stream::TrackedStream;
use crate::chunk::{Chunk, Usage};
use crate::metrics::{BackendErrorKind, Endpoint, EndpointMetrics, Metrics};
use crate::stage::Stage;
use crate::trace::TraceId;

/// Times one request: its stages, its backend calls, its streaming, and the split between them.
///
/// Every histogram observation is made by a guard when it is dropped, so a stage left through
/// `?`, a panic or a cancelled future still records the time that really ran, exactly once. The
/// request's phases, for the percentages and the overhead, are unions of intervals (parallel
/// work counts its wall time once):
///
/// * **front end**: the stages' union before the first backend call started (a stage around a
///   backend call is not front-end time while the call runs);
/// * **backend**: the union of the [`backend_request`](Self::backend_request) guards' windows,
///   answered or not (a failed attempt before a fallback is time the request waited too);
/// * **streaming**: the union of [`streaming`](Self::streaming) guards, tracked streams and
///   backend calls, less the backend's.
///
/// A tracker is the handler's share of its request. The request **ends** when the handler lets
/// go of it ([`record_percentages`](Self::record_percentages), the end of the future given to
/// [`run`](Self::run), the drop of a tracker from
/// [`track_request_stages`](crate::track_request_stages)) and every stream it was handed to has
/// ended or been dropped. At its end, exactly once, the request counts
/// `requests_total{endpoint, outcome}`, records `frontend_processing_seconds` (if the handler
/// returned and a front-end stage ran) and the streaming (if a stream was read), and sets
/// `stage_percentage` if it completed and a backend answered.
///
/// Its outcome follows [the outcome rule](crate::metrics#what-a-request-is); [`fail`](Self::fail)
/// (which the macros call when the handler returns an `Err`) makes it `error`.
///
/// A tracker is `Send + Sync + 'static`: it can be moved into a stream or future that outlives
/// the handler, and its guards can be held across `.await` in a `Send` future. Creating one
/// allocates nothing once warm; with an [`Endpoint`] static, it takes no lock either.
pub struct PerformanceTracker {
    share: HandlerShare,
}

impl PerformanceTracker {
    /// A tracker for `endpoint` in the global metrics.
    ///
    /// Finds the endpoint's handles in a per-thread cache (the first time, under a read lock,
    /// counted against the endpoint cap); an [`Endpoint`] static and [`at`](Self::at) skip both.
    pub fn new(endpoint: &str) -> Self {
        Self::with_metrics(Metrics::global(), endpoint)
    }

    /// A tracker for `endpoint` recording into `metrics` instead of the global ones.
    pub fn with_metrics(metrics: &'static Metrics, endpoint: &str) -> Self {
        Self::for_endpoint(metrics.endpoint(endpoint))
    }

    /// A tracker for a pre-resolved endpoint: no lock, no hash.
    #[inline]
    pub fn at(endpoint: &Endpoint) -> Self {
        Self::for_endpoint(endpoint.metrics())
    }

    /// A tracker for resolved endpoint handles.
    #[inline]
    pub fn for_endpoint(endpoint: &'static EndpointMetrics) -> Self {
        PerformanceTracker {
            share: HandlerShare::new(StateRef::new(endpoint)),
        }
    }

    pub(crate) fn view(state: StateRef) -> Self {
        PerformanceTracker {
            share: HandlerShare::view(state),
        }
    }

    #[inline]
    pub(crate) fn state(&self) -> &RequestState {
        self.share.state()
    }

    /// The `endpoint` label of this request.
    pub fn endpoint(&self) -> &str {
        self.state().endpoint().path()
    }

    /// Starts timing `stage`; the returned guard records
    /// `request_stage_duration_seconds{stage, endpoint}` when dropped.
    #[inline]
    pub fn stage(&self, stage: impl Into<Stage>) -> StageGuard<'_> {
        StageGuard::begin(Owner::Borrowed(self.state()), stage.into())
    }

    /// Runs `fut` as `stage`: the future form of [`stage`](Self::stage).
    pub async fn time<F: Future>(&self, stage: impl Into<Stage>, fut: F) -> F::Output {
        let _stage = self.stage(stage);
        fut.await
    }

    /// Starts timing a call to the LLM provider. Call [`BackendGuard::first_byte`] when its
    /// first byte arrives: that records `backend_ttfb_seconds{provider, model, endpoint}`. The
    /// `backend_fetch` stage is recorded when the guard goes, answered or not; a guard dropped
    /// unanswered (an error, a panic, a cancelled request) records no TTFB.
    ///
    /// `model` usually comes from the client: it is cut to
    /// [`MAX_LABEL_LEN`](crate::metrics::MAX_LABEL_LEN) bytes and counted against the label
    /// cap (see [`MetricsBuilder`](crate::MetricsBuilder)).
    #[inline]
    pub fn backend_request(&self, provider: &str, model: &str) -> BackendGuard<'_> {
        BackendGuard::begin(Owner::Borrowed(self.state()), provider, model)
    }

    /// Starts timing the streaming of the answer. Recorded at the request's end, in
    /// `streaming_duration_seconds{provider, model, endpoint}` (labelled with the last backend
    /// that answered, or `unknown`) and the `stream_processing` stage, once for all the
    /// request's streaming.
    pub fn streaming(&self) -> StreamingGuard<'_> {
        StreamingGuard::begin(self.state())
    }

    /// Hands the request to `stream`: the handler's share goes to it, so the request ends when
    /// the stream ends or is dropped. Streaming is timed from its first poll.
    #[inline]
    pub fn stream<S>(self, stream: S) -> TrackedStream<S> {
        self.share
            .state_ref()
            .hand_over(|state| TrackedStream::new(stream, state))
    }

    /// [`stream`](Self::stream), with `chunks` telling what each item is: the stream then
    /// records the time to first token, the gaps between content chunks and the token usage it
    /// finds (see [`Chunk`]).
    pub fn stream_chunks<S, F>(self, stream: S, chunks: F) -> TrackedStream<S, ChunksBy<F>>
    where
        S: futures_core::Stream,
        F: FnMut(&S::Item) -> Chunk,
    {
        self.share
            .state_ref()
            .hand_over(|state| TrackedStream::classified(stream, state, ChunksBy::new(chunks)))
    }

    /// Sets the provider's token `usage` (from a non-streamed answer's body) on the call it
    /// belongs to; see [`current::usage`](crate::current::usage).
    pub fn usage(&self, usage: Usage) {
        self.state().usage(usage);
    }

    /// Makes the request `tenant`'s; see [`current::set_tenant`](crate::current::set_tenant).
    pub fn set_tenant(&self, tenant: &str) {
        self.state().set_tenant(tenant);
    }

    /// Sets the rate-limit gauges of the call `limits` belong to; see
    /// [`current::rate_limits`](crate::current::rate_limits).
    pub fn rate_limits(&self, limits: &crate::ratelimits::RateLimits) {
        self.state().rate_limits(limits);
    }

    /// The value of a `Server-Timing` response header for the request so far: one entry per
    /// stage that ran and one for the backend, in milliseconds
    /// (`request_parsing;dur=0.041, backend;dur=501.700`).
    pub fn server_timing(&self) -> String {
        self.state().server_timing()
    }

    /// The request's trace id: the exemplar of the buckets it lands in.
    pub fn trace_id(&self) -> TraceId {
        self.state().trace_id()
    }

    /// Gives the request the trace id of the client's `traceparent`; see
    /// [`current::set_trace_id`](crate::current::set_trace_id).
    pub fn set_trace_id(&self, id: TraceId) {
        self.state().set_trace_id(id);
    }

    /// The handler is done with the request: it ends now, or when the streams it was handed to
    /// end (see the type's documentation for what it records). Later calls do nothing, and so
    /// does a call on a tracker that does not own the request ([`current::with`](crate::current::with)'s view, or a
    /// tracker of the layer's exchange): its owner ends it.
    #[inline]
    pub fn record_percentages(&self) {
        self.share.release(HandlerExit::Returned(true));
    }

    /// Counts a failure of this request's current backend call (else the one started last) in
    /// `backend_errors_total`; see [`current::backend_error`](crate::current::backend_error).
    pub fn backend_error(&self, kind: BackendErrorKind) {
        self.state().backend_error(kind);
    }

    /// Marks the request as failed: it ends as `requests_total{outcome="error"}`.
    #[inline]
    pub fn fail(&self) {
        self.state().fail();
    }

    /// Runs `fut` with this tracker's request current (what `#[perf_stage]`, `#[perf_backend]`
    /// and `#[perf_stream]` record into); the handler lets go of the request when `fut`
    /// completes. If `fut` is dropped first, the request is cancelled.
    pub fn run<F: Future>(self, fut: F) -> Run<F, fn(&F::Output) -> bool> {
        Run::new(self.share, fut, |_| true)
    }

    /// [`run`](Self::run), marking the request failed when `succeeded` says its output is not a
    /// success: a `#[perf_endpoint]` handler's new request (`macro_support::endpoint`).
    pub(crate) fn run_checked<F, C>(self, fut: F, succeeded: C) -> Run<F, C>
    where
        F: Future,
        C: FnOnce(&F::Output) -> bool,
    {
        Run::new(self.share, fut, succeeded)
    }

    /// Ends the request when dropped (outside a panic): the form of
    /// [`track_request_stages`](crate::track_request_stages).
    pub(crate) fn ending_on_drop(mut self) -> Self {
        self.share = self.share.ending_on_drop();
        self
    }
}

impl std::fmt::Debug for PerformanceTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [frontend_ns, backend_ns, streaming_ns] = self.state().phases();
        f.debug_struct("PerformanceTracker")
            .field("endpoint", &self.endpoint())
            .field("frontend_ns", &frontend_ns)
            .field("backend_ns", &backend_ns)
            .field("streaming_ns", &streaming_ns)
            .field("ended", &self.state().ended())
            .finish_non_exhaustive()
    }
}
