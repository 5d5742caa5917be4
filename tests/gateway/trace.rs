//! The trace id of a request, through the example gateway: the client's W3C `traceparent` is
//! the one the answer returns (`traceparent` with a span id of the gateway's, and `x-trace-id`)
//! and the one the provider gets (a new span id per try); without a valid one, each request gets
//! a fresh id; every answer carries it, errors included (those of the handlers, of the provider,
//! mid-stream, and those no handler made: 404, 413, a panic's 500).

use crate::common;

use common::{
    chat, client, post_traced, responses, start, start_with_routes, trace_id_of, FAST_MOCK, KEY,
    ZERO_MOCK,
};
use perf::Gateway;
use perf_runtime::TraceId;

/// A client's `traceparent`: trace id `trace` (32 hex digits), parent (span) id `parent`.
fn traceparent(trace: &str, parent: &str) -> String {
    format!("00-{trace}-{parent}-01")
}

/// The parent (span) id of a `traceparent`.
fn span_of(traceparent: &str) -> &str {
    traceparent.split('-').nth(2).expect("a parent id")
}

/// The `traceparent` headers the gateway's mock got for trace `id`, oldest first.
fn provider_saw(gateway: &Gateway, id: &str) -> Vec<String> {
    let mock = gateway.mock().expect("the built-in mock");
    mock.traceparents()
        .into_iter()
        .filter(|t| {
            TraceId::from_traceparent(t)
                .map(|t| t.to_string())
                .as_deref()
                == Some(id)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clients_trace_id_is_answered_and_sent_on() {
    common::alone!();
    let gateway = start(FAST_MOCK).await;
    let shapes = [
        (
            "/chat/completions",
            chat("traced", true),
            "text/event-stream",
        ),
        (
            "/chat/completions",
            chat("traced", false),
            "application/json",
        ),
        ("/responses", responses("traced", true), "text/event-stream"),
        ("/responses", responses("traced", false), "application/json"),
    ];
    for (i, (path, body, content_type)) in shapes.into_iter().enumerate() {
        let trace = format!("4bf92f3577b34da6a3ce929d0e0e47{i:02x}");
        let parent = "00f067aa0ba902b7";
        let response = post_traced(&gateway, path, body, Some(&traceparent(&trace, parent))).await;
        assert_eq!(response.status(), 200, "{path}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(content_type),
            "{path}"
        );
        assert_eq!(
            trace_id_of(response.headers()),
            trace,
            "{path} {content_type}"
        );
        let answered = response.headers()["traceparent"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_ne!(
            span_of(&answered),
            parent,
            "the answer's span is the gateway's"
        );
        response.bytes().await.expect("the whole answer");

        let sent = provider_saw(&gateway, &trace);
        assert_eq!(sent.len(), 1, "one call to the provider: {sent:?}");
        assert_ne!(
            span_of(&sent[0]),
            parent,
            "the provider call is a span of its own"
        );
        assert!(
            sent[0].starts_with("00-") && sent[0].ends_with("-01"),
            "{sent:?}"
        );
    }
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_valid_traceparent_each_request_gets_a_fresh_id() {
    common::alone!();
    let gateway = start(ZERO_MOCK).await;
    let mut ids = Vec::new();
    for client_header in [
        None,
        None,
        Some("00-nonsense-00f067aa0ba902b7-01".to_owned()),
        Some(traceparent(
            "00000000000000000000000000000000",
            "00f067aa0ba902b7",
        )),
        Some(traceparent(
            "4BF92F3577B34DA6A3CE929D0E0E4736",
            "00f067aa0ba902b7",
        )),
    ] {
        let response = post_traced(
            &gateway,
            "/chat/completions",
            chat("fresh", false),
            client_header.as_deref(),
        )
        .await;
        assert_eq!(response.status(), 200);
        let id = trace_id_of(response.headers());
        assert_ne!(id, "0".repeat(32));
        assert_ne!(
            id, "4bf92f3577b34da6a3ce929d0e0e4736",
            "uppercase is invalid"
        );
        assert_eq!(provider_saw(&gateway, &id).len(), 1, "sent on: {id}");
        ids.push(id);
    }
    let distinct: std::collections::BTreeSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "{ids:?}");
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_carry_the_trace_id_too() {
    common::alone!();
    let panics = axum::Router::new().route(
        "/v1/panics",
        axum::routing::post(|| async {
            if true {
                panic!("a handler that panics");
            }
            "never"
        }),
    );
    let args = [ZERO_MOCK, &["--max-body-bytes", "2048"]].concat();
    let gateway = start_with_routes(&args, panics).await;
    let url = |path: &str| format!("{}{path}", gateway.base_url());
    let cases: [(&str, reqwest::RequestBuilder, u16); 7] = [
        (
            "no key",
            client()
                .post(url("/chat/completions"))
                .body(chat("m", false)),
            401,
        ),
        (
            "malformed body",
            client()
                .post(url("/chat/completions"))
                .bearer_auth(KEY)
                .body("{"),
            400,
        ),
        (
            "the provider's 429",
            client()
                .post(url("/chat/completions"))
                .bearer_auth(KEY)
                .body(chat("fault:status-429", false)),
            429,
        ),
        (
            "the provider's 503",
            client()
                .post(url("/responses"))
                .bearer_auth(KEY)
                .body(responses("fault:status-503", true)),
            502,
        ),
        (
            "no such route (no handler)",
            client().get(url("/files")).bearer_auth(KEY),
            404,
        ),
        (
            "a body too large (no handler)",
            client()
                .post(url("/chat/completions"))
                .bearer_auth(KEY)
                .body(chat(&"m".repeat(4096), false)),
            413,
        ),
        (
            "a handler that panicked (no answer of its own)",
            client().post(url("/panics")).bearer_auth(KEY),
            500,
        ),
    ];
    for (i, (case, request, status)) in cases.into_iter().enumerate() {
        let trace = format!("0af7651916cd43dd8448eb211c80319{i:x}");
        let response = request
            .header("content-type", "application/json")
            .header("traceparent", traceparent(&trace, "b7ad6b7169203331"))
            .send()
            .await
            .expect("the gateway answers");
        assert_eq!(response.status().as_u16(), status, "{case}");
        assert_eq!(trace_id_of(response.headers()), trace, "{case}");
        if case.starts_with("the provider") {
            assert_eq!(provider_saw(&gateway, &trace).len(), 1, "{case}");
        }
    }

    // A stream the provider cuts: 200, then an SSE error event; the headers came first.
    let trace = "0af7651916cd43dd8448eb211c8031ff";
    let response = post_traced(
        &gateway,
        "/chat/completions",
        chat("fault:cut", true),
        Some(&traceparent(trace, "b7ad6b7169203331")),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(trace_id_of(response.headers()), trace);
    let body = response.bytes().await.expect("the stream to its end");
    common::last_error_event(&body);
    gateway.shutdown().await;
}

/// A retried call is a new span of the same trace: the provider sees the trace id twice, with
/// two span ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_try_is_a_span_of_the_same_trace() {
    common::alone!();
    let args = [
        ZERO_MOCK,
        &["--mock-fail-every", "2", "--upstream-retries", "1"],
    ]
    .concat();
    let gateway = start(&args).await;
    // The mock's first answer succeeds; the second (this request's first try) is a 500.
    let first = post_traced(&gateway, "/chat/completions", chat("m", false), None).await;
    assert_eq!(first.status(), 200);
    let trace = "a3ce929d0e0e47364bf92f3577b34da6";
    let response = post_traced(
        &gateway,
        "/chat/completions",
        chat("m", false),
        Some(&traceparent(trace, "00f067aa0ba902b7")),
    )
    .await;
    assert_eq!(response.status(), 200, "the retry answers");
    assert_eq!(trace_id_of(response.headers()), trace);
    let sent = provider_saw(&gateway, trace);
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_ne!(span_of(&sent[0]), span_of(&sent[1]), "{sent:?}");
    gateway.shutdown().await;
}
