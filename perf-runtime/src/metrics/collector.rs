//! perf's families as `prometheus` collectors: what `prometheus::gather()` and every encoder of
//! the `prometheus` crate see.
//!
//! A collector builds the proto model from a [`FamilyReading`] with setters that exist under
//! every feature set of the `prometheus` crate. When perf renders `/metrics` itself it does not
//! need the proto model at all: [`gather_split`] asks the registry for its families while the
//! collectors of perf's families only note themselves down, and the caller reads those straight
//! from perf's core.

use std::cell::RefCell;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};
use prometheus::Registry;

use super::family::{Family, Series};
use super::reading::{Detail, FamilyReading, Kind, ReadFamily, Value};

/// Registers a `'static` family in a registry.
pub(crate) struct Registered<T: 'static>(pub &'static Family<T>);

impl<T: Series> Collector for Registered<T> {
    fn desc(&self) -> Vec<&Desc> {
        vec![self.0.desc()]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        if note_down(self.0) {
            return Vec::new();
        }
        let reading = self.0.read(Detail::default());
        if reading.series.is_empty() {
            return Vec::new();
        }
        vec![to_proto(&reading)]
    }
}

thread_local! {
    /// While [`gather_split`] runs on this thread: perf's families met in the registry.
    static NOTED: RefCell<Option<Vec<&'static dyn ReadFamily>>> = const { RefCell::new(None) };
}

/// Notes `family` down if a [`gather_split`] is under way on this thread.
fn note_down(family: &'static dyn ReadFamily) -> bool {
    NOTED
        .try_with(|noted| match &mut *noted.borrow_mut() {
            Some(noted) => {
                noted.push(family);
                true
            }
            None => false,
        })
        .unwrap_or(false)
}

/// A registry's families, perf's apart from the others.
pub(crate) struct Gathered {
    /// perf's families registered in the registry, to read from perf's core.
    pub ours: Vec<&'static dyn ReadFamily>,
    /// Every other family, as the `prometheus` crate gathers them.
    pub theirs: Vec<MetricFamily>,
}

/// Gathers `registry`, keeping perf's families out of the proto model.
pub(crate) fn gather_split(registry: &Registry) -> Gathered {
    struct Reset(Option<Vec<&'static dyn ReadFamily>>);
    impl Drop for Reset {
        fn drop(&mut self) {
            let previous = self.0.take();
            let _ = NOTED.try_with(|noted| *noted.borrow_mut() = previous);
        }
    }
    // A gather inside a collector of another gather (unusual, but legal) restores the outer one.
    let outer = NOTED.with(|noted| noted.borrow_mut().replace(Vec::new()));
    let reset = Reset(outer);
    let theirs = registry.gather();
    let ours = NOTED
        .with(|noted| noted.borrow_mut().take())
        .unwrap_or_default();
    drop(reset);
    Gathered { ours, theirs }
}

/// The type of a family of the proto model.
#[allow(deprecated)] // `get_field_type`: deprecated in one model, the only accessor both have.
pub(crate) fn kind_of(family: &MetricFamily) -> Kind {
    match family.get_field_type() {
        MetricType::COUNTER => Kind::Counter,
        MetricType::GAUGE => Kind::Gauge,
        MetricType::HISTOGRAM => Kind::Histogram,
        MetricType::SUMMARY => Kind::Summary,
        _ => Kind::Untyped,
    }
}

/// The proto model of one family.
fn to_proto(reading: &FamilyReading) -> MetricFamily {
    let metrics = reading
        .series
        .iter()
        .map(|series| {
            let labels = series
                .labels
                .iter()
                .map(|(name, value)| {
                    let mut pair = LabelPair::default();
                    pair.set_name(name.to_string());
                    pair.set_value(value.clone());
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
                Value::Gauge(value) | Value::Untyped(value) => {
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
    family.set_name(reading.name.to_string());
    family.set_help(reading.help.to_string());
    family.set_field_type(match reading.kind {
        Kind::Counter => MetricType::COUNTER,
        Kind::Gauge => MetricType::GAUGE,
        Kind::Histogram => MetricType::HISTOGRAM,
        Kind::Summary | Kind::Untyped => MetricType::UNTYPED,
    });
    family.set_metric(metrics);
    family
}
