//! What one stage, call or request hands the next on the same thread without holding it: the
//! clock reading where the last stage or call closed (the next one the macros know follows at
//! once begins there: one reading for both), and the endpoint of work done outside any request.

use std::cell::Cell;

use crate::clock::Clock;
use crate::metrics::{Endpoint, EndpointMetrics};

thread_local! {
    /// The reading at which the last stage or backend call that closed on this thread ended (0
    /// once taken): where a stage or call that the macros know to follow it at once begins.
    static LAST_END: Cell<u64> = const { Cell::new(0) };
}

/// Notes `end` as the end of the stage or call closed last on this thread (or the start of a
/// request, which its endpoint's first statement may begin at).
#[inline]
pub(crate) fn closed_at(end: Clock) {
    let _ = LAST_END.try_with(|last| last.set(end.0));
}

/// Where a stage or call that directly follows another's close begins: that close's reading
/// (one clock reading for both), else now.
#[inline]
pub(crate) fn after_last_close() -> Clock {
    match LAST_END.try_with(|last| last.replace(0)) {
        Ok(at) if at != 0 => Clock(at),
        _ => Clock::now(),
    }
}

/// The `endpoint` label of work done outside any request.
pub const UNSCOPED_ENDPOINT: &str = "none";

/// The series of work done outside any request: a guard or stream with no request to join.
pub(crate) fn unscoped() -> &'static EndpointMetrics {
    static NONE: Endpoint = Endpoint::new(UNSCOPED_ENDPOINT);
    NONE.metrics()
}
