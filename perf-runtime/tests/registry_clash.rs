//! An application that registered its own `requests_total` in the default registry before perf's
//! first use: every request still records, nothing panics, and perf says so once, through `log`.
//!
//! One test in its own binary: it owns the process' default registry and logger.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use perf_runtime::{current, exposition, PerformanceTracker, StageName};
use prometheus::{IntCounterVec, Opts};

/// Keeps every error record.
struct Captured;

static ERRORS: Mutex<Vec<String>> = Mutex::new(Vec::new());
static RECORDS: AtomicUsize = AtomicUsize::new(0);

impl log::Log for Captured {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        RECORDS.fetch_add(1, Ordering::Relaxed);
        if record.level() == log::Level::Error {
            ERRORS.lock().unwrap().push(record.args().to_string());
        }
    }
    fn flush(&self) {}
}

#[test]
fn a_taken_name_in_the_default_registry_records_into_perfs_own_and_says_so_once() {
    log::set_logger(&Captured).unwrap();
    log::set_max_level(log::LevelFilter::Trace);
    let app = IntCounterVec::new(Opts::new("requests_total", "The app's own."), &["path"]).unwrap();
    prometheus::register(Box::new(app.clone())).unwrap();
    app.with_label_values(&["/login"]).inc();

    static PARSE: StageName = StageName::new("request_parsing");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for _ in 0..3 {
        // The first use makes the global metrics; none of these may panic.
        let tracker = PerformanceTracker::new("/v1/chat/completions");
        drop(tracker.stage("auth_validation"));
        tracker.backend_request("openrouter", "gpt-4o").first_byte();
        tracker.record_percentages();
        runtime.block_on(PerformanceTracker::new("/v1/responses").run(async {
            drop(current::stage(&PARSE));
        }));
    }

    let errors = ERRORS.lock().unwrap().clone();
    assert_eq!(errors.len(), 1, "said once: {errors:?}");
    assert!(errors[0].contains("`requests_total`"), "{}", errors[0]);
    assert!(
        errors[0].contains("prefix"),
        "says how to resolve it: {}",
        errors[0]
    );

    // perf's numbers are exact, in the registry perf serves.
    let ours = exposition::render_global();
    for line in [
        "requests_total{endpoint=\"/v1/chat/completions\",outcome=\"completed\"} 3",
        "requests_total{endpoint=\"/v1/responses\",outcome=\"completed\"} 3",
        "backend_ttfb_seconds_count{endpoint=\"/v1/chat/completions\",model=\"gpt-4o\",provider=\"openrouter\"} 3",
        "request_stage_duration_seconds_count{endpoint=\"/v1/responses\",stage=\"request_parsing\"} 3",
    ] {
        assert!(ours.lines().any(|l| l == line), "no line {line:?} in\n{ours}");
    }

    // The application's own family is untouched, and perf's are not mixed into it.
    let theirs = prometheus::TextEncoder::new()
        .encode_to_string(&prometheus::gather())
        .unwrap();
    assert!(
        theirs.contains("requests_total{path=\"/login\"} 1"),
        "{theirs}"
    );
    assert!(!theirs.contains("endpoint="), "{theirs}");
}
