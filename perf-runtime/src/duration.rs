//! Timing any operation of the user's: the seed's `track_duration("custom_operation")`.

use crate::clock::Clock;
use crate::metrics::{labels, Histogram, Metrics};

/// Starts timing `operation`; the guard records `operation_duration_seconds{operation}` (buckets
/// [`STAGE_BUCKETS`](crate::metrics::STAGE_BUCKETS), 100 µs to 10 s) when dropped.
///
/// For work outside the request path (a cache warm-up, a batch job). It resolves the series on
/// every call; inside a request, prefer a stage, whose series are resolved once.
///
/// ```
/// let _timer = perf_runtime::track_duration("embedding_cache_refresh");
/// // ... the operation ...
/// ```
pub fn track_duration(operation: &str) -> DurationGuard {
    let series = Metrics::global()
        .families
        .operation_duration
        .get(&[labels::truncate(operation)]);
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
