//! The endpoints a program declares with `#[perf_endpoint]`, known before any request: their
//! series are made with the metrics, so that dashboards and `absent()` alerts see them from the
//! first scrape, not from the first request.

use super::Metrics;

/// One `#[perf_endpoint("/path")]` of the program; the macro submits one per handler.
#[doc(hidden)]
pub struct KnownEndpoint(pub &'static str);

inventory::collect!(KnownEndpoint);

/// Makes the series of every known endpoint in `metrics`: `requests_total` for each outcome
/// (at 0) and `frontend_processing_seconds` (empty).
pub(super) fn resolve_all(metrics: &'static Metrics) {
    for known in inventory::iter::<KnownEndpoint> {
        metrics.endpoint(known.0);
    }
}
