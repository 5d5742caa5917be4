//! Streams carry the request past the handler's return: streaming is recorded once, when the
//! stream ends or is dropped, and the request ends then. `run` makes a tracker current for
//! everything its future awaits.

use std::time::Duration;

use futures_util::stream::{self, Stream, StreamExt};
use perf_runtime::{current, PerformanceTracker, StageName};
use perf_test_kit::*;
use prometheus::Registry;

const MS: Duration = Duration::from_millis(1);

static PARSING: StageName = StageName::new("request_parsing");
static AUTH: StageName = StageName::new("auth_validation");
static PREPARATION: StageName = StageName::new("request_preparation");

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

fn streaming(registry: &Registry, provider: &str, model: &str) -> (u64, f64) {
    histogram(
        registry,
        "streaming_duration_seconds",
        &[("provider", provider), ("model", model), ("endpoint", CHAT)],
    )
    .unwrap_or((0, 0.0))
}

/// Five chunks, 2 ms apart.
fn chunks() -> impl Stream<Item = u32> {
    stream::iter(1..=5u32).then(|chunk| async move {
        tokio::time::sleep(2 * MS).await;
        chunk
    })
}

#[test]
fn stream_consumed_to_the_end_records_once_and_ends_the_request() {
    let (registry, _metrics, tracker) = private_tracker(CHAT);
    drop(tracker.stage("request_parsing"));
    tracker
        .backend_request("anthropic", "claude-3-5-sonnet")
        .first_byte();
    let tracked = tracker.stream(chunks());
    assert_eq!(tracked.size_hint(), (5, Some(5)));
    let got: Vec<u32> = rt().block_on(tracked.collect());
    assert_eq!(got, [1, 2, 3, 4, 5]);

    let (c, s) = streaming(&registry, "anthropic", "claude-3-5-sonnet");
    assert_eq!(c, 1);
    assert!((0.01..2.0).contains(&s), "{s}");
    assert_eq!(stage_count(&registry, CHAT, "stream_processing"), 1);
    assert_eq!(series_count(&registry, "streaming_duration_seconds"), 1);
    assert_eq!(frontend_count(&registry, CHAT), 1);
    let [_, _, stream_share] = assert_percentages_set(&registry, CHAT);
    assert!(stream_share > 0.0, "{stream_share}");
}

#[test]
fn stream_polled_after_its_end_and_dropped_records_once() {
    let (registry, _metrics, tracker) = private_tracker(CHAT);
    tracker.backend_request("openai", "gpt-4o").first_byte();
    let mut tracked = tracker.stream(stream::iter([1, 2]));
    rt().block_on(async {
        while tracked.next().await.is_some() {}
        assert!(tracked.next().await.is_none());
    });
    assert_eq!(streaming(&registry, "openai", "gpt-4o").0, 1);
    drop(tracked);
    assert_eq!(streaming(&registry, "openai", "gpt-4o").0, 1);
    assert_eq!(stage_count(&registry, CHAT, "stream_processing"), 1);
    assert_percentages_set(&registry, CHAT);
}

#[test]
fn stream_dropped_mid_way_records_once_and_ends_the_request() {
    let (registry, _metrics, tracker) = private_tracker(CHAT);
    drop(tracker.stage("request_parsing"));
    tracker.backend_request("openrouter", "gpt-4o").first_byte();
    let mut tracked = Box::pin(tracker.stream(chunks()));
    let rt = rt();
    let first_two: Vec<u32> = rt.block_on(tracked.as_mut().take(2).collect());
    assert_eq!(first_two, [1, 2]);
    // Still streaming: nothing recorded yet.
    assert_eq!(streaming(&registry, "openrouter", "gpt-4o").0, 0);
    assert_eq!(frontend_count(&registry, CHAT), 0);
    assert_no_percentages(&registry, CHAT);

    drop(tracked); // the client hung up
    let (c, s) = streaming(&registry, "openrouter", "gpt-4o");
    assert_eq!(c, 1);
    assert!(s >= 0.004, "{s}");
    assert_eq!(stage_count(&registry, CHAT, "stream_processing"), 1);
    assert_eq!(frontend_count(&registry, CHAT), 1);
    assert_eq!(outcome(&registry, CHAT, "cancelled"), 1);
    // A cut-off answer would misstate the split: only completed requests set it.
    assert_no_percentages(&registry, CHAT);
}

#[test]
fn stream_never_polled_and_dropped_has_no_say_and_no_streaming() {
    let (registry, _metrics, tracker) = private_tracker(CHAT);
    tracker.backend_request("openrouter", "gpt-4o").first_byte();
    // The answer to a `HEAD`: the server drops the body unread.
    drop(tracker.stream(chunks()));
    assert_eq!(streaming(&registry, "openrouter", "gpt-4o").0, 0);
    assert_eq!(outcome(&registry, CHAT, "cancelled"), 0);
    assert_eq!(outcome(&registry, CHAT, "completed"), 1);
}

#[test]
fn streaming_without_an_answered_backend_is_unknown() {
    let (registry, _metrics, tracker) = private_tracker(CHAT);
    drop(tracker.backend_request("openrouter", "gpt-4o")); // failed, unanswered
    drop(tracker.streaming());
    let tracked = tracker.stream(stream::iter([1]));
    assert_eq!(rt().block_on(tracked.count()), 1);
    // The guard's and the stream's streaming, recorded once at the request's end.
    assert_eq!(streaming(&registry, "unknown", "unknown").0, 1);
    assert_eq!(streaming(&registry, "openrouter", "gpt-4o").0, 0);
    assert_eq!(stage_count(&registry, CHAT, "stream_processing"), 1);
    // The stream ended the request, but no backend answered: no percentages.
    assert_no_percentages(&registry, CHAT);
}

#[test]
fn streaming_is_labelled_with_the_last_backend_that_answered() {
    let (registry, _metrics, tracker) = private_tracker(CHAT);
    tracker
        .backend_request("openrouter", "model-a")
        .first_byte();
    drop(tracker.backend_request("portkey", "model-b")); // unanswered retry
    tracker.backend_request("vllm", "model-c").first_byte();
    drop(tracker.streaming());
    tracker.record_percentages();
    assert_eq!(streaming(&registry, "vllm", "model-c").0, 1);
    assert_eq!(
        histogram_total(&registry, "streaming_duration_seconds", &[]).0,
        1
    );
}

async fn parse() -> String {
    let _stage = current::stage(&PARSING);
    tokio::time::sleep(2 * MS).await;
    "gpt-4o-mini".to_string()
}

async fn authorize() {
    let _stage = current::stage(&AUTH);
    tokio::time::sleep(MS).await;
}

async fn prepare(model: &str) -> String {
    let _stage = current::stage(&PREPARATION);
    tokio::task::yield_now().await;
    format!("{{\"model\":\"{model}\"}}")
}

async fn call_backend(model: &str) -> Vec<&'static str> {
    let backend = current::backend_request("openrouter", model);
    tokio::time::sleep(5 * MS).await;
    backend.first_byte();
    vec!["Hel", "lo", "!"]
}

/// A handler in the style `#[perf_endpoint]` expands to: nested async fns record into the
/// current tracker.
async fn plain_handler() -> usize {
    let model = parse().await;
    authorize().await;
    let body = prepare(&model).await;
    let chunks = call_backend(&model).await;
    body.len() + chunks.len()
}

async fn streaming_handler() -> impl Stream<Item = &'static str> {
    let model = parse().await;
    authorize().await;
    let _body = prepare(&model).await;
    let chunks = call_backend(&model).await;
    current::stream(stream::iter(chunks).then(|c| async move {
        tokio::time::sleep(2 * MS).await;
        c
    }))
}

#[test]
fn run_records_nested_async_fns_into_its_tracker_and_ends_at_completion() {
    let (registry, _metrics, tracker) = private_tracker(CHAT);
    let out = rt().block_on(tracker.run(plain_handler()));
    assert_eq!(out, "{\"model\":\"gpt-4o-mini\"}".len() + 3);
    for stage in [
        "request_parsing",
        "auth_validation",
        "request_preparation",
        "backend_fetch",
    ] {
        assert_eq!(stage_count(&registry, CHAT, stage), 1, "{stage}");
    }
    assert_eq!(
        count(
            &registry,
            "backend_ttfb_seconds",
            &[("provider", "openrouter"), ("model", "gpt-4o-mini")]
        ),
        1
    );
    let (c, s) = histogram(
        &registry,
        "frontend_processing_seconds",
        &[("endpoint", CHAT)],
    )
    .unwrap();
    assert_eq!(c, 1);
    assert!(s >= 0.003, "{s}");
    assert_percentages_set(&registry, CHAT);
    // Nothing leaked to work outside a request.
    assert_eq!(
        series(
            &registry,
            "request_stage_duration_seconds",
            &[("endpoint", "none")]
        )
        .len(),
        0
    );
}

#[test]
fn stream_made_inside_run_and_consumed_after_it_ends_the_request_once() {
    let (registry, _metrics, tracker) = private_tracker(CHAT);
    let rt = rt();
    let body = rt.block_on(tracker.run(streaming_handler()));

    // The handler returned; the request goes on in its stream, so run did not end it.
    assert_eq!(frontend_count(&registry, CHAT), 0);
    assert_no_percentages(&registry, CHAT);
    assert_eq!(streaming(&registry, "openrouter", "gpt-4o-mini").0, 0);

    let sent: Vec<&str> = rt.block_on(body.collect());
    assert_eq!(sent.concat(), "Hello!");
    let (c, s) = streaming(&registry, "openrouter", "gpt-4o-mini");
    assert_eq!(c, 1);
    assert!(s >= 0.006, "{s}");
    assert_eq!(stage_count(&registry, CHAT, "stream_processing"), 1);
    assert_eq!(frontend_count(&registry, CHAT), 1);
    let [front, back, stream_share] = assert_percentages_set(&registry, CHAT);
    assert!(front > 0.0 && back > 0.0 && stream_share > 0.0);
    // The frontend observation is the three stages run inside `run`.
    let front_sum = sum(
        &registry,
        "frontend_processing_seconds",
        &[("endpoint", CHAT)],
    );
    let stages: f64 = ["request_parsing", "auth_validation", "request_preparation"]
        .iter()
        .map(|stage| {
            sum(
                &registry,
                "request_stage_duration_seconds",
                &[("stage", stage), ("endpoint", CHAT)],
            )
        })
        .sum();
    // Sums are kept in whole microseconds, each observation rounded: three stages may differ
    // from the one front-end observation of their total by up to 3 × 0.5 µs.
    assert!(
        (front_sum - stages).abs() <= 1.5e-6 + 1e-9,
        "{front_sum} vs {stages}"
    );
}

#[test]
fn stream_made_inside_run_dropped_unpolled_ends_the_request_once() {
    let (registry, _metrics, tracker) = private_tracker(CHAT);
    let rt = rt();
    let body = rt.block_on(tracker.run(streaming_handler()));
    assert_eq!(outcome(&registry, CHAT, "cancelled"), 0);
    drop(body);
    // Never read (a `HEAD`): no streaming, and no say over the outcome.
    assert_eq!(streaming(&registry, "openrouter", "gpt-4o-mini").0, 0);
    assert_eq!(frontend_count(&registry, CHAT), 1);
    assert_eq!(outcome(&registry, CHAT, "cancelled"), 0);
    assert_eq!(outcome(&registry, CHAT, "completed"), 1);
}

#[test]
fn guards_outside_run_do_not_see_its_tracker() {
    // `current::with` is None outside a run and Some inside.
    assert!(current::with(|_| ()).is_none());
    let (_registry, _metrics, tracker) = private_tracker(CHAT);
    let endpoint = rt().block_on(tracker.run(async { current::with(|t| t.endpoint().to_owned()) }));
    assert_eq!(endpoint.as_deref(), Some(CHAT));
}

#[test]
fn runs_of_two_trackers_stay_apart() {
    let (registry_a, _a, tracker_a) = private_tracker("/a");
    let (registry_b, _b, tracker_b) = private_tracker("/b");
    let rt = rt();
    rt.block_on(async {
        let a = tracker_a.run(async {
            let _s = current::stage(&PARSING);
            tokio::time::sleep(5 * MS).await;
        });
        let b = tracker_b.run(async {
            let _s = current::stage(&AUTH);
            tokio::time::sleep(5 * MS).await;
            let _s2 = current::stage(&AUTH);
        });
        tokio::join!(a, b);
    });
    assert_eq!(stage_count(&registry_a, "/a", "request_parsing"), 1);
    assert_eq!(stage_count(&registry_a, "/a", "auth_validation"), 0);
    assert_eq!(stage_count(&registry_b, "/b", "auth_validation"), 2);
    assert_eq!(stage_count(&registry_b, "/b", "request_parsing"), 0);
    assert_eq!(frontend_count(&registry_a, "/a"), 1);
    assert_eq!(frontend_count(&registry_b, "/b"), 1);
}

#[test]
fn tracker_moved_into_a_stream_outlives_the_handler() {
    // The hand-made form of a streamed response: the tracker goes into the body.
    let (registry, _metrics, tracker) = private_tracker(CHAT);
    let rt = rt();
    let body = rt.block_on(async move {
        drop(tracker.stage("request_parsing"));
        let backend = tracker.backend_request("openrouter", "gpt-4o");
        tokio::time::sleep(2 * MS).await;
        backend.first_byte();
        tracker.stream(stream::iter(["a", "b"]))
    });
    assert_eq!(frontend_count(&registry, CHAT), 0);
    let handle = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(body.collect::<Vec<_>>())
    });
    assert_eq!(handle.join().unwrap(), ["a", "b"]);
    assert_eq!(streaming(&registry, "openrouter", "gpt-4o").0, 1);
    assert_eq!(frontend_count(&registry, CHAT), 1);
    assert_percentages_set(&registry, CHAT);
}

#[test]
fn run_with_plain_tracker_api_inside() {
    // The tracker given to `run` is also reachable through `current::with`.
    let (registry, _metrics, tracker) = private_tracker(CHAT);
    rt().block_on(PerformanceTracker::run(tracker, async {
        current::with(|t| drop(t.stage("request_parsing")));
        current::with(|t| t.backend_request("openrouter", "gpt-4o").first_byte());
    }));
    assert_eq!(stage_count(&registry, CHAT, "request_parsing"), 1);
    assert_eq!(frontend_count(&registry, CHAT), 1);
    assert_percentages_set(&registry, CHAT);
}

#[test]
fn stream_that_panics_ends_its_request_as_an_error() {
    let (registry, _metrics, tracker) = private_tracker(CHAT);
    drop(tracker.stage("request_parsing"));
    tracker.backend_request("openrouter", "gpt-4o").first_byte();
    let body = tracker.stream(stream::iter(1..=5).map(|chunk| {
        if chunk == 3 {
            panic!("encoder bug");
        }
        chunk
    }));
    let rt = rt();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(body.collect::<Vec<_>>())
    }));
    assert!(caught.is_err());
    assert_eq!(streaming(&registry, "openrouter", "gpt-4o").0, 1);
    assert_eq!(stage_count(&registry, CHAT, "stream_processing"), 1);
    // The handler had returned: its front end ran in full.
    assert_eq!(frontend_count(&registry, CHAT), 1);
    assert_eq!(outcome(&registry, CHAT, "error"), 1);
    assert_no_percentages(&registry, CHAT);

    // The next request on this thread (likely in the same pooled state) is not mistaken for a
    // stream nested in the one that panicked: its streaming is recorded.
    let (registry, _metrics, tracker) = private_tracker(CHAT);
    tracker.backend_request("openrouter", "gpt-4o").first_byte();
    let body = tracker.stream(stream::iter(1..=2));
    assert_eq!(rt.block_on(body.collect::<Vec<_>>()), [1, 2]);
    assert_eq!(streaming(&registry, "openrouter", "gpt-4o").0, 1);
    assert_eq!(outcome(&registry, CHAT, "completed"), 1);
}
