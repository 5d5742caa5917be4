//! The example gateway's OTLP/HTTP metrics export, received by `tests/python/otlp_receiver.py`:
//! each export decoded by PyPI's `opentelemetry-proto` and checked against the GenAI metrics of
//! `opentelemetry-semantic-conventions` (names, units, instrument kinds, attributes), code nobody
//! here wrote. The gateway is the example's real binary, a child process started with the
//! standard `OTEL_*` variables in its environment.
//!
//! * The same requests read through `/metrics` (protobuf) and through OTLP give the same counts,
//!   sums, buckets (native ones as exponential histograms at the same scale) and exemplars, whose
//!   trace ids are the client's `traceparent`s; the resource comes from the variables.
//! * A collector that is down, answers 503 or answers too late costs requests nothing: their
//!   latency against a gateway without export, in the same run; the failures are counted in
//!   `otlp_export_failures_total{reason}`, said once in the log, and 503s retried with backoff.
//!   Memory is bounded by construction: what is sent is the cumulative state perf keeps anyway,
//!   built afresh for each export and dropped after it, failed or not (nothing queues up).
//!
//! Without python3 and those packages the tests print `SKIPPED` and pass, except under
//! `CI=true` (`.ci/run` installs them). Linux only, as the spawned-binary helpers are.
#![cfg(target_os = "linux")]

use crate::common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::otlp::{
    assert_same_histogram, point_of, Receiver, Summary, RECEIVER_MODULES, RECEIVER_PACKAGES,
};
use common::{
    chat, decode_families, example_gateway, proto, python_with_packages_or_skip, scrape_as, Launch,
    Spawned, ACCEPT_PROTOBUF, BURST_KEY,
};

const TEST: &str = "gateway_otlp";
const CHAT: &str = "/v1/chat/completions";
const MODEL: &str = "otlp-model";
/// The trace ids of the clients' `traceparent`s: the streamed request's, then the whole one's.
const STREAMED: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const WHOLE: &str = "0af7651916cd43dd8448eb211c80319c";

/// perf's histogram families and their OTLP names (docs/metrics.md), compared series by series.
const HISTOGRAMS: &[(&str, &str)] = &[
    ("backend_ttfb_seconds", "perf.backend.time_to_first_byte"),
    (
        "streaming_duration_seconds",
        "perf.backend.streaming.duration",
    ),
    ("frontend_processing_seconds", "perf.frontend.duration"),
    ("request_stage_duration_seconds", "perf.stage.duration"),
    (
        "backend_ttft_seconds",
        "gen_ai.client.operation.time_to_first_chunk",
    ),
    (
        "backend_chunk_gap_seconds",
        "gen_ai.client.operation.time_per_output_chunk",
    ),
    ("request_duration_seconds", "gen_ai.server.request.duration"),
    ("gateway_overhead_seconds", "perf.gateway.overhead"),
];

/// The mock: quick, exact (no jitter), a few chunks so that the chunk gaps have observations.
const MOCK: &[&str] = &[
    "--mock-ttfb-ms",
    "5",
    "--mock-chunks",
    "4",
    "--mock-chunk-interval-ms",
    "2",
    "--mock-jitter-ms",
    "0",
];

fn python() -> Option<PathBuf> {
    python_with_packages_or_skip(RECEIVER_MODULES, RECEIVER_PACKAGES, TEST)
}

/// The example gateway's binary with the mock, `args` and the variables `env`.
fn spawn(args: &[&str], env: &[(&str, &str)], stderr: Option<std::fs::File>) -> Spawned {
    let launch = Launch {
        args: MOCK.iter().chain(args).map(|s| s.to_string()).collect(),
        // Its exports go straight to 127.0.0.1, whatever proxy the environment names.
        env: [("NO_PROXY", "127.0.0.1,localhost")]
            .iter()
            .chain(env)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        stderr,
        ..Launch::default()
    };
    Spawned::launch(&example_gateway(), launch, Duration::from_secs(30)).expect("the gateway")
}

/// One chat completion of [`MODEL`] (streamed or whole, with the client's `traceparent` of
/// trace id `trace` if given), read to its end: how long it took.
async fn send(gateway: &Spawned, stream: bool, trace: Option<&str>) -> Duration {
    let start = Instant::now();
    let mut request = common::client()
        .post(gateway.chat_url())
        .bearer_auth(BURST_KEY)
        .header("content-type", "application/json")
        .body(chat(MODEL, stream));
    if let Some(trace) = trace {
        request = request.header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"));
    }
    let response = request.send().await.expect("the gateway answers");
    assert_eq!(response.status(), 200);
    response.bytes().await.expect("the whole answer");
    start.elapsed()
}

/// `/metrics` in the protobuf format, decoded.
async fn families(gateway: &Spawned) -> Vec<proto::MetricFamily> {
    let url = format!("{}/metrics", gateway.base());
    decode_families(&scrape_as(&url, Some(ACCEPT_PROTOBUF)).await.1)
}

/// The value of counter `name`'s series with labels `labels` in `/metrics` (text), 0 if none.
async fn counter(gateway: &Spawned, name: &str, labels: &[(&str, &str)]) -> f64 {
    let (status, text) = common::get(&format!("{}/metrics", gateway.base()), None).await;
    assert_eq!(status, 200);
    let samples = common::check_exposition(&text).unwrap_or_else(|e| panic!("{e}"));
    samples
        .iter()
        .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(v)))
        .map(|s| s.value)
        .sum()
}

/// Polls (every 50 ms, up to 15 s) until `done` holds for `gateway`'s counter; tells whether.
async fn counted(gateway: &Spawned, name: &str, labels: &[(&str, &str)], at_least: f64) -> bool {
    for _ in 0..300 {
        if counter(gateway, name, labels).await >= at_least {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Polls the receiver (every 50 ms, up to 15 s) until `done` holds for its summary.
async fn summary_when(receiver: &Receiver, done: impl Fn(&Summary) -> bool) -> Summary {
    for _ in 0..300 {
        let summary = receiver.summary().await;
        if done(&summary) {
            return summary;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    receiver.summary().await
}

/// One streamed and one whole chat completion with the clients' trace ids; `/metrics` read once
/// they ended; the gateway stopped as Ctrl-C does (its last export); that export against the
/// scrape, every series of the chat endpoint of every histogram family, and the counters.
/// ~3 s here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_holds_what_metrics_shows_as_opentelemetrys_decoder_reads_it() {
    let Some(python) = python() else { return };
    let receiver = Receiver::start(&python, &[]);
    let env = [
        ("OTEL_SERVICE_NAME", "otlp-test-gateway"),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment=test,service.namespace=perf%20tests",
        ),
    ];
    let base = receiver.base();
    let args = ["--otlp-endpoint", &base, "--otlp-interval-ms", "300"];
    let mut gateway = spawn(&args, &env, None);

    send(&gateway, true, Some(STREAMED)).await;
    send(&gateway, false, Some(WHOLE)).await;
    let completed = [("endpoint", CHAT), ("outcome", "completed")];
    assert!(counted(&gateway, "requests_total", &completed, 2.0).await);
    let scraped = families(&gateway).await;
    // A periodic export arrives while the gateway runs, then its last one at Ctrl-C.
    let periodic = summary_when(&receiver, |s| !s.exports.is_empty()).await;
    assert!(!periodic.exports.is_empty(), "no export every 300 ms");
    let exit = gateway
        .interrupt(Duration::from_secs(15))
        .expect("it stops");
    assert!(exit.success(), "{exit}");
    let summary = receiver.summary().await;

    assert!(
        summary.errors.is_empty(),
        "the receiver's checks:\n{}",
        summary.errors.join("\n")
    );
    assert!(summary.exports.len() > periodic.exports.len(), "a last one");
    for attempt in &summary.requests {
        assert_eq!(
            (
                attempt.path.as_str(),
                attempt.encoding.as_deref(),
                attempt.status
            ),
            ("/v1/metrics", Some("gzip"), 200)
        );
    }
    let export = summary.exports.last().expect("an export");
    // The resource: the variables, and the SDK's name.
    for (key, value) in [
        ("service.name", "otlp-test-gateway"),
        ("deployment.environment", "test"),
        ("service.namespace", "perf tests"),
        ("telemetry.sdk.name", "perf"),
    ] {
        assert_eq!(export.resource(key), Some(value), "resource {key}");
    }
    assert_eq!(export.resources[0].scopes[0].name, "perf");

    let mut traces = BTreeSet::new();
    for (prometheus, otlp) in HISTOGRAMS {
        let family = scraped
            .iter()
            .find(|f| f.name == *prometheus)
            .unwrap_or_else(|| panic!("{prometheus} in /metrics"));
        let metric = export
            .metric(otlp)
            .unwrap_or_else(|| panic!("{otlp} exported"));
        assert_eq!(metric.unit, "s", "{otlp}");
        let chat_series: Vec<&proto::Metric> = family
            .metric
            .iter()
            .filter(|s| s.label("endpoint") == Some(CHAT) && s.histogram.is_some())
            .collect();
        assert!(!chat_series.is_empty(), "{prometheus}: no chat series");
        let traced = chat_series.iter().any(|s| {
            s.histogram
                .as_ref()
                .is_some_and(|h| h.sample_count > 0 && !h.positive_span.is_empty())
        });
        let expected_type = if traced {
            "exponential_histogram"
        } else {
            "histogram"
        };
        assert_eq!(metric.r#type, expected_type, "{otlp}");
        for series in chat_series {
            let point = point_of(metric, series);
            traces.extend(assert_same_histogram(prometheus, series, point));
        }
    }
    // Every exemplar is one of the two requests', and both are there: the whole request came
    // last, so its buckets' exemplars are its own; the streamed one's time to first chunk.
    let sent: BTreeSet<String> = [STREAMED, WHOLE].map(String::from).into();
    assert_eq!(traces, sent, "the exemplars' trace ids");
    let ttft = export
        .metric("gen_ai.client.operation.time_to_first_chunk")
        .expect("TTFT exported");
    let streamed: Vec<&str> = ttft
        .points
        .iter()
        .flat_map(|p| &p.exemplars)
        .map(|e| e.trace_id.as_str())
        .collect();
    assert!(streamed.contains(&STREAMED), "{streamed:?}");

    // The counters: requests by outcome, tokens by type.
    let counters = [
        ("requests_total", "perf.requests"),
        ("backend_tokens_total", "perf.backend.tokens"),
    ];
    for (prometheus, otlp) in counters {
        let family = scraped
            .iter()
            .find(|f| f.name == prometheus)
            .expect(prometheus);
        let metric = export.metric(otlp).expect(otlp);
        assert_eq!(metric.r#type, "sum");
        let mut compared = 0;
        for series in family
            .metric
            .iter()
            .filter(|s| s.label("endpoint") == Some(CHAT))
        {
            let value = series.counter.as_ref().expect("a counter").value;
            assert_eq!(point_of(metric, series).value, Some(value), "{prometheus}");
            compared += usize::from(value > 0.0);
        }
        assert!(compared > 0, "{prometheus}: nothing counted");
    }
}

/// Requests of `gateways`, one whole chat completion to each in turn, for at least `rounds`
/// rounds and `least` of time: each gateway's latencies, in the order of `gateways`.
async fn latencies(gateways: &[&Spawned], rounds: usize, least: Duration) -> Vec<Vec<Duration>> {
    let mut all = vec![Vec::new(); gateways.len()];
    let start = Instant::now();
    let mut round = 0;
    while round < rounds || start.elapsed() < least {
        for (i, gateway) in gateways.iter().enumerate() {
            all[i].push(send(gateway, false, None).await);
        }
        round += 1;
    }
    all
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// Three gateways export to a closed port (`OTEL_EXPORTER_OTLP_ENDPOINT`), to a receiver that
/// answers 503 three times, and to one that answers after 3 s (`OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`,
/// 250 ms timeout); a fourth does not export. Their requests, taken in turn for 5 s, are as
/// quick as the fourth's (medians, within 3× + 20 ms: a request that waited for an export would
/// take the 3 s); each failure is counted under its reason; the 503s are retried after 0.5 s,
/// then the export is taken; the dead collector is said once in the log for many failures.
/// ~7 s here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_down_refusing_or_slow_costs_requests_nothing() {
    // Latencies compared: no other heavy test at the same time.
    let _heavy = common::heavy();
    let Some(python) = python() else { return };
    let refusing = Receiver::start(&python, &["--answer", "503", "--times", "3"]);
    let slow = Receiver::start(&python, &["--delay-ms", "3000"]);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port")
        .port();

    let off = spawn(&[], &[], None);
    let log = std::env::temp_dir().join(format!("gateway_otlp_down_{}.log", std::process::id()));
    let down_url = format!("http://127.0.0.1:{closed}");
    let down = spawn(
        &["--otlp-interval-ms", "200"],
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", down_url.as_str())],
        Some(std::fs::File::create(&log).expect("a log file")),
    );
    let refusing_base = refusing.base();
    // Two tries fit in an export's 1.2 s (a second after 0.5 s, a third would be 1 s later):
    // the first export fails after two 503s, the second is taken at its second try.
    let refused = spawn(
        &[
            "--otlp-endpoint",
            &refusing_base,
            "--otlp-interval-ms",
            "1200",
        ],
        &[],
        None,
    );
    let slow_url = format!("{}/v1/metrics", slow.base());
    let slowed = spawn(
        &["--otlp-interval-ms", "500"],
        &[
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", slow_url.as_str()),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "250"),
        ],
        None,
    );

    let gateways = [&off, &down, &refused, &slowed];
    let mut times = latencies(&gateways, 20, Duration::from_secs(5)).await;
    let medians: Vec<Duration> = times.iter_mut().map(|t| median(t)).collect();
    eprintln!("median latencies (off, down, 503, slow): {medians:?}");
    for (name, m) in ["down", "503", "slow"].iter().zip(&medians[1..]) {
        assert!(
            *m <= medians[0] * 3 + Duration::from_millis(20),
            "{name}: median {m:?} against {:?} without export",
            medians[0]
        );
    }

    // Each failure counted under its reason, in /metrics.
    let failures = perf_runtime::otlp::EXPORT_FAILURES;
    for (gateway, reason) in [
        (&down, "unreachable"),
        (&refused, "unavailable"),
        (&slowed, "timeout"),
    ] {
        assert!(
            counted(gateway, failures, &[("reason", reason)], 1.0).await,
            "{failures}{{reason={reason}}}"
        );
    }
    assert_eq!(counter(&off, failures, &[]).await, 0.0);

    // 503: retried after the first backoff (0.5 s) within the export, and taken in the end.
    let summary = summary_when(&refusing, |s| !s.exports.is_empty()).await;
    assert!(!summary.exports.is_empty(), "{:?}", summary.requests);
    let statuses: Vec<u16> = summary.requests.iter().map(|a| a.status).collect();
    assert_eq!(
        statuses[..4],
        [503, 503, 503, 200],
        "{:?}",
        summary.requests
    );
    let gaps: Vec<f64> = summary
        .requests
        .windows(2)
        .map(|w| w[1].at - w[0].at)
        .collect();
    assert!(
        gaps[..3].iter().any(|g| (0.45..1.2).contains(g)),
        "a retry after the 0.5 s backoff within an export: {gaps:?}"
    );
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);

    // The dead collector is said once, for many failures.
    let many = counter(&down, failures, &[("reason", "unreachable")]).await;
    assert!(many >= 3.0, "{many} failures in 5 s at 200 ms");
    drop(down);
    let said = std::fs::read_to_string(&log).expect("the log");
    let _ = std::fs::remove_file(&log);
    let lines = said.lines().filter(|l| l.contains("OTLP export")).count();
    assert_eq!(lines, 1, "{said}");
}
