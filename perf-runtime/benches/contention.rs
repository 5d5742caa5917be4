//! Contention: whole requests recorded from 1 and from 2 threads at once (`--threads N`: from N
//! threads), all on the same endpoint and model (so every thread writes the same series), and
//! the throughput ratio N threads / 1 thread. The issue's target for perf is at least 1.8× at 2
//! threads.
//!
//! Each row is one build of the handler of `common/mod.rs` ((a) uninstrumented, (b) macros,
//! (c) seed style, (d) runtime API), run as in the `overhead` bench; two reference rows time a
//! bare prometheus `Histogram::observe` and a relaxed `fetch_add`, each on one series / one
//! counter shared by the threads. Row (a) shares nothing: its ratio is what the machine gives
//! two threads at the moment (other work on a shared 2-core machine lowers it), and the last
//! column divides each row's ratio by (a)'s of the same round.
//!
//! Each round runs every row in turn, each at 1 thread then at N, so that a row and (a) see the
//! same background load within a round (on a VM whose second core comes and goes, rows timed
//! one after the other saw different machines); the table gives the medians over the rounds.
//! Each thread runs a fixed number of requests (about `--secs` seconds' worth at one thread,
//! calibrated), timed from a barrier to the last join.
//!
//! ```sh
//! cargo bench -p perf-runtime --features bench-internals --bench contention
//! cargo bench -p perf-runtime --features bench-internals --bench contention -- --rounds 9 --secs 0.5 d_runtime_api
//! cargo bench -p perf-runtime --features bench-internals --bench contention -- --threads 16
//! cargo bench -p perf-runtime --features bench-internals --bench contention -- --help
//! ```
//! A trailing word keeps only the rows whose name contains it.
//!
//! At N threads the ratio is bounded by the cores the threads get (at most N, at most the
//! machine's physical cores), and beyond 8 threads (`SHARDS` in `src/metrics/shard.rs`) some
//! threads share a shard, so their writes meet on the same cache lines again.

mod common;

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use common::{Variant, BODY};
use prometheus::{Histogram, HistogramOpts};

/// Wall time of `threads` threads each running `f` `per_thread` times, started together: from
/// the first thread's start to the last thread's end, as each thread reads them itself (the
/// main thread may not be running when the barrier opens).
fn timed(threads: usize, per_thread: u64, f: &(dyn Fn() + Sync)) -> Duration {
    let barrier = Barrier::new(threads);
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..per_thread {
                        f();
                    }
                    (start, Instant::now())
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a worker panicked"))
            .collect()
    });
    let start = spans
        .iter()
        .map(|s| s.0)
        .min()
        .expect("one thread at least");
    let end = spans
        .iter()
        .map(|s| s.1)
        .max()
        .expect("one thread at least");
    end - start
}

/// A row being measured: its work, the requests per thread and per round, and each round's
/// operations per second at 1 and at N threads.
struct Row<'a> {
    name: &'static str,
    f: &'a (dyn Fn() + Sync),
    per_thread: u64,
    one: Vec<f64>,
    many: Vec<f64>,
}

impl<'a> Row<'a> {
    /// Warmed up (first use resolves handles), its count calibrated to about `secs` seconds.
    fn new(name: &'static str, f: &'a (dyn Fn() + Sync), secs: f64) -> Self {
        for _ in 0..1000 {
            f();
        }
        let probe = 20_000;
        let per_op = timed(1, probe, f).as_secs_f64() / probe as f64;
        Row {
            name,
            f,
            per_thread: ((secs / per_op) as u64).max(1000),
            one: Vec::new(),
            many: Vec::new(),
        }
    }

    /// One round: 1 thread, then `threads`.
    fn round(&mut self, threads: usize) {
        let (f, n) = (self.f, self.per_thread);
        self.one.push(n as f64 / timed(1, n, f).as_secs_f64());
        self.many
            .push(threads as f64 * n as f64 / timed(threads, n, f).as_secs_f64());
    }

    /// Round `r`'s throughput at N threads over 1 thread.
    fn ratio(&self, r: usize) -> f64 {
        self.many[r] / self.one[r]
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

struct Args {
    rounds: usize,
    secs: f64,
    threads: usize,
    filter: Option<String>,
}

const USAGE: &str = "\
contention: throughput of whole requests from 1 thread and from N threads at once, on one series

usage: cargo bench -p perf-runtime --features bench-internals --bench contention -- [OPTIONS] [WORD]

  --threads N   the threads of the second column (default 2; the target, >= 1.8x, is at 2)
  --rounds R    rounds, each every row at 1 thread then N (default 7); the table gives the medians
  --secs S      each thread's work per round, in seconds at 1 thread (default 0.3)
  WORD          only the rows whose name contains WORD (and row (a), the machine's reference)
  --help        this text";

/// The next argument as a count of at least 1, else `default`.
fn count(it: &mut impl Iterator<Item = String>, default: usize) -> usize {
    it.next()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n >= 1)
        .unwrap_or(default)
}

fn args() -> Args {
    let mut args = Args {
        rounds: 7,
        secs: 0.3,
        threads: 2,
        filter: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--rounds" => args.rounds = count(&mut it, 7),
            "--secs" => args.secs = it.next().and_then(|v| v.parse().ok()).unwrap_or(0.3),
            "--threads" => args.threads = count(&mut it, 2),
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            s if s.starts_with('-') => {} // `--bench` from cargo, and the like
            s => args.filter = Some(s.to_owned()),
        }
    }
    args
}

fn main() {
    let args = args();
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let shared = Histogram::with_opts(
        HistogramOpts::new("shared_ttfb_seconds", "one series shared by the threads")
            .buckets(perf_runtime::BACKEND_BUCKETS.to_vec()),
    )
    .expect("valid histogram");
    let counter = AtomicU64::new(0);

    let request = |v: Variant| {
        move || {
            black_box(common::run(black_box(v)));
        }
    };
    let plain = request(Variant::Plain);
    let macros = request(Variant::Macros);
    let seed = request(Variant::Seed);
    let manual = request(Variant::Manual);
    let observe = || shared.observe(black_box(0.123));
    let add = || {
        black_box(&counter).fetch_add(1, Relaxed);
    };
    let cases: [(&'static str, &(dyn Fn() + Sync)); 6] = [
        (Variant::Plain.id(), &plain),
        (Variant::Macros.id(), &macros),
        (Variant::Seed.id(), &seed),
        (Variant::Manual.id(), &manual),
        ("prometheus_observe_one_series", &observe),
        ("atomic_add_one_counter", &add),
    ];
    let _ = BODY;

    let n = args.threads;
    println!(
        "contention: {} rounds, each every row at 1 then {n} threads, ~{} s per thread per row, median",
        args.rounds, args.secs
    );
    println!(
        "{:<32} {:>9} {:>13} {:>13} {:>9} {:>11}",
        "case",
        "ns/op @1",
        "ops/s @1",
        format!("ops/s @{n}"),
        format!("{n}t / 1t"),
        "/ (a) ratio"
    );
    let mut rows: Vec<Row> = cases
        .into_iter()
        .filter(|(name, _)| match &args.filter {
            Some(filter) => name.contains(filter.as_str()) || *name == Variant::Plain.id(),
            None => true,
        })
        .map(|(name, f)| Row::new(name, f, args.secs))
        .collect();
    for _ in 0..args.rounds {
        for row in &mut rows {
            row.round(n);
        }
    }
    // Row (a), the machine's reference, is the first.
    let machine = &rows[0];
    for row in &rows {
        let mut ratios: Vec<f64> = (0..args.rounds).map(|r| row.ratio(r)).collect();
        let mut relative: Vec<f64> = (0..args.rounds)
            .map(|r| row.ratio(r) / machine.ratio(r))
            .collect();
        let one = median(&mut row.one.clone());
        println!(
            "{:<32} {:>9.1} {:>13.0} {:>13.0} {:>8.2}x {:>10.2}x",
            row.name,
            1e9 / one,
            one,
            median(&mut row.many.clone()),
            median(&mut ratios),
            median(&mut relative)
        );
    }
    println!("target: (b) and (d) at 2 threads >= 1.8x their 1-thread throughput");
}
