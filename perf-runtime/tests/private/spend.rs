//! Cost, unpriced tokens, tenants and provider limits, recorded by hand into private registries
//! and read back: each total against the hand computation.

use perf_runtime::prices::{Price, PriceTable, Rates};
use perf_runtime::ratelimits::RateLimits;
use perf_runtime::{Metrics, PerformanceTracker, Usage};
use perf_test_kit::*;
use prometheus::Registry;

/// USD per token: what the tests price their models at.
fn table() -> PriceTable {
    let mut table = PriceTable::new();
    table.insert(
        Some("openai"),
        "gpt-4o",
        Price::new(Rates {
            cache_read: Some(1.25e-6),
            ..Rates::per_token(2.5e-6, 10e-6)
        }),
    );
    table.insert(
        Some("openai"),
        "o3",
        Price::new(Rates {
            reasoning: Some(12e-6),
            ..Rates::per_token(2e-6, 8e-6)
        }),
    );
    table.insert(
        Some("anthropic"),
        "claude-sonnet-4",
        Price::new(Rates {
            cache_read: Some(0.3e-6),
            cache_write: Some(3.75e-6),
            ..Rates::per_token(3e-6, 15e-6)
        })
        .above(200_000, Rates::per_token(6e-6, 22.5e-6)),
    );
    table
}

/// Prompt and generated tokens, all most tests need; the others are named where a test has them
/// (`Usage { reasoning: 1500, ..tokens(500, 2000) }`), so that no count goes by position.
fn tokens(input: u64, output: u64) -> Usage {
    Usage {
        input,
        output,
        ..Usage::default()
    }
}

/// One request of `tenant` (if any) with one call of `provider`'s `model` reporting `usage`.
fn request(
    metrics: &'static Metrics,
    tenant: Option<&str>,
    provider: &str,
    model: &str,
    usage: Usage,
) {
    let tracker = PerformanceTracker::with_metrics(metrics, CHAT);
    if let Some(tenant) = tenant {
        tracker.set_tenant(tenant);
    }
    tracker.backend_request(provider, model).first_byte();
    tracker.usage(usage);
    tracker.record_percentages();
}

fn cost(registry: &Registry, family: &str, labels: &[(&str, &str)]) -> f64 {
    perf_runtime::metrics::snapshot::amount(registry, family, labels).unwrap_or(0.0)
}

#[test]
fn cost_is_the_hand_computation_to_the_cent() {
    let (registry, metrics) = private_metrics();
    metrics.set_prices(table());
    // 100 requests of each kind, two tenants.
    for i in 0..100 {
        let tenant = if i % 2 == 0 { "acme" } else { "globex" };
        // 1,000 prompt tokens, 400 of them cached; 300 generated.
        request(
            metrics,
            Some(tenant),
            "openai",
            "gpt-4o",
            Usage {
                cached_input: 400,
                ..tokens(1000, 300)
            },
        );
        // 500 prompt tokens; 2,000 generated, 1,500 of them reasoning.
        request(
            metrics,
            Some(tenant),
            "openai",
            "o3",
            Usage {
                reasoning: 1500,
                ..tokens(500, 2000)
            },
        );
        // 3,000 prompt tokens: 1,000 read from the cache, 500 written to it; 700 generated.
        request(
            metrics,
            Some(tenant),
            "anthropic",
            "claude-sonnet-4",
            Usage {
                cached_input: 1000,
                cache_write: 500,
                ..tokens(3000, 700)
            },
        );
    }
    // By hand, per request:
    let gpt = 600.0 * 2.5e-6 + 400.0 * 1.25e-6 + 300.0 * 10e-6; // 0.005
    let o3 = 500.0 * 2e-6 + 500.0 * 8e-6 + 1500.0 * 12e-6; // 0.023
    let claude = 1500.0 * 3e-6 + 1000.0 * 0.3e-6 + 500.0 * 3.75e-6 + 700.0 * 15e-6; // 0.017175
    let by_model = [
        ("gpt-4o", gpt * 100.0),
        ("o3", o3 * 100.0),
        ("claude-sonnet-4", claude * 100.0),
    ];
    for (model, expected) in by_model {
        let counted = cost(
            &registry,
            "backend_cost_usd_total",
            &[("model", model), ("endpoint", CHAT)],
        );
        assert!(
            (counted - expected).abs() < 1e-9,
            "{model}: {counted} against {expected}"
        );
    }
    let total = (gpt + o3 + claude) * 100.0;
    assert_eq!(format!("{total:.2}"), "4.52");
    let counted = cost(&registry, "backend_cost_usd_total", &[]);
    assert_eq!(format!("{counted:.2}"), "4.52");
    for tenant in ["acme", "globex"] {
        let share = cost(&registry, "tenant_cost_usd_total", &[("tenant", tenant)]);
        assert!((share - total / 2.0).abs() < 1e-9, "{tenant}: {share}");
        let requests = perf_runtime::metrics::snapshot::counter(
            &registry,
            "tenant_requests_total",
            &[
                ("tenant", tenant),
                ("endpoint", CHAT),
                ("outcome", "completed"),
            ],
        );
        assert_eq!(requests, Some(150));
        let reasoning = perf_runtime::metrics::snapshot::counter(
            &registry,
            "tenant_tokens_total",
            &[("tenant", tenant), ("type", "reasoning")],
        );
        assert_eq!(reasoning, Some(50 * 1500));
    }
    assert_eq!(series_count(&registry, "backend_unpriced_tokens_total"), 0);
}

#[test]
fn a_prompt_above_the_tier_is_priced_at_the_tier_and_a_running_usage_once() {
    let (registry, metrics) = private_metrics();
    metrics.set_prices(table());
    let tracker = PerformanceTracker::with_metrics(metrics, CHAT);
    tracker
        .backend_request("anthropic", "claude-sonnet-4")
        .first_byte();
    // A running total, reported three times: the last crosses the 200k threshold, and the whole
    // call is priced at the tier's rates.
    tracker.usage(tokens(150_000, 10));
    tracker.usage(tokens(150_000, 10));
    tracker.usage(tokens(250_000, 1_000));
    tracker.record_percentages();
    let expected = 250_000.0 * 6e-6 + 1_000.0 * 22.5e-6;
    let counted = cost(&registry, "backend_cost_usd_total", &[]);
    assert!(
        (counted - expected).abs() < 1e-9,
        "{counted} against {expected}"
    );
}

#[test]
fn a_model_missing_from_the_table_is_unpriced_not_free() {
    let (registry, metrics) = private_metrics();
    // Without a table, nothing is priced and nothing is unpriced.
    request(metrics, None, "openai", "gpt-5", tokens(100, 10));
    assert_eq!(series_count(&registry, "backend_unpriced_tokens_total"), 0);
    metrics.set_prices(table());
    request(metrics, None, "openai", "gpt-5", tokens(100, 10));
    request(metrics, None, "openai", "gpt-5", tokens(100, 10));
    let unpriced = |kind| {
        perf_runtime::metrics::snapshot::counter(
            &registry,
            "backend_unpriced_tokens_total",
            &[("model", "gpt-5"), ("type", kind)],
        )
    };
    assert_eq!(unpriced("input"), Some(200));
    assert_eq!(unpriced("output"), Some(20));
    assert_eq!(
        cost(&registry, "backend_cost_usd_total", &[("model", "gpt-5")]),
        0.0
    );
    assert!(
        perf_runtime::metrics::snapshot::amount(&registry, "backend_cost_usd_total", &[]).is_none()
    );
    // A table swapped in prices the model from its next call on.
    let mut with_it = table();
    with_it.insert(None, "gpt-5", Price::new(Rates::per_token(1e-6, 1e-5)));
    metrics.set_prices(with_it);
    request(metrics, None, "openai", "gpt-5", tokens(100, 10));
    let counted = cost(&registry, "backend_cost_usd_total", &[("model", "gpt-5")]);
    assert!(
        (counted - (100.0 * 1e-6 + 10.0 * 1e-5)).abs() < 1e-12,
        "{counted}"
    );
    assert_eq!(unpriced("input"), Some(200));
}

#[test]
fn the_tenant_cap_holds_against_ten_thousand_keys() {
    let registry = Registry::new();
    let metrics = Metrics::builder().tenant_cap(100).build(&registry).unwrap();
    metrics.set_prices(table());
    // A client that names itself `other` does not hide among the overflow.
    request(metrics, Some("other"), "openai", "gpt-4o", tokens(10, 1));
    for key in 0..10_000 {
        let key = format!("key-{key}");
        request(metrics, Some(&key), "openai", "gpt-4o", tokens(10, 1));
    }
    let tenants = label_values(&registry, "tenant_requests_total", "tenant");
    assert_eq!(tenants.len(), 100 + 1, "{tenants:?}");
    assert!(tenants.contains("key-0") && tenants.contains("key-98"));
    assert!(tenants.contains("other") && tenants.contains("other_"));
    assert!(!tenants.contains("key-99"));
    let overflow = perf_runtime::metrics::snapshot::counter(
        &registry,
        "tenant_requests_total",
        &[("tenant", "other"), ("outcome", "completed")],
    );
    assert_eq!(overflow, Some(9_901));
    assert!(label_values(&registry, "tenant_cost_usd_total", "tenant").len() <= 101);
    assert!(label_values(&registry, "tenant_tokens_total", "tenant").len() <= 101);
    // Spend by tenant adds up to the whole spend.
    let by_tenant = cost(&registry, "tenant_cost_usd_total", &[]);
    let whole = cost(&registry, "backend_cost_usd_total", &[]);
    assert!((by_tenant - whole).abs() < 1e-9 && whole > 0.0);
}

#[test]
fn an_allow_list_of_tenants_sends_the_rest_to_other() {
    let registry = Registry::new();
    let metrics = Metrics::builder()
        .allowed_tenants(["acme"])
        .build(&registry)
        .unwrap();
    request(metrics, Some("acme"), "openai", "gpt-4o", Usage::default());
    request(
        metrics,
        Some("initech"),
        "openai",
        "gpt-4o",
        Usage::default(),
    );
    let tenants = label_values(&registry, "tenant_requests_total", "tenant");
    assert_eq!(tenants.into_iter().collect::<Vec<_>>(), ["acme", "other"]);
}

#[test]
fn rate_limit_headers_set_the_gauges_of_the_calls_model() {
    let (registry, metrics) = private_metrics();
    let tracker = PerformanceTracker::with_metrics(metrics, CHAT);
    tracker.backend_request("openai", "gpt-4o").first_byte();
    let headers: [(&str, &[u8]); 3] = [
        ("x-ratelimit-limit-tokens", b"30000"),
        ("x-ratelimit-remaining-tokens", b"2500"),
        ("x-ratelimit-reset-tokens", b"1m30s"),
    ];
    tracker.rate_limits(&RateLimits::from_headers(headers));
    let labels = [
        ("provider", "openai"),
        ("model", "gpt-4o"),
        ("resource", "tokens"),
    ];
    assert_eq!(
        gauge(&registry, "backend_ratelimit_remaining", &labels),
        Some(2500.0)
    );
    assert_eq!(
        gauge(&registry, "backend_ratelimit_limit", &labels),
        Some(30000.0)
    );
    assert_eq!(
        gauge(&registry, "backend_ratelimit_reset_seconds", &labels),
        Some(90.0)
    );
    // The latest answer's word stands.
    tracker.rate_limits(&RateLimits::from_headers([(
        "x-ratelimit-remaining-tokens",
        &b"10"[..],
    )]));
    assert_eq!(
        gauge(&registry, "backend_ratelimit_remaining", &labels),
        Some(10.0)
    );
    assert_eq!(series_count(&registry, "backend_ratelimit_remaining"), 1);
}

#[cfg(feature = "prices")]
#[test]
fn a_reload_that_fails_keeps_the_table_in_use() {
    let (registry, metrics) = private_metrics();
    let dir = std::env::temp_dir().join(format!("perf-prices-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("prices.json");
    std::fs::write(
        &path,
        r#"{"gpt-4o": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}}"#,
    )
    .unwrap();
    assert_eq!(metrics.load_prices(&path).unwrap(), 1);
    std::fs::write(
        &path,
        "{\n\"gpt-4o\": {\n\"input_cost_per_token\": 1e-6,,\n}}",
    )
    .unwrap();
    let error = metrics.load_prices(&path).unwrap_err();
    assert_eq!(error.line(), 3, "{error}");
    request(metrics, None, "openai", "gpt-4o", tokens(1000, 100));
    let counted = cost(&registry, "backend_cost_usd_total", &[]);
    assert!(
        (counted - (1000.0 * 1e-6 + 100.0 * 2e-6)).abs() < 1e-12,
        "{counted}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
