//! The dashboard, the README's PromQL and the rule files against a real Prometheus server
//! (Debian's `prometheus` package) scraping the real example gateway.
//!
//! * `dashboard_is_importable` (no Prometheus): the dashboard JSON has what Grafana's
//!   Dashboards → Import needs and what README's monitoring section promises;
//! * `queries_and_rules_are_valid_promql`: a Prometheus with no target accepts every dashboard
//!   expression, every template-variable selector and every README query, and loads both rule
//!   files with every rule healthy;
//! * `live_gateway_under_load`: a Prometheus scraping the example gateway every second, and
//!   evaluating the rules every second, while virtual clients load the gateway (mock TTFB 2.2 s):
//!   every dashboard expression and README query returns data, every template variable has
//!   values, every rule is healthy and every recording rule records data, `HighBackendTTFB` and
//!   `HighTimeToFirstToken` go pending (they cannot fire within the test: `for: 5m`) and the
//!   three other alerts stay inactive throughout (or pending only on data that crosses their
//!   threshold: a busy machine's, which the test tolerates and says). Half the requests are
//!   streamed, so that the time to first token, the chunk gaps and the tokens have data; one
//!   more client's requests fail (the mock answers them 503), so that the backend errors have
//!   data too.
//!
//! Grafana variables are substituted as Grafana would send them with "All" selected and a 15 s
//! scrape interval (see [`queries::substitute`]). Without `prometheus` on `PATH` the Prometheus
//! tests say that they were skipped and why, and pass; under `CI=true` a missing `prometheus` is
//! a failure. Everything listens on loopback; every loop is bounded by a deadline.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common;
use common::tool_or_skip;

mod load;
mod queries;
pub mod server;

use load::{failing_client, load, start_gateway, LoadStats};
use queries::{
    dashboard, dashboard_queries, has_data, observations_above, panels, readme_queries,
    rules_problem, variable_queries, Query,
};
use server::{root, Prometheus, RULE_FILES};

const DASHBOARD: &str = "dashboards/performance-monitoring.json";
const README: &str = "README.md";
const MONITORING: &str = "docs/monitoring.md";
/// The alerts the live test's slow provider makes pending (its TTFB and TTFT are above 2 s).
const PENDING: [&str; 2] = ["HighBackendTTFB", "HighTimeToFirstToken"];
/// The alerts that stay inactive throughout the live test, unless the machine is so busy that
/// its own data crosses their thresholds (`queries::observations_above`).
const INACTIVE: [&str; 3] = [
    "CriticalBackendTTFB",
    "HighStreamingDuration",
    "HighFrontendProcessing",
];

/// Mock provider TTFB of the live test: above HighBackendTTFB's 2.0 s, below CriticalBackendTTFB's
/// 3.0 s, both for every observation and for the p95 of the buckets (2.0 < p95 ≤ 2.5). The first
/// token follows 10 ms later: the TTFT is above HighTimeToFirstToken's 2.0 s too.
const MOCK_TTFB: Duration = Duration::from_millis(2200);
/// Longest the live test waits for every condition once Prometheus is ready.
const LIVE_DEADLINE: Duration = Duration::from_secs(70);

fn read(relative: &str) -> String {
    std::fs::read_to_string(root().join(relative))
        .unwrap_or_else(|e| panic!("cannot read {relative}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn dashboard_is_importable() {
    let dashboard = dashboard();
    let ds_input = dashboard["__inputs"]
        .as_array()
        .and_then(|inputs| inputs.iter().find(|i| i["name"] == "DS_PROMETHEUS"))
        .expect("an __inputs entry DS_PROMETHEUS");
    assert_eq!(ds_input["type"], "datasource");
    assert_eq!(ds_input["pluginId"], "prometheus");
    assert!(dashboard["id"].is_null(), "an exported dashboard has no id");
    assert!(dashboard["uid"].is_string());
    let data_source = json!({"type": "prometheus", "uid": "${DS_PROMETHEUS}"});

    let titles: Vec<&str> = panels(&dashboard)
        .iter()
        .filter_map(|p| p["title"].as_str())
        .collect();
    for wanted in [
        "Backend API TTFB by provider/model (p50, p95, p99)",
        "Streaming duration by provider/model (p50, p95, p99)",
        "Frontend processing time (p95, target < 3 ms)",
        "Request stage breakdown (stacked, mean per request)",
        "Time distribution by stage (%)",
        "Top 10 slowest backend TTFB (p95)",
        "Time to first token by model (p50, p95)",
        "Chunk gap by model (p99)",
        "Output tokens per second by model",
        "Gateway overhead by endpoint (p99)",
        "Request duration by outcome (p95)",
    ] {
        assert!(
            titles.contains(&wanted),
            "no panel {wanted:?} in {titles:?}"
        );
    }
    let gauges = panels(&dashboard)
        .iter()
        .filter(|p| p["type"] == "gauge" || p["type"] == "bargauge")
        .count();
    assert!(gauges >= 3, "real-time gauge panels: {gauges}");

    let mut ids = std::collections::HashSet::new();
    for panel in panels(&dashboard) {
        let title = panel["title"].as_str().unwrap_or("?");
        assert!(
            ids.insert(panel["id"].as_u64().expect("panel id")),
            "duplicate id: {title}"
        );
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"], data_source, "{title}: data source");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no target");
        for target in targets {
            assert_eq!(
                target["datasource"], data_source,
                "{title}: target data source"
            );
            let expr = target["expr"].as_str().expect("expr");
            // Every range is Grafana's rate interval, except in the recording rules' names.
            for (i, _) in expr.match_indices('[') {
                assert!(
                    expr[i..].starts_with("[$__rate_interval]"),
                    "{title}: a rate window that is not $__rate_interval: {expr}"
                );
            }
            // Families (and recorded series) without an `endpoint` label.
            let no_endpoint = [
                "backend_in_flight{",
                "tenant_cost_usd_total[",
                "tenant_tokens_total[",
                "backend_ratelimit_",
                "model:slo_ttft_slow:",
            ];
            assert!(
                expr.contains("$endpoint") || no_endpoint.iter().any(|f| expr.contains(f)),
                "{title}: not filtered by $endpoint: {expr}"
            );
            let per_model = [
                "backend_ttfb",
                "streaming_duration",
                "backend_ttft",
                "backend_chunk_gap",
                "backend_tokens",
            ];
            if per_model.iter().any(|family| expr.contains(family)) {
                assert!(
                    expr.contains("$provider") && expr.contains("$model"),
                    "{title}: not filtered by $provider and $model: {expr}"
                );
            }
        }
    }

    // The 3 ms line of the front-end panel.
    let frontend = panels(&dashboard)
        .into_iter()
        .find(|p| p["title"] == "Frontend processing time (p95, target < 3 ms)")
        .expect("front-end panel");
    let defaults = &frontend["fieldConfig"]["defaults"];
    assert_eq!(defaults["unit"], "s");
    assert!(
        defaults["thresholds"]["steps"]
            .as_array()
            .expect("threshold steps")
            .iter()
            .any(|s| s["value"] == json!(0.003)),
        "no 3 ms threshold"
    );
    assert_ne!(
        defaults["custom"]["thresholdsStyle"]["mode"], "off",
        "3 ms line not drawn"
    );

    // The TTFB and streaming graphs show exemplars (one query each: the same dots otherwise
    // drawn thrice).
    for title in [
        "Backend API TTFB by provider/model (p50, p95, p99)",
        "Streaming duration by provider/model (p50, p95, p99)",
    ] {
        let panel = panels(&dashboard)
            .into_iter()
            .find(|p| p["title"] == title)
            .expect("the panel");
        let with_exemplars = panel["targets"]
            .as_array()
            .expect("targets")
            .iter()
            .filter(|t| t["exemplar"] == true)
            .count();
        assert_eq!(with_exemplars, 1, "{title}: targets with exemplars");
    }

    let vars = dashboard["templating"]["list"]
        .as_array()
        .expect("variables");
    for name in ["endpoint", "provider", "model"] {
        let var = vars
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no template variable {name}"));
        assert_eq!(var["datasource"], data_source, "variable {name}");
        assert_eq!(var["includeAll"], true, "variable {name}");
        assert_eq!(var["allValue"], ".*", "variable {name}");
    }
    assert_eq!(variable_queries(&dashboard).len(), vars.len());
    assert!(!dashboard_queries(&dashboard).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_and_rules_are_valid_promql() {
    common::alone!();
    let test = "queries_and_rules_are_valid_promql";
    let Some(binary) = tool_or_skip("prometheus", test) else {
        return;
    };
    let readme = readme_queries();
    assert!(!readme.is_empty(), "the README has no ```promql block");
    let dashboard = dashboard();
    let prometheus = Prometheus::start(&binary, None).await;

    let mut errors = Vec::new();
    for query in dashboard_queries(&dashboard).into_iter().chain(readme) {
        if let Err(e) = prometheus.query(&query.promql).await {
            errors.push(format!("{}: {e}\n    {}", query.origin, query.promql));
        }
    }
    for var in variable_queries(&dashboard) {
        if let Err(e) = prometheus.label_values(&var.label, &var.selector).await {
            errors.push(format!("variable {}: {e}\n    {}", var.name, var.selector));
        }
    }
    assert!(
        errors.is_empty(),
        "rejected by Prometheus:\n{}",
        errors.join("\n")
    );

    // The rules load, and are healthy once evaluated (every second).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let problem = match prometheus.rules().await {
            Ok(rules) => rules_problem(&rules),
            Err(e) => Some(e),
        };
        match problem {
            None => break,
            Some(p) if Instant::now() > deadline => {
                panic!(
                    "rules not healthy: {p}\nPrometheus log:\n{}",
                    prometheus.log()
                )
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_gateway_under_load() {
    common::alone!(heavy);
    let test = "live_gateway_under_load";
    let Some(binary) = tool_or_skip("prometheus", test) else {
        return;
    };
    let started = Instant::now();
    let gateway = start_gateway(MOCK_TTFB).await;
    let queries: Vec<Query> = dashboard_queries(&dashboard())
        .into_iter()
        .chain(readme_queries())
        .collect();
    let variables = variable_queries(&dashboard());

    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(LoadStats::default());
    let mut clients = load(gateway.addr, 12, stop.clone(), stats.clone());
    clients.push(failing_client(gateway.addr, stop.clone(), stats.clone()));
    let prometheus = Prometheus::start(&binary, Some(gateway.addr)).await;

    let deadline = Instant::now() + LIVE_DEADLINE;
    // Inactive alerts a busy machine's own data made pending: tolerated, and said at the end.
    let mut slow_machine = std::collections::BTreeMap::new();
    let outcome: Result<(), String> = loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut missing = Vec::new();

        // Rules loaded and healthy.
        let rules = match prometheus.rules().await {
            Ok(rules) => rules,
            Err(e) => break Err(format!("/api/v1/rules: {e}")),
        };
        if let Some(problem) = rules_problem(&rules) {
            missing.push(format!("rules: {problem}"));
        }

        // The alerts: HighBackendTTFB pending, never firing within the test; the others
        // inactive at every look, unless pending on data that crosses their threshold (a busy
        // machine's: the mock is far from them).
        let rule = |name: &str| {
            rules
                .iter()
                .find(|r| r["type"] == "alerting" && r["name"] == name)
        };
        let state = |name: &str| {
            rule(name)
                .and_then(|r| r["state"].as_str())
                .unwrap_or("absent")
                .to_owned()
        };
        let mut others = Vec::new();
        for alert in INACTIVE {
            let state = state(alert);
            if state == "inactive" {
                continue;
            }
            match rule(alert).and_then(observations_above) {
                Some((family, threshold, above)) if state == "pending" && above > 0 => {
                    let note = format!("{above} {family} observations above {threshold} s");
                    slow_machine.insert(alert, note);
                }
                _ => others.push(format!("{alert} is {state}")),
            }
        }
        if !others.is_empty() {
            break Err(format!(
                "alerts that should stay inactive: {}",
                others.join(", ")
            ));
        }
        let mut firing = None;
        for alert in PENDING {
            match state(alert).as_str() {
                "pending" => {
                    let alerts = prometheus.alerts().await.unwrap_or_default();
                    let listed = alerts
                        .iter()
                        .any(|a| a["labels"]["alertname"] == alert && a["state"] == "pending");
                    if !listed {
                        missing.push(format!("{alert} pending in /api/v1/alerts"));
                    }
                }
                "firing" => firing = Some(format!("{alert} firing before its for: 5m")),
                other => missing.push(format!("{alert} is {other}, not yet pending")),
            }
        }
        if let Some(firing) = firing {
            break Err(firing);
        }

        // Every dashboard expression and README query returns data.
        for query in &queries {
            match prometheus.query(&query.promql).await {
                Ok(data) if has_data(&data) => {}
                Ok(data) => missing.push(format!(
                    "no data: {}: {} -> {}",
                    query.origin, query.promql, data["result"]
                )),
                Err(e) => break_err(&mut missing, &query.origin, &query.promql, &e),
            }
        }
        // Every recording rule records data.
        for record in rules.iter().filter(|r| r["type"] == "recording") {
            let name = record["name"].as_str().unwrap_or("?");
            match prometheus.query(name).await {
                Ok(data) if has_data(&data) => {}
                Ok(_) => missing.push(format!("recording rule {name} has no data")),
                Err(e) => break_err(&mut missing, "recording rule", name, &e),
            }
        }
        // Every template variable has values.
        for var in &variables {
            match prometheus.label_values(&var.label, &var.selector).await {
                Ok(values) if !values.is_empty() => {}
                Ok(_) => missing.push(format!(
                    "variable {} has no value: {}",
                    var.name, var.selector
                )),
                Err(e) => break_err(&mut missing, &var.name, &var.selector, &e),
            }
        }

        if missing.is_empty() {
            break Ok(());
        }
        if Instant::now() > deadline {
            break Err(format!(
                "after {LIVE_DEADLINE:?}:\n  {}\ntarget: {}\nload: {} ok, {} failed (last error: {})",
                missing.join("\n  "),
                prometheus.target_health().await,
                stats.ok.load(Ordering::Relaxed),
                stats.failed.load(Ordering::Relaxed),
                stats.last_error.lock().unwrap()
            ));
        }
    };

    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.abort();
    }
    if let Err(e) = outcome {
        panic!("{e}\nPrometheus log:\n{}", prometheus.log());
    }
    assert_eq!(
        stats.failed.load(Ordering::Relaxed),
        0,
        "failed requests: {}",
        stats.last_error.lock().unwrap()
    );
    assert!(stats.provider_errors.load(Ordering::Relaxed) > 0);
    for (alert, note) in &slow_machine {
        eprintln!("live: a busy machine made {alert} pending: {note}");
    }
    println!(
        "live: {} dashboard/README queries and {} variables with data, rules healthy, \
         {PENDING:?} pending, others inactive, after {:?}; {} requests, {} failing on purpose",
        queries.len(),
        variables.len(),
        started.elapsed(),
        stats.ok.load(Ordering::Relaxed),
        stats.provider_errors.load(Ordering::Relaxed)
    );
    drop(prometheus);
    drop(gateway);
}

/// A query Prometheus rejected: recorded as a problem (it is one whatever the data).
fn break_err(problems: &mut Vec<String>, origin: &str, promql: &str, error: &str) {
    problems.push(format!("rejected: {origin}: {error}\n    {promql}"));
}
