//! The endpoints a program declares with `#[perf_endpoint]`, known before any request: their
//! series are made with the metrics, so that dashboards and `absent()` alerts see them from the
//! first scrape, not from the first request.

use std::collections::HashSet;
use std::sync::OnceLock;

use super::{labels, Metrics};

/// One `#[perf_endpoint("/path")]` of the program; the macro submits one per handler.
#[doc(hidden)]
pub struct KnownEndpoint(pub &'static str);

inventory::collect!(KnownEndpoint);

/// Makes the series of every known endpoint in `metrics`: `requests_total` for each outcome
/// (at 0) and `frontend_processing_seconds` (empty).
pub(super) fn resolve_all(metrics: &'static Metrics) {
    for known in inventory::iter::<KnownEndpoint> {
        metrics.declared_endpoint(known.0);
    }
}

/// Whether `path` (cut to [`MAX_LABEL_LEN`](labels::MAX_LABEL_LEN)) is a `#[perf_endpoint]` of
/// the program: such a path has its own series whatever the endpoint cap, even when it is given
/// as a `&str` (`PerformanceTracker::new`, a tower layer's matched route).
pub(super) fn is_known(path: &str) -> bool {
    static KNOWN: OnceLock<HashSet<&'static str>> = OnceLock::new();
    KNOWN
        .get_or_init(|| {
            inventory::iter::<KnownEndpoint>
                .into_iter()
                .map(|known| labels::truncate(known.0))
                .collect()
        })
        .contains(path)
}
