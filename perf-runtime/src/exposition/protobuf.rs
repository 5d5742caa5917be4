//! Prometheus' protobuf exposition format: what a Prometheus started with native histograms
//! asks for, and the only format that carries native buckets.
//!
//! Each family is one `io.prometheus.client.MetricFamily` message, length-delimited. The
//! messages below declare the fields of Prometheus' `metrics.proto` that perf writes, with their
//! numbers; prost encodes them. Histograms carry their classic buckets (with their exemplars)
//! and, for the families that keep them, their native buckets at schema 3.

use prost::Message;

use crate::metrics::native::{NativeReading, SCHEMA, ZERO_THRESHOLD};
use crate::metrics::reading::{ExemplarReading, FamilyReading, HistogramReading, Kind, Value};

/// The `Content-Type` of the delimited protobuf format.
pub const CONTENT_TYPE: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/// Appends `family` to `out` as one length-delimited `MetricFamily` (nothing for a family
/// without series).
pub(crate) fn family(family: &FamilyReading, out: &mut Vec<u8>) {
    if family.series.is_empty() {
        return;
    }
    let message = model::MetricFamily {
        name: family.name.to_string(),
        help: family.help.to_string(),
        r#type: match family.kind {
            Kind::Counter => model::MetricType::Counter,
            Kind::Gauge => model::MetricType::Gauge,
            Kind::Histogram => model::MetricType::Histogram,
            Kind::Summary => model::MetricType::Summary,
            Kind::Untyped => model::MetricType::Untyped,
        } as i32,
        unit: family.unit().unwrap_or_default().to_string(),
        metric: family
            .series
            .iter()
            .map(|series| {
                let mut metric = model::Metric {
                    label: series
                        .labels
                        .iter()
                        .map(|(name, value)| label(name, value))
                        .collect(),
                    ..Default::default()
                };
                match &series.value {
                    Value::Counter(value) => {
                        metric.counter = Some(model::Counter {
                            value: *value,
                            exemplar: None,
                        })
                    }
                    Value::Gauge(value) => metric.gauge = Some(model::Gauge { value: *value }),
                    Value::Histogram(histogram) => {
                        metric.histogram = Some(self::histogram(histogram))
                    }
                    Value::Summary {
                        quantiles,
                        count,
                        sum,
                    } => {
                        metric.summary = Some(model::Summary {
                            sample_count: *count,
                            sample_sum: *sum,
                            quantile: quantiles
                                .iter()
                                .map(|&(quantile, value)| model::Quantile { quantile, value })
                                .collect(),
                        })
                    }
                }
                metric
            })
            .collect(),
    };
    // Writing into a Vec cannot run out of room.
    let _ = message.encode_length_delimited(out);
}

fn label(name: &str, value: &str) -> model::LabelPair {
    model::LabelPair {
        name: name.to_owned(),
        value: value.to_owned(),
    }
}

fn histogram(reading: &HistogramReading) -> model::Histogram {
    let exemplar = |i: usize| reading.exemplars.get(i).copied().flatten().map(exemplar);
    let mut bucket: Vec<_> = reading
        .buckets
        .iter()
        .enumerate()
        .map(|(i, &(upper_bound, cumulative_count))| model::Bucket {
            cumulative_count,
            upper_bound,
            exemplar: exemplar(i),
        })
        .collect();
    if let Some(inf) = exemplar(reading.buckets.len()) {
        bucket.push(model::Bucket {
            cumulative_count: reading.count,
            upper_bound: f64::INFINITY,
            exemplar: Some(inf),
        });
    }
    let mut histogram = model::Histogram {
        sample_count: reading.count,
        sample_sum: reading.sum,
        bucket,
        ..Default::default()
    };
    if let Some(native) = &reading.native {
        native_buckets(native, &mut histogram);
    }
    histogram
}

fn native_buckets(native: &NativeReading, histogram: &mut model::Histogram) {
    let (spans, deltas) = native.spans_and_deltas();
    histogram.schema = SCHEMA;
    histogram.zero_threshold = ZERO_THRESHOLD;
    histogram.zero_count = native.zero_count;
    histogram.positive_span = spans
        .into_iter()
        .map(|(offset, length)| model::BucketSpan { offset, length })
        .collect();
    if histogram.positive_span.is_empty() {
        // A native histogram without observations: a no-op span tells it from a classic one.
        histogram.positive_span.push(model::BucketSpan::default());
    }
    histogram.positive_delta = deltas;
}

fn exemplar(reading: ExemplarReading) -> model::Exemplar {
    let seconds = reading.timestamp.floor();
    model::Exemplar {
        label: vec![label("trace_id", &reading.trace.to_string())],
        value: reading.value,
        timestamp: Some(model::Timestamp {
            seconds: seconds as i64,
            nanos: ((reading.timestamp - seconds) * 1e9) as i32,
        }),
    }
}

/// The messages of Prometheus' `io/prometheus/client/metrics.proto` (proto3, as Prometheus
/// itself reads them) that perf writes; field numbers as there.
pub(crate) mod model {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MetricFamily {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub help: String,
        #[prost(enumeration = "MetricType", tag = "3")]
        pub r#type: i32,
        #[prost(message, repeated, tag = "4")]
        pub metric: Vec<Metric>,
        #[prost(string, tag = "5")]
        pub unit: String,
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub enum MetricType {
        Counter = 0,
        Gauge = 1,
        Summary = 2,
        Untyped = 3,
        Histogram = 4,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Metric {
        #[prost(message, repeated, tag = "1")]
        pub label: Vec<LabelPair>,
        #[prost(message, optional, tag = "2")]
        pub gauge: Option<Gauge>,
        #[prost(message, optional, tag = "3")]
        pub counter: Option<Counter>,
        #[prost(message, optional, tag = "4")]
        pub summary: Option<Summary>,
        #[prost(message, optional, tag = "5")]
        pub untyped: Option<Untyped>,
        #[prost(message, optional, tag = "7")]
        pub histogram: Option<Histogram>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LabelPair {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Gauge {
        #[prost(double, tag = "1")]
        pub value: f64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Counter {
        #[prost(double, tag = "1")]
        pub value: f64,
        #[prost(message, optional, tag = "2")]
        pub exemplar: Option<Exemplar>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Untyped {
        #[prost(double, tag = "1")]
        pub value: f64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Quantile {
        #[prost(double, tag = "1")]
        pub quantile: f64,
        #[prost(double, tag = "2")]
        pub value: f64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Summary {
        #[prost(uint64, tag = "1")]
        pub sample_count: u64,
        #[prost(double, tag = "2")]
        pub sample_sum: f64,
        #[prost(message, repeated, tag = "3")]
        pub quantile: Vec<Quantile>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Histogram {
        #[prost(uint64, tag = "1")]
        pub sample_count: u64,
        #[prost(double, tag = "2")]
        pub sample_sum: f64,
        #[prost(message, repeated, tag = "3")]
        pub bucket: Vec<Bucket>,
        #[prost(sint32, tag = "5")]
        pub schema: i32,
        #[prost(double, tag = "6")]
        pub zero_threshold: f64,
        #[prost(uint64, tag = "7")]
        pub zero_count: u64,
        #[prost(message, repeated, tag = "12")]
        pub positive_span: Vec<BucketSpan>,
        #[prost(sint64, repeated, tag = "13")]
        pub positive_delta: Vec<i64>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Bucket {
        #[prost(uint64, tag = "1")]
        pub cumulative_count: u64,
        #[prost(double, tag = "2")]
        pub upper_bound: f64,
        #[prost(message, optional, tag = "3")]
        pub exemplar: Option<Exemplar>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct BucketSpan {
        #[prost(sint32, tag = "1")]
        pub offset: i32,
        #[prost(uint32, tag = "2")]
        pub length: u32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Exemplar {
        #[prost(message, repeated, tag = "1")]
        pub label: Vec<LabelPair>,
        #[prost(double, tag = "2")]
        pub value: f64,
        #[prost(message, optional, tag = "3")]
        pub timestamp: Option<Timestamp>,
    }

    /// `google.protobuf.Timestamp`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Timestamp {
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }
}
