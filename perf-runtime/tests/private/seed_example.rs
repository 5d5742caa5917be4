//! The seed's example, by hand: three front-end stages, a backend call, streaming, and the
//! percentages. Every family gets exactly one observation, with the right labels.

use std::thread::sleep;
use std::time::Duration;

use perf_test_kit::*;

const PARSE: Duration = Duration::from_millis(4);
const AUTH: Duration = Duration::from_millis(3);
const PREPARE: Duration = Duration::from_millis(2);
const TTFB: Duration = Duration::from_millis(30);
const STREAM: Duration = Duration::from_millis(20);
const MODEL: &str = "meta-llama/llama-3.1-8b-instruct";

fn stage(registry: &prometheus::Registry, stage: &str) -> (u64, f64) {
    histogram(
        registry,
        "request_stage_duration_seconds",
        &[("stage", stage), ("endpoint", CHAT)],
    )
    .unwrap_or_else(|| panic!("no series for stage {stage}"))
}

#[test]
fn seed_example_records_each_family_once() {
    let (registry, _metrics, tracker) = private_tracker(CHAT);

    let model = {
        let _stage = tracker.stage("request_parsing");
        sleep(PARSE);
        MODEL.to_string()
    };
    {
        let _stage = tracker.stage("auth_validation");
        sleep(AUTH);
    }
    {
        let _stage = tracker.stage("request_preparation");
        sleep(PREPARE);
    }
    let backend = tracker.backend_request("openrouter", &model);
    sleep(TTFB);
    let ttfb = backend.first_byte();
    assert!(ttfb >= TTFB);
    {
        let _streaming = tracker.streaming();
        sleep(STREAM);
    }
    // Nothing ends before record_percentages.
    assert_eq!(
        count(
            &registry,
            "frontend_processing_seconds",
            &[("endpoint", CHAT)]
        ),
        0
    );
    assert_no_percentages(&registry, CHAT);
    tracker.record_percentages();

    let backend_labels = [
        ("provider", "openrouter"),
        ("model", MODEL),
        ("endpoint", CHAT),
    ];

    // One series and one observation per family.
    assert_eq!(series_count(&registry, "backend_ttfb_seconds"), 1);
    assert_eq!(series_count(&registry, "streaming_duration_seconds"), 1);
    assert_eq!(series_count(&registry, "frontend_processing_seconds"), 1);
    assert_eq!(series_count(&registry, "request_stage_duration_seconds"), 5);
    assert_eq!(series_count(&registry, "stage_percentage"), 3);

    let (ttfb_count, ttfb_sum) =
        histogram(&registry, "backend_ttfb_seconds", &backend_labels).expect("ttfb series");
    assert_eq!(ttfb_count, 1);
    assert!(
        ttfb_sum >= TTFB.as_secs_f64() && ttfb_sum < 2.0,
        "{ttfb_sum}"
    );

    let (stream_count, stream_sum) =
        histogram(&registry, "streaming_duration_seconds", &backend_labels)
            .expect("streaming series");
    assert_eq!(stream_count, 1);
    assert!(
        stream_sum >= STREAM.as_secs_f64() && stream_sum < 2.0,
        "{stream_sum}"
    );

    for (name, slept) in [
        ("request_parsing", PARSE),
        ("auth_validation", AUTH),
        ("request_preparation", PREPARE),
        ("backend_fetch", TTFB),
        ("stream_processing", STREAM),
    ] {
        let (c, s) = stage(&registry, name);
        assert_eq!(c, 1, "{name}");
        assert!(s >= slept.as_secs_f64() && s < 2.0, "{name}: {s}");
    }
    // The backend_fetch stage and the TTFB are one measurement; so are stream_processing and
    // the streaming duration.
    assert_close(
        stage(&registry, "backend_fetch").1,
        ttfb_sum,
        "backend_fetch vs ttfb",
    );
    assert_close(
        stage(&registry, "stream_processing").1,
        stream_sum,
        "stream_processing vs streaming",
    );

    let (front_count, front_sum) = histogram(
        &registry,
        "frontend_processing_seconds",
        &[("endpoint", CHAT)],
    )
    .unwrap();
    assert_eq!(front_count, 1);
    let stages_sum = stage(&registry, "request_parsing").1
        + stage(&registry, "auth_validation").1
        + stage(&registry, "request_preparation").1;
    // Sums are kept in whole microseconds, each observation rounded: three stages may differ
    // from the one front-end observation of their total by up to 3 × 0.5 µs.
    assert!(
        (front_sum - stages_sum).abs() <= 1.5e-6 + 1e-9,
        "{front_sum} vs {stages_sum}"
    );
    assert!(front_sum >= (PARSE + AUTH + PREPARE).as_secs_f64());

    // Each percentage is its phase's share of the three.
    let [front, back, stream] = assert_percentages_set(&registry, CHAT);
    let total = front_sum + ttfb_sum + stream_sum;
    assert!((front - 100.0 * front_sum / total).abs() < 0.01, "{front}");
    assert!((back - 100.0 * ttfb_sum / total).abs() < 0.01, "{back}");
    assert!(
        (stream - 100.0 * stream_sum / total).abs() < 0.01,
        "{stream}"
    );

    // Every series carries exactly its family's labels.
    for m in series(&registry, "request_stage_duration_seconds", &[]) {
        assert_eq!(label(&m, "endpoint"), Some(CHAT));
        assert_eq!(m.get_label().len(), 2);
    }
}

#[test]
fn stage_time_form_and_finish() {
    let (registry, _metrics, tracker) = private_tracker(CHAT);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let out = rt.block_on(tracker.time("request_parsing", async {
        tokio::time::sleep(PARSE).await;
        7
    }));
    assert_eq!(out, 7);
    let took = tracker.stage("auth_validation").finish();
    assert!(took < Duration::from_secs(2));
    assert_eq!(stage(&registry, "request_parsing").0, 1);
    assert!(stage(&registry, "request_parsing").1 >= PARSE.as_secs_f64());
    // `finish` ends the stage and records it once.
    assert_eq!(stage(&registry, "auth_validation").0, 1);
    tracker.record_percentages();
    assert_eq!(
        count(
            &registry,
            "frontend_processing_seconds",
            &[("endpoint", CHAT)]
        ),
        1
    );
}

#[test]
fn tracker_is_send_sync_static_and_debug() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<perf_runtime::PerformanceTracker>();
    fn assert_send<T: Send>() {}
    assert_send::<perf_runtime::StageGuard<'static>>();
    assert_send::<perf_runtime::BackendGuard<'static>>();
    assert_send::<perf_runtime::TrackedStream<futures_util::stream::Iter<std::vec::IntoIter<u8>>>>(
    );
    let (_registry, _metrics, tracker) = private_tracker(CHAT);
    let shown = format!("{tracker:?}");
    assert!(
        shown.contains("PerformanceTracker") && shown.contains(CHAT),
        "{shown}"
    );
}
