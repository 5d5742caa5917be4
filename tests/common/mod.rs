//! What the root package's test binaries share (`tests/gateway/`, `tests/shapes/`): starting a
//! gateway, sending requests, reading SSE, `/metrics` and the log. Split by concern (`gateway`:
//! starting and requests; `counts`: the gateway's numbers in the global metrics; `formats`: the
//! three formats of `/metrics`; `memory`: the example gateway's binary as a child process, its
//! resident set, bursts of streams; `tools`: promtool; `shapes`: a test's own router, a simulated
//! provider and the numbers of the registry it records into; `fake_provider`: a provider over
//! HTTP that redirects or echoes the key it got; `logs`: every log line of the process,
//! captured; `otlp`: a Python OTLP receiver and the comparison of its exports with `/metrics`)
//! and re-exported here with the workspace's test kit (`perf_test_kit`: the registry reader, the
//! text-format parser, bounds on measured times, `alone!` and `heavy`), so that a test names
//! everything as `common::…`.

#![allow(dead_code)] // each test binary uses its own part of this module

mod counts;
mod fake_provider;
mod formats;
mod gateway;
mod logs;
#[cfg(target_os = "linux")]
mod memory;
pub mod otlp;
mod shapes;
mod tools;

#[allow(unused_imports)] // only the gateway tests use them
pub use counts::*;
#[allow(unused_imports)] // only the tests of the provider's misdeeds use them
pub use fake_provider::*;
#[allow(unused_imports)] // only the tests that read /metrics' formats use them
pub use formats::*;
pub use gateway::*;
#[allow(unused_imports)] // only the tests that read the log use them
pub use logs::*;
#[allow(unused_imports)] // only the memory test uses it
#[cfg(target_os = "linux")]
pub use memory::*;
pub use perf_test_kit::*;
#[allow(unused_imports)] // only the handler-shape tests use it
pub use shapes::*;
pub use tools::*;

use std::collections::BTreeMap;

use perf::Gateway;
use serde_json::Value;

/// Waits, boundedly (10 s), until `done` holds; tells whether it did. What is recorded when a
/// stream ends or a connection closes is recorded just after the client sees it.
pub async fn eventually(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..500 {
        if done() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    done()
}

/// Sends one chat completion for each of `models`, `concurrency` at a time, streamed and not
/// in turn; each must be answered 200 and read to its end.
pub async fn send_models(gateway: &Gateway, models: &[String], concurrency: usize) {
    use futures_util::StreamExt;
    futures_util::stream::iter(models.iter().enumerate())
        .map(|(i, model)| async move {
            let response = post(
                gateway,
                "/chat/completions",
                Some(KEY),
                chat(model, i % 2 == 0),
            )
            .await;
            assert_eq!(response.status(), 200, "{model:?}");
            response.bytes().await.expect("the whole answer");
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<()>>()
        .await;
}

/// `GET /metrics` of `gateway` over HTTP, checked by the Rust-side parser (and by `promtool
/// check metrics` when it is on `PATH`; see [`promtool_or_skip`] for when it is not): its samples.
pub async fn scrape(gateway: &Gateway, test: &str) -> (String, Vec<Sample>) {
    let (status, text) = get(&gateway.metrics_url(), None).await;
    assert_eq!(status, 200);
    if let Some(promtool) = promtool_or_skip(test) {
        promtool_check_metrics(&promtool, &text);
    }
    let samples = check_exposition(&text).unwrap_or_else(|e| panic!("{e}"));
    (text, samples)
}

/// The `model` values of the `{family}_count` samples of `endpoint`, with their counts.
pub fn models_in(samples: &[Sample], family: &str, endpoint: &str) -> BTreeMap<String, u64> {
    let name = format!("{family}_count");
    samples
        .iter()
        .filter(|s| s.name == name && s.label("endpoint") == Some(endpoint))
        .map(|s| {
            (
                s.label("model").expect("a model label").to_owned(),
                s.value as u64,
            )
        })
        .collect()
}

/// Sends `models` distinct model names (one request each, 16 at a time) through a gateway
/// started with `args` and a mock that answers at once, and checks that each backend family of
/// the chat endpoint keeps exactly `cap` of them plus `other`, which holds every other request
/// exactly (a client's own model `other`, sent first, is kept as `other_` and is not in it);
/// that the series count stays `cap + 1` per family; and that `/metrics` stays valid and small.
pub async fn check_label_cap(args: &[&str], cap: usize, models: usize, test: &str) {
    const CHAT: &str = "/v1/chat/completions";
    let overflow = perf_runtime::metrics::OVERFLOW_LABEL;
    let mock = [
        "--mock-ttfb-ms",
        "0",
        "--mock-chunks",
        "1",
        "--mock-chunk-interval-ms",
        "0",
        "--mock-jitter-ms",
        "0",
    ];
    let gateway = start(&[args, &mock].concat()).await;
    // The first client names its model `other`, the overflow's value: it is kept as `other_`,
    // a model of its own, and the overflow series holds only the requests past the cap.
    let mut names: Vec<String> = vec![overflow.to_owned()];
    names.extend((1..models).map(|i| format!("client-model-{i}")));
    send_models(&gateway, &names[..1], 1).await;
    send_models(&gateway, &names[1..], 16).await;
    assert!(
        eventually(|| Outcomes::of(CHAT).completed == models as u64).await,
        "every request ended"
    );
    let (text, samples) = scrape(&gateway, test).await;

    let mut admitted: Option<Vec<String>> = None;
    for family_name in ["backend_ttfb_seconds", "streaming_duration_seconds"] {
        let counts = models_in(&samples, family_name, CHAT);
        assert_eq!(
            counts.len(),
            cap + 1,
            "{family_name}: {} model values",
            counts.len()
        );
        assert_eq!(
            counts.get(overflow).copied(),
            Some((models - cap) as u64),
            "{family_name}: the overflow series holds every later model's request"
        );
        assert_eq!(
            counts.get("other_"),
            Some(&1),
            "{family_name}: the client's `other`"
        );
        for (model, count) in counts.iter().filter(|(m, _)| *m != overflow) {
            assert!(names.contains(model) || model == "other_", "{model}");
            assert_eq!(*count, 1, "{family_name}{{model={model}}}");
        }
        // The same models are kept in both families: they share one budget.
        let kept: Vec<String> = counts.into_keys().collect();
        assert_eq!(admitted.get_or_insert_with(|| kept.clone()), &kept);
        // In the registry: one series per kept model and `other`, nothing else.
        let all = series_count(global(), family_name);
        assert_eq!(all, cap + 1, "{family_name}");
    }

    // `/metrics` stays bounded: per kept model, 12 lines for each of the TTFB and streaming
    // series (10 buckets, sum, count), 17 for the TTFT series (14 buckets) of the streamed
    // requests, 4 token counters (one chunk per answer: no chunk gap), 6 rate-limit gauges (the
    // mock states its requests and tokens limits: remaining, limit, reset), 17 for the call's
    // duration and 17 for each of its input and output tokens; plus a part that does
    // not depend on the models (front end, stages, percentages, outcomes, answers by status,
    // comments: about 300 lines with the gateway's four API endpoints, some tens more or less with
    // the statuses and outcomes a run happens to see). The series of the routes the test binary
    // adds to its gateways (`/test/…`, known to every gateway of the binary) are not counted.
    let lines = text
        .lines()
        .filter(|line| !line.contains("endpoint=\"/test/"))
        .count();
    let ttft_lines = perf_runtime::metrics::TTFT_BUCKETS.len() + 3;
    let call_lines = 3 * (perf_runtime::metrics::CALL_BUCKETS.len() + 3);
    let backend_lines = (cap + 1) * (2 * 12 + ttft_lines + 4 + 6 + call_lines);
    assert!(
        lines <= backend_lines + 400,
        "{lines} lines for {backend_lines} backend lines"
    );
    assert!(text.len() < 200 * lines, "{} bytes", text.len());
    gateway.shutdown().await;
}

/// Waits (boundedly) until exactly one more request of `endpoint` than `before` has ended, and
/// checks that it ended as an `error`.
pub async fn one_more_error(endpoint: &str, before: Outcomes) {
    assert!(
        eventually(|| Outcomes::of(endpoint).since(before).total() >= 1).await,
        "the request ended"
    );
    let after = Outcomes::of(endpoint).since(before);
    assert_eq!(
        after,
        Outcomes::new(0, 1, 0),
        "one request, counted once as an error"
    );
}

/// The `data` of the last SSE event of `body`, as JSON, after checking that it is an `error`
/// event with an OpenAI error: what a client gets when the provider fails mid-stream.
pub fn last_error_event(body: &[u8]) -> Value {
    let events = sse_events(body);
    let last = events.last().expect("at least one event");
    assert_eq!(last.event.as_deref(), Some("error"), "{events:?}");
    let error: Value = serde_json::from_str(&last.data).expect("a JSON error");
    assert!(error["error"]["message"].is_string(), "{error}");
    error
}
