//! What the gateway records against the mock's known timing: TTFB 200 ms, then 10 chunks
//! 30 ms apart, no jitter. One gateway in a process of its own (`common::alone!`), so the series
//! are all its own. The bounds hold on a busy machine (`common::assert_lasted`); how close the
//! numbers come to the mock's is the accuracy report's: `cargo bench --bench accuracy`
//! (BENCHMARKS.md, "Accuracy").

use crate::common;

use common::{
    assert_lasted, assert_split_of, chat, eventually, gauge, global, histogram, post, start_steady,
    Outcomes, KEY, SLACK_MS,
};
use perf::Gateway;

const REQUESTS: u64 = 10;
const CHAT: &str = "/v1/chat/completions";
const BACKEND: [(&str, &str); 3] = [
    ("provider", "mock"),
    ("model", "accuracy"),
    ("endpoint", CHAT),
];
/// The mock's stream: its first chunk 30 ms after its headers (one interval), then 9 more.
const STREAM_MS: f64 = 10.0 * 30.0;

/// Sends `n` streamed requests one after the other, each read to its end, and waits until the
/// gateway has ended them (just after their clients read the last byte).
async fn send(gateway: &Gateway, n: u64) {
    let before = Outcomes::of(CHAT);
    for _ in 0..n {
        let response = post(
            gateway,
            "/chat/completions",
            Some(KEY),
            chat("accuracy", true),
        )
        .await;
        assert_eq!(response.status(), 200);
        let body = response.text().await.unwrap();
        assert!(body.ends_with("data: [DONE]\n\n"));
    }
    let done = || Outcomes::of(CHAT).since(before);
    assert!(eventually(|| done().total() >= n).await, "{:?}", done());
    assert_eq!(done(), Outcomes::new(n, 0, 0));
}

/// `(count, sum in ms)` of the three phases of the chat requests so far: front end, backend (the
/// call to its headers: the TTFB), streaming.
fn phases() -> [(u64, f64); 3] {
    [
        histogram(
            global(),
            "frontend_processing_seconds",
            &[("endpoint", CHAT)],
        ),
        histogram(global(), "backend_ttfb_seconds", &BACKEND),
        histogram(global(), "streaming_duration_seconds", &BACKEND),
    ]
    .map(|series| series.expect("the series"))
    .map(|(count, sum)| (count, sum * 1e3))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_times_match_the_mock() {
    common::alone!();
    let gateway = start_steady((200, 10, 30), &[]).await;
    send(&gateway, REQUESTS - 1).await;
    // The last request alone: the split it sets is its own phases'.
    let before = phases();
    send(&gateway, 1).await;
    let after = phases();

    let counts = after.map(|(count, _)| count);
    assert_eq!(counts, [REQUESTS; 3], "front end, TTFB, streaming");
    let [frontend_ms, ttfb_ms, streaming_ms] = after.map(|(_, sum)| sum / REQUESTS as f64);
    let last: [f64; 3] = std::array::from_fn(|i| after[i].1 - before[i].1);
    let split = [
        "frontend_processing",
        "backend_response",
        "stream_processing",
    ]
    .map(|stage| {
        gauge(
            global(),
            "stage_percentage",
            &[("stage", stage), ("endpoint", CHAT)],
        )
        .expect("a percentage")
    });
    println!(
        "mean TTFB {ttfb_ms:.2} ms, mean streaming {streaming_ms:.2} ms, \
         mean frontend {frontend_ms:.3} ms; the last request's split {split:.3?} of {last:.3?} ms"
    );
    assert_lasted("mean TTFB", ttfb_ms, 200.0);
    // The stream is timed from when the gateway starts relaying it, the mock's schedule from
    // when it sent its headers: their trip and the relay's start come off (two intervals
    // allowed).
    assert!(
        (STREAM_MS - 60.0..STREAM_MS + SLACK_MS).contains(&streaming_ms),
        "mean streaming {streaming_ms} ms"
    );
    // A front end that held the backend's wait would hold at least the TTFB.
    assert!(
        frontend_ms < ttfb_ms,
        "mean frontend {frontend_ms} ms, TTFB {ttfb_ms} ms"
    );
    assert_split_of(split, last);
    gateway.shutdown().await;
}
