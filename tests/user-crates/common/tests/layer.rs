//! The application behind `PerfLayer`: its handler has no `#[perf_endpoint]`, each HTTP
//! exchange is one request, and `/metrics` (added after the layer) is not timed. Every kind of
//! request at once over real HTTP, then `/metrics` read back, parsed.
//! One scenario per test binary: perf's metrics and the logger are global to the process.

use axum::routing::{get, post};
use axum::Router;
use perf_runtime::PerfLayer;
use user_app::checks;
use user_app::llm::{self, Gateway, AGGREGATED, ALL, BAD, ENDPOINT, FAILED, HEAD, LEFT, STREAMED};
use user_app::llm_checks::{assert_calls_streams_and_app, assert_requests_ended, outcomes};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer() {
    checks::capture_log();
    let router = Router::new()
        // GET serves HEAD too.
        .route(ENDPOINT, post(llm::chat).get(llm::chat))
        .layer(PerfLayer::new())
        .route("/metrics", get(perf_runtime::exposition::metrics_handler));
    let gateway = Gateway::start(router).await;
    llm::send_requests(&gateway).await;
    // A path no route has: the layer, on the router's fallback, counts it as `unmatched`.
    assert_eq!(gateway.get("/v1/nowhere").await.0, 404);

    let m = gateway.ended(ENDPOINT, ALL).await;
    println!("--- /metrics ---\n{}", m.text);
    let text = &m.text;
    // The HTTP exchange decides: a 4xx answer is a completed exchange, a 5xx an error, a
    // client that left cancelled it; HEAD ends with its response.
    assert_eq!(
        outcomes(&m, ENDPOINT),
        (STREAMED + AGGREGATED + HEAD + BAD, FAILED, LEFT),
        "(completed, error, cancelled)\n{text}"
    );
    let status = |endpoint, code| {
        let labels = [("endpoint", endpoint), ("status", code)];
        m.counter("http_responses_total", &labels)
    };
    assert_eq!(
        status(ENDPOINT, "200"),
        STREAMED + AGGREGATED + HEAD + LEFT,
        "{text}"
    );
    assert_eq!(status(ENDPOINT, "400"), BAD, "{text}");
    assert_eq!(status(ENDPOINT, "502"), FAILED, "{text}");
    assert_eq!(
        m.counter("http_responses_total", &[("endpoint", ENDPOINT)]),
        ALL,
        "{text}"
    );
    assert_requests_ended(&m, ENDPOINT);
    assert_calls_streams_and_app(&m);

    let unmatched = perf_runtime::UNMATCHED_ENDPOINT;
    assert_eq!(outcomes(&m, unmatched), (1, 0, 0), "{text}");
    assert_eq!(status(unmatched, "404"), 1, "{text}");
    // `/metrics`, added after the layer, is no endpoint; nor is any other path.
    let counted = m.label_values_counted("requests_total", "endpoint");
    assert_eq!(
        counted,
        [ENDPOINT, unmatched].map(String::from).into(),
        "{text}"
    );
    assert!(
        !m.label_values("http_responses_total", "endpoint")
            .contains("/metrics"),
        "{text}"
    );

    let problems = checks::warnings_and_errors();
    assert!(problems.is_empty(), "perf logged: {problems:#?}");
}
