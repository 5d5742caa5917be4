//! An application family whose OpenMetrics name is one of perf's (its counter `requests` beside
//! perf's `requests_total`: both `# TYPE requests counter` in OpenMetrics) never makes the page
//! invalid. Registered before perf's metrics are made, it is an `InstallError` (the global
//! metrics then record into a registry of their own, and say so once); registered after, it is
//! left out of the OpenMetrics page (the text format keeps it), and said once.
//!
//! Each page is also checked by the strict OpenMetrics parser of Python's `prometheus_client`
//! when `python3` has it (`pip install prometheus_client`); without it, that check says that it
//! is skipped.
//!
//! One test (`a_clash_in_the_default_registry_sends_the_global_metrics_to_their_own`) uses the
//! process' default registry and global metrics; every other test uses registries of its own.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Mutex, Once, OnceLock};

use perf_runtime::exposition::{self, render_as, Format};
use perf_runtime::{InstallError, Metrics, PerformanceTracker};
use perf_test_kit::CHAT;
use prometheus::{
    Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

/// Keeps every error record of the process.
struct Captured;

static ERRORS: Mutex<Vec<String>> = Mutex::new(Vec::new());

impl log::Log for Captured {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        if record.level() == log::Level::Error {
            ERRORS.lock().unwrap().push(record.args().to_string());
        }
    }
    fn flush(&self) {}
}

/// The error records so far that mention `what`.
fn errors_about(what: &str) -> Vec<String> {
    static LOGGER: Once = Once::new();
    LOGGER.call_once(|| {
        log::set_logger(&Captured).unwrap();
        log::set_max_level(log::LevelFilter::Error);
    });
    let errors = ERRORS.lock().unwrap();
    errors
        .iter()
        .filter(|e| e.contains(what))
        .cloned()
        .collect()
}

/// perf's metrics in a fresh registry, with one request recorded: a backend call answered, so
/// that the backend families have series.
fn perf_in_fresh_registry() -> (Registry, &'static Metrics) {
    errors_about(""); // the logger, before anything logs
    let registry = Registry::new();
    let metrics = Metrics::builder().build(&registry).unwrap();
    let tracker = PerformanceTracker::with_metrics(metrics, CHAT);
    tracker.backend_request("openai", "gpt-4o").first_byte();
    tracker.record_percentages();
    (registry, metrics)
}

fn openmetrics(metrics: &Metrics) -> String {
    String::from_utf8(render_as(metrics, Format::OpenMetrics)).unwrap()
}

/// The `# TYPE` lines of `page` for the family `name`.
fn type_lines<'a>(page: &'a str, name: &str) -> Vec<&'a str> {
    let prefix = format!("# TYPE {name} ");
    page.lines().filter(|l| l.starts_with(&prefix)).collect()
}

/// Asserts that `page` is one valid OpenMetrics exposition: every family's `# TYPE` once, `# EOF`
/// last; and, when Python's `prometheus_client` is there, that its strict parser takes it.
fn assert_valid(page: &str) {
    assert!(page.ends_with("# EOF\n"), "{page}");
    let mut names: Vec<&str> = page
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    let all = names.len();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), all, "a family twice:\n{page}");
    if let Some(verdict) = strict_parser(page) {
        verdict.unwrap_or_else(|e| panic!("the strict parser rejects the page: {e}\n{page}"));
    }
}

const PARSE: &str = "import sys\n\
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse\n\
families = list(parse(sys.stdin.read()))\n\
print(len(families))\n";

/// The verdict of `prometheus_client`'s OpenMetrics parser on `page`, or `None` (said on stderr)
/// if `python3` or `prometheus_client` is missing.
fn strict_parser(page: &str) -> Option<Result<(), String>> {
    static HAS_IT: OnceLock<bool> = OnceLock::new();
    let has_it = *HAS_IT.get_or_init(|| {
        Command::new("python3")
            .args(["-c", "import prometheus_client.openmetrics.parser"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if !has_it {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED the strict OpenMetrics parser: python3 with prometheus_client is not \
             available (pip install prometheus_client)"
        );
        return None;
    }
    let mut child = Command::new("python3")
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut stdin = child.stdin.take().unwrap();
    let input = page.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    if output.status.success() {
        Some(Ok(()))
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        Some(Err(stderr.lines().last().unwrap_or_default().to_owned()))
    }
}

#[test]
fn the_strict_parser_is_no_rubber_stamp() {
    // What the page was before: the application's counter `requests`, then perf's.
    let before = "# TYPE requests counter\nrequests_total{path=\"/login\"} 1\n\
                  # TYPE requests counter\nrequests_total{endpoint=\"/\",outcome=\"completed\"} 1\n\
                  # EOF\n";
    if let Some(verdict) = strict_parser(before) {
        verdict.expect_err("two families named `requests`");
    }
    let suffix = "# TYPE requests counter\nrequests_total 1\n\
                  # TYPE requests_created gauge\nrequests_created 1\n# EOF\n";
    if let Some(verdict) = strict_parser(suffix) {
        let error = verdict.expect_err("`requests_created` is the counter's");
        assert!(error.contains("Clashing name"), "{error}");
    }
    if let Some(verdict) = strict_parser("# TYPE requests counter\nrequests_total 1\n# EOF\n") {
        verdict.unwrap();
    }
}

#[test]
fn perfs_own_page_is_valid() {
    let (_, metrics) = perf_in_fresh_registry();
    let page = openmetrics(metrics);
    assert_eq!(type_lines(&page, "requests"), ["# TYPE requests counter"]);
    assert_valid(&page);
}

#[test]
fn an_application_counter_requests_registered_after_perf_is_left_out_of_openmetrics_only() {
    let (registry, metrics) = perf_in_fresh_registry();
    let app = IntCounterVec::new(Opts::new("requests", "The app's own."), &["path"]).unwrap();
    registry.register(Box::new(app.clone())).unwrap();
    app.with_label_values(&["/login"]).inc();

    for _ in 0..3 {
        let page = openmetrics(metrics);
        assert_eq!(type_lines(&page, "requests"), ["# TYPE requests counter"]);
        let ours = format!("requests_total{{endpoint=\"{CHAT}\",outcome=\"completed\"}} 1");
        assert!(page.lines().any(|l| l == ours), "{page}");
        assert!(!page.contains("path=\"/login\""), "{page}");
        assert_valid(&page);
    }
    // Said once, naming both families and the way out.
    let said = errors_about("`requests` is left out of the OpenMetrics");
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(said[0].contains("`requests_total`"), "{}", said[0]);
    assert!(said[0].contains("prefix"), "{}", said[0]);

    // The text format has no such clash: both families are there.
    let text = exposition::render(metrics);
    assert!(text.contains("requests{path=\"/login\"} 1"), "{text}");
    assert!(text.contains("# TYPE requests_total counter"), "{text}");
}

#[test]
fn every_suffix_that_meets_one_of_perfs_names_is_left_out() {
    // Each of these takes a name one of perf's families takes in OpenMetrics.
    let gauge = |name: &str| -> Box<dyn prometheus::core::Collector> {
        let g = Gauge::new(name, "An app gauge.").unwrap();
        g.set(1.0);
        Box::new(g)
    };
    let counter = |name: &str| -> Box<dyn prometheus::core::Collector> {
        let c = IntCounter::new(name, "An app counter.").unwrap();
        c.inc();
        Box::new(c)
    };
    let histogram = |name: &str| -> Box<dyn prometheus::core::Collector> {
        let h = Histogram::with_opts(HistogramOpts::new(name, "An app histogram.")).unwrap();
        h.observe(0.5);
        Box::new(h)
    };
    let clashing: Vec<(&str, Box<dyn prometheus::core::Collector>)> = vec![
        ("requests_created", gauge("requests_created")),
        (
            "backend_ttfb_seconds_count",
            gauge("backend_ttfb_seconds_count"),
        ),
        (
            "backend_ttfb_seconds_bucket",
            gauge("backend_ttfb_seconds_bucket"),
        ),
        (
            "backend_ttfb_seconds_sum",
            counter("backend_ttfb_seconds_sum"),
        ),
        (
            "backend_ttfb_seconds_created",
            gauge("backend_ttfb_seconds_created"),
        ),
        // perf's `backend_errors_total` has no series yet: it takes its names all the same.
        ("backend_errors", counter("backend_errors")),
        ("backend_tokens_created", gauge("backend_tokens_created")),
        ("requests", histogram("requests")),
        ("stage_percentage_total", counter("stage_percentage_total")),
    ];
    for (name, collector) in clashing {
        let (registry, metrics) = perf_in_fresh_registry();
        registry.register(collector).unwrap();
        let kept = IntGauge::new("app_jobs", "Kept.").unwrap();
        kept.set(2);
        registry.register(Box::new(kept)).unwrap();

        let page = openmetrics(metrics);
        assert!(
            !page.contains("An app"),
            "{name} is still on the page:\n{page}"
        );
        assert!(
            page.contains("\napp_jobs 2\n"),
            "{name}: app_jobs kept\n{page}"
        );
        assert_valid(&page);
        assert_eq!(
            errors_about(&format!("`{name}` is left out")).len(),
            1,
            "{name}"
        );
        // The text format keeps it.
        assert!(exposition::render(metrics).contains("An app"), "{name}");
    }
}

#[test]
fn two_application_families_that_clash_keep_the_first_in_name_order() {
    let (registry, metrics) = perf_in_fresh_registry();
    let jobs = IntCounter::new("app_batch", "App counter.").unwrap();
    jobs.inc();
    let total = IntGauge::new("app_batch_total", "App gauge.").unwrap();
    total.set(7);
    registry.register(Box::new(jobs)).unwrap();
    registry.register(Box::new(total)).unwrap();
    let page = openmetrics(metrics);
    assert_eq!(type_lines(&page, "app_batch"), ["# TYPE app_batch counter"]);
    assert!(type_lines(&page, "app_batch_total").is_empty(), "{page}");
    assert_valid(&page);
    assert_eq!(errors_about("`app_batch_total` is left out").len(), 1);
}

#[test]
fn a_clash_already_in_the_registry_is_an_install_error_and_registers_nothing() {
    errors_about("");
    let registry = Registry::new();
    let app = IntCounter::new("requests", "The app's own.").unwrap();
    app.inc();
    registry.register(Box::new(app)).unwrap();

    let error = Metrics::builder().build(&registry).err().expect("a clash");
    match &error {
        InstallError::OpenMetricsClash { name, theirs } => {
            assert_eq!((*name, theirs.as_str()), ("requests_total", "requests"));
        }
        other => panic!("not an OpenMetrics clash: {other}"),
    }
    let message = error.to_string();
    assert!(
        message.contains("`requests`") && message.contains("prefix"),
        "{message}"
    );
    // Nothing registered: the registry is as it was, and takes perf with a prefix.
    let names: Vec<String> = registry.gather().iter().map(|f| f.name().into()).collect();
    assert_eq!(names, ["requests"]);
    let metrics = Metrics::builder().prefix("llm_").build(&registry).unwrap();
    PerformanceTracker::with_metrics(metrics, CHAT).record_percentages();
    let page = openmetrics(metrics);
    assert_eq!(type_lines(&page, "requests"), ["# TYPE requests counter"]);
    assert_eq!(
        type_lines(&page, "llm_requests"),
        ["# TYPE llm_requests counter"]
    );
    assert_valid(&page);
}

#[test]
fn the_very_same_name_is_still_name_taken() {
    let registry = Registry::new();
    let app = IntCounter::new("requests_total", "The app's own.").unwrap();
    app.inc();
    registry.register(Box::new(app)).unwrap();
    let error = Metrics::builder().build(&registry).err().expect("a clash");
    assert!(
        matches!(
            error,
            InstallError::NameTaken {
                name: "requests_total",
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn a_family_without_series_at_install_is_left_out_at_render_instead() {
    let registry = Registry::new();
    let app = IntCounterVec::new(Opts::new("backend_tokens", "The app's own."), &["kind"]).unwrap();
    registry.register(Box::new(app.clone())).unwrap();
    // Not gathered yet (no series): the install cannot see it.
    let metrics = Metrics::builder().build(&registry).unwrap();
    app.with_label_values(&["x"]).inc();
    PerformanceTracker::with_metrics(metrics, CHAT).record_percentages();
    let page = openmetrics(metrics);
    assert!(!page.contains("kind=\"x\""), "{page}");
    assert_valid(&page);
}

#[test]
fn a_clash_in_the_default_registry_sends_the_global_metrics_to_their_own() {
    errors_about("");
    let app = IntCounter::new("requests", "The app's own.").unwrap();
    app.inc();
    prometheus::register(Box::new(app)).unwrap();

    // The first use makes the global metrics: no panic, one error, a registry of perf's own.
    for _ in 0..3 {
        PerformanceTracker::new(CHAT).record_percentages();
    }
    let said = errors_about("OpenMetrics");
    let install = said.iter().filter(|e| e.contains("registry of its own"));
    assert_eq!(install.count(), 1, "{said:?}");
    let in_default = prometheus::gather();
    assert!(
        !in_default
            .iter()
            .any(|f| f.name() == "frontend_processing_seconds"),
        "perf's families are not in the default registry"
    );

    let ours = String::from_utf8(exposition::render_global_as(Format::OpenMetrics)).unwrap();
    let line = format!("requests_total{{endpoint=\"{CHAT}\",outcome=\"completed\"}} 3");
    assert!(ours.lines().any(|l| l == line), "{ours}");
    assert_valid(&ours);
    // The application's own family is left as it was.
    let theirs = prometheus::TextEncoder::new()
        .encode_to_string(&in_default)
        .unwrap();
    assert!(theirs.contains("\nrequests 1\n"), "{theirs}");
}
