//! perf's families as `prometheus` collectors: what `prometheus::gather()` and every encoder of
//! the `prometheus` crate see.
//!
//! A collector builds the proto model from a [`FamilyReading`] with setters that exist under
//! every feature set of the `prometheus` crate. perf's own exposition does not come through
//! here: it reads perf's families from their [`Metrics`](super::Metrics).

use prometheus::core::{Collector, Desc};
use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};

use super::family::{Family, Series};
use super::reading::{Extras, FamilyReading, Kind, ReadFamily, Value};

/// Registers a `'static` family in a registry.
pub(crate) struct Registered<T: 'static>(pub &'static Family<T>);

impl<T: Series> Collector for Registered<T> {
    fn desc(&self) -> Vec<&Desc> {
        vec![self.0.desc()]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let reading = self.0.read(Extras::default());
        if reading.series.is_empty() {
            return Vec::new();
        }
        vec![to_proto(reading)]
    }
}

/// The proto model of one family, its label values moved from the reading.
fn to_proto(reading: FamilyReading) -> MetricFamily {
    let metrics = reading
        .series
        .into_iter()
        .map(|series| {
            let labels = series
                .labels
                .into_iter()
                .map(|(name, value)| {
                    let mut pair = LabelPair::default();
                    pair.set_name(name.into_owned());
                    pair.set_value(value);
                    pair
                })
                .collect();
            let mut metric = Metric::from_label(labels);
            match &series.value {
                Value::Counter(count) => {
                    let mut counter = Counter::default();
                    counter.set_value(*count);
                    metric.set_counter(counter);
                }
                Value::Gauge(value) => {
                    let mut gauge = Gauge::default();
                    gauge.set_value(*value);
                    metric.set_gauge(gauge);
                }
                Value::Histogram(reading) => {
                    let mut histogram = Histogram::default();
                    histogram.set_bucket(
                        reading
                            .buckets
                            .iter()
                            .map(|&(bound, cumulative)| {
                                let mut bucket = Bucket::default();
                                bucket.set_upper_bound(bound);
                                bucket.set_cumulative_count(cumulative);
                                bucket
                            })
                            .collect(),
                    );
                    histogram.set_sample_count(reading.count);
                    histogram.set_sample_sum(reading.sum);
                    metric.set_histogram(histogram);
                }
                // Only the application's families are summaries.
                Value::Summary { .. } => {}
            }
            metric
        })
        .collect();
    let mut family = MetricFamily::default();
    family.set_name(reading.name.into_owned());
    family.set_help(reading.help.into_owned());
    family.set_field_type(match reading.kind {
        Kind::Counter => MetricType::COUNTER,
        Kind::Gauge => MetricType::GAUGE,
        Kind::Histogram => MetricType::HISTOGRAM,
        Kind::Summary | Kind::Untyped => MetricType::UNTYPED,
    });
    family.set_metric(metrics);
    family
}
