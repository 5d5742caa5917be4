//! The handlers and scenarios of shapes 5 and 8 (the phases of a request's time: stages under
//! `join!` before the backend call, parallel backend calls then a stream), shared by
//! `tests/shapes/phases.rs` (each handler wrapped in a `#[perf_endpoint]` fn) and
//! `tests/shapes/layer_phases.rs` (the same handlers behind `PerfLayer`). The stages and calls
//! are tokio sleeps of known length; each scenario states the truth for either.

use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use perf_runtime::{perf_backend, perf_stage};
use serde_json::{json, Value};

use crate::common::{ms, relay, sse_response, Answer, Outcomes, Served};

pub type ApiError = (StatusCode, String);

/// The provider call: its headers after `ttfb_ms`, then six tokens 50 ms apart, the first 50 ms
/// after the headers (300 ms of answer).
#[perf_backend(provider = "phases", model = model)]
async fn call_provider(model: &'static str, ttfb_ms: u64) -> Result<Answer, ApiError> {
    tokio::time::sleep(ms(ttfb_ms)).await;
    Ok(Answer::new(50, 6, 50))
}

/// POSTs to `path` and reads the answer to its end.
async fn request(served: &Served, path: &str) {
    let response = served.post_ok(path).await;
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

/// `join!(auth, cache_lookup)`, then the backend call of model `model`.
pub async fn join_auth_first(model: &'static str) -> Result<Json<Value>, ApiError> {
    tokio::join!(auth(), cache_lookup());
    let answer = call_provider(model, 30).await?;
    Ok(Json(json!({ "tokens": answer.tokens })))
}

/// `join!(cache_lookup, auth)`, then the backend call of model `model`.
pub async fn join_cache_first(model: &'static str) -> Result<Json<Value>, ApiError> {
    tokio::join!(cache_lookup(), auth());
    let answer = call_provider(model, 30).await?;
    Ok(Json(json!({ "tokens": answer.tokens })))
}

/// Shape 5: requests `path` (serving [`join_auth_first`] or [`join_cache_first`]) and checks
/// the front end of its one request: the 20 ms the joined stages took before the backend call
/// started.
pub async fn stages_joined_count_as_front_end_until_the_last_ends(served: Served, path: &str) {
    request(&served, path).await;
    let numbers = &served.numbers;
    assert_eq!(numbers.ended(path, 1).await, Outcomes::new(1, 0, 0));
    assert_eq!(numbers.stage_count(path, "auth_validation"), 1);
    assert_eq!(numbers.stage_count(path, "cache_lookup"), 1);
    let (count, front_end) =
        numbers.histogram("frontend_processing_seconds", &[("endpoint", path)]);
    assert_eq!(count, 1);
    assert!(
        (0.020..2.02).contains(&front_end),
        "the front end ran 20 ms (auth's 2 ms within cache_lookup's 20) before the backend \
         call: {front_end} s"
    );
}

// Shape 8. Two backend calls of 300 ms each under `join!` after no front end, then a 300 ms
// stream.

pub async fn parallel() -> Result<Response, ApiError> {
    let (left, right) = tokio::join!(
        call_provider("parallel-left", 300),
        call_provider("parallel-right", 300)
    );
    let (answer, _other) = (left?, right?);
    Ok(sse_response(relay(answer)))
}

/// Shape 8: two 300 ms backend calls under `join!`, then a 300 ms stream; `path` serves
/// [`parallel`].
pub async fn parallel_backend_calls_share_the_split_by_wall_time(served: Served, path: &str) {
    request(&served, path).await;
    let numbers = &served.numbers;
    assert_eq!(numbers.ended(path, 1).await, Outcomes::new(1, 0, 0));

    let [front_end, backend, streaming] = numbers
        .percentages(path)
        .expect("the split of a completed request is set");
    let (overheads, overhead) =
        numbers.histogram("gateway_overhead_seconds", &[("endpoint", path)]);
    assert_eq!(overheads, 1);
    assert!(
        (35.0..65.0).contains(&backend) && (35.0..65.0).contains(&streaming) && overhead < 0.1,
        "300 ms of backend (two calls at once) and 300 ms of stream: about 50 % each, and \
         little left to the gateway (overhead < 0.1 s); not [front end, backend, stream] = \
         [{front_end}, {backend}, {streaming}] % with an overhead of {overhead} s"
    );
}
