//! Reading recorded values back: for tests, and for tools that show figures without a
//! Prometheus server (the example gateway's `--demo` table).
//!
//! Each function reads from a [`Source`]: a [`Metrics`], whose families are read from perf's
//! metric core (native buckets included), or a [`Registry`], whose families are read as its
//! `gather()` gives them (classic buckets only: what `prometheus::gather()` shows).

use prometheus::Registry;

use super::gathered;
use super::native::{NativeReading, ZERO_THRESHOLD};
use super::reading::{Extras, HistogramReading, Kind, SeriesReading, Value};
use super::Metrics;

/// Where a snapshot reads: `&Metrics` or `&Registry`.
#[derive(Clone, Copy)]
pub enum Source<'a> {
    /// perf's families of these metrics, from perf's core: a histogram's native buckets too.
    Metrics(&'a Metrics),
    /// The families of this registry as `gather()` gives them, perf's or not: classic buckets.
    Registry(&'a Registry),
}

impl<'a> From<&'a Metrics> for Source<'a> {
    fn from(metrics: &'a Metrics) -> Self {
        Source::Metrics(metrics)
    }
}

impl<'a> From<&'a Registry> for Source<'a> {
    fn from(registry: &'a Registry) -> Self {
        Source::Registry(registry)
    }
}

/// One histogram, or the sum of several series of it, read back from a registry.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HistogramSnapshot {
    /// Number of observations.
    pub count: u64,
    /// Sum of the observations, in seconds.
    pub sum: f64,
    /// `(upper bound, cumulative count)` of each finite bucket, in increasing bound order.
    pub buckets: Vec<(f64, u64)>,
    /// The native (exponential) buckets, for the families that keep them.
    pub native: Option<NativeSnapshot>,
}

/// A histogram's native buckets: schema 3 (each bound 2^(1/8) times the one below), a zero
/// bucket up to 2^-24 s.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NativeSnapshot {
    /// Observations at or below [`zero_threshold`](Self::zero_threshold).
    pub zero_count: u64,
    /// The breadth of the zero bucket, in seconds.
    pub zero_threshold: f64,
    /// `(lower bound, upper bound, count)` of each non-empty bucket, in increasing order.
    pub buckets: Vec<(f64, f64, u64)>,
}

impl NativeSnapshot {
    /// The `q` quantile, interpolated within its bucket as Prometheus 2.42's
    /// `histogram_quantile` does for native histograms; `None` without observations.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let count = self.zero_count + self.buckets.iter().map(|b| b.2).sum::<u64>();
        if count == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = q * count as f64;
        let mut seen = self.zero_count as f64;
        if rank <= seen {
            return Some(self.zero_threshold * rank / seen);
        }
        for &(lower, upper, in_bucket) in &self.buckets {
            if rank <= seen + in_bucket as f64 {
                return Some(lower + (upper - lower) * (rank - seen) / in_bucket as f64);
            }
            seen += in_bucket as f64;
        }
        self.buckets.last().map(|b| b.1)
    }

    /// Adds another series' buckets (the same schema: equal bounds are the same bucket).
    fn merge(&mut self, other: NativeSnapshot) {
        self.zero_count += other.zero_count;
        self.zero_threshold = other.zero_threshold;
        for bucket in other.buckets {
            match self.buckets.binary_search_by(|b| b.1.total_cmp(&bucket.1)) {
                Ok(at) => self.buckets[at].2 += bucket.2,
                Err(at) => self.buckets.insert(at, bucket),
            }
        }
    }
}

impl From<&NativeReading> for NativeSnapshot {
    fn from(reading: &NativeReading) -> Self {
        NativeSnapshot {
            zero_count: reading.zero_count,
            zero_threshold: ZERO_THRESHOLD,
            buckets: reading
                .buckets
                .iter()
                .map(|&(index, count)| {
                    let bound = NativeReading::upper_bound;
                    (bound(index - 1), bound(index), count)
                })
                .collect(),
        }
    }
}

impl HistogramSnapshot {
    /// The mean observation, if there was any.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }

    /// The `q` quantile, interpolated within its bucket as Prometheus' `histogram_quantile` does:
    /// from the native buckets where the series keeps them (within 4.3 % at any scale), else from
    /// the classic ones.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if let Some(native) = &self.native {
            return native.quantile(q);
        }
        if self.count == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = q * self.count as f64;
        let mut lower = (0.0, 0u64);
        for &(bound, cumulative) in &self.buckets {
            if cumulative as f64 >= rank {
                let in_bucket = (cumulative - lower.1) as f64;
                let fraction = if in_bucket > 0.0 {
                    (rank - lower.1 as f64) / in_bucket
                } else {
                    1.0
                };
                return Some(lower.0 + (bound - lower.0) * fraction);
            }
            lower = (bound, cumulative);
        }
        // In the +Inf bucket: the highest finite bound is the best answer, as in Prometheus.
        Some(lower.0)
    }

    /// Adds the observations of one series (with the same buckets) to these.
    fn merge(&mut self, reading: &HistogramReading) {
        self.count += reading.count;
        self.sum += reading.sum;
        if let Some(native) = &reading.native {
            self.native
                .get_or_insert_with(Default::default)
                .merge(NativeSnapshot::from(native));
        }
        for (i, &(bound, cumulative)) in reading.buckets.iter().enumerate() {
            match self.buckets.get_mut(i) {
                Some(slot) => slot.1 += cumulative,
                None => self.buckets.push((bound, cumulative)),
            }
        }
    }
}

/// The values of the series of `family` in `from` whose labels include every pair of `labels`.
fn matching(from: Source<'_>, family: &str, labels: &[(&str, &str)]) -> Vec<Value> {
    let series: Vec<SeriesReading> = match from {
        Source::Metrics(metrics) => metrics
            .families
            .all()
            .into_iter()
            .filter(|f| f.name() == family)
            .flat_map(|f| {
                // Native buckets for the quantiles; no exemplars.
                f.read(Extras {
                    exemplars: false,
                    native: true,
                })
                .series
            })
            .collect(),
        Source::Registry(registry) => registry
            .gather()
            .iter()
            .filter(|f| f.name() == family)
            .filter_map(|f| gathered::read(f).ok())
            .flat_map(|f| f.series)
            .collect(),
    };
    series
        .into_iter()
        .filter(|series| series.matches(labels))
        .map(|series| series.value)
        .collect::<Vec<_>>()
}

/// The sum of the series of the histogram `family` whose labels include `labels`, or `None` if
/// no series matches.
pub fn histogram<'a>(
    from: impl Into<Source<'a>>,
    family: &str,
    labels: &[(&str, &str)],
) -> Option<HistogramSnapshot> {
    let mut snapshot: Option<HistogramSnapshot> = None;
    for value in matching(from.into(), family, labels) {
        if let Value::Histogram(reading) = value {
            snapshot
                .get_or_insert_with(Default::default)
                .merge(&reading);
        }
    }
    snapshot
}

/// The value of the first series of the gauge `family` whose labels include `labels`.
pub fn gauge<'a>(
    from: impl Into<Source<'a>>,
    family: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    numbers(from, family, labels, Kind::Gauge).next()
}

/// The sum of the series of the counter `family` (`requests_total`) whose labels include
/// `labels`, or `None` if no series matches.
pub fn counter<'a>(
    from: impl Into<Source<'a>>,
    family: &str,
    labels: &[(&str, &str)],
) -> Option<u64> {
    // Whole counts add up exactly as floats below 2^53.
    amount(from, family, labels).map(|sum| sum as u64)
}

/// The sum of the series of the counter `family` whose labels include `labels`, as a
/// fraction (`backend_cost_usd_total`, in US dollars), or `None` if no series matches.
pub fn amount<'a>(
    from: impl Into<Source<'a>>,
    family: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    numbers(from, family, labels, Kind::Counter).reduce(|a, b| a + b)
}

/// The values of the series of `family` whose labels include `labels`, if it is a family of
/// counters or gauges as `kind` says.
fn numbers<'a>(
    from: impl Into<Source<'a>>,
    family: &str,
    labels: &[(&str, &str)],
    kind: Kind,
) -> impl Iterator<Item = f64> {
    matching(from.into(), family, labels)
        .into_iter()
        .filter_map(move |value| match (value, kind) {
            (Value::Counter(number), Kind::Counter) | (Value::Gauge(number), Kind::Gauge) => {
                Some(number)
            }
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_like_prometheus() {
        let snapshot = HistogramSnapshot {
            count: 10,
            sum: 5.0,
            buckets: vec![(0.1, 0), (0.5, 5), (1.0, 10)],
            native: None,
        };
        assert_eq!(snapshot.quantile(0.5), Some(0.5));
        assert!((snapshot.quantile(0.25).unwrap() - 0.3).abs() < 1e-9);
        assert!((snapshot.quantile(0.75).unwrap() - 0.75).abs() < 1e-9);
        assert_eq!(snapshot.mean(), Some(0.5));
        assert_eq!(HistogramSnapshot::default().quantile(0.5), None);
    }
}
