//! What a family holds at one scrape, as plain data: what every way out of perf reads.
//!
//! perf's families read themselves into it from perf's metric core; the application's families
//! are read into it from the `prometheus` crate's proto model with accessors every feature set
//! of that crate has (`gathered.rs`). The text, OpenMetrics and protobuf writers, the
//! `prometheus::gather()` bridge, the OTLP export and the snapshots of tests and the `--demo`
//! table read only this.

use std::borrow::Cow;

use super::native::NativeReading;
use crate::trace::TraceId;

/// The Prometheus type of a family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Histogram,
    /// Only among the application's families.
    Summary,
    /// Only among the application's families.
    Untyped,
}

/// One sample set: a counter's count, a gauge's value, a histogram's buckets.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    Counter(f64),
    Gauge(f64),
    Histogram(HistogramReading),
    Summary {
        /// `(quantile, value)`.
        quantiles: Vec<(f64, f64)>,
        count: u64,
        sum: f64,
    },
}

/// A histogram series at one scrape.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct HistogramReading {
    /// `(upper bound, cumulative count)` of each finite bucket, in increasing bound order.
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    /// In seconds.
    pub sum: f64,
    /// The latest exemplar of each bucket, `+Inf` last; empty if the series keeps none.
    pub exemplars: Vec<Option<ExemplarReading>>,
    /// The native (sparse exponential) buckets, if the series keeps them.
    pub native: Option<NativeReading>,
}

/// A bucket's latest exemplar.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct ExemplarReading {
    pub trace: TraceId,
    /// The observation, in seconds.
    pub value: f64,
    /// When it was observed, in seconds since the Unix epoch.
    pub timestamp: f64,
}

/// One series: its labels sorted by name, and its value.
#[derive(Clone, Debug)]
pub(crate) struct SeriesReading {
    pub labels: Vec<(Cow<'static, str>, String)>,
    pub value: Value,
}

impl SeriesReading {
    /// Whether every `(name, value)` of `wanted` is among this series' labels.
    pub fn matches(&self, wanted: &[(&str, &str)]) -> bool {
        wanted
            .iter()
            .all(|(name, value)| self.labels.iter().any(|(n, v)| n == name && v == value))
    }
}

/// One family: its name, help, type and series, sorted as `Registry::gather` sorts them (by
/// label values, labels taken in name order).
#[derive(Clone, Debug)]
pub(crate) struct FamilyReading {
    pub name: Cow<'static, str>,
    pub help: Cow<'static, str>,
    pub kind: Kind,
    pub series: Vec<SeriesReading>,
}

impl FamilyReading {
    /// The unit OpenMetrics declares for the family: perf's durations end in `_seconds`.
    pub fn unit(&self) -> Option<&'static str> {
        (self.kind == Kind::Histogram && self.name.ends_with("_seconds")).then_some("seconds")
    }
}

/// A family's name in OpenMetrics: a counter's without its `_total`, which only its samples keep.
pub(crate) fn openmetrics_name(name: &str, kind: Kind) -> &str {
    match kind {
        Kind::Counter => name.strip_suffix("_total").unwrap_or(name),
        _ => name,
    }
}

/// Every name a family takes in OpenMetrics: its family name, and that name followed by each
/// suffix its type gives samples (`_created` included, which OpenMetrics reserves even unwritten).
///
/// No two families of one OpenMetrics exposition may share one: a strict parser (the reference
/// one, Python `prometheus_client`'s) rejects the whole page ("Clashing name"). The Prometheus
/// registry only keeps family names apart, so an application's counter `requests` sits beside
/// perf's `requests_total` there, and both are `requests` in OpenMetrics.
pub(crate) fn openmetrics_names(name: &str, kind: Kind) -> impl Iterator<Item = String> + '_ {
    let suffixes: &[&str] = match kind {
        Kind::Counter => &["_total", "_created"],
        Kind::Histogram => &["_bucket", "_count", "_sum", "_created"],
        Kind::Summary => &["_count", "_sum", "_created"],
        Kind::Gauge | Kind::Untyped => &[],
    };
    let name = openmetrics_name(name, kind);
    std::iter::once(String::new())
        .chain(suffixes.iter().map(|s| s.to_string()))
        .map(move |suffix| format!("{name}{suffix}"))
}

/// What a histogram keeps beyond its classic buckets, or what a reader wants of it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Extras {
    /// The latest exemplar of each bucket (a traced observation's trace id).
    pub exemplars: bool,
    /// Native buckets, for Prometheus' protobuf format.
    pub native: bool,
}

impl Extras {
    /// Exemplars and native buckets.
    pub const ALL: Extras = Extras {
        exemplars: true,
        native: true,
    };
}

/// A family of perf's, as the exposition and the snapshots see it: whatever its series type.
pub(crate) trait ReadFamily: Sync {
    fn name(&self) -> &'static str;
    /// The family now, with the exemplars and native buckets `want` asks for.
    fn read(&self, want: Extras) -> FamilyReading;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_names_follow_the_type() {
        let names = |name, kind| openmetrics_names(name, kind).collect::<Vec<_>>();
        assert_eq!(
            names("requests_total", Kind::Counter),
            ["requests", "requests_total", "requests_created"]
        );
        // A counter named without `_total` takes the same names.
        assert_eq!(
            names("requests", Kind::Counter),
            names("requests_total", Kind::Counter)
        );
        assert_eq!(
            names("x_seconds", Kind::Histogram),
            [
                "x_seconds",
                "x_seconds_bucket",
                "x_seconds_count",
                "x_seconds_sum",
                "x_seconds_created"
            ]
        );
        assert_eq!(
            names("q", Kind::Summary),
            ["q", "q_count", "q_sum", "q_created"]
        );
        assert_eq!(names("g_total", Kind::Gauge), ["g_total"]);
        assert_eq!(names("u", Kind::Untyped), ["u"]);
    }
}
