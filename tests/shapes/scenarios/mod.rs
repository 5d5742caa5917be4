//! Each shape's handlers and scenario, with its assertions, written once: served with
//! `#[perf_endpoint]` alone by `outcome`, `streams`, `calls` and `phases`, and behind `PerfLayer`
//! by their `layer_` twins.

pub mod calls;
pub mod outcome;
pub mod phases;
pub mod streams;
