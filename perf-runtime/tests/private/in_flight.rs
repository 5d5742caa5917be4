//! What is under way, and how backend calls failed: `requests_in_flight{endpoint}`,
//! `backend_in_flight{provider}` and `backend_errors_total{provider, model, endpoint, kind}`.

use futures_util::StreamExt;
use perf_runtime::metrics::snapshot;
use perf_runtime::{current, BackendErrorKind, PerformanceTracker};
use perf_test_kit::*;
use prometheus::Registry;

fn gauge_of(registry: &Registry, family: &str, labels: &[(&str, &str)]) -> f64 {
    snapshot::gauge(registry, family, labels).unwrap_or(f64::NAN)
}

#[test]
fn a_request_is_in_flight_until_its_last_stream_ends() {
    let (registry, _metrics, tracker) = private_tracker(CHAT);
    let requests = |r: &Registry| gauge_of(r, "requests_in_flight", &[("endpoint", CHAT)]);
    let calls = |r: &Registry| gauge_of(r, "backend_in_flight", &[("provider", "openrouter")]);
    assert_eq!(requests(&registry), 1.0);

    let backend = tracker.backend_request("openrouter", "gpt-4o");
    assert_eq!(calls(&registry), 1.0, "waiting for the first byte");
    backend.first_byte();
    assert_eq!(calls(&registry), 0.0);

    let body = tracker.stream(futures_util::stream::iter([1, 2]));
    assert_eq!(requests(&registry), 1.0, "the answer still streams");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(rt.block_on(body.collect::<Vec<_>>()), [1, 2]);
    assert_eq!(requests(&registry), 0.0);

    // A cancelled request leaves the gauge too.
    drop(PerformanceTracker::with_metrics(_metrics, CHAT));
    assert_eq!(requests(&registry), 0.0);
}

#[test]
fn backend_errors_are_counted_by_kind_once_per_call() {
    let (registry, metrics, tracker) = private_tracker(CHAT);
    let errors = |model: &str, kind: &str| {
        snapshot::counter(
            &registry,
            "backend_errors_total",
            &[
                ("provider", "openrouter"),
                ("model", model),
                ("endpoint", CHAT),
                ("kind", kind),
            ],
        )
        .unwrap_or(0)
    };

    // By hand: on the guard, or on the tracker after the call.
    let first = tracker.backend_request("openrouter", "model-a");
    first.error(BackendErrorKind::Connect);
    drop(first);
    drop(tracker.backend_request("openrouter", "model-b"));
    tracker.backend_error(BackendErrorKind::Status);
    assert_eq!(errors("model-a", "connect"), 1);
    assert_eq!(errors("model-b", "status"), 1);
    assert_eq!(errors("model-a", "status"), 0);
    tracker.record_percentages();

    // Through the current request: from the backend call, and later from its stream.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let body = rt.block_on(PerformanceTracker::with_metrics(metrics, CHAT).run(async {
        let mut call = current::backend_request("openrouter", "model-c");
        current::backend_error(BackendErrorKind::Timeout);
        call.set_answered();
        drop(call);
        current::stream(futures_util::stream::iter([0]).map(|chunk| {
            current::backend_error(BackendErrorKind::BrokenOff);
            chunk
        }))
    }));
    assert_eq!(rt.block_on(body.collect::<Vec<_>>()), [0]);
    // A call fails once: its first failure is its kind.
    assert_eq!(errors("model-c", "timeout"), 1);
    assert_eq!(errors("model-c", "broken_off"), 0);
    // Only the kinds that happened have series.
    assert_eq!(series_count(&registry, "backend_errors_total"), 3);

    // Outside a request, or before any call: nothing, and no panic.
    current::backend_error(BackendErrorKind::Protocol);
    assert_eq!(series_count(&registry, "backend_errors_total"), 3);
}

#[test]
fn the_kinds_are_the_documented_labels() {
    let labels: Vec<&str> = BackendErrorKind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(
        labels,
        ["timeout", "connect", "status", "protocol", "broken_off"]
    );
}
