//! The gateway in front of a provider that breaks off mid-answer, and clients without a key: the
//! status the client gets, the outcome the request is counted with and the kind of its backend
//! error agree.
//!
//! The provider here is a real HTTP server (axum) whose answer body fails after its first
//! chunk: hyper then cuts the connection mid-body, as a provider that crashes does.

use crate::common;

use std::io;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use common::{
    backend_errors, chat, count, error_of, eventually, global, post as post_to_gateway, start,
    Outcomes, KEY,
};
use futures_util::{stream, StreamExt};
use perf::Gateway;

const CHAT: &str = "/v1/chat/completions";
const RESPONSES: &str = "/v1/responses";

/// A provider whose answer, streamed or not, breaks off after its first chunk.
async fn broken_provider() -> String {
    async fn answer(body: Bytes) -> Response {
        let streamed = serde_json::from_slice::<serde_json::Value>(&body)
            .is_ok_and(|request| request["stream"] == true);
        let (content_type, first) = if streamed {
            (
                "text/event-stream",
                "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n",
            )
        } else {
            ("application/json", "{\"id\":\"chatcmpl-1\",\"choices\":[")
        };
        // The failure comes a moment after the first chunk, so that the headers and the first
        // chunk are on the wire before the connection is cut.
        let chunks = stream::iter([Ok(Bytes::from(first)), Err(())]).then(|chunk| async move {
            if chunk.is_err() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            chunk.map_err(|()| io::Error::other("the provider crashed"))
        });
        Response::builder()
            .header("content-type", content_type)
            .body(Body::from_stream(chunks))
            .expect("a valid response")
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route("/v1/chat/completions", post(answer));
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/v1")
}

/// Waits for the one request sent since `before` to end, and checks it counted as an `error`.
async fn assert_one_error_since(before: Outcomes) {
    assert!(eventually(|| Outcomes::of(CHAT).since(before).total() == 1).await);
    let after = Outcomes::of(CHAT).since(before);
    assert_eq!(
        (after.error, after.cancelled, after.completed),
        (1, 0, 0),
        "{after:?}"
    );
}

async fn gateway_before_broken_provider() -> Gateway {
    let upstream = broken_provider().await;
    start(&["--upstream", &upstream, "--provider", "broken"]).await
}

/// A provider that breaks off mid-answer, as the client sees it and as it is counted. One test,
/// so that the two requests' outcomes are told apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_breaks_off_makes_error_requests() {
    common::alone!();
    let gateway = gateway_before_broken_provider().await;

    // Not streamed: a 502 for the client, and an `error` for the metrics, though the handler
    // read the answer through a tracked stream that its `?` dropped.
    let before = Outcomes::of(CHAT);
    let response = post_to_gateway(
        &gateway,
        "/chat/completions",
        Some(KEY),
        chat("json", false),
    )
    .await;
    error_of(response, 502).await;
    assert_one_error_since(before).await;
    let labels = [
        ("provider", "broken"),
        ("model", "json"),
        ("endpoint", CHAT),
    ];
    assert_eq!(
        count(global(), "backend_ttfb_seconds", &labels),
        1,
        "the headers came"
    );
    assert_eq!(backend_errors("broken", "json", CHAT, "broken_off"), 1);

    // Streamed: the status went out, so the client gets an SSE `error` event, and the request
    // counts as an `error`, not `completed`.
    let before = Outcomes::of(CHAT);
    let response =
        post_to_gateway(&gateway, "/chat/completions", Some(KEY), chat("sse", true)).await;
    assert_eq!(response.status(), 200);
    let body = response
        .bytes()
        .await
        .expect("the gateway ends its stream cleanly");
    let events = common::sse_events(&body);
    let last = events.last().expect("events");
    assert_eq!(last.event.as_deref(), Some("error"), "{events:?}");
    assert_one_error_since(before).await;
    let labels = [("provider", "broken"), ("model", "sse"), ("endpoint", CHAT)];
    assert_eq!(count(global(), "streaming_duration_seconds", &labels), 1);
    assert_eq!(backend_errors("broken", "sse", CHAT, "broken_off"), 1);
    gateway.shutdown().await;
}

/// An anonymous client with a malformed body gets a 401, and the gateway never parses it:
/// `auth_validation` comes first. (On `/v1/responses`, apart from the other test's requests.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_is_checked_before_the_body_is_parsed() {
    common::alone!();
    let gateway = start(common::FAST_MOCK).await;
    let stage = |stage| {
        count(
            global(),
            "request_stage_duration_seconds",
            &[("stage", stage), ("endpoint", RESPONSES)],
        )
    };
    let (parsed, checked) = (stage("request_parsing"), stage("auth_validation"));
    let response = post_to_gateway(&gateway, "/responses", None, "{ not json").await;
    error_of(response, 401).await;
    assert_eq!(stage("auth_validation"), checked + 1);
    assert_eq!(
        stage("request_parsing"),
        parsed,
        "an anonymous body is not parsed"
    );

    // With the key, the same body is parsed, and is a 400.
    let response = post_to_gateway(&gateway, "/responses", Some(KEY), "{ not json").await;
    error_of(response, 400).await;
    assert_eq!(stage("request_parsing"), parsed + 1);
    gateway.shutdown().await;
}
