//! Memory after a burst (BENCHMARKS.md, "Memory after a burst"; issue item 8): starts the
//! example gateway's binary with a fast mock, warms it up, reads its resident set, sends a burst
//! of concurrent streamed chat completions, then reads the resident set again at 10, 30 and 60 s
//! after the burst's last stream ended. Linux only (`/proc/PID/status`).
//!
//! ```sh
//! cargo build --release --example gateway --example burst
//! target/release/examples/burst                        # 6,000 streams, the gateway beside it
//! target/release/examples/burst --streams 2000 --after 5,10 -- --mock-chunk-interval-ms 50
//! ```
//!
//! Arguments after `--` replace the gateway's default ones (the mock's timing and
//! `--max-connections 20000`); the gateway inherits the environment (e.g. `MALLOC_ARENA_MAX`).
//! It prints a table for people and one JSON line (KiB) last.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;

#[allow(dead_code)] // the test's parts
#[path = "../tests/common/memory.rs"]
mod memory;

#[derive(Debug, Parser)]
#[command(name = "burst")]
struct Args {
    /// The gateway's binary [default: `gateway` beside this one, target/PROFILE/examples/].
    #[arg(long)]
    gateway: Option<PathBuf>,

    /// Concurrent streams in the burst.
    #[arg(long, default_value_t = 6000)]
    streams: usize,

    /// Warm-up streams before the pre-burst reading, 100 at a time.
    #[arg(long, default_value_t = 1000)]
    warmup: usize,

    /// Seconds after the burst at which the resident set is read, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10,30,60")]
    after: Vec<u64>,

    /// The gateway's arguments besides `--listen` and `--api-key`.
    #[arg(last = true)]
    gateway_args: Vec<String>,
}

const DEFAULT_GATEWAY_ARGS: &[&str] = &[
    "--mock-ttfb-ms",
    "20",
    "--mock-chunks",
    "26",
    "--mock-chunk-interval-ms",
    "20",
    "--mock-jitter-ms",
    "0",
    "--max-connections",
    "20000",
];

fn main() -> ExitCode {
    let args = Args::parse();
    // The client holds one connection per stream, as the gateway does.
    if let Err(e) = perf::gateway::server::raise_open_file_limit() {
        eprintln!("burst: the open-file limit could not be raised: {e}");
    }
    let binary = args.gateway.clone().unwrap_or_else(|| {
        memory::gateway_binary_beside(&std::env::current_exe().expect("this executable"))
    });
    let gateway_args: Vec<String> = if args.gateway_args.is_empty() {
        DEFAULT_GATEWAY_ARGS.iter().map(|s| s.to_string()).collect()
    } else {
        args.gateway_args.clone()
    };
    let gateway = match memory::Spawned::start(&binary, &gateway_args, Duration::from_secs(30)) {
        Ok(gateway) => gateway,
        Err(e) => {
            eprintln!("burst: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let pid = gateway.pid();
    let url = gateway.chat_url();
    let started = gateway.rss_kib();
    let (before, burst, after) = runtime.block_on(async {
        memory::warm_up(&url, args.warmup, 100, pid, Duration::from_secs(2)).await;
        let before = gateway.rss_kib();
        let burst = memory::burst(&url, args.streams, pid).await;
        let end = Instant::now();
        let at: Vec<Duration> = args.after.iter().map(|&s| Duration::from_secs(s)).collect();
        (before, burst, memory::rss_after(pid, end, &at).await)
    });
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!("gateway {} {}", binary.display(), gateway_args.join(" "));
    println!(
        "burst: {} streams, {} completed, {} failed, {} open at most, {:.1} s",
        args.streams,
        burst.completed,
        burst.failed,
        burst.most_open,
        burst.took.as_secs_f64()
    );
    print!(
        "RSS MiB: started {:.1}, before {:.1}, peak {:.1}",
        mib(started),
        mib(before),
        mib(burst.peak_kib)
    );
    for (s, kib) in args.after.iter().zip(&after) {
        print!(", {s} s after {:.1}", mib(*kib));
    }
    let last = after.last().copied().unwrap_or(burst.peak_kib);
    println!(" ({:.2}× before)", last as f64 / before as f64);
    let after_json: Vec<String> = args
        .after
        .iter()
        .zip(&after)
        .map(|(s, kib)| format!("\"{s}\":{kib}"))
        .collect();
    println!(
        "{{\"streams\":{},\"completed\":{},\"most_open\":{},\"started_kib\":{started},\
         \"before_kib\":{before},\"peak_kib\":{},\"after_kib\":{{{}}}}}",
        args.streams,
        burst.completed,
        burst.most_open,
        burst.peak_kib,
        after_json.join(",")
    );
    ExitCode::SUCCESS
}
