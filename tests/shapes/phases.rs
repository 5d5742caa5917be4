//! Handler shapes and the phases of their request's time, over real HTTP: two front-end stages
//! under `join!` before the backend call (shape 5, in both orders), and two backend calls
//! under `join!` followed by a streamed answer (shape 8). The stages and calls are tokio sleeps
//! of known length.
//!
//! The handlers and the scenarios, with their assertions, are those of
//! `tests/shapes/layer_phases.rs` (`tests/shapes/scenarios/phases.rs`); here each handler is
//! wrapped in a `#[perf_endpoint]` fn and records into the global metrics, each test with
//! endpoints of its own.

use axum::response::Response;
use axum::routing::post;
use axum::{Json, Router};
use perf_runtime::perf_endpoint;
use serde_json::Value;

use crate::common;
use common::Served;

use crate::scenarios::phases as scenarios;
use scenarios::ApiError;

const AUTH_FIRST: &str = "/shapes/phases/join-auth-first";
const CACHE_FIRST: &str = "/shapes/phases/join-cache-first";

#[perf_endpoint("/shapes/phases/join-auth-first")]
async fn join_auth_first() -> Result<Json<Value>, ApiError> {
    scenarios::join_auth_first("join-auth-first").await
}

#[perf_endpoint("/shapes/phases/join-cache-first")]
async fn join_cache_first() -> Result<Json<Value>, ApiError> {
    scenarios::join_cache_first("join-cache-first").await
}

/// Shape 5: `join!(auth 2 ms, cache_lookup 20 ms)` before the backend call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stages_joined_auth_first_count_as_front_end_until_the_last_ends() {
    let served = Served::as_is(Router::new().route(AUTH_FIRST, post(join_auth_first))).await;
    scenarios::stages_joined_count_as_front_end_until_the_last_ends(served, AUTH_FIRST).await;
}

/// Shape 5: `join!(cache_lookup 20 ms, auth 2 ms)` before the backend call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stages_joined_cache_first_count_as_front_end_until_the_last_ends() {
    let served = Served::as_is(Router::new().route(CACHE_FIRST, post(join_cache_first))).await;
    scenarios::stages_joined_count_as_front_end_until_the_last_ends(served, CACHE_FIRST).await;
}

const PARALLEL: &str = "/shapes/phases/parallel";

#[perf_endpoint("/shapes/phases/parallel")]
async fn parallel() -> Result<Response, ApiError> {
    scenarios::parallel().await
}

/// Shape 8: two 300 ms backend calls under `join!`, then a 300 ms stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_backend_calls_share_the_split_by_wall_time() {
    let served = Served::as_is(Router::new().route(PARALLEL, post(parallel))).await;
    scenarios::parallel_backend_calls_share_the_split_by_wall_time(served, PARALLEL).await;
}
