//! Driving a gateway from a test: starting it, with the mock's timing, and the requests and
//! their answers as a client sees them, so that each test states only what differs.

use clap::Parser;
use perf::gateway::sse::{Decoder, SseEvent};
use perf::{Config, Gateway};
use serde_json::{json, Value};

pub const KEY: &str = "test-key";

/// A gateway on an ephemeral port of 127.0.0.1, accepting [`KEY`], started with `args`; in a test,
/// one that runs alone (`common::alone!()`: the gateway records into the process' global metrics).
pub async fn start(args: &[&str]) -> Gateway {
    start_with_routes(args, axum::Router::new()).await
}

/// [`start`], with `routes` of the test's own served next to the API.
pub async fn start_with_routes(
    args: &[&str],
    routes: axum::Router<perf::gateway::handlers::App>,
) -> Gateway {
    // In a test binary (not in benches/accuracy.rs, which runs alone by nature).
    assert!(
        !cfg!(test) || perf_test_kit::is_alone(),
        "a test that starts the gateway in the test process runs alone: `common::alone!()` first"
    );
    let mut argv = vec!["gateway", "--listen", "127.0.0.1:0", "--api-key", KEY];
    argv.extend_from_slice(args);
    Gateway::start_with_routes(&Config::parse_from(argv), routes)
        .await
        .expect("the gateway starts")
}

/// [`start`] with a mock provider that keeps time exactly (no jitter): `ttfb_ms` to its first
/// byte, then `chunks` chunks `interval_ms` apart; `args` besides.
pub async fn start_steady(
    (ttfb_ms, chunks, interval_ms): (u64, u64, u64),
    args: &[&str],
) -> Gateway {
    let mock = [
        ("--mock-ttfb-ms", ttfb_ms),
        ("--mock-chunks", chunks),
        ("--mock-chunk-interval-ms", interval_ms),
        ("--mock-jitter-ms", 0),
    ]
    .map(|(flag, value)| [flag.to_string(), value.to_string()]);
    let mut all: Vec<&str> = mock.iter().flatten().map(String::as_str).collect();
    all.extend_from_slice(args);
    start(&all).await
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

/// A plain HTTP/1.1 client, past any proxy.
pub fn client() -> reqwest::Client {
    client_for(Protocol::Http1)
}

/// The HTTP version a test client speaks to the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1, reqwest's default over plain TCP.
    Http1,
    /// HTTP/2 with prior knowledge (h2c: no TLS, no upgrade).
    Http2,
}

impl Protocol {
    /// The version of the answers a client of this protocol gets.
    pub fn version(self) -> reqwest::Version {
        match self {
            Protocol::Http1 => reqwest::Version::HTTP_11,
            Protocol::Http2 => reqwest::Version::HTTP_2,
        }
    }
}

/// A client speaking `protocol`; an HTTP/2 one multiplexes its requests on one connection.
pub fn client_for(protocol: Protocol) -> reqwest::Client {
    let builder = reqwest::Client::builder().no_proxy();
    match protocol {
        Protocol::Http1 => builder.http1_only(),
        Protocol::Http2 => builder.http2_prior_knowledge(),
    }
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
    post_via(&client(), gateway, path, key, body).await
}

/// [`post`], sent by `client`.
pub async fn post_via(
    client: &reqwest::Client,
    gateway: &Gateway,
    path: &str,
    key: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    let mut request = client
        .post(format!("{}{path}", gateway.base_url()))
        .header("content-type", "application/json")
        .body(body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.expect("the gateway answers")
}

/// `POST {gateway}/v1{path}` with [`KEY`], `body` and, if given, the client's `traceparent`.
pub async fn post_traced(
    gateway: &Gateway,
    path: &str,
    body: String,
    traceparent: Option<&str>,
) -> reqwest::Response {
    let mut request = client()
        .post(format!("{}{path}", gateway.base_url()))
        .header("content-type", "application/json")
        .bearer_auth(KEY)
        .body(body);
    if let Some(traceparent) = traceparent {
        request = request.header("traceparent", traceparent);
    }
    request.send().await.expect("the gateway answers")
}

/// The trace id an answer carries, after checking that it carries it twice, the same: as
/// `x-trace-id` (32 lowercase hex digits, not all zero) and in a valid `traceparent`.
pub fn trace_id_of(headers: &reqwest::header::HeaderMap) -> String {
    let header = |name: &str| {
        headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header in {headers:?}"))
            .to_str()
            .expect("an ASCII header")
            .to_owned()
    };
    let id = header("x-trace-id");
    let traceparent = header("traceparent");
    let parsed = perf_runtime::TraceId::from_traceparent(&traceparent)
        .unwrap_or_else(|| panic!("an invalid traceparent: {traceparent:?}"));
    assert_eq!(parsed.to_string(), id, "x-trace-id and traceparent");
    id
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

/// The entries the gateway's `Server-Timing` has, in order: its three stages and the backend.
pub const SERVER_TIMING_ENTRIES: [&str; 4] = [
    "request_parsing",
    "auth_validation",
    "request_preparation",
    "backend",
];

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

/// The accuracy mock (`tests/gateway/llm_accuracy.rs`, `benches/accuracy.rs`): headers after
/// 100 ms, the first token 400 ms later, then 19 more chunks 50 ms apart, no jitter.
pub const ACCURACY_MOCK: &[&str] = &[
    "--mock-ttfb-ms",
    "100",
    "--mock-first-token-ms",
    "400",
    "--mock-chunks",
    "20",
    "--mock-chunk-interval-ms",
    "50",
    "--mock-jitter-ms",
    "0",
];

/// [`ACCURACY_MOCK`]'s whole answer, in ms: 100 to its headers, 400 to the first token, 19 gaps
/// of 50.
pub const ACCURACY_ANSWER_MS: f64 = 100.0 + 400.0 + 19.0 * 50.0;

/// A mock whose every second answer is a 500 after 100 ms, which the gateway retries once; then
/// 5 chunks 10 ms apart.
pub const RETRIED_MOCK: &[&str] = &[
    "--mock-ttfb-ms",
    "100",
    "--mock-chunks",
    "5",
    "--mock-chunk-interval-ms",
    "10",
    "--mock-jitter-ms",
    "0",
    "--mock-fail-every",
    "2",
    "--upstream-retries",
    "1",
];

/// The prompt of the accuracy requests.
pub const ACCURACY_PROMPT: &str = "Where does the time of an LLM request go?";
