//! Where observations go: the families in a registry, and the per-endpoint handles that let a
//! request record without looking anything up.
//!
//! What follows is `docs/metrics.md`: the contract those families keep.
//!
#![doc = include_str!("../../../docs/metrics.md")]

mod backend_set;
mod collector;
mod contract;
mod count_histogram;
mod counter;
mod endpoint;
mod endpoint_table;
mod exemplar;
mod families;
mod family;
mod float;
pub(crate) mod gathered;
pub(crate) mod histogram;
mod in_flight;
pub(crate) mod known;
pub(crate) mod labels;
pub(crate) mod leaked_map;
pub(crate) mod native;
pub(crate) mod reading;
mod shard;
pub mod snapshot;
mod stage_percentage;
mod tenants;
#[cfg(test)]
pub(crate) mod test_values;

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use prometheus::Registry;

pub use backend_set::BackendErrorKind;
pub(crate) use backend_set::BackendSet;
pub(crate) use backend_set::Pricing;
pub use contract::{
    BACKEND_BUCKETS, BACKEND_CALL_DURATION, BACKEND_CALL_TOKENS, BACKEND_CHUNK_GAP, BACKEND_COST,
    BACKEND_ERRORS, BACKEND_IN_FLIGHT, BACKEND_RATELIMIT_LIMIT, BACKEND_RATELIMIT_REMAINING,
    BACKEND_RATELIMIT_RESET, BACKEND_TOKENS, BACKEND_TTFB, BACKEND_TTFT, BACKEND_UNPRICED_TOKENS,
    CALL_BUCKETS, CHUNK_GAP_BUCKETS, FRONTEND_BUCKETS, FRONTEND_PROCESSING, GATEWAY_OVERHEAD,
    HTTP_REQUEST_DURATION, HTTP_RESPONSES_TOTAL, OPERATION_DURATION, OUTCOMES, OVERHEAD_BUCKETS,
    REQUESTS_IN_FLIGHT, REQUESTS_TOTAL, REQUEST_BUCKETS, REQUEST_DURATION, REQUEST_STAGE_DURATION,
    REQUEST_TIME_PER_OUTPUT_TOKEN, REQUEST_TTFT, STAGE_BUCKETS, STAGE_PERCENTAGE,
    STREAMING_DURATION, TENANT_COST, TENANT_REQUESTS, TENANT_TOKENS, TOKEN_BUCKETS, TTFT_BUCKETS,
};
pub use endpoint::EndpointMetrics;
#[cfg_attr(not(feature = "axum"), allow(unused_imports))]
pub(crate) use endpoint::HTTP_METHODS;
pub use endpoint_table::Endpoint;
use endpoint_table::{EndpointTable, Naming};
use families::Families;
pub(crate) use histogram::Histogram;
#[doc(hidden)]
use labels::LabelBudget;
pub use labels::{
    escape_reserved, DEFAULT_ENDPOINT_CAP, DEFAULT_LABEL_CAP, MAX_LABEL_LEN, OVERFLOW_LABEL,
};
use leaked_map::LeakedMap;
pub use stage_percentage::PHASES;
pub(crate) use tenants::TenantRequests;

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
    endpoints: EndpointTable,
    pub(crate) models: LabelBudget,
    pub(crate) providers: LabelBudget,
    operations: LabelBudget,
    /// The `tenant` label's budget, and each admitted tenant's series.
    tenants: LabelBudget,
    tenant_sets: LeakedMap<Box<str>, tenants::TenantSet>,
    /// The price table backend calls are priced with.
    prices: crate::prices::PriceSlot,
}

/// Why [`MetricsBuilder::build`] or [`MetricsBuilder::install`] failed. Nothing was
/// registered: the registry is as it was.
#[derive(Debug)]
#[non_exhaustive]
pub enum InstallError {
    /// The process-wide metrics were already in use or installed.
    AlreadyInstalled,
    /// The registry already has a family of this name (an application's own `requests_total`,
    /// say).
    NameTaken {
        /// The name of perf's family that could not be registered, prefix included.
        name: &'static str,
        /// What the registry said.
        error: prometheus::Error,
    },
    /// A family already in the registry takes a name that one of perf's takes in OpenMetrics:
    /// an application's counter `requests` beside perf's `requests_total` (both are `requests`
    /// there), or a gauge `backend_ttfb_seconds_count` beside perf's histogram. The registry
    /// accepts both, but Prometheus, which asks for OpenMetrics first, would get a page a
    /// strict parser rejects.
    ///
    /// Only the registry's families with series at that moment are seen; one registered later
    /// is left out of the OpenMetrics exposition instead (and said once, through `log`).
    OpenMetricsClash {
        /// The name of perf's family, prefix included.
        name: &'static str,
        /// The registry's family it clashes with.
        theirs: String,
    },
    /// The prefix would not make valid metric names: it takes ASCII letters, digits, `_` and
    /// `:`, and does not start with a digit.
    InvalidPrefix(String),
}

impl fmt::Display for InstallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InstallError::AlreadyInstalled => f.write_str(
                "perf metrics are already installed; install them before the first request",
            ),
            InstallError::NameTaken { name, error } => write!(
                f,
                "cannot register perf's metric family `{name}`: the registry already has a \
                 family of that name ({error}). Give perf's families a prefix \
                 (`perf_runtime::Metrics::builder().prefix(\"llm_\")`), or install them in a \
                 registry of their own"
            ),
            InstallError::OpenMetricsClash { name, theirs } => write!(
                f,
                "perf's metric family `{name}` and the registry's family `{theirs}` take the \
                 same name in OpenMetrics (which names a counter without `_total`, and a \
                 family's samples after it with `_total`, `_created`, `_bucket`, `_count` or \
                 `_sum`): a strict OpenMetrics parser rejects a page with both. Give perf's \
                 families a prefix (`perf_runtime::Metrics::builder().prefix(\"llm_\")`), or \
                 install them in a registry of their own"
            ),
            InstallError::InvalidPrefix(prefix) => write!(
                f,
                "`{prefix}` cannot start a metric name: use ASCII letters, digits, `_` and `:`, \
                 not starting with a digit"
            ),
        }
    }
}

impl std::error::Error for InstallError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            InstallError::NameTaken { error, .. } => Some(error),
            _ => None,
        }
    }
}

static GLOBAL: OnceLock<&'static Metrics> = OnceLock::new();

/// Serializes making the global metrics, so that a lazy first use and an [`install`] racing on
/// two threads cannot both register the families.
///
/// [`install`]: MetricsBuilder::install
static GLOBAL_INIT: Mutex<()> = Mutex::new(());

impl Metrics {
    /// The process-wide metrics, in the default registry unless another was installed first.
    ///
    /// Made on first use. If the default registry already has a family of one of perf's names
    /// (an application's own `requests_total`), or one that takes the same name in OpenMetrics
    /// (a counter `requests`: see [`InstallError::OpenMetricsClash`]), perf logs one error
    /// (through the `log` crate)
    /// and records into a registry of its own instead, which
    /// [`exposition::render_global`](crate::exposition::render_global) serves: requests are
    /// never failed for it. [`MetricsBuilder::install`] at start-up chooses otherwise.
    pub fn global() -> &'static Metrics {
        if let Some(metrics) = GLOBAL.get() {
            return metrics;
        }
        let _init = GLOBAL_INIT.lock().unwrap_or_else(|e| e.into_inner());
        GLOBAL.get_or_init(|| {
            let builder = MetricsBuilder::new();
            let metrics = match builder.build(prometheus::default_registry()) {
                Ok(metrics) => metrics,
                Err(error) => {
                    log::error!(
                        "{error}. perf records into a registry of its own meanwhile: \
                         `prometheus::gather()` does not show perf's families, \
                         `perf_runtime::exposition::render_global()` (and its axum \
                         `metrics_handler`) does."
                    );
                    let own = Registry::new();
                    let metrics = MetricsBuilder::new().make(own.clone());
                    // A fresh registry has no name taken: this cannot fail.
                    let _ = metrics.families.register(&own);
                    metrics
                }
            };
            known::resolve_all(metrics);
            metrics
        })
    }

    /// The process-wide metrics, made now: call it at start-up so that `/metrics` shows perf's
    /// families, and each `#[perf_endpoint]`'s series, from the first scrape on.
    /// Same as [`Metrics::global`].
    pub fn init() -> &'static Metrics {
        Self::global()
    }

    /// Options for the label budget and the registry.
    pub fn builder() -> MetricsBuilder {
        MetricsBuilder::new()
    }

    /// The registry the families are registered in.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The handles of the endpoint `path`, made on first use and kept for the life of the
    /// process.
    ///
    /// `path` is cut to [`MAX_LABEL_LEN`] bytes. A name given here at run time counts against
    /// the endpoint cap ([`MetricsBuilder::endpoint_cap`], default [`DEFAULT_ENDPOINT_CAP`]):
    /// past the cap, every new name records as `endpoint="other"` ([`OVERFLOW_LABEL`]), and the
    /// names kept before stay kept. The `#[perf_endpoint]` paths of the program and the
    /// [`Endpoint`] statics are not counted: they always have their own series.
    ///
    /// Cheap enough to call once per request (a tower layer with axum's `MatchedPath`, say): an
    /// endpoint this thread resolved lately is found in a per-thread cache by a hash of `path`
    /// and one comparison, with no lock and no allocation. Otherwise it takes a read lock and
    /// hashes `path`, as does every lookup of a name past the cap.
    pub fn endpoint(&'static self, path: &str) -> &'static EndpointMetrics {
        let path = labels::truncate(path);
        if let Some(found) = endpoint_table::cached_endpoint(self, path) {
            return found;
        }
        let found = self.endpoints.resolve(self, path, Naming::RunTime);
        if found.path() == path {
            endpoint_table::remember_endpoint(found);
        }
        found
    }

    /// The handles of an endpoint named in code: not counted against the endpoint cap.
    pub(crate) fn declared_endpoint(&'static self, path: &str) -> &'static EndpointMetrics {
        self.endpoints
            .resolve(self, labels::truncate(path), Naming::Code)
    }

    /// Prices backend calls with `table` from now on (`backend_cost_usd_total`), in place of the
    /// table before, if any: each provider and model looks its price up again at its next
    /// usage. A request under way is not held up; a call whose usage is being priced as the
    /// table changes is priced with either table.
    ///
    /// Until a table is set, nothing is priced and no token counts as unpriced; once one is,
    /// the tokens of a model it does not have count in `backend_unpriced_tokens_total` (and
    /// that model is logged once).
    pub fn set_prices(&self, table: crate::prices::PriceTable) {
        self.prices.set(table);
    }

    /// The price table in use, if one was set.
    pub fn prices(&self) -> Option<Arc<crate::prices::PriceTable>> {
        self.prices.table()
    }

    /// Reads the LiteLLM-style price file at `path` ([`PriceTable::from_file`]) and, if it is
    /// valid, prices backend calls with it from now on ([`set_prices`](Self::set_prices)):
    /// call it at start and again to reload. On an error the table in use stays, and the error
    /// names the file and line. Returns how many models the new table prices.
    ///
    /// [`PriceTable::from_file`]: crate::prices::PriceTable::from_file
    #[cfg(feature = "prices")]
    pub fn load_prices(
        &self,
        path: impl AsRef<std::path::Path>,
    ) -> Result<usize, crate::prices::PriceError> {
        let table = crate::prices::PriceTable::from_file(path)?;
        let models = table.len();
        self.set_prices(table);
        Ok(models)
    }

    /// `operation_duration_seconds{operation}` of `operation`: its own series while the
    /// operation cap lasts (the endpoint cap, counted apart), `operation="other"` after.
    pub(crate) fn operation(&self, operation: &str) -> &'static Histogram {
        let operation = labels::truncate(operation);
        let family = &self.families.operation_duration;
        if let Some(found) = family.find(&[&labels::escape_reserved(operation)]) {
            return found;
        }
        family.get(&[&self.operations.admit(operation)])
    }
}

/// Builds a [`Metrics`]: label caps (`model` and `provider`; `endpoint` and `operation`), an
/// allow-list of models, a name prefix, and the registry.
pub struct MetricsBuilder {
    label_cap: usize,
    endpoint_cap: usize,
    allowed_models: Option<HashSet<Box<str>>>,
    tenant_cap: usize,
    allowed_tenants: Option<HashSet<Box<str>>>,
    prefix: String,
}

impl MetricsBuilder {
    fn new() -> Self {
        MetricsBuilder {
            label_cap: DEFAULT_LABEL_CAP,
            endpoint_cap: DEFAULT_ENDPOINT_CAP,
            allowed_models: None,
            tenant_cap: DEFAULT_LABEL_CAP,
            allowed_tenants: None,
            prefix: String::new(),
        }
    }

    /// How many distinct `tenant` values ([`current::set_tenant`](crate::current::set_tenant))
    /// are kept before the rest go to [`OVERFLOW_LABEL`]. Default [`DEFAULT_LABEL_CAP`].
    pub fn tenant_cap(mut self, cap: usize) -> Self {
        self.tenant_cap = cap;
        self
    }

    /// Keeps only these tenants as `tenant` labels; every other goes to [`OVERFLOW_LABEL`].
    pub fn allowed_tenants<I, S>(mut self, tenants: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let tenants = tenants
            .into_iter()
            .map(|t| labels::truncate(t.as_ref()).into())
            .collect();
        self.allowed_tenants = Some(tenants);
        self
    }

    /// How many distinct `model` (and `provider`) values are kept before the rest go to
    /// [`OVERFLOW_LABEL`]. Default [`DEFAULT_LABEL_CAP`].
    pub fn label_cap(mut self, cap: usize) -> Self {
        self.label_cap = cap;
        self
    }

    /// How many distinct `endpoint` values named at run time are kept before the rest go to
    /// [`OVERFLOW_LABEL`]; and, counted apart, how many distinct `operation` values of
    /// [`track_duration`](crate::track_duration). Default [`DEFAULT_ENDPOINT_CAP`], more routes
    /// than a router usually has.
    ///
    /// Counted: the paths given to [`Metrics::endpoint`], [`PerformanceTracker::new`] and
    /// [`PerformanceTracker::with_metrics`] (a tower layer's matched route, a path built at run
    /// time). Not counted, and always with their own series: the `#[perf_endpoint]` paths of the
    /// program (even when given as a `&str`) and the [`Endpoint`] statics. An endpoint kept
    /// costs a few tens of kilobytes for the life of the process (its series of every family),
    /// so the cap also bounds the memory that run-time names can take.
    ///
    /// ```
    /// let registry = prometheus::Registry::new();
    /// let metrics = perf_runtime::Metrics::builder().endpoint_cap(2).build(&registry).unwrap();
    /// for path in ["/a", "/b", "/c", "/d"] {
    ///     perf_runtime::PerformanceTracker::with_metrics(metrics, path).record_percentages();
    /// }
    /// assert_eq!(metrics.endpoint("/b").path(), "/b");
    /// assert_eq!(metrics.endpoint("/d").path(), "other");
    /// ```
    ///
    /// [`PerformanceTracker::new`]: crate::PerformanceTracker::new
    /// [`PerformanceTracker::with_metrics`]: crate::PerformanceTracker::with_metrics
    pub fn endpoint_cap(mut self, cap: usize) -> Self {
        self.endpoint_cap = cap;
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

    /// Puts `prefix` before every family name: `prefix("llm_")` makes `llm_requests_total`,
    /// `llm_backend_ttfb_seconds`, and so on. For an application that has families of the same
    /// names already; the dashboard and rules then need the same prefix (README: "Beside your
    /// application's own metrics").
    ///
    /// ```
    /// let registry = prometheus::Registry::new();
    /// let metrics = perf_runtime::Metrics::builder().prefix("llm_").build(&registry).unwrap();
    /// perf_runtime::PerformanceTracker::with_metrics(metrics, "/v1/chat/completions")
    ///     .record_percentages();
    /// let text = perf_runtime::exposition::render(metrics);
    /// assert!(text.contains("llm_requests_total{"));
    /// ```
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The metrics, registered nowhere yet.
    fn make(self, registry: Registry) -> &'static Metrics {
        Box::leak(Box::new(Metrics {
            families: Families::new(&self.prefix),
            registry,
            endpoints: EndpointTable::new(self.endpoint_cap),
            models: LabelBudget::new(self.label_cap, self.allowed_models),
            providers: LabelBudget::new(self.label_cap, None),
            operations: LabelBudget::new(self.endpoint_cap, None),
            tenants: LabelBudget::new(self.tenant_cap, self.allowed_tenants),
            tenant_sets: LeakedMap::new(),
            prices: crate::prices::PriceSlot::new(),
        }))
    }

    /// Registers the families in `registry` and returns the new metrics, kept for the life of
    /// the process. Make one per registry: each call leaks a small, fixed amount.
    ///
    /// Fails, registering nothing, if the prefix is not valid, a name is taken
    /// ([`InstallError::NameTaken`]), or a family of the registry would clash with one of perf's
    /// in OpenMetrics ([`InstallError::OpenMetricsClash`]).
    pub fn build(self, registry: &Registry) -> Result<&'static Metrics, InstallError> {
        if !valid_prefix(&self.prefix) {
            return Err(InstallError::InvalidPrefix(self.prefix));
        }
        let metrics = self.make(registry.clone());
        metrics.families.check_openmetrics(registry)?;
        metrics.families.register(registry)?;
        Ok(metrics)
    }

    /// Like [`build`](Self::build), and makes the result the process-wide [`Metrics::global`].
    /// Call it at start-up, before the first request; it also makes the series of every
    /// `#[perf_endpoint]` of the program, so that they show from the first scrape.
    pub fn install(self, registry: &Registry) -> Result<&'static Metrics, InstallError> {
        let _init = GLOBAL_INIT.lock().unwrap_or_else(|e| e.into_inner());
        if GLOBAL.get().is_some() {
            return Err(InstallError::AlreadyInstalled);
        }
        let metrics = self.build(registry)?;
        GLOBAL
            .set(metrics)
            .map_err(|_| InstallError::AlreadyInstalled)?;
        known::resolve_all(metrics);
        Ok(metrics)
    }
}

/// Whether `prefix` followed by a valid name is a valid metric name.
fn valid_prefix(prefix: &str) -> bool {
    let valid = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    prefix.chars().all(valid) && !prefix.starts_with(|c: char| c.is_ascii_digit())
}
