//! Reading perf's metrics back from the default registry, by family and labels, so that a test
//! can compare a count before and after what it does instead of parsing the exposition.

use perf_runtime::metrics::snapshot::{self, HistogramSnapshot};
use perf_runtime::Metrics;
use prometheus::proto::{Metric, MetricFamily};

use super::runtime;

pub use super::runtime::label;

/// The family called `name` in the default registry.
pub fn family(name: &str) -> MetricFamily {
    runtime::family(prometheus::default_registry(), name)
        .unwrap_or_else(|| panic!("no family {name}"))
}

/// The series of `family` whose labels include every pair of `labels`.
pub fn series<'a>(family: &'a MetricFamily, labels: &[(&str, &str)]) -> Vec<&'a Metric> {
    family
        .get_metric()
        .iter()
        .filter(|m| labels.iter().all(|(k, v)| label(m, k) == Some(v)))
        .collect()
}

/// The histogram series of family `name` with exactly `labels`, if it has been created.
pub fn try_histogram(name: &str, labels: &[(&str, &str)]) -> Option<HistogramSnapshot> {
    let family = prometheus::gather()
        .into_iter()
        .find(|f| f.name() == name)?;
    let found = series(&family, labels);
    assert!(
        found.len() <= 1,
        "at most one series of {name} with {labels:?}"
    );
    found.first()?;
    snapshot::histogram(Metrics::global().registry(), name, labels)
}

/// `(count, sum)` of the histogram series of family `name` with exactly `labels`.
pub fn histogram(name: &str, labels: &[(&str, &str)]) -> (u64, f64) {
    let h = try_histogram(name, labels).unwrap_or_else(|| panic!("no {name} with {labels:?}"));
    (h.count, h.sum)
}

/// The value of the gauge series of family `name` with `labels`.
pub fn gauge(name: &str, labels: &[(&str, &str)]) -> f64 {
    try_gauge(name, labels).unwrap_or_else(|| panic!("no {name} with {labels:?}"))
}

/// The value of the first gauge series of family `name` with `labels`, if one was set.
pub fn try_gauge(name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    snapshot::gauge(Metrics::global().registry(), name, labels)
}

/// The sum of the fractional counter series of family `name` with `labels`
/// (`backend_cost_usd_total`, in US dollars), 0 if none exists yet.
pub fn amount(name: &str, labels: &[(&str, &str)]) -> f64 {
    snapshot::amount(Metrics::global().registry(), name, labels).unwrap_or(0.0)
}

/// The value of the counter series of family `name` with `labels`, 0 if it does not exist yet
/// (read from perf's core: a counter's proto accessor changes with prometheus' features).
pub fn counter(name: &str, labels: &[(&str, &str)]) -> u64 {
    snapshot::counter(Metrics::global().registry(), name, labels).unwrap_or(0)
}

/// `requests_total{endpoint}` by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcomes {
    pub completed: u64,
    pub error: u64,
    pub cancelled: u64,
}

impl Outcomes {
    /// These counts: completed, error, cancelled.
    pub fn new(completed: u64, error: u64, cancelled: u64) -> Outcomes {
        Outcomes {
            completed,
            error,
            cancelled,
        }
    }

    /// The counts of `endpoint` now.
    pub fn of(endpoint: &str) -> Outcomes {
        let get = |outcome| {
            counter(
                "requests_total",
                &[("endpoint", endpoint), ("outcome", outcome)],
            )
        };
        Outcomes {
            completed: get("completed"),
            error: get("error"),
            cancelled: get("cancelled"),
        }
    }

    /// The requests that ended since `before`.
    pub fn since(self, before: Outcomes) -> Outcomes {
        Outcomes {
            completed: self.completed - before.completed,
            error: self.error - before.error,
            cancelled: self.cancelled - before.cancelled,
        }
    }

    pub fn total(self) -> u64 {
        self.completed + self.error + self.cancelled
    }
}

/// The sample count of the histogram series of family `name` with exactly `labels`, 0 if it
/// does not exist yet.
pub fn count(name: &str, labels: &[(&str, &str)]) -> u64 {
    try_histogram(name, labels).map_or(0, |h| h.count)
}

/// `backend_errors_total{provider, model, endpoint, kind}` now, 0 if that series does not
/// exist yet.
pub fn backend_errors(provider: &str, model: &str, endpoint: &str, kind: &str) -> u64 {
    counter(
        "backend_errors_total",
        &[
            ("provider", provider),
            ("model", model),
            ("endpoint", endpoint),
            ("kind", kind),
        ],
    )
}

/// The stages every request of the gateway goes through, in order.
pub const STAGES: [&str; 5] = [
    "request_parsing",
    "auth_validation",
    "request_preparation",
    "backend_fetch",
    "stream_processing",
];

/// `request_stage_duration_seconds{stage, endpoint}` observations.
pub fn stage_count(endpoint: &str, stage: &str) -> u64 {
    count(
        "request_stage_duration_seconds",
        &[("stage", stage), ("endpoint", endpoint)],
    )
}

/// The observations of each of [`STAGES`] at `endpoint`.
pub fn stage_counts(endpoint: &str) -> [u64; 5] {
    STAGES.map(|stage| stage_count(endpoint, stage))
}

/// `frontend_processing_seconds{endpoint}` observations.
pub fn frontend_count(endpoint: &str) -> u64 {
    count("frontend_processing_seconds", &[("endpoint", endpoint)])
}

/// `(backend_ttfb count, streaming_duration count)` of `model` at `endpoint` (provider mock).
pub fn backend_counts(endpoint: &str, model: &str) -> (u64, u64) {
    let labels = [
        ("provider", "mock"),
        ("model", model),
        ("endpoint", endpoint),
    ];
    (
        count("backend_ttfb_seconds", &labels),
        count("streaming_duration_seconds", &labels),
    )
}

/// `after - before`, element by element.
pub fn diff<const N: usize>(after: [u64; N], before: [u64; N]) -> [u64; N] {
    std::array::from_fn(|i| after[i] - before[i])
}

/// The `usage` the mock reports for a prompt of `prompt_chars` characters and an answer of
/// `chunks` words (src/gateway/mock: a quarter of the characters rounded up, half of them
/// cached; one token per word, a quarter of them reasoning).
pub fn mock_usage(prompt_chars: u64, chunks: u64) -> perf_runtime::Usage {
    let input = prompt_chars.div_ceil(4);
    perf_runtime::Usage {
        input,
        output: chunks,
        cached_input: input / 2,
        reasoning: chunks / 4,
        cache_write: 0,
    }
}

/// `backend_tokens_total{provider="mock", model, endpoint, type}` of each type, 0 for a type
/// not counted yet.
pub fn mock_tokens(model: &str, endpoint: &str) -> perf_runtime::Usage {
    let get = |kind| {
        counter(
            "backend_tokens_total",
            &[
                ("provider", "mock"),
                ("model", model),
                ("endpoint", endpoint),
                ("type", kind),
            ],
        )
    };
    perf_runtime::Usage {
        input: get("input"),
        output: get("output"),
        cached_input: get("cached_input"),
        reasoning: get("reasoning"),
        cache_write: get("cache_write"),
    }
}
