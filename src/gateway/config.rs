//! Command-line flags of the gateway, each also readable from an environment variable.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;

use super::mock::MockConfig;

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
        GET /metrics (Prometheus) and GET /healthz, and forwards every request over HTTP to a \
        built-in mock provider, or to a real OpenAI-compatible provider given with --upstream."
)]
pub struct Config {
    /// Address the gateway listens on.
    #[arg(long, env = "GATEWAY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// An API key clients must send as `Authorization: Bearer KEY` (repeat the flag for several;
    /// the variable takes a comma-separated list).
    #[arg(
        long = "api-key",
        value_name = "KEY",
        env = "GATEWAY_API_KEYS",
        value_delimiter = ',',
        default_value = "demo-key",
        hide_env_values = true
    )]
    pub api_keys: Vec<String>,

    /// Base URL of a real OpenAI-compatible provider, e.g. `https://api.openai.com/v1` (the gateway
    /// appends /chat/completions or /responses). Without it, a built-in mock provider is started.
    #[arg(long, value_name = "URL", env = "GATEWAY_UPSTREAM")]
    pub upstream: Option<reqwest::Url>,

    /// API key sent to the upstream provider as `Authorization: Bearer KEY`.
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

    /// Mock provider: delay before each chunk, in milliseconds.
    #[arg(
        long,
        value_name = "N",
        env = "GATEWAY_MOCK_CHUNK_INTERVAL_MS",
        default_value_t = 50
    )]
    pub mock_chunk_interval_ms: u64,

    /// Mock provider: each delay varies at random by up to ±N ms (never by more than the delay
    /// itself, so the mean stays as set).
    #[arg(
        long,
        value_name = "N",
        env = "GATEWAY_MOCK_JITTER_MS",
        default_value_t = 100
    )]
    pub mock_jitter_ms: u64,

    /// Also drive synthetic traffic from a few virtual clients and print a live table of
    /// p50/p95/p99 per stage and the split of the time, every few seconds.
    #[arg(long, env = "GATEWAY_DEMO")]
    pub demo: bool,
}

impl Config {
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

    /// The mock provider's timing, from the `--mock-*` flags.
    pub fn mock(&self) -> MockConfig {
        MockConfig {
            ttfb: Duration::from_millis(self.mock_ttfb_ms),
            chunks: self.mock_chunks,
            chunk_interval: Duration::from_millis(self.mock_chunk_interval_ms),
            jitter: Duration::from_millis(self.mock_jitter_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn flags_are_consistent() {
        Config::command().debug_assert();
    }

    #[test]
    fn api_key_repeats() {
        let config = Config::parse_from(["gateway", "--api-key", "a", "--api-key", "b"]);
        assert_eq!(config.api_keys, ["a", "b"]);
    }

    #[test]
    fn provider_defaults_to_mock_then_upstream_host() {
        let config = Config::parse_from(["gateway"]);
        assert_eq!(config.provider_label(), "mock");
        let config = Config::parse_from(["gateway", "--upstream", "https://api.openai.com/v1"]);
        assert_eq!(config.provider_label(), "api.openai.com");
    }
}
