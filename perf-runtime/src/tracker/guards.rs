//! Scope guards: each records its histogram observation when dropped, however the scope is left.

use std::time::Duration;

use super::{nanos, now, PerformanceTracker};
use crate::clock::Clock;
use crate::metrics::{BackendSeries, EndpointMetrics, Histogram};
use crate::stage::Stage;

/// Whose phase sums a guard adds to when it is dropped.
pub(crate) enum Owner<'a> {
    /// A tracker the guard borrows.
    Tracker(&'a PerformanceTracker),
    /// The current tracker of the task, looked up again at drop (the `#[perf_*]` macros).
    Current,
    /// No tracker: the guard only observes its histograms.
    Detached,
}

impl Owner<'_> {
    fn with(&self, f: impl FnOnce(&PerformanceTracker)) {
        match self {
            Owner::Tracker(tracker) => f(tracker),
            Owner::Current => {
                crate::current::with(f);
            }
            Owner::Detached => {}
        }
    }
}

/// Times one stage; records `request_stage_duration_seconds{stage, endpoint}` when dropped.
///
/// Dropped through `?`, a panic or a cancelled future, it records the time the stage really
/// ran, once.
#[must_use = "the stage is timed until this guard is dropped"]
pub struct StageGuard<'a> {
    owner: Owner<'a>,
    series: &'static Histogram,
    frontend: bool,
    start: Clock,
}

impl<'a> StageGuard<'a> {
    pub(crate) fn begin(owner: Owner<'a>, tracker: &PerformanceTracker, stage: Stage) -> Self {
        let series = tracker.metrics().stage(stage);
        let frontend = tracker.open_stage();
        StageGuard {
            owner,
            series,
            frontend,
            start: now(),
        }
    }

    pub(crate) fn detached(endpoint: &'static EndpointMetrics, stage: Stage) -> Self {
        StageGuard {
            owner: Owner::Detached,
            series: endpoint.stage(stage),
            frontend: false,
            start: now(),
        }
    }

    /// Ends the stage now and returns how long it took.
    pub fn finish(self) -> Duration {
        self.start.elapsed()
    }
}

impl Drop for StageGuard<'_> {
    fn drop(&mut self) {
        let elapsed = self.start.elapsed();
        self.series.observe(elapsed);
        let frontend = self.frontend;
        self.owner.with(|t| t.close_stage(nanos(elapsed), frontend));
    }
}

/// Times a call to the LLM provider, from the request until its first byte.
///
/// Call [`first_byte`](Self::first_byte) when the provider answers: that records
/// `backend_ttfb_seconds`. Dropped without it (an error, a panic, a cancelled request) it records
/// no TTFB, since no byte came; the `backend_fetch` stage records the time waited either way.
#[must_use = "call first_byte() when the provider answers"]
pub struct BackendGuard<'a> {
    owner: Owner<'a>,
    series: BackendSeries,
    fetch: &'static Histogram,
    answered: bool,
    start: Clock,
}

impl<'a> BackendGuard<'a> {
    pub(crate) fn begin(
        owner: Owner<'a>,
        tracker: &PerformanceTracker,
        provider: &str,
        model: &str,
    ) -> Self {
        tracker.open_backend();
        Self::detached(tracker.metrics(), provider, model).owned_by(owner)
    }

    pub(crate) fn detached(
        endpoint: &'static EndpointMetrics,
        provider: &str,
        model: &str,
    ) -> Self {
        BackendGuard {
            owner: Owner::Detached,
            series: endpoint.backend(provider, model),
            fetch: endpoint.stage(Stage::BACKEND_FETCH),
            answered: false,
            start: now(),
        }
    }

    fn owned_by(mut self, owner: Owner<'a>) -> Self {
        self.owner = owner;
        self
    }

    /// The provider's first byte arrived: records the TTFB and ends the backend stage.
    pub fn first_byte(mut self) -> Duration {
        self.answered = true;
        self.start.elapsed()
    }

    /// Marks the call answered without ending the guard's scope; the TTFB is recorded when the
    /// guard is dropped. The `#[perf_backend]` expansion uses it.
    pub fn set_answered(&mut self) {
        self.answered = true;
    }
}

impl Drop for BackendGuard<'_> {
    fn drop(&mut self) {
        let elapsed = self.start.elapsed();
        self.fetch.observe(elapsed);
        if self.answered {
            self.series.ttfb.observe(elapsed);
        }
        let answered = self.answered.then_some(self.series.streaming);
        self.owner
            .with(|t| t.close_backend(nanos(elapsed), answered));
    }
}

/// Times the streaming of an answer to the client; records `streaming_duration_seconds` and the
/// `stream_processing` stage when dropped, whether the stream finished or the client left.
#[must_use = "streaming is timed until this guard is dropped"]
pub struct StreamingGuard<'a> {
    tracker: &'a PerformanceTracker,
    start: Clock,
}

impl<'a> StreamingGuard<'a> {
    pub(crate) fn begin(tracker: &'a PerformanceTracker) -> Self {
        StreamingGuard {
            tracker,
            start: now(),
        }
    }
}

impl Drop for StreamingGuard<'_> {
    fn drop(&mut self) {
        self.tracker.record_streaming(self.start.elapsed());
    }
}
