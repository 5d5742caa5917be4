//! Where observations go: the families in a registry, and the per-endpoint handles that let a
//! request record without looking anything up.

mod counter;
mod endpoint;
mod families;
mod family;
mod histogram;
pub(crate) mod labels;
mod shard;
pub mod snapshot;
mod split;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Mutex, OnceLock, RwLock};

use prometheus::Registry;

pub(crate) use endpoint::BackendSeries;
pub use endpoint::{Endpoint, EndpointMetrics};
use families::Families;
pub use families::{
    BACKEND_BUCKETS, BACKEND_TTFB, FRONTEND_BUCKETS, FRONTEND_PROCESSING, OPERATION_DURATION,
    OUTCOMES, REQUESTS_TOTAL, REQUEST_STAGE_DURATION, STAGE_BUCKETS, STAGE_PERCENTAGE,
    STREAMING_DURATION,
};
pub(crate) use histogram::Histogram;
use labels::LabelBudget;
pub use labels::{DEFAULT_LABEL_CAP, MAX_LABEL_LEN, OVERFLOW_LABEL};

/// The metric families of perf in one registry, with the handles resolved from them.
///
/// There is one process-wide `Metrics`, [`Metrics::global`], in the `prometheus` crate's default
/// registry unless [`MetricsBuilder::install`] put it in another. [`MetricsBuilder::build`] makes
/// further, independent ones (for tests, or a second registry) to pass to
/// [`PerformanceTracker::with_metrics`](crate::PerformanceTracker::with_metrics).
///
/// A `Metrics` lives for the whole process (`&'static`): its handles are shared by every request
/// without reference counting.
pub struct Metrics {
    pub(crate) families: Families,
    registry: Registry,
    endpoints: RwLock<HashMap<Box<str>, &'static EndpointMetrics>>,
    pub(crate) models: LabelBudget,
    pub(crate) providers: LabelBudget,
}

/// Why [`MetricsBuilder::install`] failed.
#[derive(Debug)]
pub enum InstallError {
    /// The process-wide metrics were already in use or installed.
    AlreadyInstalled,
    /// A family of the same name is already in the registry.
    Registry(prometheus::Error),
}

impl fmt::Display for InstallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InstallError::AlreadyInstalled => f.write_str(
                "perf metrics are already installed; install them before the first request",
            ),
            InstallError::Registry(e) => write!(f, "cannot register perf metrics: {e}"),
        }
    }
}

impl std::error::Error for InstallError {}

static GLOBAL: OnceLock<&'static Metrics> = OnceLock::new();

/// Serializes making the global metrics, so that a lazy first use and an [`install`] racing on
/// two threads cannot both register the families.
///
/// [`install`]: MetricsBuilder::install
static GLOBAL_INIT: Mutex<()> = Mutex::new(());

impl Metrics {
    /// The process-wide metrics, in the default registry unless another was installed first.
    pub fn global() -> &'static Metrics {
        if let Some(metrics) = GLOBAL.get() {
            return metrics;
        }
        let _init = GLOBAL_INIT.lock().unwrap_or_else(|e| e.into_inner());
        GLOBAL.get_or_init(|| {
            MetricsBuilder::new()
                .build(prometheus::default_registry())
                .expect("perf's families are already registered in the default registry")
        })
    }

    /// Options for the label budget and the registry.
    pub fn builder() -> MetricsBuilder {
        MetricsBuilder::new()
    }

    /// The registry the families are registered in.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The handles of one endpoint, made on first use and kept for the life of the process.
    ///
    /// This takes a read lock and hashes `path`: call it once per endpoint (an [`Endpoint`]
    /// static does), not once per request.
    pub fn endpoint(&'static self, path: &str) -> &'static EndpointMetrics {
        let path = labels::truncate(path);
        if let Some(&found) = self
            .endpoints
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(path)
        {
            return found;
        }
        let mut endpoints = self.endpoints.write().unwrap_or_else(|e| e.into_inner());
        endpoints
            .entry(path.into())
            .or_insert_with(|| Box::leak(Box::new(EndpointMetrics::new(self, path))))
    }

    /// Renders every family of this registry in the Prometheus text format.
    pub fn render(&self) -> String {
        crate::exposition::render(&self.registry)
    }
}

/// Builds a [`Metrics`]: label caps, an allow-list of models, and the registry.
pub struct MetricsBuilder {
    label_cap: usize,
    allowed_models: Option<HashSet<Box<str>>>,
}

impl MetricsBuilder {
    fn new() -> Self {
        MetricsBuilder {
            label_cap: DEFAULT_LABEL_CAP,
            allowed_models: None,
        }
    }

    /// How many distinct `model` (and `provider`) values are kept before the rest go to
    /// [`OVERFLOW_LABEL`]. Default [`DEFAULT_LABEL_CAP`].
    pub fn label_cap(mut self, cap: usize) -> Self {
        self.label_cap = cap;
        self
    }

    /// Keeps only these model names as `model` labels; every other goes to [`OVERFLOW_LABEL`].
    pub fn allowed_models<I, S>(mut self, models: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let models = models
            .into_iter()
            .map(|m| labels::truncate(m.as_ref()).into())
            .collect();
        self.allowed_models = Some(models);
        self
    }

    /// Registers the families in `registry` and returns the new metrics, kept for the life of
    /// the process. Make one per registry: each call leaks a small, fixed amount.
    pub fn build(self, registry: &Registry) -> prometheus::Result<&'static Metrics> {
        let metrics: &'static Metrics = Box::leak(Box::new(Metrics {
            families: Families::new(),
            registry: registry.clone(),
            endpoints: RwLock::new(HashMap::new()),
            models: LabelBudget::new(self.label_cap, self.allowed_models),
            providers: LabelBudget::new(self.label_cap, None),
        }));
        metrics.families.register(registry)?;
        Ok(metrics)
    }

    /// Like [`build`](Self::build), and makes the result the process-wide [`Metrics::global`].
    /// Call it at start-up, before the first request.
    pub fn install(self, registry: &Registry) -> Result<&'static Metrics, InstallError> {
        let _init = GLOBAL_INIT.lock().unwrap_or_else(|e| e.into_inner());
        if GLOBAL.get().is_some() {
            return Err(InstallError::AlreadyInstalled);
        }
        let metrics = self.build(registry).map_err(InstallError::Registry)?;
        GLOBAL
            .set(metrics)
            .map_err(|_| InstallError::AlreadyInstalled)?;
        Ok(metrics)
    }
}
