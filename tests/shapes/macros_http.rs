//! The macros on real axum handlers served over real HTTP: plain JSON, SSE streaming, errors
//! through `?`, a future dropped mid-backend, a client hanging up mid-stream, a panic in a stage,
//! and concurrent load, each checked with exact counts read back from the registry.
//!
//! The handlers record into the global registry; each test uses its own endpoints, so counts are
//! exact while tests run in parallel.

use std::convert::Infallible;
use std::future::IntoFuture;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use futures_util::{stream, Stream, StreamExt};
use perf_runtime::metrics::snapshot::{histogram, HistogramSnapshot};
use perf_runtime::{perf_backend, perf_endpoint, perf_stage, perf_stream};
use serde::Deserialize;

use crate::common;
use common::{
    assert_lasted, assert_split_of, count, eventually, gauge, global, poll_once, stage_count,
    Outcomes,
};

#[derive(Deserialize)]
struct ChatRequest {
    model: String,
    key: String,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    ttfb_ms: u64,
    #[serde(default = "default_chunks")]
    chunks: usize,
    #[serde(default)]
    chunk_ms: u64,
    #[serde(default)]
    panic_in_preparation: bool,
}

fn default_chunks() -> usize {
    3
}

type ApiError = (StatusCode, String);

/// What each handler shares: nothing but a name, to show `State` works through the macro.
#[derive(Clone)]
struct App {
    provider: &'static str,
}

/// The handler under test, as a user would write it. One copy per endpoint label, so that tests
/// running in parallel do not share series.
macro_rules! chat_handler {
    ($name:ident, $path:literal) => {
        #[perf_endpoint($path)]
        async fn $name(State(app): State<App>, body: Bytes) -> Result<Response, ApiError> {
            #[perf_stage(request_parsing)]
            let req: ChatRequest = serde_json::from_slice(&body)
                .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
            authorize(&req.key)?;
            #[perf_stage(cache_lookup)]
            let cached = lookup(&req.model);
            let delay = request_preparation(&req, cached);
            #[perf_backend(provider = app.provider, model = &req.model)]
            let chunks = provider_call(delay, req.chunks, req.chunk_ms).await?;
            if req.stream {
                #[perf_stream]
                let events = chunks;
                let body = Body::from_stream(events.map(Ok::<_, Infallible>));
                return Ok(([(header::CONTENT_TYPE, "text/event-stream")], body).into_response());
            }
            let text: Vec<Bytes> = chunks.collect().await;
            Ok(text.concat().into_response())
        }
    };
}

chat_handler!(chat_json, "/t/json");
chat_handler!(chat_errors, "/t/errors");
chat_handler!(chat_sse, "/t/sse");
chat_handler!(chat_disconnect, "/t/disconnect");
chat_handler!(chat_cancel, "/t/cancel");
chat_handler!(chat_panic, "/t/panic");
chat_handler!(chat_load, "/t/load");

#[perf_stage(auth_validation)]
fn authorize(key: &str) -> Result<(), ApiError> {
    match key {
        "demo-key" => Ok(()),
        _ => Err((StatusCode::UNAUTHORIZED, "invalid key".into())),
    }
}

fn lookup(model: &str) -> bool {
    model.starts_with("cached")
}

#[perf_stage]
fn request_preparation(req: &ChatRequest, _cached: bool) -> Duration {
    assert!(!req.panic_in_preparation, "preparation panicked on purpose");
    Duration::from_millis(req.ttfb_ms)
}

/// Stands in for the provider: the first byte after `ttfb`, then `chunks` chunks.
async fn provider_call(
    ttfb: Duration,
    chunks: usize,
    chunk_ms: u64,
) -> Result<impl Stream<Item = Bytes> + Send + 'static, ApiError> {
    tokio::time::sleep(ttfb).await;
    Ok(stream::iter(0..chunks).then(move |i| async move {
        tokio::time::sleep(Duration::from_millis(chunk_ms)).await;
        Bytes::from(format!("data: {i}\n\n"))
    }))
}

fn router() -> Router {
    Router::new()
        .route("/t/json", post(chat_json))
        .route("/t/errors", post(chat_errors))
        .route("/t/sse", post(chat_sse))
        .route("/t/disconnect", post(chat_disconnect))
        .route("/t/panic", post(chat_panic))
        .route("/t/load", post(chat_load))
        .with_state(App { provider: "mock" })
}

/// Serves the router on an ephemeral loopback port; returns its base URL.
async fn serve() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(axum::serve(listener, router()).into_future());
    format!("http://{address}")
}

/// The sum of every series of `family` with `labels`.
fn snapshot(family: &str, labels: &[(&str, &str)]) -> HistogramSnapshot {
    histogram(global(), family, labels).unwrap_or_default()
}

fn percentage(endpoint: &str, stage: &str) -> Option<f64> {
    gauge(
        global(),
        "stage_percentage",
        &[("endpoint", endpoint), ("stage", stage)],
    )
}

fn body(json: serde_json::Value) -> String {
    json.to_string()
}

/// The stages every request of `ep`'s handler runs, streamed or not, ran `n` times: one of each
/// a request, however many ran at once.
#[track_caller]
fn assert_every_stage(ep: &str, n: u64) {
    for stage in [
        "request_parsing",
        "auth_validation",
        "cache_lookup",
        "request_preparation",
        "backend_fetch",
    ] {
        assert_eq!(stage_count(global(), ep, stage), n, "stage {stage}");
    }
}

/// `POST {base}{ep}` with `body`, as a client sends it; the response, from its headers on.
async fn send(base: &str, ep: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}{ep}"))
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_json_records_every_stage_once() {
    let base = serve().await;
    let json = serde_json::json!({"model": "gpt-4o", "key": "demo-key", "ttfb_ms": 30});
    let response = send(&base, "/t/json", body(json)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().await.unwrap(),
        "data: 0\n\ndata: 1\n\ndata: 2\n\n"
    );

    let ep = "/t/json";
    assert_every_stage(ep, 1);
    let ttfb = snapshot(
        "backend_ttfb_seconds",
        &[("endpoint", ep), ("provider", "mock"), ("model", "gpt-4o")],
    );
    assert_eq!(ttfb.count, 1);
    assert!(ttfb.sum >= 0.030, "ttfb {}", ttfb.sum);
    assert_eq!(
        count(global(), "frontend_processing_seconds", &[("endpoint", ep)]),
        1
    );
    let shares: f64 = [
        "frontend_processing",
        "backend_response",
        "stream_processing",
    ]
    .iter()
    .map(|s| percentage(ep, s).expect("percentages are set"))
    .sum();
    assert!((shares - 100.0).abs() < 1e-6, "shares sum to {shares}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_through_question_mark_end_the_request_without_a_backend() {
    let base = serve().await;
    let ep = "/t/errors";
    let wrong_key = body(serde_json::json!({"model": "gpt-4o", "key": "wrong"}));
    assert_eq!(send(&base, ep, wrong_key).await.status(), 401);
    assert_eq!(send(&base, ep, "{not json").await.status(), 400);

    assert_eq!(stage_count(global(), ep, "request_parsing"), 2);
    assert_eq!(stage_count(global(), ep, "auth_validation"), 1);
    assert_eq!(stage_count(global(), ep, "request_preparation"), 0);
    assert_eq!(stage_count(global(), ep, "backend_fetch"), 0);
    // Both requests reached their end (the handler returned) after front-end work only: no
    // backend answered, so there is no split to show.
    assert_eq!(
        count(global(), "frontend_processing_seconds", &[("endpoint", ep)]),
        2
    );
    assert_eq!(percentage(ep, "backend_response"), None);
    assert_eq!(Outcomes::of(ep).error, 2);
    assert_eq!(Outcomes::of(ep).completed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_stream_is_timed_until_its_end_after_the_handler_returned() {
    let base = serve().await;
    let ep = "/t/sse";
    let json = serde_json::json!({
        "model": "gpt-4o-mini", "key": "demo-key", "stream": true,
        "ttfb_ms": 20, "chunks": 4, "chunk_ms": 25
    });
    let response = send(&base, ep, body(json)).await;
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    // The handler has returned (we have the headers); the request has not ended yet.
    let text = response.text().await.unwrap();
    assert_eq!(text.matches("data: ").count(), 4);

    let labels = [
        ("endpoint", ep),
        ("provider", "mock"),
        ("model", "gpt-4o-mini"),
    ];
    assert!(eventually(|| count(global(), "streaming_duration_seconds", &labels) == 1).await);
    let streaming = snapshot("streaming_duration_seconds", &labels);
    assert!(
        streaming.sum >= 0.100,
        "4 chunks of 25 ms took {}",
        streaming.sum
    );
    assert_eq!(stage_count(global(), ep, "stream_processing"), 1);
    // The request's end counts it last: its front end and its split are recorded by then.
    assert!(eventually(|| Outcomes::of(ep).completed == 1).await);
    let frontend = snapshot("frontend_processing_seconds", &[("endpoint", ep)]);
    assert_eq!(frontend.count, 1);
    let ttfb = snapshot("backend_ttfb_seconds", &labels);
    // The split is this request's phases: its front end, its call (to the first byte), its
    // streaming.
    let split = [
        "frontend_processing",
        "backend_response",
        "stream_processing",
    ]
    .map(|stage| percentage(ep, stage).expect("the split is set"));
    assert_split_of(split, [frontend.sum, ttfb.sum, streaming.sum]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_hanging_up_mid_stream_ends_the_request_once() {
    let base = serve().await;
    let ep = "/t/disconnect";
    let json = serde_json::json!({
        "model": "gpt-4o", "key": "demo-key", "stream": true,
        "chunks": 200, "chunk_ms": 20
    });
    let response = send(&base, ep, body(json)).await;
    let mut chunks = response.bytes_stream();
    for _ in 0..2 {
        chunks.next().await.unwrap().unwrap();
    }
    drop(chunks); // the client hangs up after two of 200 chunks

    let labels = [("endpoint", ep), ("model", "gpt-4o")];
    // The request's end counts it last: its streaming is recorded by then.
    assert!(eventually(|| Outcomes::of(ep).total() == 1).await);
    assert_eq!(count(global(), "streaming_duration_seconds", &labels), 1);
    let streaming = snapshot("streaming_duration_seconds", &labels);
    assert!(
        streaming.sum < 3.0,
        "recorded the time streamed, not the 4 s planned"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        count(global(), "streaming_duration_seconds", &labels),
        1,
        "recorded once"
    );
    assert_eq!(stage_count(global(), ep, "stream_processing"), 1);
    assert_eq!(
        count(global(), "frontend_processing_seconds", &[("endpoint", ep)]),
        1
    );
    assert_eq!(Outcomes::of(ep).cancelled, 1);
    assert_eq!(Outcomes::of(ep).completed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_dropped_mid_backend_records_no_ttfb_and_no_end() {
    let ep = "/t/cancel";
    let request = body(serde_json::json!({"model": "slow", "key": "demo-key", "ttfb_ms": 5000}));
    let mut handler = Box::pin(chat_cancel(
        State(App { provider: "mock" }),
        Bytes::from(request),
    ));
    // Its first poll starts the request and its wait for the backend: the 100 ms run from there.
    poll_once(handler.as_mut());
    let waited = tokio::time::timeout(Duration::from_millis(100), handler).await;
    assert!(
        waited.is_err(),
        "the handler was still waiting for its backend"
    );

    assert_eq!(
        stage_count(global(), ep, "backend_fetch"),
        1,
        "the wait is a backend_fetch stage"
    );
    let fetch = snapshot(
        "request_stage_duration_seconds",
        &[("endpoint", ep), ("stage", "backend_fetch")],
    );
    assert_lasted("the wait, not the 5 s planned", fetch.sum * 1e3, 100.0);
    assert_eq!(
        count(global(), "backend_ttfb_seconds", &[("endpoint", ep)]),
        0,
        "no first byte came"
    );
    assert_eq!(
        count(global(), "frontend_processing_seconds", &[("endpoint", ep)]),
        0
    );
    assert_eq!(percentage(ep, "backend_response"), None);
    assert_eq!(Outcomes::of(ep).cancelled, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_in_a_stage_keeps_the_stage_and_later_requests_are_exact() {
    let ep = "/t/panic";
    let request = |panic: bool| {
        let json =
            serde_json::json!({"model": "m", "key": "demo-key", "panic_in_preparation": panic});
        Bytes::from(json.to_string())
    };
    let state = || State(App { provider: "mock" });
    let panicked = tokio::spawn(chat_panic(state(), request(true))).await;
    assert!(panicked.unwrap_err().is_panic());
    assert_eq!(stage_count(global(), ep, "request_preparation"), 1);
    assert_eq!(stage_count(global(), ep, "backend_fetch"), 0);
    assert_eq!(
        count(global(), "frontend_processing_seconds", &[("endpoint", ep)]),
        0
    );
    assert_eq!(Outcomes::of(ep).error, 1);

    // The gateway goes on: the next request through the same server is recorded exactly.
    let base = serve().await;
    let response = send(&base, ep, request(false)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(stage_count(global(), ep, "request_preparation"), 2);
    assert_eq!(stage_count(global(), ep, "backend_fetch"), 1);
    assert_eq!(
        count(global(), "frontend_processing_seconds", &[("endpoint", ep)]),
        1
    );
    assert_eq!((Outcomes::of(ep).error, Outcomes::of(ep).completed), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_lose_no_observation() {
    let base = serve().await;
    let ep = "/t/load";
    let client = reqwest::Client::new();
    let requests = 400;
    let tasks = stream::iter(0..requests)
        .map(|i| {
            let client = client.clone();
            let url = format!("{base}{ep}");
            async move {
                let json = serde_json::json!({
                    "model": format!("m{}", i % 4), "key": "demo-key", "stream": i % 2 == 0,
                    "chunks": 2
                });
                let response = client
                    .post(url)
                    .body(json.to_string())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
                response.bytes().await.unwrap();
            }
        })
        .buffer_unordered(16);
    tasks.collect::<Vec<()>>().await;

    let all = [("endpoint", ep)];
    assert!(eventually(|| count(global(), "frontend_processing_seconds", &all) == requests).await);
    // Summed over the four models.
    assert_eq!(snapshot("backend_ttfb_seconds", &all).count, requests);
    assert_eq!(
        snapshot("streaming_duration_seconds", &all).count,
        requests / 2
    );
    assert_every_stage(ep, requests);
    assert_eq!(
        count(
            global(),
            "backend_ttfb_seconds",
            &[("endpoint", ep), ("model", "m3")]
        ),
        requests / 4
    );
    assert_eq!(Outcomes::of(ep).completed, requests);
}
