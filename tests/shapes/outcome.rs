//! Handler shapes and the outcome their request ends with, over real HTTP: an answer aggregated
//! from a tracked stream that is not read to its `None` (shape 1), the README quick-start shape
//! with a provider that breaks off and under a `HEAD` request (shape 6), and percentages
//! recorded by hand before an `Err` (shape 9).
//!
//! The handlers and the scenarios, with their assertions, are those of
//! `tests/shapes/layer_outcome.rs` (`tests/shapes/scenarios/outcome.rs`); here each handler is
//! wrapped in a `#[perf_endpoint]` fn and records into the global metrics, each test with
//! endpoints of its own.

use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use perf_runtime::perf_endpoint;
use serde_json::Value;

use crate::common;
use common::Served;

use crate::scenarios::outcome as scenarios;
use scenarios::ApiError;

const AGGREGATE_DONE: &str = "/shapes/aggregate/done";

#[perf_endpoint("/shapes/aggregate/done")]
async fn aggregate_to_done() -> Result<Json<Value>, ApiError> {
    scenarios::aggregate_to_done().await
}

/// Shape 1a: aggregation read up to `[DONE]`, not to `None`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_aggregated_up_to_done_completes() {
    let router = Router::new().route(AGGREGATE_DONE, post(aggregate_to_done));
    let served = Served::as_is(router).await;
    scenarios::an_answer_aggregated_up_to_done_completes(served, AGGREGATE_DONE).await;
}

const AGGREGATE_FIRST: &str = "/shapes/aggregate/first";

#[perf_endpoint("/shapes/aggregate/first")]
async fn aggregate_first() -> Result<Json<Value>, ApiError> {
    scenarios::aggregate_first().await
}

/// Shape 1b: aggregation of the first item only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_made_of_the_first_item_completes() {
    let router = Router::new().route(AGGREGATE_FIRST, post(aggregate_first));
    let served = Served::as_is(router).await;
    scenarios::an_answer_made_of_the_first_item_completes(served, AGGREGATE_FIRST).await;
}

const QUICKSTART_BROKEN: &str = "/shapes/quickstart/broken";

#[perf_endpoint("/shapes/quickstart/broken")]
async fn quickstart_broken() -> Result<Response, ApiError> {
    scenarios::quickstart("broken", true).await
}

/// Shape 6: the README quick-start body, the provider breaking off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_body_whose_provider_breaks_off_is_an_error() {
    let router = Router::new().route(QUICKSTART_BROKEN, post(quickstart_broken));
    let served = Served::as_is(router).await;
    scenarios::a_relayed_body_whose_provider_breaks_off_is_an_error(
        served,
        QUICKSTART_BROKEN,
        "broken",
    )
    .await;
}

const QUICKSTART_HEAD: &str = "/shapes/quickstart/head";

#[perf_endpoint("/shapes/quickstart/head")]
async fn quickstart_head() -> Result<Response, ApiError> {
    scenarios::quickstart("head", false).await
}

/// Shape 6: the README quick-start route under `HEAD`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_request_on_a_streamed_route_completes() {
    let served = Served::as_is(Router::new().route(QUICKSTART_HEAD, get(quickstart_head))).await;
    scenarios::a_head_request_on_a_streamed_route_completes(served, QUICKSTART_HEAD).await;
}

const PERCENTAGES_ERR: &str = "/shapes/percentages/err";

#[perf_endpoint("/shapes/percentages/err")]
async fn percentages_then_err() -> Result<String, ApiError> {
    scenarios::percentages_then_err().await
}

/// Shape 9: `record_percentages()` by hand, then `Err`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_err_after_percentages_recorded_by_hand_is_an_error() {
    let router = Router::new().route(PERCENTAGES_ERR, post(percentages_then_err));
    let served = Served::as_is(router).await;
    scenarios::an_err_after_percentages_recorded_by_hand_is_an_error(served, PERCENTAGES_ERR).await;
}
