//! The shapes of `tests/shapes/phases.rs` (stages under `join!` before the backend call,
//! parallel backend calls then a stream: shapes 5 and 8) under the tower layer
//! `perf_runtime::PerfLayer`.
//!
//! The layer's API: `Router::new().route(..).layer(PerfLayer::with_metrics(metrics))`; the
//! `endpoint` label is axum's `MatchedPath`, and `#[perf_endpoint]` is optional: the handlers
//! here (the shared ones of `tests/shapes/scenarios/phases.rs`) have none. Each test has a fresh
//! registry of its own (`Served::layered`).

use axum::routing::post;
use axum::Router;

use crate::common;
use common::Served;

use crate::scenarios::phases as scenarios;
use scenarios::{join_auth_first, join_cache_first, parallel};

/// Shape 5: `join!(auth 2 ms, cache_lookup 20 ms)` before the backend call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_stages_joined_auth_first_count_as_front_end_until_the_last_ends() {
    let served = Served::layered(Router::new().route("/join", post(|| join_auth_first("join"))));
    scenarios::stages_joined_count_as_front_end_until_the_last_ends(served.await, "/join").await;
}

/// Shape 5: `join!(cache_lookup 20 ms, auth 2 ms)` before the backend call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_stages_joined_cache_first_count_as_front_end_until_the_last_ends() {
    let served = Served::layered(Router::new().route("/join", post(|| join_cache_first("join"))));
    scenarios::stages_joined_count_as_front_end_until_the_last_ends(served.await, "/join").await;
}

/// Shape 8: two 300 ms backend calls under `join!`, then a 300 ms stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_parallel_backend_calls_share_the_split_by_wall_time() {
    let served = Served::layered(Router::new().route("/parallel", post(parallel))).await;
    scenarios::parallel_backend_calls_share_the_split_by_wall_time(served, "/parallel").await;
}
