//! What a provider's error statuses and invalid answers become through the example gateway, with
//! the mock's faults chosen by the model name:
//!
//! * a 4xx reaches the client with its status, the provider's OpenAI error (or one made from its
//!   text) and its `Retry-After`: a 400 `context_length_exceeded`, a 429 `rate_limit_exceeded`;
//! * a 5xx, or a 401 (the provider refusing the gateway's own key), is a 502 with a message of
//!   the gateway's own (the provider's text goes to the log: `tests/gateway/provider_secrets.rs`);
//! * a whole answer that is not JSON, or a streamed one that is not `text/event-stream`, is a
//!   502; a stream event that is not JSON ends the stream with an SSE `error` event;
//! * an unreachable provider is a 502.
//!
//! Every one counts once as `requests_total{outcome="error"}`, and once in
//! `backend_errors_total` with its kind (`status`, `protocol`, `connect`). The tests count
//! requests of the same endpoints in the global registry, so each runs alone (`common::alone!`).

use crate::common;

use common::{
    backend_errors, chat, count, error_of, global, last_error_event, one_more_error, post,
    responses, sse_events, start, trace_id_of, Outcomes, FAST_MOCK, KEY,
};
use perf::gateway::mock::fault::RETRY_AFTER_SECS;
use perf::Gateway;
use serde_json::{json, Value};

const CHAT: &str = "/v1/chat/completions";
const RESPONSES: &str = "/v1/responses";

/// A request of `model` to `endpoint` through `gateway`, which must count once as an `error`
/// and once in `backend_errors_total{provider, kind}`: its response.
async fn failing(
    gateway: &Gateway,
    endpoint: &str,
    model: &str,
    stream: bool,
    (provider, kind): (&str, &str),
) -> reqwest::Response {
    let before = (
        Outcomes::of(endpoint),
        backend_errors(provider, model, endpoint, kind),
    );
    let body = match endpoint {
        CHAT => chat(model, stream),
        _ => responses(model, stream),
    };
    let path = endpoint.trim_start_matches("/v1");
    let response = post(gateway, path, Some(KEY), body).await;
    let (status, headers) = (response.status(), response.headers().clone());
    let bytes = response.bytes().await.expect("a whole answer");
    one_more_error(endpoint, before.0).await;
    assert_eq!(
        backend_errors(provider, model, endpoint, kind),
        before.1 + 1,
        "backend_errors_total{{provider={provider}, model={model}, kind={kind}}}"
    );
    // The answer again, for the caller's checks.
    let mut rebuilt = axum::http::Response::builder().status(status);
    for (name, value) in &headers {
        rebuilt = rebuilt.header(name, value);
    }
    reqwest::Response::from(rebuilt.body(bytes).expect("a valid response"))
}

const MOCK: (&str, &str) = ("mock", "status");

fn retry_after(response: &reqwest::Response) -> Option<&str> {
    response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
}

/// A provider 400 (`context_length_exceeded`) and 429s (OpenAI body or plain text) reach the
/// client with their status, error and `Retry-After`, streamed or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_4xx_pass_through_with_their_error_and_retry_after() {
    common::alone!();
    let gateway = start(FAST_MOCK).await;
    let retry = RETRY_AFTER_SECS.to_string();

    for (endpoint, stream) in [(CHAT, false), (CHAT, true), (RESPONSES, true)] {
        let response = failing(&gateway, endpoint, "fault:status-400", stream, MOCK).await;
        assert_eq!(retry_after(&response), Some(retry.as_str()));
        let error = error_of(response, 400).await;
        assert_eq!(error["error"]["code"], "context_length_exceeded", "{error}");
        assert_eq!(error["error"]["param"], "messages", "{error}");
        assert_eq!(error["error"]["type"], "invalid_request_error", "{error}");
        let message = error["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("maximum context length"), "{message}");
    }

    let response = failing(&gateway, CHAT, "fault:status-429", true, MOCK).await;
    assert_eq!(retry_after(&response), Some(retry.as_str()));
    let error = error_of(response, 429).await;
    assert_eq!(
        error["error"],
        json!({"message": "Rate limit reached for requests. Please try again in 7s.",
               "type": "requests", "param": null, "code": "rate_limit_exceeded"})
    );

    // A plain-text 429: an OpenAI error made from it.
    let response = failing(&gateway, RESPONSES, "fault:status-429-text", false, MOCK).await;
    assert_eq!(retry_after(&response), Some(retry.as_str()));
    let error = error_of(response, 429).await;
    assert_eq!(error["error"]["code"], "rate_limit_exceeded", "{error}");
    assert_eq!(error["error"]["type"], "rate_limit_error", "{error}");
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("Rate limit reached"), "{message}");

    // No headers of success came: no TTFB.
    let labels = [
        ("provider", "mock"),
        ("model", "fault:status-400"),
        ("endpoint", CHAT),
    ];
    assert_eq!(count(global(), "backend_ttfb_seconds", &labels), 0);
    gateway.shutdown().await;
}

/// A provider 5xx is a 502 naming its status, not quoting it; a provider 401 is the gateway's
/// own key refused, which the client cannot fix: a 502 too, not a 401. Either names the trace
/// id under which the gateway logged the provider's text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_5xx_and_a_refused_gateway_key_are_502() {
    common::alone!();
    let gateway = start(FAST_MOCK).await;
    for (model, stream, said) in [
        ("fault:status-503", true, "the provider failed (503)"),
        ("fault:status-500-text", false, "the provider failed (500)"),
        (
            "fault:status-401",
            false,
            "refused the gateway's credentials (401)",
        ),
    ] {
        let response = failing(&gateway, CHAT, model, stream, MOCK).await;
        assert_eq!(retry_after(&response), None, "{model}");
        let trace = trace_id_of(response.headers());
        let error = error_of(response, 502).await;
        assert_eq!(error["error"]["code"], "bad_gateway", "{error}");
        let message = error["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(said), "{model}: {message}");
        assert!(message.contains(&trace), "{model}: {message}");
        assert!(!message.contains("on purpose"), "{model}: {message}");
    }
    gateway.shutdown().await;
}

/// Answers that are not what the API promises: a whole answer that is not JSON is a 502, not
/// a 200 passing it on; a streamed request answered with JSON is a 502, not an empty stream;
/// a stream event that is not JSON ends the stream with an `error` event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_answers_are_errors_of_kind_protocol() {
    common::alone!();
    let gateway = start(FAST_MOCK).await;
    let protocol = ("mock", "protocol");

    let response = failing(&gateway, CHAT, "fault:invalid-json", false, protocol).await;
    let error = error_of(response, 502).await;
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("not valid JSON"), "{message}");

    let response = failing(&gateway, CHAT, "fault:not-sse", true, protocol).await;
    let error = error_of(response, 502).await;
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("not text/event-stream"), "{message}");
    // Its headers came: a TTFB, then the check.
    let labels = [
        ("provider", "mock"),
        ("model", "fault:not-sse"),
        ("endpoint", CHAT),
    ];
    assert_eq!(count(global(), "backend_ttfb_seconds", &labels), 1);

    for endpoint in [CHAT, RESPONSES] {
        let response = failing(&gateway, endpoint, "fault:invalid-json", true, protocol).await;
        assert_eq!(response.status(), 200);
        let body = response.bytes().await.expect("the stream");
        let events = sse_events(&body);
        assert_eq!(
            events.len(),
            2,
            "the valid event, then the error: {events:?}"
        );
        serde_json::from_str::<Value>(&events[0].data).expect("the valid event went on");
        let error = last_error_event(&body);
        let message = error["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("not JSON"), "{message}");
    }

    // The same models without faults on a sane provider are served: the checks pass valid
    // answers on unchanged.
    let response = post(
        &gateway,
        "/chat/completions",
        Some(KEY),
        chat("sane", false),
    )
    .await;
    assert_eq!(response.status(), 200);
    let answer: Value =
        serde_json::from_slice(&response.bytes().await.expect("a body")).expect("JSON");
    assert_eq!(answer["object"], "chat.completion");
    gateway.shutdown().await;
}

/// A provider nobody listens for: a 502 of kind `connect`, streamed or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_provider_is_a_502_of_kind_connect() {
    common::alone!();
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = format!("http://{}/v1", closed.local_addr().unwrap());
    drop(closed);
    let gateway = start(&["--upstream", &upstream, "--provider", "nowhere"]).await;
    for stream in [false, true] {
        let response = failing(&gateway, CHAT, "m", stream, ("nowhere", "connect")).await;
        let error = error_of(response, 502).await;
        let message = error["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("provider unreachable"), "{message}");
    }
    gateway.shutdown().await;
}
