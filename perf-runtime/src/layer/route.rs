//! The endpoint of a request's route: a per-thread cache keyed by where its `MatchedPath`'s
//! string lies, which every request of a route shares (axum keeps one per route).
//!
//! A per-service cache would be shared by the service's clones (axum clones a route's service
//! for every request) through an `Arc`: two locked operations per request. Here a hit costs a
//! few loads and one comparison of the path with the endpoint's own, which keeps the answer
//! exact even when the string's memory is freed and reused for another path.

use std::cell::Cell;
use std::ptr;

use crate::metrics::{EndpointMetrics, Metrics};

/// Slots of the cache: a power of two, more than a router usually has routes.
const SLOTS: usize = 32;

thread_local! {
    /// Endpoints by the address of the route string they were found for (0: empty).
    static ROUTES: [Cell<(usize, Option<&'static EndpointMetrics>)>; SLOTS] =
        const { [const { Cell::new((0, None)) }; SLOTS] };
}

/// The slot for the string at `at`: allocations are 8-byte aligned, so the bits above.
#[inline]
fn slot(at: usize) -> usize {
    (at >> 3) % SLOTS
}

/// `path`'s endpoint of `metrics`: from this thread's cache if the same string was seen here
/// lately, else through [`Metrics::endpoint`].
#[inline]
pub(super) fn route_endpoint(metrics: &'static Metrics, path: &str) -> &'static EndpointMetrics {
    let at = path.as_ptr() as usize;
    let cached = ROUTES
        .try_with(|routes| routes[slot(at)].get())
        .ok()
        .and_then(|(key, endpoint)| endpoint.filter(|_| key == at));
    match cached {
        Some(endpoint) if endpoint.path() == path && ptr::eq(endpoint.metrics, metrics) => endpoint,
        _ => remember(metrics, path, at),
    }
}

/// Finds `path`'s endpoint and keeps it under `at`, if it carries that path (one past the
/// endpoint cap carries `other`: looked up each time, as [`Metrics::endpoint`] does).
#[cold]
fn remember(metrics: &'static Metrics, path: &str, at: usize) -> &'static EndpointMetrics {
    let endpoint = metrics.endpoint(path);
    if endpoint.path() == path {
        let _ = ROUTES.try_with(|routes| routes[slot(at)].set((at, Some(endpoint))));
    }
    endpoint
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> &'static Metrics {
        let registry = prometheus::Registry::new();
        let metrics = Metrics::builder().build(&registry).expect("new names");
        Box::leak(Box::new(metrics))
    }

    #[test]
    fn a_string_reused_for_another_path_finds_that_path() {
        let metrics = metrics();
        let mut path = String::from("/v1/chat/completions");
        assert_eq!(
            route_endpoint(metrics, &path).path(),
            "/v1/chat/completions"
        );
        // The same memory, another route of the same length.
        path.replace_range(.., "/v1/embeddings/batch");
        assert_eq!(
            route_endpoint(metrics, &path).path(),
            "/v1/embeddings/batch"
        );
        assert_eq!(
            route_endpoint(metrics, &path).path(),
            "/v1/embeddings/batch"
        );
    }

    #[test]
    fn one_string_of_two_metrics_finds_each_ones_endpoint() {
        let (first, second) = (metrics(), metrics());
        let path = "/v1/models";
        let a = route_endpoint(first, path);
        let b = route_endpoint(second, path);
        assert!(ptr::eq(a.metrics, first) && ptr::eq(b.metrics, second));
        assert!(ptr::eq(route_endpoint(first, path), a));
    }
}
