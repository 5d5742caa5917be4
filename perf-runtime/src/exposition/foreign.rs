//! The application's own families (and the `process` collector's), read from the `prometheus`
//! crate's proto model into perf's plain data, for the OpenMetrics and protobuf formats.
//!
//! That model changes with the `prometheus` crate's features: `protobuf` swaps it for generated
//! code. Names, help, types, labels, histograms and summaries are read with accessors both
//! models have. A counter's or gauge's value has none in common (`get_value` in one, `value` in
//! the other), so those are taken from the crate's own `TextEncoder` output for the family: one
//! sample line per series, in series order, its value the last field (before a timestamp).

// The `get_*` accessors are deprecated in one model or the other, and the only ones both have.
#![allow(deprecated)]

use std::borrow::Cow;

use prometheus::proto::MetricFamily;
use prometheus::{Encoder, TextEncoder};

use crate::metrics::kind_of;
use crate::metrics::reading::{FamilyReading, HistogramReading, Kind, SeriesReading, Value};

/// `family` as plain data, or the reason it cannot be read.
pub(super) fn read(family: &MetricFamily) -> Result<FamilyReading, String> {
    let kind = kind_of(family);
    let mut values = match kind {
        Kind::Counter | Kind::Gauge | Kind::Untyped => sample_values(family)?.into_iter(),
        _ => Vec::new().into_iter(),
    };
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
            Kind::Counter => Value::Counter(next(&mut values)?),
            Kind::Gauge => Value::Gauge(next(&mut values)?),
            Kind::Untyped => Value::Untyped(next(&mut values)?),
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

fn next(values: &mut impl Iterator<Item = f64>) -> Result<f64, String> {
    values
        .next()
        .ok_or_else(|| "fewer samples than series".to_string())
}

/// The value of each series of a counter, gauge or untyped family, in series order.
fn sample_values(family: &MetricFamily) -> Result<Vec<f64>, String> {
    let mut text = Vec::new();
    TextEncoder::new()
        .encode(std::slice::from_ref(family), &mut text)
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8(text).map_err(|e| e.to_string())?;
    let stamped = |i: usize| {
        family
            .get_metric()
            .get(i)
            .map(|m| m.get_timestamp_ms() != 0)
    };
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .enumerate()
        .map(|(i, line)| {
            let mut fields = line.rsplit(' ');
            if stamped(i) == Some(true) {
                fields.next();
            }
            let field = fields.next().unwrap_or_default();
            field
                .parse::<f64>()
                .map_err(|_| format!("unreadable sample value {field:?}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
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
}
