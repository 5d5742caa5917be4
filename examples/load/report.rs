//! What the load generator counts and how it tells it: the tally of each client, merged, then
//! printed as one JSON line for scripts and one line for people; apart from the loops that
//! produce the numbers.

use std::time::Duration;

use super::Args;

/// What one client saw: in the measured window, but `completed_all`.
#[derive(Debug, Default)]
pub struct Tally {
    /// Latency of each successful request, in nanoseconds (with `--rate`, from the time it was
    /// due).
    pub latencies: Vec<u64>,
    /// With `--rate`: how late each successful request was sent, in nanoseconds.
    pub lags: Vec<u64>,
    /// With `--rate`: requests due in the window, and those of them not answered in time.
    pub scheduled: u64,
    pub unfinished: u64,
    pub errors: u64,
    pub bytes: u64,
    /// Every request completed, warm-up included, successful or not.
    pub completed_all: u64,
    pub first_error: Option<String>,
    /// How long the measured window lasted (all clients together).
    pub window: Duration,
    /// How long the whole run lasted, warm-up (and with `--rate`, draining) included.
    pub elapsed: Duration,
    /// CPU time of the threads of the run that ended before it (the scheduling thread).
    pub ended_threads: Sched,
    /// Scrapes completed (status 200, body read) inside the measured window, and their bytes.
    pub scrapes: u64,
    pub scrape_bytes: u64,
}

impl Tally {
    pub fn merge(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        self.lags.extend(other.lags);
        self.scheduled += other.scheduled;
        self.unfinished += other.unfinished;
        self.errors += other.errors;
        self.bytes += other.bytes;
        self.completed_all += other.completed_all;
        self.scrapes += other.scrapes;
        self.scrape_bytes += other.scrape_bytes;
        self.ended_threads.add(other.ended_threads);
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// Time on a CPU and time runnable but waiting for one, in nanoseconds, from Linux's
/// `schedstat` (`None` elsewhere): whether the load generator, rather than the server, was the
/// bottleneck, and whether something else on the machine kept it waiting.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sched {
    pub on_cpu: u64,
    pub waiting: u64,
}

impl Sched {
    fn read(path: &std::path::Path) -> Option<Sched> {
        let stat = std::fs::read_to_string(path).ok()?;
        let mut fields = stat.split_whitespace().map(|f| f.parse::<u64>().ok());
        Some(Sched {
            on_cpu: fields.next()??,
            waiting: fields.next()??,
        })
    }

    /// The calling thread's so far: for a thread to hand over before it ends.
    pub fn this_thread() -> Option<Sched> {
        Sched::read("/proc/thread-self/schedstat".as_ref())
    }

    /// This process's live threads' so far, plus `ended` (threads that have ended).
    pub fn this_process(ended: Sched) -> Option<Sched> {
        let mut total = ended;
        for task in std::fs::read_dir("/proc/self/task").ok()? {
            let one = Sched::read(&task.ok()?.path().join("schedstat"))?;
            total.add(one);
        }
        Some(total)
    }

    pub fn add(&mut self, other: Sched) {
        self.on_cpu += other.on_cpu;
        self.waiting += other.waiting;
    }
}

/// The `q` quantile of sorted nanoseconds (nearest rank: exact, every value is kept), in
/// microseconds; 0 for none.
fn quantile_us(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64 / 1e3
}

/// `x` rounded to `digits` decimals, for the JSON line.
fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

pub fn report(args: &Args, tally: &Tally, sched: Option<Sched>) {
    let mut latencies = tally.latencies.clone();
    latencies.sort_unstable();
    let requests = latencies.len();
    let secs = tally.window.as_secs_f64();
    let rps = if secs > 0.0 {
        requests as f64 / secs
    } else {
        0.0
    };
    let [p50, p90, p99, p999, max] =
        [0.50, 0.90, 0.99, 0.999, 1.0].map(|q| quantile_us(&latencies, q));
    let mut lags = tally.lags.clone();
    lags.sort_unstable();
    let [lag50, lag99, lag_max] = [0.50, 0.99, 1.0].map(|q| quantile_us(&lags, q));
    let mode = if args.stream { "stream" } else { "json" };
    // CPUs' worth of time the load generator used over its whole run (warm-up included), and
    // spent waiting for a CPU.
    let elapsed = tally.elapsed.as_secs_f64().max(1e-9);
    let busy = sched.map(|s| s.on_cpu as f64 / 1e9 / elapsed);
    let waiting = sched.map(|s| s.waiting as f64 / 1e9 / elapsed);
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
        "p50_ms": round(p50 / 1e3, 3),
        "p99_ms": round(p99 / 1e3, 3),
        "p50_us": round(p50, 1),
        "p90_us": round(p90, 1),
        "p99_us": round(p99, 1),
        "p999_us": round(p999, 1),
        "max_us": round(max, 1),
        "rate": args.rate,
        "scheduled": tally.scheduled,
        "unfinished": tally.unfinished,
        "lag_p50_us": round(lag50, 1),
        "lag_p99_us": round(lag99, 1),
        "lag_max_us": round(lag_max, 1),
        "bytes": tally.bytes,
        "total_requests": tally.completed_all,
        "load_cpus": busy.map(|b| round(b, 2)),
        "load_wait": waiting.map(|w| round(w, 3)),
        "scrapers": args.scrapers,
        "scrapes": tally.scrapes,
        "scrape_bytes": tally.scrape_bytes,
    });
    println!("{line}");
    let busy = busy.zip(waiting).map_or(String::new(), |(b, w)| {
        format!(", {b:.2} CPUs busy, {w:.3} waiting for one")
    });
    if let Some(rate) = args.rate {
        eprintln!(
            "{mode}: {rate:.0} requests/s due, {rps:.0}/s answered ({requests} of {} in {secs:.1} s, \
             {} errors), latency from the due time p50 {p50:.1} µs, p90 {p90:.1}, p99 {p99:.1}, \
             p99.9 {p999:.1}, max {max:.1}; sent late by p50 {lag50:.1} µs, p99 {lag99:.1}, \
             max {lag_max:.1}; at most {} in flight, {} thread(s){busy}",
            tally.scheduled, tally.errors, args.concurrency, args.threads,
        );
    } else {
        eprintln!(
            "{mode}: {rps:.0} requests/s ({requests} in {secs:.1} s, {} errors), latency p50 \
             {:.2} ms, p99 {:.2} ms; {} clients on {} thread(s){busy}",
            tally.errors,
            p50 / 1e3,
            p99 / 1e3,
            args.concurrency,
            args.threads,
        );
    }
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
