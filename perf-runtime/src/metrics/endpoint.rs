//! Per-endpoint handles: every series whose labels are known when the endpoint is named is
//! resolved once, so recording is an index and an `observe`.

use std::cell::RefCell;
use std::sync::OnceLock;

use super::counter::Counter;
use super::families::OUTCOMES;
use super::histogram::Histogram;
use super::labels;
use super::split::Split;
use super::Metrics;
use crate::stage::{Stage, MAX_STAGES};

/// The `provider` and `model` of streaming that no backend answered.
const UNKNOWN_LABEL: &str = "unknown";

/// The pair of series a backend call records into, for one provider and model.
#[derive(Clone, Copy)]
pub(crate) struct BackendSeries {
    pub ttfb: &'static Histogram,
    pub streaming: &'static Histogram,
}

/// The resolved series of one endpoint. Made by [`Metrics::endpoint`]; lives for the process.
pub struct EndpointMetrics {
    pub(crate) metrics: &'static Metrics,
    path: Box<str>,
    pub(crate) frontend: &'static Histogram,
    /// `stage_percentage`, made when the first request ends: an endpoint that never completed
    /// one shows no split, rather than a false 0 %.
    split: OnceLock<&'static Split>,
    stages: Box<[OnceLock<&'static Histogram>]>,
    /// `requests_total` for each of [`OUTCOMES`].
    pub(crate) outcomes: [&'static Counter; 3],
    unknown: OnceLock<BackendSeries>,
}

impl EndpointMetrics {
    pub(crate) fn new(metrics: &'static Metrics, path: &str) -> Self {
        let families = &metrics.families;
        EndpointMetrics {
            metrics,
            path: path.into(),
            frontend: families.frontend_processing.get(&[path]),
            split: OnceLock::new(),
            outcomes: OUTCOMES.map(|outcome| families.requests.get(&[path, outcome])),
            stages: (0..MAX_STAGES).map(|_| OnceLock::new()).collect(),
            unknown: OnceLock::new(),
        }
    }

    /// The `endpoint` label.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The `stage_percentage` triple, resolved on first use.
    pub(crate) fn split(&self) -> &'static Split {
        self.split
            .get_or_init(|| self.metrics.families.stage_percentage.get(&[&self.path]))
    }

    /// `request_stage_duration_seconds{stage, endpoint}`, resolved on first use.
    pub(crate) fn stage(&self, stage: Stage) -> &'static Histogram {
        self.stages[stage.index()].get_or_init(|| {
            self.metrics
                .families
                .stage_duration
                .get(&[stage.name(), &self.path])
        })
    }

    /// The backend series for `provider` and `model`. The model is only known at run time, so
    /// this is a lookup: first in a small per-thread cache of recent pairs (no lock, no
    /// allocation), then through the label budget and the families.
    pub(crate) fn backend(&'static self, provider: &str, model: &str) -> BackendSeries {
        // Cut first: the cache then holds at most MAX_LABEL_LEN bytes per value.
        let (provider, model) = (labels::truncate(provider), labels::truncate(model));
        if let Some(found) = cached(self, provider, model) {
            return found;
        }
        let admitted = (
            self.metrics.providers.admit(provider),
            self.metrics.models.admit(model),
        );
        let series = self.series(admitted.0, admitted.1);
        remember(self, provider, model, series);
        series
    }

    /// The series of streaming that no backend answered: `provider="unknown", model="unknown"`.
    /// Not a client value, so it bypasses the label budget: the allow-list does not turn it into
    /// `other`, and it uses up no slot of the cap.
    pub(crate) fn unknown_backend(&self) -> BackendSeries {
        *self
            .unknown
            .get_or_init(|| self.series(UNKNOWN_LABEL, UNKNOWN_LABEL))
    }

    /// The series for labels already through the budget.
    fn series(&self, provider: &str, model: &str) -> BackendSeries {
        let families = &self.metrics.families;
        let labels = [provider, model, &*self.path];
        BackendSeries {
            ttfb: families.backend_ttfb.get(&labels),
            streaming: families.streaming_duration.get(&labels),
        }
    }
}

/// Recently resolved `(endpoint, provider, model)` of this thread: a gateway serves few models
/// most of the time, so most backend calls resolve here.
struct CacheEntry {
    endpoint: *const EndpointMetrics,
    provider: Box<str>,
    model: Box<str>,
    series: BackendSeries,
}

const CACHE_ENTRIES: usize = 8;

thread_local! {
    static CACHE: RefCell<(usize, Vec<CacheEntry>)> = const { RefCell::new((0, Vec::new())) };
}

fn cached(endpoint: &EndpointMetrics, provider: &str, model: &str) -> Option<BackendSeries> {
    CACHE
        .try_with(|cache| {
            let cache = cache.borrow();
            cache
                .1
                .iter()
                .find(|e| {
                    std::ptr::eq(e.endpoint, endpoint)
                        && *e.model == *model
                        && *e.provider == *provider
                })
                .map(|e| e.series)
        })
        .ok()
        .flatten()
}

fn remember(endpoint: &EndpointMetrics, provider: &str, model: &str, series: BackendSeries) {
    let entry = CacheEntry {
        endpoint,
        provider: provider.into(),
        model: model.into(),
        series,
    };
    let _ = CACHE.try_with(|cache| {
        let (next, entries) = &mut *cache.borrow_mut();
        if entries.len() < CACHE_ENTRIES {
            entries.push(entry);
        } else {
            entries[*next] = entry;
            *next = (*next + 1) % CACHE_ENTRIES;
        }
    });
}

/// An endpoint named in code, resolved against [`Metrics::global`] on first use: what a `static`
/// holds so that a handler finds its series without a lock.
///
/// ```
/// use perf_runtime::{Endpoint, PerformanceTracker};
///
/// static CHAT: Endpoint = Endpoint::new("/v1/chat/completions");
/// let tracker = PerformanceTracker::at(&CHAT);
/// # drop(tracker);
/// ```
pub struct Endpoint {
    path: &'static str,
    resolved: OnceLock<&'static EndpointMetrics>,
}

impl Endpoint {
    /// The endpoint whose `endpoint` label is `path`.
    pub const fn new(path: &'static str) -> Self {
        Endpoint {
            path,
            resolved: OnceLock::new(),
        }
    }

    /// The endpoint's handles in the global metrics.
    pub fn metrics(&self) -> &'static EndpointMetrics {
        self.resolved
            .get_or_init(|| Metrics::global().endpoint(self.path))
    }
}
