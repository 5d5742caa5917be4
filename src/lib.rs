//! The example gateway as a library.
//!
//! `cargo run --release --example gateway` runs it: an OpenAI-compatible gateway
//! (`/v1/chat/completions`, `/v1/responses`, streamed and not, `/v1/embeddings`, `/v1/models`,
//! `/metrics`, `/healthz`) instrumented with perf, forwarding over HTTP to a built-in mock
//! provider, or to a real one with `--upstream`. The library form lets the tests start it in-process:
//!
//! ```no_run
//! use clap::Parser;
//! use perf::{Config, Gateway};
//!
//! # async fn run() -> std::io::Result<()> {
//! let config = Config::parse_from(["gateway", "--listen", "127.0.0.1:0"]);
//! let gateway = Gateway::start(&config).await?;
//! println!("listening on {}", gateway.base_url());
//! gateway.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! [`gateway::handlers`] is the part to copy: how a handler is instrumented stage by stage.

#![warn(missing_docs)]

pub mod gateway;
pub mod slo;

pub use gateway::config::Config;
pub use gateway::mock::{MockConfig, MockProvider};
pub use gateway::server::Gateway;
