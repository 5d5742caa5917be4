//! What the gateway does for the LLM-native numbers, over real HTTP: the mock opens its streams
//! as providers do (a role-only delta, a keep-alive comment) and reports a usage tests can
//! predict; the gateway asks for the usage of a streamed chat, counts it, and passes the usage
//! chunk on only to a client that asked; a whole answer's usage is counted and the answer
//! carries `Server-Timing` (unless `--no-server-timing`); `--upstream-retries` tries again on a
//! 5xx or a refused connection, never on a 4xx or a timeout. Timings are `gateway_llm_accuracy`'s.

use crate::common;

use common::{
    assert_lasted, backend_errors, chat, chat_with, client, count, error_of, global, mock_tokens,
    mock_usage, post, responses, server_timing, sse_events, start, FAST_MOCK, KEY,
    SERVER_TIMING_ENTRIES,
};
use serde_json::{json, Value};

const CHAT: &str = "/v1/chat/completions";
const RESPONSES: &str = "/v1/responses";
const PROMPT: &str = "Count my tokens, please: forty-four chars.";

/// `POST` `body` to the mock's `path` directly: its raw answer.
async fn mock_raw(gateway: &perf::Gateway, path: &str, body: String) -> String {
    let mock = gateway.mock().expect("a mock provider");
    let response = client()
        .post(format!("{}{path}", mock.base_url()))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("the mock answers");
    assert_eq!(response.status(), 200);
    response.text().await.expect("a text body")
}

#[tokio::test]
async fn the_mock_opens_streams_as_providers_do() {
    common::alone!();
    let gateway = start(FAST_MOCK).await;
    let usage = mock_usage(PROMPT.len() as u64, 5);

    let text = mock_raw(
        &gateway,
        "/chat/completions",
        chat_with("m", PROMPT, true, true),
    )
    .await;
    // The role-only delta first, then the keep-alive comment, both before any content.
    let (opening, rest) = text.split_once("\n\n").expect("events");
    let first: Value = serde_json::from_str(opening.strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(
        first["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    assert!(rest.starts_with(": keep-alive\n\n"), "{text}");
    let events = sse_events(text.as_bytes());
    let (done, chunks) = events.split_last().unwrap();
    assert_eq!(done.data, "[DONE]");
    let last: Value = serde_json::from_str(&chunks.last().unwrap().data).unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(
        last["usage"],
        json!({
            "prompt_tokens": usage.input, "completion_tokens": usage.output,
            "total_tokens": usage.input + usage.output,
            "prompt_tokens_details": {"cached_tokens": usage.cached_input},
            "completion_tokens_details": {"reasoning_tokens": usage.reasoning},
        })
    );
    for chunk in &chunks[..chunks.len() - 1] {
        let chunk: Value = serde_json::from_str(&chunk.data).unwrap();
        assert_eq!(
            chunk["usage"],
            Value::Null,
            "usage: null until the last chunk"
        );
    }
    // Without asking, no usage chunk.
    let text = mock_raw(
        &gateway,
        "/chat/completions",
        chat_with("m", PROMPT, true, false),
    )
    .await;
    assert!(!text.contains("\"usage\""), "{text}");

    let body = json!({"model": "m", "stream": true, "input": PROMPT}).to_string();
    let text = mock_raw(&gateway, "/responses", body).await;
    let kinds: Vec<String> = sse_events(text.as_bytes())
        .into_iter()
        .filter_map(|e| e.event)
        .collect();
    assert_eq!(kinds[..2], ["response.created", "response.in_progress"]);
    assert!(text.contains("\n\n: keep-alive\n\n"), "{text}");
    let completed = sse_events(text.as_bytes()).pop().unwrap();
    let completed: Value = serde_json::from_str(&completed.data).unwrap();
    let reported = &completed["response"]["usage"];
    assert_eq!(reported["input_tokens"], usage.input);
    assert_eq!(reported["output_tokens_details"]["reasoning_tokens"], 1);
}

#[tokio::test]
async fn streamed_usage_is_counted_and_reaches_only_a_client_that_asked() {
    common::alone!();
    let gateway = start(FAST_MOCK).await;
    let usage = mock_usage(PROMPT.len() as u64, 5);
    for (model, asked) in [("usage-not-asked", false), ("usage-asked", true)] {
        let body = chat_with(model, PROMPT, true, asked);
        let response = post(&gateway, "/chat/completions", Some(KEY), body).await;
        assert_eq!(response.status(), 200);
        let events = sse_events(&response.bytes().await.unwrap());
        let usage_chunks: Vec<Value> = events
            .iter()
            .filter_map(|e| serde_json::from_str::<Value>(&e.data).ok())
            .filter(|chunk| chunk["usage"].is_object())
            .collect();
        assert_eq!(
            usage_chunks.len(),
            usize::from(asked),
            "{model}: {events:?}"
        );
        assert!(
            common::eventually(|| mock_tokens(model, CHAT) == usage).await,
            "{model}: counted {:?}, reported {usage:?}",
            mock_tokens(model, CHAT)
        );
        // One TTFT, and a gap between each two of the five words (recorded together when the
        // stream ends, just after its client has read the last byte).
        let labels = [("provider", "mock"), ("model", model), ("endpoint", CHAT)];
        assert_eq!(count(global(), "backend_ttft_seconds", &labels), 1);
        assert!(
            common::eventually(|| count(global(), "backend_chunk_gap_seconds", &labels) >= 4).await
        );
        assert_eq!(count(global(), "backend_chunk_gap_seconds", &labels), 4);
    }

    let response = post(
        &gateway,
        "/responses",
        Some(KEY),
        responses("usage-resp", true),
    )
    .await;
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap();
    let expected = mock_usage("Hi".len() as u64, 5);
    assert!(common::eventually(|| mock_tokens("usage-resp", RESPONSES) == expected).await);
    let labels = [
        ("provider", "mock"),
        ("model", "usage-resp"),
        ("endpoint", RESPONSES),
    ];
    assert_eq!(count(global(), "backend_ttft_seconds", &labels), 1);
    assert!(
        common::eventually(|| count(global(), "backend_chunk_gap_seconds", &labels) >= 4).await
    );
    assert_eq!(count(global(), "backend_chunk_gap_seconds", &labels), 4);
    gateway.shutdown().await;
}

#[tokio::test]
async fn whole_answers_count_their_usage_and_carry_server_timing() {
    common::alone!();
    let gateway = start(FAST_MOCK).await;
    let body = chat_with("whole-usage", PROMPT, false, false);
    let response = post(&gateway, "/chat/completions", Some(KEY), body).await;
    assert_eq!(response.status(), 200);
    let timing = server_timing(response.headers());
    let names: Vec<&str> = timing.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, SERVER_TIMING_ENTRIES);
    // The mock answers whole after 20 ms and 5 chunks of 5 ms.
    assert_lasted("backend", timing[3].1, 45.0);
    response.bytes().await.unwrap();
    let usage = mock_usage(PROMPT.len() as u64, 5);
    assert!(common::eventually(|| mock_tokens("whole-usage", CHAT) == usage).await);

    let response = post(
        &gateway,
        "/responses",
        Some(KEY),
        responses("whole-resp", false),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert!(server_timing(response.headers())
        .iter()
        .any(|(name, _)| name == "backend"));
    let usage = mock_usage(2, 5);
    assert!(common::eventually(|| mock_tokens("whole-resp", RESPONSES) == usage).await);

    // A streamed answer has no Server-Timing: its headers leave before the backend is done.
    let response = post(&gateway, "/chat/completions", Some(KEY), chat("m", true)).await;
    assert!(response.headers().get("server-timing").is_none());
    gateway.shutdown().await;

    let gateway = start(&[FAST_MOCK, &["--no-server-timing"]].concat()).await;
    let response = post(&gateway, "/chat/completions", Some(KEY), chat("m", false)).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("server-timing").is_none());
    gateway.shutdown().await;
}

/// Sends one whole chat request of `model`, checks its status, and gives the tries of `model`
/// so far: those answered (a TTFB each) and those failed (a `status` or `timeout` error each).
async fn tries(gateway: &perf::Gateway, model: &str, status: u16) -> (u64, u64) {
    let response = post(gateway, "/chat/completions", Some(KEY), chat(model, false)).await;
    assert_eq!(response.status().as_u16(), status, "{model}");
    response.bytes().await.unwrap();
    let labels = [("provider", "mock"), ("model", model), ("endpoint", CHAT)];
    let failed = ["status", "timeout"].map(|kind| backend_errors("mock", model, CHAT, kind));
    (
        count(global(), "backend_ttfb_seconds", &labels),
        failed.iter().sum(),
    )
}

#[tokio::test]
async fn retries_follow_5xx_and_refused_connections_only() {
    common::alone!();
    let args = ["--upstream-retries", "2", "--upstream-timeout-ms", "300"];
    let gateway = start(&[FAST_MOCK, &args].concat()).await;
    // A 5xx every time: three tries, three errors, a 502.
    assert_eq!(tries(&gateway, "fault:status-503", 502).await, (0, 3));
    // A 4xx is the client's to fix: one try, passed through.
    assert_eq!(tries(&gateway, "fault:status-429", 429).await, (0, 1));
    // No headers in time: the provider may be working on it; one try, a 504.
    assert_eq!(tries(&gateway, "fault:hang", 504).await, (0, 1));
    gateway.shutdown().await;

    // Every second answer of the mock fails: a retry answers it. Without retries, a 502.
    for (retries, status, second) in [("1", 200, (2, 1)), ("0", 502, (1, 1))] {
        let args = ["--mock-fail-every", "2", "--upstream-retries", retries];
        let gateway = start(&[FAST_MOCK, &args].concat()).await;
        let model = format!("every-second-{retries}");
        assert_eq!(tries(&gateway, &model, 200).await, (1, 0));
        assert_eq!(tries(&gateway, &model, status).await, second, "{retries}");
        gateway.shutdown().await;
    }

    // Nobody listens: each try is a connect error.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = format!("http://{}/v1", closed.local_addr().unwrap());
    drop(closed);
    let args = [
        "--upstream",
        &upstream,
        "--provider",
        "gone",
        "--upstream-retries",
        "1",
    ];
    let gateway = start(&args).await;
    let response = post(&gateway, "/chat/completions", Some(KEY), chat("m", true)).await;
    error_of(response, 502).await;
    assert_eq!(backend_errors("gone", "m", CHAT, "connect"), 2);
    gateway.shutdown().await;
}
