//! Families as `Registry::gather` gives them (the `prometheus` crate's proto model), read into
//! perf's plain data: the application's families for the exposition's OpenMetrics and protobuf
//! formats, and any family of a registry for a [snapshot](super::snapshot).
//!
//! The proto model changes with the `prometheus` crate's features, and the program's dependency
//! graph chooses them: `protobuf` swaps the plain structs for generated code. Names, help, types,
//! labels, histograms and summaries are read with accessors both models have (the `get_*` ones,
//! deprecated in the generated model); a counter's or gauge's value through [`model`].

// The `get_*` accessors are deprecated in one model or the other, and the only ones both have.
#![allow(deprecated)]

use std::borrow::Cow;

use prometheus::proto::{Counter, Gauge, MetricFamily, MetricType};

use super::reading::{FamilyReading, HistogramReading, Kind, SeriesReading, Value};

/// The type of a family of the proto model.
pub(crate) fn kind_of(family: &MetricFamily) -> Kind {
    match family.get_field_type() {
        MetricType::COUNTER => Kind::Counter,
        MetricType::GAUGE => Kind::Gauge,
        MetricType::HISTOGRAM => Kind::Histogram,
        MetricType::SUMMARY => Kind::Summary,
        _ => Kind::Untyped,
    }
}

/// `family` as plain data, or the reason it cannot be read.
pub(crate) fn read(family: &MetricFamily) -> Result<FamilyReading, String> {
    let kind = kind_of(family);
    let mut series = Vec::with_capacity(family.get_metric().len());
    for metric in family.get_metric() {
        let labels = metric
            .get_label()
            .iter()
            .map(|pair| {
                (
                    Cow::Owned(pair.get_name().to_owned()),
                    pair.get_value().to_owned(),
                )
            })
            .collect();
        let value = match kind {
            Kind::Counter => Value::Counter(<Counter as model::Value>::value(metric.get_counter())),
            Kind::Gauge => Value::Gauge(<Gauge as model::Value>::value(metric.get_gauge())),
            Kind::Histogram => {
                let h = metric.get_histogram();
                Value::Histogram(HistogramReading {
                    buckets: h
                        .get_bucket()
                        .iter()
                        .map(|b| (b.get_upper_bound(), b.get_cumulative_count()))
                        .filter(|(bound, _)| bound.is_finite())
                        .collect(),
                    count: h.get_sample_count(),
                    sum: h.get_sample_sum(),
                    ..Default::default()
                })
            }
            Kind::Summary => {
                let s = metric.get_summary();
                Value::Summary {
                    quantiles: s
                        .get_quantile()
                        .iter()
                        .map(|q| (q.get_quantile(), q.get_value()))
                        .collect(),
                    count: s.get_sample_count(),
                    sum: s.get_sample_sum(),
                }
            }
            // Neither model lets an untyped value be read, and the crate's `TextEncoder` does not
            // write one either (it panics).
            Kind::Untyped => return Err(format!("`{}` is untyped", family.get_name())),
        };
        series.push(SeriesReading { labels, value });
    }
    Ok(FamilyReading {
        name: Cow::Owned(family.get_name().to_owned()),
        help: Cow::Owned(family.get_help().to_owned()),
        kind,
        series,
    })
}

/// A counter's and a gauge's value, in both proto models.
///
/// The plain model has only `get_value()`, the generated one only `value()` (its `get_value()`
/// lives in a trait the crate does not export), and a crate cannot ask at compile time which
/// features its dependency was built with. So [`Value::value`] calls `get_value()`, and
/// [`GetValue::get_value`] calls `value()`: a method call takes a type's inherent method before
/// a trait's, so in the plain model the first lands on the inherent `get_value()`, and in the
/// generated one on the second, which lands on the inherent `value()`. Neither calls itself in
/// either model, and no text is encoded and parsed back. The tests run under both
/// (`cargo test -p perf-runtime --features prometheus/protobuf`).
mod model {
    use prometheus::proto::{Counter, Gauge};

    pub trait Value {
        fn value(&self) -> f64;
    }

    /// Called in the generated model only.
    #[allow(dead_code)]
    pub trait GetValue {
        fn get_value(&self) -> f64;
    }

    macro_rules! both_ways {
        ($($model:ty),*) => {$(
            impl Value for $model {
                fn value(&self) -> f64 {
                    self.get_value()
                }
            }

            impl GetValue for $model {
                fn get_value(&self) -> f64 {
                    self.value()
                }
            }
        )*};
    }

    both_ways!(Counter, Gauge);
}

#[cfg(test)]
mod tests {
    use prometheus::core::{Collector, Desc};
    use prometheus::proto::{Metric, MetricFamily, MetricType};
    use prometheus::{CounterVec, Gauge, HistogramOpts, HistogramVec, Opts, Registry};

    use super::*;

    #[test]
    fn reads_every_type_of_application_family() {
        let registry = Registry::new();
        let counter = CounterVec::new(Opts::new("app_total", "C."), &["path"]).unwrap();
        let gauge = Gauge::new("app_gauge", "G \"q\".").unwrap();
        let histogram = HistogramVec::new(
            HistogramOpts::new("app_seconds", "H.").buckets(vec![0.5, 1.0]),
            &["model"],
        )
        .unwrap();
        registry.register(Box::new(counter.clone())).unwrap();
        registry.register(Box::new(gauge.clone())).unwrap();
        registry.register(Box::new(histogram.clone())).unwrap();
        counter.with_label_values(&["/a b\"}"]).inc_by(2.5);
        counter.with_label_values(&["/z"]).inc();
        gauge.set(-1e300);
        histogram.with_label_values(&["m"]).observe(0.7);

        let families: Vec<_> = registry.gather().iter().map(|f| read(f).unwrap()).collect();
        let value = |name: &str| -> Vec<Value> {
            let family = families.iter().find(|f| f.name == name).unwrap();
            family.series.iter().map(|s| s.value.clone()).collect()
        };
        assert_eq!(
            value("app_total"),
            [Value::Counter(2.5), Value::Counter(1.0)]
        );
        assert_eq!(value("app_gauge"), [Value::Gauge(-1e300)]);
        let Value::Histogram(h) = &value("app_seconds")[0] else {
            panic!("a histogram");
        };
        assert_eq!(
            (h.buckets.as_slice(), h.count, h.sum),
            (&[(0.5, 0), (1.0, 1)][..], 1, 0.7)
        );
        let counter = families.iter().find(|f| f.name == "app_total").unwrap();
        assert_eq!(counter.series[0].labels[0].1, "/a b\"}");
        assert_eq!(counter.kind, Kind::Counter);
    }

    /// A collector of its own making can hand the registry an untyped family: it is refused,
    /// not read wrong (nor a panic, as in the crate's `TextEncoder`).
    #[test]
    fn an_untyped_family_is_refused() {
        struct Untyped(Desc);
        impl Collector for Untyped {
            fn desc(&self) -> Vec<&Desc> {
                vec![&self.0]
            }
            fn collect(&self) -> Vec<MetricFamily> {
                let mut family = MetricFamily::default();
                family.set_name("app_untyped".into());
                family.set_help("U.".into());
                family.set_field_type(MetricType::UNTYPED);
                family.set_metric(vec![Metric::from_label(Vec::new())]);
                vec![family]
            }
        }
        let desc = Desc::new(
            "app_untyped".into(),
            "U.".into(),
            vec![],
            Default::default(),
        );
        let registry = Registry::new();
        registry.register(Box::new(Untyped(desc.unwrap()))).unwrap();
        let gathered = registry.gather();
        assert_eq!(gathered.len(), 1);
        assert!(read(&gathered[0]).is_err());
    }
}
