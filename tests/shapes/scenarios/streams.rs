//! The handlers and scenarios of shape 2 (tokens counted once), shared by
//! `tests/shapes/streams.rs` (each handler wrapped in a `#[perf_endpoint]` fn) and
//! `tests/shapes/layer_streams.rs` (the same handlers behind `PerfLayer`). Each scenario states
//! the truth for either.

use axum::http::StatusCode;
use axum::response::Response;
use futures_util::{future, stream, StreamExt};
use perf_runtime::{perf_backend, perf_statements, perf_stream};

use crate::common::{ms, relay, sse_response, Answer, Numbers, Outcomes, Served};

pub type ApiError = (StatusCode, String);

/// The provider call: its headers after `ttfb_ms`, then `answer`.
#[perf_backend(provider = "tokens", model = model)]
async fn call_provider(
    model: &'static str,
    ttfb_ms: u64,
    answer: Answer,
) -> Result<Answer, ApiError> {
    tokio::time::sleep(ms(ttfb_ms)).await;
    Ok(answer)
}

/// Five content chunks 10 ms apart, the first 20 ms after the headers; 11 prompt tokens, 5
/// generated.
pub const ANSWER: Answer = Answer::new(20, 5, 10).with_usage(11, 5);

/// POSTs to `path` and reads the SSE answer to its end; its text.
async fn read_answer(served: &Served, path: &str) -> String {
    let response = served.post_ok(path).await;
    response.text().await.expect("the whole answer")
}

/// Reads the answer of `path` (`ANSWER` or its like, relayed from provider `tokens`), and
/// checks it and the numbers of its one request: one first token, 5 - 1 gaps, the usage reported
/// once; the answer's text.
async fn check_answer(served: &Served, path: &str) -> String {
    let text = read_answer(served, path).await;
    assert_eq!(text.matches("\"content\"").count(), 5);
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let numbers = &served.numbers;
    assert_eq!(numbers.ended(path, 1).await, Outcomes::new(1, 0, 0));

    assert_eq!(
        answer_numbers(numbers, path),
        (1, 4, 11, 5),
        "(TTFT, gaps, input, output): one first token, 5 - 1 gaps, the usage reported once"
    );
    text
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

// 2a. `#[perf_stream] let s = tracked_fn();`: a statement marking the value of a chunked
// `#[perf_stream(chunks = f)]` fn.

#[perf_statements]
pub async fn tokens_statement() -> Result<Response, ApiError> {
    let answer = call_provider("statement", 10, ANSWER).await?;
    #[perf_stream]
    let events = relay(answer);
    Ok(sse_response(events))
}

/// Shape 2a: `#[perf_stream] let s = tracked_fn();` over a chunked fn; `path` serves
/// [`tokens_statement`].
pub async fn a_chunked_stream_marked_again_counts_its_answer_once(served: Served, path: &str) {
    check_answer(&served, path).await;
}

// 2b. The handler peeks the first chunk of a chunked tracked stream and answers
// `#[perf_stream] stream::once(first).chain(rest)`: once when that chunk is the role delta, once
// when it is the first token.

/// The peeking handler, peeking `answer` of model `model`.
#[perf_statements]
pub async fn tokens_peek(model: &'static str, answer: Answer) -> Result<Response, ApiError> {
    let answer = call_provider(model, 10, answer).await?;
    let mut upstream = Box::pin(relay(answer));
    // A gateway looks at the first chunk to turn a provider's error into a status.
    let first = upstream
        .next()
        .await
        .ok_or((StatusCode::BAD_GATEWAY, "an empty answer".to_owned()))?;
    #[perf_stream]
    let events = stream::once(future::ready(first)).chain(upstream);
    Ok(sse_response(events))
}

/// Shape 2b: reads the answer of the peeking handler at `path` (`tokens_peek(model, _)`), whose
/// first event starts with `first`, and checks its numbers.
pub async fn a_stream_peeked_and_put_back_counts_its_answer_once(
    served: Served,
    path: &str,
    model: &str,
    first: &str,
) {
    let text = check_answer(&served, path).await;
    assert!(text.starts_with(first), "{text}");
    let labels = [("provider", "tokens"), ("model", model), ("endpoint", path)];
    assert_eq!(
        served.numbers.counter("backend_tokens_total", &labels),
        16,
        "every type of token, under the backend that answered"
    );
}

// 2c. Two chunked tracked streams merged with `futures_util::stream::select`, read at once.

/// Six content chunks 50 ms apart, the first 50 ms after the headers: 300 ms of answer.
const SIDE: Answer = Answer::new(50, 6, 50);

pub async fn two_merged() -> Result<Response, ApiError> {
    let left = call_provider("left", 10, SIDE).await?;
    let right = call_provider("right", 10, SIDE).await?;
    let merged = stream::select(relay(left), relay(right));
    Ok(sse_response(merged))
}

/// Shape 2c: two tracked streams merged with `stream::select`; `path` serves [`two_merged`].
pub async fn two_merged_streams_stream_within_their_request(served: Served, path: &str) {
    let text = read_answer(&served, path).await;
    assert_eq!(text.matches("\"content\"").count(), 12);
    let numbers = &served.numbers;
    assert_eq!(numbers.ended(path, 1).await, Outcomes::new(1, 0, 0));

    let labels = [("endpoint", path)];
    let (_, streaming) = numbers.histogram("streaming_duration_seconds", &labels);
    let (requests, duration) = numbers.histogram("request_duration_seconds", &labels);
    assert_eq!(requests, 1);
    assert!(
        streaming >= 0.3,
        "each stream took 300 ms, at once: {streaming} s"
    );
    assert!(
        streaming <= duration,
        "the streaming ({streaming} s) is part of the request ({duration} s)"
    );
}
