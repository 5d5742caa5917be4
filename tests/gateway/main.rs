//! The example gateway end to end, one module per concern, in one test binary (one link of
//! axum, hyper and reqwest for all of them):
//!
//! * requests and answers: `wire`, `errors`, `openai_routes`, `openai_sdk` (OpenAI's Python
//!   SDK), `llm`, `trace`, `spend`;
//! * what is recorded: `metrics`, `accuracy`, `llm_accuracy`, `disconnect`, `load`, `formats`,
//!   `scrapes`, `exposure`, `otlp`;
//! * label budgets: `cardinality`, `cardinality_default`, `allow_list`;
//! * hostile clients and providers: `hostile`, `panics`, `connections`, `slow_bodies`,
//!   `descriptors`, `memory`, `broken_provider`, `provider_errors`, `provider_secrets`,
//!   `timeouts`, `upstream_redirects`;
//! * real Prometheus and promtool: `prometheus_formats`, `prometheus_live`, `promtool`,
//!   `slo_rules`.
//!
//! perf's metrics, their label budget and the logger belong to the process: a test that starts
//! the gateway in this process (`common::start`…) reads exact counts from the global registry,
//! so it runs in a process of its own (`common::alone!()`, from `perf_test_kit::alone`: this
//! binary run again for that test alone). The tests that start the example's binary as a child
//! process, or no gateway, run side by side in this one. Two tests at a time run (the harness'
//! threads); of those that load the machine (thousands of connections, streams or model names,
//! a burst, real Prometheus under load) or compare latencies, one at a time (`alone!(heavy)`,
//! `common::heavy()`).

#[path = "../common/mod.rs"]
mod common;

mod accuracy;
mod allow_list;
mod broken_provider;
mod cardinality;
mod cardinality_default;
mod connections;
mod descriptors;
mod disconnect;
mod errors;
mod exposure;
mod formats;
mod hostile;
mod llm;
mod llm_accuracy;
mod load;
mod memory;
mod metrics;
mod openai_routes;
mod openai_sdk;
mod otlp;
mod panics;
mod prometheus_formats;
mod prometheus_live;
mod promtool;
mod provider_errors;
mod provider_secrets;
mod scrapes;
mod slo_rules;
mod slow_bodies;
mod spend;
mod timeouts;
mod trace;
mod upstream_redirects;
mod wire;
