//! Per-endpoint handles: every series whose labels are known when the endpoint is named is
//! resolved once, so recording is an index and an `observe`.

use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};

use prometheus::{Gauge, Histogram, IntCounter};

use super::families::OUTCOMES;

use super::Metrics;
use crate::stage::{Stage, MAX_STAGES};

/// The `provider` and `model` of streaming that no backend answered.
const UNKNOWN_LABEL: &str = "unknown";

/// `(provider, model)` after the label budget.
type BackendKey = (Box<str>, Box<str>);

/// The pair of series a backend call records into, for one provider and model.
pub(crate) struct BackendSeries {
    pub ttfb: Histogram,
    pub streaming: Histogram,
}

/// The resolved series of one endpoint. Made by [`Metrics::endpoint`]; lives for the process.
pub struct EndpointMetrics {
    pub(crate) metrics: &'static Metrics,
    path: Box<str>,
    pub(crate) frontend: Histogram,
    /// `stage_percentage` for `frontend_processing`, `backend_response`, `stream_processing`,
    /// made when the first request ends: an endpoint that never completed one shows no split,
    /// rather than a false 0 %.
    percentages: OnceLock<[Gauge; 3]>,
    stages: Box<[OnceLock<Histogram>]>,
    /// `requests_total` for each of [`OUTCOMES`].
    pub(crate) outcomes: [IntCounter; 3],
    backends: RwLock<HashMap<BackendKey, &'static BackendSeries>>,
}

impl EndpointMetrics {
    pub(crate) fn new(metrics: &'static Metrics, path: &str) -> Self {
        EndpointMetrics {
            metrics,
            path: path.into(),
            frontend: metrics
                .families
                .frontend_processing
                .with_label_values(&[path]),
            percentages: OnceLock::new(),
            outcomes: OUTCOMES.map(|outcome| {
                metrics.families.requests.with_label_values(&[path, outcome])
            }),
            stages: (0..MAX_STAGES).map(|_| OnceLock::new()).collect(),
            backends: RwLock::new(HashMap::new()),
        }
    }

    /// The `endpoint` label.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The three `stage_percentage` gauges, resolved on first use.
    pub(crate) fn percentages(&self) -> &[Gauge; 3] {
        self.percentages.get_or_init(|| {
            let family = &self.metrics.families.stage_percentage;
            [
                "frontend_processing",
                "backend_response",
                "stream_processing",
            ]
            .map(|stage| family.with_label_values(&[stage, &self.path]))
        })
    }

    /// `request_stage_duration_seconds{stage, endpoint}`, resolved on first use.
    pub(crate) fn stage(&self, stage: Stage) -> &Histogram {
        self.stages[stage.index()].get_or_init(|| {
            self.metrics
                .families
                .stage_duration
                .with_label_values(&[stage.name(), &self.path])
        })
    }

    /// The backend series for `provider` and `model`, after the label budget: a read lock and a
    /// hash, since the model is only known at run time.
    pub(crate) fn backend(&'static self, provider: &str, model: &str) -> &'static BackendSeries {
        let provider = self.metrics.providers.admit(provider);
        let model = self.metrics.models.admit(model);
        self.series(provider, model)
    }

    /// The series of streaming that no backend answered: `provider="unknown", model="unknown"`.
    /// Not a client value, so it bypasses the label budget: the allow-list does not turn it into
    /// `other`, and it uses up no slot of the cap.
    pub(crate) fn unknown_backend(&'static self) -> &'static BackendSeries {
        self.series(UNKNOWN_LABEL, UNKNOWN_LABEL)
    }

    /// The series for labels already through the budget.
    fn series(&'static self, provider: &str, model: &str) -> &'static BackendSeries {
        let key = (provider, model);
        {
            let map = self.backends.read().unwrap_or_else(|e| e.into_inner());
            if let Some(&found) = map.get(&key as &dyn PairKey) {
                return found;
            }
        }
        let mut map = self.backends.write().unwrap_or_else(|e| e.into_inner());
        map.entry((provider.into(), model.into()))
            .or_insert_with(|| {
                let f = &self.metrics.families;
                let labels = [provider, model, &*self.path];
                Box::leak(Box::new(BackendSeries {
                    ttfb: f.backend_ttfb.with_label_values(&labels),
                    streaming: f.streaming_duration.with_label_values(&labels),
                }))
            })
    }
}

/// Looks up a `(Box<str>, Box<str>)` key with a `(&str, &str)` without allocating.
trait PairKey {
    fn pair(&self) -> (&str, &str);
}

impl PairKey for (Box<str>, Box<str>) {
    fn pair(&self) -> (&str, &str) {
        (&self.0, &self.1)
    }
}

impl PairKey for (&str, &str) {
    fn pair(&self) -> (&str, &str) {
        (self.0, self.1)
    }
}

impl<'a> std::borrow::Borrow<dyn PairKey + 'a> for (Box<str>, Box<str>) {
    fn borrow(&self) -> &(dyn PairKey + 'a) {
        self
    }
}

impl std::hash::Hash for dyn PairKey + '_ {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.pair().hash(state)
    }
}

impl PartialEq for dyn PairKey + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.pair() == other.pair()
    }
}

impl Eq for dyn PairKey + '_ {}

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
