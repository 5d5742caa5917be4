//! `GET /v1/models` and `POST /v1/embeddings` over HTTP: forwarded to the provider like the
//! chat API (the key first, a backend call, the provider's errors passed on), with their own
//! endpoint labels; an embedding's usage counts as input tokens.

use crate::common;

use std::time::Duration;

use common::{
    backend_errors, client, error_of, mock_tokens, post, stage_counts, start, Outcomes, FAST_MOCK,
    KEY,
};
use perf::{MockConfig, MockProvider};
use serde_json::{json, Value};

const MODELS: &str = "/v1/models";
const EMBEDDINGS: &str = "/v1/embeddings";

/// `GET {gateway}/v1/models` with `key`.
async fn list(gateway: &perf::Gateway, key: Option<&str>) -> reqwest::Response {
    let mut request = client().get(format!("{}/models", gateway.base_url()));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.expect("the gateway answers")
}

/// The JSON body of an answer.
async fn json_of(response: reqwest::Response) -> Value {
    serde_json::from_slice(&response.bytes().await.expect("a body")).expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_are_listed_behind_the_key() {
    common::alone!();
    let gateway = start(FAST_MOCK).await;
    let before = Outcomes::of(MODELS);
    let stages = stage_counts(MODELS);
    error_of(list(&gateway, None).await, 401).await;
    error_of(list(&gateway, Some("wrong")).await, 401).await;
    let listed = list(&gateway, Some(KEY)).await;
    assert_eq!(listed.status(), 200);
    let listed = json_of(listed).await;
    assert_eq!(listed["object"], "list");
    let ids: Vec<&str> = listed["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|m| {
            assert_eq!(m["object"], "model");
            assert!(m["created"].is_u64() && m["owned_by"].is_string(), "{m}");
            m["id"].as_str().expect("an id")
        })
        .collect();
    assert_eq!(ids, perf::gateway::mock::embedding::DEFAULT_MODELS);
    assert_eq!(Outcomes::of(MODELS).since(before), Outcomes::new(1, 2, 0));
    // request_parsing, auth_validation, request_preparation, backend_fetch, stream_processing:
    // no body to parse; the key checked three times; the rest once.
    let ran = common::diff(stage_counts(MODELS), stages);
    assert_eq!(ran, [0, 3, 1, 1, 1]);
    gateway.shutdown().await;
}

/// Another provider's models are relayed as it lists them: the gateway does not answer itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_come_from_the_upstream() {
    common::alone!();
    let mock = MockProvider::start(MockConfig {
        ttfb: Duration::ZERO,
        first_token: Duration::ZERO,
        chunks: 1,
        chunk_interval: Duration::ZERO,
        jitter: Duration::ZERO,
        fail_every: 0,
        requests_per_minute: perf::gateway::mock::limits::REQUESTS_PER_MINUTE,
        models: vec!["upstream-model".into()],
    })
    .await
    .expect("a mock");
    let gateway = start(&["--upstream", &mock.base_url(), "--provider", "far"]).await;
    let listed = json_of(list(&gateway, Some(KEY)).await).await;
    assert_eq!(listed["data"][0]["id"], "upstream-model");
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1));
    gateway.shutdown().await;
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_are_forwarded_and_their_tokens_counted() {
    common::alone!();
    let gateway = start(FAST_MOCK).await;
    let model = "embed-model";
    let before = Outcomes::of(EMBEDDINGS);
    let tokens = mock_tokens(model, EMBEDDINGS);
    let body = json!({"model": model, "input": ["twelve bytes", "x"], "dimensions": 4});
    let answer = post(&gateway, "/embeddings", Some(KEY), body.to_string()).await;
    assert_eq!(answer.status(), 200);
    let answer = json_of(answer).await;
    assert_eq!(answer["object"], "list");
    assert_eq!(answer["model"], model);
    assert_eq!(answer["data"][1]["index"], 1);
    assert_eq!(
        answer["data"][1]["embedding"].as_array().map(Vec::len),
        Some(4)
    );
    assert_eq!(
        answer["usage"],
        json!({"prompt_tokens": 4, "total_tokens": 4})
    );
    let counted = mock_tokens(model, EMBEDDINGS);
    assert_eq!(
        counted.input - tokens.input,
        4,
        "12 bytes: 3 tokens; 1 byte: 1"
    );
    assert_eq!(counted.output, tokens.output, "nothing generated");

    // Refused before the provider: no key, an input that is no input.
    error_of(
        post(&gateway, "/embeddings", None, body.to_string()).await,
        401,
    )
    .await;
    let empty = json!({"model": model, "input": []}).to_string();
    error_of(post(&gateway, "/embeddings", Some(KEY), empty).await, 400).await;
    // The provider's 429, passed on with its Retry-After.
    let limited = json!({"model": "fault:status-429", "input": "x"}).to_string();
    let limited = post(&gateway, "/embeddings", Some(KEY), limited).await;
    assert_eq!(limited.headers()["retry-after"], "7");
    error_of(limited, 429).await;
    assert_eq!(
        backend_errors("mock", "fault:status-429", EMBEDDINGS, "status"),
        1
    );
    assert_eq!(
        Outcomes::of(EMBEDDINGS).since(before),
        Outcomes::new(1, 3, 0)
    );
    gateway.shutdown().await;
}
