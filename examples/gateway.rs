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
use perf::gateway::demo::Demo;
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
    // Every connection is a file descriptor: the usual soft limit (1,024) would lock clients
    // out long before --max-connections.
    let open_files = raise_open_file_limit();
    let gateway = Gateway::start(&config).await?;
    let base = gateway.base_url();
    let key = config.api_keys.first().cloned().unwrap_or_default();

    println!("perf example gateway on {base}");
    match gateway.mock() {
        Some(mock) => println!(
            "  provider: built-in mock at {} (TTFB {} ms, first token {} ms later, {} chunks \
             every {} ms, jitter ±{} ms)",
            mock.base_url(),
            config.mock_ttfb_ms,
            config.mock().first_token.as_millis(),
            config.mock_chunks,
            config.mock_chunk_interval_ms,
            config.mock_jitter_ms,
        ),
        None => println!("  provider: {}", gateway.upstream_url()),
    }
    println!("  api keys: {}", config.api_keys.join(", "));
    match open_files {
        // A client connection may need one to the provider too.
        Ok(limit) if config.max_connections > 0 && limit / 2 < config.max_connections as u64 => {
            println!(
                "  warning: {limit} open files allowed, fewer than 2 per connection of \
                 --max-connections {}; raise the hard limit (ulimit -Hn) or lower it",
                config.max_connections
            )
        }
        Ok(_) => {}
        Err(e) => println!("  warning: the open-file limit could not be raised: {e}"),
    }
    let protected = if config.metrics_token.is_some() {
        " (Authorization: Bearer <--metrics-token>)"
    } else {
        ""
    };
    println!("  metrics:  {}{protected}", gateway.metrics_url());
    println!();
    println!("  curl -N {base}/chat/completions -H 'Authorization: Bearer {key}' \\");
    println!("    -H 'Content-Type: application/json' \\");
    println!("    -d '{{\"model\":\"gpt-4o-mini\",\"stream\":true,\"messages\":[{{\"role\":\"user\",\"content\":\"Hi\"}}]}}'");
    println!("  curl {base}/models -H 'Authorization: Bearer {key}'");
    println!();

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
