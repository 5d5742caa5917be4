//! Shape 2, tokens counted once, over real HTTP: a chunked tracked stream marked again by a
//! `#[perf_stream]` statement (2a), a peeked first chunk put back in front of the rest (2b), and
//! two tracked streams merged with `stream::select` (2c). Each relays a simulated provider's
//! answer with known content chunks and usage; the time to first token, the gaps and the tokens
//! must be counted once, and the streaming must fit in the request.
//!
//! The handlers and the scenarios, with their assertions, are those of
//! `tests/shapes/layer_streams.rs` (`tests/shapes/scenarios/streams.rs`); here each handler is
//! wrapped in a `#[perf_endpoint]` fn and records into the global metrics, each test with an
//! endpoint of its own.

use axum::response::Response;
use axum::routing::post;
use axum::Router;
use perf_runtime::perf_endpoint;

use crate::common;
use common::Served;

use crate::scenarios::streams as scenarios;
use scenarios::{ApiError, ANSWER};

const STATEMENT: &str = "/shapes/tokens/statement";

#[perf_endpoint("/shapes/tokens/statement")]
async fn tokens_statement() -> Result<Response, ApiError> {
    scenarios::tokens_statement().await
}

/// Shape 2a: `#[perf_stream] let s = tracked_fn();` over a chunked fn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_stream_marked_again_counts_its_answer_once() {
    let served = Served::as_is(Router::new().route(STATEMENT, post(tokens_statement))).await;
    scenarios::a_chunked_stream_marked_again_counts_its_answer_once(served, STATEMENT).await;
}

const PEEK_ROLE: &str = "/shapes/tokens/peek-role";

#[perf_endpoint("/shapes/tokens/peek-role")]
async fn peek_role() -> Result<Response, ApiError> {
    scenarios::tokens_peek("peek-role", ANSWER).await
}

/// Shape 2b: a peeked first chunk (the role delta) put back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_peeked_at_its_role_and_put_back_counts_its_answer_once() {
    let served = Served::as_is(Router::new().route(PEEK_ROLE, post(peek_role))).await;
    let first = "data: {\"role\"";
    scenarios::a_stream_peeked_and_put_back_counts_its_answer_once(
        served,
        PEEK_ROLE,
        "peek-role",
        first,
    )
    .await;
}

const PEEK_TOKEN: &str = "/shapes/tokens/peek-token";

#[perf_endpoint("/shapes/tokens/peek-token")]
async fn peek_token() -> Result<Response, ApiError> {
    scenarios::tokens_peek("peek-token", ANSWER.without_role()).await
}

/// Shape 2b: a peeked first chunk (the first token) put back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_peeked_at_its_first_token_and_put_back_counts_its_answer_once() {
    let served = Served::as_is(Router::new().route(PEEK_TOKEN, post(peek_token))).await;
    let first = "data: {\"content\"";
    scenarios::a_stream_peeked_and_put_back_counts_its_answer_once(
        served,
        PEEK_TOKEN,
        "peek-token",
        first,
    )
    .await;
}

const SELECT: &str = "/shapes/tokens/select";

#[perf_endpoint("/shapes/tokens/select")]
async fn two_merged() -> Result<Response, ApiError> {
    scenarios::two_merged().await
}

/// Shape 2c: two tracked streams merged with `stream::select`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_merged_streams_stream_within_their_request() {
    let served = Served::as_is(Router::new().route(SELECT, post(two_merged))).await;
    scenarios::two_merged_streams_stream_within_their_request(served, SELECT).await;
}
