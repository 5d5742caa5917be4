//! A client that hangs up mid-stream: the tracked stream is the one axum sends, so dropping
//! the connection ends the request (as cancelled, without a split), and its streaming is recorded
//! once, up to the hang-up.

use crate::common;

use std::time::Duration;

use common::{
    chat, counter, eventually, gauge, global, post, snapshot, start_steady, KEY, SLACK_MS,
};
use perf_runtime::metrics::snapshot::HistogramSnapshot;

const CHAT: &str = "/v1/chat/completions";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_hanging_up_ends_the_request() {
    common::alone!();
    // A stream of 400 chunks, 50 ms apart: 20 s if read to the end.
    let gateway = start_steady((50, 400, 50), &[]).await;
    let mut response = post(
        &gateway,
        "/chat/completions",
        Some(KEY),
        chat("hang-up", true),
    )
    .await;
    assert_eq!(response.status(), 200);
    let first = response.chunk().await.unwrap();
    assert!(first.is_some());
    drop(response);

    let labels = [
        ("provider", "mock"),
        ("model", "hang-up"),
        ("endpoint", CHAT),
    ];
    // The request ended there, as cancelled. `requests_total` is the last thing a request's
    // end records: once it is counted, its streaming is recorded too.
    let cancelled = || {
        counter(
            global(),
            "requests_total",
            &[("endpoint", CHAT), ("outcome", "cancelled")],
        )
    };
    assert!(eventually(|| cancelled() >= 1).await, "the request ended");
    assert_eq!(cancelled(), 1);
    let HistogramSnapshot {
        count,
        sum: seconds,
        ..
    } = snapshot(global(), "streaming_duration_seconds", &labels).unwrap_or_default();
    assert_eq!(count, 1, "streaming recorded once");
    // The hang-up shows at the next chunk at the latest: one interval, and a busy machine's
    // slack; the full stream would be 20 s.
    assert!(
        seconds * 1e3 < 50.0 + SLACK_MS,
        "recorded up to the hang-up, not the full stream: {seconds} s"
    );
    // The split of a cut-off answer is not set.
    assert!(
        gauge(global(), "stage_percentage", &[("endpoint", CHAT)]).is_none(),
        "no split for a request the client left"
    );

    // Released: nothing holds the gateway's stream from the mock, so both servers shut down at
    // once, not after the 20 s of the stream; and nothing more is recorded.
    let stopped = tokio::time::timeout(Duration::from_secs(10), gateway.shutdown()).await;
    assert!(stopped.is_ok(), "the stream from the mock was still open");
    assert_eq!(
        common::count(global(), "streaming_duration_seconds", &labels),
        1
    );
}
