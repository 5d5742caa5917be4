//! The wire formats: OpenAI's chat completions and Responses API, streamed and not, through
//! the gateway and the mock over real HTTP; `/healthz` and `/metrics`.

use crate::common;

use common::{chat, client, post, responses, sse_events, start, FAST_MOCK, KEY};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing;
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// The fast mock's answer to `body` at `path` through a gateway, once checked to be a 200 of
/// `content_type`: every wire format's test reads its body from there.
async fn answer(path: &str, body: String, content_type: &str) -> Bytes {
    let gateway = start(FAST_MOCK).await;
    let response = post(&gateway, path, Some(KEY), body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], content_type);
    response.bytes().await.unwrap()
}

#[tokio::test]
async fn chat_completion_is_one_json_object() {
    common::alone!();
    let answer = answer(
        "/chat/completions",
        chat("wire-model", false),
        "application/json",
    );
    let body: Value = serde_json::from_slice(&answer.await).unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "wire-model");
    let choice = &body["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["finish_reason"], "stop");
    let text = choice["message"]["content"].as_str().unwrap();
    assert_eq!(text.split_whitespace().count(), 5);
    assert_eq!(body["usage"]["completion_tokens"], 5);
}

#[tokio::test]
async fn chat_stream_is_chunks_then_done() {
    common::alone!();
    let body = answer(
        "/chat/completions",
        chat("wire-model", true),
        "text/event-stream",
    )
    .await;
    let text = std::str::from_utf8(&body).unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let events = sse_events(&body);
    let (done, chunks) = events.split_last().unwrap();
    assert_eq!(done.data, "[DONE]");
    assert_eq!(
        chunks.len(),
        7,
        "the role-only delta, 5 content chunks and the finishing one"
    );
    let mut content = String::new();
    for (i, event) in chunks.iter().enumerate() {
        assert_eq!(event.event, None);
        let chunk: Value = serde_json::from_str(&event.data).unwrap();
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["model"], "wire-model");
        // The usage the gateway asked for on the client's behalf is not passed on.
        assert!(chunk.get("usage").is_none_or(Value::is_null), "{chunk}");
        let delta = &chunk["choices"][0]["delta"];
        if i == 0 {
            assert_eq!(delta, &json!({"role": "assistant", "content": ""}));
        }
        content.push_str(delta["content"].as_str().unwrap_or_default());
        let last = i == chunks.len() - 1;
        let finish = &chunk["choices"][0]["finish_reason"];
        assert_eq!(finish.as_str(), last.then_some("stop"));
    }
    assert_eq!(content.split_whitespace().count(), 5);
}

#[tokio::test]
async fn response_is_one_json_object() {
    common::alone!();
    let answer = answer(
        "/responses",
        responses("wire-model", false),
        "application/json",
    );
    let body: Value = serde_json::from_slice(&answer.await).unwrap();
    assert_eq!(body["object"], "response");
    assert_eq!(body["status"], "completed");
    assert_eq!(body["model"], "wire-model");
    let message = &body["output"][0];
    assert_eq!(message["type"], "message");
    assert_eq!(message["role"], "assistant");
    assert_eq!(message["content"][0]["type"], "output_text");
    assert!(message["content"][0]["text"].is_string());
    assert_eq!(body["usage"]["output_tokens"], 5);
}

#[tokio::test]
async fn responses_stream_is_typed_events() {
    common::alone!();
    let body = answer(
        "/responses",
        responses("wire-model", true),
        "text/event-stream",
    )
    .await;
    let events = sse_events(&body);
    let kinds: Vec<&str> = events.iter().filter_map(|e| e.event.as_deref()).collect();
    assert_eq!(kinds.len(), events.len(), "every event is named");
    assert_eq!(kinds[0], "response.created");
    assert_eq!(kinds.last(), Some(&"response.completed"));
    let deltas = kinds.iter().filter(|k| **k == "response.output_text.delta");
    assert_eq!(deltas.count(), 5);
    for (n, event) in events.iter().enumerate() {
        let data: Value = serde_json::from_str(&event.data).unwrap();
        assert_eq!(data["type"], event.event.as_deref().unwrap());
        assert_eq!(data["sequence_number"], n);
    }
    let completed: Value = serde_json::from_str(&events.last().unwrap().data).unwrap();
    assert_eq!(completed["response"]["status"], "completed");
    assert_eq!(completed["response"]["model"], "wire-model");
}

/// What a [`recording_provider`] received, a request a row: its path, `authorization` and body.
type Recorded = Vec<(String, String, Value)>;

/// A provider that records what it receives and answers a fixed completion.
async fn recording_provider() -> (SocketAddr, Arc<Mutex<Recorded>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let app = Router::new().route(
        "/v1/{*path}",
        routing::post(
            move |uri: Uri, headers: HeaderMap, body: Bytes| async move {
                let auth = headers["authorization"]
                    .to_str()
                    .unwrap_or_default()
                    .to_owned();
                let body = serde_json::from_slice(&body).unwrap_or_default();
                record
                    .lock()
                    .unwrap()
                    .push((uri.path().to_owned(), auth, body));
                Json(json!({"object": "chat.completion", "choices": []}))
            },
        ),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, seen)
}

/// What `POST /chat/completions` with `body` came to, through a gateway whose upstream is a
/// [`recording_provider`] with its own key: the client's status and what the provider received.
async fn through_to_recording_provider(body: &Value) -> (StatusCode, Recorded) {
    let (provider, seen) = recording_provider().await;
    let upstream = format!("http://{provider}/v1");
    let gateway = start(&["--upstream", &upstream, "--upstream-key", "sk-upstream"]).await;
    let response = post(&gateway, "/chat/completions", Some(KEY), body.to_string()).await;
    let seen = seen.lock().unwrap().clone();
    (response.status(), seen)
}

#[tokio::test]
async fn the_provider_gets_the_request_as_sent_with_its_own_key() {
    common::alone!();
    let body = json!({
        "model": "wire-model",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}], "name": "n"}],
        "temperature": 0.1,
        "user": "u",
    });
    let (status, seen) = through_to_recording_provider(&body).await;
    assert_eq!(status, 200);
    assert_eq!(
        seen,
        [(
            "/v1/chat/completions".to_owned(),
            "Bearer sk-upstream".to_owned(),
            body
        )]
    );
}

/// A streamed chat request reaches the provider asking for its usage (for the tokens), with
/// every other field as the client sent it.
#[tokio::test]
async fn a_streamed_chat_asks_the_provider_for_its_usage() {
    common::alone!();
    let mut body = json!({
        "model": "wire-model",
        "messages": [{"role": "user", "content": "Hi"}],
        "stream": true,
        "stream_options": {"future_option": 1},
    });
    // The recording provider answers JSON, not SSE: a 502, after the request was recorded.
    let (status, seen) = through_to_recording_provider(&body).await;
    assert_eq!(status, 502);
    body["stream_options"]["include_usage"] = json!(true);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].2, body);
}

#[tokio::test]
async fn health_and_metrics_answer() {
    common::alone!();
    let gateway = start(FAST_MOCK).await;
    // One answer first: the backend families have a series from the first call on.
    let response = post(&gateway, "/chat/completions", Some(KEY), chat("m", false)).await;
    assert_eq!(response.status(), 200);
    let base = format!("http://{}", gateway.addr());
    let health = client()
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), "ok");

    let metrics = client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    let content_type = metrics.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains("# TYPE backend_ttfb_seconds histogram"),
        "{text}"
    );
}
