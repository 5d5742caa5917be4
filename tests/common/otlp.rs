//! An OTLP collector for the tests: `tests/python/otlp_receiver.py`, which decodes each export
//! with PyPI's `opentelemetry-proto` and checks it against `opentelemetry-semantic-conventions`
//! (code nobody here wrote), run as a child process; what it got (its `GET /summary`), and the
//! comparison of an export with `/metrics`' protobuf format, series by series.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde::Deserialize;
use serde_json::Value;

use super::proto;

/// The Python modules the receiver imports, and the PyPI packages that have them.
pub const RECEIVER_MODULES: &[&str] = &[
    "opentelemetry.proto.collector.metrics.v1.metrics_service_pb2",
    "opentelemetry.semconv._incubating.metrics.gen_ai_metrics",
];
pub const RECEIVER_PACKAGES: &str = "opentelemetry-proto opentelemetry-semantic-conventions";

/// The receiver, running on a port of 127.0.0.1; killed on drop.
pub struct Receiver {
    child: Child,
    pub port: u16,
}

impl Receiver {
    /// Starts the receiver with `python`, and `args` (`--answer 503 --times 3`, `--delay-ms`).
    pub fn start(python: &Path, args: &[&str]) -> Receiver {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/otlp_receiver.py");
        let mut child = Command::new(python)
            .arg(script)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("a piped stdout"))
            .read_line(&mut line)
            .expect("the receiver prints its port");
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("a port on the receiver's first line, not {line:?}"));
        Receiver { child, port }
    }

    /// Its base URL, for `--otlp-endpoint` (`/v1/metrics` is appended).
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What it got so far.
    pub async fn summary(&self) -> Summary {
        let url = format!("{}/summary", self.base());
        let response = super::client().get(url).send().await.expect("the receiver");
        let body = response.bytes().await.expect("the receiver's summary");
        serde_json::from_slice(&body).expect("the receiver's JSON summary")
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The receiver's `GET /summary`.
#[derive(Debug, Deserialize)]
pub struct Summary {
    /// Every POST, in order of arrival.
    pub requests: Vec<Attempt>,
    /// The exports it decoded (answered 200), oldest first.
    pub exports: Vec<Export>,
    /// What failed its checks: decoding, names, units, attributes, buckets that do not add up.
    pub errors: Vec<String>,
}

/// One POST the receiver got.
#[derive(Debug, Deserialize)]
pub struct Attempt {
    /// Seconds from the receiver's start.
    pub at: f64,
    pub path: String,
    pub encoding: Option<String>,
    pub status: u16,
}

#[derive(Debug, Deserialize)]
pub struct Export {
    pub at: f64,
    pub resources: Vec<Resource>,
}

#[derive(Debug, Deserialize)]
pub struct Resource {
    pub attributes: BTreeMap<String, Value>,
    pub scopes: Vec<Scope>,
}

#[derive(Debug, Deserialize)]
pub struct Scope {
    pub name: String,
    pub metrics: Vec<Metric>,
}

/// One OTLP metric as the receiver decoded it.
#[derive(Debug, Deserialize)]
pub struct Metric {
    pub name: String,
    pub unit: String,
    /// `sum`, `gauge`, `histogram` or `exponential_histogram`.
    pub r#type: String,
    pub points: Vec<Point>,
}

/// A data point: `value` for sums and gauges; count, sum, buckets and exemplars for histograms
/// (`scale`, `zero_count`, `offset` for exponential ones).
#[derive(Debug, Deserialize)]
pub struct Point {
    pub attributes: BTreeMap<String, Value>,
    pub value: Option<f64>,
    #[serde(default)]
    pub count: u64,
    #[serde(default)]
    pub sum: f64,
    pub scale: Option<i32>,
    pub zero_count: Option<u64>,
    pub offset: Option<i32>,
    #[serde(default)]
    pub bucket_counts: Vec<u64>,
    #[serde(default)]
    pub explicit_bounds: Vec<f64>,
    #[serde(default)]
    pub exemplars: Vec<Exemplar>,
}

#[derive(Debug, Deserialize)]
pub struct Exemplar {
    /// 32 hex digits.
    pub trace_id: String,
    pub time_unix_nano: u64,
    pub value: f64,
}

impl Export {
    /// The metric named `name` (of the first resource and scope: perf sends one of each).
    pub fn metric(&self, name: &str) -> Option<&Metric> {
        self.resources[0].scopes[0]
            .metrics
            .iter()
            .find(|m| m.name == name)
    }

    /// The resource attribute `key`, as a string.
    pub fn resource(&self, key: &str) -> Option<&str> {
        self.resources[0].attributes.get(key)?.as_str()
    }
}

/// The same double, give or take the last digits: serde_json's default parsing of the
/// receiver's JSON may be off by an ulp (its `float_roundtrip` feature would make it exact).
fn same(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
}

/// The OTLP attribute a Prometheus label of perf's becomes (docs/metrics.md's table, stated
/// again here, apart from the exporter's code).
pub fn attribute_of(label: &str) -> &'static str {
    match label {
        "endpoint" => "http.route",
        "provider" => "gen_ai.provider.name",
        "model" => "gen_ai.request.model",
        "type" => "gen_ai.token.type",
        "kind" => "error.type",
        "outcome" => "perf.outcome",
        "status" => "http.response.status_code",
        "stage" => "perf.stage",
        "operation" => "perf.operation",
        other => panic!("label {other:?} has no attribute in the tests' table"),
    }
}

/// The point of `metric` whose attributes hold `series`' labels (mapped by [`attribute_of`]);
/// panics unless there is exactly one.
pub fn point_of<'a>(metric: &'a Metric, series: &proto::Metric) -> &'a Point {
    let wanted: Vec<(&str, &str)> = series
        .label
        .iter()
        .map(|l| (attribute_of(&l.name), l.value.as_str()))
        .collect();
    let matches = |point: &&Point| {
        wanted.iter().all(|(key, value)| {
            point.attributes.get(*key).is_some_and(|v| match v {
                Value::String(s) => s == value,
                Value::Number(n) => n.as_i64().is_some_and(|n| value.parse() == Ok(n)),
                _ => false,
            })
        })
    };
    let found: Vec<&Point> = metric.points.iter().filter(matches).collect();
    assert_eq!(
        found.len(),
        1,
        "{}: one point for {wanted:?}, got {found:?}",
        metric.name
    );
    found[0]
}

/// Checks that `point` holds exactly `series`' histogram (of family `name`): count, sum,
/// buckets (native ones at the same scale, Prometheus' index `i` as OTLP's `i - 1`; classic
/// ones as explicit bounds and per-bucket counts), and each bucket's exemplar (trace id, value,
/// time). Returns the exemplars' trace ids.
pub fn assert_same_histogram(
    name: &str,
    series: &proto::Metric,
    point: &Point,
) -> BTreeSet<String> {
    let h = series.histogram.as_ref().expect("a histogram");
    let labels = &series.label;
    assert_eq!(point.count, h.sample_count, "{name} {labels:?}: count");
    assert!(
        same(point.sum, h.sample_sum),
        "{name} {labels:?}: sum {} vs {}",
        point.sum,
        h.sample_sum
    );
    let native = !h.positive_span.is_empty() || h.zero_threshold > 0.0;
    if native {
        assert_eq!(point.scale, Some(h.schema), "{name} {labels:?}: scale");
        assert_eq!(
            point.zero_count,
            Some(h.zero_count),
            "{name} {labels:?}: zero"
        );
        let offset = point.offset.expect("an exponential point's offset");
        let otlp: Vec<(i32, u64)> = (offset..)
            .zip(point.bucket_counts.iter().copied())
            .filter(|&(_, count)| count > 0)
            .map(|(index, count)| (index + 1, count))
            .collect();
        let prometheus: Vec<(i32, u64)> = h
            .native_buckets()
            .into_iter()
            .filter(|&(_, count)| count > 0)
            .collect();
        assert_eq!(otlp, prometheus, "{name} {labels:?}: native buckets");
    } else {
        let finite: Vec<&proto::Bucket> = h
            .bucket
            .iter()
            .filter(|b| b.upper_bound.is_finite())
            .collect();
        let bounds: Vec<f64> = finite.iter().map(|b| b.upper_bound).collect();
        assert_eq!(point.explicit_bounds, bounds, "{name} {labels:?}: bounds");
        let mut below = 0;
        let mut counts: Vec<u64> = finite
            .iter()
            .map(|b| {
                let n = b.cumulative_count - below;
                below = b.cumulative_count;
                n
            })
            .collect();
        counts.push(h.sample_count - below);
        assert_eq!(point.bucket_counts, counts, "{name} {labels:?}: buckets");
    }
    // Each bucket's exemplar: the same trace ids, values and times both ways.
    let mut prometheus: Vec<(String, f64, f64)> = h
        .bucket
        .iter()
        .filter_map(|b| b.exemplar.as_ref())
        .map(|e| {
            let trace = e
                .label
                .iter()
                .find(|l| l.name == "trace_id")
                .expect("a trace_id label");
            let at = e
                .timestamp
                .as_ref()
                .map_or(0.0, |t| t.seconds as f64 + f64::from(t.nanos) * 1e-9);
            (trace.value.clone(), e.value, at)
        })
        .collect();
    let mut otlp: Vec<(String, f64, f64)> = point
        .exemplars
        .iter()
        .map(|e| (e.trace_id.clone(), e.value, e.time_unix_nano as f64 * 1e-9))
        .collect();
    let order = |a: &(String, f64, f64), b: &(String, f64, f64)| a.1.total_cmp(&b.1);
    prometheus.sort_by(order);
    otlp.sort_by(order);
    assert_eq!(otlp.len(), prometheus.len(), "{name} {labels:?}: exemplars");
    for (o, p) in otlp.iter().zip(&prometheus) {
        assert_eq!(o.0, p.0, "{name} {labels:?}: exemplar trace id");
        assert!(
            same(o.1, p.1),
            "{name} {labels:?}: exemplar value {} vs {}",
            o.1,
            p.1
        );
        // An exemplar's time is its clock reading put on the wall clock when it is read: two
        // readings (the scrape, the export) may put it some microseconds apart.
        assert!(
            (o.2 - p.2).abs() < 1e-3,
            "{name} {labels:?}: exemplar time {} vs {}",
            o.2,
            p.2
        );
    }
    otlp.into_iter().map(|e| e.0).collect()
}
