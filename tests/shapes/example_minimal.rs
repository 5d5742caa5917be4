//! `examples/minimal.rs`, served as it is: one streamed request, answered by the second provider
//! once the first failed, then its `/metrics`.

#[allow(dead_code)] // its `main`
#[path = "../../examples/minimal.rs"]
mod minimal;

use crate::common;

use common::{check_exposition, Sample};
use common::{client, sse_events};

const ENDPOINT: &str = "/v1/chat/completions";

/// The value of the one sample of `name` with every pair of `labels`, if there is one.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = samples
        .iter()
        .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(v)));
    let first = found.next().map(|s| s.value);
    assert!(found.next().is_none(), "one {name} with {labels:?}");
    first
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_minimal_example_streams_through_its_fallback() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let addr = listener.local_addr().expect("its address");
    tokio::spawn(async move { axum::serve(listener, minimal::router()).await });

    let body = r#"{"messages":[{"role":"user","content":"Hi there"}]}"#;
    let answer = client()
        .post(format!("http://{addr}{ENDPOINT}"))
        .body(body)
        .send()
        .await
        .expect("the example answers");
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["content-type"], "text/event-stream");
    let events = sse_events(&answer.bytes().await.expect("the whole stream"));
    let data: Vec<&str> = events.iter().map(|e| e.data.as_str()).collect();
    assert_eq!(data, ["You ", "said: ", "Hi ", "there"]);

    // Scraped at once: the request ended with the stream's end, before the client saw it.
    let metrics = client()
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .expect("/metrics answers");
    let text = metrics.text().await.expect("a text body");
    let samples = check_exposition(&text).unwrap_or_else(|e| panic!("{e}"));
    let at = |name: &str, labels: &[(&str, &str)]| {
        let mut all = vec![("endpoint", ENDPOINT)];
        all.extend_from_slice(labels);
        value(&samples, name, &all).unwrap_or(0.0)
    };
    let completed = [("outcome", "completed")];
    assert_eq!(at("requests_total", &completed), 1.0);
    assert_eq!(at("http_responses_total", &[("status", "200")]), 1.0);
    let (first, second) = (("provider", "first"), ("provider", "second"));
    assert_eq!(
        at("backend_errors_total", &[first, ("kind", "status")]),
        1.0
    );
    assert_eq!(at("backend_ttfb_seconds_count", &[first]), 0.0, "no TTFB");
    assert_eq!(at("backend_ttfb_seconds_count", &[second]), 1.0);
    // Each provider waits 50 ms; the first word comes 10 ms after the second's first byte.
    let ttfb = at("backend_ttfb_seconds_sum", &[second]);
    let ttft = at("backend_ttft_seconds_sum", &[second]);
    assert!((0.05..5.0).contains(&ttfb), "TTFB {ttfb} s");
    assert!(
        ttft - ttfb >= 0.01 - 1e-9 && ttft < 5.0,
        "TTFT {ttft} s, TTFB {ttfb} s"
    );
    // Four words: three gaps; the keep-alive before them is no token.
    assert_eq!(at("backend_chunk_gap_seconds_count", &[second]), 3.0);
    let stage = |stage| at("request_stage_duration_seconds_count", &[("stage", stage)]);
    assert_eq!(stage("request_parsing"), 1.0);
    assert_eq!(stage("backend_fetch"), 2.0, "both providers were called");
    assert_eq!(stage("stream_processing"), 1.0);
    // `/metrics` comes after the layer: it is not timed.
    assert!(!text.contains("endpoint=\"/metrics\""), "{text}");
}
