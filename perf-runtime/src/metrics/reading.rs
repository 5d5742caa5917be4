//! What a family holds at one scrape, as plain data read from perf's own metric core.
//!
//! Every way out of perf reads this and nothing else: the `prometheus` crate's proto model (for
//! `prometheus::gather()`), perf's text writer (for `/metrics`) and the snapshots of tests and
//! the `--demo` table. The proto model changes with the `prometheus` crate's features
//! (`protobuf` swaps it for generated code with other accessors), so perf never reads it back.

/// The Prometheus type of a family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One sample set: a counter's count, a gauge's value, a histogram's buckets.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    Counter(u64),
    Gauge(f64),
    Histogram {
        /// `(upper bound, cumulative count)` of each finite bucket, in increasing bound order.
        buckets: Vec<(f64, u64)>,
        count: u64,
        /// In seconds.
        sum: f64,
    },
}

/// One series: its labels sorted by name, and its value.
#[derive(Clone, Debug)]
pub(crate) struct SeriesReading {
    pub labels: Vec<(&'static str, String)>,
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
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub series: Vec<SeriesReading>,
}

/// A family of perf's, as the exposition and the snapshots see it: whatever its series type.
pub(crate) trait ReadFamily: Sync {
    fn name(&self) -> &'static str;
    fn read(&self) -> FamilyReading;
}
