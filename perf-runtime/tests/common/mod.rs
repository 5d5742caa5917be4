//! Lookups shared by the integration tests: read a registry back, series by series.
//!
//! Every test binary includes this module and uses a different part of it.
#![allow(dead_code)]

use std::collections::BTreeSet;

use prometheus::proto::{Metric, MetricFamily, MetricType};
use prometheus::Registry;

use perf_runtime::{Metrics, PerformanceTracker};

mod timing;
#[allow(unused_imports)] // only the binaries that time something use them
pub use timing::*;

/// The endpoint of the seed's example.
pub const CHAT: &str = "/v1/chat/completions";

/// A fresh registry with its own metrics: what keeps tests running in parallel apart.
pub fn private_metrics() -> (Registry, &'static Metrics) {
    let registry = Registry::new();
    let metrics = Metrics::builder()
        .build(&registry)
        .expect("a fresh registry takes the families");
    (registry, metrics)
}

/// A fresh registry, its metrics, and a tracker for `endpoint` recording into them.
pub fn private_tracker(endpoint: &str) -> (Registry, &'static Metrics, PerformanceTracker) {
    let (registry, metrics) = private_metrics();
    let tracker = PerformanceTracker::with_metrics(metrics, endpoint);
    (registry, metrics, tracker)
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

/// The value of the one gauge series of `family` with `labels`.
pub fn gauge(registry: &Registry, family_name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    // Read through perf's snapshots: a gauge's proto accessor changes with prometheus' features.
    one_series(registry, family_name, labels)?;
    perf_runtime::metrics::snapshot::gauge(registry, family_name, labels)
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
    perf_runtime::metrics::snapshot::counter(
        registry,
        "requests_total",
        &[("endpoint", endpoint), ("outcome", outcome)],
    )
    .unwrap_or(0)
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

/// One sample line of the text exposition, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    /// Label names and their unescaped values, in order.
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn is_name(s: &str, colon: bool) -> bool {
    let mut chars = s.chars();
    let first_ok = |c: char| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':');
    match chars.next() {
        Some(c) if first_ok(c) => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':'))
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s
            .parse::<f64>()
            .map_err(|e| format!("bad value {s:?}: {e}")),
    }
}

/// Parses one sample line: `name{label="value",...} value [timestamp]`.
pub fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(['{', ' '])
        .ok_or_else(|| format!("no value in {line:?}"))?;
    let name = &line[..name_end];
    if !is_name(name, true) {
        return Err(format!("bad metric name {name:?} in {line:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = after;
        loop {
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = rest
                .find('=')
                .ok_or_else(|| format!("label without '=' in {line:?}"))?;
            let label_name = &rest[..eq];
            if !is_name(label_name, false) {
                return Err(format!("bad label name {label_name:?} in {line:?}"));
            }
            rest = rest[eq + 1..]
                .strip_prefix('"')
                .ok_or_else(|| format!("unquoted label value in {line:?}"))?;
            let mut value = String::new();
            let mut chars = rest.char_indices();
            let end = loop {
                match chars.next() {
                    None => return Err(format!("unterminated label value in {line:?}")),
                    Some((i, '"')) => break i,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        Some((_, 'n')) => value.push('\n'),
                        other => return Err(format!("bad escape {other:?} in {line:?}")),
                    },
                    Some((_, c)) => value.push(c),
                }
            };
            labels.push((label_name.to_owned(), value));
            rest = &rest[end + 1..];
            if let Some(after) = rest.strip_prefix(',') {
                rest = after;
            } else if !rest.starts_with('}') {
                return Err(format!("expected ',' or '}}' after a label in {line:?}"));
            }
        }
    }
    let rest = rest
        .strip_prefix(' ')
        .ok_or_else(|| format!("no space before the value in {line:?}"))?;
    let mut fields = rest.split(' ');
    let value = parse_value(fields.next().unwrap_or_default())?;
    if let Some(ts) = fields.next() {
        ts.parse::<i64>()
            .map_err(|e| format!("bad timestamp {ts:?} in {line:?}: {e}"))?;
    }
    if fields.next().is_some() {
        return Err(format!("trailing fields in {line:?}"));
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Checks a whole text exposition: it ends with a newline, every line is a `# HELP`/`# TYPE`
/// comment or a sample, and every sample follows a `# TYPE` of its family. Returns the samples.
pub fn check_exposition(text: &str) -> Result<Vec<Sample>, String> {
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("the exposition does not end with a newline".into());
    }
    let mut samples = Vec::new();
    let mut typed: Option<String> = None;
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.trim_start().splitn(3, ' ');
            match words.next() {
                Some("HELP") => {
                    let name = words.next().unwrap_or_default();
                    if !is_name(name, true) {
                        return Err(format!("bad HELP line {line:?}"));
                    }
                }
                Some("TYPE") => {
                    let name = words.next().unwrap_or_default();
                    let kind = words.next().unwrap_or_default();
                    if !is_name(name, true)
                        || !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind)
                    {
                        return Err(format!("bad TYPE line {line:?}"));
                    }
                    typed = Some(name.to_owned());
                }
                _ => {}
            }
            continue;
        }
        let sample = parse_sample(line)?;
        let family = typed
            .as_deref()
            .ok_or_else(|| format!("sample before any TYPE: {line:?}"))?;
        let own = sample.name == family
            || ["_bucket", "_sum", "_count"]
                .iter()
                .any(|suffix| sample.name.strip_suffix(suffix) == Some(family));
        if !own {
            return Err(format!("sample {line:?} outside its family {family}"));
        }
        samples.push(sample);
    }
    Ok(samples)
}
