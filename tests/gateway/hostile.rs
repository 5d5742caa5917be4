//! Hostile input against the example gateway, each with exact counts:
//!
//! * model names of any bytes (quotes, backslashes, newlines, NUL, 5 kB, odd Unicode) keep
//!   `/metrics` valid for `promtool check metrics` and for a Rust-side parser, and come back
//!   byte for byte (cut to 128 bytes); bodies with invalid JSON escapes are 400s;
//! * a client that hangs up mid-stream, or gives up while the provider has not answered, ends
//!   its request once, as `cancelled`, and releases it (the gateway and the mock shut down at
//!   once).
//!
//! Panics are in `panics.rs`, load and stress in `load.rs`, `/metrics` exposure in
//! `exposure.rs`. The tests count requests of the same endpoints in the global registry, so each
//! runs alone (`common::alone!`) and asserts on the difference of the counts before and after.

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{
    backend_counts, chat, client, diff, error_of, eventually, frontend_count, get, global, post,
    promtool_check_metrics, promtool_or_skip, responses, stage_count, stage_counts, start,
    start_steady, Outcomes, HOSTILE_LABEL_VALUES, KEY, ZERO_MOCK,
};
use perf_runtime::metrics::MAX_LABEL_LEN;

const CHAT: &str = "/v1/chat/completions";
const RESPONSES: &str = "/v1/responses";

// ---------------------------------------------------------------------------------------------
// Hostile label bytes
// ---------------------------------------------------------------------------------------------

/// Model names a client may send (valid JSON strings), each distinct in its first 128 bytes: the
/// kit's hostile label values, and names long enough to be cut.
fn hostile_models() -> Vec<String> {
    let mut models: Vec<String> = HOSTILE_LABEL_VALUES.iter().map(|m| m.to_string()).collect();
    // 5 kB names: ASCII, 2-byte, 4-byte characters, and a cut that would split one.
    models.push("a".repeat(5000));
    models.push("é".repeat(2500));
    models.push("🚀".repeat(1250));
    models.push(format!("x{}", "🚀".repeat(1250)));
    models.push(format!("\"{}", "\\".repeat(5000)));
    models.push(format!("\n{}", "\n\"".repeat(2500)));
    models
}

/// Bodies that are not valid JSON (or not a valid request) because of the model: all 400s.
fn rejected_bodies() -> Vec<Vec<u8>> {
    let messages = r#""messages":[{"role":"user","content":"Hi"}]"#;
    let mut bodies: Vec<Vec<u8>> = [
        r#""\q""#,           // unknown escape
        r#""\ud800""#,       // lone leading surrogate
        r#""\udc00x""#,      // lone trailing surrogate
        r#""\ud83d\u0041""#, // a surrogate pair that is not one
        r#""\u00zz""#,       // bad hex digits
        r#""\u12""#,         // short escape
        r#""unterminated"#,  // no closing quote
        "\"\"",              // empty model
        "\" \\n\\t \"",      // blank model
        "123",               // not a string
        "{\"a\":1}",         // not a string
        "null",
    ]
    .iter()
    .map(|model| format!("{{\"model\":{model},{messages}}}").into_bytes())
    .collect();
    // A raw control character and invalid UTF-8 inside the string.
    bodies.push(format!("{{\"model\":\"a\u{1}b\",{messages}}}").into_bytes());
    let mut invalid_utf8 = b"{\"model\":\"\xff\xfe\xc3\",".to_vec();
    invalid_utf8.extend_from_slice(messages.as_bytes());
    invalid_utf8.push(b'}');
    bodies.push(invalid_utf8);
    bodies
}

/// `value` cut as the runtime cuts label values: at most 128 bytes, on a character boundary.
fn cut(value: &str) -> &str {
    let mut end = value.len().min(MAX_LABEL_LEN);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    &value[..end]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_model_names_keep_the_exposition_valid() {
    common::alone!();
    let gateway = start(ZERO_MOCK).await;
    let promtool = promtool_or_skip("hostile_model_names_keep_the_exposition_valid");
    let before = (Outcomes::of(CHAT), Outcomes::of(RESPONSES));

    // Valid JSON escapes of awkward characters are valid model names too.
    let escaped = br#"{"model":"esc \u0000\"\\\/\b\f\n\r\t \ud83d\ude80","stream":true,"messages":[{"role":"user","content":"Hi"}]}"#;
    let response = post(&gateway, "/chat/completions", Some(KEY), escaped.to_vec()).await;
    assert_eq!(response.status(), 200);
    response.bytes().await.expect("the whole stream");
    let mut models = hostile_models();
    models.push("esc \0\"\\/\u{8}\u{c}\n\r\t 🚀".to_owned());

    // Every other name, streamed through chat and whole through responses.
    for model in &models[..models.len() - 1] {
        let streamed = post(&gateway, "/chat/completions", Some(KEY), chat(model, true)).await;
        assert_eq!(streamed.status(), 200, "{model:?}");
        streamed.bytes().await.expect("the whole stream");
        let whole = post(&gateway, "/responses", Some(KEY), responses(model, false)).await;
        assert_eq!(whole.status(), 200, "{model:?}");
        whole.bytes().await.expect("the whole answer");
    }
    let rejected = rejected_bodies();
    for body in &rejected {
        let response = post(&gateway, "/chat/completions", Some(KEY), body.clone()).await;
        let error = error_of(response, 400).await;
        assert_eq!(error["error"]["type"], "invalid_request_error");
    }

    // Each request ended once: the rejected ones as errors.
    let sent = models.len() as u64;
    assert!(
        eventually(
            || Outcomes::of(CHAT).since(before.0).total() == sent + rejected.len() as u64
                && Outcomes::of(RESPONSES).since(before.1).total() == sent - 1
        )
        .await
    );
    let chat_outcomes = Outcomes::of(CHAT).since(before.0);
    assert_eq!(chat_outcomes, Outcomes::new(sent, rejected.len() as u64, 0));
    assert_eq!(
        Outcomes::of(RESPONSES).since(before.1),
        Outcomes::new(sent - 1, 0, 0)
    );

    // /metrics over HTTP: valid for promtool and for the Rust-side parser.
    let (status, text) = get(&gateway.metrics_url(), None).await;
    assert_eq!(status, 200);
    if let Some(promtool) = promtool {
        promtool_check_metrics(&promtool, &text);
    }
    let samples = common::check_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(samples.len() > 100, "{} samples", samples.len());
    for sample in &samples {
        for (name, value) in &sample.labels {
            assert!(
                value.len() <= MAX_LABEL_LEN,
                "{name}={:?}… is {} bytes long",
                value.chars().take(20).collect::<String>(),
                value.len()
            );
        }
    }

    // Every name comes back byte for byte, cut to 128 bytes, one observation each.
    for (family, endpoint, expected) in [
        ("backend_ttfb_seconds_count", CHAT, &models[..]),
        ("streaming_duration_seconds_count", CHAT, &models[..]),
        (
            "backend_ttfb_seconds_count",
            RESPONSES,
            &models[..models.len() - 1],
        ),
        (
            "streaming_duration_seconds_count",
            RESPONSES,
            &models[..models.len() - 1],
        ),
    ] {
        let back: BTreeMap<&str, f64> = samples
            .iter()
            .filter(|s| s.name == family && s.label("endpoint") == Some(endpoint))
            .map(|s| (s.label("model").expect("a model label"), s.value))
            .collect();
        for model in expected {
            assert_eq!(
                back.get(cut(model)),
                Some(&1.0),
                "{family}{{endpoint={endpoint}}}: {:?}",
                cut(model)
            );
        }
    }
    gateway.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Cancellation
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_hanging_up_mid_stream_is_cancelled_once() {
    common::alone!();
    // 400 chunks, 50 ms apart: 20 s if read to the end.
    let gateway = start_steady((0, 400, 50), &[]).await;
    let model = "hang-up-mid-stream";
    let before = (
        Outcomes::of(CHAT),
        stage_counts(CHAT),
        frontend_count(global(), CHAT),
    );

    let mut response = post(&gateway, "/chat/completions", Some(KEY), chat(model, true)).await;
    assert_eq!(response.status(), 200);
    assert!(response.chunk().await.expect("a first chunk").is_some());
    drop(response); // the client hangs up

    let ended = || Outcomes::of(CHAT).since(before.0).total() == 1;
    assert!(eventually(|| ended() && backend_counts(CHAT, model).1 == 1).await);
    // Nothing more comes later.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(Outcomes::of(CHAT).since(before.0), Outcomes::new(0, 0, 1));
    assert_eq!(
        backend_counts(CHAT, model),
        (1, 1),
        "TTFB and streaming once"
    );
    assert_eq!(
        diff(stage_counts(CHAT), before.1),
        [1; 5],
        "every stage once"
    );
    assert_eq!(
        frontend_count(global(), CHAT) - before.2,
        1,
        "the request ended once"
    );

    // Released: nothing holds the gateway's connection or its stream from the mock, so both
    // servers shut down gracefully at once, not after the 20 s of the stream.
    let stopped = tokio::time::timeout(Duration::from_secs(10), gateway.shutdown()).await;
    assert!(stopped.is_ok(), "a connection was still open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_giving_up_before_the_first_byte_is_cancelled_without_ttfb() {
    common::alone!();
    // The provider takes 30 s to answer.
    let gateway = start(&[
        "--mock-ttfb-ms",
        "30000",
        "--mock-chunks",
        "2",
        "--mock-jitter-ms",
        "0",
    ])
    .await;
    let model = "gave-up-before-first-byte";
    let before = (
        Outcomes::of(CHAT),
        stage_counts(CHAT),
        frontend_count(global(), CHAT),
    );

    let url = format!("{}/chat/completions", gateway.base_url());
    let request = tokio::spawn(
        client()
            .post(url)
            .bearer_auth(KEY)
            .header("content-type", "application/json")
            .body(chat(model, true))
            .send(),
    );
    // The handler is waiting for the provider once its front-end stages are recorded (the
    // backend call starts right after, with no await in between); then the client gives up.
    assert!(
        eventually(|| stage_count(global(), CHAT, "request_preparation") == before.1[2] + 1).await
    );
    request.abort();
    assert!(request.await.is_err_and(|e| e.is_cancelled()));

    assert!(eventually(|| Outcomes::of(CHAT).since(before.0).total() == 1).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(Outcomes::of(CHAT).since(before.0), Outcomes::new(0, 0, 1));
    assert_eq!(backend_counts(CHAT, model), (0, 0), "no TTFB, no streaming");
    assert_eq!(
        diff(stage_counts(CHAT), before.1),
        [1, 1, 1, 1, 0],
        "the backend wait is a backend_fetch stage; no stream_processing"
    );
    assert_eq!(
        frontend_count(global(), CHAT),
        before.2,
        "a cancelled request has no end"
    );

    // Released: the gateway dropped its call to the provider, so the mock's 30 s wait holds
    // no connection open.
    let stopped = tokio::time::timeout(Duration::from_secs(10), gateway.shutdown()).await;
    assert!(stopped.is_ok(), "a connection was still open");
}
