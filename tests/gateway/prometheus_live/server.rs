//! A Prometheus server, child process of the test, and its HTTP API: shared by the tests of the
//! dashboard and rules (`prometheus_live.rs`) and of `/metrics`' formats
//! (`prometheus_formats.rs`).

#![allow(dead_code)] // each test module uses its own part of the API

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The repository's rule files, which every test's Prometheus loads.
pub const RULE_FILES: [&str; 3] = [
    "prometheus-alerts.yml",
    "prometheus-recording-rules.yml",
    "prometheus-slo-rules.yml",
];

/// The repository's root (the root package's directory).
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A `prometheus` child process with its own configuration and storage in a temporary
/// directory; killed and cleaned up on drop.
pub struct Prometheus {
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

pub fn http_client() -> reqwest::Client {
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
    pub async fn start(binary: &Path, target: Option<SocketAddr>) -> Prometheus {
        Self::start_with(binary, target, &[]).await
    }

    /// [`start`](Self::start) with Prometheus' feature flags `features`
    /// (`--enable-feature=exemplar-storage`, `native-histograms`).
    pub async fn start_with(
        binary: &Path,
        target: Option<SocketAddr>,
        features: &[&str],
    ) -> Prometheus {
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
            let mut command = Command::new(binary);
            if !features.is_empty() {
                command.arg(format!("--enable-feature={}", features.join(",")));
            }
            let child = command
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

    pub fn log(&self) -> String {
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
    pub async fn query(&self, promql: &str) -> Result<Value, String> {
        let request = self
            .http
            .post(format!("{}/api/v1/query", self.base))
            .form(&[("query", promql)]);
        self.api(request).await
    }

    /// The values of `label` on the series matching `selector` (what a Grafana `label_values`
    /// variable asks).
    pub async fn label_values(&self, label: &str, selector: &str) -> Result<Vec<String>, String> {
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
    pub async fn rules(&self) -> Result<Vec<Value>, String> {
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

    pub async fn alerts(&self) -> Result<Vec<Value>, String> {
        let data = self
            .api(self.http.get(format!("{}/api/v1/alerts", self.base)))
            .await?;
        Ok(data["alerts"].as_array().cloned().unwrap_or_default())
    }

    /// The exemplars of the series `query` selects between `start` and `end` (Unix seconds):
    /// one entry per series, its `seriesLabels` and `exemplars` (`labels`, `value`, `timestamp`).
    pub async fn query_exemplars(
        &self,
        query: &str,
        start: f64,
        end: f64,
    ) -> Result<Vec<Value>, String> {
        let request = self
            .http
            .get(format!("{}/api/v1/query_exemplars", self.base))
            .query(&[
                ("query", query.to_owned()),
                ("start", format!("{start:.3}")),
                ("end", format!("{end:.3}")),
            ]);
        let data = self.api(request).await?;
        Ok(data.as_array().cloned().unwrap_or_default())
    }

    /// The active targets of `/api/v1/targets`: `health`, `lastError`, `scrapeUrl`, ...
    pub async fn targets(&self) -> Result<Vec<Value>, String> {
        let data = self
            .api(self.http.get(format!("{}/api/v1/targets", self.base)))
            .await?;
        Ok(data["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// Prometheus' own `/metrics` (the text format): its scrape counters, without scraping
    /// itself.
    pub async fn own_metrics(&self) -> Result<String, String> {
        let response = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        response.text().await.map_err(|e| e.to_string())
    }

    pub async fn target_health(&self) -> String {
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
