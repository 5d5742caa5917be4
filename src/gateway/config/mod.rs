//! Command-line flags of the gateway, each also readable from an environment variable.

mod api_keys;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use perf_runtime::metrics::DEFAULT_LABEL_CAP;
use perf_runtime::otlp::OtlpExporter;

use super::body_timeout::BodyLimits;
use super::listen::ConnectionLimits;
use super::mock::embedding::DEFAULT_MODELS;
use super::mock::limits::REQUESTS_PER_MINUTE;
use super::mock::MockConfig;
use super::upstream::UpstreamTimeouts;
use api_keys::{keys_and_tenants, read_key_file};

pub use super::label_settings::LabelSettings;
pub use api_keys::{KeyFile, DEFAULT_API_KEY};

/// The largest request body accepted by default, in bytes (4 MiB: room for a few base64 images).
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// How the example gateway runs: where it listens, whom it lets in, where it forwards to.
///
/// Every flag can also be set through the environment variable shown in `--help`; a flag given on
/// the command line wins over the variable.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "gateway",
    version,
    about = "An OpenAI-compatible LLM gateway instrumented with perf, on a built-in mock provider",
    long_about = "An OpenAI-compatible LLM gateway instrumented with perf.\n\n\
        It serves POST /v1/chat/completions and POST /v1/responses (streamed and not), \
        POST /v1/embeddings, GET /v1/models, GET /metrics (Prometheus) and GET /healthz, and \
        forwards every API request over HTTP to a \
        built-in mock provider, or to a real OpenAI-compatible provider given with --upstream.\n\n\
        Client-supplied model names are bounded in the metrics (--model-label-cap, \
        --allowed-models). /metrics is served on --listen without authentication by default, \
        for a Prometheus on the same private network; a gateway reachable from the internet \
        should serve it on an internal address (--metrics-listen) or behind a token \
        (--metrics-token)."
)]
pub struct Config {
    /// Address the gateway listens on.
    #[arg(long, env = "GATEWAY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// An API key clients must send as `Authorization: Bearer KEY` (repeat the flag for several;
    /// the variable takes a comma-separated list), or `KEY=TENANT`: its requests, tokens and
    /// cost are then counted under `tenant="TENANT"` (tenant_requests_total, tenant_tokens_total,
    /// tenant_cost_usd_total). A flag's value is visible to every user of
    /// the machine (`ps`): pass real keys with --api-key-file or the variable. Without any key
    /// (here or in --api-key-file), the demo key `demo-key`.
    #[arg(
        long = "api-key",
        value_name = "KEY",
        env = "GATEWAY_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_keys: Vec<String>,

    /// A file of API keys clients may use, one per line (`KEY` or `KEY=TENANT`, as --api-key;
    /// blank lines and lines starting with `#` ignored), besides those of --api-key. Read once,
    /// at start.
    #[arg(
        long = "api-key-file",
        value_name = "PATH",
        env = "GATEWAY_API_KEY_FILE",
        value_parser = read_key_file
    )]
    pub api_key_file: Option<KeyFile>,

    /// Base URL of a real OpenAI-compatible provider, e.g. `https://api.openai.com/v1` (the gateway
    /// appends /chat/completions or /responses). Without it, a built-in mock provider is started.
    #[arg(long, value_name = "URL", env = "GATEWAY_UPSTREAM")]
    pub upstream: Option<reqwest::Url>,

    /// API key sent to the upstream provider as `Authorization: Bearer KEY`. A flag's value is
    /// visible to every user of the machine (`ps`): prefer the variable.
    #[arg(
        long,
        value_name = "KEY",
        env = "GATEWAY_UPSTREAM_KEY",
        hide_env_values = true
    )]
    pub upstream_key: Option<String>,

    /// The `provider` label of the backend metrics [default: mock, or the --upstream host name].
    #[arg(long, value_name = "NAME", env = "GATEWAY_PROVIDER")]
    pub provider: Option<String>,

    /// Largest request body accepted, in bytes; a larger one is answered 413.
    #[arg(long, value_name = "N", env = "GATEWAY_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,

    /// Mock provider: time to first byte (response headers), in milliseconds.
    #[arg(
        long,
        value_name = "N",
        env = "GATEWAY_MOCK_TTFB_MS",
        default_value_t = 1700
    )]
    pub mock_ttfb_ms: u64,

    /// Mock provider: content chunks in a streamed answer.
    #[arg(
        long,
        value_name = "N",
        env = "GATEWAY_MOCK_CHUNKS",
        default_value_t = 26
    )]
    pub mock_chunks: u32,

    /// Mock provider: delay between two content chunks, in milliseconds.
    #[arg(
        long,
        value_name = "N",
        env = "GATEWAY_MOCK_CHUNK_INTERVAL_MS",
        default_value_t = 50
    )]
    pub mock_chunk_interval_ms: u64,

    /// Mock provider: time from the response headers (and the role-only first delta sent with
    /// them) to the first content chunk, in milliseconds [default: --mock-chunk-interval-ms].
    #[arg(long, value_name = "N", env = "GATEWAY_MOCK_FIRST_TOKEN_MS")]
    pub mock_first_token_ms: Option<u64>,

    /// Mock provider: every Nth answer (the Nth, the 2Nth, ...) is a 500 after the time to
    /// first byte, as an overloaded provider answers. 0 for never.
    #[arg(
        long,
        value_name = "N",
        env = "GATEWAY_MOCK_FAIL_EVERY",
        default_value_t = 0
    )]
    pub mock_fail_every: u64,

    /// Mock provider: requests a model may take a minute (and 200 tokens for each) before it
    /// answers 429 `rate_limit_exceeded`, as a provider's rate limit does. Raise it for a load
    /// test that sends more.
    #[arg(
        long,
        value_name = "N",
        env = "GATEWAY_MOCK_REQUESTS_PER_MINUTE",
        default_value_t = REQUESTS_PER_MINUTE
    )]
    pub mock_requests_per_minute: u64,

    /// Mock provider: each delay varies at random by up to ±N ms (never by more than the delay
    /// itself, so the mean stays as set).
    #[arg(
        long,
        value_name = "N",
        env = "GATEWAY_MOCK_JITTER_MS",
        default_value_t = 100
    )]
    pub mock_jitter_ms: u64,

    /// Most distinct `model` (and `provider`) label values kept in the metrics; the requests of
    /// every later model are recorded as `model="other"`. The model name comes from clients:
    /// this bounds the series count whatever they send. Values are also cut to 128 bytes.
    #[arg(
        long,
        value_name = "N",
        env = "GATEWAY_MODEL_LABEL_CAP",
        default_value_t = DEFAULT_LABEL_CAP
    )]
    pub model_label_cap: usize,

    /// Keep only these model names as `model` labels (comma-separated); every other model is
    /// recorded as `model="other"`. Replaces --model-label-cap for models.
    #[arg(
        long,
        value_name = "MODELS",
        env = "GATEWAY_ALLOWED_MODELS",
        value_delimiter = ','
    )]
    pub allowed_models: Vec<String>,

    /// Serve GET /metrics on this address instead of --listen (e.g. an internal interface that
    /// only Prometheus reaches). By default /metrics is on --listen, unauthenticated: fine on a
    /// private network; a gateway open to the internet should use this or --metrics-token.
    #[arg(long, value_name = "ADDR", env = "GATEWAY_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Require `Authorization: Bearer TOKEN` on GET /metrics (401 otherwise); Prometheus sends
    /// it with `authorization: {credentials: TOKEN}` in its scrape config.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "GATEWAY_METRICS_TOKEN",
        hide_env_values = true
    )]
    pub metrics_token: Option<String>,

    /// Longest wait for the provider's response headers (its first byte), in milliseconds: past
    /// it the client gets a 504. 0 for no limit.
    #[arg(
        long,
        value_name = "MS",
        env = "GATEWAY_UPSTREAM_TIMEOUT_MS",
        default_value_t = 60_000
    )]
    pub upstream_timeout_ms: u64,

    /// Longest wait between two chunks of the provider's answer body, in milliseconds: past it
    /// a streamed answer ends with an SSE `error` event, a whole one is a 504. 0 for no limit.
    #[arg(
        long,
        value_name = "MS",
        env = "GATEWAY_UPSTREAM_IDLE_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    pub upstream_idle_timeout_ms: u64,

    /// Longest time of a whole provider call, from sending the request to the answer's last
    /// byte, in milliseconds (a cap on streams that trickle forever). 0 for no limit.
    #[arg(
        long,
        value_name = "MS",
        env = "GATEWAY_UPSTREAM_TOTAL_TIMEOUT_MS",
        default_value_t = 600_000
    )]
    pub upstream_total_timeout_ms: u64,

    /// A client connection must send a complete request head within this time of connecting,
    /// and a kept-alive one within this time of its previous answer's end, in milliseconds;
    /// else it is closed (slowloris, idle keep-alive). 0 for no limit.
    #[arg(
        long,
        value_name = "MS",
        env = "GATEWAY_HEADER_READ_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub header_read_timeout_ms: u64,

    /// A request's whole body must arrive within this time of its head, in milliseconds; else
    /// it is answered 408 and its connection closed. 0 for no limit.
    #[arg(
        long,
        value_name = "MS",
        env = "GATEWAY_BODY_READ_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    pub body_read_timeout_ms: u64,

    /// After its first 2 seconds, a request's body must have come at this many bytes a second
    /// on average since its head; else it is answered 408 and its connection closed (a body
    /// trickled to hold a connection). 0 for no minimum.
    #[arg(
        long,
        value_name = "BYTES",
        env = "GATEWAY_BODY_MIN_RATE",
        default_value_t = 1024
    )]
    pub body_min_rate: u64,

    /// Most client connections served at once; further ones wait in the listen backlog until
    /// one closes. 0 for no limit.
    #[arg(
        long,
        value_name = "N",
        env = "GATEWAY_MAX_CONNECTIONS",
        default_value_t = 10_000
    )]
    pub max_connections: usize,

    /// A scrape of /metrics may also be answered with a rendering up to this many milliseconds
    /// old (fewer renderings for scrapers that loop, numbers up to this stale). With 0, the
    /// default, every scrape shows everything recorded before it arrived: concurrent scrapes
    /// share a rendering begun after they all arrived, one rendering per format at a time.
    #[arg(
        long,
        value_name = "MS",
        env = "GATEWAY_METRICS_MAX_AGE_MS",
        default_value_t = 0
    )]
    pub metrics_max_age_ms: u64,

    /// Tries a provider call up to N more times, at once, when it answers a 5xx or cannot be
    /// reached: before its response headers, so nothing reached the client yet. Each try is a
    /// backend call of its own in the metrics. 0 (the default) leaves retries to the clients:
    /// OpenAI's SDKs retry 5xx answers and failed connections twice by themselves.
    #[arg(
        long,
        value_name = "N",
        env = "GATEWAY_UPSTREAM_RETRIES",
        default_value_t = 0
    )]
    pub upstream_retries: u32,

    /// Do not send a `Server-Timing` header (each stage's and the backend's time, in ms) with
    /// non-streamed answers. As a variable: GATEWAY_SERVER_TIMING=false.
    #[arg(
        long = "no-server-timing",
        env = "GATEWAY_SERVER_TIMING",
        action = clap::ArgAction::SetFalse
    )]
    pub server_timing: bool,

    /// Push the metrics over OTLP/HTTP to the collector at this base URL (`/v1/metrics` is
    /// appended), e.g. `http://localhost:4318`. The standard `OTEL_EXPORTER_OTLP_*`,
    /// `OTEL_METRIC_EXPORT_INTERVAL`, `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`
    /// variables apply; `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` alone turns it on too.
    #[arg(long, value_name = "URL", env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// How often the OTLP export runs, in milliseconds [default: OTEL_METRIC_EXPORT_INTERVAL,
    /// else 60000].
    #[arg(long, value_name = "MS")]
    pub otlp_interval_ms: Option<u64>,

    /// Also drive synthetic traffic from a few virtual clients and print a live table of
    /// p50/p95/p99 per stage and the split of the time, every few seconds.
    #[arg(long, env = "GATEWAY_DEMO")]
    pub demo: bool,

    /// A price table: JSON with the field names of LiteLLM's
    /// `model_prices_and_context_window.json` (`input_cost_per_token`, `output_cost_per_token`,
    /// `cache_read_input_token_cost`, ...). Each backend call's usage is then priced in
    /// backend_cost_usd_total; a model the table lacks counts in backend_unpriced_tokens_total.
    /// Read at start (a bad file stops the gateway, naming the line) and again on SIGHUP (a bad
    /// file then keeps the table in use).
    #[arg(long, value_name = "PATH", env = "GATEWAY_PRICES")]
    pub prices: Option<PathBuf>,
}

impl Config {
    /// The keys clients may use: those of `--api-key` and `--api-key-file` (empty ones left
    /// out), else [`DEFAULT_API_KEY`].
    pub fn client_keys(&self) -> Vec<String> {
        self.client_tenants()
            .into_iter()
            .map(|(key, _)| key)
            .collect()
    }

    /// The keys clients may use with the tenant each is counted under, if any (`KEY=TENANT`),
    /// else [`DEFAULT_API_KEY`] without a tenant.
    pub fn client_tenants(&self) -> Vec<(String, Option<String>)> {
        let file = self.api_key_file.iter().flat_map(|file| &file.keys);
        keys_and_tenants(self.api_keys.iter().chain(file))
    }

    /// Whether clients use the built-in [`DEFAULT_API_KEY`] alone (no key was given).
    pub fn uses_default_key(&self) -> bool {
        self.client_keys() == [DEFAULT_API_KEY]
    }

    /// Every secret of the configuration (the clients' keys, the provider key, the metrics
    /// token): what the gateway never writes out whole (see [`super::secrets`]).
    pub fn secrets(&self) -> Vec<String> {
        let mut secrets = self.client_keys();
        secrets.extend(self.upstream_key.iter().cloned());
        secrets.extend(self.metrics_token.iter().cloned());
        secrets
    }

    /// The `provider` label: `--provider`, else the upstream's host name, else `mock`.
    pub fn provider_label(&self) -> String {
        if let Some(name) = &self.provider {
            return name.clone();
        }
        match &self.upstream {
            Some(url) => url.host_str().unwrap_or("upstream").to_owned(),
            None => "mock".to_owned(),
        }
    }

    /// The label settings of the metrics: `--model-label-cap` and `--allowed-models`, as
    /// [`Gateway::start`](crate::Gateway::start) installs them.
    pub fn label_settings(&self) -> LabelSettings {
        let mut allowed: Vec<String> = self
            .allowed_models
            .iter()
            .map(|m| m.trim().to_owned())
            .filter(|m| !m.is_empty())
            .collect();
        allowed.sort();
        allowed.dedup();
        LabelSettings {
            cap: self.model_label_cap,
            allowed_models: (!allowed.is_empty()).then_some(allowed),
        }
    }

    /// The provider timeouts: `--upstream-timeout-ms`, `--upstream-idle-timeout-ms`,
    /// `--upstream-total-timeout-ms`.
    pub fn upstream_timeouts(&self) -> UpstreamTimeouts {
        UpstreamTimeouts {
            first_byte: limit(self.upstream_timeout_ms),
            idle: limit(self.upstream_idle_timeout_ms),
            total: limit(self.upstream_total_timeout_ms),
        }
    }

    /// The limits on client connections: `--header-read-timeout-ms`, `--max-connections`.
    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: limit(self.header_read_timeout_ms),
            max_connections: (self.max_connections > 0).then_some(self.max_connections),
            counted: false,
        }
    }

    /// The limits on reading a request's body: `--body-read-timeout-ms`, `--body-min-rate`.
    pub fn body_limits(&self) -> BodyLimits {
        BodyLimits {
            timeout: limit(self.body_read_timeout_ms),
            min_rate: (self.body_min_rate > 0).then_some(self.body_min_rate),
        }
    }

    /// The OTLP exporter, if `--otlp-endpoint` or `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` is
    /// set: the standard variables, then the flags; `service.name` `perf-gateway` unless
    /// `OTEL_SERVICE_NAME` or `OTEL_RESOURCE_ATTRIBUTES` name it.
    pub fn otlp(&self) -> Option<OtlpExporter> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let metrics_endpoint = var("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT");
        if self.otlp_endpoint.is_none() && metrics_endpoint.is_none() {
            return None;
        }
        let mut exporter = OtlpExporter::from_env();
        if let (Some(base), None) = (&self.otlp_endpoint, &metrics_endpoint) {
            exporter = exporter.endpoint(base);
        }
        if let Some(ms) = self.otlp_interval_ms {
            exporter = exporter.interval(Duration::from_millis(ms));
        }
        let named = var("OTEL_SERVICE_NAME").is_some()
            || var("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|a| a.contains("service.name"));
        if !named {
            exporter = exporter.service_name("perf-gateway");
        }
        Some(exporter)
    }

    /// The mock provider's timing, from the `--mock-*` flags, and the models it lists: those of
    /// `--allowed-models`, else a few of OpenAI's names.
    pub fn mock(&self) -> MockConfig {
        let chunk_interval = Duration::from_millis(self.mock_chunk_interval_ms);
        MockConfig {
            ttfb: Duration::from_millis(self.mock_ttfb_ms),
            first_token: self
                .mock_first_token_ms
                .map_or(chunk_interval, Duration::from_millis),
            chunks: self.mock_chunks,
            chunk_interval,
            jitter: Duration::from_millis(self.mock_jitter_ms),
            fail_every: self.mock_fail_every,
            requests_per_minute: self.mock_requests_per_minute,
            models: self
                .label_settings()
                .allowed_models
                .unwrap_or_else(|| DEFAULT_MODELS.iter().map(|&m| m.to_owned()).collect()),
        }
    }
}

/// `ms` milliseconds, or `None` for 0 (no limit).
fn limit(ms: u64) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(ms))
}
