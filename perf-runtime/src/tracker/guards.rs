//! Scope guards: each records its histogram observation when dropped, however the scope is left,
//! and closes on the request it opened on (or on none), never on another.

use std::time::Duration;

use super::access::Access;
use super::handoff::{after_last_close, unscoped};
use super::on_thread::{current_call, enter_call, CallRef};
use super::owner::{closing, Owner};
use super::state::RequestState;
use crate::clock::Clock;
use crate::metrics::{BackendErrorKind, BackendSet, EndpointMetrics, Histogram};
use crate::stage::Stage;

/// Times one stage; records `request_stage_duration_seconds{stage, endpoint}` when dropped.
///
/// Dropped through `?`, a panic or a cancelled future, it records the time the stage really
/// ran, once.
#[must_use = "the stage is timed until this guard is dropped"]
pub struct StageGuard<'a> {
    owner: Owner<'a>,
    stage: Stage,
    series: &'static Histogram,
    start: Clock,
    /// Set by [`finish`](Self::finish): the drop that follows ends there (one reading for
    /// both); `Clock(0)` before.
    end: Clock,
}

impl<'a> StageGuard<'a> {
    #[inline]
    pub(crate) fn begin(owner: Owner<'a>, stage: Stage) -> Self {
        let access = owner.access();
        Self::begin_at(owner, access, stage, Clock::now)
    }

    /// Opens the stage at the reading `start` gives, taken last, as `access` says.
    #[inline]
    pub(crate) fn begin_at(
        owner: Owner<'a>,
        access: Access,
        stage: Stage,
        start: fn() -> Clock,
    ) -> Self {
        let Some(state) = owner.state() else {
            return Self::detached(unscoped(), stage, start);
        };
        let series = state.endpoint().stage(stage);
        let start = start();
        state.open_stage(start, access);
        StageGuard {
            owner,
            stage,
            series,
            start,
            end: Clock(0),
        }
    }

    pub(crate) fn detached(
        endpoint: &'static EndpointMetrics,
        stage: Stage,
        start: fn() -> Clock,
    ) -> Self {
        StageGuard {
            owner: Owner::Detached,
            stage,
            series: endpoint.stage(stage),
            start: start(),
            end: Clock(0),
        }
    }

    /// Ends the stage now and returns how long it took.
    #[inline]
    pub fn finish(mut self) -> Duration {
        self.end = Clock::now();
        Duration::from_nanos(self.start.until(self.end))
    }

    /// Ends this stage and begins `stage` in the same request, at one clock reading: what
    /// code that goes from one stage straight into the next should call (the macros do the
    /// same for adjacent timed statements).
    ///
    /// ```
    /// use perf_runtime::{Endpoint, PerformanceTracker, Stage};
    ///
    /// static CHAT: Endpoint = Endpoint::new("/v1/chat/completions");
    /// let tracker = PerformanceTracker::at(&CHAT);
    /// let stage = tracker.stage(Stage::REQUEST_PARSING);
    /// // parse ...
    /// let stage = stage.next(Stage::AUTH_VALIDATION);
    /// // authorize ...
    /// let backend = stage.next_backend("openai", "gpt-4o-mini");
    /// // send, wait for the first byte ...
    /// backend.first_byte();
    /// tracker.record_percentages();
    /// ```
    #[inline]
    pub fn next(self, stage: impl Into<Stage>) -> StageGuard<'a> {
        let owner = self.owner.share();
        drop(self);
        let access = owner.access();
        StageGuard::begin_at(owner, access, stage.into(), after_last_close)
    }

    /// Ends this stage and begins a call to the LLM provider at one clock reading; see
    /// [`next`](Self::next) and [`PerformanceTracker::backend_request`](crate::PerformanceTracker::backend_request).
    #[inline]
    pub fn next_backend(self, provider: &str, model: &str) -> BackendGuard<'a> {
        let owner = self.owner.share();
        drop(self);
        let access = owner.access();
        BackendGuard::begin_at(owner, access, provider, model, after_last_close)
    }
}

impl Drop for StageGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        let close = closing(&self.owner, self.start, self.end);
        self.series
            .observe_traced(close.ticks, close.trace, close.end);
        if let Some(state) = close.state {
            state.close_stage(self.stage, close.ticks, self.start, close.end, close.access);
        }
        self.owner.let_go(close.access);
    }
}

/// Times a call to the LLM provider, from the request until its first byte.
///
/// Call [`first_byte`](Self::first_byte) when the provider answers: that records
/// `backend_ttfb_seconds`. Dropped without it (an error, a panic, a cancelled request) it records
/// no TTFB, since no byte came; the `backend_fetch` stage records the time waited either way.
///
/// A call opened inside another call of the same request (a `#[perf_backend]` statement around
/// a `#[perf_backend]` fn) joins it: one call, timed once; its answer answers the call.
#[must_use = "call first_byte() when the provider answers"]
pub struct BackendGuard<'a> {
    owner: Owner<'a>,
    series: &'static BackendSet,
    fetch: &'static Histogram,
    /// The call's record in its request, and whether this guard only joined it.
    call: u32,
    joined: bool,
    /// The call current on this thread before this one opened, restored when it closes.
    before: CallRef,
    answered: bool,
    start: Clock,
    /// Set by [`first_byte`](Self::first_byte), as a stage guard's by `finish`.
    end: Clock,
}

impl<'a> BackendGuard<'a> {
    #[inline]
    pub(crate) fn begin(owner: Owner<'a>, provider: &str, model: &str) -> Self {
        let access = owner.access();
        Self::begin_at(owner, access, provider, model, Clock::now)
    }

    /// Opens the call at the reading `start` gives, taken last; or joins the call current on
    /// this thread, if it is one of the same request.
    #[inline]
    pub(crate) fn begin_at(
        owner: Owner<'a>,
        access: Access,
        provider: &str,
        model: &str,
        start: fn() -> Clock,
    ) -> Self {
        let Some(state) = owner.state() else {
            return Self::detached(unscoped(), provider, model, start);
        };
        let current = current_call();
        if let Some(call) = current.joined_by(state) {
            let series = state.call(call).set();
            return BackendGuard {
                fetch: state.endpoint().stage(Stage::BACKEND_FETCH),
                call,
                joined: true,
                before: current,
                answered: false,
                start: state.call(call).start(),
                end: Clock(0),
                series,
                owner,
            };
        }
        let series = state.endpoint().backend(provider, model);
        series.in_flight.start();
        let start = start();
        let call = state.open_call(start, series, access);
        let before = enter_call(CallRef::new(state, call)).keep();
        BackendGuard {
            fetch: state.endpoint().stage(Stage::BACKEND_FETCH),
            owner,
            series,
            call,
            joined: false,
            before,
            answered: false,
            start,
            end: Clock(0),
        }
    }

    pub(crate) fn detached(
        endpoint: &'static EndpointMetrics,
        provider: &str,
        model: &str,
        start: fn() -> Clock,
    ) -> Self {
        let series = endpoint.backend(provider, model);
        series.in_flight.start();
        BackendGuard {
            owner: Owner::Detached,
            series,
            fetch: endpoint.stage(Stage::BACKEND_FETCH),
            call: 0,
            joined: false,
            before: CallRef::NONE,
            answered: false,
            start: start(),
            end: Clock(0),
        }
    }

    /// This call, as facts found while it runs name it (none outside a request).
    #[inline]
    pub(crate) fn call_ref(&self) -> CallRef {
        match self.owner.state() {
            Some(state) => CallRef::new(state, self.call),
            None => CallRef::NONE,
        }
    }

    /// Leaves the thread's current call as it was before this call opened: for a call whose
    /// future makes it current for each of its polls instead ([`BackendCall`](super::BackendCall)).
    #[inline]
    pub(crate) fn unscoped(mut self) -> Self {
        let call = self.call_ref();
        restore_call(call, self.before);
        self.before = call;
        self
    }

    /// Whether the call is outside any request.
    pub(crate) fn is_detached(&self) -> bool {
        matches!(self.owner, Owner::Detached)
    }

    /// The series of this call's provider and model under `endpoint`.
    pub(crate) fn series_in(&self, endpoint: &'static EndpointMetrics) -> &'static BackendSet {
        endpoint.backend(self.series.provider(), self.series.model())
    }

    /// Counts this call in `backend_errors_total{provider, model, endpoint, kind}`: the
    /// provider timed out, could not be reached, answered an error status, or sent what the
    /// protocol does not allow. Once per call.
    pub fn error(&self, kind: BackendErrorKind) {
        match self.owner.state() {
            Some(state) => state.call(self.call).fail(kind),
            None => self.series.error(kind),
        }
    }

    /// The provider's first byte arrived: records the TTFB and ends the backend stage.
    #[inline]
    pub fn first_byte(mut self) -> Duration {
        self.answered = true;
        self.end = Clock::now();
        Duration::from_nanos(self.start.until(self.end))
    }

    /// Marks the call answered without ending the guard's scope; the TTFB is recorded when the
    /// guard is dropped. The `#[perf_backend]` expansion uses it.
    #[inline]
    pub fn set_answered(&mut self) {
        self.answered = true;
    }
}

impl Drop for BackendGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        let close = closing(&self.owner, self.start, self.end);
        restore_call(self.call_ref(), self.before);
        if self.joined {
            // The call it joined times itself; this guard's answer answers it.
            if let (true, Some(state)) = (self.answered, close.state) {
                state.call(self.call).answer(close.end, close.access);
            }
            self.owner.let_go(close.access);
            return;
        }
        // An answer noted by a guard that joined this call counts for it.
        let answered_at = match (self.answered, close.state) {
            (true, _) => Some(close.end),
            (false, Some(state)) => state.call(self.call).answered(),
            (false, None) => None,
        };
        self.series.in_flight.finish();
        self.fetch
            .observe_traced(close.ticks, close.trace, close.end);
        if let Some(at) = answered_at {
            self.series
                .ttfb
                .observe_traced(self.start.ticks_until(at), close.trace, at);
        }
        if let Some(state) = close.state {
            state.close_call(self.call, close.end, answered_at.is_some(), close.access);
        }
        self.owner.let_go(close.access);
    }
}

/// Puts back the call current before `call` opened, if `call` is still the current one (a
/// guard dropped on another thread, or after a later call, leaves that thread's alone).
#[inline]
fn restore_call(call: CallRef, before: CallRef) {
    if current_call() == call {
        let _ = enter_call(before).keep();
    }
}

/// Times the streaming of an answer to the client. Its time is recorded in
/// `streaming_duration_seconds` and the `stream_processing` stage once, at the request's end,
/// as part of the request's streaming (the union of its streams less its backend calls).
#[must_use = "streaming is timed until this guard is dropped"]
pub struct StreamingGuard<'a> {
    state: &'a RequestState,
    start: Clock,
}

impl<'a> StreamingGuard<'a> {
    #[inline]
    pub(crate) fn begin(state: &'a RequestState) -> Self {
        let start = Clock::now();
        state.open_stream(start, Access::Shared);
        StreamingGuard { state, start }
    }
}

impl Drop for StreamingGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.state
            .close_stream(self.start, Clock::now(), Access::Shared);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Endpoint, PerformanceTracker};

    /// The reading of the latest observation of `stage` in `endpoint`.
    fn observed_at(endpoint: &Endpoint, stage: Stage) -> Clock {
        let exemplars = endpoint.metrics().stage(stage).exemplars();
        exemplars
            .iter()
            .map(|e| e.at)
            .max()
            .expect("an observation")
    }

    #[test]
    fn next_begins_where_the_stage_before_ended() {
        static EP: Endpoint = Endpoint::new("/test/guards/next");
        let tracker = PerformanceTracker::at(&EP);
        let parsing = tracker.stage(Stage::REQUEST_PARSING);
        let auth = parsing.next(Stage::AUTH_VALIDATION);
        assert_eq!(auth.start, observed_at(&EP, Stage::REQUEST_PARSING));
        let backend = auth.next_backend("provider", "model");
        assert_eq!(backend.start, observed_at(&EP, Stage::AUTH_VALIDATION));
        backend.first_byte();
        tracker.record_percentages();
    }

    #[test]
    fn a_statement_that_follows_the_start_of_a_request_begins_there() {
        static EP: Endpoint = Endpoint::new("/test/guards/start");
        let tracker = PerformanceTracker::at(&EP);
        let state = tracker.state();
        let first = StageGuard::begin_at(
            Owner::Borrowed(state),
            Access::Shared,
            Stage::REQUEST_PARSING,
            after_last_close,
        );
        assert_eq!(first.start, state.started());
        // Taken once: a later one reads the clock.
        let later = StageGuard::begin_at(
            Owner::Borrowed(state),
            Access::Shared,
            Stage::AUTH_VALIDATION,
            after_last_close,
        );
        assert!(later.start > first.start);
    }
}
