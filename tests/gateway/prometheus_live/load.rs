//! The example gateway in this process, and the virtual clients that load it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use serde_json::json;

use super::server::http_client;

/// A running example gateway: where it listens, and whatever keeps it running until dropped.
pub struct RunningGateway {
    pub addr: SocketAddr,
    _handle: Box<dyn std::any::Any + Send>,
}

/// Starts the example gateway (`perf::Gateway`, the library behind `examples/gateway.rs`) in
/// this process on an ephemeral loopback port, on its built-in mock provider: time to first byte
/// `ttfb` ± 50 ms, and short streams (8 chunks 10 ms apart, so streaming p95 stays far below
/// 1.5 s). `/metrics` is served on the same address; the clients of [`load`] send the key
/// `demo-key`, of the tenant `demo`. Its prices ([`PRICES`]) price `gpt-4o-mini` and leave
/// `llama-3.1-8b-instruct` unpriced, so that the spend panels and the unpriced one all have
/// data. Flags given here win over any `GATEWAY_*` environment variable.
pub async fn start_gateway(ttfb: Duration) -> RunningGateway {
    let ttfb_ms = ttfb.as_millis().to_string();
    let prices = std::env::temp_dir().join(format!("perf-live-prices-{}.json", std::process::id()));
    std::fs::write(&prices, PRICES).expect("a price file");
    let config = perf::Config::parse_from([
        "gateway",
        "--listen",
        "127.0.0.1:0",
        "--api-key",
        "demo-key=demo",
        "--prices",
        prices.to_str().expect("a UTF-8 temporary directory"),
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

/// The live gateway's price table: LiteLLM's field names, one of the clients' two models.
const PRICES: &str = r#"{"gpt-4o-mini": {"litellm_provider": "openai", "input_cost_per_token": 1.5e-7,
    "output_cost_per_token": 6e-7, "cache_read_input_token_cost": 7.5e-8}}"#;

/// What the clients did.
#[derive(Default)]
pub struct LoadStats {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
    pub last_error: std::sync::Mutex<String>,
    /// The 502s of [`failing_client`]'s requests, which its provider answers 503.
    pub provider_errors: AtomicU64,
}

/// One more client, whose requests the mock answers 503 (`fault:status-503`), one every
/// 500 ms until `stop`, so that `backend_errors_total` has data: each must be a 502.
pub fn failing_client(
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
pub fn load(
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
