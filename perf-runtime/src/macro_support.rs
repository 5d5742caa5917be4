//! Support for the macros' expansions. Not a public API: it may change in any release.

pub use crate::metrics::KnownEndpoint;
pub use crate::tracker::current::{backend_call, stream_chunks_probed, stream_probed};
pub use inventory;

use std::future::Future;

use crate::tracker::{current, PerformanceTracker, Run};
use crate::Endpoint;

/// A `#[perf_endpoint]` handler's body run as its request: a new request of `endpoint`, or,
/// called inside a request (the layer's exchange, or another endpoint's), part of that one.
#[inline]
pub fn endpoint<F, C>(endpoint: &Endpoint, body: F, succeeded: C) -> Run<F, C>
where
    F: Future,
    C: FnOnce(&F::Output) -> bool,
{
    match current::state() {
        Some(state) => Run::joined(state, body, succeeded),
        None => PerformanceTracker::at(endpoint).run_checked(body, succeeded),
    }
}

/// Wraps a value to ask, by autoref specialization, whether it means success: an `Err` does not,
/// any other value does. `#[perf_backend]` asks whether the backend answered, `#[perf_endpoint]`
/// whether the handler failed.
pub struct Success<'a, T>(pub &'a T);

/// An `Err` is a failure.
pub trait ResultSuccess {
    /// Whether the value means success.
    fn succeeded(&self) -> bool;
}

impl<T, E> ResultSuccess for Success<'_, Result<T, E>> {
    fn succeeded(&self) -> bool {
        self.0.is_ok()
    }
}

/// Any other value is a success.
pub trait AnySuccess {
    /// Whether the value means success.
    fn succeeded(&self) -> bool;
}

impl<T> AnySuccess for &Success<'_, T> {
    fn succeeded(&self) -> bool {
        true
    }
}

/// What `#[perf_stream(chunks = f)]` becomes with the instrumentation compiled out: `f` is still
/// checked against the stream's items, and the stream is returned as it was.
pub fn check_chunks<S, F>(stream: S, _chunks: F) -> S
where
    S: futures_core::Stream,
    F: FnMut(&S::Item) -> crate::Chunk,
{
    stream
}
