//! Panics in the example gateway's handlers, each with exact counts: a panic in a stage is a 500,
//! counted once as `error`; a panic in a response stream breaks that stream off, counted once as
//! `error`, its streaming recorded once; the gateway serves the next request exactly.
//!
//! The tests count requests in the global registry, so each runs alone (`common::alone!`).

use crate::common;

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::{IntoResponse, Response};
use axum::routing::post as post_route;
use axum::Router;
use clap::Parser;
use common::{
    backend_counts, chat, client, count, diff, error_of, eventually, frontend_count, global, post,
    stage_count, stage_counts, Outcomes, KEY, ZERO_MOCK,
};
use futures_util::{stream, StreamExt};
use perf::gateway::error::ApiError;
use perf::gateway::handlers::App;
use perf::{Config, Gateway};
use perf_runtime::{perf_backend, perf_endpoint, perf_stage, perf_stream};
use serde_json::json;

const CHAT: &str = "/v1/chat/completions";

// ---------------------------------------------------------------------------------------------
// Panics
// ---------------------------------------------------------------------------------------------

const PANIC_IN_STAGE: &str = "/test/panic-in-stage";
const PANIC_IN_STREAM: &str = "/test/panic-in-stream";

/// A handler of the test's own, served by the gateway next to its API: it panics in its
/// `request_preparation` stage when the body says so.
#[perf_endpoint("/test/panic-in-stage")]
async fn panic_in_stage(body: Bytes) -> Result<Response, ApiError> {
    #[perf_stage(request_parsing)]
    let request: serde_json::Value = serde_json::from_slice(&body)?;
    prepare(&request);
    Ok("prepared".into_response())
}

#[perf_stage(request_preparation)]
fn prepare(request: &serde_json::Value) {
    assert!(
        request["panic"] != true,
        "request_preparation panicked on purpose"
    );
}

/// A handler whose response stream panics at its second chunk when the body says so.
#[perf_endpoint("/test/panic-in-stream")]
async fn panic_in_stream(body: Bytes) -> Result<Response, ApiError> {
    #[perf_stage(request_parsing)]
    let request: serde_json::Value = serde_json::from_slice(&body)?;
    let panics = request["panic"] == true;
    #[perf_backend(provider = "test", model = "panic-in-stream")]
    let () = std::future::ready(()).await;
    // A pause before each later chunk: the status and the first chunk go out before it.
    #[perf_stream]
    let chunks = stream::iter(0..3).then(move |i| async move {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!(panics && i == 1), "the stream panicked on purpose");
        Ok::<_, Infallible>(Bytes::from(format!("chunk {i}\n")))
    });
    Ok(Body::from_stream(chunks).into_response())
}

async fn start_with_test_routes(args: &[&str]) -> Gateway {
    let mut argv = vec!["gateway", "--listen", "127.0.0.1:0", "--api-key", KEY];
    argv.extend_from_slice(args);
    let routes: Router<App> = Router::new()
        .route(PANIC_IN_STAGE, post_route(panic_in_stage))
        .route(PANIC_IN_STREAM, post_route(panic_in_stream));
    Gateway::start_with_routes(&Config::parse_from(argv), routes)
        .await
        .expect("the gateway starts")
}

async fn post_to(gateway: &Gateway, path: &str, body: serde_json::Value) -> reqwest::Response {
    client()
        .post(format!("http://{}{path}", gateway.addr()))
        .body(body.to_string())
        .send()
        .await
        .expect("the gateway answers")
}

/// A plain chat request through the gateway's own handler, recorded exactly.
async fn one_good_chat(gateway: &Gateway, model: &str) {
    let before = (Outcomes::of(CHAT), stage_counts(CHAT));
    let response = post(gateway, "/chat/completions", Some(KEY), chat(model, true)).await;
    assert_eq!(response.status(), 200);
    response.bytes().await.expect("the whole stream");
    assert!(eventually(|| Outcomes::of(CHAT).since(before.0).total() == 1).await);
    assert_eq!(Outcomes::of(CHAT).since(before.0).completed, 1);
    assert_eq!(diff(stage_counts(CHAT), before.1), [1; 5]);
    assert_eq!(backend_counts(CHAT, model), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_a_stage_is_a_500_counted_once_as_an_error() {
    common::alone!();
    let gateway = start_with_test_routes(ZERO_MOCK).await;
    let ep = PANIC_IN_STAGE;

    let response = post_to(&gateway, ep, json!({"panic": true})).await;
    let error = error_of(response, 500).await;
    assert_eq!(error["error"]["type"], "server_error");
    assert!(
        !error["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("on purpose"),
        "the panic message stays on the gateway"
    );
    assert_eq!(Outcomes::of(ep), Outcomes::new(0, 1, 0));
    assert_eq!(stage_count(global(), ep, "request_parsing"), 1);
    assert_eq!(
        stage_count(global(), ep, "request_preparation"),
        1,
        "the panicking stage is recorded once, up to the panic"
    );
    assert_eq!(
        frontend_count(global(), ep),
        0,
        "a panicked request has no end"
    );

    // The same handler, without the panic: recorded exactly.
    let response = post_to(&gateway, ep, json!({"panic": false})).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "prepared");
    assert_eq!(Outcomes::of(ep), Outcomes::new(1, 1, 0));
    assert_eq!(stage_count(global(), ep, "request_preparation"), 2);
    assert_eq!(frontend_count(global(), ep), 1);

    // The gateway's own endpoints are unaffected.
    one_good_chat(&gateway, "after-a-panic-in-a-stage").await;
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_a_stream_breaks_it_off_counted_once_as_an_error() {
    common::alone!();
    let gateway = start_with_test_routes(ZERO_MOCK).await;
    let ep = PANIC_IN_STREAM;
    let labels = [
        ("provider", "test"),
        ("model", "panic-in-stream"),
        ("endpoint", ep),
    ];

    let response = post_to(&gateway, ep, json!({"panic": true})).await;
    assert_eq!(response.status(), 200, "the status went before the panic");
    assert!(
        response.bytes().await.is_err(),
        "the stream is broken off, not ended"
    );
    assert!(eventually(|| Outcomes::of(ep).total() == 1).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(Outcomes::of(ep), Outcomes::new(0, 1, 0));
    assert_eq!(count(global(), "backend_ttfb_seconds", &labels), 1);
    assert_eq!(
        count(global(), "streaming_duration_seconds", &labels),
        1,
        "streaming recorded once, up to the panic"
    );
    assert_eq!(stage_count(global(), ep, "stream_processing"), 1);
    assert_eq!(
        frontend_count(global(), ep),
        1,
        "the handler had returned before its stream panicked: its front end ran in full"
    );

    let response = post_to(&gateway, ep, json!({"panic": false})).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().await.unwrap(),
        "chunk 0\nchunk 1\nchunk 2\n"
    );
    assert!(eventually(|| Outcomes::of(ep).completed == 1).await);
    assert_eq!(Outcomes::of(ep), Outcomes::new(1, 1, 0));
    assert_eq!(count(global(), "streaming_duration_seconds", &labels), 2);
    assert_eq!(frontend_count(global(), ep), 2);

    one_good_chat(&gateway, "after-a-panic-in-a-stream").await;
    gateway.shutdown().await;
}
