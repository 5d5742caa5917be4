//! The LLM-native numbers the gateway records against the mock's known timing: headers after
//! 100 ms, the first token 400 ms later, then 19 more chunks 50 ms apart, no jitter. The bounds
//! hold on a busy machine (`common::assert_lasted`): each time is at least the mock's wait it
//! holds; TTFB < TTFT, and the last token comes no earlier than the mock's schedule and before
//! the request's end; the tokens are exactly the mock's usage; the overhead is at most what the
//! backend windows leave of the request, also for a request whose first provider call failed
//! and was retried. How close the numbers come to the truth (the 5 ms for the TTFB,
//! 15 ms for the TTFT, 3 ms for a chunk gap, an overhead under 5 ms) is the accuracy report's:
//! `cargo bench --bench accuracy` (BENCHMARKS.md, "Accuracy").
//!
//! Each test runs alone (`common::alone!`): `gateway_overhead_seconds` has only the `endpoint`
//! label, so each reads the difference its own requests made.

use crate::common;

use common::{
    assert_lasted, chat_with, eventually, global, mock_tokens, mock_usage, post, server_timing,
    snapshot, start, Outcomes, CLOCK_MS, KEY, ROUNDING_MS, SERVER_TIMING_ENTRIES,
};
use perf_runtime::metrics::snapshot::HistogramSnapshot;

const CHAT: &str = "/v1/chat/completions";
const REQUESTS: u64 = 5;
const CHUNKS: u64 = 20;
use common::{ACCURACY_ANSWER_MS as MOCK_ANSWER_MS, ACCURACY_MOCK as MOCK};
use common::{ACCURACY_PROMPT as PROMPT, RETRIED_MOCK};

/// The histogram series of `family` with `labels` (empty if not created yet).
fn read(family: &str, labels: &[(&str, &str)]) -> HistogramSnapshot {
    snapshot(global(), family, labels).unwrap_or_default()
}

/// `(count, total in ms)` of the observations made between `before` and `after`.
fn since(after: &HistogramSnapshot, before: &HistogramSnapshot) -> (u64, f64) {
    (after.count - before.count, (after.sum - before.sum) * 1e3)
}

/// `(count, total in ms)` of the backend family `family` of `model`.
fn backend(family: &str, model: &str) -> (u64, f64) {
    let labels = [("provider", "mock"), ("model", model), ("endpoint", CHAT)];
    since(&read(family, &labels), &HistogramSnapshot::default())
}

/// What the chat endpoint's requests have recorded so far, whatever their model.
struct Endpoint {
    /// `request_duration_seconds{outcome="completed"}`.
    duration: HistogramSnapshot,
    overhead: HistogramSnapshot,
    /// The `backend_fetch` stage: each provider call to its headers, failed ones too.
    fetch: HistogramSnapshot,
    frontend: HistogramSnapshot,
}

/// `(count, total in ms)` of each family of [`Endpoint`] between two readings.
struct Spent {
    duration: (u64, f64),
    overhead: (u64, f64),
    fetch: (u64, f64),
    frontend: (u64, f64),
}

impl Endpoint {
    fn now() -> Endpoint {
        let endpoint = ("endpoint", CHAT);
        Endpoint {
            duration: read(
                "request_duration_seconds",
                &[endpoint, ("outcome", "completed")],
            ),
            overhead: read("gateway_overhead_seconds", &[endpoint]),
            fetch: read(
                "request_stage_duration_seconds",
                &[endpoint, ("stage", "backend_fetch")],
            ),
            frontend: read("frontend_processing_seconds", &[endpoint]),
        }
    }

    fn since(&self, before: &Endpoint) -> Spent {
        Spent {
            duration: since(&self.duration, &before.duration),
            overhead: since(&self.overhead, &before.overhead),
            fetch: since(&self.fetch, &before.fetch),
            frontend: since(&self.frontend, &before.frontend),
        }
    }
}

/// The overhead is the request's time outside its backend windows, which hold its provider
/// calls and its stream one after the other: at most the requests' time less the calls
/// (`fetch`) and the streaming, at least their front end. All in ms, over `requests`.
#[track_caller]
fn assert_overhead_left_out(spent: &Spent, streaming_ms: f64, requests: u64) {
    let (overhead, duration) = (spent.overhead.1, spent.duration.1);
    let outside = duration - spent.fetch.1 - streaming_ms;
    let rounding = ROUNDING_MS * requests as f64;
    assert!(
        overhead <= outside + rounding,
        "overhead {overhead} ms holds backend time: the requests took {duration} ms, of which \
         {} ms in provider calls and {streaming_ms} ms streaming",
        spent.fetch.1
    );
    assert!(
        overhead >= spent.frontend.1 - rounding,
        "overhead {overhead} ms, less than the front end's {} ms",
        spent.frontend.1
    );
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
    common::alone!();
    let gateway = start(MOCK).await;
    let (model, outcomes, before) = ("llm-accuracy", Outcomes::of(CHAT), Endpoint::now());
    for _ in 0..REQUESTS {
        let body = chat_with(model, PROMPT, true, false);
        let response = post(&gateway, "/chat/completions", Some(KEY), body).await;
        assert_eq!(response.status(), 200);
        let body = response.text().await.unwrap();
        assert!(body.ends_with("data: [DONE]\n\n"));
        assert!(!body.contains("\"usage\":{"), "the client did not ask");
    }
    completed(outcomes, REQUESTS).await;

    let spent = Endpoint::now().since(&before);
    let (ttfbs, ttfb) = backend("backend_ttfb_seconds", model);
    let (ttfts, ttft) = backend("backend_ttft_seconds", model);
    let (gaps, gap) = backend("backend_chunk_gap_seconds", model);
    let (streams, streaming) = backend("streaming_duration_seconds", model);
    let tokens = mock_tokens(model, CHAT);
    let (n, duration) = (REQUESTS as f64, spent.duration.1);
    let mean_gap = gap / gaps.max(1) as f64;
    println!(
        "{REQUESTS} streamed requests: mean TTFB {:.2} ms, mean TTFT {:.2} ms, {gaps} chunk \
         gaps of mean {mean_gap:.3} ms, mean request {:.2} ms, mean overhead {:.3} ms, \
         tokens {tokens:?}",
        ttfb / n,
        ttft / n,
        duration / n,
        spent.overhead.1 / n
    );
    assert_eq!((ttfbs, ttfts, streams), (REQUESTS, REQUESTS, REQUESTS));
    assert_eq!(
        (spent.duration.0, spent.overhead.0, spent.fetch.0),
        (REQUESTS, REQUESTS, REQUESTS)
    );
    assert_eq!(gaps, REQUESTS * (CHUNKS - 1));
    assert_lasted("mean TTFB", ttfb / n, 100.0);
    assert_lasted("mean TTFT", ttft / n, 500.0);
    assert_lasted("mean request", duration / n, MOCK_ANSWER_MS);
    assert!(ttfb < ttft, "TTFB {ttfb} ms, TTFT {ttft} ms");
    // The mock keeps to its schedule: its last token comes no earlier than 1450 ms after the
    // call, and before the request's end.
    assert!(
        ttft + gap >= n * (MOCK_ANSWER_MS - CLOCK_MS),
        "TTFT {ttft} ms and gaps {gap} ms: the last tokens came before the mock sent them"
    );
    assert!(
        ttft + gap <= duration,
        "TTFT {ttft} ms and gaps {gap} ms, longer than the requests' {duration} ms"
    );
    // A late first token shortens the gaps after it (the mock does not drift): its delay spread
    // over 19 gaps, up to 10 ms a gap allowed; a gap is never several intervals.
    assert!(
        (40.0..4.0 * 50.0).contains(&mean_gap),
        "mean chunk gap {mean_gap} ms"
    );
    let one = mock_usage(PROMPT.len() as u64, CHUNKS);
    assert_eq!(tokens.output, REQUESTS * CHUNKS);
    assert_eq!(tokens.input, REQUESTS * one.input);
    assert_eq!(tokens.cached_input, REQUESTS * one.cached_input);
    assert_eq!(tokens.reasoning, REQUESTS * one.reasoning);
    assert_overhead_left_out(&spent, streaming, REQUESTS);
    gateway.shutdown().await;
}

/// Every second answer of the mock is a 500 and the gateway retries once: the second request's
/// first call fails after the 100 ms to its headers, the retry answers. Both calls are backend
/// windows: the overhead leaves both out, and the time to first token runs from the retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_request_leaves_both_calls_out_of_its_overhead() {
    common::alone!();
    let gateway = start(RETRIED_MOCK).await;
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
    let (outcomes, before) = (Outcomes::of(CHAT), Endpoint::now());
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

    let spent = Endpoint::now().since(&before);
    let (ttfbs, ttfb) = backend("backend_ttfb_seconds", model);
    let (_, ttft) = backend("backend_ttft_seconds", model);
    let (_, streaming) = backend("streaming_duration_seconds", model);
    let (duration, fetch) = (spent.duration.1, spent.fetch.1);
    // The calls are the failed one's and the retry's (its TTFB: the same readings).
    let failed_call = fetch - ttfb;
    println!(
        "retried request: {duration:.1} ms in all, overhead {:.3} ms, failed call \
         {failed_call:.2} ms, TTFB of the retry {ttfb:.2} ms, TTFT {ttft:.2} ms",
        spent.overhead.1
    );
    assert_eq!((spent.duration.0, spent.overhead.0), (1, 1));
    assert_eq!(spent.fetch.0, 2, "both calls are backend_fetch stages");
    assert_eq!(common::backend_errors("mock", model, CHAT, "status"), 1);
    assert_eq!(ttfbs, 1, "the failed call records no TTFB");
    // Two calls of 100 ms to their headers, then the first token 10 ms later and 4 more 10 ms
    // apart.
    assert_lasted("request", duration, 250.0);
    assert_lasted("the failed call", failed_call, 100.0);
    assert_lasted("TTFB of the retry", ttfb, 100.0);
    assert_lasted("TTFT of the retry", ttft, 110.0);
    assert!(ttfb < ttft, "TTFB {ttfb} ms, TTFT {ttft} ms");
    // Counted from the retry's start, the TTFT fits in what the request has left once the
    // failed call is over; from the first call's, it would not.
    assert!(
        ttft <= duration - failed_call + ROUNDING_MS,
        "TTFT {ttft} ms counts the failed call's {failed_call} ms of the request's {duration} ms"
    );
    assert_overhead_left_out(&spent, streaming, 1);
    gateway.shutdown().await;
}

/// A whole answer's `Server-Timing`: the front-end stages and the backend's wait, the same time
/// its TTFB records (the mock answers whole after 100 + 400 + 19 × 50 = 1450 ms).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_answer_carries_its_server_timing() {
    common::alone!();
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
    let backend_ms = timing[3].1;
    assert_lasted("backend", backend_ms, MOCK_ANSWER_MS);
    // A front-end stage that held the backend's wait would last at least as long.
    for (stage, ms) in &timing[..3] {
        assert!(*ms < backend_ms, "{stage} {ms} ms, backend {backend_ms} ms");
    }
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
