//! Errors in the OpenAI error shape, with the right status: 401, 400, 413, 502, 404; and no
//! client input brings the gateway down.

use crate::common;

use common::{chat, error_of, post, responses, sse_events, start, FAST_MOCK, KEY};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[tokio::test]
async fn missing_or_wrong_key_is_401() {
    common::alone!();
    let gateway = start(FAST_MOCK).await;
    for path in ["/chat/completions", "/responses"] {
        let body = if path == "/responses" {
            responses("m", false)
        } else {
            chat("m", false)
        };
        let missing = post(&gateway, path, None, body.clone()).await;
        assert_eq!(missing.headers()["www-authenticate"], "Bearer");
        let error = error_of(missing, 401).await;
        assert_eq!(error["error"]["code"], "invalid_api_key");
        let wrong = post(&gateway, path, Some("not-the-key"), body).await;
        let error = error_of(wrong, 401).await;
        assert_eq!(error["error"]["type"], "invalid_request_error");
    }
}

#[tokio::test]
async fn bad_bodies_are_400() {
    common::alone!();
    let gateway = start(FAST_MOCK).await;
    let chat_bodies: &[&[u8]] = &[
        b"",
        b"{",
        b"not json",
        b"\xff\xfe\x00",
        b"null",
        b"[]",
        b"\"text\"",
        br#"{"messages":[{"role":"user","content":"hi"}]}"#,
        br#"{"model":"m"}"#,
        br#"{"model":7,"messages":[{"role":"user","content":"hi"}]}"#,
        br#"{"model":"m","messages":"hi"}"#,
        br#"{"model":"m","messages":[{"content":"hi"}]}"#,
        br#"{"model":"m","messages":[{"role":"user","content":5}]}"#,
        br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":"yes"}"#,
        br#"{"model":"m","messages":[]}"#,
        br#"{"model":"","messages":[{"role":"user","content":"hi"}]}"#,
    ];
    for body in chat_bodies {
        let response = post(&gateway, "/chat/completions", Some(KEY), body.to_vec()).await;
        let error = error_of(response, 400).await;
        assert_eq!(error["error"]["type"], "invalid_request_error", "{body:?}");
    }
    let responses_bodies: &[&[u8]] = &[
        br#"{"input":"hi"}"#,
        br#"{"model":"m"}"#,
        br#"{"model":"m","input":3}"#,
        br#"{"model":"m","input":"hi","stream":1}"#,
    ];
    for body in responses_bodies {
        let response = post(&gateway, "/responses", Some(KEY), body.to_vec()).await;
        error_of(response, 400).await;
    }
}

#[tokio::test]
async fn hostile_bodies_do_not_bring_the_gateway_down() {
    common::alone!();
    let gateway = start(FAST_MOCK).await;
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let long_model = chat(&"é".repeat(10_000), false);
    let control = chat("a\"b\n\\c\u{0}\u{7f}", true);
    for body in [deep, long_model, control] {
        let response = post(&gateway, "/chat/completions", Some(KEY), body).await;
        assert!(response.status() == 200 || response.status() == 400);
        let _ = response.bytes().await;
    }
    let ok = post(&gateway, "/chat/completions", Some(KEY), chat("m", false)).await;
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn body_over_the_limit_is_413() {
    common::alone!();
    let gateway = start(&[&["--max-body-bytes", "1024"], FAST_MOCK].concat()).await;
    let big = chat(&"x".repeat(4096), false);
    let response = post(&gateway, "/chat/completions", Some(KEY), big).await;
    let error = error_of(response, 413).await;
    assert_eq!(error["error"]["code"], "request_too_large");
    let small = post(&gateway, "/chat/completions", Some(KEY), chat("m", false)).await;
    assert_eq!(small.status(), 200);
}

#[tokio::test]
async fn unreachable_provider_is_502() {
    common::alone!();
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = format!("http://{}/v1", closed.local_addr().unwrap());
    drop(closed);
    let gateway = start(&["--upstream", &upstream]).await;
    for stream in [false, true] {
        let response = post(&gateway, "/chat/completions", Some(KEY), chat("m", stream)).await;
        let error = error_of(response, 502).await;
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains("provider unreachable"), "{message}");
        assert!(
            !message.contains("127.0.0.1"),
            "the provider's address stays private: {message}"
        );
    }
}

#[tokio::test]
async fn provider_error_is_502() {
    common::alone!();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = format!("http://{}/v1", listener.local_addr().unwrap());
    let failing = axum::Router::new().fallback(|| async {
        (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(serde_json::json!({"error": {"message": "model overloaded", "type": "server_error"}})),
        )
    });
    tokio::spawn(async move { axum::serve(listener, failing).await });
    let gateway = start(&["--upstream", &upstream]).await;
    let response = post(&gateway, "/responses", Some(KEY), responses("m", true)).await;
    let error = error_of(response, 502).await;
    let message = error["error"]["message"].as_str().unwrap();
    // The provider's status, not its text: that goes to the log
    // (tests/gateway/provider_secrets.rs).
    assert!(
        message.contains("the provider failed (500)") && !message.contains("model overloaded"),
        "{message}"
    );
}

#[tokio::test]
async fn a_stream_broken_off_by_the_provider_ends_with_an_error_event() {
    common::alone!();
    // A provider that sends one event, then drops the connection mid-body.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            let event = "data: {\"object\":\"chat.completion.chunk\"}\n\n";
            let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
            let chunk = format!("{head}{:x}\r\n{event}\r\n", event.len());
            let _ = socket.write_all(chunk.as_bytes()).await;
        }
    });
    let gateway = start(&["--upstream", &upstream]).await;
    let response = post(&gateway, "/chat/completions", Some(KEY), chat("m", true)).await;
    assert_eq!(response.status(), 200);
    let events = sse_events(&response.bytes().await.unwrap());
    assert_eq!(events.len(), 2, "{events:?}");
    let last = &events[1];
    assert_eq!(last.event.as_deref(), Some("error"));
    let error: serde_json::Value = serde_json::from_str(&last.data).unwrap();
    assert_eq!(error["error"]["code"], "bad_gateway");
}

#[tokio::test]
async fn unknown_route_is_404() {
    common::alone!();
    let gateway = start(FAST_MOCK).await;
    let response = post(&gateway, "/audio/speech", Some(KEY), "{}").await;
    error_of(response, 404).await;
}
