//! The handlers and scenarios of shapes 1, 6 and 9 (the outcome a request ends with), shared by
//! `tests/shapes/outcome.rs` (each handler wrapped in a `#[perf_endpoint]` fn) and
//! `tests/shapes/layer_outcome.rs` (the same handlers behind `PerfLayer`). Each scenario states
//! the truth for either.

use std::io;

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::{stream, Stream, StreamExt};
use perf_runtime::{perf_backend, perf_statements, perf_stream};
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{ms, relay, Answer, Event, Numbers, Outcomes, Served};

pub type ApiError = (StatusCode, String);

/// The provider call: its headers after `ttfb_ms`, then an answer of three tokens 5 ms apart.
#[perf_backend(provider = "outcome", model = model)]
async fn call_provider(model: &'static str, ttfb_ms: u64) -> Result<Answer, ApiError> {
    tokio::time::sleep(ms(ttfb_ms)).await;
    Ok(Answer::new(0, 3, 5).with_usage(5, 3))
}

/// The JSON body of `response`.
async fn json_of(response: reqwest::Response) -> Value {
    let bytes = response.bytes().await.expect("a whole body");
    serde_json::from_slice(&bytes).expect("a JSON answer")
}

/// Asserts that the one request of `endpoint` completed with its split set, its three shares
/// summing to 100.
async fn assert_completed_with_split(numbers: &Numbers, endpoint: &str, why: &str) {
    let ended = numbers.ended(endpoint, 1).await;
    assert_eq!(
        (ended, numbers.percentages(endpoint).is_some()),
        (Outcomes::new(1, 0, 0), true),
        "(outcomes, split set): {why}"
    );
    let shares = numbers
        .percentages(endpoint)
        .unwrap_or_else(|| panic!("stage_percentage of {endpoint} is set"));
    let total: f64 = shares.iter().sum();
    assert!((total - 100.0).abs() < 0.01, "{shares:?} sum to {total}");
}

// Shape 1a. Aggregation: the handler reads a chunked tracked stream up to `[DONE]` without
// polling it to `None`, and answers one JSON object.

pub async fn aggregate_to_done() -> Result<Json<Value>, ApiError> {
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

/// Shape 1a: aggregation read up to `[DONE]`, not to `None`; `path` serves
/// [`aggregate_to_done`].
pub async fn an_answer_aggregated_up_to_done_completes(served: Served, path: &str) {
    let response = served.send(Method::POST, path).await;
    assert_eq!(response.status(), 200);
    assert_eq!(json_of(response).await["text"], "t0t1t2");
    let why = "the handler returned Ok with the whole answer: completed, split set";
    assert_completed_with_split(&served.numbers, path, why).await;
}

// Shape 1b. Aggregation of the first item only: the handler takes one item of the tracked
// stream, drops the rest, and answers one JSON object.

pub async fn aggregate_first() -> Result<Json<Value>, ApiError> {
    let answer = call_provider("aggregate-first", 20).await?;
    let mut events = std::pin::pin!(relay(answer));
    let first = events.next().await;
    Ok(Json(json!({ "first": format!("{first:?}") })))
}

/// Shape 1b: aggregation of the first item only; `path` serves [`aggregate_first`].
pub async fn an_answer_made_of_the_first_item_completes(served: Served, path: &str) {
    let response = served.send(Method::POST, path).await;
    assert_eq!(response.status(), 200);
    assert_eq!(json_of(response).await["first"], "Some(Role)");
    let why = "the handler returned Ok and the client got all of it: completed";
    assert_completed_with_split(&served.numbers, path, why).await;
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

/// The quick-start handler, relaying model `model` of provider `quickstart`.
#[perf_statements]
pub async fn quickstart(model: &'static str, breaks_off: bool) -> Result<Response, ApiError> {
    #[perf_backend(provider = "quickstart", model = model)]
    let upstream = open_upstream(20, breaks_off).await?;
    #[perf_stream]
    let chunks = upstream;
    Ok(Body::from_stream(chunks).into_response())
}

/// Shape 6: the README quick-start body, the provider breaking off; `path` serves
/// `quickstart(model, true)`.
pub async fn a_relayed_body_whose_provider_breaks_off_is_an_error(
    served: Served,
    path: &str,
    model: &str,
) {
    let response = served.send(Method::POST, path).await;
    assert_eq!(
        response.status(),
        200,
        "the headers went out before the break"
    );
    assert!(
        response.bytes().await.is_err(),
        "the client sees the answer broken off"
    );

    let numbers = &served.numbers;
    let ended = numbers.ended(path, 1).await;
    let labels = [
        ("provider", "quickstart"),
        ("model", model),
        ("endpoint", path),
        ("kind", "broken_off"),
    ];
    assert_eq!(
        (ended, numbers.counter("backend_errors_total", &labels)),
        (Outcomes::new(0, 1, 0), 1),
        "(outcomes, backend_errors_total{{kind=\"broken_off\"}}): a provider that broke off \
         mid-answer makes the request an error, counted against the call it relayed"
    );
}

/// Shape 6: the README quick-start route under `HEAD`; `path` serves `quickstart(_, false)`.
pub async fn a_head_request_on_a_streamed_route_completes(served: Served, path: &str) {
    let response = served.send(Method::HEAD, path).await;
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.expect("an empty body").is_empty());
    assert_eq!(
        served.numbers.ended(path, 1).await,
        Outcomes::new(1, 0, 0),
        "HEAD is answered without its body, as asked: completed, not cancelled"
    );
}

// Shape 9. Percentages recorded by hand inside the handler, then an `Err`.

pub async fn percentages_then_err() -> Result<String, ApiError> {
    let answer = call_provider("percentages-err", 10).await?;
    perf_runtime::current::with(|t| t.record_percentages());
    Err((
        StatusCode::BAD_GATEWAY,
        format!("an answer of {} tokens refused", answer.tokens),
    ))
}

/// Shape 9: `record_percentages()` by hand, then `Err`; `path` serves
/// [`percentages_then_err`].
pub async fn an_err_after_percentages_recorded_by_hand_is_an_error(served: Served, path: &str) {
    let response = served.send(Method::POST, path).await;
    assert_eq!(response.status(), 502);
    assert_eq!(
        served.numbers.ended(path, 1).await,
        Outcomes::new(0, 1, 0),
        "the handler returned Err: error, not completed"
    );
}
