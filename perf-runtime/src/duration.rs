//! Timing any operation of the user's: the seed's `track_duration("custom_operation")`.

use crate::clock::Clock;
use crate::metrics::{Histogram, Metrics};

/// Starts timing `operation`; the guard records `operation_duration_seconds{operation}` (buckets
/// [`STAGE_BUCKETS`](crate::metrics::STAGE_BUCKETS), 100 µs to 10 s) when dropped.
///
/// For work outside the request path (a cache warm-up, a batch job). It resolves the series on
/// every call (a read lock and a hash); inside a request, prefer a stage, whose series are
/// resolved once.
///
/// `operation` is cut to [`MAX_LABEL_LEN`](crate::metrics::MAX_LABEL_LEN) bytes, and the
/// distinct values kept are capped
/// ([`MetricsBuilder::endpoint_cap`](crate::MetricsBuilder::endpoint_cap), counted apart from
/// the endpoints; default [`DEFAULT_ENDPOINT_CAP`](crate::metrics::DEFAULT_ENDPOINT_CAP)): past
/// the cap, new names record as `operation="other"`.
///
/// ```
/// let _timer = perf_runtime::track_duration("embedding_cache_refresh");
/// // ... the operation ...
/// ```
pub fn track_duration(operation: &str) -> DurationGuard {
    let series = Metrics::global().operation(operation);
    DurationGuard {
        series,
        start: Clock::now(),
    }
}

/// Times one custom operation; see [`track_duration`].
#[must_use = "the operation is timed until this guard is dropped"]
pub struct DurationGuard {
    series: &'static Histogram,
    start: Clock,
}

impl Drop for DurationGuard {
    fn drop(&mut self) {
        self.series.observe(self.start.elapsed());
    }
}
