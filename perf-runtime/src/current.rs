//! The current request: the tracker a `#[perf_endpoint]` handler (or
//! [`PerformanceTracker::run`]) makes visible to everything it awaits, nested functions in any
//! module included.
//!
//! These functions are what the macros expand to, and can be called by hand the same way. Outside
//! any request (a `#[perf_stage]` function called from a background job, or from a task spawned
//! by the handler, which does not inherit the request) they still time their work, under
//! `endpoint="none"`, and never panic.

use std::future::Future;

use futures_core::Stream;

use crate::metrics::{Endpoint, EndpointMetrics};
use crate::stage::{Stage, StageName};
use crate::stream::TrackedStream;
use crate::tracker::{BackendGuard, Owner, PerformanceTracker, StageGuard};

tokio::task_local! {
    static CURRENT: PerformanceTracker;
}

/// The `endpoint` label of work done outside any request.
pub const UNSCOPED_ENDPOINT: &str = "none";

fn unscoped() -> &'static EndpointMetrics {
    static NONE: Endpoint = Endpoint::new(UNSCOPED_ENDPOINT);
    NONE.metrics()
}

/// Calls `f` with the current tracker, if the caller runs inside a request.
pub fn with<R>(f: impl FnOnce(&PerformanceTracker) -> R) -> Option<R> {
    CURRENT.try_with(f).ok()
}

pub(crate) async fn scope<F: Future>(tracker: PerformanceTracker, fut: F) -> F::Output {
    CURRENT
        .scope(tracker, async move {
            let out = fut.await;
            with(PerformanceTracker::end);
            out
        })
        .await
}

/// Marks the current request as failed (see [`PerformanceTracker::fail`]); outside a request,
/// does nothing.
pub fn fail() {
    with(PerformanceTracker::fail);
}

/// Starts timing `stage` in the current request; see [`PerformanceTracker::stage`].
pub fn stage(stage: &StageName) -> StageGuard<'static> {
    let stage: Stage = stage.get();
    with(|t| StageGuard::begin(Owner::Current, t, stage))
        .unwrap_or_else(|| StageGuard::detached(unscoped(), stage))
}

/// Starts timing a backend call of the current request; see
/// [`PerformanceTracker::backend_request`].
pub fn backend_request(provider: impl AsRef<str>, model: impl AsRef<str>) -> BackendGuard<'static> {
    let (provider, model) = (provider.as_ref(), model.as_ref());
    with(|t| BackendGuard::begin(Owner::Current, t, provider, model))
        .unwrap_or_else(|| BackendGuard::detached(unscoped(), provider, model))
}

/// Hands the current request to `stream`: streaming is timed until it ends or is dropped, and the
/// request ends then, after the handler has returned. See [`PerformanceTracker::stream`].
pub fn stream<S: Stream>(stream: S) -> TrackedStream<S> {
    let tracker = with(PerformanceTracker::hand_off)
        .unwrap_or_else(|| PerformanceTracker::for_endpoint(unscoped()));
    TrackedStream::new(stream, tracker)
}
