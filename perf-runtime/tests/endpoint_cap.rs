//! `endpoint` and `operation` values named at run time are capped like `model`: 5,000 distinct
//! paths (a client-built URL, a path with an id in it) leave at most cap + 1 endpoints, the last
//! one `other`; the endpoints named in code keep their own series whatever the cap; and the
//! lookup of an endpoint already known is a per-thread cache hit, with no lock and no allocation.
//!
//! One test (`the_global_metrics_cap_operations_and_spare_endpoints_named_in_code`) installs the
//! process-wide metrics; every other test records into metrics of its own.

mod counting;

use std::collections::BTreeSet;
use std::hint::black_box;
use std::time::Instant;

use counting::allocations;
use perf_runtime::metrics::{DEFAULT_ENDPOINT_CAP, MAX_LABEL_LEN, OVERFLOW_LABEL};
use perf_runtime::{perf_endpoint, track_duration, Endpoint, Metrics, PerformanceTracker};
use perf_test_kit::*;
use prometheus::Registry;

/// Far more distinct names than any cap here.
const NAMES: usize = 5000;
const CAP: usize = 20;

/// A `#[perf_endpoint]` of this program: known from code, never counted.
#[perf_endpoint("/v1/known/declared")]
async fn declared() -> &'static str {
    "not called in this test"
}

fn capped(cap: usize) -> (Registry, &'static Metrics) {
    let registry = Registry::new();
    let metrics = Metrics::builder()
        .endpoint_cap(cap)
        .build(&registry)
        .unwrap();
    (registry, metrics)
}

/// One request of `endpoint`: a stage, an answered backend call, its end.
fn request(metrics: &'static Metrics, endpoint: &str) {
    let tracker = PerformanceTracker::with_metrics(metrics, endpoint);
    drop(tracker.stage("request_parsing"));
    tracker.backend_request("openai", "gpt-4o").first_byte();
    tracker.record_percentages();
}

fn endpoints(registry: &Registry) -> BTreeSet<String> {
    label_values(registry, "requests_total", "endpoint")
}

/// Every series of the registry, all families together.
fn all_series(registry: &Registry) -> usize {
    registry.gather().iter().map(|f| f.get_metric().len()).sum()
}

fn path(i: usize) -> String {
    format!("/v1/items/{i}")
}

#[test]
fn run_time_endpoints_past_the_cap_are_other() {
    let (registry, metrics) = capped(CAP);
    for i in 0..NAMES {
        request(metrics, &path(i));
    }
    let kept: BTreeSet<String> = (0..CAP).map(path).chain([OVERFLOW_LABEL.into()]).collect();
    assert_eq!(endpoints(&registry), kept);
    for family in [
        "frontend_processing_seconds",
        "requests_in_flight",
        "gateway_overhead_seconds",
    ] {
        assert_eq!(series_count(&registry, family), CAP + 1, "{family}");
    }
    // 3 outcomes per endpoint; every request counted once, the late ones under `other`.
    assert_eq!(series_count(&registry, "requests_total"), 3 * (CAP + 1));
    assert_eq!(
        outcome(&registry, OVERFLOW_LABEL, "completed"),
        (NAMES - CAP) as u64
    );
    assert_eq!(outcome(&registry, &path(7), "completed"), 1);
    // Every family of `other` has the series one endpoint has.
    for family in ["request_stage_duration_seconds", "backend_ttfb_seconds"] {
        let of = |endpoint: &str| series(&registry, family, &[("endpoint", endpoint)]).len();
        assert_eq!(of(OVERFLOW_LABEL), of(&path(7)), "{family}");
    }
    assert_eq!(
        count(
            &registry,
            "backend_ttfb_seconds",
            &[("endpoint", OVERFLOW_LABEL)]
        ),
        (NAMES - CAP) as u64
    );

    // A name kept before the cap filled stays kept.
    request(metrics, &path(3));
    assert_eq!(outcome(&registry, &path(3), "completed"), 2);
    assert_eq!(metrics.endpoint(&path(3)).path(), path(3));
    assert_eq!(metrics.endpoint(&path(NAMES + 1)).path(), OVERFLOW_LABEL);
}

#[test]
fn the_default_cap_keeps_500_run_time_endpoints() {
    assert_eq!(DEFAULT_ENDPOINT_CAP, 500);
    let (registry, metrics) = private_metrics();
    for i in 0..NAMES {
        PerformanceTracker::with_metrics(metrics, &path(i)).record_percentages();
    }
    let found = endpoints(&registry);
    assert_eq!(found.len(), DEFAULT_ENDPOINT_CAP + 1);
    assert!(found.contains(OVERFLOW_LABEL));
    assert_eq!(
        series_count(&registry, "frontend_processing_seconds"),
        DEFAULT_ENDPOINT_CAP + 1
    );
}

#[test]
fn a_known_endpoint_keeps_its_series_once_the_cap_is_full() {
    let _ = declared;
    let (registry, metrics) = capped(CAP);
    for i in 0..NAMES {
        request(metrics, &path(i));
    }
    // A `#[perf_endpoint]` path, given as a `&str` after the cap filled: its own series.
    for _ in 0..3 {
        request(metrics, "/v1/known/declared");
    }
    assert_eq!(
        metrics.endpoint("/v1/known/declared").path(),
        "/v1/known/declared"
    );
    assert_eq!(outcome(&registry, "/v1/known/declared", "completed"), 3);
    assert_eq!(endpoints(&registry).len(), CAP + 2);
}

#[test]
fn a_cap_of_zero_folds_every_run_time_endpoint_but_not_the_known_ones() {
    let (registry, metrics) = capped(0);
    request(metrics, "/v1/chat/completions");
    request(metrics, "/v1/known/declared");
    assert_eq!(
        endpoints(&registry),
        [OVERFLOW_LABEL, "/v1/known/declared"]
            .map(String::from)
            .into_iter()
            .collect()
    );
}

#[test]
fn series_stop_growing_with_distinct_paths_once_the_cap_is_full() {
    let (registry, metrics) = capped(CAP);
    for i in 0..CAP + 1 {
        request(metrics, &path(i));
    }
    let full = all_series(&registry);
    let other = metrics.endpoint(&path(CAP));
    for i in CAP + 1..NAMES {
        request(metrics, &path(i));
        assert!(std::ptr::eq(metrics.endpoint(&path(i)), other));
    }
    assert_eq!(all_series(&registry), full);
    // Nor with long paths: each cut to 128 bytes, counted once.
    for i in 0..NAMES {
        request(metrics, &format!("/{}{i}", "x".repeat(2 * MAX_LABEL_LEN)));
    }
    assert_eq!(all_series(&registry), full);
}

#[test]
fn the_name_other_is_a_name_of_its_own_not_the_overflow() {
    let (registry, metrics) = capped(1);
    request(metrics, OVERFLOW_LABEL);
    request(metrics, "/a");
    request(metrics, "/b");
    assert_eq!(
        endpoints(&registry),
        ["other_", OVERFLOW_LABEL]
            .map(String::from)
            .into_iter()
            .collect()
    );
    assert_eq!(outcome(&registry, "other_", "completed"), 1);
    assert_eq!(outcome(&registry, OVERFLOW_LABEL, "completed"), 2);
}

#[test]
fn threads_racing_for_the_endpoint_cap_keep_it() {
    let (registry, metrics) = capped(CAP);
    std::thread::scope(|scope| {
        for t in 0..4 {
            scope.spawn(move || {
                for i in 0..NAMES / 4 {
                    request(metrics, &path(t * NAMES + i));
                }
            });
        }
    });
    assert_eq!(endpoints(&registry).len(), CAP + 1);
    let total: u64 = endpoints(&registry)
        .iter()
        .map(|e| outcome(&registry, e, "completed"))
        .sum();
    assert_eq!(total, NAMES as u64);
}

#[test]
fn the_per_thread_cache_tells_paths_and_metrics_apart() {
    // More routes than the cache has slots: every lookup still finds its own endpoint.
    let (_, a) = capped(1000);
    let (_, b) = capped(1000);
    let routes: Vec<String> = (0..300).map(|i| format!("/api/v{}/r{i}", i % 3)).collect();
    for _ in 0..3 {
        for route in &routes {
            let (in_a, in_b) = (a.endpoint(route), b.endpoint(route));
            assert_eq!(in_a.path(), route);
            assert_eq!(in_b.path(), route);
            assert!(!std::ptr::eq(in_a, in_b));
            assert!(std::ptr::eq(a.endpoint(route), in_a));
        }
    }
}

#[test]
fn looking_up_a_known_endpoint_allocates_nothing() {
    let (_, metrics) = capped(CAP);
    let routes: Vec<String> = (0..CAP).map(path).collect();
    for route in &routes {
        metrics.endpoint(route);
    }
    let past_the_cap = path(NAMES);
    metrics.endpoint(&past_the_cap);
    let allocated = allocations(|| {
        for _ in 0..1000 {
            for route in &routes {
                black_box(metrics.endpoint(black_box(route)));
            }
            // Past the cap: the lock path, still without allocating.
            black_box(metrics.endpoint(black_box(&past_the_cap)));
        }
    });
    assert_eq!(allocated, 0);
}

static STATIC_ENDPOINT: Endpoint = Endpoint::new("/v1/static");

#[test]
fn the_global_metrics_cap_operations_and_spare_endpoints_named_in_code() {
    let registry = Registry::new();
    let metrics = Metrics::builder()
        .endpoint_cap(CAP)
        .install(&registry)
        .expect("nothing used the global metrics before");
    assert!(std::ptr::eq(Metrics::global(), metrics));
    // Installed: every `#[perf_endpoint]` has its series already.
    assert_eq!(outcome(&registry, "/v1/known/declared", "completed"), 0);
    assert_eq!(endpoints(&registry).len(), 1);

    for i in 0..NAMES {
        PerformanceTracker::new(&path(i)).record_percentages();
        drop(track_duration(&format!("operation_{i}")));
    }
    // An `Endpoint` static first used after the cap filled: its own series.
    PerformanceTracker::at(&STATIC_ENDPOINT).record_percentages();
    assert_eq!(STATIC_ENDPOINT.metrics().path(), "/v1/static");
    assert_eq!(outcome(&registry, "/v1/static", "completed"), 1);

    // Run-time endpoints: CAP kept, then `other`; plus the two named in code.
    assert_eq!(endpoints(&registry).len(), CAP + 1 + 2);
    assert_eq!(
        outcome(&registry, OVERFLOW_LABEL, "completed"),
        (NAMES - CAP) as u64
    );

    // Operations: CAP kept, then `other`, counted apart from the endpoints.
    let operations = label_values(&registry, "operation_duration_seconds", "operation");
    assert_eq!(operations.len(), CAP + 1);
    assert!(operations.contains("operation_0"));
    assert!(operations.contains(OVERFLOW_LABEL));
    assert_eq!(
        count(
            &registry,
            "operation_duration_seconds",
            &[("operation", OVERFLOW_LABEL)]
        ),
        (NAMES - CAP) as u64
    );
    drop(track_duration("operation_1"));
    assert_eq!(
        count(
            &registry,
            "operation_duration_seconds",
            &[("operation", "operation_1")]
        ),
        2
    );
}

/// The cost of `Metrics::endpoint` for an endpoint already known (a per-thread cache hit), and
/// for a name past the cap (a read lock and a hash, and a look among the `#[perf_endpoint]`
/// paths: about what every lookup cost before the cache). Run it in release:
///
/// ```sh
/// cargo test --release -p perf-runtime --test endpoint_cap -- --ignored --nocapture lookup_cost
/// ```
#[test]
#[ignore = "a measurement: run it in release with --nocapture"]
fn lookup_cost() {
    const ROUNDS: usize = 200_000;
    let (_, kept) = capped(1000);
    let (_, none_kept) = capped(0);
    let one = [CHAT.to_string()];
    let routes: Vec<String> = (0..CAP).map(|i| format!("/v1/route/{i}/items")).collect();
    // Nanoseconds per lookup of each of `paths` in `metrics`, best of 5 runs.
    let ns = |metrics: &'static Metrics, paths: &[String]| {
        for path in paths {
            metrics.endpoint(path);
        }
        let mut best = f64::MAX;
        for _ in 0..5 {
            let start = Instant::now();
            for _ in 0..ROUNDS {
                for path in paths {
                    black_box(metrics.endpoint(black_box(path)));
                }
            }
            let per_lookup = start.elapsed().as_nanos() as f64 / (ROUNDS * paths.len()) as f64;
            best = best.min(per_lookup);
        }
        best
    };
    let hit = ns(kept, &one);
    let rotating = ns(kept, &routes);
    let locked = ns(none_kept, &routes);
    assert_eq!(kept.endpoint(&routes[3]).path(), routes[3]);
    assert_eq!(none_kept.endpoint(&routes[3]).path(), OVERFLOW_LABEL);
    println!(
        "Metrics::endpoint, ns per lookup (best of 5 x {ROUNDS} rounds): \
         cached hit, one endpoint ({CHAT}) {hit:.1}; \
         cached hits, {CAP} routes in turn {rotating:.1}; \
         past the cap (read lock + hash, uncached) {locked:.1}"
    );
}
