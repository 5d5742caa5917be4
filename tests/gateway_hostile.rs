//! Hostile input and faults against the example gateway, each with exact counts:
//!
//! * model names of any bytes (quotes, backslashes, newlines, NUL, 5 kB, odd Unicode) keep
//!   `/metrics` valid for `promtool check metrics` and for a Rust-side parser, and come back
//!   byte for byte (cut to 128 bytes); bodies with invalid JSON escapes are 400s;
//! * a client that hangs up mid-stream, or gives up while the provider has not answered, ends
//!   its request once, as `cancelled`, and releases it (the gateway and the mock shut down at
//!   once);
//! * a panic in a stage is a 500, counted once as `error`; a panic in a response stream breaks
//!   that stream off, counted once as `error`, its streaming recorded once; the gateway serves
//!   the next request exactly;
//! * 16-way concurrent load of 400 requests gives 400 observations in each family;
//! * a stress test with random client cancellation (seeded: `PERF_STRESS_SEED`) proves that
//!   every request that reached its handler is counted exactly once;
//! * `/metrics` on a separate listener, behind a bearer token.
//!
//! The tests count requests of the same endpoints in the one global registry of this process,
//! so they take turns (`common::turn`) and assert on the difference of the counts before and
//! after.

mod common;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::{IntoResponse, Response};
use axum::routing::post as post_route;
use axum::Router;
use clap::Parser;
use common::{
    chat, client, count, error_of, eventually, get, post, promtool_check_metrics, promtool_or_skip,
    responses, start, turn, Outcomes, KEY,
};
use futures_util::{stream, StreamExt};
use perf::gateway::error::ApiError;
use perf::gateway::handlers::App;
use perf::{Config, Gateway};
use perf_runtime::metrics::MAX_LABEL_LEN;
use perf_runtime::{perf_backend, perf_endpoint, perf_stage, perf_stream};
use serde_json::json;

const CHAT: &str = "/v1/chat/completions";
const RESPONSES: &str = "/v1/responses";
const STAGES: [&str; 5] = [
    "request_parsing",
    "auth_validation",
    "request_preparation",
    "backend_fetch",
    "stream_processing",
];

/// A mock that answers at once: 2 chunks, no delay.
const ZERO_MOCK: &[&str] = &[
    "--mock-ttfb-ms",
    "0",
    "--mock-chunks",
    "2",
    "--mock-chunk-interval-ms",
    "0",
    "--mock-jitter-ms",
    "0",
];

fn stage_count(endpoint: &str, stage: &str) -> u64 {
    count(
        "request_stage_duration_seconds",
        &[("stage", stage), ("endpoint", endpoint)],
    )
}

fn stage_counts(endpoint: &str) -> [u64; 5] {
    STAGES.map(|stage| stage_count(endpoint, stage))
}

fn frontend_count(endpoint: &str) -> u64 {
    count("frontend_processing_seconds", &[("endpoint", endpoint)])
}

/// `(backend_ttfb count, streaming_duration count)` of `model` at `endpoint` (provider mock).
fn backend_counts(endpoint: &str, model: &str) -> (u64, u64) {
    let labels = [
        ("provider", "mock"),
        ("model", model),
        ("endpoint", endpoint),
    ];
    (
        count("backend_ttfb_seconds", &labels),
        count("streaming_duration_seconds", &labels),
    )
}

fn diff<const N: usize>(after: [u64; N], before: [u64; N]) -> [u64; N] {
    std::array::from_fn(|i| after[i] - before[i])
}

// ---------------------------------------------------------------------------------------------
// 1–2. Hostile label bytes
// ---------------------------------------------------------------------------------------------

/// Model names a client may send (valid JSON strings), each distinct in its first 128 bytes.
fn hostile_models() -> Vec<String> {
    let mut models: Vec<String> = [
        "gpt\"4o",
        "back\\slash\\",
        "new\nline\n",
        "nul\0byte",
        "\\\"\n\0",
        "brace} value=\"1\",le=\"+Inf\"",
        "# HELP not_a_comment",
        "# TYPE x counter\nx 1",
        "tab\tcarriage\rreturn",
        "ünïcødé 🚀",
        "\u{202e}right-to-left override",
        "zero\u{200b}width\u{200d}joiner",
        "\u{feff}byte order mark",
        "line\u{2028}para\u{2029}separators",
        "combining e\u{301}\u{301}\u{301}\u{20dd}",
        "nonchars \u{fffe}\u{ffff}\u{10ffff}",
        "del \u{7f} c1 \u{85}\u{9b}",
        "\\n literally",
        "{}=,\"\"",
        "\u{1}\u{2}\u{1b}[31mred",
    ]
    .iter()
    .map(|m| m.to_string())
    .collect();
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
    let _turn = turn().await;
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
    assert_eq!(
        chat_outcomes,
        Outcomes {
            completed: sent,
            error: rejected.len() as u64,
            cancelled: 0
        }
    );
    assert_eq!(
        Outcomes::of(RESPONSES).since(before.1),
        Outcomes {
            completed: sent - 1,
            error: 0,
            cancelled: 0
        }
    );

    // /metrics over HTTP: valid for promtool and for the Rust-side parser.
    let (status, text) = get(&gateway.metrics_url(), None).await;
    assert_eq!(status, 200);
    if let Some(promtool) = promtool {
        promtool_check_metrics(&promtool, &text);
    }
    let samples =
        common::runtime::check_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
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
// 3. Cancellation
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_hanging_up_mid_stream_is_cancelled_once() {
    let _turn = turn().await;
    // 400 chunks, 50 ms apart: 20 s if read to the end.
    let gateway = start(&[
        "--mock-ttfb-ms",
        "0",
        "--mock-chunks",
        "400",
        "--mock-chunk-interval-ms",
        "50",
        "--mock-jitter-ms",
        "0",
    ])
    .await;
    let model = "hang-up-mid-stream";
    let before = (Outcomes::of(CHAT), stage_counts(CHAT), frontend_count(CHAT));

    let mut response = post(&gateway, "/chat/completions", Some(KEY), chat(model, true)).await;
    assert_eq!(response.status(), 200);
    assert!(response.chunk().await.expect("a first chunk").is_some());
    drop(response); // the client hangs up

    let ended = || Outcomes::of(CHAT).since(before.0).total() == 1;
    assert!(eventually(|| ended() && backend_counts(CHAT, model).1 == 1).await);
    // Nothing more comes later.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        Outcomes::of(CHAT).since(before.0),
        Outcomes {
            completed: 0,
            error: 0,
            cancelled: 1
        }
    );
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
    assert_eq!(frontend_count(CHAT) - before.2, 1, "the request ended once");

    // Released: nothing holds the gateway's connection or its stream from the mock, so both
    // servers shut down gracefully at once, not after the 20 s of the stream.
    let stopped = tokio::time::timeout(Duration::from_secs(10), gateway.shutdown()).await;
    assert!(stopped.is_ok(), "a connection was still open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_giving_up_before_the_first_byte_is_cancelled_without_ttfb() {
    let _turn = turn().await;
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
    let before = (Outcomes::of(CHAT), stage_counts(CHAT), frontend_count(CHAT));

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
    assert!(eventually(|| stage_count(CHAT, "request_preparation") == before.1[2] + 1).await);
    request.abort();
    assert!(request.await.is_err_and(|e| e.is_cancelled()));

    assert!(eventually(|| Outcomes::of(CHAT).since(before.0).total() == 1).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        Outcomes::of(CHAT).since(before.0),
        Outcomes {
            completed: 0,
            error: 0,
            cancelled: 1
        }
    );
    assert_eq!(backend_counts(CHAT, model), (0, 0), "no TTFB, no streaming");
    assert_eq!(
        diff(stage_counts(CHAT), before.1),
        [1, 1, 1, 1, 0],
        "the backend wait is a backend_fetch stage; no stream_processing"
    );
    assert_eq!(
        frontend_count(CHAT),
        before.2,
        "a cancelled request has no end"
    );

    // Released: the gateway dropped its call to the provider, so the mock's 30 s wait holds
    // no connection open.
    let stopped = tokio::time::timeout(Duration::from_secs(10), gateway.shutdown()).await;
    assert!(stopped.is_ok(), "a connection was still open");
}

// ---------------------------------------------------------------------------------------------
// 4. Panics
// ---------------------------------------------------------------------------------------------

const PANIC_IN_STAGE: &str = "/test/panic-in-stage";
const PANIC_IN_STREAM: &str = "/test/panic-in-stream";

/// A handler of the test's own, served by the gateway next to its API: it panics in its
/// `request_preparation` stage when the body says so.
#[perf_endpoint("/test/panic-in-stage")]
async fn panic_in_stage(body: Bytes) -> Result<Response, ApiError> {
    #[perf_stage(request_parsing)]
    let request: serde_json::Value = serde_json::from_slice(&body)?;
    prepare(&request);
    Ok("prepared".into_response())
}

#[perf_stage(request_preparation)]
fn prepare(request: &serde_json::Value) {
    assert!(
        request["panic"] != true,
        "request_preparation panicked on purpose"
    );
}

/// A handler whose response stream panics at its second chunk when the body says so.
#[perf_endpoint("/test/panic-in-stream")]
async fn panic_in_stream(body: Bytes) -> Result<Response, ApiError> {
    #[perf_stage(request_parsing)]
    let request: serde_json::Value = serde_json::from_slice(&body)?;
    let panics = request["panic"] == true;
    #[perf_backend(provider = "test", model = "panic-in-stream")]
    let () = std::future::ready(()).await;
    // A pause before each later chunk: the status and the first chunk go out before it.
    #[perf_stream]
    let chunks = stream::iter(0..3).then(move |i| async move {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!(panics && i == 1), "the stream panicked on purpose");
        Ok::<_, Infallible>(Bytes::from(format!("chunk {i}\n")))
    });
    Ok(Body::from_stream(chunks).into_response())
}

async fn start_with_test_routes(args: &[&str]) -> Gateway {
    let mut argv = vec!["gateway", "--listen", "127.0.0.1:0", "--api-key", KEY];
    argv.extend_from_slice(args);
    let routes: Router<App> = Router::new()
        .route(PANIC_IN_STAGE, post_route(panic_in_stage))
        .route(PANIC_IN_STREAM, post_route(panic_in_stream));
    Gateway::start_with_routes(&Config::parse_from(argv), routes)
        .await
        .expect("the gateway starts")
}

async fn post_to(gateway: &Gateway, path: &str, body: serde_json::Value) -> reqwest::Response {
    client()
        .post(format!("http://{}{path}", gateway.addr()))
        .body(body.to_string())
        .send()
        .await
        .expect("the gateway answers")
}

/// A plain chat request through the gateway's own handler, recorded exactly.
async fn one_good_chat(gateway: &Gateway, model: &str) {
    let before = (Outcomes::of(CHAT), stage_counts(CHAT));
    let response = post(gateway, "/chat/completions", Some(KEY), chat(model, true)).await;
    assert_eq!(response.status(), 200);
    response.bytes().await.expect("the whole stream");
    assert!(eventually(|| Outcomes::of(CHAT).since(before.0).total() == 1).await);
    assert_eq!(Outcomes::of(CHAT).since(before.0).completed, 1);
    assert_eq!(diff(stage_counts(CHAT), before.1), [1; 5]);
    assert_eq!(backend_counts(CHAT, model), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_a_stage_is_a_500_counted_once_as_an_error() {
    let _turn = turn().await;
    let gateway = start_with_test_routes(ZERO_MOCK).await;
    let ep = PANIC_IN_STAGE;

    let response = post_to(&gateway, ep, json!({"panic": true})).await;
    let error = error_of(response, 500).await;
    assert_eq!(error["error"]["type"], "server_error");
    assert!(
        !error["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("on purpose"),
        "the panic message stays on the gateway"
    );
    assert_eq!(
        Outcomes::of(ep),
        Outcomes {
            completed: 0,
            error: 1,
            cancelled: 0
        }
    );
    assert_eq!(stage_count(ep, "request_parsing"), 1);
    assert_eq!(
        stage_count(ep, "request_preparation"),
        1,
        "the panicking stage is recorded once, up to the panic"
    );
    assert_eq!(frontend_count(ep), 0, "a panicked request has no end");

    // The same handler, without the panic: recorded exactly.
    let response = post_to(&gateway, ep, json!({"panic": false})).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "prepared");
    assert_eq!(
        Outcomes::of(ep),
        Outcomes {
            completed: 1,
            error: 1,
            cancelled: 0
        }
    );
    assert_eq!(stage_count(ep, "request_preparation"), 2);
    assert_eq!(frontend_count(ep), 1);

    // The gateway's own endpoints are unaffected.
    one_good_chat(&gateway, "after-a-panic-in-a-stage").await;
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_a_stream_breaks_it_off_counted_once_as_an_error() {
    let _turn = turn().await;
    let gateway = start_with_test_routes(ZERO_MOCK).await;
    let ep = PANIC_IN_STREAM;
    let labels = [
        ("provider", "test"),
        ("model", "panic-in-stream"),
        ("endpoint", ep),
    ];

    let response = post_to(&gateway, ep, json!({"panic": true})).await;
    assert_eq!(response.status(), 200, "the status went before the panic");
    assert!(
        response.bytes().await.is_err(),
        "the stream is broken off, not ended"
    );
    assert!(eventually(|| Outcomes::of(ep).total() == 1).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        Outcomes::of(ep),
        Outcomes {
            completed: 0,
            error: 1,
            cancelled: 0
        }
    );
    assert_eq!(count("backend_ttfb_seconds", &labels), 1);
    assert_eq!(
        count("streaming_duration_seconds", &labels),
        1,
        "streaming recorded once, up to the panic"
    );
    assert_eq!(stage_count(ep, "stream_processing"), 1);
    assert_eq!(
        frontend_count(ep),
        1,
        "the handler had returned before its stream panicked: its front end ran in full"
    );

    let response = post_to(&gateway, ep, json!({"panic": false})).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().await.unwrap(),
        "chunk 0\nchunk 1\nchunk 2\n"
    );
    assert!(eventually(|| Outcomes::of(ep).completed == 1).await);
    assert_eq!(
        Outcomes::of(ep),
        Outcomes {
            completed: 1,
            error: 1,
            cancelled: 0
        }
    );
    assert_eq!(count("streaming_duration_seconds", &labels), 2);
    assert_eq!(frontend_count(ep), 2);

    one_good_chat(&gateway, "after-a-panic-in-a-stream").await;
    gateway.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// 5. Concurrency
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_concurrent_clients_400_requests_400_observations() {
    let _turn = turn().await;
    let gateway = start(ZERO_MOCK).await;
    let model = "load-16x400";
    const REQUESTS: u64 = 400;
    let before = (Outcomes::of(CHAT), stage_counts(CHAT), frontend_count(CHAT));

    let gateway_ref = &gateway;
    stream::iter(0..REQUESTS)
        .map(|i| async move {
            let response = post(
                gateway_ref,
                "/chat/completions",
                Some(KEY),
                chat(model, i % 2 == 0),
            )
            .await;
            assert_eq!(response.status(), 200);
            response.bytes().await.expect("the whole answer");
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;

    assert!(eventually(|| Outcomes::of(CHAT).since(before.0).total() == REQUESTS).await);
    assert_eq!(
        Outcomes::of(CHAT).since(before.0),
        Outcomes {
            completed: REQUESTS,
            error: 0,
            cancelled: 0
        }
    );
    assert_eq!(backend_counts(CHAT, model), (REQUESTS, REQUESTS));
    assert_eq!(diff(stage_counts(CHAT), before.1), [REQUESTS; 5]);
    assert_eq!(frontend_count(CHAT) - before.2, REQUESTS);
    gateway.shutdown().await;
}

/// xorshift64: a few lines of seeded randomness, the same on every machine.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        XorShift(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What the clients of the stress test saw.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    /// Requests sent.
    sent: u64,
    /// Answers read to their end.
    read_whole: u64,
    /// Answers given up on after their status.
    dropped_after_status: u64,
    /// Requests given up on at a random time (maybe before the gateway even read them).
    dropped_at_random: u64,
}

impl std::ops::AddAssign for Seen {
    fn add_assign(&mut self, other: Seen) {
        self.sent += other.sent;
        self.read_whole += other.read_whole;
        self.dropped_after_status += other.dropped_after_status;
        self.dropped_at_random += other.dropped_at_random;
    }
}

const STRESS_MODELS: [&str; 3] = ["stress-a", "stress-b", "stress-c"];

/// One client: `requests` requests one after the other. Chat requests are read whole or given
/// up on after their status (at once, or after a few chunks): every one reached its handler.
/// Responses requests are given up on at a random time, from before the gateway reads them to
/// after their end.
async fn stress_client(gateway: &Gateway, seed: u64, requests: u64) -> (Seen, Seen) {
    let mut rng = XorShift::new(seed);
    let (mut chat_seen, mut responses_seen) = (Seen::default(), Seen::default());
    for _ in 0..requests {
        let model = STRESS_MODELS[rng.below(3) as usize];
        let stream = rng.below(2) == 0;
        if rng.below(2) == 0 {
            chat_seen.sent += 1;
            let mut response =
                post(gateway, "/chat/completions", Some(KEY), chat(model, stream)).await;
            assert_eq!(response.status(), 200);
            match rng.below(3) {
                0 => {
                    response.bytes().await.expect("the whole answer");
                    chat_seen.read_whole += 1;
                }
                1 => {
                    drop(response);
                    chat_seen.dropped_after_status += 1;
                }
                _ => {
                    let mut whole = false;
                    for _ in 0..=rng.below(4) {
                        if response.chunk().await.expect("a chunk").is_none() {
                            whole = true;
                            break;
                        }
                    }
                    drop(response);
                    if whole {
                        chat_seen.read_whole += 1;
                    } else {
                        chat_seen.dropped_after_status += 1;
                    }
                }
            }
        } else {
            responses_seen.sent += 1;
            let limit = Duration::from_micros(rng.below(40_000));
            let exchange = async {
                let response =
                    post(gateway, "/responses", Some(KEY), responses(model, stream)).await;
                assert_eq!(response.status(), 200);
                response.bytes().await.expect("the whole answer");
            };
            match tokio::time::timeout(limit, exchange).await {
                Ok(()) => responses_seen.read_whole += 1,
                Err(_) => responses_seen.dropped_at_random += 1,
            }
        }
    }
    (chat_seen, responses_seen)
}

fn backend_totals(endpoint: &str) -> (u64, u64) {
    STRESS_MODELS
        .iter()
        .map(|model| backend_counts(endpoint, model))
        .fold((0, 0), |(t, s), (t1, s1)| (t + t1, s + s1))
}

/// The counts of `endpoint` that the stress test checks, as deltas from `before`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Recorded {
    outcomes: Outcomes,
    stages: [u64; 5],
    frontend: u64,
    ttfb: u64,
    streaming: u64,
}

impl Recorded {
    fn now(endpoint: &str) -> Recorded {
        let (ttfb, streaming) = backend_totals(endpoint);
        Recorded {
            outcomes: Outcomes::of(endpoint),
            stages: stage_counts(endpoint),
            frontend: frontend_count(endpoint),
            ttfb,
            streaming,
        }
    }

    fn since(self, before: Recorded) -> Recorded {
        Recorded {
            outcomes: self.outcomes.since(before.outcomes),
            stages: diff(self.stages, before.stages),
            frontend: self.frontend - before.frontend,
            ttfb: self.ttfb - before.ttfb,
            streaming: self.streaming - before.streaming,
        }
    }

    /// Every request that reached its handler has ended (parsing is its first stage, run in
    /// the same poll that starts it).
    fn settled(self) -> bool {
        self.outcomes.total() == self.stages[0] && self.frontend == self.streaming
    }
}

/// Waits (bounded) until the counts of `endpoint` have settled and stayed so for a while.
async fn settled(endpoint: &str, before: Recorded) -> Recorded {
    let mut stable = 0;
    let mut last = Recorded::now(endpoint).since(before);
    for _ in 0..500 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = Recorded::now(endpoint).since(before);
        stable = if now == last && now.settled() {
            stable + 1
        } else {
            0
        };
        last = now;
        if stable >= 10 {
            break;
        }
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stress_with_random_cancellation_counts_every_request_exactly_once() {
    let _turn = turn().await;
    const CLIENTS: u64 = 8;
    const REQUESTS_PER_CLIENT: u64 = 50;
    let seed = std::env::var("PERF_STRESS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_2024_u64);
    let gateway = start(&[
        "--mock-ttfb-ms",
        "5",
        "--mock-chunks",
        "6",
        "--mock-chunk-interval-ms",
        "3",
        "--mock-jitter-ms",
        "0",
    ])
    .await;
    let before = (Recorded::now(CHAT), Recorded::now(RESPONSES));

    let gateway_ref = &gateway;
    let clients = (0..CLIENTS).map(|client| {
        let seed = seed ^ (client + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        stress_client(gateway_ref, seed, REQUESTS_PER_CLIENT)
    });
    let (mut chat_seen, mut responses_seen) = (Seen::default(), Seen::default());
    for (c, r) in futures_util::future::join_all(clients).await {
        chat_seen += c;
        responses_seen += r;
    }
    assert_eq!(
        chat_seen.sent + responses_seen.sent,
        CLIENTS * REQUESTS_PER_CLIENT
    );

    let chat = settled(CHAT, before.0).await;
    let resp = settled(RESPONSES, before.1).await;
    let context = format!(
        "seed {seed} (PERF_STRESS_SEED); chat {chat_seen:?} {chat:?}; \
         responses {responses_seen:?} {resp:?}"
    );
    eprintln!("{context}");

    // Chat: every request reached its handler and got its status, so each was counted exactly
    // once, as completed or cancelled; each had a backend answer and a stream.
    let n = chat_seen.sent;
    assert_eq!(chat.outcomes.total(), n, "{context}");
    assert_eq!(chat.outcomes.error, 0, "{context}");
    assert!(chat.outcomes.completed >= chat_seen.read_whole, "{context}");
    assert!(
        chat.outcomes.cancelled <= chat_seen.dropped_after_status,
        "{context}"
    );
    assert_eq!(chat.stages, [n; 5], "{context}");
    assert_eq!(
        (chat.ttfb, chat.streaming, chat.frontend),
        (n, n, n),
        "{context}"
    );

    // Responses: a request given up on before the gateway read it never reached a handler;
    // every one that did (its parsing stage ran) is counted exactly once. The front-end stages
    // and the backend call run in one poll with the parsing; the streaming is recorded for
    // every request whose backend answered, and ends it.
    let reached = resp.stages[0];
    assert!(reached <= responses_seen.sent, "{context}");
    assert!(reached >= responses_seen.read_whole, "{context}");
    assert_eq!(resp.outcomes.total(), reached, "{context}");
    assert_eq!(resp.outcomes.error, 0, "{context}");
    assert!(
        resp.outcomes.completed >= responses_seen.read_whole,
        "{context}"
    );
    assert_eq!(resp.stages[1..4], [reached; 3], "{context}");
    assert_eq!(resp.ttfb, resp.streaming, "{context}");
    assert_eq!(resp.stages[4], resp.streaming, "{context}");
    assert_eq!(resp.frontend, resp.streaming, "{context}");
    assert!(resp.outcomes.completed <= resp.streaming, "{context}");

    // Both: requests sent = counted + given up on before reaching a handler.
    assert_eq!(
        chat.outcomes.total() + resp.outcomes.total() + (responses_seen.sent - reached),
        CLIENTS * REQUESTS_PER_CLIENT,
        "{context}"
    );
    gateway.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// 7. /metrics exposure
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_on_a_separate_listener_and_behind_a_token() {
    let _turn = turn().await;
    const TOKEN: &str = "scrape-s3cret";

    // Default: /metrics on the main listener, open.
    let open = start(ZERO_MOCK).await;
    let response = post(
        &open,
        "/chat/completions",
        Some(KEY),
        chat("exposure", false),
    )
    .await;
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap();
    assert_eq!(open.metrics_addr(), open.addr());
    let (status, text) = get(&open.metrics_url(), None).await;
    assert_eq!(status, 200);
    assert!(text.contains("# TYPE requests_total counter\n"), "{text}");

    // A token on the main listener.
    let guarded = start(&[&["--metrics-token", TOKEN], ZERO_MOCK].concat()).await;
    let url = guarded.metrics_url();
    assert_eq!(get(&url, None).await.0, 401);
    assert_eq!(get(&url, Some("wrong")).await.0, 401);
    assert_eq!(get(&url, Some(&format!("{TOKEN}x"))).await.0, 401);
    let (status, text) = get(&url, Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert!(text.contains("# TYPE requests_total counter\n"));
    let denied = client().get(&url).send().await.unwrap();
    assert_eq!(denied.headers()["www-authenticate"], "Bearer");
    error_of(denied, 401).await;
    // The API keys are not metrics tokens, nor the other way round.
    assert_eq!(get(&url, Some(KEY)).await.0, 401);
    let response = post(&guarded, "/chat/completions", Some(TOKEN), chat("x", false)).await;
    assert_eq!(response.status(), 401);

    // A separate listener, with a token: nothing of /metrics is left on the main one.
    let separate = start(
        &[
            &["--metrics-listen", "127.0.0.1:0", "--metrics-token", TOKEN][..],
            ZERO_MOCK,
        ]
        .concat(),
    )
    .await;
    assert_ne!(separate.metrics_addr(), separate.addr());
    let on_main = client()
        .get(format!("http://{}/metrics", separate.addr()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    error_of(on_main, 404).await;
    assert_eq!(get(&separate.metrics_url(), None).await.0, 401);
    let (status, text) = get(&separate.metrics_url(), Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert!(text.contains("# TYPE requests_total counter\n"));
    // The metrics listener serves nothing else.
    let api_on_metrics = client()
        .post(format!(
            "http://{}/v1/chat/completions",
            separate.metrics_addr()
        ))
        .bearer_auth(KEY)
        .body(chat("x", false))
        .send()
        .await
        .unwrap();
    error_of(api_on_metrics, 404).await;
    let response = post(
        &separate,
        "/chat/completions",
        Some(KEY),
        chat("exposure", false),
    )
    .await;
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap();

    // An empty token is refused at start.
    let empty = Config::parse_from(["gateway", "--listen", "127.0.0.1:0", "--metrics-token", " "]);
    let refused = Gateway::start(&empty).await.expect_err("an empty token");
    assert_eq!(refused.kind(), std::io::ErrorKind::InvalidInput);

    for gateway in [open, guarded, separate] {
        gateway.shutdown().await;
    }
}

/// The label settings of a process are those of its first gateway: another with the same
/// settings starts, one with other settings is refused with a clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_gateway_must_use_the_same_label_settings() {
    let first = start(ZERO_MOCK).await;
    let same = start(&[&["--model-label-cap", "500"], ZERO_MOCK].concat()).await;
    let other = Config::parse_from([
        "gateway",
        "--listen",
        "127.0.0.1:0",
        "--model-label-cap",
        "7",
    ]);
    let refused = Gateway::start(&other).await.expect_err("other settings");
    assert_eq!(refused.kind(), std::io::ErrorKind::InvalidInput);
    assert!(
        refused.to_string().contains("--model-label-cap 7"),
        "{refused}"
    );
    let allow = Config::parse_from([
        "gateway",
        "--listen",
        "127.0.0.1:0",
        "--allowed-models",
        "gpt-4o",
    ]);
    assert!(Gateway::start(&allow).await.is_err());
    first.shutdown().await;
    same.shutdown().await;
}
