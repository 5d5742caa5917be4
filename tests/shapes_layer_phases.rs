//! PENDING: not compiled yet. The shapes of `tests/shapes_phases.rs` (stages under `join!`
//! before the backend call, parallel backend calls then a stream: shapes 5 and 8) under the
//! tower layer `perf_runtime::PerfLayer`, which does not exist yet. Cargo does not compile a
//! subdirectory of `tests/`; once the layer exists,
//! `git mv tests/pending/shapes_layer_phases.rs tests/` switches these on.
//!
//! The layer's API: `Router::new().route(..).layer(PerfLayer::with_metrics(metrics))`; the
//! `endpoint` label is axum's `MatchedPath`, and `#[perf_endpoint]` is optional: the handlers
//! here have none. Each test has a fresh registry of its own.
//!
//! Each test states the truth; the layer must make them pass.

use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::{Json, Router};
use perf_runtime::{perf_backend, perf_stage, PerfLayer};
use serde_json::{json, Value};

mod common;
use common::{client, ms, relay, serve, sse_response, Answer, Numbers, Outcomes};

type ApiError = (StatusCode, String);

#[perf_backend(provider = "phases", model = model)]
async fn call_provider(model: &'static str, ttfb_ms: u64) -> Result<Answer, ApiError> {
    tokio::time::sleep(ms(ttfb_ms)).await;
    Ok(Answer::new(50, 6, 50))
}

/// Serves `handler` at `path` behind a layer recording into fresh metrics, POSTs to it and
/// reads the answer to its end; the numbers.
async fn request<H, T>(path: &str, handler: H) -> Numbers
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
    response.bytes().await.expect("the whole answer");
    numbers
}

// Shape 5. `join!(auth 2 ms, cache_lookup 20 ms)` before the backend call, in both orders.

#[perf_stage(auth_validation)]
async fn auth() {
    tokio::time::sleep(ms(2)).await;
}

#[perf_stage]
async fn cache_lookup() {
    tokio::time::sleep(ms(20)).await;
}

async fn join_auth_first() -> Result<Json<Value>, ApiError> {
    tokio::join!(auth(), cache_lookup());
    let answer = call_provider("join", 30).await?;
    Ok(Json(json!({ "tokens": answer.tokens })))
}

async fn join_cache_first() -> Result<Json<Value>, ApiError> {
    tokio::join!(cache_lookup(), auth());
    let answer = call_provider("join", 30).await?;
    Ok(Json(json!({ "tokens": answer.tokens })))
}

async fn check_joined_front_end(numbers: &Numbers, endpoint: &str) {
    assert_eq!(numbers.ended(endpoint, 1).await, Outcomes::new(1, 0, 0));
    let (count, front_end) =
        numbers.histogram("frontend_processing_seconds", &[("endpoint", endpoint)]);
    assert_eq!(count, 1);
    assert!(
        (0.020..2.02).contains(&front_end),
        "the front end ran 20 ms before the backend call: {front_end} s"
    );
}

/// Shape 5: `join!(auth 2 ms, cache_lookup 20 ms)` before the backend call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_stages_joined_auth_first_count_as_front_end_until_the_last_ends() {
    let numbers = request("/join", join_auth_first).await;
    check_joined_front_end(&numbers, "/join").await;
}

/// Shape 5: `join!(cache_lookup 20 ms, auth 2 ms)` before the backend call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_stages_joined_cache_first_count_as_front_end_until_the_last_ends() {
    let numbers = request("/join", join_cache_first).await;
    check_joined_front_end(&numbers, "/join").await;
}

// Shape 8. Two backend calls of 300 ms each under `join!`, then a 300 ms stream.

async fn parallel() -> Result<Response, ApiError> {
    let (left, right) = tokio::join!(
        call_provider("parallel-left", 300),
        call_provider("parallel-right", 300)
    );
    let (answer, _other) = (left?, right?);
    Ok(sse_response(relay(answer)))
}

/// Shape 8: two 300 ms backend calls under `join!`, then a 300 ms stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_parallel_backend_calls_share_the_split_by_wall_time() {
    let numbers = request("/parallel", parallel).await;
    assert_eq!(numbers.ended("/parallel", 1).await, Outcomes::new(1, 0, 0));
    let [front_end, backend, streaming] = numbers
        .percentages("/parallel")
        .expect("the split of a completed request is set");
    let (overheads, overhead) =
        numbers.histogram("gateway_overhead_seconds", &[("endpoint", "/parallel")]);
    assert_eq!(overheads, 1);
    assert!(
        (35.0..65.0).contains(&backend) && (35.0..65.0).contains(&streaming) && overhead < 0.1,
        "about 50 % each and overhead < 0.1 s; not [front end, backend, stream] = \
         [{front_end}, {backend}, {streaming}] % with an overhead of {overhead} s"
    );
}
