//! perf's families, as read for `/metrics`, turned into one OTLP `ExportMetricsServiceRequest`:
//! counters as monotonic sums, in-flight gauges as up-down sums, histograms with native buckets
//! as exponential histograms (scale = their schema), the others with their explicit buckets,
//! each bucket's latest exemplar with its trace id.
//!
//! Cumulative by default: what is sent is the state perf keeps anyway, so a failed export loses
//! nothing and costs no memory. Delta on request: the previous export's totals are kept (one
//! entry per series, bounded as the series are) and only moved on once an export succeeded.

use std::borrow::Cow;
use std::collections::HashMap;

use super::names::{self, Attribute, Shape};
use super::proto::{self, Data, KeyValue, Number, Temporality};
use crate::metrics::native::{NativeReading, SCHEMA, ZERO_THRESHOLD};
use crate::metrics::reading::{
    ExemplarReading, Extras, FamilyReading, HistogramReading, SeriesReading, Value,
};
use crate::metrics::Metrics;

/// What a series had at the last export that succeeded: what a delta subtracts.
#[derive(Clone, Debug, Default)]
struct Totals {
    value: f64,
    count: u64,
    sum: f64,
    /// Explicit buckets' counts (not cumulative), `+Inf` last; or native buckets by index.
    buckets: Vec<u64>,
    native: HashMap<i32, u64>,
    zero: u64,
}

type SeriesKey = (&'static str, Vec<(Cow<'static, str>, String)>);

/// What an explicit and an exponential histogram point say alike: the series, the window, and
/// the count, sum and exemplars within it.
struct Shared {
    attributes: Vec<proto::KeyValue>,
    start: u64,
    now: u64,
    count: u64,
    sum: f64,
    exemplars: Vec<proto::Exemplar>,
}

/// A histogram point of the OTLP message `$point`: the [`Shared`] fields, written once, and the
/// kind's own.
macro_rules! histogram_point {
    ($point:path, $shared:expr, { $($field:ident: $value:expr),* $(,)? }) => {{
        let Shared { attributes, start, now, count, sum, exemplars } = $shared;
        $point {
            attributes,
            start_time_unix_nano: start,
            time_unix_nano: now,
            count,
            sum: Some(sum),
            exemplars,
            $($field: $value),*
        }
    }};
}

/// Turns readings into export requests, keeping what a delta needs.
pub(crate) struct Converter {
    temporality: Temporality,
    /// The start of every cumulative series: when the exporter started (perf's series count
    /// from the process' start; nothing was sent before).
    start: u64,
    /// The totals of the last export that succeeded, and its time (delta only).
    sent: HashMap<SeriesKey, Totals>,
    sent_at: u64,
    /// The totals of the export under way, kept once it succeeds.
    pending: HashMap<SeriesKey, Totals>,
}

impl Converter {
    pub fn new(temporality: Temporality, start: u64) -> Self {
        Converter {
            temporality,
            start,
            sent: HashMap::new(),
            sent_at: start,
            pending: HashMap::new(),
        }
    }

    /// The request for `metrics` at `now` (Unix nanoseconds), under `resource`.
    pub fn request(
        &mut self,
        metrics: &'static Metrics,
        now: u64,
        resource: &[KeyValue],
    ) -> proto::ExportMetricsServiceRequest {
        self.pending.clear();
        let mut out = Vec::new();
        for (contract, family) in metrics.families.by_contract_name() {
            let Some(name) = names::of(contract) else {
                continue;
            };
            let mut reading = family.read(Extras::ALL);
            if name.otlp.starts_with("gen_ai.") {
                // The GenAI conventions' measures are of GenAI operations: a route that serves
                // none (a listing of models) is in perf's and the HTTP names only.
                reading.series.retain(names::is_genai_operation);
            }
            if reading.series.is_empty() {
                continue;
            }
            out.push(self.metric(contract, name, &reading, now));
        }
        proto::ExportMetricsServiceRequest {
            resource_metrics: vec![proto::ResourceMetrics {
                resource: Some(proto::Resource {
                    attributes: resource.to_vec(),
                }),
                scope_metrics: vec![proto::ScopeMetrics {
                    scope: Some(proto::InstrumentationScope {
                        name: "perf".to_owned(),
                        version: env!("CARGO_PKG_VERSION").to_owned(),
                    }),
                    metrics: out,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
    }

    /// The export made by the last [`request`](Self::request) succeeded: a delta now counts
    /// from it.
    pub fn sent(&mut self, at: u64) {
        if self.temporality == Temporality::Delta {
            self.sent.extend(self.pending.drain());
            self.sent_at = at;
        }
    }

    fn delta(&self) -> bool {
        self.temporality == Temporality::Delta
    }

    fn metric(
        &mut self,
        contract: &'static str,
        name: names::Name,
        reading: &FamilyReading,
        now: u64,
    ) -> proto::Metric {
        let data = match name.shape {
            Shape::Counter | Shape::UpDown => {
                // An up-down sum stays cumulative under a delta preference, as the SDKs keep it.
                let delta = self.delta() && name.shape == Shape::Counter;
                let points = reading
                    .series
                    .iter()
                    .map(|series| self.number(contract, series, now, delta))
                    .collect();
                Data::Sum(proto::Sum {
                    data_points: points,
                    aggregation_temporality: if delta {
                        Temporality::Delta
                    } else {
                        Temporality::Cumulative
                    } as i32,
                    is_monotonic: name.shape == Shape::Counter,
                })
            }
            Shape::Gauge => Data::Gauge(proto::Gauge {
                data_points: reading
                    .series
                    .iter()
                    .map(|series| self.number(contract, series, now, false))
                    .collect(),
            }),
            Shape::Histogram => self.histogram(contract, reading, now),
        };
        proto::Metric {
            name: name.otlp.to_owned(),
            description: reading.help.to_string(),
            unit: name.unit.to_owned(),
            data: Some(data),
        }
    }

    fn number(
        &mut self,
        contract: &'static str,
        series: &SeriesReading,
        now: u64,
        delta: bool,
    ) -> proto::NumberDataPoint {
        let value = match series.value {
            Value::Counter(v) | Value::Gauge(v) => v,
            _ => 0.0,
        };
        let totals = Totals {
            value,
            ..Totals::default()
        };
        let (before, start) = self.before(contract, series, totals, delta);
        proto::NumberDataPoint {
            attributes: attributes(&series.labels),
            start_time_unix_nano: start,
            time_unix_nano: now,
            value: Some(Number::AsDouble(value - before.value)),
            exemplars: Vec::new(),
        }
    }

    fn histogram(&mut self, contract: &'static str, reading: &FamilyReading, now: u64) -> Data {
        let temporality = if self.delta() {
            Temporality::Delta
        } else {
            Temporality::Cumulative
        } as i32;
        let native = reading
            .series
            .iter()
            .any(|s| matches!(&s.value, Value::Histogram(h) if h.native.is_some()));
        let histograms = reading
            .series
            .iter()
            .filter_map(|series| match &series.value {
                Value::Histogram(h) => Some((series, h)),
                _ => None,
            });
        if native {
            let data_points = histograms
                .map(|(series, h)| self.exponential(contract, series, h, now))
                .collect();
            Data::ExponentialHistogram(proto::ExponentialHistogram {
                data_points,
                aggregation_temporality: temporality,
            })
        } else {
            let data_points = histograms
                .map(|(series, h)| self.explicit(contract, series, h, now))
                .collect();
            Data::Histogram(proto::Histogram {
                data_points,
                aggregation_temporality: temporality,
            })
        }
    }

    /// What a `delta` point subtracts from `series` (nothing for a cumulative one), and the
    /// point's start; notes `now` as the export's totals.
    fn before(
        &mut self,
        contract: &'static str,
        series: &SeriesReading,
        now: Totals,
        delta: bool,
    ) -> (Totals, u64) {
        if !delta {
            return (Totals::default(), self.start);
        }
        let key = (contract, series.labels.clone());
        let before = self.sent.get(&key).cloned().unwrap_or_default();
        self.pending.insert(key, now);
        (before, self.sent_at)
    }

    fn explicit(
        &mut self,
        contract: &'static str,
        series: &SeriesReading,
        h: &HistogramReading,
        now: u64,
    ) -> proto::HistogramDataPoint {
        let mut counts = Vec::with_capacity(h.buckets.len() + 1);
        let mut below = 0;
        for &(_, cumulative) in &h.buckets {
            counts.push(cumulative.saturating_sub(below));
            below = cumulative;
        }
        counts.push(h.count.saturating_sub(below));
        let totals = Totals {
            buckets: counts.clone(),
            ..Totals::default()
        };
        let (shared, before) = self.shared(contract, series, h, totals, now);
        for (count, was) in counts.iter_mut().zip(&before.buckets) {
            *count = count.saturating_sub(*was);
        }
        histogram_point!(proto::HistogramDataPoint, shared, {
            bucket_counts: counts,
            explicit_bounds: h.buckets.iter().map(|&(bound, _)| bound).collect(),
        })
    }

    fn exponential(
        &mut self,
        contract: &'static str,
        series: &SeriesReading,
        h: &HistogramReading,
        now: u64,
    ) -> proto::ExponentialHistogramDataPoint {
        let empty = NativeReading::default();
        let native = h.native.as_ref().unwrap_or(&empty);
        let totals = Totals {
            native: native.buckets.iter().copied().collect(),
            zero: native.zero_count,
            ..Totals::default()
        };
        let (shared, before) = self.shared(contract, series, h, totals, now);
        let counts = native
            .buckets
            .iter()
            .map(|&(index, count)| {
                (
                    index,
                    count - before.native.get(&index).copied().unwrap_or(0),
                )
            })
            .filter(|&(_, count)| count > 0);
        histogram_point!(proto::ExponentialHistogramDataPoint, shared, {
            scale: SCHEMA,
            zero_count: native.zero_count.saturating_sub(before.zero),
            positive: Some(dense(counts)),
            zero_threshold: ZERO_THRESHOLD,
        })
    }

    /// What both kinds of histogram point say alike of `series` (see [`Shared`]), and what a
    /// delta subtracts from its buckets; notes `buckets` (the kind's own) with `h`'s count and
    /// sum as the export's totals.
    fn shared(
        &mut self,
        contract: &'static str,
        series: &SeriesReading,
        h: &HistogramReading,
        buckets: Totals,
        now: u64,
    ) -> (Shared, Totals) {
        let totals = Totals {
            count: h.count,
            sum: h.sum,
            ..buckets
        };
        let (before, start) = self.before(contract, series, totals, self.delta());
        let shared = Shared {
            attributes: attributes(&series.labels),
            start,
            now,
            count: h.count.saturating_sub(before.count),
            sum: h.sum - before.sum,
            exemplars: self.exemplars(h),
        };
        (shared, before)
    }

    /// Each bucket's latest exemplar (since the last export, for a delta).
    fn exemplars(&self, h: &HistogramReading) -> Vec<proto::Exemplar> {
        let since = if self.delta() { self.sent_at } else { 0 };
        h.exemplars
            .iter()
            .flatten()
            .map(|&e| exemplar(e))
            .filter(|e| e.time_unix_nano > since)
            .collect()
    }
}

/// Native buckets (Prometheus' index `i` holds `(2^((i-1)/2^s), 2^(i/2^s)]`) as OTLP's positive
/// buckets (index `i` holds `(base^i, base^(i+1)]`): the same bounds one index lower, counted
/// from the first one kept, gaps filled with zeros.
fn dense(counts: impl Iterator<Item = (i32, u64)>) -> proto::Buckets {
    let mut buckets = proto::Buckets::default();
    let mut next = None;
    for (index, count) in counts {
        let index = index - 1;
        match next {
            None => buckets.offset = index,
            Some(next) => {
                for _ in next..index {
                    buckets.bucket_counts.push(0);
                }
            }
        }
        buckets.bucket_counts.push(count);
        next = Some(index + 1);
    }
    buckets
}

fn exemplar(e: ExemplarReading) -> proto::Exemplar {
    proto::Exemplar {
        filtered_attributes: Vec::new(),
        time_unix_nano: (e.timestamp * 1e9) as u64,
        value: Some(proto::ExemplarValue::AsDouble(e.value)),
        span_id: Vec::new(),
        trace_id: e.trace.as_u128().to_be_bytes().to_vec(),
    }
}

fn attributes(labels: &[(Cow<'static, str>, String)]) -> Vec<KeyValue> {
    names::attributes(labels)
        .into_iter()
        .map(|attribute| match attribute {
            Attribute::Str(key, value) => KeyValue::string(key, value),
            Attribute::Int(key, value) => KeyValue::int(key, value),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::reading::ReadFamily as _;
    use crate::{PerformanceTracker, TraceId};

    fn one_request(registry: &prometheus::Registry) -> (&'static Metrics, TraceId) {
        let metrics = Metrics::builder().build(registry).unwrap();
        let tracker = PerformanceTracker::with_metrics(metrics, "/v1/chat/completions");
        let trace = TraceId::from_u128(0x4bf92f3577b34da6a3ce929d0e0e4736).unwrap();
        tracker.set_trace_id(trace);
        tracker.backend_request("openai", "gpt-4o").first_byte();
        drop(tracker);
        (metrics, trace)
    }

    fn metric<'a>(
        request: &'a proto::ExportMetricsServiceRequest,
        name: &str,
    ) -> &'a proto::Metric {
        request.resource_metrics[0].scope_metrics[0]
            .metrics
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("{name} is not sent"))
    }

    #[test]
    fn native_buckets_go_as_exponential_histograms_with_their_exemplars() {
        let registry = prometheus::Registry::new();
        let (metrics, trace) = one_request(&registry);
        let mut converter = Converter::new(Temporality::Cumulative, 1);
        let request = converter.request(metrics, 2, &[]);
        let ttfb = metric(&request, "perf.backend.time_to_first_byte");
        assert_eq!(ttfb.unit, "s");
        let Some(Data::ExponentialHistogram(h)) = &ttfb.data else {
            panic!("{ttfb:?}")
        };
        let point = &h.data_points[0];
        assert_eq!(point.count, 1);
        assert_eq!(point.scale, SCHEMA);
        let read = metrics.families.backend_ttfb.read(Extras::ALL);
        let Value::Histogram(reading) = &read.series[0].value else {
            panic!()
        };
        let native = reading.native.as_ref().unwrap();
        let (index, count) = native.buckets[0];
        let positive = point.positive.as_ref().unwrap();
        assert_eq!(
            (positive.offset, positive.bucket_counts.clone()),
            (index - 1, vec![count])
        );
        assert_eq!(point.exemplars[0].trace_id, trace.as_u128().to_be_bytes());
        let keys: Vec<&str> = point.attributes.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "http.route",
                "gen_ai.operation.name",
                "gen_ai.request.model",
                "gen_ai.provider.name"
            ]
        );
        // A counter is a monotonic cumulative sum.
        let requests = metric(&request, "perf.requests");
        let Some(Data::Sum(sum)) = &requests.data else {
            panic!()
        };
        assert!(sum.is_monotonic);
        assert_eq!(sum.aggregation_temporality, Temporality::Cumulative as i32);
    }

    #[test]
    fn every_family_has_an_otlp_name() {
        let metrics = Metrics::builder()
            .build(&prometheus::Registry::new())
            .unwrap();
        for (contract, _) in metrics.families.by_contract_name() {
            assert!(names::of(contract).is_some(), "{contract} has no OTLP name");
        }
    }

    #[test]
    fn a_delta_counts_from_the_last_export_that_succeeded() {
        let registry = prometheus::Registry::new();
        let (metrics, _) = one_request(&registry);
        let mut converter = Converter::new(Temporality::Delta, 1);
        let count = |request: &proto::ExportMetricsServiceRequest| match &metric(
            request,
            "perf.backend.time_to_first_byte",
        )
        .data
        {
            Some(Data::ExponentialHistogram(h)) => h.data_points[0].count,
            other => panic!("{other:?}"),
        };
        assert_eq!(count(&converter.request(metrics, 2, &[])), 1);
        // Not sent: the next export still has it.
        assert_eq!(count(&converter.request(metrics, 3, &[])), 1);
        converter.sent(3);
        assert_eq!(count(&converter.request(metrics, 4, &[])), 0);
    }

    #[test]
    fn native_indices_move_one_down_and_gaps_are_zeros() {
        let buckets = dense([(5, 2), (6, 1), (9, 4)].into_iter());
        assert_eq!(buckets.offset, 4);
        assert_eq!(buckets.bucket_counts, [2, 1, 0, 0, 4]);
    }
}
