//! Fault rules: a stage left through `?`, a panic or a cancelled future records once; a backend
//! that never answered records no TTFB; a request ends at most once, and only if it reached its
//! end. (How the time splits into phases is `phases.rs`.)

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::thread::sleep;
use std::time::Duration;

use perf_runtime::current;
use perf_runtime::StageName;
use perf_test_kit::*;
use prometheus::Registry;

const MS: Duration = Duration::from_millis(1);

fn ttfb_count(registry: &Registry) -> u64 {
    histogram_total(registry, "backend_ttfb_seconds", &[("endpoint", CHAT)]).0
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

#[test]
fn stage_left_through_question_mark_records_once() {
    fn parse(
        tracker: &perf_runtime::PerformanceTracker,
        body: &str,
    ) -> Result<u32, std::num::ParseIntError> {
        let _stage = tracker.stage("request_parsing");
        sleep(2 * MS);
        let n: u32 = body.parse()?;
        Ok(n)
    }
    let (registry, _metrics, tracker) = private_tracker(CHAT);
    assert!(parse(&tracker, "not a number").is_err());
    assert_eq!(stage_count(&registry, CHAT, "request_parsing"), 1);
    assert!(stage_sum(&registry, CHAT, "request_parsing") >= 0.002);

    // The handler answers the error itself: the request ends, turned away before the backend.
    tracker.record_percentages();
    assert_eq!(frontend(&registry, CHAT).0, 1);
    assert!(frontend(&registry, CHAT).1 >= 0.002);
    assert_no_percentages(&registry, CHAT);
    assert_eq!(series_count(&registry, "backend_ttfb_seconds"), 0);
}

#[test]
fn panic_inside_a_stage_records_the_stage_once_and_no_percentages() {
    let (registry, _metrics, tracker) = private_tracker(CHAT);
    drop(tracker.stage("request_parsing"));
    let caught = catch_unwind(AssertUnwindSafe(|| {
        let _stage = tracker.stage("auth_validation");
        sleep(2 * MS);
        panic!("auth backend exploded");
    }));
    assert!(caught.is_err());
    assert_eq!(stage_count(&registry, CHAT, "request_parsing"), 1);
    assert_eq!(stage_count(&registry, CHAT, "auth_validation"), 1);
    assert!(stage_sum(&registry, CHAT, "auth_validation") >= 0.002);
    // The handler never reached its end: no frontend observation, no percentages.
    drop(tracker);
    assert_eq!(frontend(&registry, CHAT).0, 0);
    assert_no_percentages(&registry, CHAT);
}

#[test]
fn panic_while_a_backend_call_is_open_records_no_ttfb() {
    let (registry, _metrics, tracker) = private_tracker(CHAT);
    let caught = catch_unwind(AssertUnwindSafe(|| {
        let backend = tracker.backend_request("openrouter", "gpt-4o");
        sleep(2 * MS);
        if std::hint::black_box(true) {
            panic!("connection reset");
        }
        backend.first_byte();
    }));
    assert!(caught.is_err());
    assert_eq!(stage_count(&registry, CHAT, "backend_fetch"), 1);
    assert_eq!(ttfb_count(&registry), 0);
    assert_no_percentages(&registry, CHAT);
}

#[test]
fn cancelled_future_records_backend_fetch_once_and_no_ttfb() {
    let (registry, _metrics, tracker) = private_tracker(CHAT);
    let rt = current_thread();
    let handler = async {
        {
            let _stage = tracker.stage("request_parsing");
        }
        let backend = tracker.backend_request("openrouter", "gpt-4o");
        tokio::time::sleep(Duration::from_secs(30)).await; // the provider hangs
        backend.first_byte();
    };
    let outcome = rt.block_on(async {
        let mut handler = Box::pin(handler);
        // Its first poll starts the call: the 20 ms run from there.
        poll_once(handler.as_mut());
        tokio::time::timeout(20 * MS, handler).await
    });
    assert!(outcome.is_err(), "the call was cancelled");
    assert_eq!(stage_count(&registry, CHAT, "request_parsing"), 1);
    assert_eq!(stage_count(&registry, CHAT, "backend_fetch"), 1);
    let fetched = stage_sum(&registry, CHAT, "backend_fetch");
    assert_lasted("the call, up to its cancel", fetched * 1e3, 20.0);
    assert_eq!(ttfb_count(&registry), 0);
    // The series was made, but holds nothing.
    assert_eq!(
        histogram(
            &registry,
            "backend_ttfb_seconds",
            &[("provider", "openrouter"), ("model", "gpt-4o")]
        ),
        Some((0, 0.0))
    );
    assert_eq!(frontend(&registry, CHAT).0, 0);
    assert_no_percentages(&registry, CHAT);
}

#[test]
fn stage_guard_dropped_by_select_records_once() {
    let (registry, _metrics, tracker) = private_tracker(CHAT);
    let rt = current_thread();
    rt.block_on(async {
        let mut stage = Box::pin(async {
            let _stage = tracker.stage("request_preparation");
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        // Its first poll opens the stage: the 10 ms run from there.
        poll_once(stage.as_mut());
        tokio::select! {
            _ = stage => unreachable!("the stage never finishes"),
            _ = tokio::time::sleep(10 * MS) => {}
        }
    });
    assert_eq!(stage_count(&registry, CHAT, "request_preparation"), 1);
    let s = stage_sum(&registry, CHAT, "request_preparation");
    assert_lasted("the stage, up to the select's end", s * 1e3, 10.0);
}

#[test]
fn cancelled_run_records_its_stages_once_and_does_not_end() {
    static PARSING: StageName = StageName::new("request_parsing");
    let (registry, _metrics, tracker) = private_tracker(CHAT);
    let rt = current_thread();
    let outcome = rt.block_on(async {
        tokio::time::timeout(
            20 * MS,
            tracker.run(async {
                {
                    // No await before the hanging one: a timeout can fire at the first poll on a
                    // busy machine, and the backend call must have started by then.
                    let _stage = current::stage(&PARSING);
                    sleep(2 * MS);
                }
                let backend = current::backend_request("openrouter", "gpt-4o");
                tokio::time::sleep(Duration::from_secs(30)).await;
                backend.first_byte();
            }),
        )
        .await
    });
    assert!(outcome.is_err());
    assert_eq!(stage_count(&registry, CHAT, "request_parsing"), 1);
    assert_eq!(stage_count(&registry, CHAT, "backend_fetch"), 1);
    assert_eq!(ttfb_count(&registry), 0);
    assert_eq!(frontend(&registry, CHAT).0, 0);
    assert_no_percentages(&registry, CHAT);
}

#[test]
fn backend_dropped_unanswered_records_no_ttfb() {
    let (registry, _metrics, tracker) = private_tracker(CHAT);
    drop(tracker.backend_request("openrouter", "gpt-4o"));
    assert_eq!(stage_count(&registry, CHAT, "backend_fetch"), 1);
    assert_eq!(ttfb_count(&registry), 0);
    // No backend answered: the request ends without percentages.
    tracker.record_percentages();
    assert_no_percentages(&registry, CHAT);
}

#[test]
fn failed_attempt_then_fallback() {
    let (registry, _metrics, tracker) = private_tracker(CHAT);
    {
        let _stage = tracker.stage("request_parsing");
        sleep(MS);
    }
    {
        let _failed = tracker.backend_request("openrouter", "gpt-4o");
        sleep(10 * MS);
    }
    let fallback = tracker.backend_request("portkey", "gpt-4o");
    sleep(10 * MS);
    fallback.first_byte();
    drop(tracker.streaming());
    tracker.record_percentages();

    assert_eq!(stage_count(&registry, CHAT, "backend_fetch"), 2);
    assert_eq!(
        count(
            &registry,
            "backend_ttfb_seconds",
            &[("provider", "openrouter")]
        ),
        0
    );
    assert_eq!(
        count(
            &registry,
            "backend_ttfb_seconds",
            &[("provider", "portkey")]
        ),
        1
    );
    // Streaming is labelled with the backend that answered.
    assert_eq!(
        count(
            &registry,
            "streaming_duration_seconds",
            &[("provider", "portkey"), ("model", "gpt-4o")]
        ),
        1
    );
    assert_eq!(
        count(
            &registry,
            "streaming_duration_seconds",
            &[("provider", "openrouter")]
        ),
        0
    );
    // The backend phase is both attempts: the request waited for both.
    let [front, back, stream] = assert_percentages_set(&registry, CHAT);
    let (front_sum, fetch_sum, stream_sum) = (
        frontend(&registry, CHAT).1,
        stage_sum(&registry, CHAT, "backend_fetch"),
        stage_sum(&registry, CHAT, "stream_processing"),
    );
    let total = front_sum + fetch_sum + stream_sum;
    assert!((back - 100.0 * fetch_sum / total).abs() < 0.01, "{back}");
    assert!((front - 100.0 * front_sum / total).abs() < 0.01, "{front}");
    assert!(
        (stream - 100.0 * stream_sum / total).abs() < 0.01,
        "{stream}"
    );
}

#[test]
fn record_percentages_twice_ends_once() {
    let (registry, _metrics, tracker) = private_tracker(CHAT);
    drop(tracker.stage("request_parsing"));
    let backend = tracker.backend_request("openrouter", "gpt-4o");
    sleep(2 * MS);
    backend.first_byte();
    tracker.record_percentages();
    let first = assert_percentages_set(&registry, CHAT);
    assert_eq!(frontend(&registry, CHAT).0, 1);

    // More work after the end changes nothing the end recorded.
    {
        let _streaming = tracker.streaming();
        sleep(5 * MS);
    }
    tracker.record_percentages();
    tracker.record_percentages();
    assert_eq!(frontend(&registry, CHAT).0, 1);
    assert_eq!(percentages(&registry, CHAT), first);
    // The streaming itself is still recorded.
    assert_eq!(stage_count(&registry, CHAT, "stream_processing"), 1);
}

#[test]
fn request_never_ended_sets_nothing() {
    let (registry, _metrics, tracker) = private_tracker(CHAT);
    drop(tracker.stage("request_parsing"));
    tracker.backend_request("openrouter", "gpt-4o").first_byte();
    drop(tracker.streaming());
    drop(tracker); // a plain tracker does not end on drop
    assert_eq!(stage_count(&registry, CHAT, "request_parsing"), 1);
    assert_eq!(ttfb_count(&registry), 1);
    assert_eq!(frontend(&registry, CHAT).0, 0);
    assert_no_percentages(&registry, CHAT);
}

#[test]
fn guards_dropped_out_of_order_record_once_each() {
    // Guards dropped out of order (a stage outliving the backend guard) still record once each.
    let (registry, _metrics, tracker) = private_tracker(CHAT);
    let stage = tracker.stage("request_parsing");
    let backend = tracker.backend_request("openrouter", "gpt-4o");
    drop(stage);
    backend.first_byte();
    tracker.record_percentages();
    assert_eq!(stage_count(&registry, CHAT, "request_parsing"), 1);
    assert_eq!(stage_count(&registry, CHAT, "backend_fetch"), 1);
    assert_eq!(ttfb_count(&registry), 1);
    assert_eq!(frontend(&registry, CHAT).0, 1);
    assert_percentages_set(&registry, CHAT);
}

#[test]
fn set_answered_records_ttfb_when_the_guard_goes() {
    let (registry, _metrics, tracker) = private_tracker(CHAT);
    {
        let mut backend = tracker.backend_request("openrouter", "gpt-4o");
        sleep(2 * MS);
        backend.set_answered();
        assert_eq!(
            ttfb_count(&registry),
            0,
            "recorded when the guard goes, not before"
        );
    }
    assert_eq!(ttfb_count(&registry), 1);
    assert_eq!(stage_count(&registry, CHAT, "backend_fetch"), 1);
    tracker.record_percentages();
    assert_percentages_set(&registry, CHAT);
}

#[test]
fn panic_inside_run_records_once_and_does_not_end() {
    static PARSING: StageName = StageName::new("request_parsing");
    let (registry, _metrics, tracker) = private_tracker(CHAT);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let handler = tracker.run(async {
        drop(current::stage(&PARSING));
        let _backend = current::backend_request("openrouter", "gpt-4o");
        tokio::task::yield_now().await;
        let _stage = current::stage(&PARSING);
        if std::hint::black_box(true) {
            panic!("handler bug");
        }
    });
    let joined = rt.block_on(async { tokio::spawn(handler).await });
    assert!(joined.unwrap_err().is_panic());
    assert_eq!(stage_count(&registry, CHAT, "request_parsing"), 2);
    assert_eq!(stage_count(&registry, CHAT, "backend_fetch"), 1);
    assert_eq!(ttfb_count(&registry), 0);
    assert_eq!(frontend(&registry, CHAT).0, 0);
    assert_no_percentages(&registry, CHAT);
    // Nothing went to work outside a request.
    assert!(series(
        &registry,
        "request_stage_duration_seconds",
        &[("endpoint", "none")]
    )
    .is_empty());
}

#[test]
fn panic_caught_around_run_counts_as_an_error_not_a_cancellation() {
    // A `catch_unwind` layer (tower-http's `CatchPanicLayer`, a gateway's own middleware) catches
    // the panic and drops the handler's future later, when the thread is no longer panicking.
    use futures_util::FutureExt;
    static PARSING: StageName = StageName::new("request_parsing");
    let (registry, _metrics, tracker) = private_tracker(CHAT);
    let handler = tracker.run(async {
        drop(current::stage(&PARSING));
        tokio::task::yield_now().await;
        let _stage = current::stage(&PARSING);
        if std::hint::black_box(true) {
            panic!("handler bug");
        }
    });
    let mut caught = Box::pin(AssertUnwindSafe(handler).catch_unwind());
    let result = current_thread().block_on(caught.as_mut());
    assert!(result.is_err(), "the panic was caught");
    assert!(!std::thread::panicking());
    drop(caught); // the handler's future goes now, outside the unwinding
    assert_eq!(stage_count(&registry, CHAT, "request_parsing"), 2);
    assert_eq!(outcome(&registry, CHAT, "error"), 1);
    assert_eq!(outcome(&registry, CHAT, "cancelled"), 0);
    assert_eq!(outcome(&registry, CHAT, "completed"), 0);
    assert_eq!(frontend(&registry, CHAT).0, 0);
    assert_no_percentages(&registry, CHAT);
}

#[test]
fn panic_caught_around_a_stream_counts_as_an_error_and_records_streaming_once() {
    use futures_util::stream::{self, StreamExt};
    let (registry, _metrics, tracker) = private_tracker(CHAT);
    tracker.backend_request("openrouter", "gpt-4o").first_byte();
    let mut body = tracker.stream(stream::iter([1, 2, 3]).map(|i| {
        assert!(std::hint::black_box(i) < 2, "stream bug");
        i
    }));
    let rt = current_thread();
    assert_eq!(rt.block_on(body.next()), Some(1));
    let polled = catch_unwind(AssertUnwindSafe(|| rt.block_on(body.next())));
    assert!(polled.is_err(), "the panic was caught");
    drop(body); // dropped later, outside the unwinding
    let labels = [("endpoint", CHAT), ("model", "gpt-4o")];
    assert_eq!(count(&registry, "streaming_duration_seconds", &labels), 1);
    assert_eq!(stage_count(&registry, CHAT, "stream_processing"), 1);
    assert_eq!(outcome(&registry, CHAT, "error"), 1);
    assert_eq!(outcome(&registry, CHAT, "cancelled"), 0);
    assert_eq!(outcome(&registry, CHAT, "completed"), 0);
    assert_no_percentages(&registry, CHAT);
}
