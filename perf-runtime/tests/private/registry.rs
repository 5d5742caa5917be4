//! perf beside an application's own metrics, in registries of the test's own: a name that is
//! taken, a prefix, a prefix that is not valid. (The default registry's case, where perf falls
//! back to a registry of its own, is `registry_clash.rs`: it needs a process of its own.)

use perf_runtime::{InstallError, Metrics, PerformanceTracker};
use perf_test_kit::*;
use prometheus::{IntCounterVec, Opts, Registry};

/// The family names `registry` gathers now.
fn names(registry: &Registry) -> Vec<String> {
    registry
        .gather()
        .iter()
        .map(|f| f.name().to_owned())
        .collect()
}

/// The application's own `requests_total`, with a series so that it is gathered.
fn app_requests_total(registry: &Registry) -> IntCounterVec {
    let counter =
        IntCounterVec::new(Opts::new("requests_total", "The app's own."), &["path"]).unwrap();
    registry.register(Box::new(counter.clone())).unwrap();
    counter.with_label_values(&["/login"]).inc();
    counter
}

#[test]
fn a_taken_name_is_an_error_naming_it_and_registers_nothing() {
    let registry = Registry::new();
    app_requests_total(&registry);
    let before = names(&registry);

    let Err(error) = Metrics::builder().build(&registry) else {
        panic!("requests_total is taken: build must fail");
    };
    assert!(
        matches!(
            error,
            InstallError::NameTaken {
                name: "requests_total",
                ..
            }
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("`requests_total`"), "{message}");
    assert!(
        message.contains("prefix"),
        "says how to resolve it: {message}"
    );

    // Nothing of perf's stayed registered: the registry gathers what it gathered, and takes
    // perf's families under a prefix, the resolution the message gives.
    assert_eq!(names(&registry), before);
    let metrics = Metrics::builder().prefix("llm_").build(&registry).unwrap();
    PerformanceTracker::with_metrics(metrics, CHAT).record_percentages();
    let after = names(&registry);
    assert!(
        after.contains(&"llm_requests_total".to_owned()),
        "{after:?}"
    );
    assert!(after.contains(&"requests_total".to_owned()), "{after:?}");
}

#[test]
fn a_prefix_puts_perfs_families_beside_the_applications() {
    let registry = Registry::new();
    let app = app_requests_total(&registry);
    let metrics = Metrics::builder()
        .prefix("llm_")
        .build(&registry)
        .expect("every prefixed name is free");
    let tracker = PerformanceTracker::with_metrics(metrics, CHAT);
    drop(tracker.stage("request_parsing"));
    tracker.backend_request("openrouter", "gpt-4o").first_byte();
    drop(tracker.streaming());
    tracker.record_percentages();
    app.with_label_values(&["/login"]).inc();

    let text = perf_runtime::exposition::render(metrics);
    for line in [
        "requests_total{path=\"/login\"} 2",
        "llm_requests_total{endpoint=\"/v1/chat/completions\",outcome=\"completed\"} 1",
        "llm_backend_ttfb_seconds_count{endpoint=\"/v1/chat/completions\",model=\"gpt-4o\",provider=\"openrouter\"} 1",
        "llm_frontend_processing_seconds_count{endpoint=\"/v1/chat/completions\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "no line {line:?} in\n{text}");
    }
    assert_eq!(
        count(
            &registry,
            "llm_request_stage_duration_seconds",
            &[("stage", "request_parsing")]
        ),
        1
    );
    assert!(names(&registry)
        .iter()
        .all(|n| n == "requests_total" || n.starts_with("llm_")));
}

#[test]
fn a_prefix_that_makes_no_valid_name_is_refused() {
    for prefix in ["9llm_", "llm-", "llm ", "llm\n"] {
        let registry = Registry::new();
        let Err(error) = Metrics::builder().prefix(prefix).build(&registry) else {
            panic!("{prefix:?} is not a valid prefix");
        };
        assert!(matches!(error, InstallError::InvalidPrefix(_)), "{error:?}");
        assert!(names(&registry).is_empty());
    }
    for prefix in ["", "llm_", "team:llm_", "_x9"] {
        assert!(
            Metrics::builder()
                .prefix(prefix)
                .build(&Registry::new())
                .is_ok(),
            "{prefix:?} is a valid prefix"
        );
    }
}
