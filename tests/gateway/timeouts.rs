//! The gateway in front of a provider that does not answer in time, or cuts its answer: the
//! mock's faults (`fault:hang`, `fault:stall`, `fault:cut`, chosen by the model name) through the
//! example gateway with small timeouts.
//!
//! | the provider | before its headers | after them, streamed | after them, whole |
//! |---|---|---|---|
//! | sends nothing (past `--upstream-timeout-ms`) | 504 | | |
//! | stops mid-answer (past `--upstream-idle-timeout-ms`) | | SSE `error` event | 504 |
//! | trickles past `--upstream-total-timeout-ms` | 504 | SSE `error` event | |
//! | cuts the connection | | SSE `error` event | 502 |
//!
//! Every one counts once as `requests_total{outcome="error"}` and once in
//! `backend_errors_total` with its kind; while the provider hangs, `requests_in_flight` and
//! `backend_in_flight` show it. The tests count requests of the same endpoints, so each runs
//! alone (`common::alone!`).

use crate::common;

use std::time::{Duration, Instant};

use common::{
    backend_errors, chat, count, error_of, gauge, global, last_error_event, one_more_error, post,
    responses, start, Outcomes, FAST_MOCK, KEY,
};
use perf::Gateway;

const CHAT: &str = "/v1/chat/completions";
const RESPONSES: &str = "/v1/responses";

/// The first-byte and idle timeouts of [`gateway`], in milliseconds.
const TIMEOUT_MS: u64 = 400;
const TIMEOUT: Duration = Duration::from_millis(TIMEOUT_MS);
/// The most a timeout may take past its time on a busy machine.
const SLACK: Duration = Duration::from_secs(5);

/// A gateway with [`TIMEOUT`] to the provider's headers and between its chunks, on the fast
/// mock.
async fn gateway() -> Gateway {
    let ms = TIMEOUT_MS.to_string();
    let timeouts = [
        "--upstream-timeout-ms",
        &ms,
        "--upstream-idle-timeout-ms",
        &ms,
    ];
    start(&[&timeouts[..], FAST_MOCK].concat()).await
}

fn body(endpoint: &str, model: &str, stream: bool) -> String {
    match endpoint {
        CHAT => chat(model, stream),
        _ => responses(model, stream),
    }
}

/// `POST endpoint` with `model`: the response and how long the headers took.
async fn send(
    gateway: &Gateway,
    endpoint: &str,
    model: &str,
    stream: bool,
) -> (reqwest::Response, Duration) {
    let path = endpoint.trim_start_matches("/v1");
    let started = Instant::now();
    let response = post(gateway, path, Some(KEY), body(endpoint, model, stream)).await;
    (response, started.elapsed())
}

/// Checks that the request just sent counted once as an `error`, and once in
/// `backend_errors_total` of the mock with `kind`.
async fn counted(endpoint: &str, model: &str, kind: &str, before: (Outcomes, u64)) {
    one_more_error(endpoint, before.0).await;
    assert_eq!(
        backend_errors("mock", model, endpoint, kind),
        before.1 + 1,
        "backend_errors_total{{model={model}, endpoint={endpoint}, kind={kind}}}"
    );
}

fn now(endpoint: &str, model: &str, kind: &str) -> (Outcomes, u64) {
    (
        Outcomes::of(endpoint),
        backend_errors("mock", model, endpoint, kind),
    )
}

fn ttfb_count(endpoint: &str, model: &str) -> u64 {
    count(
        global(),
        "backend_ttfb_seconds",
        &[
            ("provider", "mock"),
            ("model", model),
            ("endpoint", endpoint),
        ],
    )
}

/// A provider that never sends its headers: a 504 after `--upstream-timeout-ms`, streamed or
/// not, with no TTFB recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_never_answers_is_a_504() {
    common::alone!();
    let gateway = gateway().await;
    let model = "fault:hang";
    for (endpoint, stream) in [(CHAT, false), (CHAT, true), (RESPONSES, true)] {
        let before = now(endpoint, model, "timeout");
        let sent = send(&gateway, endpoint, model, stream);
        // While it waits: one request in flight, one backend call in flight (the test runs
        // alone, and nothing else calls the mock meanwhile).
        let watch = async {
            let under_way = || {
                let gauge = |name, labels| gauge(global(), name, labels).unwrap_or(0.0);
                (
                    gauge("requests_in_flight", &[("endpoint", endpoint)]),
                    gauge("backend_in_flight", &[("provider", "mock")]),
                )
            };
            common::eventually(|| under_way() == (1.0, 1.0)).await
        };
        let ((response, took), seen) = tokio::join!(sent, watch);
        assert!(seen, "one request and one backend call in flight");
        let error = error_of(response, 504).await;
        assert_eq!(error["error"]["code"], "gateway_timeout", "{error}");
        assert!(
            took >= TIMEOUT - Duration::from_millis(20) && took < TIMEOUT + SLACK,
            "{endpoint} stream={stream}: the 504 came after {took:?}"
        );
        counted(endpoint, model, "timeout", before).await;
        let gauge = |name, labels| gauge(global(), name, labels);
        assert_eq!(
            gauge("backend_in_flight", &[("provider", "mock")]),
            Some(0.0)
        );
        assert_eq!(
            gauge("requests_in_flight", &[("endpoint", endpoint)]),
            Some(0.0)
        );
    }
    assert_eq!(ttfb_count(CHAT, model), 0, "no headers, no TTFB");
    gateway.shutdown().await;
}

/// A provider that stops mid-answer: the streamed client gets the first events and then an
/// SSE `error` event, the whole one a 504; the headers came, so the TTFB is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_stalls_mid_answer_times_out() {
    common::alone!();
    let gateway = gateway().await;
    let model = "fault:stall";
    for endpoint in [CHAT, RESPONSES] {
        let before = now(endpoint, model, "timeout");
        let ttfb_before = ttfb_count(endpoint, model);
        let (response, _) = send(&gateway, endpoint, model, true).await;
        assert_eq!(response.status(), 200);
        let started = Instant::now();
        let body = response.bytes().await.expect("the stream ends cleanly");
        let took = started.elapsed();
        let events = common::sse_events(&body);
        assert_eq!(
            events.len(),
            2,
            "the first event, then the error: {events:?}"
        );
        let error = last_error_event(&body);
        assert_eq!(error["error"]["code"], "gateway_timeout", "{error}");
        assert!(took < TIMEOUT + SLACK, "the stream ended after {took:?}");
        counted(endpoint, model, "timeout", before).await;
        assert_eq!(ttfb_count(endpoint, model), ttfb_before + 1);
    }

    let before = now(CHAT, model, "timeout");
    let (response, took) = send(&gateway, CHAT, model, false).await;
    let error = error_of(response, 504).await;
    assert_eq!(error["error"]["code"], "gateway_timeout", "{error}");
    assert!(took < TIMEOUT + SLACK, "{took:?}");
    counted(CHAT, model, "timeout", before).await;
    gateway.shutdown().await;
}

/// A provider that answers, but slower than `--upstream-total-timeout-ms` allows in all: the
/// stream is cut at the cap with an `error` event (its chunks came in time, one by one), and a
/// whole answer, which comes only at the end, is a 504.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_total_timeout_caps_an_answer_that_trickles() {
    common::alone!();
    // 40 chunks 50 ms apart: 2 s in all, each chunk well within the idle timeout.
    let mock = [
        "--mock-ttfb-ms",
        "20",
        "--mock-chunks",
        "40",
        "--mock-chunk-interval-ms",
        "50",
        "--mock-jitter-ms",
        "0",
    ];
    // The first-byte timeout at its default (60 s): the cap comes first.
    let ms = TIMEOUT_MS.to_string();
    let caps = [
        "--upstream-total-timeout-ms",
        "900",
        "--upstream-idle-timeout-ms",
        &ms,
    ];
    let gateway = start(&[&caps[..], &mock].concat()).await;
    let model = "trickle";
    let before = now(CHAT, model, "timeout");
    let (response, _) = send(&gateway, CHAT, model, true).await;
    assert_eq!(response.status(), 200);
    let body = response.bytes().await.expect("the stream ends cleanly");
    let events = common::sse_events(&body);
    assert!(
        events.len() > 2 && events.len() < 40,
        "some chunks, then the error: {events:?}"
    );
    let error = last_error_event(&body);
    assert_eq!(error["error"]["code"], "gateway_timeout", "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("total time limit")),
        "{error}"
    );
    counted(CHAT, model, "timeout", before).await;

    let before = now(CHAT, model, "timeout");
    let (response, took) = send(&gateway, CHAT, model, false).await;
    error_of(response, 504).await;
    assert!(
        took >= Duration::from_millis(880) && took < TIMEOUT + SLACK,
        "{took:?}"
    );
    counted(CHAT, model, "timeout", before).await;
    gateway.shutdown().await;
}

/// A provider that cuts the connection mid-answer: a 502 for a whole answer, an `error` event
/// for a stream; then the gateway serves the next request as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_cut_mid_answer_is_an_error() {
    common::alone!();
    let gateway = gateway().await;
    let model = "fault:cut";
    let before = now(CHAT, model, "broken_off");
    let (response, _) = send(&gateway, CHAT, model, false).await;
    let error = error_of(response, 502).await;
    assert_eq!(error["error"]["code"], "bad_gateway", "{error}");
    counted(CHAT, model, "broken_off", before).await;

    let before = now(RESPONSES, model, "broken_off");
    let (response, _) = send(&gateway, RESPONSES, model, true).await;
    assert_eq!(response.status(), 200);
    let body = response.bytes().await.expect("the stream ends cleanly");
    let error = last_error_event(&body);
    assert_eq!(error["error"]["code"], "bad_gateway", "{error}");
    counted(RESPONSES, model, "broken_off", before).await;

    let before = Outcomes::of(CHAT);
    let (response, _) = send(&gateway, CHAT, "gpt-4o-mini", true).await;
    assert_eq!(response.status(), 200);
    let events = common::sse_events(&response.bytes().await.expect("the whole stream"));
    assert_eq!(events.last().map(|e| e.data.as_str()), Some("[DONE]"));
    assert!(common::eventually(|| Outcomes::of(CHAT).since(before).completed == 1).await);
    gateway.shutdown().await;
}
