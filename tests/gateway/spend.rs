//! Spend, tenants and provider limits through the example gateway: a run of mixed models and
//! tenants priced from a LiteLLM-style price file, against the hand computation to the cent;
//! a model the file lacks counted as unpriced; the mock's rate-limit headers in the gauges, and
//! `fault:drain` running them down to a 429.

use crate::common;

use common::*;

/// A price file as LiteLLM writes one: its `sample_spec`, fields perf ignores, a model priced
/// per provider.
const PRICES: &str = r#"{
  "sample_spec": {"max_tokens": "LEGACY parameter", "input_cost_per_token": 0.0,
                  "litellm_provider": "one of https://docs.litellm.ai/docs/providers"},
  "gpt-4o": {"max_tokens": 16384, "litellm_provider": "openai", "mode": "chat",
             "input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05,
             "cache_read_input_token_cost": 1.25e-06, "supports_vision": true},
  "o3": {"litellm_provider": "openai", "input_cost_per_token": 2e-06,
         "output_cost_per_token": 8e-06, "output_cost_per_reasoning_token": 1.2e-05,
         "cache_read_input_token_cost": 5e-07}
}"#;

/// Words per answer: a quarter of them (2) reasoning.
const CHUNKS: u64 = 8;

/// What one chat request of `model` with a prompt of `chars` characters costs by hand, from
/// the mock's usage (tests/common: `mock_usage`) and the rates above.
fn by_hand(model: &str, chars: u64) -> f64 {
    let usage = mock_usage(chars, CHUNKS);
    let (input, output, cache_read, reasoning) = match model {
        "gpt-4o" => (2.5e-6, 1e-5, 1.25e-6, 1e-5),
        "o3" => (2e-6, 8e-6, 5e-7, 1.2e-5),
        _ => unreachable!(),
    };
    (usage.input - usage.cached_input) as f64 * input
        + usage.cached_input as f64 * cache_read
        + (usage.output - usage.reasoning) as f64 * output
        + usage.reasoning as f64 * reasoning
}

#[tokio::test]
async fn mixed_models_and_tenants_cost_the_hand_computation_to_the_cent() {
    common::alone!();
    let dir = std::env::temp_dir().join(format!("perf-spend-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let prices = dir.join("prices.json");
    std::fs::write(&prices, PRICES).unwrap();
    let mock = [
        "--mock-ttfb-ms",
        "0",
        "--mock-chunks",
        "8",
        "--mock-chunk-interval-ms",
        "0",
    ];
    let mut args = vec![
        "--mock-jitter-ms",
        "0",
        "--prices",
        prices.to_str().unwrap(),
    ];
    args.extend(mock);
    args.extend(["--api-key", "sk-acme=acme", "--api-key", "sk-globex=globex"]);
    let gateway = start(&args).await;

    let mut expected = std::collections::BTreeMap::<&str, f64>::new();
    let endpoint = "/v1/chat/completions";
    for i in 0..60u64 {
        let (key, tenant) = if i % 3 == 0 {
            ("sk-globex", "globex")
        } else {
            ("sk-acme", "acme")
        };
        let model = if i % 2 == 0 { "gpt-4o" } else { "o3" };
        // Prompts of different sizes; streamed (with the usage asked for) and not.
        let prompt = "x".repeat(100 + 1_001 * i as usize);
        let body = chat_with(model, &prompt, i % 4 < 2, true);
        let response = post(&gateway, "/chat/completions", Some(key), body).await;
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap();
        let cost = by_hand(model, prompt.len() as u64);
        *expected.entry(tenant).or_default() += cost;
        *expected.entry(model).or_default() += cost;
    }
    // A model the table lacks, of no tenant: unpriced, not free.
    let response = post(
        &gateway,
        "/chat/completions",
        Some(KEY),
        chat_with("llama-3", "abcd", false, true),
    )
    .await;
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap();

    let tenant_requests = |tenant| {
        counter(
            global(),
            "tenant_requests_total",
            &[("tenant", tenant), ("outcome", "completed")],
        )
    };
    assert!(eventually(|| tenant_requests("acme") + tenant_requests("globex") == 60).await);
    let cents = |usd: f64| format!("{usd:.2}");
    for model in ["gpt-4o", "o3"] {
        let counted = amount(
            global(),
            "backend_cost_usd_total",
            &[
                ("provider", "mock"),
                ("model", model),
                ("endpoint", endpoint),
            ],
        );
        assert!(
            (counted - expected[model]).abs() < 1e-9,
            "{model}: {counted} against {}",
            expected[model]
        );
        assert_eq!(cents(counted), cents(expected[model]));
    }
    for tenant in ["acme", "globex"] {
        let counted = amount(global(), "tenant_cost_usd_total", &[("tenant", tenant)]);
        assert!(
            (counted - expected[tenant]).abs() < 1e-9,
            "{tenant}: {counted}"
        );
        assert_eq!(cents(counted), cents(expected[tenant]));
    }
    assert_eq!(tenant_requests("acme"), 40);
    assert_eq!(tenant_requests("globex"), 20);
    let total = expected["gpt-4o"] + expected["o3"];
    assert_eq!(
        cents(amount(global(), "backend_cost_usd_total", &[])),
        cents(total)
    );
    let reasoning = counter(
        global(),
        "tenant_tokens_total",
        &[("tenant", "acme"), ("type", "reasoning")],
    );
    assert_eq!(reasoning, 40 * CHUNKS / 4);
    assert_eq!(
        counter(
            global(),
            "backend_unpriced_tokens_total",
            &[("model", "llama-3"), ("type", "input")]
        ),
        1
    );
    assert_eq!(
        amount(global(), "backend_cost_usd_total", &[("model", "llama-3")]),
        0.0
    );
    println!(
        "cost of the run: {total:.6} USD (gpt-4o {:.6}, o3 {:.6}; acme {:.6}, globex {:.6})",
        expected["gpt-4o"], expected["o3"], expected["acme"], expected["globex"]
    );

    // A reload that fails keeps the table in use; a good one swaps it.
    std::fs::write(
        &prices,
        "{\n  \"gpt-4o\": {\n    \"input_cost_per_token\": \"free\"\n  }\n}",
    )
    .unwrap();
    let error = perf::gateway::prices::load(&prices).unwrap_err();
    assert!(error.to_string().contains("line 3"), "{error}");
    let before = amount(global(), "backend_cost_usd_total", &[("model", "gpt-4o")]);
    let response = post(
        &gateway,
        "/chat/completions",
        Some("sk-acme"),
        chat_with("gpt-4o", "abcd", false, true),
    )
    .await;
    response.bytes().await.unwrap();
    let added = amount(global(), "backend_cost_usd_total", &[("model", "gpt-4o")]) - before;
    assert!((added - by_hand("gpt-4o", 4)).abs() < 1e-12, "{added}");
    gateway.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_mocks_rate_limits_reach_the_gauges_and_drain_to_a_429() {
    common::alone!();
    let gateway = start(ZERO_MOCK).await;
    let limit = |model, resource, family| {
        gauge(
            global(),
            family,
            &[
                ("provider", "mock"),
                ("model", model),
                ("resource", resource),
            ],
        )
    };
    let drain = perf::gateway::mock::limits::DRAIN_MODEL;
    for sent in 1..=perf::gateway::mock::limits::DRAIN_REQUESTS {
        let response = post(&gateway, "/chat/completions", Some(KEY), chat(drain, false)).await;
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap();
        let left = perf::gateway::mock::limits::DRAIN_REQUESTS - sent;
        assert_eq!(
            limit(drain, "requests", "backend_ratelimit_remaining"),
            Some(left as f64)
        );
    }
    assert_eq!(
        limit(drain, "requests", "backend_ratelimit_limit"),
        Some(10.0)
    );
    let reset = limit(drain, "tokens", "backend_ratelimit_reset_seconds").unwrap();
    assert!((0.0..=60.0).contains(&reset), "{reset}");
    let spent = post(&gateway, "/chat/completions", Some(KEY), chat(drain, false)).await;
    assert_eq!(spent.status(), 429);
    assert_eq!(
        backend_errors("mock", drain, "/v1/chat/completions", "status"),
        1
    );
    assert_eq!(
        limit(drain, "requests", "backend_ratelimit_remaining"),
        Some(0.0)
    );
    gateway.shutdown().await;
}
