//! The runtime's tests that record into registries of their own (`perf_test_kit::private_metrics`,
//! `private_tracker`), in one test binary: no global metrics, no `#[perf_endpoint]` (every
//! metrics of a binary make the series of its known endpoints), so they run side by side.
//!
//! * `families`: the metric contract (names, types, labels, buckets);
//! * `phases`, `seed_example`, `streams`, `faults`: how a request's time is split and recorded,
//!   by hand and through the runtime API, panics and cancellation included;
//! * `in_flight`, `labels`, `spend`: what is under way, client label values, cost and tenants;
//! * `registry`: perf beside an application's own metrics;
//! * `concurrency`: exact counts from many threads and tasks.
//!
//! The tests that hold process-wide state (the global metrics, the stage-name interner, a counting
//! allocator, the logger, the default registry, the known endpoints) stay binaries of their own
//! beside this folder.

mod concurrency;
mod families;
mod faults;
mod in_flight;
mod labels;
mod phases;
mod registry;
mod seed_example;
mod spend;
mod streams;
