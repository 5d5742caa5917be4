//! The one reader of registries the tests have: perf's families (or an application's) read back
//! by family and labels, so that a test compares counts before and after what it does instead of
//! parsing an exposition.
//!
//! Every function takes the registry it reads: [`global`] for the global metrics' (the one
//! `#[perf_endpoint]`, `PerfLayer::new()` and the example gateway record into), or a test's own
//! ([`private_metrics`](crate::private_metrics)). Values of perf's families are read from perf's
//! core through `perf_runtime::metrics::snapshot`, as `/metrics` and the `--demo` table read
//! them (a counter's proto accessor changes with prometheus' features); the shape of a family
//! (its series, label names, buckets, type) from the `prometheus` crate's proto model, which
//! sees an application's families too.

use std::collections::BTreeSet;

use perf_runtime::metrics::snapshot;
pub use perf_runtime::metrics::snapshot::HistogramSnapshot;
use perf_runtime::Metrics;
use prometheus::proto::{Metric, MetricFamily, MetricType};
use prometheus::Registry;

/// The global metrics' registry (made now if they were not: a test that installs them with
/// settings of its own starts the gateway before it reads).
pub fn global() -> &'static Registry {
    Metrics::global().registry()
}

/// The family called `name`, as gathered now (families without series are not gathered).
pub fn family(registry: &Registry, name: &str) -> Option<MetricFamily> {
    registry.gather().into_iter().find(|f| f.name() == name)
}

/// The value of label `name` on `metric`.
pub fn label<'a>(metric: &'a Metric, name: &str) -> Option<&'a str> {
    metric
        .get_label()
        .iter()
        .find(|l| l.name() == name)
        .map(|l| l.value())
}

fn matches(metric: &Metric, labels: &[(&str, &str)]) -> bool {
    labels
        .iter()
        .all(|(name, value)| label(metric, name) == Some(*value))
}

/// Every series of `family` whose labels include all of `labels`.
pub fn series(registry: &Registry, family_name: &str, labels: &[(&str, &str)]) -> Vec<Metric> {
    family(registry, family_name)
        .map(|f| {
            f.get_metric()
                .iter()
                .filter(|m| matches(m, labels))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// The one series of `family` with `labels` (a subset of its labels), if it exists; panics if
/// `labels` select more than one series.
pub fn one_series(
    registry: &Registry,
    family_name: &str,
    labels: &[(&str, &str)],
) -> Option<Metric> {
    let mut found = series(registry, family_name, labels);
    assert!(
        found.len() <= 1,
        "{family_name}{labels:?} selects {} series, not one",
        found.len()
    );
    found.pop()
}

/// `(sample count, sample sum)` of the one histogram series of `family` with `labels`.
pub fn histogram(
    registry: &Registry,
    family_name: &str,
    labels: &[(&str, &str)],
) -> Option<(u64, f64)> {
    one_series(registry, family_name, labels).map(|m| {
        let h = m.get_histogram();
        (h.get_sample_count(), h.get_sample_sum())
    })
}

/// The sample count of the one histogram series with `labels`, 0 if it does not exist.
pub fn count(registry: &Registry, family_name: &str, labels: &[(&str, &str)]) -> u64 {
    histogram(registry, family_name, labels).map_or(0, |(c, _)| c)
}

/// The sample sum of the one histogram series with `labels`, 0 if it does not exist.
pub fn sum(registry: &Registry, family_name: &str, labels: &[(&str, &str)]) -> f64 {
    histogram(registry, family_name, labels).map_or(0.0, |(_, s)| s)
}

/// `(sample count, sample sum)` added over every histogram series with `labels`.
pub fn histogram_total(
    registry: &Registry,
    family_name: &str,
    labels: &[(&str, &str)],
) -> (u64, f64) {
    series(registry, family_name, labels)
        .iter()
        .fold((0, 0.0), |(c, s), m| {
            let h = m.get_histogram();
            (c + h.get_sample_count(), s + h.get_sample_sum())
        })
}

/// The one histogram series of perf's `family` with `labels`, with its buckets, native ones and
/// quantiles, if it exists; panics if `labels` select more than one series.
pub fn snapshot(
    registry: &Registry,
    family_name: &str,
    labels: &[(&str, &str)],
) -> Option<HistogramSnapshot> {
    one_series(registry, family_name, labels)?;
    snapshot::histogram(registry, family_name, labels)
}

/// Counter `family` summed over the series whose labels include `labels`, 0 if none exists yet.
pub fn counter(registry: &Registry, family_name: &str, labels: &[(&str, &str)]) -> u64 {
    snapshot::counter(registry, family_name, labels).unwrap_or(0)
}

/// The fractional counter `family` (`backend_cost_usd_total`, in US dollars) summed over the
/// series whose labels include `labels`, 0 if none exists yet.
pub fn amount(registry: &Registry, family_name: &str, labels: &[(&str, &str)]) -> f64 {
    snapshot::amount(registry, family_name, labels).unwrap_or(0.0)
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

    /// The counts of `endpoint` in the global metrics now.
    pub fn of(endpoint: &str) -> Outcomes {
        Outcomes::in_registry(global(), endpoint)
    }

    /// The counts of `endpoint` in `registry` now.
    pub fn in_registry(registry: &Registry, endpoint: &str) -> Outcomes {
        let get = |name| outcome(registry, endpoint, name);
        Outcomes::new(get("completed"), get("error"), get("cancelled"))
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

/// The value of the one gauge series of `family` with `labels`.
pub fn gauge(registry: &Registry, family_name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    // Read through perf's snapshots: a gauge's proto accessor changes with prometheus' features.
    one_series(registry, family_name, labels)?;
    snapshot::gauge(registry, family_name, labels)
}

/// The upper bounds of the buckets of every series of `family` (the +Inf bucket is implicit);
/// panics if two series disagree.
pub fn bucket_bounds(registry: &Registry, family_name: &str) -> Vec<f64> {
    let f = family(registry, family_name).unwrap_or_else(|| panic!("no family {family_name}"));
    let mut bounds: Option<Vec<f64>> = None;
    for m in f.get_metric() {
        let these: Vec<f64> = m
            .get_histogram()
            .get_bucket()
            .iter()
            .map(|b| b.upper_bound())
            .collect();
        if let Some(seen) = &bounds {
            assert_eq!(seen, &these, "{family_name}: series with different buckets");
        }
        bounds = Some(these);
    }
    bounds.unwrap_or_default()
}

/// How many series `family` has.
pub fn series_count(registry: &Registry, family_name: &str) -> usize {
    family(registry, family_name).map_or(0, |f| f.get_metric().len())
}

/// The distinct values label `name` takes across `family`.
pub fn label_values(registry: &Registry, family_name: &str, name: &str) -> BTreeSet<String> {
    family(registry, family_name)
        .map(|f| {
            f.get_metric()
                .iter()
                .filter_map(|m| label(m, name).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The label names of every series of `family` (panics if two series disagree), sorted.
pub fn label_names(registry: &Registry, family_name: &str) -> Vec<String> {
    let f = family(registry, family_name).unwrap_or_else(|| panic!("no family {family_name}"));
    let mut names: Option<Vec<String>> = None;
    for m in f.get_metric() {
        let mut these: Vec<String> = m.get_label().iter().map(|l| l.name().to_owned()).collect();
        these.sort();
        if let Some(seen) = &names {
            assert_eq!(
                seen, &these,
                "{family_name}: series with different label names"
            );
        }
        names = Some(these);
    }
    names.unwrap_or_default()
}

/// The type of `family`.
pub fn family_type(registry: &Registry, family_name: &str) -> MetricType {
    family(registry, family_name)
        .unwrap_or_else(|| panic!("no family {family_name}"))
        .get_field_type()
}

/// Observations of `stage` of `endpoint` in `request_stage_duration_seconds`.
pub fn stage_count(registry: &Registry, endpoint: &str, stage: &str) -> u64 {
    count(
        registry,
        "request_stage_duration_seconds",
        &[("stage", stage), ("endpoint", endpoint)],
    )
}

/// Seconds recorded for `stage` of `endpoint` in `request_stage_duration_seconds`.
pub fn stage_sum(registry: &Registry, endpoint: &str, stage: &str) -> f64 {
    sum(
        registry,
        "request_stage_duration_seconds",
        &[("stage", stage), ("endpoint", endpoint)],
    )
}

/// `(count, sum)` of `frontend_processing_seconds{endpoint}`; the series exists from the
/// endpoint's first request.
pub fn frontend(registry: &Registry, endpoint: &str) -> (u64, f64) {
    histogram(
        registry,
        "frontend_processing_seconds",
        &[("endpoint", endpoint)],
    )
    .expect("the endpoint's frontend series exists")
}

/// Observations of `frontend_processing_seconds{endpoint}`, 0 if the series does not exist.
pub fn frontend_count(registry: &Registry, endpoint: &str) -> u64 {
    count(
        registry,
        "frontend_processing_seconds",
        &[("endpoint", endpoint)],
    )
}

/// `requests_total{endpoint, outcome}` of `registry`, 0 if the series does not exist.
pub fn outcome(registry: &Registry, endpoint: &str, outcome: &str) -> u64 {
    counter(
        registry,
        "requests_total",
        &[("endpoint", endpoint), ("outcome", outcome)],
    )
}

/// `stage_percentage` of `endpoint`: frontend_processing, backend_response, stream_processing.
/// A gauge that does not exist reads 0.
pub fn percentages(registry: &Registry, endpoint: &str) -> [f64; 3] {
    [
        "frontend_processing",
        "backend_response",
        "stream_processing",
    ]
    .map(|stage| {
        gauge(
            registry,
            "stage_percentage",
            &[("stage", stage), ("endpoint", endpoint)],
        )
        .unwrap_or(0.0)
    })
}

/// Asserts that the three percentages of `endpoint` were set: each in 0..=100, summing to 100.
pub fn assert_percentages_set(registry: &Registry, endpoint: &str) -> [f64; 3] {
    let p = percentages(registry, endpoint);
    for v in p {
        assert!(
            (0.0..=100.0).contains(&v),
            "percentage {v} out of range: {p:?}"
        );
    }
    let total: f64 = p.iter().sum();
    assert!(
        (total - 100.0).abs() < 0.01,
        "percentages {p:?} sum to {total}, not 100"
    );
    p
}

/// Asserts that no percentage of `endpoint` was ever set: its `stage_percentage` series do not
/// exist (they are made when a request of the endpoint first sets them, so an endpoint that
/// never completed a request shows no split rather than a false 0 %).
pub fn assert_no_percentages(registry: &Registry, endpoint: &str) {
    let set = series(registry, "stage_percentage", &[("endpoint", endpoint)]);
    assert!(
        set.is_empty(),
        "percentages of {endpoint} were set: {:?}",
        percentages(registry, endpoint)
    );
}

/// `a` and `b` equal within a relative tolerance (sums of floats added in different orders).
pub fn assert_close(a: f64, b: f64, what: &str) {
    let tolerance = 1e-9_f64.max(1e-9 * a.abs().max(b.abs()));
    assert!((a - b).abs() <= tolerance, "{what}: {a} != {b}");
}
