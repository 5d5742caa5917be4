//! The shapes of `tests/shapes/streams.rs` (shape 2, tokens counted once) under the tower layer
//! `perf_runtime::PerfLayer`.
//!
//! The layer's API: `Router::new().route(..).layer(PerfLayer::with_metrics(metrics))`; the
//! `endpoint` label is axum's `MatchedPath`, and `#[perf_endpoint]` is optional: the handlers
//! here have none (the shared ones of `tests/shapes/scenarios/streams.rs` put their statement
//! attributes in a `#[perf_statements]` fn). Each test has a fresh registry of its own
//! (`Served::layered`).

use axum::routing::post;
use axum::Router;

use crate::common;
use common::Served;

use crate::scenarios::streams as scenarios;
use scenarios::{tokens_peek, tokens_statement, two_merged, ANSWER};

/// Shape 2a: `#[perf_stream] let s = tracked_fn();` over a chunked fn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_a_chunked_stream_marked_again_counts_its_answer_once() {
    let served = Served::layered(Router::new().route("/statement", post(tokens_statement))).await;
    scenarios::a_chunked_stream_marked_again_counts_its_answer_once(served, "/statement").await;
}

/// Shape 2b: a peeked first chunk (the role delta) put back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_a_stream_peeked_at_its_role_and_put_back_counts_its_answer_once() {
    let router = Router::new().route("/peek", post(|| tokens_peek("peek", ANSWER)));
    let served = Served::layered(router).await;
    let first = "data: {\"role\"";
    scenarios::a_stream_peeked_and_put_back_counts_its_answer_once(served, "/peek", "peek", first)
        .await;
}

/// Shape 2b: a peeked first chunk (the first token) put back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_a_stream_peeked_at_its_first_token_and_put_back_counts_its_answer_once() {
    let peek = || tokens_peek("peek", ANSWER.without_role());
    let served = Served::layered(Router::new().route("/peek", post(peek))).await;
    let first = "data: {\"content\"";
    scenarios::a_stream_peeked_and_put_back_counts_its_answer_once(served, "/peek", "peek", first)
        .await;
}

/// Shape 2c: two tracked streams merged with `stream::select`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_two_merged_streams_stream_within_their_request() {
    let served = Served::layered(Router::new().route("/select", post(two_merged))).await;
    scenarios::two_merged_streams_stream_within_their_request(served, "/select").await;
}
