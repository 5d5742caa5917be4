//! The metric families are a public contract (docs/metrics.md): exact names, types, label names and
//! buckets, as a private registry gathers them.

use perf_runtime::metrics::{
    BACKEND_CALL_DURATION, BACKEND_CALL_TOKENS, BACKEND_TTFB, FRONTEND_PROCESSING,
    HTTP_REQUEST_DURATION, OPERATION_DURATION, REQUESTS_TOTAL, REQUEST_STAGE_DURATION,
    REQUEST_TIME_PER_OUTPUT_TOKEN, REQUEST_TTFT, STAGE_PERCENTAGE, STREAMING_DURATION,
};
use perf_runtime::{BACKEND_BUCKETS, FRONTEND_BUCKETS, STAGE_BUCKETS};
use perf_test_kit::*;
use prometheus::proto::MetricType;

/// A request touching every family a tracker records into.
fn one_full_request(registry_endpoint: &str) -> prometheus::Registry {
    let (registry, _metrics, tracker) = private_tracker(registry_endpoint);
    drop(tracker.stage("request_parsing"));
    tracker.backend_request("openrouter", "gpt-4o").first_byte();
    drop(tracker.streaming());
    tracker.record_percentages();
    registry
}

#[test]
fn family_name_constants_are_the_contract() {
    assert_eq!(BACKEND_TTFB, "backend_ttfb_seconds");
    assert_eq!(STREAMING_DURATION, "streaming_duration_seconds");
    assert_eq!(FRONTEND_PROCESSING, "frontend_processing_seconds");
    assert_eq!(REQUEST_STAGE_DURATION, "request_stage_duration_seconds");
    assert_eq!(STAGE_PERCENTAGE, "stage_percentage");
    assert_eq!(OPERATION_DURATION, "operation_duration_seconds");
    assert_eq!(REQUESTS_TOTAL, "requests_total");
    assert_eq!(BACKEND_CALL_DURATION, "backend_call_duration_seconds");
    assert_eq!(BACKEND_CALL_TOKENS, "backend_call_tokens");
    assert_eq!(REQUEST_TTFT, "request_ttft_seconds");
    assert_eq!(
        REQUEST_TIME_PER_OUTPUT_TOKEN,
        "request_time_per_output_token_seconds"
    );
    assert_eq!(HTTP_REQUEST_DURATION, "http_request_duration_seconds");
}

#[test]
fn bucket_constants_are_the_contract() {
    assert_eq!(
        BACKEND_BUCKETS,
        [0.1, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 5.0, 10.0]
    );
    assert_eq!(
        FRONTEND_BUCKETS,
        [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5]
    );
    // Documented: the 1-2.5-5 series from 100 µs to 10 s.
    assert_eq!(
        STAGE_BUCKETS,
        [
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
            2.5, 5.0, 10.0
        ]
    );
    assert!(STAGE_BUCKETS.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn a_fresh_registry_gathers_nothing_until_a_request() {
    let (registry, _metrics) = private_metrics();
    assert!(registry.gather().is_empty());
}

#[test]
fn families_have_exact_names_types_labels_and_buckets() {
    let registry = one_full_request(CHAT);
    let names: Vec<String> = registry
        .gather()
        .iter()
        .map(|f| f.name().to_owned())
        .collect();
    // The tracker's five contract families are all there (operation_duration_seconds has series
    // only through the global `track_duration`: see tests/global.rs). Families beyond the
    // contract may exist; they must not reuse a contract name, which `build` would refuse.
    for name in [
        "backend_ttfb_seconds",
        "frontend_processing_seconds",
        "request_stage_duration_seconds",
        "stage_percentage",
        "streaming_duration_seconds",
    ] {
        assert!(
            names.iter().any(|n| n == name),
            "{name} missing from {names:?}"
        );
    }

    let histograms: [(&str, &[&str], &[f64]); 4] = [
        (
            "backend_ttfb_seconds",
            &["endpoint", "model", "provider"],
            &BACKEND_BUCKETS,
        ),
        (
            "streaming_duration_seconds",
            &["endpoint", "model", "provider"],
            &BACKEND_BUCKETS,
        ),
        (
            "frontend_processing_seconds",
            &["endpoint"],
            &FRONTEND_BUCKETS,
        ),
        (
            "request_stage_duration_seconds",
            &["endpoint", "stage"],
            &STAGE_BUCKETS,
        ),
    ];
    for (name, labels, buckets) in histograms {
        assert_eq!(
            family_type(&registry, name),
            MetricType::HISTOGRAM,
            "{name}"
        );
        assert_eq!(label_names(&registry, name), labels, "{name}");
        assert_eq!(bucket_bounds(&registry, name), buckets, "{name}");
        let help = family(&registry, name).unwrap().help().to_owned();
        assert!(!help.trim().is_empty(), "{name} has no help text");
    }

    assert_eq!(
        family_type(&registry, "stage_percentage"),
        MetricType::GAUGE
    );
    assert_eq!(
        label_names(&registry, "stage_percentage"),
        ["endpoint", "stage"]
    );
    assert!(!family(&registry, "stage_percentage")
        .unwrap()
        .help()
        .trim()
        .is_empty());
}

#[test]
fn stage_percentage_has_the_three_phases() {
    let registry = one_full_request(CHAT);
    let stages = label_values(&registry, "stage_percentage", "stage");
    assert_eq!(
        stages.into_iter().collect::<Vec<_>>(),
        [
            "backend_response",
            "frontend_processing",
            "stream_processing"
        ]
    );
}

#[test]
fn series_appear_when_they_mean_something() {
    // Naming an endpoint resolves its frontend series, at zero.
    let (registry, metrics, tracker) = private_tracker("/v1/responses");
    assert_eq!(tracker.endpoint(), "/v1/responses");
    assert_eq!(
        histogram(
            &registry,
            "frontend_processing_seconds",
            &[("endpoint", "/v1/responses")]
        ),
        Some((0, 0.0))
    );
    // No stage, no backend, no completed request: none of their series yet (no false 0 %).
    assert_eq!(series_count(&registry, "request_stage_duration_seconds"), 0);
    assert_eq!(series_count(&registry, "backend_ttfb_seconds"), 0);
    assert_eq!(series_count(&registry, "stage_percentage"), 0);

    // A request turned away before the backend ends without a split: still no gauges.
    drop(tracker.stage("auth_validation"));
    tracker.record_percentages();
    assert_eq!(series_count(&registry, "request_stage_duration_seconds"), 1);
    assert_eq!(series_count(&registry, "stage_percentage"), 0);

    // The first request with an answered backend makes the three gauges.
    let answered = perf_runtime::PerformanceTracker::with_metrics(metrics, "/v1/responses");
    answered.backend_request("openai", "gpt-4o").first_byte();
    answered.record_percentages();
    assert_eq!(series_count(&registry, "stage_percentage"), 3);
    assert_percentages_set(&registry, "/v1/responses");
}

#[test]
fn a_second_build_in_the_same_registry_is_refused() {
    let (registry, _metrics) = private_metrics();
    assert!(perf_runtime::Metrics::builder().build(&registry).is_err());
}

#[test]
fn metrics_registry_is_the_one_given() {
    let (registry, metrics) = private_metrics();
    let tracker = perf_runtime::PerformanceTracker::with_metrics(metrics, CHAT);
    drop(tracker.stage("request_parsing"));
    assert_eq!(metrics.registry().gather().len(), registry.gather().len());
    assert!(
        perf_runtime::exposition::render(metrics).contains("request_stage_duration_seconds_bucket")
    );
}

#[test]
fn spend_tenant_and_limit_families_are_the_contract() {
    use perf_runtime::metrics::{
        BACKEND_COST, BACKEND_RATELIMIT_LIMIT, BACKEND_RATELIMIT_REMAINING,
        BACKEND_RATELIMIT_RESET, BACKEND_UNPRICED_TOKENS, TENANT_COST, TENANT_REQUESTS,
        TENANT_TOKENS,
    };
    let (registry, metrics) = private_metrics();
    let mut table = perf_runtime::prices::PriceTable::new();
    let rates = perf_runtime::prices::Rates::per_token(1e-6, 2e-6);
    table.insert(None, "gpt-4o", perf_runtime::prices::Price::new(rates));
    metrics.set_prices(table);
    for model in ["gpt-4o", "unpriced"] {
        let tracker = perf_runtime::PerformanceTracker::with_metrics(metrics, CHAT);
        tracker.set_tenant("acme");
        tracker.backend_request("openai", model).first_byte();
        tracker.usage(perf_runtime::Usage {
            input: 10,
            output: 5,
            ..Default::default()
        });
        let headers: [(&str, &[u8]); 3] = [
            ("x-ratelimit-limit-requests", b"100"),
            ("x-ratelimit-remaining-requests", b"99"),
            ("x-ratelimit-reset-requests", b"1s"),
        ];
        tracker.rate_limits(&perf_runtime::ratelimits::RateLimits::from_headers(headers));
        tracker.record_percentages();
    }
    let expected: [(&str, MetricType, &[&str]); 8] = [
        (
            BACKEND_COST,
            MetricType::COUNTER,
            &["endpoint", "model", "provider"],
        ),
        (
            BACKEND_UNPRICED_TOKENS,
            MetricType::COUNTER,
            &["endpoint", "model", "provider", "type"],
        ),
        (
            TENANT_REQUESTS,
            MetricType::COUNTER,
            &["endpoint", "outcome", "tenant"],
        ),
        (TENANT_TOKENS, MetricType::COUNTER, &["tenant", "type"]),
        (TENANT_COST, MetricType::COUNTER, &["tenant"]),
        (
            BACKEND_RATELIMIT_REMAINING,
            MetricType::GAUGE,
            &["model", "provider", "resource"],
        ),
        (
            BACKEND_RATELIMIT_LIMIT,
            MetricType::GAUGE,
            &["model", "provider", "resource"],
        ),
        (
            BACKEND_RATELIMIT_RESET,
            MetricType::GAUGE,
            &["model", "provider", "resource"],
        ),
    ];
    for (name, kind, labels) in expected {
        assert_eq!(family_type(&registry, name), kind, "{name}");
        assert_eq!(label_names(&registry, name), labels, "{name}");
    }
    assert_eq!(BACKEND_COST, "backend_cost_usd_total");
    assert_eq!(TENANT_COST, "tenant_cost_usd_total");
}
