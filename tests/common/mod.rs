//! What the gateway tests share: starting a gateway, sending requests, reading SSE and metrics.

#![allow(dead_code)] // each test binary uses its own part of this module

/// The runtime's test helpers, for their Rust-side parser of the Prometheus text format
/// (`check_exposition`), the one the runtime's own label tests use.
#[path = "../../perf-runtime/tests/common/mod.rs"]
pub mod runtime;

use std::collections::BTreeMap;

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
    runtime::family(prometheus::default_registry(), name)
        .unwrap_or_else(|| panic!("no family {name}"))
}

pub use runtime::label;

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
    try_gauge(name, labels).unwrap_or_else(|| panic!("no {name} with {labels:?}"))
}

/// The value of the first gauge series of family `name` with `labels`, if one was set.
pub fn try_gauge(name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    snapshot::gauge(Metrics::global().registry(), name, labels)
}

/// The value of the counter series of family `name` with `labels`, 0 if it does not exist yet
/// (read from perf's core: a counter's proto accessor changes with prometheus' features).
pub fn counter(name: &str, labels: &[(&str, &str)]) -> u64 {
    snapshot::counter(Metrics::global().registry(), name, labels).unwrap_or(0)
}

/// `requests_total{endpoint}` by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcomes {
    pub completed: u64,
    pub error: u64,
    pub cancelled: u64,
}

impl Outcomes {
    /// The counts of `endpoint` now.
    pub fn of(endpoint: &str) -> Outcomes {
        let get = |outcome| {
            counter(
                "requests_total",
                &[("endpoint", endpoint), ("outcome", outcome)],
            )
        };
        Outcomes {
            completed: get("completed"),
            error: get("error"),
            cancelled: get("cancelled"),
        }
    }

    /// The requests that ended since `before`.
    pub fn since(self, before: Outcomes) -> Outcomes {
        Outcomes {
            completed: self.completed - before.completed,
            error: self.error - before.error,
            cancelled: self.cancelled - before.cancelled,
        }
    }

    pub fn total(self) -> u64 {
        self.completed + self.error + self.cancelled
    }
}

/// The sample count of the histogram series of family `name` with exactly `labels`, 0 if it
/// does not exist yet.
pub fn count(name: &str, labels: &[(&str, &str)]) -> u64 {
    try_histogram(name, labels).map_or(0, |h| h.count)
}

/// Waits, boundedly (10 s), until `done` holds; tells whether it did. What is recorded when a
/// stream ends or a connection closes is recorded just after the client sees it.
pub async fn eventually(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..500 {
        if done() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    done()
}

/// `name` in one of the directories of `PATH`.
pub fn find_on_path(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// `tool` from PATH, or `None` after saying that `test` is skipped and why (past the harness's
/// output capture, which shows `eprintln!` only for failing tests); a panic under `CI=true`,
/// where a missing Prometheus is a failure.
pub fn tool_or_skip(tool: &str, test: &str) -> Option<std::path::PathBuf> {
    use std::io::Write;
    if let Some(found) = find_on_path(tool) {
        return Some(found);
    }
    let why = format!(
        "{tool} is not on PATH (it comes with Debian's `prometheus` package: \
         apt-get install --no-install-recommends prometheus)"
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: {why}; under CI=true this is a failure");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
    None
}

/// `promtool`, or `None` after saying that `test` is skipped; see [`tool_or_skip`].
pub fn promtool_or_skip(test: &str) -> Option<std::path::PathBuf> {
    tool_or_skip("promtool", test)
}

/// Runs `promtool check metrics` on `text`; panics with promtool's output unless it passes
/// (exit 0: it parses, and the lint finds nothing).
pub fn promtool_check_metrics(promtool: &std::path::Path, text: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", promtool.display()));
    let mut stdin = child.stdin.take().expect("a piped stdin");
    let input = text.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().expect("promtool runs");
    writer
        .join()
        .expect("the writer thread")
        .expect("promtool reads the exposition");
    assert!(
        output.status.success(),
        "promtool check metrics failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `GET url` with `Authorization: Bearer token` if given: status and body.
pub async fn get(url: &str, token: Option<&str>) -> (u16, String) {
    let mut request = client().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("the gateway answers");
    let status = response.status().as_u16();
    (status, response.text().await.expect("a text body"))
}

/// Sends one chat completion for each of `models`, `concurrency` at a time, streamed and not
/// in turn; each must be answered 200 and read to its end.
pub async fn send_models(gateway: &Gateway, models: &[String], concurrency: usize) {
    use futures_util::StreamExt;
    futures_util::stream::iter(models.iter().enumerate())
        .map(|(i, model)| async move {
            let response = post(
                gateway,
                "/chat/completions",
                Some(KEY),
                chat(model, i % 2 == 0),
            )
            .await;
            assert_eq!(response.status(), 200, "{model:?}");
            response.bytes().await.expect("the whole answer");
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<()>>()
        .await;
}

/// `GET /metrics` of `gateway` over HTTP, checked by the Rust-side parser (and by `promtool
/// check metrics` when it is on `PATH`; see [`promtool_or_skip`] for when it is not): its samples.
pub async fn scrape(gateway: &Gateway, test: &str) -> (String, Vec<runtime::Sample>) {
    let (status, text) = get(&gateway.metrics_url(), None).await;
    assert_eq!(status, 200);
    if let Some(promtool) = promtool_or_skip(test) {
        promtool_check_metrics(&promtool, &text);
    }
    let samples = runtime::check_exposition(&text).unwrap_or_else(|e| panic!("{e}"));
    (text, samples)
}

/// The `model` values of the `{family}_count` samples of `endpoint`, with their counts.
pub fn models_in(
    samples: &[runtime::Sample],
    family: &str,
    endpoint: &str,
) -> BTreeMap<String, u64> {
    let name = format!("{family}_count");
    samples
        .iter()
        .filter(|s| s.name == name && s.label("endpoint") == Some(endpoint))
        .map(|s| {
            (
                s.label("model").expect("a model label").to_owned(),
                s.value as u64,
            )
        })
        .collect()
}

/// Sends `models` distinct model names (one request each, 16 at a time) through a gateway
/// started with `args` and a mock that answers at once, and checks that each backend family of
/// the chat endpoint keeps exactly `cap` of them plus `other`, which holds every other request
/// exactly; that the series count stays `cap + 1` per family; and that `/metrics` stays valid
/// and small.
pub async fn check_label_cap(args: &[&str], cap: usize, models: usize, test: &str) {
    const CHAT: &str = "/v1/chat/completions";
    let overflow = perf_runtime::metrics::OVERFLOW_LABEL;
    let mock = [
        "--mock-ttfb-ms",
        "0",
        "--mock-chunks",
        "1",
        "--mock-chunk-interval-ms",
        "0",
        "--mock-jitter-ms",
        "0",
    ];
    let gateway = start(&[args, &mock].concat()).await;
    let names: Vec<String> = (0..models).map(|i| format!("client-model-{i}")).collect();
    send_models(&gateway, &names, 16).await;
    assert!(
        eventually(|| Outcomes::of(CHAT).completed == models as u64).await,
        "every request ended"
    );
    let (text, samples) = scrape(&gateway, test).await;

    let mut admitted: Option<Vec<String>> = None;
    for family_name in ["backend_ttfb_seconds", "streaming_duration_seconds"] {
        let counts = models_in(&samples, family_name, CHAT);
        assert_eq!(
            counts.len(),
            cap + 1,
            "{family_name}: {} model values",
            counts.len()
        );
        assert_eq!(
            counts.get(overflow).copied(),
            Some((models - cap) as u64),
            "{family_name}: the overflow series holds every later model's request"
        );
        for (model, count) in counts.iter().filter(|(m, _)| *m != overflow) {
            assert!(names.contains(model), "{model}");
            assert_eq!(*count, 1, "{family_name}{{model={model}}}");
        }
        // The same models are kept in both families: they share one budget.
        let kept: Vec<String> = counts.into_keys().collect();
        assert_eq!(admitted.get_or_insert_with(|| kept.clone()), &kept);
        // In the registry: one series per kept model and `other`, nothing else.
        let all = series(&family(family_name), &[]).len();
        assert_eq!(all, cap + 1, "{family_name}");
    }

    // `/metrics` stays bounded: per kept model, 12 lines for each of the TTFB and streaming
    // series (10 buckets, sum, count), 17 for the TTFT series (14 buckets) of the streamed
    // requests, 4 token counters (one chunk per answer: no chunk gap); plus a part that does
    // not depend on the models (front end, stages, percentages, outcomes, comments).
    let lines = text.lines().count();
    let ttft_lines = perf_runtime::metrics::TTFT_BUCKETS.len() + 3;
    let backend_lines = (cap + 1) * (2 * 12 + ttft_lines + 4);
    assert!(
        lines <= backend_lines + 250,
        "{lines} lines for {backend_lines} backend lines"
    );
    assert!(text.len() < 200 * lines, "{} bytes", text.len());
    gateway.shutdown().await;
}

/// One test at a time counts requests of the API endpoints: `requests_total` has no label that
/// tells two tests of one process apart, so those that assert on its differences take turns.
pub async fn turn() -> tokio::sync::MutexGuard<'static, ()> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    TURN.lock().await
}

/// Waits (boundedly) until exactly one more request of `endpoint` than `before` has ended, and
/// checks that it ended as an `error`.
pub async fn one_more_error(endpoint: &str, before: Outcomes) {
    assert!(
        eventually(|| Outcomes::of(endpoint).since(before).total() >= 1).await,
        "the request ended"
    );
    let after = Outcomes::of(endpoint).since(before);
    assert_eq!(
        after,
        Outcomes {
            completed: 0,
            error: 1,
            cancelled: 0
        },
        "one request, counted once as an error"
    );
}

/// `backend_errors_total{provider, model, endpoint, kind}` now, 0 if that series does not
/// exist yet.
pub fn backend_errors(provider: &str, model: &str, endpoint: &str, kind: &str) -> u64 {
    counter(
        "backend_errors_total",
        &[
            ("provider", provider),
            ("model", model),
            ("endpoint", endpoint),
            ("kind", kind),
        ],
    )
}

/// The `data` of the last SSE event of `body`, as JSON, after checking that it is an `error`
/// event with an OpenAI error: what a client gets when the provider fails mid-stream.
pub fn last_error_event(body: &[u8]) -> Value {
    let events = sse_events(body);
    let last = events.last().expect("at least one event");
    assert_eq!(last.event.as_deref(), Some("error"), "{events:?}");
    let error: Value = serde_json::from_str(&last.data).expect("a JSON error");
    assert!(error["error"]["message"].is_string(), "{error}");
    error
}

/// The stages every request of the gateway goes through, in order.
pub const STAGES: [&str; 5] = [
    "request_parsing",
    "auth_validation",
    "request_preparation",
    "backend_fetch",
    "stream_processing",
];

/// A mock that answers at once: 2 chunks, no delay.
pub const ZERO_MOCK: &[&str] = &[
    "--mock-ttfb-ms",
    "0",
    "--mock-chunks",
    "2",
    "--mock-chunk-interval-ms",
    "0",
    "--mock-jitter-ms",
    "0",
];

/// `request_stage_duration_seconds{stage, endpoint}` observations.
pub fn stage_count(endpoint: &str, stage: &str) -> u64 {
    count(
        "request_stage_duration_seconds",
        &[("stage", stage), ("endpoint", endpoint)],
    )
}

/// The observations of each of [`STAGES`] at `endpoint`.
pub fn stage_counts(endpoint: &str) -> [u64; 5] {
    STAGES.map(|stage| stage_count(endpoint, stage))
}

/// `frontend_processing_seconds{endpoint}` observations.
pub fn frontend_count(endpoint: &str) -> u64 {
    count("frontend_processing_seconds", &[("endpoint", endpoint)])
}

/// `(backend_ttfb count, streaming_duration count)` of `model` at `endpoint` (provider mock).
pub fn backend_counts(endpoint: &str, model: &str) -> (u64, u64) {
    let labels = [
        ("provider", "mock"),
        ("model", model),
        ("endpoint", endpoint),
    ];
    (
        count("backend_ttfb_seconds", &labels),
        count("streaming_duration_seconds", &labels),
    )
}

/// `after - before`, element by element.
pub fn diff<const N: usize>(after: [u64; N], before: [u64; N]) -> [u64; N] {
    std::array::from_fn(|i| after[i] - before[i])
}

/// A chat completion request of `model` whose one message is `prompt`; with
/// `stream_options.include_usage` if `include_usage`.
pub fn chat_with(model: &str, prompt: &str, stream: bool, include_usage: bool) -> String {
    let mut body = json!({"model": model, "stream": stream,
                          "messages": [{"role": "user", "content": prompt}]});
    if include_usage {
        body["stream_options"] = json!({"include_usage": true});
    }
    body.to_string()
}

/// The `usage` the mock reports for a prompt of `prompt_chars` characters and an answer of
/// `chunks` words (src/gateway/mock: a quarter of the characters rounded up, half of them
/// cached; one token per word, a quarter of them reasoning).
pub fn mock_usage(prompt_chars: u64, chunks: u64) -> perf_runtime::Usage {
    let input = prompt_chars.div_ceil(4);
    perf_runtime::Usage {
        input,
        output: chunks,
        cached_input: input / 2,
        reasoning: chunks / 4,
    }
}

/// `backend_tokens_total{provider="mock", model, endpoint, type}` of each type, 0 for a type
/// not counted yet.
pub fn mock_tokens(model: &str, endpoint: &str) -> perf_runtime::Usage {
    let get = |kind| {
        counter(
            "backend_tokens_total",
            &[
                ("provider", "mock"),
                ("model", model),
                ("endpoint", endpoint),
                ("type", kind),
            ],
        )
    };
    perf_runtime::Usage {
        input: get("input"),
        output: get("output"),
        cached_input: get("cached_input"),
        reasoning: get("reasoning"),
    }
}

/// The entries of a response's `Server-Timing` header: each name with its `dur` in
/// milliseconds, in order; empty without the header.
pub fn server_timing(headers: &reqwest::header::HeaderMap) -> Vec<(String, f64)> {
    let Some(value) = headers.get("server-timing") else {
        return Vec::new();
    };
    let value = value.to_str().expect("an ASCII Server-Timing");
    value
        .split(',')
        .map(|entry| {
            let mut params = entry.trim().split(';');
            let name = params.next().expect("a metric name").to_owned();
            let dur = params
                .find_map(|p| p.trim().strip_prefix("dur="))
                .unwrap_or_else(|| panic!("no dur in {entry:?} of {value:?}"));
            (name, dur.parse().expect("a number of milliseconds"))
        })
        .collect()
}
