//! PENDING: not compiled yet. The shapes of `tests/shapes_streams.rs` (shape 2, tokens counted
//! once) under the tower layer `perf_runtime::PerfLayer`, which does not exist yet. Cargo does
//! not compile a subdirectory of `tests/`; once the layer exists,
//! `git mv tests/pending/shapes_layer_streams.rs tests/` switches these on.
//!
//! The layer's API: `Router::new().route(..).layer(PerfLayer::with_metrics(metrics))`; the
//! `endpoint` label is axum's `MatchedPath`, and `#[perf_endpoint]` is optional: the handlers
//! here have none (statement attributes go in a `#[perf_statements]` handler). Each test has a
//! fresh registry of its own.
//!
//! Each test states the truth; the layer must make them pass.

use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use futures_util::{future, stream, StreamExt};
use perf_runtime::{perf_backend, perf_statements, perf_stream, PerfLayer};

mod common;
use common::{client, ms, relay, serve, sse_response, Answer, Numbers, Outcomes};

type ApiError = (StatusCode, String);

#[perf_backend(provider = "tokens", model = model)]
async fn call_provider(
    model: &'static str,
    ttfb_ms: u64,
    answer: Answer,
) -> Result<Answer, ApiError> {
    tokio::time::sleep(ms(ttfb_ms)).await;
    Ok(answer)
}

/// Five content chunks 10 ms apart; 11 prompt tokens, 5 generated.
const ANSWER: Answer = Answer::new(20, 5, 10).with_usage(11, 5);

/// Serves `handler` at `path` behind a layer recording into fresh metrics, POSTs to it and
/// reads the answer to its end: the numbers and the answer's text.
async fn read_answer<H, T>(path: &str, handler: H) -> (Numbers, String)
where
    H: axum::handler::Handler<T, ()>,
    T: 'static,
{
    let (numbers, metrics) = Numbers::private();
    let router = Router::new()
        .route(path, post(handler))
        .layer(PerfLayer::with_metrics(metrics));
    let base = serve(router).await;
    let response = client()
        .post(format!("{base}{path}"))
        .send()
        .await
        .expect("the server answers");
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("the whole answer");
    (numbers, text)
}

/// `(TTFT observations, chunk gaps, input tokens, output tokens)` of `endpoint`.
fn answer_numbers(numbers: &Numbers, endpoint: &str) -> (u64, u64, u64, u64) {
    let labels = [("endpoint", endpoint)];
    let tokens = |kind| {
        numbers.counter(
            "backend_tokens_total",
            &[("endpoint", endpoint), ("type", kind)],
        )
    };
    (
        numbers.count("backend_ttft_seconds", &labels),
        numbers.count("backend_chunk_gap_seconds", &labels),
        tokens("input"),
        tokens("output"),
    )
}

// 2a. `#[perf_stream] let s = tracked_fn();` over a chunked `#[perf_stream(chunks = f)]` fn.

#[perf_statements]
async fn tokens_statement() -> Result<Response, ApiError> {
    let answer = call_provider("statement", 10, ANSWER).await?;
    #[perf_stream]
    let events = relay(answer);
    Ok(sse_response(events))
}

/// Shape 2a: `#[perf_stream] let s = tracked_fn();` over a chunked fn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_a_chunked_stream_marked_again_counts_its_answer_once() {
    let (numbers, text) = read_answer("/statement", tokens_statement).await;
    assert_eq!(text.matches("\"content\"").count(), 5);
    assert_eq!(numbers.ended("/statement", 1).await, Outcomes::new(1, 0, 0));
    assert_eq!(
        answer_numbers(&numbers, "/statement"),
        (1, 4, 11, 5),
        "(TTFT, gaps, input, output)"
    );
}

// 2b. A peeked first chunk put back: `#[perf_stream] stream::once(first).chain(rest)`.

#[perf_statements]
async fn tokens_peek(answer: Answer) -> Result<Response, ApiError> {
    let answer = call_provider("peek", 10, answer).await?;
    let mut upstream = Box::pin(relay(answer));
    let first = upstream
        .next()
        .await
        .ok_or((StatusCode::BAD_GATEWAY, "an empty answer".to_owned()))?;
    #[perf_stream]
    let events = stream::once(future::ready(first)).chain(upstream);
    Ok(sse_response(events))
}

/// Shape 2b: a peeked first chunk (the role delta) put back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_a_stream_peeked_at_its_role_and_put_back_counts_its_answer_once() {
    let (numbers, text) = read_answer("/peek", || tokens_peek(ANSWER)).await;
    assert!(text.starts_with("data: {\"role\""), "{text}");
    assert_eq!(numbers.ended("/peek", 1).await, Outcomes::new(1, 0, 0));
    assert_eq!(
        answer_numbers(&numbers, "/peek"),
        (1, 4, 11, 5),
        "(TTFT, gaps, input, output)"
    );
}

/// Shape 2b: a peeked first chunk (the first token) put back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_a_stream_peeked_at_its_first_token_and_put_back_counts_its_answer_once() {
    let (numbers, text) = read_answer("/peek", || tokens_peek(ANSWER.without_role())).await;
    assert!(text.starts_with("data: {\"content\""), "{text}");
    assert_eq!(numbers.ended("/peek", 1).await, Outcomes::new(1, 0, 0));
    assert_eq!(
        answer_numbers(&numbers, "/peek"),
        (1, 4, 11, 5),
        "(TTFT, gaps, input, output)"
    );
}

// 2c. Two chunked tracked streams merged with `stream::select`.

/// Six content chunks 50 ms apart, the first 50 ms after the headers: 300 ms of answer.
const SIDE: Answer = Answer::new(50, 6, 50);

async fn two_merged() -> Result<Response, ApiError> {
    let left = call_provider("left", 10, SIDE).await?;
    let right = call_provider("right", 10, SIDE).await?;
    Ok(sse_response(stream::select(relay(left), relay(right))))
}

/// Shape 2c: two tracked streams merged with `stream::select`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_two_merged_streams_stream_within_their_request() {
    let (numbers, text) = read_answer("/select", two_merged).await;
    assert_eq!(text.matches("\"content\"").count(), 12);
    assert_eq!(numbers.ended("/select", 1).await, Outcomes::new(1, 0, 0));
    let labels = [("endpoint", "/select")];
    let (_, streaming) = numbers.histogram("streaming_duration_seconds", &labels);
    let (requests, duration) = numbers.histogram("request_duration_seconds", &labels);
    assert_eq!(requests, 1);
    assert!(streaming >= 0.3, "each stream took 300 ms: {streaming} s");
    assert!(
        streaming <= duration,
        "the streaming ({streaming} s) is part of the request ({duration} s)"
    );
}
