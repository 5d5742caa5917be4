//! The shapes of `tests/shapes/calls.rs` (a backend marked twice, hedged calls, coalesced and
//! nested requests: shapes 3, 4 and 7) under the tower layer `perf_runtime::PerfLayer`.
//!
//! The layer's API: `Router::new().route(..).layer(PerfLayer::with_metrics(metrics))`; the
//! `endpoint` label is axum's `MatchedPath`, and `#[perf_endpoint]` is optional: the handlers
//! here have none, except the nested one, which must not make a second request. The shared
//! handlers and scenarios are in `tests/shapes/scenarios/calls.rs`. Each test has a fresh
//! registry of its own (`Served::layered`).

use axum::routing::post;
use axum::{Json, Router};
use perf_runtime::perf_endpoint;
use serde_json::Value;

use crate::common;
use common::Served;

use crate::scenarios::calls as scenarios;
use scenarios::{backend_twice, coalesced, hedge_fail, hedge_win, ApiError, Coalescer};

/// Shape 3: a `#[perf_backend]` statement around a `#[perf_backend]` fn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_a_backend_call_marked_twice_is_one_call() {
    let served = Served::layered(Router::new().route("/twice", post(backend_twice))).await;
    scenarios::a_backend_call_marked_twice_is_one_call(served, "/twice").await;
}

/// Shape 4: hedged calls, A wins, B dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_a_hedged_call_won_by_a_times_the_first_token_from_a() {
    let served = Served::layered(Router::new().route("/hedge", post(|| hedge_win("hedge")))).await;
    scenarios::a_hedged_call_won_by_a_times_the_first_token_from_a(served, "/hedge").await;
}

/// Shape 4 (variant): hedged calls, A fails while B is in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_a_hedged_call_whose_first_call_fails_counts_the_error_against_it() {
    let served = Served::layered(Router::new().route("/hedge", post(|| hedge_fail("hedge")))).await;
    scenarios::a_hedged_call_whose_first_call_fails_counts_the_error_against_it(
        served, "/hedge", "hedge",
    )
    .await;
}

/// Shape 7a: coalesced requests sharing one call, the first client leaving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_a_request_joining_a_coalesced_call_records_its_wait_as_backend() {
    let router = Router::new()
        .route("/first", post(coalesced))
        .route("/joined", post(coalesced))
        .with_state(Coalescer::default());
    let served = Served::layered(router).await;
    scenarios::a_request_joining_a_coalesced_call_records_its_wait_as_backend(
        served, "/first", "/joined",
    )
    .await;
}

#[perf_endpoint("/inner")]
async fn inner() -> Result<Json<Value>, ApiError> {
    scenarios::nested_call().await
}

async fn outer() -> Result<Json<Value>, ApiError> {
    inner().await
}

/// Shape 7b: a `#[perf_endpoint]` fn awaited by a layered handler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_an_endpoint_fn_inside_a_layered_request_is_the_same_request() {
    let served = Served::layered(Router::new().route("/outer", post(outer))).await;
    scenarios::an_endpoint_awaited_inside_a_request_is_that_request(served, "/outer", "/inner")
        .await;
}
