//! The LLM-native numbers the gateway records against the mock's known timing: headers after
//! 100 ms, the first token 400 ms later, then 19 more chunks 50 ms apart, no jitter. The
//! tolerances are the issue's: TTFB within 5 ms of 100 ms, TTFT within 15 ms of 500 ms, chunk
//! gaps within 3 ms of 50 ms, the tokens exactly the mock's usage, the gateway's own overhead
//! under 5 ms, also for a request whose first provider call failed and was retried.
//!
//! The tests take turns (`common::turn`): `gateway_overhead_seconds` has only the `endpoint`
//! label, so each reads the difference its own requests made, and the timings are not shared
//! with another test's on a small machine.

mod common;

use common::{
    chat_with, eventually, mock_tokens, mock_usage, post, server_timing, start, try_histogram,
    turn, Outcomes, KEY, SERVER_TIMING_ENTRIES,
};
use perf_runtime::metrics::snapshot::HistogramSnapshot;

const CHAT: &str = "/v1/chat/completions";
const REQUESTS: u64 = 5;
const CHUNKS: u64 = 20;
const MOCK: &[&str] = &[
    "--mock-ttfb-ms",
    "100",
    "--mock-first-token-ms",
    "400",
    "--mock-chunks",
    "20",
    "--mock-chunk-interval-ms",
    "50",
    "--mock-jitter-ms",
    "0",
];
const PROMPT: &str = "Where does the time of an LLM request go?";

/// The histogram series of `family` with `labels` (empty if not created yet).
fn read(family: &str, labels: &[(&str, &str)]) -> HistogramSnapshot {
    try_histogram(family, labels).unwrap_or_default()
}

/// `(count, mean in ms)` of the observations made between `before` and `after`.
fn since(after: &HistogramSnapshot, before: &HistogramSnapshot) -> (u64, f64) {
    let count = after.count - before.count;
    (count, (after.sum - before.sum) * 1e3 / count.max(1) as f64)
}

/// `(count, mean in ms)` of the backend family `family` of `model`.
fn backend(family: &str, model: &str) -> (u64, f64) {
    let labels = [("provider", "mock"), ("model", model), ("endpoint", CHAT)];
    since(&read(family, &labels), &HistogramSnapshot::default())
}

fn overhead() -> HistogramSnapshot {
    read("gateway_overhead_seconds", &[("endpoint", CHAT)])
}

/// Waits (boundedly) until `n` more chat requests than `before` have completed: a request ends
/// just after its client has read the stream's last byte.
async fn completed(before: Outcomes, n: u64) {
    let done = || Outcomes::of(CHAT).since(before);
    assert!(eventually(|| done().total() >= n).await, "{:?}", done());
    assert_eq!(done().completed, n, "{:?}", done());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_requests_record_ttft_chunk_gaps_tokens_and_overhead() {
    let _turn = turn().await;
    let gateway = start(MOCK).await;
    let (model, outcomes, overhead_before) = ("llm-accuracy", Outcomes::of(CHAT), overhead());
    for _ in 0..REQUESTS {
        let body = chat_with(model, PROMPT, true, false);
        let response = post(&gateway, "/chat/completions", Some(KEY), body).await;
        assert_eq!(response.status(), 200);
        let body = response.text().await.unwrap();
        assert!(body.ends_with("data: [DONE]\n\n"));
        assert!(!body.contains("\"usage\":{"), "the client did not ask");
    }
    completed(outcomes, REQUESTS).await;

    let (ttfbs, ttfb) = backend("backend_ttfb_seconds", model);
    let (ttfts, ttft) = backend("backend_ttft_seconds", model);
    let (gaps, gap) = backend("backend_chunk_gap_seconds", model);
    let (overheads, overhead_ms) = since(&overhead(), &overhead_before);
    let tokens = mock_tokens(model, CHAT);
    println!(
        "{REQUESTS} streamed requests: mean TTFB {ttfb:.2} ms, mean TTFT {ttft:.2} ms, \
         {gaps} chunk gaps of mean {gap:.3} ms, mean overhead {overhead_ms:.3} ms, tokens {tokens:?}"
    );
    assert_eq!((ttfbs, ttfts, overheads), (REQUESTS, REQUESTS, REQUESTS));
    assert_eq!(gaps, REQUESTS * (CHUNKS - 1));
    assert!((ttfb - 100.0).abs() <= 5.0, "mean TTFB {ttfb} ms");
    assert!((ttft - 500.0).abs() <= 15.0, "mean TTFT {ttft} ms");
    assert!((gap - 50.0).abs() <= 3.0, "mean chunk gap {gap} ms");
    let one = mock_usage(PROMPT.len() as u64, CHUNKS);
    assert_eq!(tokens.output, REQUESTS * CHUNKS);
    assert_eq!(tokens.input, REQUESTS * one.input);
    assert_eq!(tokens.cached_input, REQUESTS * one.cached_input);
    assert_eq!(tokens.reasoning, REQUESTS * one.reasoning);
    assert!(overhead_ms < 5.0, "mean overhead {overhead_ms} ms");
    gateway.shutdown().await;
}

/// Every second answer of the mock is a 500 and the gateway retries once: the second request's
/// first call fails after the 100 ms to its headers, the retry answers. Both calls are backend
/// windows: the overhead leaves both out, and the time to first token runs from the retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_request_leaves_both_calls_out_of_its_overhead() {
    let _turn = turn().await;
    let mock = [
        "--mock-ttfb-ms",
        "100",
        "--mock-chunks",
        "5",
        "--mock-chunk-interval-ms",
        "10",
        "--mock-jitter-ms",
        "0",
        "--mock-fail-every",
        "2",
        "--upstream-retries",
        "1",
    ];
    let gateway = start(&mock).await;
    // The first answer of the mock does not fail; it also opens the connection to the mock.
    let outcomes = Outcomes::of(CHAT);
    let response = post(
        &gateway,
        "/chat/completions",
        Some(KEY),
        chat_with("retry-warm-up", "Hi", true, false),
    )
    .await;
    response.bytes().await.unwrap();
    completed(outcomes, 1).await;

    let model = "retried";
    let labels = [("endpoint", CHAT)];
    let (outcomes, overhead_before) = (Outcomes::of(CHAT), overhead());
    let duration_before = read(
        "request_duration_seconds",
        &[labels[0], ("outcome", "completed")],
    );
    let response = post(
        &gateway,
        "/chat/completions",
        Some(KEY),
        chat_with(model, "Hi", true, false),
    )
    .await;
    assert_eq!(response.status(), 200, "the retry answered");
    assert!(response.text().await.unwrap().ends_with("data: [DONE]\n\n"));
    completed(outcomes, 1).await;

    let (overheads, overhead_ms) = since(&overhead(), &overhead_before);
    let duration_after = read(
        "request_duration_seconds",
        &[labels[0], ("outcome", "completed")],
    );
    let (_, duration_ms) = since(&duration_after, &duration_before);
    let (ttfbs, ttfb) = backend("backend_ttfb_seconds", model);
    let (_, ttft) = backend("backend_ttft_seconds", model);
    println!(
        "retried request: {duration_ms:.1} ms in all, overhead {overhead_ms:.3} ms, \
         TTFB of the retry {ttfb:.2} ms, TTFT {ttft:.2} ms"
    );
    assert_eq!(overheads, 1);
    assert_eq!(common::backend_errors("mock", model, CHAT, "status"), 1);
    assert_eq!(ttfbs, 1, "the failed call records no TTFB");
    // Two calls of 100 ms to their headers, then 5 chunks 10 ms apart.
    assert!(duration_ms >= 240.0, "request {duration_ms} ms");
    assert!(
        overhead_ms < 5.0,
        "overhead {overhead_ms} ms, the first call took 100 ms"
    );
    assert!(
        (ttft - 110.0).abs() <= 15.0,
        "TTFT {ttft} ms from the retry's start"
    );
    gateway.shutdown().await;
}

/// A whole answer's `Server-Timing`: the front-end stages and the backend's wait, the same time
/// its TTFB records (the mock answers whole after 100 + 400 + 19 × 50 = 1450 ms).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_answer_carries_its_server_timing() {
    let _turn = turn().await;
    let gateway = start(MOCK).await;
    let model = "timed";
    let response = post(
        &gateway,
        "/chat/completions",
        Some(KEY),
        chat_with(model, PROMPT, false, false),
    )
    .await;
    assert_eq!(response.status(), 200);
    let timing = server_timing(response.headers());
    response.bytes().await.unwrap();
    println!("Server-Timing: {timing:?}");
    let names: Vec<&str> = timing.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, SERVER_TIMING_ENTRIES);
    for (stage, ms) in &timing[..3] {
        assert!(*ms < 5.0, "{stage} {ms} ms");
    }
    let backend_ms = timing[3].1;
    assert!(
        (backend_ms - 1450.0).abs() <= 15.0,
        "backend {backend_ms} ms"
    );
    let (_, ttfb) = backend("backend_ttfb_seconds", model);
    assert!(
        (backend_ms - ttfb).abs() < 0.01,
        "backend {backend_ms} ms, TTFB {ttfb} ms"
    );
    assert!(
        eventually(|| mock_tokens(model, CHAT) == mock_usage(PROMPT.len() as u64, CHUNKS)).await
    );
    gateway.shutdown().await;
}
