//! Handler shapes around the provider calls, over real HTTP: a backend marked twice (shape 3),
//! hedged calls raced with `tokio::select!` (shape 4), and coalesced and nested requests
//! (shape 7). Each call is a simulated provider (a tokio sleep) with known timing.
//!
//! The handlers and the scenarios, with their assertions, are those of
//! `tests/shapes/layer_calls.rs` (`tests/shapes/scenarios/calls.rs`); here each handler is
//! wrapped in a `#[perf_endpoint]` fn and records into the global metrics, each test with
//! endpoints of its own.

use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use axum::{Json, Router};
use perf_runtime::perf_endpoint;
use serde_json::Value;

use crate::common;
use common::Served;

use crate::scenarios::calls as scenarios;
use scenarios::{ApiError, Coalescer};

const TWICE: &str = "/shapes/calls/backend-twice";

#[perf_endpoint("/shapes/calls/backend-twice")]
async fn backend_twice() -> Result<Json<Value>, ApiError> {
    scenarios::backend_twice().await
}

/// Shape 3: a `#[perf_backend]` statement around a `#[perf_backend]` fn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_call_marked_twice_is_one_call() {
    let served = Served::as_is(Router::new().route(TWICE, post(backend_twice))).await;
    scenarios::a_backend_call_marked_twice_is_one_call(served, TWICE).await;
}

const HEDGE_WIN: &str = "/shapes/calls/hedge-win";

#[perf_endpoint("/shapes/calls/hedge-win")]
async fn hedge_win() -> Result<Response, ApiError> {
    scenarios::hedge_win("hedge-win").await
}

/// Shape 4: hedged calls, A wins, B dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hedged_call_won_by_a_times_the_first_token_from_a() {
    let served = Served::as_is(Router::new().route(HEDGE_WIN, post(hedge_win))).await;
    scenarios::a_hedged_call_won_by_a_times_the_first_token_from_a(served, HEDGE_WIN).await;
}

const HEDGE_FAIL: &str = "/shapes/calls/hedge-fail";

#[perf_endpoint("/shapes/calls/hedge-fail")]
async fn hedge_fail() -> Result<Json<Value>, ApiError> {
    scenarios::hedge_fail("hedge-fail").await
}

/// Shape 4 (variant): hedged calls, A fails while B is in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hedged_call_whose_first_call_fails_counts_the_error_against_it() {
    let served = Served::as_is(Router::new().route(HEDGE_FAIL, post(hedge_fail))).await;
    scenarios::a_hedged_call_whose_first_call_fails_counts_the_error_against_it(
        served,
        HEDGE_FAIL,
        "hedge-fail",
    )
    .await;
}

const COALESCE_FIRST: &str = "/shapes/calls/coalesce-first";
const COALESCE_JOINED: &str = "/shapes/calls/coalesce-joined";

#[perf_endpoint("/shapes/calls/coalesce-first")]
async fn coalesce_first(calls: State<Coalescer>) -> Result<String, ApiError> {
    scenarios::coalesced(calls).await
}

#[perf_endpoint("/shapes/calls/coalesce-joined")]
async fn coalesce_joined(calls: State<Coalescer>) -> Result<String, ApiError> {
    scenarios::coalesced(calls).await
}

/// Shape 7a: coalesced requests sharing one call, the first client leaving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_joining_a_coalesced_call_records_its_wait_as_backend() {
    let router = Router::new()
        .route(COALESCE_FIRST, post(coalesce_first))
        .route(COALESCE_JOINED, post(coalesce_joined))
        .with_state(Coalescer::default());
    let served = Served::as_is(router).await;
    scenarios::a_request_joining_a_coalesced_call_records_its_wait_as_backend(
        served,
        COALESCE_FIRST,
        COALESCE_JOINED,
    )
    .await;
}

const OUTER: &str = "/shapes/calls/outer";
const INNER: &str = "/shapes/calls/inner";

#[perf_endpoint("/shapes/calls/inner")]
async fn inner() -> Result<Json<Value>, ApiError> {
    scenarios::nested_call().await
}

#[perf_endpoint("/shapes/calls/outer")]
async fn outer() -> Result<Json<Value>, ApiError> {
    inner().await
}

/// Shape 7b: an endpoint fn awaiting another endpoint fn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_awaiting_another_is_one_request() {
    let served = Served::as_is(Router::new().route(OUTER, post(outer))).await;
    scenarios::an_endpoint_awaited_inside_a_request_is_that_request(served, OUTER, INNER).await;
}
