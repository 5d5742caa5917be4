//! Exact Prometheus histograms of where an LLM-gateway request's time goes: the gateway's own
//! parsing, auth and preparation, the provider's time to first byte, and the streaming of the
//! answer.
//!
//! Most users write attributes (`#[perf_endpoint]`, `#[perf_stage]`, `#[perf_backend]`,
//! `#[perf_stream]`); this crate is also usable by hand, with the API of the original Python
//! `PerformanceTracker`. The seed's example, in Rust:
//!
//! ```
//! use perf_runtime::PerformanceTracker;
//!
//! # async fn make_backend_request(model: &str) -> Result<String, std::io::Error> { Ok(model.into()) }
//! # async fn demo() -> Result<(), std::io::Error> {
//! let tracker = PerformanceTracker::new("/v1/chat/completions");
//!
//! let model = {
//!     let _stage = tracker.stage("request_parsing");
//!     "gpt-4o-mini".to_string()
//! };
//! {
//!     let _stage = tracker.stage("auth_validation");
//!     // validate the API key
//! }
//! {
//!     let _stage = tracker.stage("request_preparation");
//!     // build the provider's headers and body
//! }
//! let backend = tracker.backend_request("openrouter", &model);
//! let response = make_backend_request(&model).await?; // `?` drops the guard: no TTFB recorded
//! backend.first_byte();
//! {
//!     let _streaming = tracker.streaming();
//!     for _chunk in response.split('-') { /* send it to the client */ }
//! }
//! tracker.record_percentages();
//!
//! let families = prometheus::gather();
//! assert!(families.iter().any(|f| f.name() == "backend_ttfb_seconds"));
//! # Ok(()) }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(demo()).unwrap();
//! ```
//!
//! # Metrics
//!
//! Every family perf records (names, types, labels, buckets), and what a request, its outcome,
//! its backend calls and its phases are: [the metric contract](metrics), which is
//! `docs/metrics.md`.
//!
//! They go to the `prometheus` crate's default registry unless [`MetricsBuilder::install`] is
//! given another; [`exposition`] renders them for `/metrics`.
//!
//! # Cost
//!
//! Every series whose labels are known when the request starts (endpoint, stages) is resolved
//! once per endpoint and kept; a request then records with TSC clock reads and sharded atomic
//! adds (no cache line is shared between threads recording at once), with no allocation, no lock
//! and no hashing. Only the `model` label, which comes from the client, is looked up per backend
//! call: in a small per-thread cache of recent models, else through the label cap (a read lock
//! and a hash). Figures in BENCHMARKS.md.

#![warn(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod chunk;
mod clock;
mod duration;
#[doc(hidden)]
pub mod __private {
    pub use crate::macro_support::*;
}
/// One of perf's histograms on its own, for the benches' floor (feature `bench-internals`).
#[cfg(feature = "bench-internals")]
#[doc(hidden)]
pub mod bench_internals {
    pub use crate::metrics::histogram::BenchHistogram;
}
pub mod exposition;
#[cfg(feature = "axum")]
mod layer;
mod macro_support;
pub mod metrics;
#[cfg(feature = "otlp")]
pub mod otlp;
pub mod prices;
pub mod ratelimits;
mod stage;
mod trace;
mod tracker;

pub use chunk::{Chunk, Usage};
pub use duration::{track_duration, DurationGuard};
#[cfg(feature = "axum")]
pub use layer::{PerfBody, PerfFuture, PerfLayer, PerfService, UNMATCHED_ENDPOINT};
pub use metrics::{
    BackendErrorKind, Endpoint, EndpointMetrics, InstallError, Metrics, MetricsBuilder,
    BACKEND_BUCKETS, FRONTEND_BUCKETS, STAGE_BUCKETS,
};
pub use perf_macros::{perf_backend, perf_endpoint, perf_stage, perf_statements, perf_stream};
pub use stage::{Stage, StageName, MAX_STAGES};
pub use trace::TraceId;
pub use tracker::current;
pub use tracker::{
    BackendGuard, PerformanceTracker, Run, StageGuard, StreamingGuard, TrackedStream,
};

/// The README's Rust examples, compiled and run as doctests: what a user pastes works.
#[cfg(all(doctest, feature = "axum"))]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// A tracker that ends its request by itself when dropped: the seed's
/// `with track_request_stages(endpoint) as tracker:`.
///
/// Dropped during a panic, it does not end the request (no percentages for a request that did not
/// reach its end). A request cancelled before its backend answered sets no percentages either.
///
/// ```
/// let tracker = perf_runtime::track_request_stages("/v1/responses");
/// {
///     let _stage = tracker.stage("request_parsing");
/// }
/// tracker.backend_request("portkey", "gpt-4o").first_byte();
/// drop(tracker); // percentages recorded here
/// ```
pub fn track_request_stages(endpoint: &str) -> PerformanceTracker {
    PerformanceTracker::new(endpoint).ending_on_drop()
}
