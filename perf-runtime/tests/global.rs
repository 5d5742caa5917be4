//! What records into the global metrics (the `prometheus` default registry): `PerformanceTracker::new`,
//! `track_request_stages`, `track_duration`, `current::*` outside a request, and the exposition.
//!
//! Tests here run in parallel on one registry: each uses its own endpoint (or operation) name,
//! and only `current_outside_a_run_records_under_none` uses `endpoint="none"`.

use std::panic::catch_unwind;
use std::thread::sleep;
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use perf_runtime::{
    current, exposition, track_duration, track_request_stages, Endpoint, InstallError, Metrics,
    PerformanceTracker, StageName, STAGE_BUCKETS,
};
use perf_test_kit::*;
use prometheus::proto::MetricType;
use prometheus::Registry;

const MS: Duration = Duration::from_millis(1);

fn global() -> &'static Registry {
    // Makes sure the families are registered before reading them back.
    Metrics::global();
    prometheus::default_registry()
}

fn ttfb_count(endpoint: &str) -> u64 {
    histogram_total(global(), "backend_ttfb_seconds", &[("endpoint", endpoint)]).0
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

#[test]
fn new_records_into_the_default_registry() {
    const EP: &str = "/global/new";
    let tracker = PerformanceTracker::new(EP);
    {
        let _stage = tracker.stage("request_parsing");
        sleep(MS);
    }
    tracker.backend_request("openrouter", "gpt-4o").first_byte();
    drop(tracker.streaming());
    tracker.record_percentages();

    assert_eq!(stage_count(global(), EP, "request_parsing"), 1);
    assert_eq!(ttfb_count(EP), 1);
    assert_eq!(frontend_count(global(), EP), 1);
    assert_percentages_set(global(), EP);
    // The global metrics' registry is the default one.
    assert!(Metrics::global()
        .registry()
        .gather()
        .iter()
        .any(|f| f.name() == "frontend_processing_seconds"));
    let in_gather = prometheus::gather()
        .iter()
        .any(|f| f.name() == "frontend_processing_seconds");
    assert!(in_gather);
}

#[test]
fn endpoint_static_resolves_once() {
    static EP: Endpoint = Endpoint::new("/global/static");
    assert!(std::ptr::eq(EP.metrics(), EP.metrics()));
    assert_eq!(EP.metrics().path(), "/global/static");
    let tracker = PerformanceTracker::at(&EP);
    assert_eq!(tracker.endpoint(), "/global/static");
    drop(tracker.stage("auth_validation"));
    tracker.record_percentages();
    assert_eq!(
        stage_count(global(), "/global/static", "auth_validation"),
        1
    );
    assert_eq!(frontend_count(global(), "/global/static"), 1);
    // The same endpoint by name reaches the same series.
    let by_name = PerformanceTracker::new("/global/static");
    drop(by_name.stage("auth_validation"));
    assert_eq!(
        stage_count(global(), "/global/static", "auth_validation"),
        2
    );
}

#[test]
fn track_request_stages_ends_on_drop() {
    const EP: &str = "/global/trs-drop";
    {
        let tracker = track_request_stages(EP);
        {
            let _stage = tracker.stage("request_parsing");
            sleep(MS);
        }
        let backend = tracker.backend_request("portkey", "gpt-4o");
        sleep(2 * MS);
        backend.first_byte();
        assert_eq!(frontend_count(global(), EP), 0);
    }
    assert_eq!(frontend_count(global(), EP), 1);
    assert_percentages_set(global(), EP);
}

#[test]
fn track_request_stages_with_explicit_end_ends_once() {
    const EP: &str = "/global/trs-explicit";
    let tracker = track_request_stages(EP);
    drop(tracker.stage("request_parsing"));
    tracker.backend_request("portkey", "gpt-4o").first_byte();
    tracker.record_percentages();
    let first = percentages(global(), EP);
    drop(tracker.streaming());
    drop(tracker);
    assert_eq!(frontend_count(global(), EP), 1);
    assert_eq!(percentages(global(), EP), first);
}

#[test]
fn track_request_stages_dropped_by_a_panic_does_not_end() {
    const EP: &str = "/global/trs-panic";
    let caught = catch_unwind(|| {
        let tracker = track_request_stages(EP);
        {
            let _stage = tracker.stage("request_parsing");
            sleep(MS);
        }
        tracker.backend_request("portkey", "gpt-4o").first_byte();
        let _stage = tracker.stage("stream_processing");
        panic!("handler bug");
    });
    assert!(caught.is_err());
    assert_eq!(stage_count(global(), EP, "request_parsing"), 1);
    assert_eq!(stage_count(global(), EP, "stream_processing"), 1);
    assert_eq!(ttfb_count(EP), 1);
    assert_eq!(frontend_count(global(), EP), 0);
    assert_no_percentages(global(), EP);
}

#[test]
fn track_request_stages_handed_to_a_stream_ends_once() {
    const EP: &str = "/global/trs-stream";
    let tracker = track_request_stages(EP);
    drop(tracker.stage("request_parsing"));
    tracker.backend_request("portkey", "gpt-4o").first_byte();
    let mut body = tracker.stream(stream::iter(0..10));
    assert_eq!(rt().block_on(body.next()), Some(0));
    assert_eq!(frontend_count(global(), EP), 0);
    drop(body);
    assert_eq!(frontend_count(global(), EP), 1);
    assert_eq!(
        count(
            global(),
            "streaming_duration_seconds",
            &[("provider", "portkey"), ("endpoint", EP)]
        ),
        1
    );
    // Dropped before its end: the client left mid-answer. The split of a cut-off answer would
    // misstate the streaming share: only completed requests set it.
    assert_eq!(outcome(global(), EP, "cancelled"), 1);
    assert_no_percentages(global(), EP);
}

#[test]
fn track_duration_records_operation_duration() {
    {
        let _timer = track_duration("global_test_cache_refresh");
        sleep(3 * MS);
    }
    drop(track_duration("global_test_cache_refresh"));
    let registry = global();
    let (c, s) = histogram(
        registry,
        "operation_duration_seconds",
        &[("operation", "global_test_cache_refresh")],
    )
    .unwrap();
    assert_eq!(c, 2);
    assert!((0.003..2.0).contains(&s), "{s}");
    assert_eq!(
        family_type(registry, "operation_duration_seconds"),
        MetricType::HISTOGRAM
    );
    assert_eq!(
        label_names(registry, "operation_duration_seconds"),
        ["operation"]
    );
    assert_eq!(
        bucket_bounds(registry, "operation_duration_seconds"),
        STAGE_BUCKETS
    );
    assert!(!family(registry, "operation_duration_seconds")
        .unwrap()
        .help()
        .trim()
        .is_empty());

    // Operation names are cut like every other label.
    let long = format!("global_test_{}", "o".repeat(3000));
    drop(track_duration(&long));
    assert_eq!(
        count(
            registry,
            "operation_duration_seconds",
            &[("operation", &long[..128])]
        ),
        1
    );
}

#[test]
fn all_six_families_are_in_the_default_registry() {
    const EP: &str = "/global/families";
    let tracker = PerformanceTracker::new(EP);
    drop(tracker.stage("request_parsing"));
    tracker.backend_request("openrouter", "gpt-4o").first_byte();
    drop(tracker.streaming());
    tracker.record_percentages();
    drop(track_duration("global_test_families"));

    let registry = global();
    for (name, kind) in [
        ("backend_ttfb_seconds", MetricType::HISTOGRAM),
        ("streaming_duration_seconds", MetricType::HISTOGRAM),
        ("frontend_processing_seconds", MetricType::HISTOGRAM),
        ("request_stage_duration_seconds", MetricType::HISTOGRAM),
        ("stage_percentage", MetricType::GAUGE),
        ("operation_duration_seconds", MetricType::HISTOGRAM),
    ] {
        assert_eq!(family_type(registry, name), kind, "{name}");
    }
}

#[test]
fn install_after_first_use_is_refused() {
    Metrics::global();
    let Err(err) = Metrics::builder().install(&Registry::new()) else {
        panic!("the global metrics are already in use: install must fail");
    };
    assert!(matches!(err, InstallError::AlreadyInstalled));
    assert!(!err.to_string().is_empty());
}

#[test]
fn current_outside_a_run_records_under_none() {
    static PROBE: StageName = StageName::new("global_test_unscoped_probe");
    static SPAWNED: StageName = StageName::new("global_test_spawned_probe");
    assert_eq!(current::UNSCOPED_ENDPOINT, "none");
    assert!(current::with(|_| ()).is_none());

    // A #[perf_stage] function called from a background job.
    {
        let _stage = current::stage(&PROBE);
        sleep(MS);
    }
    assert_eq!(
        stage_count(global(), "none", "global_test_unscoped_probe"),
        1
    );

    // A backend call outside a request: its TTFB and stage, under "none".
    let backend = current::backend_request("global-test-unscoped", "gpt-4o");
    backend.first_byte();
    assert_eq!(
        count(
            global(),
            "backend_ttfb_seconds",
            &[
                ("provider", "global-test-unscoped"),
                ("model", "gpt-4o"),
                ("endpoint", "none")
            ]
        ),
        1
    );

    // A stream outside a request.
    let body = current::stream(stream::iter([1, 2]));
    assert_eq!(rt().block_on(body.count()), 2);
    assert_eq!(
        count(
            global(),
            "streaming_duration_seconds",
            &[
                ("provider", "unknown"),
                ("model", "unknown"),
                ("endpoint", "none")
            ]
        ),
        1
    );

    // A task spawned inside a request does not inherit it.
    let (registry, _metrics, tracker) = private_tracker("/global/spawner");
    let rt = rt();
    rt.block_on(tracker.run(async {
        tokio::spawn(async {
            let _stage = current::stage(&SPAWNED);
        })
        .await
        .unwrap();
    }));
    assert_eq!(
        stage_count(global(), "none", "global_test_spawned_probe"),
        1
    );
    assert_eq!(series_count(&registry, "request_stage_duration_seconds"), 0);

    // Work outside a request never ends anything.
    assert_eq!(frontend_count(global(), "none"), 0);
    assert_no_percentages(global(), "none");
}

#[test]
fn render_global_is_valid_text() {
    let tracker = PerformanceTracker::new("/global/render");
    tracker
        .backend_request("openrouter", "gpt\"4o\n")
        .first_byte();
    tracker.record_percentages();
    let text = exposition::render_global();
    let samples = check_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(samples
        .iter()
        .any(|s| s.name == "backend_ttfb_seconds_count" && s.label("model") == Some("gpt\"4o\n")));
    // In the default registry.
    let gathered = prometheus::TextEncoder::new()
        .encode_to_string(&prometheus::gather())
        .unwrap();
    assert!(gathered.contains("endpoint=\"/global/render\""));
}

#[cfg(feature = "axum")]
#[test]
fn metrics_handler_serves_the_format_the_scraper_accepts() {
    let tracker = PerformanceTracker::new("/global/handler");
    tracker.backend_request("openrouter", "gpt-4o").first_byte();
    tracker.record_percentages();

    let serve = |accept: Option<&str>| {
        let mut headers = axum::http::HeaderMap::new();
        if let Some(accept) = accept {
            headers.insert(axum::http::header::ACCEPT, accept.parse().unwrap());
        }
        let response = rt().block_on(exposition::metrics_handler(headers));
        assert_eq!(response.status(), axum::http::StatusCode::OK);
        let content_type = response
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = rt()
            .block_on(axum::body::to_bytes(response.into_body(), usize::MAX))
            .unwrap();
        (content_type, String::from_utf8(body.to_vec()).unwrap())
    };
    let (content_type, text) = serve(None);
    assert_eq!(content_type.as_deref(), Some(exposition::CONTENT_TYPE));
    assert!(text.contains("backend_ttfb_seconds_bucket"));
    assert!(text.contains("endpoint=\"/global/handler\""));
    check_exposition(&text).unwrap();

    let openmetrics = exposition::Format::OpenMetrics;
    let (content_type, text) = serve(Some("application/openmetrics-text; version=1.0.0"));
    assert_eq!(content_type.as_deref(), Some(openmetrics.content_type()));
    assert!(text.ends_with("# EOF\n"), "{text}");
}
