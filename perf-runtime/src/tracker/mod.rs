//! The life of a request, from the attribute (or the layer) to the histograms.
//!
//! 1. `PerfLayer` (`crate::layer`) makes each HTTP exchange a request; `#[perf_endpoint]` wraps
//!    the handler's body in a [`Run`] future (`run.rs`) that makes one, or joins the one already
//!    current. Its [`RequestState`](state) sits in a pooled slot (`pool.rs`).
//! 2. While the handler (or the response body, or a stream) is polled, `current.rs` makes the
//!    request current on the thread: `#[perf_stage]`, `#[perf_backend]` and `#[perf_stream]`
//!    find it there, however deep the call that reaches them.
//! 3. Each stage or backend call is a guard (`guards.rs`) that holds the request it opened on.
//!    When dropped (returned, `?`, panic, cancellation alike) it observes its histogram and
//!    closes its interval in the request's unions (`phases.rs`). Each backend call is a record
//!    (`calls.rs`); a `#[perf_backend]` fn's future makes it current for each poll
//!    (`backend_call.rs`), so the facts found inside belong to it.
//! 4. A stream handed the request (`stream.rs`) takes a share of it: the request stays open past
//!    the handler's return, is current again while the stream is read, and the stream relays the
//!    call that answered last before it was made (`answer.rs`: TTFT, gaps, usage).
//! 5. When every owner has let go, the request ends once (`state.rs`): `requests_total{outcome}`,
//!    `frontend_processing_seconds`, the streaming, the overhead, and for a completed request
//!    that a backend answered, the `stage_percentage` split.
//! 6. A scrape reads the histograms (`crate::metrics`) and writes them out
//!    (`crate::exposition`).

mod answer;
mod backend_call;
mod calls;
mod chunks;
pub mod current;
mod guards;
mod phases;
mod pool;
mod run;
mod spend;
mod state;
mod stream;

use std::future::Future;

pub use backend_call::BackendCall;
pub use chunks::{Chunk, ChunksBy, Classify, Probed, Usage};
pub use guards::{BackendGuard, StageGuard, StreamingGuard};
pub use run::Run;
pub(crate) use state::{HandlerExit, StateRef};
pub use stream::TrackedStream;

use guards::Owner;
use state::RequestState;

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
    state: StateRef,
    role: Role,
}

/// What dropping a tracker means.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The handler's share: dropped before the end, the request was cancelled (or, with
    /// `ends_on_drop`, ended).
    Handler { ends_on_drop: bool },
    /// A look at the current request ([`current::with`]): dropping it does nothing.
    View,
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
            state: StateRef::new(endpoint),
            role: Role::Handler {
                ends_on_drop: false,
            },
        }
    }

    pub(crate) fn view(state: StateRef) -> Self {
        PerformanceTracker {
            state,
            role: Role::View,
        }
    }

    #[inline]
    pub(crate) fn state(&self) -> &RequestState {
        &self.state
    }

    /// The `endpoint` label of this request.
    pub fn endpoint(&self) -> &str {
        self.state.endpoint().path()
    }

    /// Starts timing `stage`; the returned guard records
    /// `request_stage_duration_seconds{stage, endpoint}` when dropped.
    #[inline]
    pub fn stage(&self, stage: impl Into<Stage>) -> StageGuard<'_> {
        StageGuard::begin(Owner::Borrowed(&self.state), stage.into())
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
        BackendGuard::begin(Owner::Borrowed(&self.state), provider, model)
    }

    /// Starts timing the streaming of the answer. Recorded at the request's end, in
    /// `streaming_duration_seconds{provider, model, endpoint}` (labelled with the last backend
    /// that answered, or `unknown`) and the `stream_processing` stage, once for all the
    /// request's streaming.
    pub fn streaming(&self) -> StreamingGuard<'_> {
        StreamingGuard::begin(&self.state)
    }

    /// Hands the request to `stream`: the handler's share goes to it, so the request ends when
    /// the stream ends or is dropped. Streaming is timed from its first poll.
    #[inline]
    pub fn stream<S>(self, stream: S) -> TrackedStream<S> {
        self.state
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
        self.state
            .hand_over(|state| TrackedStream::classified(stream, state, ChunksBy::new(chunks)))
    }

    /// Sets the provider's token `usage` (from a non-streamed answer's body) on the call it
    /// belongs to; see [`current::usage`].
    pub fn usage(&self, usage: Usage) {
        self.state.usage(usage);
    }

    /// Makes the request `tenant`'s; see [`current::set_tenant`].
    pub fn set_tenant(&self, tenant: &str) {
        self.state.set_tenant(tenant);
    }

    /// Sets the rate-limit gauges of the call `limits` belong to; see
    /// [`current::rate_limits`].
    pub fn rate_limits(&self, limits: &crate::ratelimits::RateLimits) {
        self.state.rate_limits(limits);
    }

    /// The value of a `Server-Timing` response header for the request so far: one entry per
    /// stage that ran and one for the backend, in milliseconds
    /// (`request_parsing;dur=0.041, backend;dur=501.700`).
    pub fn server_timing(&self) -> String {
        self.state.server_timing()
    }

    /// The request's trace id: the exemplar of the buckets it lands in.
    pub fn trace_id(&self) -> TraceId {
        self.state.trace_id()
    }

    /// Gives the request the trace id of the client's `traceparent`; see
    /// [`current::set_trace_id`].
    pub fn set_trace_id(&self, id: TraceId) {
        self.state.set_trace_id(id);
    }

    /// The handler is done with the request: it ends now, or when the streams it was handed to
    /// end (see the type's documentation for what it records). Later calls do nothing, and so
    /// does a call on a tracker that does not own the request ([`current::with`]'s view, or a
    /// tracker of the layer's exchange): its owner ends it.
    #[inline]
    pub fn record_percentages(&self) {
        if let Role::Handler { .. } = self.role {
            self.state.release_handler(HandlerExit::Returned(true));
        }
    }

    /// Counts a failure of this request's current backend call (else the one started last) in
    /// `backend_errors_total`; see [`current::backend_error`].
    pub fn backend_error(&self, kind: BackendErrorKind) {
        self.state.backend_error(kind);
    }

    /// Marks the request as failed: it ends as `requests_total{outcome="error"}`.
    #[inline]
    pub fn fail(&self) {
        self.state.fail();
    }

    /// Runs `fut` with this tracker's request current (what `#[perf_stage]`, `#[perf_backend]`
    /// and `#[perf_stream]` record into); the handler lets go of the request when `fut`
    /// completes. If `fut` is dropped first, the request is cancelled.
    pub fn run<F: Future>(self, fut: F) -> Run<F, fn(&F::Output) -> bool> {
        Run::new(self, fut, |_| true)
    }

    /// [`run`](Self::run), marking the request failed when `succeeded` says its output is not a
    /// success: what `#[perf_endpoint]` expands to.
    pub fn run_checked<F, C>(self, fut: F, succeeded: C) -> Run<F, C>
    where
        F: Future,
        C: FnOnce(&F::Output) -> bool,
    {
        Run::new(self, fut, succeeded)
    }

    /// Ends the request when dropped (outside a panic): the form of
    /// [`track_request_stages`](crate::track_request_stages).
    pub(crate) fn ending_on_drop(mut self) -> Self {
        self.role = Role::Handler { ends_on_drop: true };
        self
    }
}

impl Drop for PerformanceTracker {
    #[inline]
    fn drop(&mut self) {
        let Role::Handler { ends_on_drop } = self.role else {
            return;
        };
        if self.state.handler_gone() {
            return;
        }
        let exit = if self.state.is_panicking() {
            HandlerExit::Panicked
        } else if ends_on_drop {
            HandlerExit::Returned(true)
        } else {
            HandlerExit::Cancelled
        };
        self.state.release_handler(exit);
    }
}

impl std::fmt::Debug for PerformanceTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [frontend_ns, backend_ns, streaming_ns] = self.state.phases();
        f.debug_struct("PerformanceTracker")
            .field("endpoint", &self.endpoint())
            .field("frontend_ns", &frontend_ns)
            .field("backend_ns", &backend_ns)
            .field("streaming_ns", &streaming_ns)
            .field("ended", &self.state.ended())
            .finish_non_exhaustive()
    }
}

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
