//! Rendering `/metrics`: perf's `exposition::render` against the prometheus crate's own
//! `Registry::gather` + `TextEncoder::encode`, on the same registry, in the same run.
//!
//! The registry is filled through perf's runtime as a gateway would fill it: whole requests on
//! 5 endpoints × 4 providers × N models, each with its 3 front-end stages, a backend call, its
//! streaming and its percentages. Every (endpoint, provider, model) makes one
//! `backend_ttfb_seconds` and one `streaming_duration_seconds` series, so:
//!
//! * `combos/250`: 250 (endpoint, provider, model) (5 endpoints × 2 providers × 25 models) =
//!   500 histogram series in those two families together;
//! * `combos/500`: 500 (endpoint, provider, model) = 500 series in *each* of the two families
//!   (5 endpoints × 4 providers × 25 models), the issue's "500 histogram series
//!   (endpoint × provider × model)" in its strict reading;
//!
//! plus, in both, the stage, front-end and percentage series of the 5 endpoints. The target is a
//! render of at most 2 ms. Also timed: perf's OpenMetrics (with exemplars) and protobuf (with
//! native buckets) renderings, and prometheus' `gather` alone and `encode` alone.
//!
//! With feature `otlp`, the same registries as one OTLP export's body (`otlp_export`: read,
//! converted, encoded, gzip-compressed or not).
//!
//! ```sh
//! cargo bench -p perf-runtime --bench exposition -- --warm-up-time 1 --measurement-time 3
//! cargo bench -p perf-runtime --features otlp --bench exposition -- otlp_export \
//!     --warm-up-time 1 --measurement-time 3
//! ```

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use perf_runtime::{exposition, Metrics, PerformanceTracker, Stage};
use prometheus::{Encoder, Registry, TextEncoder};

const ENDPOINTS: [&str; 5] = [
    "/v1/chat/completions",
    "/v1/responses",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/messages",
];
const PROVIDERS: [&str; 4] = ["openrouter", "portkey", "openai", "anthropic"];
const MODELS: usize = 25;

/// A registry holding `endpoints × providers × MODELS` backend combinations, each recorded by
/// one whole request (a few observations, so buckets are not all zero), and perf's metrics in it.
fn filled(providers: usize) -> (Registry, &'static Metrics) {
    let registry = Registry::new();
    let metrics: &'static Metrics = Metrics::builder()
        .build(&registry)
        .expect("a fresh registry takes the families");
    for endpoint in ENDPOINTS {
        for provider in &PROVIDERS[..providers] {
            for m in 0..MODELS {
                let model = format!("model-{m:02}-{}", ["mini", "large", "turbo"][m % 3]);
                let tracker = PerformanceTracker::with_metrics(metrics, endpoint);
                for stage in [
                    Stage::REQUEST_PARSING,
                    Stage::AUTH_VALIDATION,
                    Stage::REQUEST_PREPARATION,
                ] {
                    drop(tracker.stage(stage));
                }
                let backend = tracker.backend_request(provider, &model);
                std::hint::spin_loop();
                backend.first_byte();
                drop(tracker.streaming());
                tracker.record_percentages();
            }
        }
    }
    (registry, metrics)
}

/// Series and lines in one exposition, to say what was rendered.
fn describe(metrics: &Metrics, label: &str) {
    let text = exposition::render(metrics);
    let histograms = text.lines().filter(|l| l.contains("_count{")).count();
    let backend = text
        .lines()
        .filter(|l| l.starts_with("backend_ttfb_seconds_count{"))
        .count();
    eprintln!(
        "exposition {label}: {histograms} histogram series ({backend} backend_ttfb_seconds, as many \
         streaming_duration_seconds), {} lines, {} bytes",
        text.lines().count(),
        text.len()
    );
}

fn prometheus_gather_encode(registry: &Registry) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 * 1024);
    TextEncoder::new()
        .encode(&registry.gather(), &mut out)
        .expect("encoding into a Vec cannot fail");
    out
}

fn render(c: &mut Criterion) {
    let mut group = c.benchmark_group("exposition");
    // (label, providers): 2 providers → 250 combos, 4 providers → 500 combos.
    for (combos, providers) in [(250, 2), (500, 4)] {
        let (registry, metrics) = filled(providers);
        describe(metrics, &format!("combos/{combos}"));
        assert_eq!(
            exposition::render(metrics).into_bytes(),
            prometheus_gather_encode(&registry),
            "both render the same text"
        );
        group.bench_with_input(
            BenchmarkId::new("perf_render", combos),
            metrics,
            |b, metrics| b.iter(|| black_box(exposition::render(metrics))),
        );
        for (name, format) in [
            ("perf_render_openmetrics", exposition::Format::OpenMetrics),
            ("perf_render_protobuf", exposition::Format::Protobuf),
        ] {
            group.bench_with_input(BenchmarkId::new(name, combos), metrics, |b, metrics| {
                b.iter(|| black_box(exposition::render_as(metrics, format)))
            });
        }
        group.bench_with_input(
            BenchmarkId::new("prometheus_gather_encode", combos),
            &registry,
            |b, registry| b.iter(|| black_box(prometheus_gather_encode(registry))),
        );
        group.bench_with_input(
            BenchmarkId::new("prometheus_gather_only", combos),
            &registry,
            |b, registry| b.iter(|| black_box(registry.gather())),
        );
        let families = registry.gather();
        group.bench_with_input(
            BenchmarkId::new("prometheus_encode_only", combos),
            &families,
            |b, families| {
                b.iter(|| {
                    let mut out = Vec::with_capacity(16 * 1024);
                    TextEncoder::new()
                        .encode(black_box(families), &mut out)
                        .expect("encoding into a Vec cannot fail");
                    black_box(out)
                })
            },
        );
    }
    group.finish();
}

/// One OTLP export's body (feature `otlp`): every family read, converted to an
/// `ExportMetricsServiceRequest` (native buckets as exponential histograms, exemplars),
/// protobuf-encoded, then gzip-compressed (the default) or not. What the exporter's task does
/// each interval before it POSTs.
#[cfg(feature = "otlp")]
fn otlp(c: &mut Criterion) {
    use perf_runtime::otlp::OtlpExporter;
    let mut group = c.benchmark_group("otlp_export");
    for (combos, providers) in [(250, 2), (500, 4)] {
        let (_registry, metrics) = filled(providers);
        for (name, gzip) in [("gzip", true), ("plain", false)] {
            let exporter = OtlpExporter::default().gzip(gzip);
            eprintln!(
                "otlp_export {name}/{combos}: {} bytes",
                exporter.body(metrics).len()
            );
            group.bench_with_input(BenchmarkId::new(name, combos), &exporter, |b, exporter| {
                b.iter(|| black_box(exporter.body(metrics)))
            });
        }
    }
    group.finish();
}

#[cfg(not(feature = "otlp"))]
fn otlp(_: &mut Criterion) {}

criterion_group!(benches, render, otlp);
criterion_main!(benches);
