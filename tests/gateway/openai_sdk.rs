//! The gateway as OpenAI's official Python SDK (PyPI `openai`) sees it, driven step by step by
//! `tests/python/openai_sdk.py`: the models listed, chat completions whole and streamed (with
//! and without `stream_options.include_usage`), the Responses API whole and streamed,
//! embeddings (base64, the SDK's default, and floats), a wrong key (`AuthenticationError`) and
//! a provider's 429 (`RateLimitError`). After each step, a scrape of `/metrics` made right away
//! shows the request under its endpoint and outcome, and the tokens the mock reported.
//!
//! Without python3 and `openai` the test prints `SKIPPED` and passes, except under `CI=true`.

use crate::common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use common::{mock_usage, python_with_or_skip, scrape, start, FAST_MOCK, KEY};
use serde_json::{json, Value};

const TEST: &str = "gateway_openai_sdk";
const CHAT: &str = "/v1/chat/completions";
const RESPONSES: &str = "/v1/responses";
const EMBEDDINGS: &str = "/v1/embeddings";
const MODELS: &str = "/v1/models";
/// The script's prompt (44 bytes) and the text of FAST_MOCK's 5 chunks.
const PROMPT_BYTES: u64 = 44;
const TEXT: &str = "This answer comes from the";

/// The SDK script, running: one step per line.
struct Sdk {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Sdk {
    fn start(python: &std::path::Path, base_url: &str) -> Sdk {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/openai_sdk.py");
        let mut child = Command::new(python)
            .args([script, base_url, KEY])
            .env("NO_PROXY", "127.0.0.1,localhost")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 starts");
        let stdin = child.stdin.take().expect("a piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("a piped stdout"));
        Sdk {
            child,
            stdin,
            stdout,
        }
    }

    /// Runs `step` in the script: what the SDK returned.
    fn step(&mut self, step: &str) -> Value {
        writeln!(self.stdin, "{step}").expect("the script reads its steps");
        self.stdin.flush().expect("the step is sent");
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("the script answers");
        assert!(
            !line.is_empty(),
            "{step}: the script ended (its stderr is above)"
        );
        eprintln!("{step}: {}", line.trim_end());
        let answer: Value = serde_json::from_str(&line).expect("a JSON line");
        assert!(answer.get("exception").is_none(), "{step}: {answer}");
        answer
    }
}

impl Drop for Sdk {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The values the scrapes must show, by family and exact label set (a missing series is 0).
#[derive(Default)]
struct Expected(BTreeMap<(String, Vec<(String, String)>), u64>);

impl Expected {
    fn add(&mut self, name: &str, labels: &[(&str, &str)], n: u64) {
        let mut labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        labels.sort();
        *self.0.entry((name.to_owned(), labels)).or_default() += n;
    }

    fn request(&mut self, endpoint: &str, outcome: &str) {
        for other in ["completed", "error", "cancelled"] {
            let n = u64::from(other == outcome);
            self.add(
                "requests_total",
                &[("endpoint", endpoint), ("outcome", other)],
                n,
            );
        }
    }

    fn tokens(&mut self, model: &str, endpoint: &str, usage: perf_runtime::Usage) {
        let types = [
            ("input", usage.input),
            ("output", usage.output),
            ("cached_input", usage.cached_input),
            ("reasoning", usage.reasoning),
        ];
        for (kind, n) in types {
            let labels = [
                ("provider", "mock"),
                ("model", model),
                ("endpoint", endpoint),
                ("type", kind),
            ];
            self.add("backend_tokens_total", &labels, n);
        }
    }

    /// Scrapes `/metrics` once, at once, and checks every expected value.
    async fn check(&self, gateway: &perf::Gateway, step: &str) {
        let (_, samples) = scrape(gateway, TEST).await;
        for ((name, labels), want) in &self.0 {
            let found: Vec<u64> = samples
                .iter()
                .filter(|s| {
                    s.name == *name && {
                        let mut have = s.labels.clone();
                        have.sort();
                        have == *labels
                    }
                })
                .map(|s| s.value as u64)
                .collect();
            assert!(found.len() <= 1, "{step}: {name}{labels:?} twice");
            let got = found.first().copied().unwrap_or(0);
            assert_eq!(got, *want, "after {step}: {name}{labels:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_sdk_through_the_gateway() {
    common::alone!();
    let Some(python) = python_with_or_skip("openai", TEST) else {
        return;
    };
    let gateway = start(FAST_MOCK).await;
    let mut sdk = Sdk::start(&python, &gateway.base_url());
    let mut expected = Expected::default();
    let usage = mock_usage(PROMPT_BYTES, 5);
    let chat_usage = json!({"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16});

    let models = sdk.step("models");
    assert_eq!(
        models["ids"],
        json!(["gpt-4o-mini", "gpt-4o", "text-embedding-3-small"])
    );
    expected.request(MODELS, "completed");
    expected.check(&gateway, "models").await;

    for step in ["chat", "chat_stream", "chat_stream_usage"] {
        let answer = sdk.step(step);
        assert_eq!(answer["text"], TEXT, "{step}");
        match step {
            // The gateway asked for the streamed usage on the client's behalf: kept from it.
            "chat_stream" => assert_eq!(
                (&answer["usage_chunks"], &answer["usage"]),
                (&json!(0), &Value::Null)
            ),
            _ => {
                for (field, n) in chat_usage.as_object().unwrap() {
                    assert_eq!(&answer["usage"][field], n, "{step}: {field}");
                }
                assert_eq!(answer["usage"]["prompt_tokens_details"]["cached_tokens"], 5);
            }
        }
        expected.request(CHAT, "completed");
        expected.tokens("sdk-chat", CHAT, usage);
        expected.check(&gateway, step).await;
    }

    for step in ["responses", "responses_stream"] {
        let answer = sdk.step(step);
        assert_eq!(answer["text"], TEXT, "{step}");
        assert_eq!(answer["usage"]["input_tokens"], 11, "{step}");
        assert_eq!(answer["usage"]["output_tokens"], 5, "{step}");
        if step == "responses_stream" {
            assert_eq!(answer["first"], "response.created");
            assert_eq!(answer["last"], "response.completed");
        }
        expected.request(RESPONSES, "completed");
        expected.tokens("sdk-responses", RESPONSES, usage);
        expected.check(&gateway, step).await;
    }

    // "hello" (5 bytes) and "a longer text" (13): 2 + 4 prompt tokens, all input.
    let base64 = sdk.step("embeddings");
    let floats = sdk.step("embeddings_float");
    for answer in [&base64, &floats] {
        assert_eq!(
            (&answer["count"], &answer["dimensions"]),
            (&json!(2), &json!(16))
        );
        assert_eq!(
            answer["usage"],
            json!({"prompt_tokens": 6, "total_tokens": 6})
        );
    }
    assert_eq!(
        base64["first"], floats["first"],
        "base64 decodes to the same floats"
    );
    let input = |input| perf_runtime::Usage {
        input,
        ..Default::default()
    };
    expected.request(EMBEDDINGS, "completed");
    expected.request(EMBEDDINGS, "completed");
    expected.tokens("text-embedding-3-small", EMBEDDINGS, input(12));
    expected.check(&gateway, "embeddings").await;

    let refused = sdk.step("wrong_key");
    assert_eq!(
        refused,
        json!({"error": "AuthenticationError", "status": 401, "code": "invalid_api_key"})
    );
    expected.request(CHAT, "error");
    expected.check(&gateway, "wrong_key").await;

    let limited = sdk.step("rate_limited");
    assert_eq!(
        limited,
        json!({"error": "RateLimitError", "status": 429, "code": "rate_limit_exceeded"})
    );
    expected.request(CHAT, "error");
    let failed = [
        ("provider", "mock"),
        ("model", "fault:status-429"),
        ("endpoint", CHAT),
        ("kind", "status"),
    ];
    expected.add("backend_errors_total", &failed, 1);
    expected.check(&gateway, "rate_limited").await;

    drop(sdk);
    gateway.shutdown().await;
}
