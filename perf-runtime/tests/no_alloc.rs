//! The hot path allocates nothing: a counting global allocator counts every allocation made by
//! the test's own thread (a thread-local counter, so tests running in parallel do not disturb
//! each other) while whole requests run, after one warm-up request (the first request of an
//! endpoint resolves its handles, which allocates once).
//!
//! The requests are those of the benchmarks (`benches/common/mod.rs`): handler, backend call,
//! and the 5-chunk answer consumed to its end, percentages included. With feature `axum`, the
//! same through `PerfLayer` (`benches/common/layer.rs`): the service's `call`, its future polled
//! to the response, the response body polled to its end and dropped.
//!
//! A layer test that finds an allocation prints the backtrace of each allocation of one more
//! request before it fails (`-- --nocapture` shows them).

#[path = "../benches/common/mod.rs"]
mod common;

mod counting;

use common::Variant;
use counting::allocations;
#[cfg(feature = "axum")]
use counting::traced;

const REQUESTS: usize = 1000;

/// Allocations of the warm-up request, then of `REQUESTS` more, of `variant`.
fn measure(variant: Variant) -> (u64, u64) {
    let warm_up = allocations(|| {
        common::run(variant);
    });
    let steady = allocations(|| {
        for _ in 0..REQUESTS {
            common::run(variant);
        }
    });
    (warm_up, steady)
}

#[test]
fn the_counter_sees_allocations() {
    let n = allocations(|| {
        std::hint::black_box(vec![1u8; 16]);
    });
    assert_eq!(n, 1);
}

#[test]
fn the_bare_handler_and_executor_allocate_nothing() {
    let (_, steady) = measure(Variant::Plain);
    assert_eq!(
        steady, 0,
        "the harness itself allocates: nothing below would be meaningful"
    );
}

/// (d): `PerformanceTracker::at(&STATIC)`, stage guards, `backend_request(..).first_byte()`,
/// `tracker.stream(..)` consumed to its end.
#[test]
fn the_runtime_api_allocates_nothing_after_the_first_request() {
    let (warm_up, steady) = measure(Variant::Manual);
    assert_eq!(
        steady, 0,
        "{REQUESTS} requests through the runtime API allocated {steady} times"
    );
    // The first request may allocate (it resolves the endpoint's and the backend's series);
    // not asserted, so that resolving them at compile time stays possible.
    eprintln!("runtime API: {warm_up} allocations in the first request");
}

/// (b): `#[perf_endpoint]` (its task-local scope), `#[perf_stage]` on statements,
/// `#[perf_backend]`, `#[perf_stream]`.
#[test]
fn the_macros_allocate_nothing_after_the_first_request() {
    let (warm_up, steady) = measure(Variant::Macros);
    assert_eq!(
        steady, 0,
        "{REQUESTS} requests through the macros allocated {steady} times"
    );
    eprintln!("macros: {warm_up} allocations in the first request");
}

/// Allocations per request of `request` after one warm-up request, averaged over `REQUESTS`.
#[cfg(feature = "axum")]
fn per_request(request: impl Fn()) -> f64 {
    request();
    let steady = allocations(|| {
        for _ in 0..REQUESTS {
            request();
        }
    });
    steady as f64 / REQUESTS as f64
}

/// [`per_request`] that must be 0: else the backtraces of one more request's allocations are
/// printed, and it fails.
#[cfg(feature = "axum")]
fn assert_allocates_nothing(what: &str, request: impl Fn()) {
    let n = per_request(&request);
    if n > 0.0 {
        traced(&request);
    }
    assert_eq!(n, 0.0, "{what}: {n} allocations a request");
}

/// (h): the HTTP exchange of the layer's builds without the layer (service, future, response,
/// body polled to its end, the `MatchedPath` moved from request to request) allocates nothing:
/// what the layer's tests below count is the layer's.
#[cfg(feature = "axum")]
#[test]
fn the_bare_exchange_allocates_nothing() {
    assert_allocates_nothing("the exchange's harness, without the layer", || {
        common::run(Variant::Service);
    });
}

/// (f): `PerfLayer` around a minimal service, the request's endpoint from its `MatchedPath`.
#[cfg(feature = "axum")]
#[test]
fn the_layer_allocates_nothing_after_the_first_request() {
    assert_allocates_nothing("the layer", || {
        common::run(Variant::Layer);
    });
}

/// (f) without a `MatchedPath`: the `unmatched` endpoint.
#[cfg(feature = "axum")]
#[test]
fn the_layer_allocates_nothing_for_an_unmatched_request() {
    assert_allocates_nothing("the layer, unmatched", || {
        common::layer::layer_unmatched(common::BODY);
    });
}

/// (g): the attributes (stages, backend call, stream) under the layer, without
/// `#[perf_endpoint]`.
#[cfg(feature = "axum")]
#[test]
fn the_layer_and_attributes_allocate_nothing_after_the_first_request() {
    assert_allocates_nothing("the layer and attributes", || {
        common::run(Variant::LayerAttributes);
    });
}

/// (i): in a real one-route `axum::Router`, which allocates per request on its own, what
/// `.layer(PerfLayer::new())` adds over `.layer(Identity::new())`, a layer that does nothing:
/// one allocation, axum's `Body::new` boxing the layer's `PerfBody<Body>` (any layer that wraps
/// the response body costs it). What any layer adds in a router, over none, is axum's too: the
/// route's boxed service cloned for the call, and its future boxed (`Route` is a
/// `BoxCloneSyncService`).
#[cfg(feature = "axum")]
#[test]
fn the_layer_in_a_router_adds_only_the_body_that_axum_boxes() {
    use common::layer::{router, Routed};
    let [perf, identity, bare] = [Routed::Perf, Routed::Identity, Routed::Bare].map(|routed| {
        per_request(|| {
            router(routed);
        })
    });
    eprintln!(
        "one-route router, allocations a request: {perf} with PerfLayer, {identity} with \
         Identity, {bare} without a layer"
    );
    if perf - identity > 1.0 {
        traced(|| {
            router(Routed::Perf);
        });
    }
    assert!(
        perf - identity <= 1.0,
        "PerfLayer added {} allocations a request over a layer that does nothing",
        perf - identity
    );
}
