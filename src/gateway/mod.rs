//! The example gateway: an OpenAI-compatible LLM gateway instrumented with perf, forwarding to a
//! built-in mock provider or a real one.

pub mod auth;
pub mod banner;
pub mod body_timeout;
pub mod config;
pub mod demo;
pub mod demo_table;
pub mod descriptors;
pub mod error;
pub mod events;
pub mod handlers;
pub mod idle;
pub mod label_settings;
pub mod listen;
pub mod logger;
pub mod metrics_route;
pub mod mock;
pub mod openai;
pub mod prices;
pub mod refusals;
pub mod secrets;
pub mod server;
pub mod sse;
pub mod trace;
pub mod upstream;
