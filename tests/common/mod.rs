//! What the gateway tests share: starting a gateway, sending requests, reading SSE and metrics.

#![allow(dead_code)] // each test binary uses its own part of this module

use clap::Parser;
use perf::gateway::sse::{Decoder, SseEvent};
use perf::{Config, Gateway};
use perf_runtime::metrics::snapshot::{self, HistogramSnapshot};
use perf_runtime::Metrics;
use prometheus::proto::{Metric, MetricFamily};
use serde_json::{json, Value};

pub const KEY: &str = "test-key";

/// A gateway on an ephemeral port of 127.0.0.1, accepting [`KEY`], started with `args`.
pub async fn start(args: &[&str]) -> Gateway {
    let mut argv = vec!["gateway", "--listen", "127.0.0.1:0", "--api-key", KEY];
    argv.extend_from_slice(args);
    Gateway::start(&Config::parse_from(argv))
        .await
        .expect("the gateway starts")
}

/// A fast mock: 20 ms to the first byte, 5 chunks 5 ms apart.
pub const FAST_MOCK: &[&str] = &[
    "--mock-ttfb-ms",
    "20",
    "--mock-chunks",
    "5",
    "--mock-chunk-interval-ms",
    "5",
    "--mock-jitter-ms",
    "0",
];

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("a plain HTTP client builds")
}

/// `POST {gateway}/v1{path}` with `body`, authenticated with `key` if given.
pub async fn post(
    gateway: &Gateway,
    path: &str,
    key: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    let mut request = client()
        .post(format!("{}{path}", gateway.base_url()))
        .header("content-type", "application/json")
        .body(body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.expect("the gateway answers")
}

pub fn chat(model: &str, stream: bool) -> String {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "Hi"}]})
        .to_string()
}

pub fn responses(model: &str, stream: bool) -> String {
    json!({"model": model, "stream": stream, "input": "Hi"}).to_string()
}

/// The events of an SSE body.
pub fn sse_events(body: &[u8]) -> Vec<SseEvent> {
    let mut decoder = Decoder::default();
    decoder.push(body).expect("events of sane size");
    decoder.finish();
    std::iter::from_fn(|| decoder.next_event()).collect()
}

/// The JSON error body of an error answer, after checking its status.
pub async fn error_of(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status().as_u16(), status);
    let content_type = response.headers()["content-type"].clone();
    assert_eq!(content_type, "application/json");
    let body: Value = serde_json::from_slice(&response.bytes().await.expect("a body"))
        .expect("a JSON error body");
    let error = &body["error"];
    assert!(error["message"].is_string(), "{body}");
    assert!(error["type"].is_string(), "{body}");
    assert!(
        error.get("param").is_some() && error.get("code").is_some(),
        "{body}"
    );
    body
}

/// The family called `name` in the default registry.
pub fn family(name: &str) -> MetricFamily {
    prometheus::gather()
        .into_iter()
        .find(|f| f.name() == name)
        .unwrap_or_else(|| panic!("no family {name}"))
}

/// The label `name` of `metric`.
pub fn label<'a>(metric: &'a Metric, name: &str) -> Option<&'a str> {
    metric
        .get_label()
        .iter()
        .find(|l| l.name() == name)
        .map(|l| l.value())
}

/// The series of `family` whose labels include every pair of `labels`.
pub fn series<'a>(family: &'a MetricFamily, labels: &[(&str, &str)]) -> Vec<&'a Metric> {
    family
        .get_metric()
        .iter()
        .filter(|m| labels.iter().all(|(k, v)| label(m, k) == Some(v)))
        .collect()
}

/// The histogram series of family `name` with exactly `labels`, if it has been created.
pub fn try_histogram(name: &str, labels: &[(&str, &str)]) -> Option<HistogramSnapshot> {
    let family = prometheus::gather()
        .into_iter()
        .find(|f| f.name() == name)?;
    let found = series(&family, labels);
    assert!(
        found.len() <= 1,
        "at most one series of {name} with {labels:?}"
    );
    found.first()?;
    snapshot::histogram(Metrics::global().registry(), name, labels)
}

/// `(count, sum)` of the histogram series of family `name` with exactly `labels`.
pub fn histogram(name: &str, labels: &[(&str, &str)]) -> (u64, f64) {
    let h = try_histogram(name, labels).unwrap_or_else(|| panic!("no {name} with {labels:?}"));
    (h.count, h.sum)
}

/// The value of the gauge series of family `name` with `labels`.
pub fn gauge(name: &str, labels: &[(&str, &str)]) -> f64 {
    snapshot::gauge(Metrics::global().registry(), name, labels)
        .unwrap_or_else(|| panic!("no {name} with {labels:?}"))
}
