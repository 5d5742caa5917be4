//! Shape 2, tokens counted once, over real HTTP: a chunked tracked stream marked again by a
//! `#[perf_stream]` statement (2a), a peeked first chunk put back in front of the rest (2b), and
//! two tracked streams merged with `stream::select` (2c). Each relays a simulated provider's
//! answer with known content chunks and usage; the time to first token, the gaps and the tokens
//! must be counted once, and the streaming must fit in the request.
//!
//! Each test states the truth; today's runtime gets several of them wrong, and these tests are
//! what its rewrite must pass. The handlers record into the global metrics; each test has an
//! endpoint of its own.

use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use futures_util::{future, stream, StreamExt};
use perf_runtime::{perf_backend, perf_endpoint, perf_stream};

mod common;
use common::{client, ms, relay, serve, sse_response, Answer, Numbers, Outcomes};

type ApiError = (StatusCode, String);

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
const ANSWER: Answer = Answer::new(20, 5, 10).with_usage(11, 5);

/// POSTs to `path` of a server of `router` and reads the SSE answer to its end; its text.
async fn read_answer(router: Router, path: &str) -> String {
    let base = serve(router).await;
    let response = client()
        .post(format!("{base}{path}"))
        .body(r#"{"model":"m","stream":true}"#)
        .send()
        .await
        .expect("the server answers");
    assert_eq!(response.status(), 200);
    response.text().await.expect("the whole answer")
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

const STATEMENT: &str = "/shapes/tokens/statement";

#[perf_endpoint("/shapes/tokens/statement")]
async fn tokens_statement() -> Result<Response, ApiError> {
    let answer = call_provider("statement", 10, ANSWER).await?;
    #[perf_stream]
    let events = relay(answer);
    Ok(sse_response(events))
}

/// Shape 2a: `#[perf_stream] let s = tracked_fn();` over a chunked fn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_stream_marked_again_counts_its_answer_once() {
    let numbers = Numbers::global();
    let text = read_answer(
        Router::new().route(STATEMENT, post(tokens_statement)),
        STATEMENT,
    )
    .await;
    assert_eq!(text.matches("\"content\"").count(), 5);
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert_eq!(numbers.ended(STATEMENT, 1).await, Outcomes::new(1, 0, 0));

    assert_eq!(
        answer_numbers(&numbers, STATEMENT),
        (1, 4, 11, 5),
        "(TTFT, gaps, input, output): one first token, 5 - 1 gaps, the usage reported once"
    );
}

// 2b. The handler peeks the first chunk of a chunked tracked stream and answers
// `#[perf_stream] stream::once(first).chain(rest)`: once when that chunk is the role delta, once
// when it is the first token.

/// The peeking handler at `$path`, peeking `$answer` (model `$model`).
macro_rules! peek_handler {
    ($name:ident, $path:literal, $model:literal, $answer:expr) => {
        #[perf_endpoint($path)]
        async fn $name() -> Result<Response, ApiError> {
            let answer = call_provider($model, 10, $answer).await?;
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
    };
}

const PEEK_ROLE: &str = "/shapes/tokens/peek-role";
const PEEK_TOKEN: &str = "/shapes/tokens/peek-token";
peek_handler!(peek_role, "/shapes/tokens/peek-role", "peek-role", ANSWER);
peek_handler!(
    peek_token,
    "/shapes/tokens/peek-token",
    "peek-token",
    ANSWER.without_role()
);

/// Reads the answer of the peeking handler at `path`, whose first event starts with `first`,
/// and checks its numbers.
async fn check_peeked(path: &'static str, router: Router, model: &str, first: &str) {
    let numbers = Numbers::global();
    let text = read_answer(router, path).await;
    assert!(text.starts_with(first), "{text}");
    assert_eq!(text.matches("\"content\"").count(), 5);
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert_eq!(numbers.ended(path, 1).await, Outcomes::new(1, 0, 0));

    assert_eq!(
        answer_numbers(&numbers, path),
        (1, 4, 11, 5),
        "(TTFT, gaps, input, output): one first token, 5 - 1 gaps, the usage not doubled"
    );
    let labels = [("provider", "tokens"), ("model", model), ("endpoint", path)];
    assert_eq!(
        numbers.counter("backend_tokens_total", &labels),
        16,
        "every type of token, under the backend that answered"
    );
}

/// Shape 2b: a peeked first chunk (the role delta) put back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_peeked_at_its_role_and_put_back_counts_its_answer_once() {
    let router = Router::new().route(PEEK_ROLE, post(peek_role));
    check_peeked(PEEK_ROLE, router, "peek-role", "data: {\"role\"").await;
}

/// Shape 2b: a peeked first chunk (the first token) put back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_peeked_at_its_first_token_and_put_back_counts_its_answer_once() {
    let router = Router::new().route(PEEK_TOKEN, post(peek_token));
    check_peeked(PEEK_TOKEN, router, "peek-token", "data: {\"content\"").await;
}

// 2c. Two chunked tracked streams merged with `futures_util::stream::select`, read at once.

const SELECT: &str = "/shapes/tokens/select";

/// Six content chunks 50 ms apart, the first 50 ms after the headers: 300 ms of answer.
const SIDE: Answer = Answer::new(50, 6, 50);

#[perf_endpoint("/shapes/tokens/select")]
async fn two_merged() -> Result<Response, ApiError> {
    let left = call_provider("left", 10, SIDE).await?;
    let right = call_provider("right", 10, SIDE).await?;
    let merged = stream::select(relay(left), relay(right));
    Ok(sse_response(merged))
}

/// Shape 2c: two tracked streams merged with `stream::select`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_merged_streams_stream_within_their_request() {
    let numbers = Numbers::global();
    let text = read_answer(Router::new().route(SELECT, post(two_merged)), SELECT).await;
    assert_eq!(text.matches("\"content\"").count(), 12);
    assert_eq!(numbers.ended(SELECT, 1).await, Outcomes::new(1, 0, 0));

    let labels = [("endpoint", SELECT)];
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
