//! Reading recorded values back from a registry: for tests, and for tools that show figures
//! without a Prometheus server (the example gateway's `--demo` table).

use prometheus::proto::{Metric, MetricFamily};
use prometheus::Registry;

/// One histogram, or the sum of several series of it, read back from a registry.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HistogramSnapshot {
    /// Number of observations.
    pub count: u64,
    /// Sum of the observations, in seconds.
    pub sum: f64,
    /// `(upper bound, cumulative count)` of each finite bucket, in increasing bound order.
    pub buckets: Vec<(f64, u64)>,
}

impl HistogramSnapshot {
    /// The mean observation, if there was any.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }

    /// The `q` quantile, interpolated within its bucket as Prometheus' `histogram_quantile` does.
    pub fn quantile(&self, q: f64) -> Option<f64> {
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
    fn merge(&mut self, metric: &Metric) {
        let h = metric.get_histogram();
        self.count += h.get_sample_count();
        self.sum += h.get_sample_sum();
        for (i, bucket) in h.get_bucket().iter().enumerate() {
            if !bucket.upper_bound().is_finite() {
                continue;
            }
            match self.buckets.get_mut(i) {
                Some(slot) => slot.1 += bucket.cumulative_count(),
                None => self
                    .buckets
                    .push((bucket.upper_bound(), bucket.cumulative_count())),
            }
        }
    }
}

/// The series of `family` in `registry` whose labels include every pair of `labels`.
fn matching<'a>(
    families: &'a [MetricFamily],
    family: &'a str,
    labels: &'a [(&'a str, &'a str)],
) -> impl Iterator<Item = &'a Metric> + 'a {
    families
        .iter()
        .filter(move |f| f.name() == family)
        .flat_map(|f| f.get_metric())
        .filter(move |m| {
            labels.iter().all(|(name, value)| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == *name && l.value() == *value)
            })
        })
}

/// The sum of the series of histogram `family` whose labels include `labels`, or `None` if no
/// series matches.
pub fn histogram(
    registry: &Registry,
    family: &str,
    labels: &[(&str, &str)],
) -> Option<HistogramSnapshot> {
    let families = registry.gather();
    let mut snapshot: Option<HistogramSnapshot> = None;
    for metric in matching(&families, family, labels) {
        snapshot.get_or_insert_with(Default::default).merge(metric);
    }
    snapshot
}

/// The value of the first series of gauge `family` whose labels include `labels`.
pub fn gauge(registry: &Registry, family: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let families = registry.gather();
    let value = matching(&families, family, labels)
        .next()
        .map(|m| m.get_gauge().get_value());
    value
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
        };
        assert_eq!(snapshot.quantile(0.5), Some(0.5));
        assert!((snapshot.quantile(0.25).unwrap() - 0.3).abs() < 1e-9);
        assert!((snapshot.quantile(0.75).unwrap() - 0.75).abs() < 1e-9);
        assert_eq!(snapshot.mean(), Some(0.5));
        assert_eq!(HistogramSnapshot::default().quantile(0.5), None);
    }
}
