//! Instrumentation overhead per request, side by side in one run, and the raw costs it is made of.
//!
//! Group `request` runs one whole request (handler, then its 5-chunk answer consumed) of the same
//! trivial handler in five builds (see `common/mod.rs`):
//! (a) uninstrumented, (b) with the macros, (c) in the seed's hand-written style
//! (`with_label_values(..).observe(..)` on every observation), (d) with the runtime API by hand,
//! (e) the floor: only the clock readings and histogram observations of (b) and (d), no request.
//! Group `raw` measures the floor: `Instant::now()`, a TSC read, a relaxed atomic add, a
//! pre-resolved `Histogram::observe`, `HistogramVec::with_label_values(..).observe(..)`, a
//! pre-resolved `Gauge::set`, the task-local lookup of the current request, and one item of a
//! tracked stream without and with `chunks` (the per-chunk cost of TTFT and gap recording).
//!
//! After criterion's own report, a table gives the median ns/request of the very samples
//! criterion took, the overhead of each build over (a), and its ratio to (c)'s overhead:
//! `(x − a) / (c − a)`. (e)'s ratio is what the readings and observations alone take of it, and
//! (b)'s less (e)'s what the request's bookkeeping adds (issue 27's target: ≤ 0.12). A second table measures the builds interleaved (301 rounds of
//! 2000 requests of each in turn): steadier ratios on a shared machine, since a burst of
//! background load hits all of them alike.
//!
//! With perf-runtime's feature `axum`, group `request` also runs the handler as an HTTP exchange
//! under `PerfLayer` (`common/layer.rs`): (f) the layer alone around (a)'s handler, (g) the layer
//! with (b)'s attributes and no `#[perf_endpoint]`, (h) (f) without the layer, (i), (j) and (k)
//! (a)'s handler in a one-route `axum::Router` with the layer, without, and with a layer that does
//! nothing (`Identity`). Both tables then end with the layer's targets, each build over its bare
//! build: (f) − (h) ≤ 150 ns, the layer's own cost over the same exchange, and (g) − (h) no dearer
//! than (b) − (a); and in the router, (i) − (k), apart from what axum adds for any layer, (k) − (j).
//!
//! Run (noisy shared machine: short warm-up and measurement are enough, run it twice):
//!
//! ```sh
//! cargo bench -p perf-runtime --features bench-internals --bench overhead -- --warm-up-time 1 --measurement-time 3
//! cargo bench -p perf-runtime --features axum,bench-internals --bench overhead -- --warm-up-time 1 --measurement-time 3
//! ```

mod common;

use std::hint::black_box;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::task::Context;
use std::time::{Duration, Instant};

use common::Variant;
use criterion::{criterion_group, Bencher, Criterion};
use futures_util::stream::{self, Stream};
use futures_util::task::noop_waker_ref;
use perf_runtime::{current, Chunk, Endpoint, PerformanceTracker};
use prometheus::{GaugeVec, HistogramOpts, HistogramVec, Opts};

/// Every sample criterion takes, by benchmark: `(iterations, elapsed)`.
static SAMPLES: Mutex<Vec<(&'static str, u64, Duration)>> = Mutex::new(Vec::new());

/// Times `iters` runs of `f` for criterion, and keeps the sample for the summary table.
fn measure(b: &mut Bencher<'_>, id: &'static str, mut f: impl FnMut()) {
    b.iter_custom(|iters| {
        let start = Instant::now();
        for _ in 0..iters {
            f();
        }
        let elapsed = start.elapsed();
        SAMPLES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((id, iters, elapsed));
        elapsed
    });
}

fn request(c: &mut Criterion) {
    // First requests resolve every handle: not part of the steady state measured.
    for &v in Variant::ALL {
        common::run(v);
    }
    let mut group = c.benchmark_group("request");
    for &v in Variant::ALL {
        group.bench_function(v.id(), |b| {
            measure(b, v.id(), || {
                black_box(common::run(black_box(v)));
            })
        });
    }
    group.finish();
}

fn raw(c: &mut Criterion) {
    let mut group = c.benchmark_group("raw");
    group.bench_function("instant_now", |b| {
        measure(b, "instant_now", || {
            black_box(Instant::now());
        })
    });
    #[cfg(target_arch = "x86_64")]
    group.bench_function("rdtsc", |b| {
        measure(b, "rdtsc", || {
            // SAFETY: RDTSC exists on every x86_64 CPU.
            black_box(unsafe { std::arch::x86_64::_rdtsc() });
        })
    });
    let counter = AtomicU64::new(0);
    group.bench_function("atomic_add_relaxed", |b| {
        measure(b, "atomic_add_relaxed", || {
            black_box(&counter).fetch_add(1, Relaxed);
        })
    });

    let ttfb = HistogramVec::new(
        HistogramOpts::new("raw_ttfb_seconds", "raw")
            .buckets(perf_runtime::BACKEND_BUCKETS.to_vec()),
        &["provider", "model", "endpoint"],
    )
    .expect("valid family");
    let labels = ["openrouter", "gpt-4o-mini", "/v1/chat/completions"];
    let series = ttfb.with_label_values(&labels);
    group.bench_function("histogram_observe_resolved", |b| {
        measure(b, "histogram_observe_resolved", || {
            series.observe(black_box(0.123));
        })
    });
    // perf's own stage histogram: classic buckets only, with the latest exemplar per bucket, and
    // with native buckets too (what the stage, front-end, TTFB and streaming families keep).
    for (id, exemplars, native) in [
        ("perf_observe_classic", false, false),
        ("perf_observe_exemplar", true, false),
        ("perf_observe_exemplar_native", true, true),
    ] {
        let histogram = perf_runtime::bench_internals::BenchHistogram::new(exemplars, native);
        let mut random = 0u64;
        group.bench_function(id, |b| {
            measure(b, id, || {
                // Durations in clock ticks spread over the buckets, as a stage's are.
                random = random
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                histogram.observe_traced(black_box(random >> 38));
            })
        });
    }
    group.bench_function("histogram_with_label_values_observe", |b| {
        measure(b, "histogram_with_label_values_observe", || {
            ttfb.with_label_values(black_box(&labels))
                .observe(black_box(0.123));
        })
    });
    let gauges = GaugeVec::new(Opts::new("raw_percentage", "raw"), &["stage", "endpoint"])
        .expect("valid family");
    let gauge = gauges.with_label_values(&["backend_response", "/v1/chat/completions"]);
    group.bench_function("gauge_set_resolved", |b| {
        measure(b, "gauge_set_resolved", || {
            gauge.set(black_box(42.0));
        })
    });

    // The lookup every `#[perf_stage]`/`#[perf_backend]` guard makes, at its start and its end.
    static RAW: Endpoint = Endpoint::new("/bench/raw");
    group.bench_function("current_task_local_lookup", |b| {
        common::block_on(PerformanceTracker::at(&RAW).run(async {
            measure(b, "current_task_local_lookup", || {
                black_box(current::with(|t| black_box(t).endpoint().len()));
            });
        }));
    });

    // One item of a long tracked stream, plain and with `chunks` (every item content): the
    // difference is what time to first token and chunk gaps cost per chunk.
    static CHUNKS: Endpoint = Endpoint::new("/bench/chunks");
    let mut cx = Context::from_waker(noop_waker_ref());
    let mut plain = PerformanceTracker::at(&CHUNKS).stream(stream::repeat(1u32));
    group.bench_function("stream_item_plain", |b| {
        measure(b, "stream_item_plain", || {
            let _ = black_box(Pin::new(&mut plain).poll_next(&mut cx));
        })
    });
    let mut chunked =
        PerformanceTracker::at(&CHUNKS).stream_chunks(stream::repeat(1u32), |_| Chunk::CONTENT);
    group.bench_function("stream_item_chunks", |b| {
        measure(b, "stream_item_chunks", || {
            let _ = black_box(Pin::new(&mut chunked).poll_next(&mut cx));
        })
    });
    group.finish();
}

/// Median ns per iteration of the samples of `id` (the last `sample_size` ones: criterion's
/// measurement, after its warm-up).
fn median_ns(samples: &[(&'static str, u64, Duration)], id: &str, sample_size: usize) -> f64 {
    let mut per_iter: Vec<f64> = samples
        .iter()
        .filter(|(s, _, _)| *s == id)
        .map(|(_, iters, elapsed)| elapsed.as_nanos() as f64 / *iters as f64)
        .collect();
    let keep = per_iter.len().min(sample_size);
    per_iter.drain(..per_iter.len() - keep);
    per_iter.sort_by(f64::total_cmp);
    match per_iter.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => per_iter[n / 2],
        n => (per_iter[n / 2 - 1] + per_iter[n / 2]) / 2.0,
    }
}

const SAMPLE_SIZE: usize = 100;

/// The sample size in force: ours, unless `--sample-size` overrides it.
fn sample_size() -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--sample-size")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(SAMPLE_SIZE)
}

fn summary() {
    // Only after a real measurement: not under `cargo test --benches` (no `--bench`) or `--list`.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let samples = SAMPLES.lock().unwrap_or_else(|e| e.into_inner());
    let size = sample_size();
    let ns = |id| median_ns(&samples, id, size);
    println!("\nper request (median of criterion's samples), overhead over (a), ratio to (c)'s overhead:");
    table(&Variant::ALL.iter().map(|v| ns(v.id())).collect::<Vec<_>>());

    println!("\nraw costs (median ns):");
    let raw = [
        "instant_now",
        "rdtsc",
        "atomic_add_relaxed",
        "histogram_observe_resolved",
        "histogram_with_label_values_observe",
        "gauge_set_resolved",
        "current_task_local_lookup",
        "stream_item_plain",
        "stream_item_chunks",
        "perf_observe_classic",
        "perf_observe_exemplar",
        "perf_observe_exemplar_native",
    ];
    for id in raw {
        let x = ns(id);
        if !x.is_nan() {
            println!("{id:<38} {x:>8.1}");
        }
    }
    let (now, observe, set) = (
        ns("instant_now"),
        ns("histogram_observe_resolved"),
        ns("gauge_set_resolved"),
    );
    let per_chunk = ns("stream_item_chunks") - ns("stream_item_plain");
    if !per_chunk.is_nan() {
        println!("chunk gap recording per content chunk (chunks - plain): {per_chunk:.1} ns");
    }
    let classic = ns("perf_observe_classic");
    let exemplar = ns("perf_observe_exemplar") - classic;
    let native = ns("perf_observe_exemplar_native") - classic;
    if !native.is_nan() {
        println!(
            "per observation over classic buckets: exemplar {exemplar:+.1} ns, exemplar and \
             native buckets {native:+.1} ns (target: exemplar <= 15 ns)"
        );
    }
    if !(now.is_nan() || observe.is_nan() || set.is_nan()) {
        println!(
            "(c)'s primitives alone, 6 Instant::now + 8 resolved observes + 3 gauge sets: {:.0} ns",
            6.0 * now + 8.0 * observe + 3.0 * set
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(SAMPLE_SIZE);
    targets = request, raw
}

/// The builds measured round-robin in small batches, so that a burst of background load hits
/// all of them alike: the median ns/request of each over `rounds` batches of `batch` requests.
fn interleaved(rounds: usize, batch: usize) -> Vec<f64> {
    let mut per_request = vec![Vec::with_capacity(rounds); Variant::ALL.len()];
    for _ in 0..rounds {
        for (i, &v) in Variant::ALL.iter().enumerate() {
            let start = Instant::now();
            for _ in 0..batch {
                black_box(common::run(black_box(v)));
            }
            per_request[i].push(start.elapsed().as_nanos() as f64 / batch as f64);
        }
    }
    per_request
        .into_iter()
        .map(|mut v| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        })
        .collect()
}

fn interleaved_summary() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    // Not when a filter (a word that is neither a flag nor a flag's number) leaves `request` out.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let filters: Vec<&String> = args
        .iter()
        .filter(|a| !a.starts_with('-') && a.parse::<f64>().is_err())
        .collect();
    if !filters.is_empty() && !filters.iter().any(|f| f.starts_with("request")) {
        return;
    }
    let ns = interleaved(301, 2000);
    println!(
        "\ninterleaved (301 rounds of 2000 requests of each build in turn, median per build):"
    );
    table(&ns);
}

/// The builds' ns/request (NaN: not measured), in the order of `Variant::ALL`, with their
/// overhead over (a) and its ratio to (c)'s, then the target's line and the floor's share of
/// it: what the readings and observations of (b) take alone, before any bookkeeping of the
/// request; and with feature `axum`, the layer's lines.
fn table(ns: &[f64]) {
    let of = |v: Variant| {
        Variant::ALL
            .iter()
            .position(|&w| w == v)
            .map_or(f64::NAN, |i| ns[i])
    };
    let (a, b, c, e) = (
        of(Variant::Plain),
        of(Variant::Macros),
        of(Variant::Seed),
        of(Variant::Floor),
    );
    println!(
        "{:<28} {:>10} {:>12} {:>14}",
        "build", "ns/request", "overhead ns", "(x-a)/(c-a)"
    );
    for (v, &x) in Variant::ALL.iter().zip(ns) {
        if x.is_nan() {
            continue;
        }
        println!(
            "{:<28} {:>10.1} {:>12.1} {:>14.3}",
            v.id(),
            x,
            x - a,
            (x - a) / (c - a)
        );
    }
    if a.is_nan() || c.is_nan() {
        return;
    }
    let ratio = |x: f64| (x - a) / (c - a);
    if !b.is_nan() && !e.is_nan() {
        // Issue 27's measure: what the request itself adds to the readings and observations
        // that (e), the floor, makes without one.
        let bookkeeping = ratio(b) - ratio(e);
        println!(
            "target (b) - (e) <= 0.12 x (c) overhead, the request's bookkeeping: {:.1} ns, {:.3} \
             -> {}; the floor (e), the same readings and observations with no request: {:.3}",
            b - e,
            bookkeeping,
            if bookkeeping <= 0.12 {
                "met"
            } else {
                "NOT met"
            },
            ratio(e)
        );
    }
    #[cfg(feature = "axum")]
    layer_lines(a, b, of);
}

/// The layer's targets, each build over its bare build (the HTTP exchange the bench makes
/// around (a)'s handler, (h) − (a), is there without any layer): (f) − (h) ≤ 150 ns, and (g) − (h)
/// no dearer than (b) − (a); and what the layer costs in a real router, (i) − (j), of which
/// axum's for any layer, (k) − (j).
#[cfg(feature = "axum")]
fn layer_lines(a: f64, b: f64, of: impl Fn(Variant) -> f64) {
    let (f, g, h, i, j, k) = (
        of(Variant::Layer),
        of(Variant::LayerAttributes),
        of(Variant::Service),
        of(Variant::RouterLayer),
        of(Variant::Router),
        of(Variant::RouterIdentity),
    );
    let met = |ok: bool| if ok { "met" } else { "NOT met" };
    if !(f.is_nan() || h.is_nan()) {
        println!(
            "target (f) - (h) <= 150 ns, the layer alone over the same exchange without it: \
             {:.1} ns -> {}; (f) - (a) {:.1} ns, of which the HTTP exchange without a layer, \
             (h) - (a): {:.1} ns",
            f - h,
            met(f - h <= 150.0),
            f - a,
            h - a
        );
    }
    if !(g.is_nan() || b.is_nan()) {
        println!(
            "target (g) - (h) <= (b) - (a), the layer and attributes over their bare build: \
             {:.1} against {:.1} ns ({:+.1}) -> {}; whole, (g) {g:.1} against (b) {b:.1} ns",
            g - h,
            b - a,
            (g - h) - (b - a),
            met(g - h <= b - a)
        );
    }
    if !(i.is_nan() || j.is_nan() || k.is_nan()) {
        println!(
            "in a one-route axum::Router, (i) - (j): the layer costs {:.1} ns a request, of which \
             axum's for any layer, (k) - (j): {:.1} ns, and PerfLayer's, (i) - (k): {:.1} ns",
            i - j,
            k - j,
            i - k
        );
    }
}

/// `n` requests of one build, alone: what `benches/request-instructions.sh` counts the
/// instructions of under callgrind (which starts counting at this function and stops after it).
#[inline(never)]
fn requests(variant: Variant, n: usize) {
    for _ in 0..n {
        black_box(common::run(black_box(variant)));
    }
}

/// `--requests LETTER N`: N requests of the build of that letter (`a` to `e`, `f` to `k` with
/// feature `axum`), after 100 that warm it up.
fn requests_of(args: &[String]) -> Option<(Variant, usize)> {
    let at = args.iter().position(|a| a == "--requests")?;
    let letter = args.get(at + 1)?;
    let variant = Variant::ALL
        .iter()
        .copied()
        .find(|v| v.id().starts_with(letter.as_str()))?;
    Some((variant, args.get(at + 2)?.parse().ok()?))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some((variant, n)) = requests_of(&args) {
        // Warm-up, outside `requests`: the clock's calibration, the first series.
        for _ in 0..100 {
            black_box(common::run(variant));
        }
        requests(variant, n);
        // The build's name, for the script's table.
        println!("{}", variant.id());
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
    // Not under `--profile-time`: a profile of one benchmark must not include the others.
    if !std::env::args().any(|a| a == "--profile-time") {
        summary();
        interleaved_summary();
    }
}
