//! Handlers of the tests' own, instrumented with the attributes or `PerfLayer`, served over real
//! HTTP, in one test binary:
//!
//! * the request shapes of docs/metrics.md: `outcome`, `streams`, `calls`, `phases` with
//!   `#[perf_endpoint]` alone (the global metrics, an endpoint of its own per test), and
//!   `layer_outcome`, `layer_streams`, `layer_calls`, `layer_phases` with `PerfLayer` (a
//!   registry of its own per test); each shape's handlers, scenario and assertions are written
//!   once, in `scenarios/`;
//! * `macros_http`: the attributes on axum handlers, exact counts under load;
//! * `seed_examples`: the seed's two examples, with the attributes and by hand;
//! * `example_minimal`: `examples/minimal.rs`, served as it is.
//!
//! No two tests share an endpoint of the global metrics, so they run side by side in one
//! process; no example gateway here (its endpoints would be known to every `/metrics`).

#[path = "../common/mod.rs"]
mod common;
mod scenarios;

mod calls;
mod example_minimal;
mod layer_calls;
mod layer_outcome;
mod layer_phases;
mod layer_streams;
mod macros_http;
mod outcome;
mod phases;
mod seed_examples;
mod streams;
