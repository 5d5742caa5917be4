//! The model name comes from the client: the series count stays bounded (label cap, allow-list,
//! length cut) and the exposition stays valid whatever the bytes.

use std::collections::BTreeSet;

use futures_util::stream::{self, StreamExt};
use perf_runtime::metrics::{MAX_LABEL_LEN, OVERFLOW_LABEL};
use perf_runtime::{exposition, Metrics, PerformanceTracker};
use perf_test_kit::*;
use prometheus::Registry;

/// One full request for `model` at `provider`: stages, an answered backend call, a stream to
/// the end.
fn request(metrics: &'static Metrics, endpoint: &str, provider: &str, model: &str) {
    let tracker = PerformanceTracker::with_metrics(metrics, endpoint);
    drop(tracker.stage("request_parsing"));
    tracker.backend_request(provider, model).first_byte();
    let body = tracker.stream(stream::iter([1, 2, 3]));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(rt.block_on(body.count()), 3);
}

fn models(registry: &Registry, family: &str) -> BTreeSet<String> {
    label_values(registry, family, "model")
}

fn set(values: &[&str]) -> BTreeSet<String> {
    values.iter().map(|v| v.to_string()).collect()
}

#[test]
fn label_cap_bounds_the_model_values() {
    let registry = Registry::new();
    let metrics = Metrics::builder().label_cap(3).build(&registry).unwrap();
    for i in 0..10 {
        request(metrics, CHAT, "openrouter", &format!("model-{i}"));
    }
    // The first three kept, every later one folded into "other".
    let expected = set(&["model-0", "model-1", "model-2", OVERFLOW_LABEL]);
    for family in ["backend_ttfb_seconds", "streaming_duration_seconds"] {
        assert_eq!(models(&registry, family), expected, "{family}");
        assert_eq!(series_count(&registry, family), 4, "{family}");
        assert_eq!(
            count(&registry, family, &[("model", OVERFLOW_LABEL)]),
            7,
            "{family}"
        );
        assert_eq!(count(&registry, family, &[("model", "model-1")]), 1);
        assert_eq!(histogram_total(&registry, family, &[]).0, 10, "{family}");
    }
    // A kept model stays kept once the cap is reached.
    request(metrics, CHAT, "openrouter", "model-0");
    assert_eq!(
        count(&registry, "backend_ttfb_seconds", &[("model", "model-0")]),
        2
    );
    assert_eq!(OVERFLOW_LABEL, "other");
}

#[test]
fn a_client_cannot_choose_the_overflow_series() {
    let registry = Registry::new();
    let metrics = Metrics::builder().label_cap(2).build(&registry).unwrap();
    for model in ["other", "unknown", "late-1", "late-2"] {
        request(metrics, CHAT, "openrouter", model);
    }
    let family = "backend_ttfb_seconds";
    assert_eq!(
        models(&registry, family),
        set(&["other_", "unknown_", OVERFLOW_LABEL])
    );
    assert_eq!(count(&registry, family, &[("model", "other_")]), 1);
    assert_eq!(count(&registry, family, &[("model", OVERFLOW_LABEL)]), 2);
}

#[test]
fn label_cap_bounds_the_provider_values() {
    let registry = Registry::new();
    let metrics = Metrics::builder().label_cap(2).build(&registry).unwrap();
    for provider in ["openrouter", "portkey", "openai", "anthropic", "vllm"] {
        request(metrics, CHAT, provider, "gpt-4o");
    }
    assert_eq!(
        label_values(&registry, "backend_ttfb_seconds", "provider"),
        set(&["openrouter", "portkey", OVERFLOW_LABEL])
    );
    assert_eq!(
        count(
            &registry,
            "backend_ttfb_seconds",
            &[("provider", OVERFLOW_LABEL)]
        ),
        3
    );
}

#[test]
fn the_cap_is_per_metrics_not_per_endpoint() {
    let registry = Registry::new();
    let metrics = Metrics::builder().label_cap(2).build(&registry).unwrap();
    request(metrics, "/a", "openrouter", "m1");
    request(metrics, "/b", "openrouter", "m2");
    request(metrics, "/c", "openrouter", "m3");
    assert_eq!(
        models(&registry, "backend_ttfb_seconds"),
        set(&["m1", "m2", OVERFLOW_LABEL])
    );
}

#[test]
fn allowed_models_keep_only_the_listed_names() {
    let registry = Registry::new();
    let metrics = Metrics::builder()
        .allowed_models(["gpt-4o", "claude-3-5-sonnet"])
        .build(&registry)
        .unwrap();
    for model in [
        "gpt-4o",
        "llama-3",
        "claude-3-5-sonnet",
        "mistral",
        "gpt-4o",
    ] {
        request(metrics, CHAT, "openrouter", model);
    }
    assert_eq!(
        models(&registry, "backend_ttfb_seconds"),
        set(&["gpt-4o", "claude-3-5-sonnet", OVERFLOW_LABEL])
    );
    assert_eq!(
        count(&registry, "backend_ttfb_seconds", &[("model", "gpt-4o")]),
        2
    );
    assert_eq!(
        count(
            &registry,
            "backend_ttfb_seconds",
            &[("model", OVERFLOW_LABEL)]
        ),
        2
    );
    assert_eq!(
        models(&registry, "streaming_duration_seconds"),
        set(&["gpt-4o", "claude-3-5-sonnet", OVERFLOW_LABEL])
    );
}

#[test]
fn streaming_without_backend_is_unknown_even_with_an_allow_list() {
    // "unknown" is the documented label of a streaming no backend answered: it is not a client
    // value, so neither the allow-list nor the cap turns it into "other".
    let registry = Registry::new();
    let metrics = Metrics::builder()
        .allowed_models(["gpt-4o"])
        .build(&registry)
        .unwrap();
    let tracker = PerformanceTracker::with_metrics(metrics, CHAT);
    drop(tracker.streaming());
    // Streaming is recorded once, at the request's end.
    tracker.record_percentages();
    assert_eq!(
        count(
            &registry,
            "streaming_duration_seconds",
            &[("provider", "unknown"), ("model", "unknown")]
        ),
        1
    );
}

#[test]
fn streaming_without_backend_does_not_use_up_the_cap() {
    let registry = Registry::new();
    let metrics = Metrics::builder().label_cap(1).build(&registry).unwrap();
    let tracker = PerformanceTracker::with_metrics(metrics, CHAT);
    drop(tracker.streaming());
    // Streaming is recorded once, at the request's end.
    tracker.record_percentages();
    request(metrics, CHAT, "openrouter", "gpt-4o");
    assert_eq!(
        count(
            &registry,
            "streaming_duration_seconds",
            &[("provider", "unknown"), ("model", "unknown")]
        ),
        1
    );
    assert_eq!(
        count(
            &registry,
            "backend_ttfb_seconds",
            &[("provider", "openrouter"), ("model", "gpt-4o")]
        ),
        1
    );
}

#[test]
fn label_cap_zero_folds_every_model() {
    let registry = Registry::new();
    let metrics = Metrics::builder().label_cap(0).build(&registry).unwrap();
    request(metrics, CHAT, "openrouter", "gpt-4o");
    assert_eq!(
        models(&registry, "backend_ttfb_seconds"),
        set(&[OVERFLOW_LABEL])
    );
}

#[test]
fn long_model_names_are_cut_to_128_bytes() {
    assert_eq!(MAX_LABEL_LEN, 128);
    let (registry, metrics) = private_metrics();
    let ascii = "a".repeat(5000);
    // 1 + 2 × 2500 bytes: 128 would split an "é", so the cut is at 127.
    let multibyte = format!("x{}", "é".repeat(2500));
    request(metrics, CHAT, "openrouter", &ascii);
    request(metrics, CHAT, "openrouter", &multibyte);
    request(metrics, CHAT, "openrouter", &ascii[..200]); // same first 128 bytes: same series

    let found = models(&registry, "backend_ttfb_seconds");
    let expected_multibyte = format!("x{}", "é".repeat(63));
    assert_eq!(expected_multibyte.len(), 127);
    assert_eq!(
        found,
        [ascii[..128].to_string(), expected_multibyte]
            .into_iter()
            .collect()
    );
    assert_eq!(
        count(
            &registry,
            "backend_ttfb_seconds",
            &[("model", &ascii[..128])]
        ),
        2
    );
    for model in found {
        assert!(model.len() <= MAX_LABEL_LEN);
    }
}

#[test]
fn long_endpoint_paths_are_cut_too() {
    let (registry, metrics) = private_metrics();
    let path = format!("/{}", "p".repeat(4999));
    request(metrics, &path, "openrouter", "gpt-4o");
    let endpoints = label_values(&registry, "frontend_processing_seconds", "endpoint");
    assert_eq!(endpoints, [path[..128].to_string()].into_iter().collect());
}

/// The kit's hostile label values, and the empty and blank ones, which a gateway refuses as
/// models but the runtime must take and escape as they are.
fn hostile() -> Vec<&'static str> {
    HOSTILE_LABEL_VALUES
        .iter()
        .copied()
        .chain(["", " "])
        .collect()
}

#[test]
fn hostile_model_names_keep_the_exposition_valid() {
    let (registry, metrics) = private_metrics();
    let hostile = hostile();
    for model in &hostile {
        request(metrics, CHAT, "open\"router\n", model);
    }
    let text = exposition::render(metrics);
    let samples = check_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));

    for family in [
        "backend_ttfb_seconds",
        "streaming_duration_seconds",
        "frontend_processing_seconds",
        "request_stage_duration_seconds",
        "stage_percentage",
    ] {
        assert!(text.contains(&format!("# TYPE {family} ")), "{family}");
        assert!(
            samples.iter().any(|s| s.name.starts_with(family)),
            "{family}"
        );
    }

    // Every model comes back byte for byte from the text.
    for family in ["backend_ttfb_seconds", "streaming_duration_seconds"] {
        let count_name = format!("{family}_count");
        let back: BTreeSet<&str> = samples
            .iter()
            .filter(|s| s.name == count_name)
            .map(|s| s.label("model").expect("model label"))
            .collect();
        let sent: BTreeSet<&str> = hostile.iter().copied().collect();
        assert_eq!(back, sent, "{family}");
        for s in samples.iter().filter(|s| s.name == count_name) {
            assert_eq!(s.label("provider"), Some("open\"router\n"));
            assert_eq!(s.value, 1.0);
        }
    }
    // The gathered values agree with the text.
    assert_eq!(
        models(&registry, "backend_ttfb_seconds").len(),
        hostile.len()
    );
}

#[test]
fn exposition_checker_rejects_broken_text() {
    // The checker used above is not a rubber stamp.
    assert!(check_exposition("# TYPE x gauge\nx 1\n").is_ok());
    assert!(check_exposition("# TYPE x gauge\nx{a=\"1\"} 1\n").is_ok());
    assert!(check_exposition("# TYPE x gauge\nx{a=\"1\"\"} 1\n").is_err());
    assert!(check_exposition("# TYPE x gauge\nx{a=\"1} 1\n").is_err());
    assert!(check_exposition("# TYPE x gauge\nx{a=\"\\q\"} 1\n").is_err());
    assert!(check_exposition("# TYPE x gauge\nx{a=\"1\"} one\n").is_err());
    assert!(check_exposition("# TYPE x gauge\ny 1\n").is_err());
    assert!(check_exposition("# TYPE x gauge\nx 1").is_err());
    assert!(check_exposition("x 1\n").is_err());
    assert!(check_exposition("# TYPE x gauge\nx{a=\"new\nline\"} 1\n").is_err());
}

#[test]
fn content_type_is_the_prometheus_text_format() {
    assert!(exposition::CONTENT_TYPE.starts_with(prometheus::TEXT_FORMAT));
    assert_eq!(
        exposition::CONTENT_TYPE,
        "text/plain; version=0.0.4; charset=utf-8"
    );
}
