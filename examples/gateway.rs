//! An OpenAI-compatible LLM gateway instrumented with perf, on a built-in mock provider.
//!
//! ```sh
//! cargo run --release --example gateway             # gateway on 127.0.0.1:8080, mock provider
//! cargo run --release --example gateway -- --demo   # plus virtual clients and a live table
//! cargo run --release --example gateway -- --help   # every flag
//! ```
//!
//! The handlers to copy are in `src/gateway/handlers.rs`.

use std::time::Duration;

use clap::Parser;
use perf::gateway::banner::banner;
use perf::gateway::demo::Demo;
use perf::gateway::logger::log_to_stderr;
use perf::gateway::server::raise_open_file_limit;
use perf::{Config, Gateway};

// jemalloc (cargo feature `jemalloc`, default on): what a burst of streams took goes back to the
// system ~10 s after it, where glibc's malloc keeps it (BENCHMARKS.md, "Memory after a burst").
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::parse();
    // Warnings (a provider's failures, by trace id) and perf's own errors, on stderr.
    log_to_stderr();
    // Every connection is a file descriptor: the usual soft limit (1,024) would lock clients
    // out long before --max-connections.
    let open_files = raise_open_file_limit();
    let gateway = Gateway::start(&config).await?;
    // `kill -HUP` reloads --prices (a bad file keeps the prices in use).
    if let Some(path) = &config.prices {
        perf::gateway::prices::reload_on_sighup(path.clone())?;
    }
    let base = gateway.base_url();
    let key = config.client_keys().swap_remove(0);
    // No key in it: fingerprints only, unless the gateway runs on the demo key.
    println!("{}", banner(&config, &gateway, &open_files));

    let demo = if config.demo {
        println!(
            "demo: {} virtual clients; the table comes every few seconds (Ctrl-C stops)",
            perf::gateway::demo::CLIENTS
        );
        Some(Demo::start(&base, &key)?)
    } else {
        None
    };

    tokio::signal::ctrl_c().await?;
    println!("\nshutting down");
    if let Some(demo) = demo {
        demo.stop().await;
    }
    // Open streams get a few seconds to finish.
    if tokio::time::timeout(Duration::from_secs(5), gateway.shutdown())
        .await
        .is_err()
    {
        println!("open requests did not finish in time");
    }
    Ok(())
}
