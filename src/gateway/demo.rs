//! `--demo`: a few virtual clients send a steady mix of requests through the gateway, and a
//! table of where the time goes is printed every few seconds.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::task::JoinSet;

use super::demo_table;

/// Virtual clients, each sending one request at a time.
pub const CLIENTS: usize = 4;

/// How often the table is printed.
pub const REPORT_EVERY: Duration = Duration::from_secs(5);

/// Pause of a client between two requests.
const THINK_TIME: Duration = Duration::from_millis(250);

/// Synthetic traffic and the live table, running in the background until stopped.
#[derive(Debug)]
pub struct Demo {
    tasks: JoinSet<()>,
}

#[derive(Debug, Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
}

impl Demo {
    /// Starts [`CLIENTS`] clients sending to the gateway at `base_url` (e.g.
    /// `http://127.0.0.1:8080/v1`) with `api_key`, and the table printer.
    pub fn start(base_url: &str, api_key: &str) -> reqwest::Result<Demo> {
        let http = reqwest::Client::builder().no_proxy().build()?;
        let tally = Arc::new(Tally::default());
        let mut tasks = JoinSet::new();
        for id in 0..CLIENTS {
            let client = VirtualClient {
                id,
                http: http.clone(),
                base_url: base_url.to_owned(),
                api_key: api_key.to_owned(),
                tally: Arc::clone(&tally),
            };
            tasks.spawn(client.run());
        }
        tasks.spawn(print_table_every(REPORT_EVERY, tally));
        Ok(Demo { tasks })
    }

    /// Stops the clients (their open requests are dropped, as by a client that hangs up) and
    /// the table.
    pub async fn stop(mut self) {
        self.tasks.shutdown().await;
    }
}

struct VirtualClient {
    id: usize,
    http: reqwest::Client,
    base_url: String,
    api_key: String,
    tally: Arc<Tally>,
}

impl VirtualClient {
    async fn run(self) {
        for n in 0usize.. {
            let ok = self.send(n).await.is_ok();
            let counter = if ok {
                &self.tally.ok
            } else {
                &self.tally.failed
            };
            counter.fetch_add(1, Relaxed);
            tokio::time::sleep(THINK_TIME).await;
        }
    }

    /// The `n`th request of this client: streamed, as from a chat UI; mostly chat completions,
    /// one in four on the Responses API.
    async fn send(&self, n: usize) -> reqwest::Result<()> {
        let model = ["gpt-4o-mini", "gpt-4o"][self.id % 2];
        let prompt = format!("Hello from virtual client {}, request {n}", self.id);
        let (path, body) = if (self.id + n) % 4 == 3 {
            let body = json!({"model": model, "input": prompt, "stream": true});
            ("/responses", body)
        } else {
            let messages = [json!({"role": "user", "content": prompt})];
            let body = json!({"model": model, "messages": messages, "stream": true});
            ("/chat/completions", body)
        };
        self.http
            .post(format!("{}{path}", self.base_url))
            .bearer_auth(&self.api_key)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        Ok(())
    }
}

async fn print_table_every(every: Duration, tally: Arc<Tally>) {
    let start = Instant::now();
    let clear = std::io::stdout().is_terminal();
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        ticks.tick().await;
        let metrics = perf_runtime::Metrics::global();
        let table = demo_table::render(metrics);
        let output_tokens = perf_runtime::metrics::snapshot::counter(
            metrics,
            perf_runtime::metrics::BACKEND_TOKENS,
            &[("type", "output")],
        );
        let elapsed = start.elapsed().as_secs_f64();
        if clear {
            print!("\x1b[2J\x1b[H");
        }
        println!(
            "perf demo: {CLIENTS} virtual clients, {elapsed:.0} s, {} requests answered, {} failed, \
             {:.0} output tokens/s",
            tally.ok.load(Relaxed),
            tally.failed.load(Relaxed),
            output_tokens.unwrap_or_default() as f64 / elapsed,
        );
        println!("{table}");
    }
}
