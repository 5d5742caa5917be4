//! What the gateway records against the mock's known timing: TTFB 200 ms, then 10 chunks
//! 30 ms apart, no jitter. One gateway for the whole binary, so the series are all its own.

mod common;

use common::{chat, gauge, histogram, post, start_steady, KEY};

const REQUESTS: u64 = 10;
const CHAT: &str = "/v1/chat/completions";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_times_match_the_mock() {
    let gateway = start_steady((200, 10, 30), &[]).await;
    for _ in 0..REQUESTS {
        let response = post(
            &gateway,
            "/chat/completions",
            Some(KEY),
            chat("accuracy", true),
        )
        .await;
        assert_eq!(response.status(), 200);
        let body = response.text().await.unwrap();
        assert!(body.ends_with("data: [DONE]\n\n"));
    }

    let backend = [
        ("provider", "mock"),
        ("model", "accuracy"),
        ("endpoint", CHAT),
    ];
    let (count, sum) = histogram("backend_ttfb_seconds", &backend);
    assert_eq!(count, REQUESTS);
    let ttfb_ms = sum * 1e3 / count as f64;

    let (count, sum) = histogram("streaming_duration_seconds", &backend);
    assert_eq!(count, REQUESTS);
    let streaming_ms = sum * 1e3 / count as f64;

    let (count, sum) = histogram("frontend_processing_seconds", &[("endpoint", CHAT)]);
    assert_eq!(count, REQUESTS);
    let frontend_ms = sum * 1e3 / count as f64;

    let split: Vec<f64> = [
        "frontend_processing",
        "backend_response",
        "stream_processing",
    ]
    .iter()
    .map(|stage| gauge("stage_percentage", &[("stage", stage), ("endpoint", CHAT)]))
    .collect();
    let total: f64 = split.iter().sum();

    println!(
        "mean TTFB {ttfb_ms:.2} ms, mean streaming {streaming_ms:.2} ms, \
         mean frontend {frontend_ms:.3} ms, split {split:.3?} (sum {total:.4})"
    );
    assert!((195.0..=260.0).contains(&ttfb_ms), "mean TTFB {ttfb_ms} ms");
    assert!(
        (240.0..=400.0).contains(&streaming_ms),
        "mean streaming {streaming_ms} ms"
    );
    assert!(frontend_ms < 3.0, "mean frontend {frontend_ms} ms");
    assert!((total - 100.0).abs() <= 2.0, "percentages {split:?}");
    // The last request was like every other: about 200 / 500 in the backend.
    assert!((30.0..=60.0).contains(&split[1]), "backend share {split:?}");
}
