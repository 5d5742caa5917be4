//! The application with `#[perf_endpoint]` on its handler and no layer: the handler and the
//! stream it hands its answer to decide each request's outcome. Every kind of request at once
//! over real HTTP, then `/metrics` read back, parsed.
//! One scenario per test binary: perf's metrics and the logger are global to the process.

use axum::extract::RawQuery;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use perf_runtime::perf_endpoint;
use user_app::app::ApiError;
use user_app::checks;
use user_app::llm::{self, Gateway, AGGREGATED, ALL, BAD, ENDPOINT, FAILED, HEAD, LEFT, STREAMED};
use user_app::llm_checks::{assert_calls_streams_and_app, assert_requests_ended, outcomes};

/// The same handler, made an endpoint of its own.
#[perf_endpoint("/v1/chat/completions")]
async fn chat(query: RawQuery) -> Result<Response, ApiError> {
    llm::chat(query).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_alone() {
    checks::capture_log();
    let router = Router::new()
        // GET serves HEAD too.
        .route(ENDPOINT, post(chat).get(chat))
        .route("/metrics", get(perf_runtime::exposition::metrics_handler));
    let gateway = Gateway::start(router).await;
    llm::send_requests(&gateway).await;

    let m = gateway.ended(ENDPOINT, ALL).await;
    println!("--- /metrics ---\n{}", m.text);
    let text = &m.text;
    // The handler decides: its `Err` (400 or 502) is an error; its streamed answer read to
    // the end completed it, dropped by the server when the client left cancelled it; the
    // HEAD's stream, never read, and the aggregated stream, read inside the handler, have no
    // say.
    assert_eq!(
        outcomes(&m, ENDPOINT),
        (STREAMED + AGGREGATED + HEAD, FAILED + BAD, LEFT),
        "(completed, error, cancelled)\n{text}"
    );
    // Without the layer, perf does not see HTTP statuses.
    assert_eq!(
        m.label_values("http_responses_total", "endpoint"),
        Default::default(),
        "{text}"
    );
    assert_requests_ended(&m, ENDPOINT);
    assert_calls_streams_and_app(&m);
    let counted = m.label_values_counted("requests_total", "endpoint");
    assert_eq!(counted, [ENDPOINT.to_owned()].into(), "{text}");

    let problems = checks::warnings_and_errors();
    assert!(problems.is_empty(), "perf logged: {problems:#?}");
}
