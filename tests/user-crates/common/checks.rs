//! The checks, shared by every user crate: what requests to send, what exposition lines they must
//! give, and the scenarios, one per test binary (perf's metrics and the `log` logger are global
//! to a process). Values are read back the way an application reads them: `prometheus::gather()`
//! and `TextEncoder`, or perf's `/metrics`, compared as whole exposition lines.

use std::collections::BTreeSet;
use std::sync::Mutex;

use futures_util::future::join_all;
use prometheus::{IntCounter, IntCounterVec, Opts, TextEncoder};

use crate::app::{self, Transport, API_KEY, ENDPOINT, PROVIDER};

/// The model every request asks for.
pub const MODEL: &str = "gpt-4o-mini";
/// Requests answered in one piece.
pub const PLAIN: u64 = 7;
/// Requests answered as a stream, read to its end.
pub const STREAMED: u64 = 5;
/// Requests refused by the `auth_validation` stage (wrong key): `outcome="error"`.
pub const REFUSED: u64 = 2;
/// Requests that reach the provider and complete.
pub const COMPLETED: u64 = PLAIN + STREAMED;
/// Every request.
pub const ALL: u64 = COMPLETED + REFUSED;

/// What the application was built with.
#[derive(Clone, Copy, Debug)]
pub struct Build {
    /// prometheus' `process` feature: `process_*` families in the default registry.
    pub process: bool,
}

// ---------------------------------------------------------------------------------------------
// Requests

/// Sends the plan's requests, all at once, and checks every answer.
pub async fn send_requests<T: Transport>(transport: &T) {
    let mut requests = Vec::new();
    for i in 0..ALL {
        let (key, stream) = match i {
            i if i < PLAIN => (API_KEY, false),
            i if i < COMPLETED => (API_KEY, true),
            _ => ("wrong-key", i % 2 == 0),
        };
        requests.push((
            format!("model={MODEL};key={key};stream={stream}"),
            key == API_KEY,
        ));
    }
    let answers = join_all(
        requests
            .iter()
            .map(|(body, _)| transport.send(body.clone())),
    )
    .await;
    for ((body, accepted), answer) in requests.iter().zip(answers) {
        let expected = if *accepted {
            Ok(app::expected_answer(MODEL))
        } else {
            Err(401)
        };
        assert_eq!(answer, expected, "answer to {body:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Exposition

/// The default registry as an application reads it: `prometheus::gather()` and `TextEncoder`.
pub fn gathered() -> String {
    TextEncoder::new()
        .encode_to_string(&prometheus::gather())
        .expect("TextEncoder")
}

/// The families of an exposition, from its `# TYPE` lines.
pub fn family_names(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split(' ').next())
        .map(str::to_owned)
        .collect()
}

/// The exposition without the `process_*` families, whose values change between two reads.
pub fn without_process(exposition: &str) -> String {
    exposition
        .lines()
        .filter(|line| {
            let name = line
                .strip_prefix("# HELP ")
                .or_else(|| line.strip_prefix("# TYPE "))
                .unwrap_or(line);
            !name.starts_with("process_")
        })
        .map(|line| format!("{line}\n"))
        .collect()
}

/// Panics, showing the exposition, unless it holds each of `lines` as a whole line.
#[track_caller]
pub fn assert_lines(what: &str, exposition: &str, lines: &[String]) {
    let present: BTreeSet<&str> = exposition.lines().collect();
    let missing: Vec<&String> = lines
        .iter()
        .filter(|l| !present.contains(l.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{what}: missing lines:\n{}\n--- {what} ---\n{exposition}",
        missing
            .iter()
            .map(|l| format!("  {l}"))
            .collect::<Vec<_>>()
            .join("\n"),
    );
}

/// Panics, showing the exposition, if any line starts with one of `prefixes`.
#[track_caller]
pub fn assert_no_lines_starting(what: &str, exposition: &str, prefixes: &[String]) {
    let found: Vec<&str> = exposition
        .lines()
        .filter(|l| prefixes.iter().any(|p| l.starts_with(p.as_str())))
        .collect();
    assert!(
        found.is_empty(),
        "{what}: unexpected lines:\n  {}\n--- {what} ---\n{exposition}",
        found.join("\n  "),
    );
}

/// The lines perf's families must hold after [`send_requests`], their names prefixed with
/// `prefix`.
pub fn perf_lines(prefix: &str) -> Vec<String> {
    let ep = format!("endpoint=\"{ENDPOINT}\"");
    let backend = format!("{ep},model=\"{MODEL}\",provider=\"{PROVIDER}\"");
    let stage = |stage: &str, n: u64| {
        format!("{prefix}request_stage_duration_seconds_count{{{ep},stage=\"{stage}\"}} {n}")
    };
    vec![
        format!("# TYPE {prefix}requests_total counter"),
        format!("{prefix}requests_total{{{ep},outcome=\"completed\"}} {COMPLETED}"),
        format!("{prefix}requests_total{{{ep},outcome=\"error\"}} {REFUSED}"),
        format!("{prefix}requests_total{{{ep},outcome=\"cancelled\"}} 0"),
        format!("# TYPE {prefix}backend_ttfb_seconds histogram"),
        format!("{prefix}backend_ttfb_seconds_count{{{backend}}} {COMPLETED}"),
        format!("{prefix}backend_ttfb_seconds_bucket{{{backend},le=\"+Inf\"}} {COMPLETED}"),
        format!("# TYPE {prefix}streaming_duration_seconds histogram"),
        format!("{prefix}streaming_duration_seconds_count{{{backend}}} {STREAMED}"),
        format!("# TYPE {prefix}frontend_processing_seconds histogram"),
        format!("{prefix}frontend_processing_seconds_count{{{ep}}} {ALL}"),
        format!("# TYPE {prefix}request_stage_duration_seconds histogram"),
        stage("request_parsing", ALL),
        stage("auth_validation", ALL),
        stage("backend_fetch", COMPLETED),
        stage("stream_processing", STREAMED),
        format!("# TYPE {prefix}stage_percentage gauge"),
    ]
}

/// The starts of the lines of perf's families (unprefixed), to check that a registry has none.
pub fn perf_line_starts() -> Vec<String> {
    [
        "requests_total{endpoint=",
        "backend_ttfb_seconds",
        "streaming_duration_seconds",
        "frontend_processing_seconds",
        "request_stage_duration_seconds",
        "stage_percentage",
        "# TYPE backend_ttfb_seconds",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The lines of the process collector, with prometheus' `process` feature on Linux.
pub fn process_lines() -> Vec<String> {
    vec![
        "# TYPE process_cpu_seconds_total counter".into(),
        "# TYPE process_open_fds gauge".into(),
        "# TYPE process_resident_memory_bytes gauge".into(),
    ]
}

// ---------------------------------------------------------------------------------------------
// The `log` records perf writes

/// One record seen by [`Capture`].
#[derive(Clone, Debug)]
pub struct Record {
    pub level: log::Level,
    pub target: String,
    pub message: String,
}

static RECORDS: Mutex<Vec<Record>> = Mutex::new(Vec::new());

/// A logger that keeps every record, as an application's logger would see them.
struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let record = Record {
            level: record.level(),
            target: record.target().to_owned(),
            message: record.args().to_string(),
        };
        if record.level <= log::Level::Warn {
            eprintln!(
                "[log {} {}] {}",
                record.level, record.target, record.message
            );
        }
        RECORDS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(record);
    }

    fn flush(&self) {}
}

/// Installs the capturing logger for this process, at every level.
pub fn capture_log() {
    log::set_logger(&Capture).expect("the test's logger is the first");
    log::set_max_level(log::LevelFilter::Trace);
}

/// The records at warning or error level so far.
pub fn warnings_and_errors() -> Vec<Record> {
    RECORDS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|r| r.level <= log::Level::Warn)
        .cloned()
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The application's own metrics

/// The application's own counter beside perf's families.
pub fn register_app_logins() -> IntCounter {
    let logins = IntCounter::new("app_logins_total", "Logins to the application.").unwrap();
    prometheus::register(Box::new(logins.clone())).expect("register app_logins_total");
    logins
}

/// The application's own `requests_total`, with labels of its own, registered before perf is
/// used; counts 3 requests to `/login`.
pub fn register_app_requests_total() -> IntCounterVec {
    let requests = IntCounterVec::new(
        Opts::new("requests_total", "Requests served by the application."),
        &["path"],
    )
    .unwrap();
    prometheus::register(Box::new(requests.clone())).expect("register the app's requests_total");
    requests.with_label_values(&["/login"]).inc_by(3);
    requests
}

/// The lines of the application's own `requests_total`.
pub fn app_requests_total_lines() -> Vec<String> {
    vec![
        "# HELP requests_total Requests served by the application.".into(),
        "# TYPE requests_total counter".into(),
        "requests_total{path=\"/login\"} 3".into(),
    ]
}

// ---------------------------------------------------------------------------------------------
// The scenarios, one per test binary

/// No clash: perf's families go to the default registry beside the application's own, and
/// perf's `/metrics` serves the same bytes as `gather()` + `TextEncoder`.
pub async fn defaults<T: Transport>(build: Build) {
    capture_log();
    let logins = register_app_logins();
    logins.inc_by(2);
    let transport = T::start().await;
    send_requests(&transport).await;

    let gathered = gathered();
    // Shown by `cargo test -- --nocapture`.
    println!("--- prometheus::gather() + TextEncoder ---\n{gathered}");
    let mut expected = perf_lines("");
    expected.push("# TYPE app_logins_total counter".into());
    expected.push("app_logins_total 2".into());
    if build.process {
        expected.extend(process_lines());
    }
    assert_lines("prometheus::gather() + TextEncoder", &gathered, &expected);

    let served = transport.metrics().await;
    assert_lines("/metrics", &served, &expected);
    assert_eq!(
        without_process(&served),
        without_process(&gathered),
        "/metrics and TextEncoder differ"
    );
    assert_openmetrics(&transport.openmetrics().await, &served);
    let problems = warnings_and_errors();
    assert!(problems.is_empty(), "perf logged: {problems:#?}");
    assert_async_trait_stage_timed_while_it_ran();
}

/// The OpenMetrics exposition holds every sample of the text one (an exemplar may follow it),
/// the application's counter as OpenMetrics names its family, the requests' trace ids as
/// exemplars, and its end.
fn assert_openmetrics(openmetrics: &str, text: &str) {
    println!("--- /metrics, OpenMetrics ---\n{openmetrics}");
    assert!(
        openmetrics.ends_with("\n# EOF\n"),
        "no # EOF:\n{openmetrics}"
    );
    let text = without_process(text);
    for sample in text.lines().filter(|line| !line.starts_with('#')) {
        let with_exemplar = format!("{sample} # {{trace_id=\"");
        assert!(
            openmetrics
                .lines()
                .any(|line| line == sample || line.starts_with(&with_exemplar)),
            "OpenMetrics lacks {sample:?}:\n{openmetrics}"
        );
    }
    assert!(
        openmetrics
            .lines()
            .any(|l| l == "# TYPE app_logins counter"),
        "{openmetrics}"
    );
    assert!(
        openmetrics
            .lines()
            .any(|l| l.starts_with("backend_ttfb_seconds_bucket{") && l.contains(" # {trace_id=\"")),
        "no TTFB exemplar:\n{openmetrics}"
    );
}

/// The `#[async_trait]` method's stage holds the time its future ran (each check sleeps
/// `AUTH_MS`), not the microsecond it takes to make the boxed future.
fn assert_async_trait_stage_timed_while_it_ran() {
    let auth = perf_runtime::metrics::snapshot::histogram(
        prometheus::default_registry(),
        "request_stage_duration_seconds",
        &[("endpoint", ENDPOINT), ("stage", "auth_validation")],
    )
    .expect("the auth_validation stage was recorded");
    let least = (ALL * app::AUTH_MS) as f64 / 1000.0;
    assert!(
        auth.sum >= least,
        "{ALL} key checks of {} ms recorded {} s in all",
        app::AUTH_MS,
        auth.sum
    );
}

/// The application registered its own `requests_total` first and does nothing about it: perf
/// logs one error, records in a registry of its own that `/metrics` serves, and leaves the
/// application's `requests_total` alone.
pub async fn clash_no_resolution<T: Transport>(build: Build) {
    capture_log();
    register_app_requests_total();
    let before = gathered();
    let transport = T::start().await;
    // Two rounds, and /metrics in between: one error for the process, not one per request.
    send_requests(&transport).await;
    let served_once = transport.metrics().await;
    assert!(!served_once.is_empty());
    send_requests(&transport).await;

    let problems = warnings_and_errors();
    assert_eq!(
        problems.len(),
        1,
        "perf must log exactly one error, logged: {problems:#?}"
    );
    assert_eq!(problems[0].level, log::Level::Error, "{problems:#?}");
    assert!(
        problems[0].message.contains("requests_total"),
        "the error should name the clashing family: {problems:#?}"
    );

    // Every request counted twice: two rounds of the plan.
    let twice: Vec<String> = perf_lines("")
        .into_iter()
        .map(|line| double_count(&line))
        .collect();
    let served = transport.metrics().await;
    assert_lines("/metrics", &served, &twice);
    let rendered = perf_runtime::exposition::render_global();
    assert_lines("render_global()", &rendered, &twice);

    let gathered = gathered();
    assert_lines(
        "prometheus::gather() + TextEncoder",
        &gathered,
        &app_requests_total_lines(),
    );
    assert_no_lines_starting(
        "prometheus::gather() + TextEncoder",
        &gathered,
        &perf_line_starts(),
    );
    assert_eq!(
        without_process(&gathered),
        without_process(&before),
        "the default registry changed"
    );
    if build.process {
        assert_lines("prometheus::gather()", &gathered, &process_lines());
    }
}

/// `line` with its value (a count of the plan) doubled.
fn double_count(line: &str) -> String {
    match line.rsplit_once(' ') {
        Some((series, n)) if !line.starts_with('#') => {
            format!("{series} {}", n.parse::<u64>().expect("a count") * 2)
        }
        _ => line.to_owned(),
    }
}

/// The application registered its own `requests_total` first, and installs perf's families with
/// a prefix: both sets are in the default registry, and nothing is logged.
pub async fn clash_prefix<T: Transport>(build: Build) {
    capture_log();
    register_app_requests_total();
    perf_runtime::Metrics::builder()
        .prefix("llm_")
        .install(prometheus::default_registry())
        .expect("install perf's families with the prefix llm_");
    let transport = T::start().await;
    send_requests(&transport).await;

    let gathered = gathered();
    let mut expected = perf_lines("llm_");
    expected.extend(app_requests_total_lines());
    if build.process {
        expected.extend(process_lines());
    }
    assert_lines("prometheus::gather() + TextEncoder", &gathered, &expected);
    assert_no_lines_starting(
        "prometheus::gather() + TextEncoder",
        &gathered,
        &perf_line_starts(),
    );
    let served = transport.metrics().await;
    assert_lines("/metrics", &served, &expected);
    assert_eq!(without_process(&served), without_process(&gathered));
    let problems = warnings_and_errors();
    assert!(problems.is_empty(), "perf logged: {problems:#?}");
}

/// The application registered its own `requests_total` first, and installs perf's families
/// without a prefix: `install` says which family clashes and registers none of them.
pub fn clash_install_error(build: Build) {
    capture_log();
    register_app_requests_total();
    let before = gathered();
    let error = match perf_runtime::Metrics::builder().install(prometheus::default_registry()) {
        Ok(_) => panic!("install succeeded beside the application's requests_total"),
        Err(error) => error,
    };
    let message = error.to_string();
    assert!(
        message.contains("requests_total"),
        "the error should name requests_total: {message}"
    );
    let after = gathered();
    assert_eq!(
        family_names(&after),
        family_names(&before),
        "install left families behind"
    );
    assert_eq!(
        without_process(&after),
        without_process(&before),
        "install changed the default registry"
    );
    assert_lines("prometheus::gather()", &after, &app_requests_total_lines());
    if build.process {
        assert_lines("prometheus::gather()", &after, &process_lines());
    }
}
