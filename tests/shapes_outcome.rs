//! Handler shapes and the outcome their request ends with, over real HTTP: an answer aggregated
//! from a tracked stream that is not read to its `None` (shape 1), the README quick-start shape
//! with a provider that breaks off and under a `HEAD` request (shape 6), and percentages
//! recorded by hand before an `Err` (shape 9).
//!
//! Each test states the truth; today's runtime gets several of them wrong, and these tests are
//! what its rewrite must pass. The handlers record into the global metrics; each test has
//! endpoints of its own.

use std::io;

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::{stream, Stream, StreamExt};
use perf_runtime::{perf_backend, perf_endpoint, perf_stream};
use serde_json::{json, Value};

mod common;
use common::{backend_errors, client, ms, relay, serve, Answer, Event, Numbers, Outcomes};

type ApiError = (StatusCode, String);

/// The provider call: its headers after `ttfb_ms`, then an answer of three tokens 5 ms apart.
#[perf_backend(provider = "outcome", model = model)]
async fn call_provider(model: &'static str, ttfb_ms: u64) -> Result<Answer, ApiError> {
    tokio::time::sleep(ms(ttfb_ms)).await;
    Ok(Answer::new(0, 3, 5).with_usage(5, 3))
}

/// POSTs to `path` of a server of `router`; the response.
async fn post_to(router: Router, path: &str) -> reqwest::Response {
    let base = serve(router).await;
    client()
        .post(format!("{base}{path}"))
        .header("content-type", "application/json")
        .body(json!({"model": "m", "stream": false}).to_string())
        .send()
        .await
        .expect("the server answers")
}

/// The JSON body of `response`.
async fn json_of(response: reqwest::Response) -> Value {
    let bytes = response.bytes().await.expect("a whole body");
    serde_json::from_slice(&bytes).expect("a JSON answer")
}

/// Asserts that `endpoint`'s split was set, its three shares summing to 100.
fn assert_split_sums_to_100(numbers: &Numbers, endpoint: &str) {
    let shares = numbers
        .percentages(endpoint)
        .unwrap_or_else(|| panic!("stage_percentage of {endpoint} is set"));
    let total: f64 = shares.iter().sum();
    assert!((total - 100.0).abs() < 0.01, "{shares:?} sum to {total}");
}

// Shape 1a. Aggregation: the handler reads a chunked tracked stream up to `[DONE]` without
// polling it to `None`, and answers one JSON object.

const AGGREGATE_DONE: &str = "/shapes/aggregate/done";

#[perf_endpoint("/shapes/aggregate/done")]
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

/// Shape 1a: aggregation read up to `[DONE]`, not to `None`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_aggregated_up_to_done_completes() {
    let numbers = Numbers::global();
    let router = Router::new().route(AGGREGATE_DONE, post(aggregate_to_done));
    let response = post_to(router, AGGREGATE_DONE).await;
    assert_eq!(response.status(), 200);
    let body = json_of(response).await;
    assert_eq!(body["text"], "t0t1t2");

    let ended = numbers.ended(AGGREGATE_DONE, 1).await;
    assert_eq!(
        (ended, numbers.percentages(AGGREGATE_DONE).is_some()),
        (Outcomes::new(1, 0, 0), true),
        "(outcomes, split set): the handler returned Ok with the whole answer: completed, split set"
    );
    assert_split_sums_to_100(&numbers, AGGREGATE_DONE);
}

// Shape 1b. Aggregation of the first item only: the handler takes one item of the tracked
// stream, drops the rest, and answers one JSON object.

const AGGREGATE_FIRST: &str = "/shapes/aggregate/first";

#[perf_endpoint("/shapes/aggregate/first")]
async fn aggregate_first() -> Result<Json<Value>, ApiError> {
    let answer = call_provider("aggregate-first", 20).await?;
    let mut events = std::pin::pin!(relay(answer));
    let first = events.next().await;
    Ok(Json(json!({ "first": format!("{first:?}") })))
}

/// Shape 1b: aggregation of the first item only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_made_of_the_first_item_completes() {
    let numbers = Numbers::global();
    let router = Router::new().route(AGGREGATE_FIRST, post(aggregate_first));
    let response = post_to(router, AGGREGATE_FIRST).await;
    assert_eq!(response.status(), 200);
    let body = json_of(response).await;
    assert_eq!(body["first"], "Some(Role)");

    let ended = numbers.ended(AGGREGATE_FIRST, 1).await;
    assert_eq!(
        (ended, numbers.percentages(AGGREGATE_FIRST).is_some()),
        (Outcomes::new(1, 0, 0), true),
        "(outcomes, split set): the handler returned Ok and the client got all of it: completed"
    );
    assert_split_sums_to_100(&numbers, AGGREGATE_FIRST);
}

// Shape 6. The README quick-start: `#[perf_stream] let chunks = upstream;` then
// `Body::from_stream(chunks)`.

/// The provider's body: `parts` frames 10 ms apart, then, if `breaks_off`, an error (the
/// connection to the provider was reset) and nothing more.
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

/// Opens the provider's answer: its headers after `ttfb_ms`.
async fn open_upstream(
    ttfb_ms: u64,
    breaks_off: bool,
) -> Result<impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static, ApiError> {
    tokio::time::sleep(ms(ttfb_ms)).await;
    Ok(upstream_body(3, breaks_off))
}

const QUICKSTART_BROKEN: &str = "/shapes/quickstart/broken";

#[perf_endpoint("/shapes/quickstart/broken")]
async fn quickstart_broken() -> Result<Response, ApiError> {
    #[perf_backend(provider = "quickstart", model = "broken")]
    let upstream = open_upstream(20, true).await?;
    #[perf_stream]
    let chunks = upstream;
    Ok(Body::from_stream(chunks).into_response())
}

/// Shape 6: the README quick-start body, the provider breaking off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_body_whose_provider_breaks_off_is_an_error() {
    let numbers = Numbers::global();
    let router = Router::new().route(QUICKSTART_BROKEN, post(quickstart_broken));
    let response = post_to(router, QUICKSTART_BROKEN).await;
    assert_eq!(
        response.status(),
        200,
        "the headers went out before the break"
    );
    assert!(
        response.bytes().await.is_err(),
        "the client sees the answer broken off"
    );

    let ended = numbers.ended(QUICKSTART_BROKEN, 1).await;
    let broken_off = backend_errors("quickstart", "broken", QUICKSTART_BROKEN, "broken_off");
    assert_eq!(
        (ended, broken_off),
        (Outcomes::new(0, 1, 0), 1),
        "(outcomes, backend_errors_total{{kind=\"broken_off\"}}): a provider that broke off \
         mid-answer makes the request an error, counted against the call it relayed"
    );
}

const QUICKSTART_HEAD: &str = "/shapes/quickstart/head";

#[perf_endpoint("/shapes/quickstart/head")]
async fn quickstart_head() -> Result<Response, ApiError> {
    #[perf_backend(provider = "quickstart", model = "head")]
    let upstream = open_upstream(20, false).await?;
    #[perf_stream]
    let chunks = upstream;
    Ok(Body::from_stream(chunks).into_response())
}

/// Shape 6: the README quick-start route under `HEAD`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_request_on_a_streamed_route_completes() {
    let numbers = Numbers::global();
    let base = serve(Router::new().route(QUICKSTART_HEAD, get(quickstart_head))).await;
    let response = client()
        .head(format!("{base}{QUICKSTART_HEAD}"))
        .send()
        .await
        .expect("the server answers");
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.expect("an empty body").is_empty());

    assert_eq!(
        numbers.ended(QUICKSTART_HEAD, 1).await,
        Outcomes::new(1, 0, 0),
        "HEAD is answered without its body, as asked: completed, not cancelled"
    );
}

// Shape 9. Percentages recorded by hand inside the handler, then an `Err`.

const PERCENTAGES_ERR: &str = "/shapes/percentages/err";

#[perf_endpoint("/shapes/percentages/err")]
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
async fn an_err_after_percentages_recorded_by_hand_is_an_error() {
    let numbers = Numbers::global();
    let router = Router::new().route(PERCENTAGES_ERR, post(percentages_then_err));
    let response = post_to(router, PERCENTAGES_ERR).await;
    assert_eq!(response.status(), 502);

    assert_eq!(
        numbers.ended(PERCENTAGES_ERR, 1).await,
        Outcomes::new(0, 1, 0),
        "the handler returned Err: error, not completed"
    );
}
