//! The current request: the tracker a `#[perf_endpoint]` handler (or
//! [`PerformanceTracker::run`]) makes visible to everything it awaits, nested functions in any
//! module included.
//!
//! These functions are what the macros expand to, and can be called by hand the same way. Outside
//! any request (a `#[perf_stage]` function called from a background job, or from a task spawned
//! by the handler, which does not inherit the request) they still time their work, under
//! `endpoint="none"`, and never panic.

use std::cell::Cell;

use futures_core::Stream;

use crate::metrics::{Endpoint, EndpointMetrics};
use crate::stage::{Stage, StageName};
use crate::stream::TrackedStream;
use crate::tracker::{BackendGuard, Owner, PerformanceTracker, StageGuard};

thread_local! {
    /// The tracker of the [`Run`](crate::Run) future being polled (or dropped) on this thread,
    /// or null.
    static CURRENT: Cell<*const PerformanceTracker> = const { Cell::new(std::ptr::null()) };
}

/// The `endpoint` label of work done outside any request.
pub const UNSCOPED_ENDPOINT: &str = "none";

fn unscoped() -> &'static EndpointMetrics {
    static NONE: Endpoint = Endpoint::new(UNSCOPED_ENDPOINT);
    NONE.metrics()
}

/// Calls `f` with the current tracker, if the caller runs inside a request.
pub fn with<R>(f: impl FnOnce(&PerformanceTracker) -> R) -> Option<R> {
    let current = CURRENT.try_with(Cell::get).ok()?;
    // SAFETY: the pointer is non-null only while `enter`'s guard lives, which `Run` keeps for the
    // span of one poll (or its drop) on this thread; meanwhile the tracker sits in the pinned
    // `Run`, which neither moves it nor hands out `&mut` to it.
    unsafe { current.as_ref() }.map(f)
}

/// Makes `tracker` current on this thread until the returned guard is dropped, which restores
/// the previous one (a request polled inside another's poll, or a panic, leave no trace).
pub(crate) fn enter(tracker: &PerformanceTracker) -> Entered {
    Entered(CURRENT.with(|current| current.replace(tracker)))
}

/// Restores the previous current tracker when dropped.
pub(crate) struct Entered(*const PerformanceTracker);

impl Drop for Entered {
    fn drop(&mut self) {
        let _ = CURRENT.try_with(|current| current.set(self.0));
    }
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
