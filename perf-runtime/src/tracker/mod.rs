//! The request tracker: what one request has spent in each phase, and the rule for when the
//! request has ended.

mod guards;

use std::future::Future;
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::time::Duration;

pub(crate) use guards::Owner;
pub use guards::{BackendGuard, StageGuard, StreamingGuard};

use crate::clock::Clock;
use crate::metrics::{Endpoint, EndpointMetrics, Histogram, Metrics};
use crate::run::Run;
use crate::stage::Stage;
use crate::stream::TrackedStream;

const FRONTEND_SEEN: u8 = 1;
const BACKEND_STARTED: u8 = 1 << 1;
const ANSWERED: u8 = 1 << 2;
const ENDED: u8 = 1 << 3;
const FAILED: u8 = 1 << 4;
/// A poll of the request's stream unwound: the request counts as an `error` even if the panic
/// was caught (a `catch_unwind` around the stream) and the stream dropped after it, outside the
/// unwinding. (A future needs no such flag: unwinding through an `async fn` drops what it holds,
/// the tracker of [`run`](PerformanceTracker::run) included, while the thread is panicking.)
const PANICKED: u8 = 1 << 5;

/// How a request ended: the `outcome` label of `requests_total`.
#[derive(Clone, Copy)]
pub(crate) enum Outcome {
    Completed = 0,
    Error = 1,
    Cancelled = 2,
}

/// Times one request: its stages, its backend call, its streaming, and the split between them.
///
/// Every histogram observation is made by a guard when it is dropped, so a stage left through
/// `?`, a panic or a cancelled future still records the time that really ran, exactly once. The
/// tracker itself only sums the phases of the request for the percentages:
///
/// * **front end**: the stages that started before the first backend call and were not nested in
///   another stage (so a stage timed inside another is not counted twice);
/// * **backend**: the time spent in [`backend_request`](Self::backend_request) guards, answered
///   or not (a failed attempt before a fallback is time the request waited too);
/// * **streaming**: the time of [`streaming`](Self::streaming) guards and tracked streams.
///
/// The request **ends** when [`record_percentages`](Self::record_percentages) is called, when a
/// tracker from [`track_request_stages`](crate::track_request_stages) is dropped outside a panic,
/// when the future given to [`run`](Self::run) completes, or when the stream it was handed to
/// ends or is dropped. At its end, exactly once, the request records
/// `frontend_processing_seconds` (if a front-end stage ran) and sets `stage_percentage` (if a
/// backend answered: a request turned away before the backend has no split to show). A request
/// that panics or is cancelled before its end records its stages but no percentages.
///
/// Every request is counted once in `requests_total{endpoint, outcome}`: `completed` at its end,
/// `error` at its end after [`fail`](Self::fail) (the macros call it when the handler returns an
/// `Err`) or when dropped during a panic, and `cancelled` when dropped before its end (the
/// client went away; or a tracker used by hand that was never ended).
///
/// A tracker is `Send + Sync + 'static`: it can be moved into a stream or future that outlives
/// the handler, and its guards can be held across `.await` in a `Send` future. Creating one
/// allocates nothing; with an [`Endpoint`] static, it takes no lock either.
pub struct PerformanceTracker {
    endpoint: &'static EndpointMetrics,
    frontend_ns: AtomicU64,
    backend_ns: AtomicU64,
    streaming_ns: AtomicU64,
    open_stages: AtomicU32,
    flags: AtomicU8,
    /// The streaming series of the last backend that answered: the labels of the streaming
    /// that follows.
    backend: AtomicPtr<Histogram>,
    ends_on_drop: bool,
}

impl PerformanceTracker {
    /// A tracker for `endpoint` in the global metrics.
    ///
    /// Finds the endpoint's handles with a read lock and a hash; an [`Endpoint`] static and
    /// [`at`](Self::at) skip both.
    pub fn new(endpoint: &str) -> Self {
        Self::with_metrics(Metrics::global(), endpoint)
    }

    /// A tracker for `endpoint` recording into `metrics` instead of the global ones.
    pub fn with_metrics(metrics: &'static Metrics, endpoint: &str) -> Self {
        Self::for_endpoint(metrics.endpoint(endpoint))
    }

    /// A tracker for a pre-resolved endpoint: no lock, no hash, no allocation.
    pub fn at(endpoint: &Endpoint) -> Self {
        Self::for_endpoint(endpoint.metrics())
    }

    /// A tracker for resolved endpoint handles.
    pub fn for_endpoint(endpoint: &'static EndpointMetrics) -> Self {
        PerformanceTracker {
            endpoint,
            frontend_ns: AtomicU64::new(0),
            backend_ns: AtomicU64::new(0),
            streaming_ns: AtomicU64::new(0),
            open_stages: AtomicU32::new(0),
            flags: AtomicU8::new(0),
            backend: AtomicPtr::new(ptr::null_mut()),
            ends_on_drop: false,
        }
    }

    /// The `endpoint` label of this request.
    pub fn endpoint(&self) -> &str {
        self.endpoint.path()
    }

    /// Starts timing `stage`; the returned guard records
    /// `request_stage_duration_seconds{stage, endpoint}` when dropped.
    pub fn stage(&self, stage: impl Into<Stage>) -> StageGuard<'_> {
        StageGuard::begin(Owner::Tracker(self), self, stage.into())
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
    pub fn backend_request(&self, provider: &str, model: &str) -> BackendGuard<'_> {
        BackendGuard::begin(Owner::Tracker(self), self, provider, model)
    }

    /// Starts timing the streaming of the answer; the guard records
    /// `streaming_duration_seconds{provider, model, endpoint}` (labelled with the last backend
    /// that answered, or `unknown`) and the `stream_processing` stage when dropped.
    pub fn streaming(&self) -> StreamingGuard<'_> {
        StreamingGuard::begin(self)
    }

    /// Hands the request to `stream`: streaming is timed from now until the stream ends or is
    /// dropped, and the request ends then.
    pub fn stream<S>(self, stream: S) -> TrackedStream<S> {
        TrackedStream::new(stream, self)
    }

    /// Ends the request: records `frontend_processing_seconds` and sets `stage_percentage` (see
    /// the type's documentation for when each is recorded). Later calls do nothing.
    pub fn record_percentages(&self) {
        self.end();
    }

    /// Marks the request as failed: its end counts as `requests_total{outcome="error"}`.
    pub fn fail(&self) {
        self.flags.fetch_or(FAILED, Relaxed);
    }

    /// Notes that a poll of the request's future or stream panicked (see [`UnwindWatch`]).
    pub(crate) fn panicked(&self) {
        self.flags.fetch_or(PANICKED, Relaxed);
    }

    /// Whether the request panicked, now or in an earlier poll whose panic was caught.
    pub(crate) fn is_panicking(&self) -> bool {
        std::thread::panicking() || self.flags.load(Relaxed) & PANICKED != 0
    }

    /// Runs `fut` with this tracker as the current one (what `#[perf_stage]`, `#[perf_backend]`
    /// and `#[perf_stream]` record into), and ends the request when `fut` completes, unless a
    /// stream took the request over. If `fut` is dropped first, the request does not end.
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
        self.ends_on_drop = true;
        self
    }

    pub(crate) fn metrics(&self) -> &'static EndpointMetrics {
        self.endpoint
    }

    /// Moves the request's state into a new tracker, which will end the request; this one will
    /// not. How a stream made inside a handler takes the request past the handler's return.
    pub(crate) fn hand_off(&self) -> PerformanceTracker {
        let flags = self.flags.fetch_or(ENDED, Relaxed);
        PerformanceTracker {
            endpoint: self.endpoint,
            frontend_ns: AtomicU64::new(self.frontend_ns.load(Relaxed)),
            backend_ns: AtomicU64::new(self.backend_ns.load(Relaxed)),
            streaming_ns: AtomicU64::new(self.streaming_ns.load(Relaxed)),
            open_stages: AtomicU32::new(0),
            flags: AtomicU8::new(flags),
            backend: AtomicPtr::new(self.backend.load(Relaxed)),
            ends_on_drop: false,
        }
    }

    /// Opens a stage; tells whether it counts as front-end time.
    fn open_stage(&self) -> bool {
        let outermost = self.open_stages.fetch_add(1, Relaxed) == 0;
        outermost && self.flags.load(Relaxed) & BACKEND_STARTED == 0
    }

    fn close_stage(&self, ns: u64, frontend: bool) {
        self.open_stages.fetch_sub(1, Relaxed);
        if frontend {
            add(&self.frontend_ns, ns);
            self.flags.fetch_or(FRONTEND_SEEN, Relaxed);
        }
    }

    fn open_backend(&self) {
        self.flags.fetch_or(BACKEND_STARTED, Relaxed);
    }

    fn close_backend(&self, ns: u64, answered: Option<&'static Histogram>) {
        add(&self.backend_ns, ns);
        if let Some(series) = answered {
            self.backend
                .store(ptr::from_ref(series).cast_mut(), Relaxed);
            self.flags.fetch_or(ANSWERED, Relaxed);
        }
    }

    /// The series streaming is recorded in: the last backend that answered, else `unknown`.
    fn streaming_series(&self) -> &'static Histogram {
        let answered = self.backend.load(Relaxed);
        // SAFETY: `backend` is null or was stored from a `&'static Histogram`.
        match unsafe { answered.as_ref() } {
            Some(series) => series,
            None => self.endpoint.unknown_backend().streaming,
        }
    }

    /// Records streaming that lasted `elapsed`: one observation in each of
    /// `streaming_duration_seconds` and the `stream_processing` stage.
    pub(crate) fn record_streaming(&self, elapsed: Duration) {
        self.streaming_series().observe(elapsed);
        self.endpoint
            .stage(Stage::STREAM_PROCESSING)
            .observe(elapsed);
        add(&self.streaming_ns, nanos(elapsed));
    }

    /// The end of the request; see the type's documentation. Runs its effects at most once.
    pub(crate) fn end(&self) {
        self.end_as(None);
    }

    /// The end of the request, counted as `outcome` if given, else as completed or failed.
    pub(crate) fn end_as(&self, outcome: Option<Outcome>) {
        let flags = self.flags.fetch_or(ENDED, Relaxed);
        if flags & ENDED != 0 {
            return;
        }
        let outcome = outcome.unwrap_or(if flags & FAILED != 0 {
            Outcome::Error
        } else {
            Outcome::Completed
        });
        self.count(outcome);
        let frontend = self.frontend_ns.load(Relaxed);
        if flags & FRONTEND_SEEN != 0 {
            self.endpoint
                .frontend
                .observe(Duration::from_nanos(frontend));
        }
        if flags & ANSWERED != 0 {
            let phases = [
                frontend,
                self.backend_ns.load(Relaxed),
                self.streaming_ns.load(Relaxed),
            ];
            let total: u64 = phases.iter().sum();
            if total > 0 {
                let shares = phases.map(|phase| phase as f64 * 100.0 / total as f64);
                self.endpoint.split().set(Clock::stamp(), shares);
            }
        }
    }
}

impl PerformanceTracker {
    fn count(&self, outcome: Outcome) {
        self.endpoint.outcomes[outcome as usize].inc();
    }
}

impl Drop for PerformanceTracker {
    fn drop(&mut self) {
        let panicking = self.is_panicking();
        if self.ends_on_drop && !panicking {
            self.end();
        }
        if self.flags.fetch_or(ENDED, Relaxed) & ENDED == 0 {
            self.count(if panicking {
                Outcome::Error
            } else {
                Outcome::Cancelled
            });
        }
    }
}

impl std::fmt::Debug for PerformanceTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerformanceTracker")
            .field("endpoint", &self.endpoint())
            .field("frontend_ns", &self.frontend_ns.load(Relaxed))
            .field("backend_ns", &self.backend_ns.load(Relaxed))
            .field("streaming_ns", &self.streaming_ns.load(Relaxed))
            .finish_non_exhaustive()
    }
}

/// Held across each poll of a request's future or stream: dropped while unwinding, it marks the
/// request as panicked. So a panic caught by a `catch_unwind` around the future or stream (a
/// panic layer), which drops it later when `std::thread::panicking()` no longer tells, still
/// counts as an `error`, not a cancellation.
pub(crate) struct UnwindWatch<'a>(pub Option<&'a PerformanceTracker>);

impl Drop for UnwindWatch<'_> {
    fn drop(&mut self) {
        if let (Some(tracker), true) = (self.0, std::thread::panicking()) {
            tracker.panicked();
        }
    }
}

/// A request's phase sums are written by the one task that drives it, so a load and a store
/// (plain moves) are enough; no read-modify-write is needed on the hot path.
fn add(cell: &AtomicU64, ns: u64) {
    cell.store(cell.load(Relaxed).saturating_add(ns), Relaxed);
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The clock a tracker reads.
pub(crate) fn now() -> Clock {
    Clock::now()
}
