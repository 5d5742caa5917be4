//! `--families`: what each variant records, read back from its own exporter after one request
//! of each, so that the table's "records" column is checked rather than recalled: each family's
//! name, type, label names, series count and what its series hold (the sum of counters' and
//! gauges' values, of histograms' and summaries' counts): a family made but never recorded
//! into holds 0.

use std::collections::BTreeMap;
use std::fmt::Write;

use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};

use crate::variants::Peers;

/// Label names that belong to a family's shape, not to what it records.
const SHAPE_LABELS: [&str; 2] = ["le", "quantile"];

/// Per family of a text exposition: its type, its label names, its series.
#[derive(Default)]
struct Family {
    kind: String,
    labels: Vec<String>,
    series: Vec<String>,
    total: f64,
}

/// The families of a Prometheus text exposition, one line each.
pub fn summarize_text(text: &str) -> String {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut words = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (words.next(), words.next()) {
                families.entry(name.to_string()).or_default().kind = kind.to_string();
            }
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (name, labels) = match line.split_once('{') {
            Some((name, rest)) => (name, rest.rsplit_once('}').map_or("", |(l, _)| l)),
            None => (line.split_whitespace().next().unwrap_or(""), ""),
        };
        // A histogram's or summary's samples belong to their family's name.
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                let base = name.strip_suffix(suffix)?;
                families.contains_key(base).then_some(base)
            })
            .unwrap_or(name);
        let family = families.entry(base.to_string()).or_default();
        let value: f64 = line
            .rsplit_once(' ')
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0.0);
        let counted = match family.kind.as_str() {
            "histogram" | "summary" => name.ends_with("_count"),
            _ => true,
        };
        if counted {
            family.total += value;
        }
        let mut series = Vec::new();
        for pair in split_labels(labels) {
            let Some((key, _)) = pair.split_once('=') else {
                continue;
            };
            if SHAPE_LABELS.contains(&key) {
                continue;
            }
            if !family.labels.iter().any(|l| l == key) {
                family.labels.push(key.to_string());
            }
            series.push(pair);
        }
        let series = series.join(",");
        if !family.series.contains(&series) {
            family.series.push(series);
        }
    }
    let mut out = String::new();
    for (name, family) in families {
        let _ = writeln!(
            out,
            "  {name} ({}) {{{}}}: {} series, holding {}",
            family.kind,
            family.labels.join(", "),
            family.series.len(),
            family.total
        );
    }
    out
}

/// `a="x",b="y,z"` into its pairs, commas inside quoted values kept.
fn split_labels(labels: &str) -> Vec<&str> {
    let mut pairs = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in labels.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                pairs.push(&labels[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < labels.len() {
        pairs.push(&labels[start..]);
    }
    pairs
}

/// The instruments of OpenTelemetry's meter provider, read from its in-memory exporter after a
/// flush: name, kind and attribute keys.
fn summarize_otel(peers: &Peers) -> String {
    let (provider, exporter) = &peers.otel;
    if let Err(e) = provider.force_flush() {
        return format!("  (flush failed: {e})\n");
    }
    let mut out = String::new();
    let exported = exporter.get_finished_metrics().unwrap_or_default();
    let Some(last) = exported.last() else {
        return "  (nothing exported)\n".to_string();
    };
    for scope in last.scope_metrics() {
        for metric in scope.metrics() {
            let (kind, keys, points) = match metric.data() {
                AggregatedMetrics::F64(data) => describe(data),
                AggregatedMetrics::U64(data) => describe(data),
                AggregatedMetrics::I64(data) => describe(data),
            };
            let _ = writeln!(
                out,
                "  {} ({kind}) {{{}}}: {points} series",
                metric.name(),
                keys.join(", ")
            );
        }
    }
    out
}

/// An instrument's kind, its attribute keys and its number of data points.
fn describe<T>(data: &MetricData<T>) -> (&'static str, Vec<String>, usize) {
    let attributes: Vec<Vec<String>> = match data {
        MetricData::Gauge(g) => g.data_points().map(|p| keys(p.attributes())).collect(),
        MetricData::Sum(s) => s.data_points().map(|p| keys(p.attributes())).collect(),
        MetricData::Histogram(h) => h.data_points().map(|p| keys(p.attributes())).collect(),
        MetricData::ExponentialHistogram(h) => {
            h.data_points().map(|p| keys(p.attributes())).collect()
        }
    };
    let kind = match data {
        MetricData::Gauge(_) => "gauge",
        MetricData::Sum(_) => "sum",
        MetricData::Histogram(_) => "histogram",
        MetricData::ExponentialHistogram(_) => "exponential histogram",
    };
    let mut all: Vec<String> = attributes.iter().flatten().cloned().collect();
    all.sort();
    all.dedup();
    (kind, all, attributes.len())
}

fn keys<'a>(attributes: impl Iterator<Item = &'a opentelemetry::KeyValue>) -> Vec<String> {
    attributes.map(|kv| kv.key.to_string()).collect()
}

/// perf's families (variants 2 and 3 share its one registry), `when`.
pub fn perf_report(when: &str) -> String {
    let perf = perf_runtime::exposition::render(perf_runtime::Metrics::init());
    format!("perf, {when}:\n{}", summarize_text(&perf))
}

/// Every exporter's families, as `--families` prints them.
pub fn report(peers: &Peers) -> String {
    let autometrics = autometrics::prometheus_exporter::encode_to_string().unwrap_or_default();
    format!(
        "{}\
         metrics-exporter-prometheus (variant 4 axum_http_*, variant 7 app_*):\n{}\
         autometrics (variant 5):\n{}\
         OpenTelemetry SDK (variant 6):\n{}",
        perf_report("after one request of each variant (2 and 3)"),
        summarize_text(&peers.prometheus.render()),
        summarize_text(&autometrics),
        summarize_otel(peers),
    )
}
