//! What the load generator counts and how it tells it: the tally of each client, merged, then
//! printed as one JSON line for scripts and one line for people; apart from the loops that
//! produce the numbers.

use std::time::Duration;

use super::Args;

/// What one client saw: in the measured window, but `completed_all`.
#[derive(Debug, Default)]
pub struct Tally {
    /// Latency of each successful request, in nanoseconds.
    pub latencies: Vec<u64>,
    pub errors: u64,
    pub bytes: u64,
    /// Every request completed, warm-up included, successful or not.
    pub completed_all: u64,
    pub first_error: Option<String>,
    /// How long the measured window lasted (all clients together).
    pub window: Duration,
    /// Scrapes completed (status 200, body read) inside the measured window, and their bytes.
    pub scrapes: u64,
    pub scrape_bytes: u64,
}

impl Tally {
    pub fn merge(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        self.errors += other.errors;
        self.bytes += other.bytes;
        self.completed_all += other.completed_all;
        self.scrapes += other.scrapes;
        self.scrape_bytes += other.scrape_bytes;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// CPU time of this process's live threads so far, in seconds, from
/// `/proc/self/task/*/schedstat` (Linux; `None` elsewhere): to show whether the load generator,
/// rather than the server, was the bottleneck.
pub fn own_cpu_secs() -> Option<f64> {
    let mut nanos = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        nanos += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(nanos as f64 / 1e9)
}

/// The `q` quantile of sorted `values` (nearest rank), in milliseconds.
fn quantile_ms(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64 / 1e6
}

pub fn report(args: &Args, tally: &Tally, cpu_secs: Option<f64>) {
    let mut latencies = tally.latencies.clone();
    latencies.sort_unstable();
    let requests = latencies.len();
    let secs = tally.window.as_secs_f64();
    let rps = if secs > 0.0 {
        requests as f64 / secs
    } else {
        0.0
    };
    let p50 = quantile_ms(&latencies, 0.50);
    let p99 = quantile_ms(&latencies, 0.99);
    let mode = if args.stream { "stream" } else { "json" };
    // CPUs' worth of time the load generator used over its whole run (warm-up included).
    let busy = cpu_secs.map(|cpu| cpu / (args.warmup_secs + secs));
    let line = serde_json::json!({
        "mode": mode,
        "url": args.url.as_str(),
        "concurrency": args.concurrency,
        "threads": args.threads,
        "duration_secs": (secs * 1000.0).round() / 1000.0,
        "warmup_secs": args.warmup_secs,
        "requests": requests,
        "errors": tally.errors,
        "rps": (rps * 10.0).round() / 10.0,
        "p50_ms": (p50 * 1000.0).round() / 1000.0,
        "p99_ms": (p99 * 1000.0).round() / 1000.0,
        "bytes": tally.bytes,
        "total_requests": tally.completed_all,
        "load_cpus": busy.map(|b| (b * 100.0).round() / 100.0),
        "scrapers": args.scrapers,
        "scrapes": tally.scrapes,
        "scrape_bytes": tally.scrape_bytes,
    });
    println!("{line}");
    let busy = busy.map_or(String::new(), |b| format!(", {b:.2} CPUs busy"));
    eprintln!(
        "{mode}: {rps:.0} requests/s ({requests} in {:.1} s, {} errors), latency p50 {p50:.2} ms, \
         p99 {p99:.2} ms; {} clients on {} thread(s){busy}",
        secs, tally.errors, args.concurrency, args.threads,
    );
    if args.scrapers > 0 {
        let per_sec = if secs > 0.0 {
            tally.scrapes as f64 / secs
        } else {
            0.0
        };
        eprintln!(
            "  {} scrapers: {per_sec:.0} scrapes/s, {:.1} MB each",
            args.scrapers,
            tally.scrape_bytes as f64 / tally.scrapes.max(1) as f64 / 1e6
        );
    }
    if let Some(error) = &tally.first_error {
        eprintln!("  first error: {error}");
    }
}
