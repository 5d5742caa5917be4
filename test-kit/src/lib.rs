//! What the tests of the perf workspace share, in one place: perf-runtime's, the root package's
//! (the example gateway, the request shapes) and perf-fuzz's, each a dev-dependency on this
//! unpublished crate.
//!
//! * [`registry`]: the one reader of registries, by family and labels ([`global`] or a test's own
//!   from [`private_metrics`]), and the request-level counts built on it ([`Outcomes`],
//!   [`stage_count`], [`percentages`] …);
//! * [`exposition`]: the Prometheus text format parsed and checked line by line
//!   ([`check_exposition`]);
//! * [`provider`]: a simulated provider's streamed events ([`provider::Event`]) and what each is
//!   to perf;
//! * [`timing`]: the bounds a measured time keeps on a busy machine ([`assert_lasted`]);
//! * [`alone`](mod@alone): a test in a process of its own inside a binary of many ([`alone!`]), and one
//!   heavy test at a time ([`heavy`]).
//!
//! The user crates (`tests/user-crates/`) build as applications do, on perf alone: they include
//! the files of [`exposition`] and [`provider`] by `#[path]`, which therefore use nothing but std
//! and perf-runtime.
//!
//! What only the example gateway's tests need (starting it, its mock's numbers, `/metrics`'
//! other formats) is in the root package's `tests/common/`.

use perf_runtime::{Metrics, PerformanceTracker};
use prometheus::Registry;

pub mod alone;
pub mod exposition;
pub mod provider;
pub mod registry;
pub mod timing;

pub use alone::{heavy, is_alone, Heavy};
pub use exposition::*;
pub use registry::*;
pub use timing::*;

/// The endpoint of the seed's example, and of the example gateway's chat completions.
pub const CHAT: &str = "/v1/chat/completions";

/// A fresh registry with its own metrics: what keeps tests running in parallel apart.
pub fn private_metrics() -> (Registry, &'static Metrics) {
    let registry = Registry::new();
    let metrics = Metrics::builder()
        .build(&registry)
        .expect("a fresh registry takes the families");
    (registry, metrics)
}

/// A fresh registry, its metrics, and a tracker for `endpoint` recording into them.
pub fn private_tracker(endpoint: &str) -> (Registry, &'static Metrics, PerformanceTracker) {
    let (registry, metrics) = private_metrics();
    let tracker = PerformanceTracker::with_metrics(metrics, endpoint);
    (registry, metrics, tracker)
}
