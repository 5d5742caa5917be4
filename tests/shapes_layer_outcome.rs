//! PENDING: not compiled yet. The shapes of `tests/shapes_outcome.rs` (shapes 1, 6 and 9)
//! under the tower layer `perf_runtime::PerfLayer`, which does not exist yet, plus what only the
//! layer sees: a `HEAD` request, a 204, a body whose stream errors, a client that disconnects
//! mid-body, and unmatched paths. Cargo does not compile a subdirectory of `tests/`; once the
//! layer exists, `git mv tests/pending/shapes_layer_outcome.rs tests/` switches these on.
//!
//! The layer's API: `Router::new().route(..).layer(PerfLayer::with_metrics(metrics))` (or
//! `PerfLayer::new()` for the global metrics); the `endpoint` label is axum's `MatchedPath`, and
//! `#[perf_endpoint]` is optional: the handlers here have none. Statement attributes go in a
//! `#[perf_statements]` handler. Each test has a fresh registry of its own (`Numbers::private`),
//! except the one of `PerfLayer::new()`.
//!
//! Each test states the truth; the layer must make them pass.

use std::io;

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::{stream, Stream, StreamExt};
use perf_runtime::{perf_backend, perf_statements, perf_stream, PerfLayer};
use serde_json::{json, Value};

mod common;
use common::{client, ms, relay, serve, Answer, Event, Numbers, Outcomes};

type ApiError = (StatusCode, String);

#[perf_backend(provider = "outcome", model = model)]
async fn call_provider(model: &'static str, ttfb_ms: u64) -> Result<Answer, ApiError> {
    tokio::time::sleep(ms(ttfb_ms)).await;
    Ok(Answer::new(0, 3, 5).with_usage(5, 3))
}

/// Sends `method` to `path` of a server of `router`; the response.
async fn send(router: Router, method: reqwest::Method, path: &str) -> reqwest::Response {
    let base = serve(router).await;
    client()
        .request(method, format!("{base}{path}"))
        .header("content-type", "application/json")
        .body(json!({"model": "m", "stream": false}).to_string())
        .send()
        .await
        .expect("the server answers")
}

async fn json_of(response: reqwest::Response) -> Value {
    let bytes = response.bytes().await.expect("a whole body");
    serde_json::from_slice(&bytes).expect("a JSON answer")
}

// Shape 1a and 1b. Aggregation of a chunked tracked stream read up to `[DONE]`, or only its
// first item, into one JSON answer.

async fn aggregate_to_done() -> Result<Json<Value>, ApiError> {
    let answer = call_provider("aggregate-done", 20).await?;
    let mut events = std::pin::pin!(relay(answer));
    let mut text = String::new();
    while let Some(event) = events.next().await {
        match event {
            Event::Token(token) => text.push_str(&token),
            Event::Done => break,
            Event::Role | Event::Usage(_) => {}
        }
    }
    Ok(Json(json!({ "text": text })))
}

async fn aggregate_first() -> Result<Json<Value>, ApiError> {
    let answer = call_provider("aggregate-first", 20).await?;
    let mut events = std::pin::pin!(relay(answer));
    let first = events.next().await;
    Ok(Json(json!({ "first": format!("{first:?}") })))
}

/// Shape 1a: aggregation read up to `[DONE]`, not to `None`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_an_answer_aggregated_up_to_done_completes() {
    let (numbers, metrics) = Numbers::private();
    let router = Router::new()
        .route("/aggregate/done", post(aggregate_to_done))
        .layer(PerfLayer::with_metrics(metrics));
    let response = send(router, reqwest::Method::POST, "/aggregate/done").await;
    assert_eq!(json_of(response).await["text"], "t0t1t2");
    let ended = numbers.ended("/aggregate/done", 1).await;
    assert_eq!(
        (ended, numbers.percentages("/aggregate/done").is_some()),
        (Outcomes::new(1, 0, 0), true),
        "(outcomes, split set)"
    );
}

/// Shape 1b: aggregation of the first item only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_an_answer_made_of_the_first_item_completes() {
    let (numbers, metrics) = Numbers::private();
    let router = Router::new()
        .route("/aggregate/first", post(aggregate_first))
        .layer(PerfLayer::with_metrics(metrics));
    let response = send(router, reqwest::Method::POST, "/aggregate/first").await;
    assert_eq!(json_of(response).await["first"], "Some(Role)");
    let ended = numbers.ended("/aggregate/first", 1).await;
    assert_eq!(
        (ended, numbers.percentages("/aggregate/first").is_some()),
        (Outcomes::new(1, 0, 0), true),
        "(outcomes, split set)"
    );
}

// Shape 6. The README quick-start: `#[perf_stream] let chunks = upstream;` then
// `Body::from_stream(chunks)`, with a provider that breaks off, and under `HEAD`.

fn upstream_body(
    parts: usize,
    breaks_off: bool,
) -> impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static {
    let frames = stream::iter(0..parts).then(|i| async move {
        tokio::time::sleep(ms(10)).await;
        Ok(Bytes::from(format!("data: {{\"content\":\"t{i}\"}}\n\n")))
    });
    let broken = breaks_off.then(|| {
        Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "the provider broke off",
        ))
    });
    frames.chain(stream::iter(broken))
}

async fn open_upstream(
    ttfb_ms: u64,
    breaks_off: bool,
) -> Result<impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static, ApiError> {
    tokio::time::sleep(ms(ttfb_ms)).await;
    Ok(upstream_body(3, breaks_off))
}

#[perf_statements]
async fn quickstart(breaks_off: bool) -> Result<Response, ApiError> {
    #[perf_backend(provider = "quickstart", model = "m")]
    let upstream = open_upstream(20, breaks_off).await?;
    #[perf_stream]
    let chunks = upstream;
    Ok(Body::from_stream(chunks).into_response())
}

/// Shape 6: the README quick-start body, the provider breaking off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_a_relayed_body_whose_provider_breaks_off_is_an_error() {
    let (numbers, metrics) = Numbers::private();
    let router = Router::new()
        .route("/quickstart", post(|| quickstart(true)))
        .layer(PerfLayer::with_metrics(metrics));
    let response = send(router, reqwest::Method::POST, "/quickstart").await;
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.is_err(), "the answer broke off");
    let ended = numbers.ended("/quickstart", 1).await;
    let broken_off = numbers.counter(
        "backend_errors_total",
        &[
            ("provider", "quickstart"),
            ("endpoint", "/quickstart"),
            ("kind", "broken_off"),
        ],
    );
    assert_eq!(
        (ended, broken_off),
        (Outcomes::new(0, 1, 0), 1),
        "(outcomes, backend_errors_total{{kind=\"broken_off\"}})"
    );
}

/// Shape 6: the README quick-start route under `HEAD`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_a_head_request_on_a_streamed_route_completes() {
    let (numbers, metrics) = Numbers::private();
    let router = Router::new()
        .route("/quickstart", get(|| quickstart(false)))
        .layer(PerfLayer::with_metrics(metrics));
    let response = send(router, reqwest::Method::HEAD, "/quickstart").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        numbers.ended("/quickstart", 1).await,
        Outcomes::new(1, 0, 0),
        "HEAD is answered without its body, as asked: completed, not cancelled"
    );
}

// Shape 9. Percentages recorded by hand, then an `Err` (the layer sees its 502).

async fn percentages_then_err() -> Result<String, ApiError> {
    let answer = call_provider("percentages-err", 10).await?;
    perf_runtime::current::with(|t| t.record_percentages());
    Err((
        StatusCode::BAD_GATEWAY,
        format!("an answer of {} tokens refused", answer.tokens),
    ))
}

/// Shape 9: `record_percentages()` by hand, then `Err`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_an_err_after_percentages_recorded_by_hand_is_an_error() {
    let (numbers, metrics) = Numbers::private();
    let router = Router::new()
        .route("/percentages", post(percentages_then_err))
        .layer(PerfLayer::with_metrics(metrics));
    let response = send(router, reqwest::Method::POST, "/percentages").await;
    assert_eq!(response.status(), 502);
    assert_eq!(
        numbers.ended("/percentages", 1).await,
        Outcomes::new(0, 1, 0)
    );
}

// What only the layer sees: handlers with no perf attribute at all.

/// A plain streamed body: `chunks` chunks 20 ms apart, then, if `fails`, an error.
fn plain_body(chunks: usize, fails: bool) -> Body {
    let chunks = stream::iter(0..chunks).then(|i| async move {
        tokio::time::sleep(ms(20)).await;
        Ok(Bytes::from(format!("chunk {i}\n")))
    });
    let failure = fails.then(|| Err(io::Error::other("the body failed")));
    Body::from_stream(chunks.chain(stream::iter(failure)))
}

/// Layer only: `HEAD` on a plain streamed route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_a_head_request_completes() {
    let (numbers, metrics) = Numbers::private();
    let router = Router::new()
        .route("/plain", get(|| async { plain_body(5, false) }))
        .layer(PerfLayer::with_metrics(metrics));
    let response = send(router, reqwest::Method::HEAD, "/plain").await;
    assert_eq!(response.status(), 200);
    assert_eq!(numbers.ended("/plain", 1).await, Outcomes::new(1, 0, 0));
}

/// Layer only: a 204.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_a_204_completes() {
    let (numbers, metrics) = Numbers::private();
    let router = Router::new()
        .route("/empty", post(|| async { StatusCode::NO_CONTENT }))
        .layer(PerfLayer::with_metrics(metrics));
    let response = send(router, reqwest::Method::POST, "/empty").await;
    assert_eq!(response.status(), 204);
    assert_eq!(numbers.ended("/empty", 1).await, Outcomes::new(1, 0, 0));
}

/// Layer only: a plain body whose stream errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_a_body_whose_stream_errors_is_an_error() {
    let (numbers, metrics) = Numbers::private();
    let router = Router::new()
        .route("/failing", get(|| async { plain_body(3, true) }))
        .layer(PerfLayer::with_metrics(metrics));
    let response = send(router, reqwest::Method::GET, "/failing").await;
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.is_err(), "the body broke off");
    assert_eq!(numbers.ended("/failing", 1).await, Outcomes::new(0, 1, 0));
}

/// Layer only: a client leaving mid-body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_a_client_leaving_mid_body_is_cancelled() {
    let (numbers, metrics) = Numbers::private();
    let router = Router::new()
        .route("/long", get(|| async { plain_body(200, false) }))
        .layer(PerfLayer::with_metrics(metrics));
    let mut response = send(router, reqwest::Method::GET, "/long").await;
    assert_eq!(response.status(), 200);
    for _ in 0..2 {
        response.chunk().await.unwrap().expect("a chunk");
    }
    drop(response); // the client leaves after two of 200 chunks
    assert_eq!(numbers.ended("/long", 1).await, Outcomes::new(0, 0, 1));
}

/// Layer only: a layer inside another's request (a nested router's own layer, and one on the
/// whole app) is part of it: one request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_two_layers_on_one_route_count_one_request() {
    let (numbers, metrics) = Numbers::private();
    let api = Router::new()
        .route("/x", get(|| async { "x" }))
        .layer(PerfLayer::with_metrics(metrics));
    let router = Router::new()
        .nest("/api", api)
        .layer(PerfLayer::with_metrics(metrics));
    let response = send(router, reqwest::Method::GET, "/api/x").await;
    assert_eq!(response.status(), 200);
    assert_eq!(numbers.ended("/api/x", 1).await, Outcomes::new(1, 0, 0));
    let answers = numbers.counter("http_responses_total", &[("endpoint", "/api/x")]);
    assert_eq!(answers, 1, "one answer counted");
}

/// Layer only: unmatched paths.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_unmatched_paths_share_one_endpoint() {
    let (numbers, metrics) = Numbers::private();
    let router = Router::new()
        .route("/known", get(|| async { "known" }))
        .layer(PerfLayer::with_metrics(metrics));
    let base = serve(router).await;
    for path in ["/unknown/1", "/unknown/2?x=1"] {
        let response = client()
            .get(format!("{base}{path}"))
            .send()
            .await
            .expect("the server answers");
        assert_eq!(response.status(), 404);
    }
    let counted =
        common::eventually(|| numbers.endpoints_with_requests().values().sum::<u64>() >= 2).await;
    assert!(counted, "both requests ended");
    let endpoints = numbers.endpoints_with_requests();
    assert_eq!(
        endpoints.len(),
        1,
        "one endpoint value for every unmatched path, not the paths: {endpoints:?}"
    );
    assert!(
        !endpoints.keys().any(|e| e.starts_with("/unknown")),
        "{endpoints:?}"
    );
}

/// Layer only: `PerfLayer::new()` and the global metrics (shape 1a's handler).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_with_the_global_metrics_records_into_them() {
    const PATH: &str = "/shapes/layer/global";
    let numbers = Numbers::global();
    let router = Router::new()
        .route(PATH, post(aggregate_to_done))
        .layer(PerfLayer::new());
    let response = send(router, reqwest::Method::POST, PATH).await;
    assert_eq!(response.status(), 200);
    assert_eq!(numbers.ended(PATH, 1).await, Outcomes::new(1, 0, 0));
    assert_eq!(
        numbers.count("backend_ttfb_seconds", &[("endpoint", PATH)]),
        1
    );
}
