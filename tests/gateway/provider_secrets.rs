//! The gateway's secrets stay out of what it writes: a provider that quotes the gateway's own
//! key in its 401 (as OpenAI does: `Incorrect API key provided: ...`), or fails with a 5xx,
//! has its text logged (the key as a fingerprint) under the request's trace id, and the client
//! gets a message of the gateway's own naming that trace id; a 4xx the client can fix still
//! reaches it, known secrets redacted. The last test drives every misdeed of the fake provider
//! and greps every log line of this process, every answer and the banner for the keys.

use crate::common;

use std::sync::OnceLock;

use clap::Parser;
use common::{capture_logs, chat, client, logged_lines, responses, trace_id_of, FakeProvider, KEY};
use perf::gateway::banner::banner;
use perf::gateway::secrets::fingerprint;
use perf::{Config, Gateway};
use serde_json::Value;

const UPSTREAM_KEY: &str = "sk-UPSTREAM-SECRET-123";
const FILE_KEYS: [&str; 2] = ["client-key-from-file-1111", "client-key-from-file-2222"];
const METRICS_TOKEN: &str = "metrics-token-SECRET-4444";

/// Every secret the gateways of this file use.
fn secrets() -> Vec<&'static str> {
    let mut all = vec![UPSTREAM_KEY, METRICS_TOKEN, KEY];
    all.extend(FILE_KEYS);
    all
}

/// The configuration of this file's gateways: `--api-key KEY` and a key file, before the fake
/// provider `upstream` with `--upstream-key`, `/metrics` behind a token.
fn config(upstream: &str) -> Config {
    // Written once: the tests start their gateways at the same time.
    static PATH: OnceLock<String> = OnceLock::new();
    let path = PATH.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("perf-test-keys-{}", std::process::id()));
        let text = format!(
            "# the clients' keys\n{}\n\n{}\n",
            FILE_KEYS[0], FILE_KEYS[1]
        );
        std::fs::write(&path, text).expect("a temporary key file");
        path.to_string_lossy().into_owned()
    });
    Config::parse_from([
        "gateway",
        "--listen",
        "127.0.0.1:0",
        "--api-key",
        KEY,
        "--api-key-file",
        path,
        "--upstream",
        upstream,
        "--upstream-key",
        UPSTREAM_KEY,
        "--metrics-token",
        METRICS_TOKEN,
        "--provider",
        "echoing",
    ])
}

async fn start_echoing() -> (Gateway, Config, FakeProvider) {
    capture_logs();
    let elsewhere = FakeProvider::start(None).await;
    let provider = FakeProvider::start(Some(&elsewhere.origin)).await;
    let config = config(&provider.base_url());
    let gateway = Gateway::start(&config).await.expect("the gateway starts");
    (gateway, config, provider)
}

/// What a client saw of one exchange: the status, the headers and the body, as text.
struct Seen {
    status: u16,
    trace: String,
    /// The headers and the body.
    text: String,
    body: String,
}

impl Seen {
    fn message(&self) -> String {
        let body: Value = serde_json::from_str(&self.body).unwrap_or_default();
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// `POST {gateway}/v1{path}` with `key` and `body`: what the client saw.
async fn send(gateway: &Gateway, path: &str, key: &str, body: String) -> Seen {
    let response = client()
        .post(format!("{}{path}", gateway.base_url()))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("the gateway answers");
    let status = response.status().as_u16();
    let trace = trace_id_of(response.headers());
    let headers = format!("{:?}", response.headers());
    let body = response.text().await.expect("a whole body");
    Seen {
        status,
        trace,
        text: format!("{headers}\n{body}"),
        body,
    }
}

/// The log lines that name `trace`, after checking there is one.
fn logged_for(trace: &str) -> Vec<String> {
    let lines: Vec<String> = logged_lines()
        .into_iter()
        .filter(|line| line.contains(trace))
        .collect();
    assert!(!lines.is_empty(), "nothing logged for trace {trace}");
    lines
}

/// The provider's 401, 403 and 407 (its refusal of the gateway's key, quoted in its text), whole
/// or before a stream: a 502 with the gateway's own words and the trace id; the provider's text
/// in the log, the key there as its fingerprint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_gateway_key_is_logged_not_quoted() {
    common::alone!();
    let (gateway, _, _) = start_echoing().await;
    for (model, status) in [("echo-401", 401), ("echo-403-text", 403), ("echo-407", 407)] {
        for stream in [false, true] {
            let seen = send(
                &gateway,
                "/chat/completions",
                FILE_KEYS[0],
                chat(model, stream),
            )
            .await;
            assert_eq!(seen.status, 502, "{model}: {}", seen.text);
            let message = seen.message();
            let said = format!("the provider refused the gateway's credentials ({status})");
            assert!(message.contains(&said), "{model}: {message}");
            assert!(message.contains(&seen.trace), "{message}");
            assert!(!seen.text.contains("Incorrect API key"), "{}", seen.text);
            let lines = logged_for(&seen.trace);
            let quoted = format!(
                "Incorrect API key provided: Bearer {}",
                fingerprint(UPSTREAM_KEY)
            );
            assert!(
                lines
                    .iter()
                    .any(|l| l.starts_with("WARN") && l.contains(&quoted)),
                "{lines:?}"
            );
        }
    }
    gateway.shutdown().await;
}

/// A provider 5xx: the client learns that it failed, with which status; its text is logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_5xx_is_logged_not_quoted() {
    common::alone!();
    let (gateway, _, _) = start_echoing().await;
    for (model, status) in [("echo-500", 500), ("echo-503-text", 503)] {
        for (path, body) in [
            ("/chat/completions", chat(model, true)),
            ("/responses", responses(model, false)),
        ] {
            let seen = send(&gateway, path, KEY, body).await;
            assert_eq!(seen.status, 502, "{model}: {}", seen.text);
            let message = seen.message();
            assert!(
                message.starts_with(&format!("the provider failed ({status})")),
                "{message}"
            );
            assert!(message.contains(&seen.trace), "{message}");
            assert!(!seen.text.contains("Incorrect API key"), "{}", seen.text);
            let lines = logged_for(&seen.trace);
            assert!(
                lines
                    .iter()
                    .any(|l| l.contains(&format!("Status {status}."))),
                "{lines:?}"
            );
        }
    }
    gateway.shutdown().await;
}

/// A 4xx the client can fix (400, 404, 422) reaches it with its status and the provider's text,
/// any known secret in it as its fingerprint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_errors_pass_through_with_secrets_redacted() {
    common::alone!();
    let (gateway, _, _) = start_echoing().await;
    for (model, status) in [("echo-400", 400), ("echo-404-text", 404), ("echo-422", 422)] {
        let seen = send(&gateway, "/chat/completions", KEY, chat(model, false)).await;
        assert_eq!(seen.status, status, "{}", seen.text);
        let message = seen.message();
        let quoted = format!(
            "Incorrect API key provided: Bearer {}",
            fingerprint(UPSTREAM_KEY)
        );
        assert!(message.contains(&quoted), "{message}");
        assert!(!seen.text.contains(UPSTREAM_KEY), "{}", seen.text);
    }
    gateway.shutdown().await;
}

/// Every misdeed of the fake provider (redirects, echoed keys in 401s, 5xx, 4xx), plain
/// requests, a wrong client key, streamed or not: no key or token in any log line of this
/// process, in any answer a client saw, or in the banner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_any_log_line_answer_or_banner() {
    common::alone!();
    let (gateway, config, provider) = start_echoing().await;
    let models = [
        "ok",
        "redirect-away",
        "redirect-here",
        "echo-401",
        "echo-403-text",
        "echo-407",
        "echo-500",
        "echo-502-text",
        "echo-400",
        "echo-429-text",
    ];
    let mut seen = Vec::new();
    for model in models {
        for stream in [false, true] {
            for key in [KEY, FILE_KEYS[1]] {
                seen.push(send(&gateway, "/chat/completions", key, chat(model, stream)).await);
            }
            seen.push(
                send(
                    &gateway,
                    "/responses",
                    FILE_KEYS[0],
                    responses(model, stream),
                )
                .await,
            );
        }
    }
    seen.push(
        send(
            &gateway,
            "/chat/completions",
            "not-a-key",
            chat("ok", false),
        )
        .await,
    );
    assert_eq!(seen.iter().filter(|s| s.status == 200).count(), 6);
    assert_eq!(seen.last().map(|s| s.status), Some(401));
    // The provider did get its key: what is checked below is that it goes no further.
    assert!(provider
        .hits()
        .iter()
        .all(|hit| hit.authorization.as_deref() == Some("Bearer sk-UPSTREAM-SECRET-123")));

    let banner = banner(&config, &gateway, &Ok(1 << 20));
    let lines = logged_lines();
    assert!(
        lines.iter().any(|l| l.contains(&fingerprint(UPSTREAM_KEY))),
        "the provider's texts were logged: {lines:?}"
    );
    for secret in secrets() {
        for line in &lines {
            assert!(!line.contains(secret), "{secret:?} logged: {line}");
        }
        for answer in &seen {
            assert!(
                !answer.text.contains(secret),
                "{secret:?} answered: {}",
                answer.text
            );
        }
        assert!(
            !banner.contains(secret),
            "{secret:?} in the banner:\n{banner}"
        );
    }
    // The banner tells the keys apart by their fingerprints, and its curl sends $KEY.
    for key in [KEY, FILE_KEYS[0], FILE_KEYS[1], UPSTREAM_KEY] {
        assert!(banner.contains(&fingerprint(key)), "{banner}");
    }
    assert!(banner.contains("Bearer $KEY"), "{banner}");
    gateway.shutdown().await;
}

/// Without any key given, the gateway runs on the well-known demo key, which is no secret: the
/// banner shows it, so that its curl can be pasted as printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_banner_shows_the_demo_key_alone_in_full() {
    common::alone!();
    let config = Config::parse_from(["gateway", "--listen", "127.0.0.1:0"]);
    let gateway = Gateway::start(&config).await.expect("the gateway starts");
    let banner = banner(&config, &gateway, &Ok(1 << 20));
    assert!(banner.contains("Bearer demo-key"), "{banner}");
    assert!(!banner.contains("$KEY"), "{banner}");
    gateway.shutdown().await;
}
