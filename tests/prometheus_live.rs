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
//!   three other alerts stay inactive throughout. Half the requests are streamed, so that the
//!   time to first token, the chunk gaps and the tokens have data; one more client's requests
//!   fail (the mock answers them 503), so that the backend errors have data too.
//!
//! Grafana variables are substituted as Grafana would send them with "All" selected and a 15 s
//! scrape interval (see [`substitute`]). Without `prometheus` on `PATH` the Prometheus tests say
//! that they were skipped and why, and pass; under `CI=true` a missing `prometheus` is a failure.
//! Everything listens on loopback; every loop is bounded by a deadline.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{json, Value};

mod common;
use common::tool_or_skip;

const DASHBOARD: &str = "dashboards/performance-monitoring.json";
const README: &str = "README.md";
const RULE_FILES: [&str; 2] = ["prometheus-alerts.yml", "prometheus-recording-rules.yml"];
/// The alerts the live test's slow provider makes pending (its TTFB and TTFT are above 2 s).
const PENDING: [&str; 2] = ["HighBackendTTFB", "HighTimeToFirstToken"];
/// The alerts that stay inactive throughout the live test.
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

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(root().join(relative))
        .unwrap_or_else(|e| panic!("cannot read {relative}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// The expressions under test
// ---------------------------------------------------------------------------------------------

/// A Grafana expression as Prometheus receives it, with "All" selected in every variable:
///
/// | in the dashboard | sent as | why |
/// |---|---|---|
/// | `$endpoint`, `$provider`, `$model` (and `${…}`) | `.*` | the variables' `allValue`; they are only used in `=~` matchers |
/// | `$__rate_interval` | `1m` | Grafana's value for a 15 s scrape interval (4 × scrape); with the test's 1 s scrape it spans ~60 samples |
/// | `$__interval` | `15s` | |
/// | `$__range` | `1h` | the dashboard's default time range |
fn substitute(expr: &str) -> String {
    let mut out = expr.to_owned();
    for (from, to) in [
        ("${__rate_interval}", "1m"),
        ("$__rate_interval", "1m"),
        ("${__interval}", "15s"),
        ("$__interval", "15s"),
        ("${__range}", "1h"),
        ("$__range", "1h"),
    ] {
        out = out.replace(from, to);
    }
    for var in ["endpoint", "provider", "model"] {
        out = out.replace(&format!("${{{var}}}"), ".*");
        out = out.replace(&format!("${var}"), ".*");
    }
    assert!(
        !out.contains('$'),
        "a Grafana variable without a substitution in: {expr}"
    );
    out
}

/// A query to check: where it comes from, and the PromQL sent to Prometheus.
#[derive(Debug, Clone)]
struct Query {
    origin: String,
    promql: String,
}

fn dashboard() -> Value {
    serde_json::from_str(&read(DASHBOARD)).expect("the dashboard is valid JSON")
}

/// Every panel of the dashboard, rows' nested panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(panels: &'a Value, out: &mut Vec<&'a Value>) {
        for panel in panels.as_array().into_iter().flatten() {
            out.push(panel);
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// Every `expr` of every panel target, substituted.
fn dashboard_queries(dashboard: &Value) -> Vec<Query> {
    let mut out = Vec::new();
    for panel in panels(dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let Some(expr) = target["expr"].as_str() else {
                continue;
            };
            out.push(Query {
                origin: format!(
                    "dashboard panel {:?} target {}",
                    panel["title"].as_str().unwrap_or("?"),
                    target["refId"].as_str().unwrap_or("?")
                ),
                promql: substitute(expr),
            });
        }
    }
    out
}

/// A template variable's `label_values(selector, label)` query, substituted.
#[derive(Debug)]
struct VariableQuery {
    name: String,
    selector: String,
    label: String,
}

fn variable_queries(dashboard: &Value) -> Vec<VariableQuery> {
    let vars = dashboard["templating"]["list"]
        .as_array()
        .expect("templating.list");
    vars.iter()
        .map(|var| {
            let name = var["name"].as_str().expect("variable name").to_owned();
            let query = var["query"]
                .as_str()
                .or_else(|| var["query"]["query"].as_str())
                .unwrap_or_else(|| panic!("variable {name}: no query"));
            let inner = query
                .strip_prefix("label_values(")
                .and_then(|q| q.strip_suffix(')'))
                .unwrap_or_else(|| panic!("variable {name}: not label_values(selector, label)"));
            let (selector, label) = inner
                .rsplit_once(',')
                .expect("label_values(selector, label)");
            VariableQuery {
                name,
                selector: substitute(selector.trim()),
                label: label.trim().to_owned(),
            }
        })
        .collect()
}

/// Every fenced ```promql block of the README: one query per block.
fn readme_queries() -> Vec<Query> {
    let readme = read(README);
    let mut out = Vec::new();
    let mut block: Option<(usize, Vec<&str>)> = None;
    for (number, line) in readme.lines().enumerate() {
        match &mut block {
            None if line.trim_start().starts_with("```promql") => {
                block = Some((number + 1, vec![]))
            }
            None => {}
            Some((start, lines)) => {
                if line.trim_start().starts_with("```") {
                    let promql = lines.join("\n");
                    assert!(
                        !promql.trim().is_empty(),
                        "README line {start}: empty promql block"
                    );
                    out.push(Query {
                        origin: format!("README promql block at line {start}"),
                        promql,
                    });
                    block = None;
                } else {
                    lines.push(line);
                }
            }
        }
    }
    assert!(block.is_none(), "README: unterminated promql block");
    out
}

// ---------------------------------------------------------------------------------------------
// A Prometheus server, child process of the test
// ---------------------------------------------------------------------------------------------

/// A `prometheus` child process with its own configuration and storage in a temporary
/// directory; killed and cleaned up on drop.
struct Prometheus {
    child: Child,
    dir: PathBuf,
    base: String,
    http: reqwest::Client,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy() // loopback only, whatever HTTP_PROXY says
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client")
}

/// The `prometheus.yml` of a test: 1 s scrape and evaluation, the repository's rule files, and
/// the gateway (if any) as a static target.
fn prometheus_config(target: Option<SocketAddr>) -> String {
    let rules: Vec<String> = RULE_FILES
        .iter()
        .map(|f| format!("  - '{}'\n", root().join(f).display()))
        .collect();
    let mut config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n{}",
        rules.concat()
    );
    if let Some(target) = target {
        config.push_str(&format!(
            "scrape_configs:\n  - job_name: gateway\n    metrics_path: /metrics\n    \
             static_configs:\n      - targets: ['{target}']\n"
        ));
    }
    config
}

impl Prometheus {
    /// Starts Prometheus on a free loopback port and waits until it is ready (at most 30 s).
    async fn start(binary: &Path, target: Option<SocketAddr>) -> Prometheus {
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let mut last_log = String::new();
        // The free port may be taken between the check and Prometheus' bind: a few attempts.
        for _attempt in 0..3 {
            let dir = std::env::temp_dir().join(format!(
                "perf-prometheus-{}-{}",
                std::process::id(),
                STARTED.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("data")).expect("temporary directory");
            let config = dir.join("prometheus.yml");
            std::fs::write(&config, prometheus_config(target)).expect("prometheus.yml");
            let log = std::fs::File::create(dir.join("prometheus.log")).expect("log file");
            let port = free_port();
            let child = Command::new(binary)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--log.level=warn")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log file"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
            let mut prometheus = Prometheus {
                child,
                dir,
                base: format!("http://127.0.0.1:{port}"),
                http: http_client(),
            };
            if prometheus.wait_ready(Duration::from_secs(30)).await {
                return prometheus;
            }
            last_log = prometheus.log();
        }
        panic!("Prometheus did not become ready; its log:\n{last_log}");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    async fn wait_ready(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(_exited)) = self.child.try_wait() {
                return false;
            }
            let ready = self.http.get(format!("{}/-/ready", self.base)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    }

    /// `data` of a successful API answer; the error text otherwise.
    async fn api(&self, request: reqwest::RequestBuilder) -> Result<Value, String> {
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| e.to_string())?;
        let body: Value = serde_json::from_slice(&bytes)
            .map_err(|e| format!("HTTP {status}: {e}: {}", String::from_utf8_lossy(&bytes)))?;
        if body["status"] != "success" {
            return Err(format!(
                "HTTP {status}: {}: {}",
                body["errorType"].as_str().unwrap_or("?"),
                body["error"].as_str().unwrap_or("?")
            ));
        }
        Ok(body["data"].clone())
    }

    /// An instant query.
    async fn query(&self, promql: &str) -> Result<Value, String> {
        let request = self
            .http
            .post(format!("{}/api/v1/query", self.base))
            .form(&[("query", promql)]);
        self.api(request).await
    }

    /// The values of `label` on the series matching `selector` (what a Grafana `label_values`
    /// variable asks).
    async fn label_values(&self, label: &str, selector: &str) -> Result<Vec<String>, String> {
        let request = self
            .http
            .get(format!("{}/api/v1/label/{label}/values", self.base))
            .query(&[("match[]", selector)]);
        let data = self.api(request).await?;
        Ok(data
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect())
    }

    /// Every rule of `/api/v1/rules`, flattened over the groups.
    async fn rules(&self) -> Result<Vec<Value>, String> {
        let data = self
            .api(self.http.get(format!("{}/api/v1/rules", self.base)))
            .await?;
        Ok(data["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect())
    }

    async fn alerts(&self) -> Result<Vec<Value>, String> {
        let data = self
            .api(self.http.get(format!("{}/api/v1/alerts", self.base)))
            .await?;
        Ok(data["alerts"].as_array().cloned().unwrap_or_default())
    }

    async fn target_health(&self) -> String {
        match self
            .api(self.http.get(format!("{}/api/v1/targets", self.base)))
            .await
        {
            Ok(data) => data["activeTargets"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| format!("{} {} {}", t["scrapeUrl"], t["health"], t["lastError"]))
                .collect::<Vec<_>>()
                .join("; "),
            Err(e) => e,
        }
    }
}

/// The number of rules in the repository's rule files (`- alert:` and `- record:` entries).
fn rule_count() -> usize {
    RULE_FILES
        .iter()
        .map(|f| {
            read(f)
                .lines()
                .filter(|l| {
                    let l = l.trim_start();
                    l.starts_with("- alert:") || l.starts_with("- record:")
                })
                .count()
        })
        .sum()
}

/// Why the rules are not all loaded and healthy, if they are not.
fn rules_problem(rules: &[Value]) -> Option<String> {
    let expected = rule_count();
    if rules.len() != expected {
        return Some(format!("{} rules loaded, {expected} expected", rules.len()));
    }
    let unhealthy: Vec<String> = rules
        .iter()
        .filter(|r| r["health"] != "ok")
        .map(|r| format!("{} health={} {}", r["name"], r["health"], r["lastError"]))
        .collect();
    (!unhealthy.is_empty()).then(|| unhealthy.join("; "))
}

/// Whether a query result holds data: at least one sample, with a finite value.
fn has_data(data: &Value) -> bool {
    let finite = |sample: &Value| {
        sample[1]
            .as_str()
            .and_then(|v| v.parse::<f64>().ok())
            .is_some_and(f64::is_finite)
    };
    match data["resultType"].as_str() {
        Some("vector") => data["result"]
            .as_array()
            .is_some_and(|r| r.iter().any(|s| finite(&s["value"]))),
        Some("scalar") => finite(&data["result"]),
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// The example gateway and its load
// ---------------------------------------------------------------------------------------------

/// A running example gateway: where it listens, and whatever keeps it running until dropped.
struct RunningGateway {
    addr: SocketAddr,
    _handle: Box<dyn std::any::Any + Send>,
}

/// Starts the example gateway (`perf::Gateway`, the library behind `examples/gateway.rs`) in
/// this process on an ephemeral loopback port, on its built-in mock provider: time to first byte
/// `ttfb` ± 50 ms, and short streams (8 chunks 10 ms apart, so streaming p95 stays far below
/// 1.5 s). `/metrics` is served on the same address; the clients of [`load`] send the key
/// `demo-key`. Flags given here win over any `GATEWAY_*` environment variable.
async fn start_gateway(ttfb: Duration) -> RunningGateway {
    let ttfb_ms = ttfb.as_millis().to_string();
    let config = perf::Config::parse_from([
        "gateway",
        "--listen",
        "127.0.0.1:0",
        "--api-key",
        "demo-key",
        "--mock-ttfb-ms",
        &ttfb_ms,
        "--mock-chunks",
        "8",
        "--mock-chunk-interval-ms",
        "10",
        "--mock-jitter-ms",
        "50",
    ]);
    let gateway = perf::Gateway::start(&config)
        .await
        .expect("the example gateway starts");
    RunningGateway {
        addr: gateway.addr(),
        _handle: Box::new(gateway),
    }
}

/// What the clients did.
#[derive(Default)]
struct LoadStats {
    ok: AtomicU64,
    failed: AtomicU64,
    last_error: std::sync::Mutex<String>,
    /// The 502s of [`failing_client`]'s requests, which its provider answers 503.
    provider_errors: AtomicU64,
}

/// One more client, whose requests the mock answers 503 (`fault:status-503`), one every
/// 500 ms until `stop`, so that `backend_errors_total` has data: each must be a 502.
fn failing_client(
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    stats: Arc<LoadStats>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let http = http_client();
        let body = json!({"model": "fault:status-503",
                          "messages": [{"role": "user", "content": "Fail, please."}]});
        while !stop.load(Ordering::Relaxed) {
            let response = http
                .post(format!("http://{addr}/v1/chat/completions"))
                .bearer_auth("demo-key")
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string())
                .send()
                .await;
            match response {
                Ok(response) if response.status() == 502 => {
                    stats.provider_errors.fetch_add(1, Ordering::Relaxed);
                }
                Ok(response) => {
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                    *stats.last_error.lock().unwrap() =
                        format!("a provider 503 answered {}, not 502", response.status());
                }
                Err(e) => {
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                    *stats.last_error.lock().unwrap() = e.to_string();
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
}

/// One virtual client's requests, in turn: chat completions streamed and not, responses
/// streamed and not, over two models.
fn client_request(http: &reqwest::Client, base: &str, n: usize) -> reqwest::RequestBuilder {
    let model = ["gpt-4o-mini", "llama-3.1-8b-instruct"][n % 2];
    let (chat, stream) = [(true, true), (true, false), (false, true), (false, false)][n / 2 % 4];
    let (path, body) = if chat {
        (
            "/v1/chat/completions",
            json!({"model": model, "stream": stream,
                   "messages": [{"role": "user", "content": "Where does the time go?"}]}),
        )
    } else {
        (
            "/v1/responses",
            json!({"model": model, "stream": stream, "input": "Where does the time go?"}),
        )
    };
    http.post(format!("{base}{path}"))
        .bearer_auth("demo-key")
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_string())
}

/// `clients` virtual clients sending requests back to back until `stop`; each reads its whole
/// answer (the stream to its end).
fn load(
    addr: SocketAddr,
    clients: usize,
    stop: Arc<AtomicBool>,
    stats: Arc<LoadStats>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..clients)
        .map(|client| {
            let stop = stop.clone();
            let stats = stats.clone();
            tokio::spawn(async move {
                let http = http_client();
                let base = format!("http://{addr}");
                let mut n = client;
                while !stop.load(Ordering::Relaxed) {
                    let result = async {
                        let response = client_request(&http, &base, n).send().await?;
                        let status = response.status();
                        let body = response.bytes().await?;
                        Ok::<_, reqwest::Error>((status, body))
                    }
                    .await;
                    match result {
                        Ok((status, _)) if status.is_success() => {
                            stats.ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok((status, body)) => {
                            stats.failed.fetch_add(1, Ordering::Relaxed);
                            *stats.last_error.lock().unwrap() =
                                format!("HTTP {status}: {}", String::from_utf8_lossy(&body));
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        Err(e) => {
                            stats.failed.fetch_add(1, Ordering::Relaxed);
                            *stats.last_error.lock().unwrap() = e.to_string();
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                    n += 1;
                }
            })
        })
        .collect()
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
            // `backend_in_flight` has no `endpoint` label.
            assert!(
                expr.contains("$endpoint") || expr.contains("backend_in_flight{"),
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
        // inactive at every look.
        let state = |name: &str| {
            rules
                .iter()
                .find(|r| r["type"] == "alerting" && r["name"] == name)
                .and_then(|r| r["state"].as_str())
                .unwrap_or("absent")
                .to_owned()
        };
        let others: Vec<String> = INACTIVE
            .iter()
            .map(|a| (a, state(a)))
            .filter(|(_, s)| s != "inactive")
            .map(|(a, s)| format!("{a} is {s}"))
            .collect();
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
