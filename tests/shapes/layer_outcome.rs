//! The shapes of `tests/shapes/outcome.rs` (shapes 1, 6 and 9) under the tower layer
//! `perf_runtime::PerfLayer`, plus what only the layer sees: a `HEAD` request, a 204, a body
//! whose stream errors, a client that disconnects mid-body, and unmatched paths.
//!
//! The layer's API: `Router::new().route(..).layer(PerfLayer::with_metrics(metrics))` (or
//! `PerfLayer::new()` for the global metrics); the `endpoint` label is axum's `MatchedPath`, and
//! `#[perf_endpoint]` is optional: the handlers here have none. The shared handlers and
//! scenarios (`tests/shapes/scenarios/outcome.rs`) put their statement attributes in a
//! `#[perf_statements]` fn. Each test has a fresh registry of its own (`Served::layered`),
//! except the one of `PerfLayer::new()`.

use std::io;

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use futures_util::{stream, StreamExt};
use perf_runtime::PerfLayer;
use reqwest::Method;

use crate::common;
use common::{client, ms, serve, Numbers, Outcomes, Served};

use crate::scenarios::outcome as scenarios;
use scenarios::{aggregate_first, aggregate_to_done, percentages_then_err, quickstart};

/// Shape 1a: aggregation read up to `[DONE]`, not to `None`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_an_answer_aggregated_up_to_done_completes() {
    let served = Served::layered(Router::new().route("/aggregate/done", post(aggregate_to_done)));
    scenarios::an_answer_aggregated_up_to_done_completes(served.await, "/aggregate/done").await;
}

/// Shape 1b: aggregation of the first item only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_an_answer_made_of_the_first_item_completes() {
    let served = Served::layered(Router::new().route("/aggregate/first", post(aggregate_first)));
    scenarios::an_answer_made_of_the_first_item_completes(served.await, "/aggregate/first").await;
}

/// Shape 6: the README quick-start body, the provider breaking off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_a_relayed_body_whose_provider_breaks_off_is_an_error() {
    let router = Router::new().route("/quickstart", post(|| quickstart("m", true)));
    let served = Served::layered(router).await;
    scenarios::a_relayed_body_whose_provider_breaks_off_is_an_error(served, "/quickstart", "m")
        .await;
}

/// Shape 6: the README quick-start route under `HEAD`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_a_head_request_on_a_streamed_route_completes() {
    let router = Router::new().route("/quickstart", get(|| quickstart("m", false)));
    let served = Served::layered(router).await;
    scenarios::a_head_request_on_a_streamed_route_completes(served, "/quickstart").await;
}

/// Shape 9: `record_percentages()` by hand, then `Err`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_an_err_after_percentages_recorded_by_hand_is_an_error() {
    let router = Router::new().route("/percentages", post(percentages_then_err));
    let served = Served::layered(router).await;
    scenarios::an_err_after_percentages_recorded_by_hand_is_an_error(served, "/percentages").await;
}

// What only the layer sees: handlers with no perf attribute at all.

/// A plain streamed body: `chunks` chunks 20 ms apart, then, if `fails`, an error.
fn plain_body(chunks: usize, fails: bool) -> Body {
    let chunks = stream::iter(0..chunks).then(|i| async move {
        tokio::time::sleep(ms(20)).await;
        Ok(Bytes::from(format!("chunk {i}\n")))
    });
    let failure = fails.then(|| Err(io::Error::other("the body failed")));
    Body::from_stream(chunks.chain(stream::iter(failure)))
}

/// Layer only: `HEAD` on a plain streamed route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_a_head_request_completes() {
    let served =
        Served::layered(Router::new().route("/plain", get(|| async { plain_body(5, false) })))
            .await;
    let response = served.send(Method::HEAD, "/plain").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        served.numbers.ended("/plain", 1).await,
        Outcomes::new(1, 0, 0)
    );
}

/// Layer only: a 204.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_a_204_completes() {
    let served =
        Served::layered(Router::new().route("/empty", post(|| async { StatusCode::NO_CONTENT })))
            .await;
    let response = served.send(Method::POST, "/empty").await;
    assert_eq!(response.status(), 204);
    assert_eq!(
        served.numbers.ended("/empty", 1).await,
        Outcomes::new(1, 0, 0)
    );
}

/// Layer only: a plain body whose stream errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_a_body_whose_stream_errors_is_an_error() {
    let served =
        Served::layered(Router::new().route("/failing", get(|| async { plain_body(3, true) })))
            .await;
    let response = served.send(Method::GET, "/failing").await;
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.is_err(), "the body broke off");
    assert_eq!(
        served.numbers.ended("/failing", 1).await,
        Outcomes::new(0, 1, 0)
    );
}

/// Layer only: a client leaving mid-body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_a_client_leaving_mid_body_is_cancelled() {
    let served =
        Served::layered(Router::new().route("/long", get(|| async { plain_body(200, false) })))
            .await;
    let mut response = served.send(Method::GET, "/long").await;
    assert_eq!(response.status(), 200);
    for _ in 0..2 {
        response.chunk().await.unwrap().expect("a chunk");
    }
    drop(response); // the client leaves after two of 200 chunks
    assert_eq!(
        served.numbers.ended("/long", 1).await,
        Outcomes::new(0, 0, 1)
    );
}

/// Layer only: a layer inside another's request (a nested router's own layer, and one on the
/// whole app) is part of it: one request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_two_layers_on_one_route_count_one_request() {
    let (numbers, metrics) = Numbers::private();
    let api = Router::new()
        .route("/x", get(|| async { "x" }))
        .layer(PerfLayer::with_metrics(metrics));
    let router = Router::new()
        .nest("/api", api)
        .layer(PerfLayer::with_metrics(metrics));
    let served = Served {
        numbers,
        base: serve(router).await,
    };
    let response = served.send(Method::GET, "/api/x").await;
    assert_eq!(response.status(), 200);
    let numbers = &served.numbers;
    assert_eq!(numbers.ended("/api/x", 1).await, Outcomes::new(1, 0, 0));
    let answers = numbers.counter("http_responses_total", &[("endpoint", "/api/x")]);
    assert_eq!(answers, 1, "one answer counted");
    // Its duration by method and status (OTLP's `http.server.request.duration`), once.
    let exchange = [("endpoint", "/api/x"), ("method", "GET"), ("status", "200")];
    let (timed, lasted) = numbers.histogram("http_request_duration_seconds", &exchange);
    assert_eq!(timed, 1);
    let (_, whole) = numbers.histogram("request_duration_seconds", &[("endpoint", "/api/x")]);
    assert_eq!(lasted, whole, "the same request, the same time");
}

/// Layer only: unmatched paths.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_unmatched_paths_share_one_endpoint() {
    let (numbers, metrics) = Numbers::private();
    let router = Router::new()
        .route("/known", get(|| async { "known" }))
        .layer(PerfLayer::with_metrics(metrics));
    let base = serve(router).await;
    for path in ["/unknown/1", "/unknown/2?x=1"] {
        let response = client()
            .get(format!("{base}{path}"))
            .send()
            .await
            .expect("the server answers");
        assert_eq!(response.status(), 404);
    }
    let counted =
        common::eventually(|| numbers.endpoints_with_requests().values().sum::<u64>() >= 2).await;
    assert!(counted, "both requests ended");
    let endpoints = numbers.endpoints_with_requests();
    assert_eq!(
        endpoints.len(),
        1,
        "one endpoint value for every unmatched path, not the paths: {endpoints:?}"
    );
    assert!(
        !endpoints.keys().any(|e| e.starts_with("/unknown")),
        "{endpoints:?}"
    );
}

/// Layer only: `PerfLayer::new()` and the global metrics (shape 1a's handler).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_with_the_global_metrics_records_into_them() {
    const PATH: &str = "/shapes/layer/global";
    let router = Router::new()
        .route(PATH, post(aggregate_to_done))
        .layer(PerfLayer::new());
    let served = Served {
        numbers: Numbers::global(),
        base: serve(router).await,
    };
    let response = served.send(Method::POST, PATH).await;
    assert_eq!(response.status(), 200);
    let numbers = &served.numbers;
    assert_eq!(numbers.ended(PATH, 1).await, Outcomes::new(1, 0, 0));
    assert_eq!(
        numbers.count("backend_ttfb_seconds", &[("endpoint", PATH)]),
        1
    );
}
