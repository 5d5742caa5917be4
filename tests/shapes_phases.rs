//! Handler shapes and the phases of their request's time, over real HTTP: two front-end stages
//! under `join!` before the backend call (shape 5, in both orders), and two backend calls
//! under `join!` followed by a streamed answer (shape 8). The stages and calls are tokio sleeps
//! of known length.
//!
//! Each test states the truth; today's runtime gets several of them wrong, and these tests are
//! what its rewrite must pass. The handlers record into the global metrics; each test has
//! endpoints of its own.

use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::{Json, Router};
use perf_runtime::{perf_backend, perf_endpoint, perf_stage};
use serde_json::{json, Value};

mod common;
use common::{client, ms, relay, serve, sse_response, Answer, Numbers, Outcomes};

type ApiError = (StatusCode, String);

/// The provider call: its headers after `ttfb_ms`, then six tokens 50 ms apart, the first 50 ms
/// after the headers (300 ms of answer).
#[perf_backend(provider = "phases", model = model)]
async fn call_provider(model: &'static str, ttfb_ms: u64) -> Result<Answer, ApiError> {
    tokio::time::sleep(ms(ttfb_ms)).await;
    Ok(Answer::new(50, 6, 50))
}

/// POSTs to `path` of a server of `router` and reads the answer to its end.
async fn request(router: Router, path: &str) {
    let base = serve(router).await;
    let response = client()
        .post(format!("{base}{path}"))
        .send()
        .await
        .expect("the server answers");
    assert_eq!(response.status(), 200);
    response.bytes().await.expect("the whole answer");
}

// Shape 5. `join!(auth 2 ms, cache_lookup 20 ms)` before the backend call, in both orders.

#[perf_stage(auth_validation)]
async fn auth() {
    tokio::time::sleep(ms(2)).await;
}

/// The declared stage `cache_lookup` (`[package.metadata.perf] stages` in Cargo.toml).
#[perf_stage]
async fn cache_lookup() {
    tokio::time::sleep(ms(20)).await;
}

const AUTH_FIRST: &str = "/shapes/phases/join-auth-first";
const CACHE_FIRST: &str = "/shapes/phases/join-cache-first";

#[perf_endpoint("/shapes/phases/join-auth-first")]
async fn join_auth_first() -> Result<Json<Value>, ApiError> {
    tokio::join!(auth(), cache_lookup());
    let answer = call_provider("join-auth-first", 30).await?;
    Ok(Json(json!({ "tokens": answer.tokens })))
}

#[perf_endpoint("/shapes/phases/join-cache-first")]
async fn join_cache_first() -> Result<Json<Value>, ApiError> {
    tokio::join!(cache_lookup(), auth());
    let answer = call_provider("join-cache-first", 30).await?;
    Ok(Json(json!({ "tokens": answer.tokens })))
}

/// Checks the front end of the one request of `endpoint`: the 20 ms the joined stages took
/// before the backend call started.
async fn check_joined_front_end(numbers: &Numbers, endpoint: &str) {
    assert_eq!(numbers.ended(endpoint, 1).await, Outcomes::new(1, 0, 0));
    assert_eq!(numbers.stage_count(endpoint, "auth_validation"), 1);
    assert_eq!(numbers.stage_count(endpoint, "cache_lookup"), 1);
    let (count, front_end) =
        numbers.histogram("frontend_processing_seconds", &[("endpoint", endpoint)]);
    assert_eq!(count, 1);
    assert!(
        (0.020..2.02).contains(&front_end),
        "the front end ran 20 ms (auth's 2 ms within cache_lookup's 20) before the backend \
         call: {front_end} s"
    );
}

/// Shape 5: `join!(auth 2 ms, cache_lookup 20 ms)` before the backend call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stages_joined_auth_first_count_as_front_end_until_the_last_ends() {
    let numbers = Numbers::global();
    request(
        Router::new().route(AUTH_FIRST, post(join_auth_first)),
        AUTH_FIRST,
    )
    .await;
    check_joined_front_end(&numbers, AUTH_FIRST).await;
}

/// Shape 5: `join!(cache_lookup 20 ms, auth 2 ms)` before the backend call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stages_joined_cache_first_count_as_front_end_until_the_last_ends() {
    let numbers = Numbers::global();
    request(
        Router::new().route(CACHE_FIRST, post(join_cache_first)),
        CACHE_FIRST,
    )
    .await;
    check_joined_front_end(&numbers, CACHE_FIRST).await;
}

// Shape 8. Two backend calls of 300 ms each under `join!` after no front end, then a 300 ms
// stream.

const PARALLEL: &str = "/shapes/phases/parallel";

#[perf_endpoint("/shapes/phases/parallel")]
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
async fn parallel_backend_calls_share_the_split_by_wall_time() {
    let numbers = Numbers::global();
    request(Router::new().route(PARALLEL, post(parallel)), PARALLEL).await;
    assert_eq!(numbers.ended(PARALLEL, 1).await, Outcomes::new(1, 0, 0));

    let [front_end, backend, streaming] = numbers
        .percentages(PARALLEL)
        .expect("the split of a completed request is set");
    let (overheads, overhead) =
        numbers.histogram("gateway_overhead_seconds", &[("endpoint", PARALLEL)]);
    assert_eq!(overheads, 1);
    assert!(
        (35.0..65.0).contains(&backend) && (35.0..65.0).contains(&streaming) && overhead < 0.1,
        "300 ms of backend (two calls at once) and 300 ms of stream: about 50 % each, and \
         little left to the gateway (overhead < 0.1 s); not [front end, backend, stream] = \
         [{front_end}, {backend}, {streaming}] % with an overhead of {overhead} s"
    );
}
