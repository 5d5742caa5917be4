//! A load generator for the example gateway, on loopback. By default a closed loop:
//! `--concurrency` clients each send one request after another for `--warmup-secs`, then for
//! `--duration-secs` while their completions are counted and timed (requests/s at saturation).
//! With `--rate N`, an open loop: N requests per second on a fixed schedule, whatever the
//! answers, each timed from its scheduled send time (latency at a given load; see `open_loop`).
//!
//! ```sh
//! cargo run --release --example gateway -- --mock-ttfb-ms 0 --mock-chunks 3 \
//!     --mock-chunk-interval-ms 0 --mock-jitter-ms 0 --mock-requests-per-minute 1000000000 &
//! cargo run --release --example load -- --url http://127.0.0.1:8080/v1/chat/completions \
//!     --concurrency 32 --duration-secs 5 --warmup-secs 2 --stream
//! cargo run --release --example load -- --url http://127.0.0.1:8080/v1/chat/completions \
//!     --rate 4000 --duration-secs 5 --warmup-secs 1
//! ```
//!
//! It prints one JSON line on stdout (for scripts: `benches/end-to-end.sh`) and one line for
//! people on stderr. A request counts if it completes inside the measured window, whenever it
//! was sent: a 2xx status and its body read to the end. Anything else (a transport error,
//! another status, a body broken off) is an error; latencies are those of the successful
//! requests, from sending to the last byte of the body. Requests still open when the window
//! closes are dropped, not counted. With `--rate` the window holds the requests *scheduled* in
//! it instead: each is waited for (up to `--drain-secs` after the window) and its latency runs
//! from its scheduled send time to the last byte of its body (the end of the stream for SSE);
//! the line then gives p50, p90, p99, p99.9 and the maximum in µs (exact: every latency is kept)
//! and the rate achieved.
//!
//! `--scrapers N` adds N loops on `/metrics` beside the clients (BENCHMARKS.md, "Scrapes");
//! `--models N` spreads the requests over N model names, e.g. to give `/metrics` 1,000 of them.
//!
//! It refuses any host but loopback, and stops at its deadline whatever the server does.

use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use reqwest::header::{HeaderValue, ACCEPT_ENCODING};
use reqwest::{Client, Url};
use tokio::time::Instant;

#[path = "load/loops.rs"]
mod loops;
#[path = "load/report.rs"]
mod report;
use loops::{closed_loop, open_loop, Target, Window};
use report::{report, Sched, Tally};

/// Closed-loop (or, with `--rate`, open-loop) load on the example gateway, on loopback.
#[derive(Debug, Clone, Parser)]
#[command(name = "load")]
struct Args {
    /// The endpoint to load: `.../v1/chat/completions` or `.../v1/responses` (the body follows
    /// the path). Loopback hosts only.
    #[arg(long, default_value = "http://127.0.0.1:8080/v1/chat/completions")]
    url: Url,

    /// The client key, sent as `Authorization: Bearer KEY`.
    #[arg(long, default_value = "demo-key")]
    key: String,

    /// The `model` of every request.
    #[arg(long, default_value = "gpt-4o-mini")]
    model: String,

    /// Clients, each with one request in flight at a time. With `--rate`: the most requests in
    /// flight at once (a scheduled request that finds them all taken waits, its clock running).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,

    /// Open loop: send this many requests per second, request i at `i / RATE` seconds from the
    /// start, whether or not the earlier ones were answered, and time each from its scheduled
    /// send time, so that a server that falls behind is charged for the requests it delayed
    /// (no coordinated omission). Without it, the closed loop of `--concurrency` clients.
    #[arg(long)]
    rate: Option<f64>,

    /// With `--rate`: how long, after the window, requests scheduled in it may take to finish;
    /// those still open then are errors.
    #[arg(long, default_value_t = 5.0)]
    drain_secs: f64,

    /// Length of the measured window, in seconds.
    #[arg(long, default_value_t = 5.0)]
    duration_secs: f64,

    /// Load before the measured window (connections opened, caches warm), in seconds.
    #[arg(long, default_value_t = 2.0)]
    warmup_secs: f64,

    /// Ask for SSE streams (`"stream": true`) and read each to its end; else JSON answers.
    #[arg(long)]
    stream: bool,

    /// Worker threads of the load generator's runtime; 1 runs it on a single-threaded runtime,
    /// leaving the other cores to the server.
    #[arg(long, default_value_t = 1)]
    threads: usize,

    /// Send at most this many requests in all, warm-up included, then stop (before the
    /// deadline if they are done): a fixed amount of work, e.g. to count a server's
    /// instructions per request.
    #[arg(long)]
    requests: Option<u64>,

    /// Spread the requests over this many model names (`MODEL-0`, `MODEL-1`, ...), in turn:
    /// with 1 (the default) every request asks for `--model` itself.
    #[arg(long, default_value_t = 1)]
    models: usize,

    /// Scrapers that GET `--scrape-url` back to back during the whole run (each body read to
    /// its end), beside the clients: what looping Prometheus scrapers cost the API.
    #[arg(long, default_value_t = 0)]
    scrapers: usize,

    /// What the scrapers GET [default: `/metrics` on the host and port of `--url`]. Loopback
    /// hosts only.
    #[arg(long)]
    scrape_url: Option<Url>,

    /// Each scraper starts a scrape every this many milliseconds (as Prometheus does at its
    /// scrape interval); 0 loops, one scrape right after the other.
    #[arg(long, default_value_t = 0)]
    scrape_interval_ms: u64,

    /// Scrapers ask for the plain text; by default they send `Accept-Encoding: gzip`, as
    /// Prometheus does (and count the bytes as they come, compressed or not).
    #[arg(long)]
    scrape_identity: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(message) = check(&args) {
        eprintln!("load: {message}");
        return ExitCode::from(2);
    }
    let runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("load: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let tally = match runtime.block_on(run(&args)) {
        Ok(tally) => tally,
        Err(message) => {
            eprintln!("load: {message}");
            return ExitCode::FAILURE;
        }
    };
    let sched = Sched::this_process(tally.ended_threads);
    report(&args, &tally, sched);
    if tally.latencies.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Refuses what this tool is not for: a host off the machine, or settings that measure nothing.
fn check(args: &Args) -> Result<(), String> {
    for url in std::iter::once(&args.url).chain(&args.scrape_url) {
        let host = url.host_str().unwrap_or_default();
        let ip = host.trim_start_matches('[').trim_end_matches(']');
        let loopback = host == "localhost" || ip.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if !loopback || url.scheme() != "http" {
            return Err(format!(
                "only http:// on loopback (127.0.0.1, [::1], localhost) is loaded, not {url}"
            ));
        }
    }
    if args.concurrency == 0 || args.threads == 0 || args.models == 0 {
        return Err("--concurrency, --threads and --models must be at least 1".into());
    }
    let finite = |s: f64| s.is_finite() && (0.0..=3600.0).contains(&s);
    if !finite(args.warmup_secs) || !finite(args.duration_secs) || args.duration_secs == 0.0 {
        return Err("--duration-secs must be in (0, 3600], --warmup-secs in [0, 3600]".into());
    }
    if !finite(args.drain_secs) {
        return Err("--drain-secs must be in [0, 3600]".into());
    }
    if let Some(rate) = args.rate {
        if !(rate.is_finite() && rate > 0.0 && rate <= 1e6) {
            return Err("--rate must be in (0, 1000000] requests per second".into());
        }
    }
    Ok(())
}

/// The request body for the endpoint `url` points at, asking for `model`.
fn body(args: &Args, model: &str) -> Bytes {
    let value = if args.url.path().ends_with("/responses") {
        serde_json::json!({"model": model, "input": "Hi", "stream": args.stream})
    } else {
        serde_json::json!({
            "model": model,
            "messages": [{"role": "user", "content": "Hi"}],
            "stream": args.stream,
        })
    };
    Bytes::from(value.to_string())
}

/// The request bodies, one per model of `--models`, used in turn.
fn bodies(args: &Args) -> Arc<Vec<Bytes>> {
    let bodies = if args.models == 1 {
        vec![body(args, &args.model)]
    } else {
        (0..args.models)
            .map(|i| body(args, &format!("{}-{i}", args.model)))
            .collect()
    };
    Arc::new(bodies)
}

/// `--scrape-url`, or `/metrics` on the host and port of `--url`.
fn scrape_url(args: &Args) -> Url {
    args.scrape_url.clone().unwrap_or_else(|| {
        let mut url = args.url.clone();
        url.set_path("/metrics");
        url.set_query(None);
        url
    })
}

/// One scraper: GETs `url` back to back until `end`; counts the scrapes that completed in the
/// window `[measure_from, end)`.
async fn scraper(
    client: Client,
    url: Url,
    gzip: bool,
    interval: Duration,
    measure_from: Instant,
    end: Instant,
) -> Tally {
    let mut tally = Tally::default();
    let work = async {
        let mut next = Instant::now();
        loop {
            if !interval.is_zero() {
                tokio::time::sleep_until(next).await;
                next += interval;
            }
            let result = async {
                let encoding = if gzip { "gzip" } else { "identity" };
                let response = client
                    .get(url.clone())
                    .header(ACCEPT_ENCODING, encoding)
                    .send()
                    .await
                    .ok()?;
                if !response.status().is_success() {
                    return None;
                }
                Some(response.bytes().await.ok()?.len() as u64)
            }
            .await;
            match result {
                Some(bytes) if Instant::now() >= measure_from => {
                    tally.scrapes += 1;
                    tally.scrape_bytes += bytes;
                }
                Some(_) => {}
                None => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    };
    tokio::select! {
        () = work => {}
        () = tokio::time::sleep_until(end) => {}
    }
    tally
}

/// Runs the clients until the end of the measured window, and gathers what they saw in it.
async fn run(args: &Args) -> Result<Tally, String> {
    let client = Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(args.concurrency)
        .connect_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let auth = HeaderValue::from_str(&format!("Bearer {}", args.key))
        .map_err(|_| "--key is not a valid header value".to_owned())?;
    let target = Arc::new(Target {
        client: client.clone(),
        url: args.url.clone(),
        auth,
        bodies: bodies(args),
        stream: args.stream,
    });
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup_secs);
    let window = Window {
        start,
        measure_from,
        end: measure_from + Duration::from_secs_f64(args.duration_secs),
    };
    let scrapers: Vec<_> = (0..args.scrapers)
        .map(|i| {
            let interval = Duration::from_millis(args.scrape_interval_ms);
            // Scrapers at an interval start spread over it, as Prometheus spreads its targets.
            let offset = interval.mul_f64(i as f64 / args.scrapers as f64);
            let gzip = !args.scrape_identity;
            let scraper = scraper(
                client.clone(),
                scrape_url(args),
                gzip,
                interval,
                window.measure_from,
                window.end,
            );
            tokio::spawn(async move {
                tokio::time::sleep(offset).await;
                scraper.await
            })
        })
        .collect();
    let mut total = match args.rate {
        Some(rate) => open_loop(args, rate, target, window).await?,
        None => closed_loop(args, &target, window).await?,
    };
    for scraper in scrapers {
        total.merge(
            scraper
                .await
                .map_err(|e| format!("a scraper task failed: {e}"))?,
        );
    }
    if args.rate.is_none() {
        // The window ends at the deadline, or earlier once `--requests` are done.
        total.window = Instant::now()
            .min(window.end)
            .saturating_duration_since(window.measure_from);
    }
    total.elapsed = start.elapsed();
    Ok(total)
}
