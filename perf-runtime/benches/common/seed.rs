//! (c) the seed's hand-written style: a straight port of its Python, clock reads at the stage
//! boundaries and every observation through `with_label_values`, into a registry of its own.

use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_util::stream::{Stream, StreamExt};
use prometheus::{GaugeVec, HistogramOpts, HistogramVec, Opts, Registry};

use super::{
    authorize, parse, prepare, provider_call, BenchError, Chunks, PROVIDER, SEED_ENDPOINT,
};

/// The families of (c), in a registry of their own: same names, labels and buckets as perf's.
pub struct SeedMetrics {
    pub registry: Registry,
    stage_duration: HistogramVec,
    backend_ttfb: HistogramVec,
    streaming_duration: HistogramVec,
    frontend_processing: HistogramVec,
    stage_percentage: GaugeVec,
}

fn histogram_vec(name: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
    HistogramVec::new(
        HistogramOpts::new(name, name).buckets(buckets.to_vec()),
        labels,
    )
    .expect("valid family")
}

/// The metrics of (c), made on first use, like the module-level globals of the Python seed.
pub fn seed_metrics() -> &'static SeedMetrics {
    static METRICS: OnceLock<SeedMetrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let m = SeedMetrics {
            registry: Registry::new(),
            stage_duration: histogram_vec(
                "request_stage_duration_seconds",
                &["stage", "endpoint"],
                &perf_runtime::STAGE_BUCKETS,
            ),
            backend_ttfb: histogram_vec(
                "backend_ttfb_seconds",
                &["provider", "model", "endpoint"],
                &perf_runtime::BACKEND_BUCKETS,
            ),
            streaming_duration: histogram_vec(
                "streaming_duration_seconds",
                &["provider", "model", "endpoint"],
                &perf_runtime::BACKEND_BUCKETS,
            ),
            frontend_processing: histogram_vec(
                "frontend_processing_seconds",
                &["endpoint"],
                &perf_runtime::FRONTEND_BUCKETS,
            ),
            stage_percentage: GaugeVec::new(
                Opts::new("stage_percentage", "stage_percentage"),
                &["stage", "endpoint"],
            )
            .expect("valid family"),
        };
        for c in [
            Box::new(m.stage_duration.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.backend_ttfb.clone()),
            Box::new(m.streaming_duration.clone()),
            Box::new(m.frontend_processing.clone()),
            Box::new(m.stage_percentage.clone()),
        ] {
            m.registry.register(c).expect("fresh registry");
        }
        m
    })
}

/// (c) The handler in the seed's style: clock reads at the stage boundaries, and each
/// observation finds its series by its label values.
pub async fn seed(body: &'static str) -> Result<SeedStream, BenchError> {
    let m = seed_metrics();
    let ep = SEED_ENDPOINT;
    let t0 = Instant::now();
    let req = parse(body)?;
    let t1 = Instant::now();
    m.stage_duration
        .with_label_values(&["request_parsing", ep])
        .observe((t1 - t0).as_secs_f64());
    authorize(req.key)?;
    let t2 = Instant::now();
    m.stage_duration
        .with_label_values(&["auth_validation", ep])
        .observe((t2 - t1).as_secs_f64());
    let prepared = prepare(&req);
    let t3 = Instant::now();
    m.stage_duration
        .with_label_values(&["request_preparation", ep])
        .observe((t3 - t2).as_secs_f64());
    let chunks = provider_call(req.model, prepared).await?;
    let t4 = Instant::now();
    let ttfb = (t4 - t3).as_secs_f64();
    m.backend_ttfb
        .with_label_values(&[PROVIDER, req.model, ep])
        .observe(ttfb);
    m.stage_duration
        .with_label_values(&["backend_fetch", ep])
        .observe(ttfb);
    Ok(SeedStream {
        inner: chunks,
        model: req.model,
        start: t0,
        first_byte: t4,
        frontend: (t3 - t0).as_secs_f64(),
        ttfb,
    })
}

/// (c)'s answer: records streaming and the percentages when it ends, as the seed's generator
/// does after its `async for`.
pub struct SeedStream {
    inner: Chunks,
    model: &'static str,
    start: Instant,
    first_byte: Instant,
    frontend: f64,
    ttfb: f64,
}

impl Stream for SeedStream {
    type Item = &'static str;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<&'static str>> {
        let polled = self.inner.poll_next_unpin(cx);
        if let Poll::Ready(None) = polled {
            let m = seed_metrics();
            let ep = SEED_ENDPOINT;
            let t5 = Instant::now();
            let streaming = (t5 - self.first_byte).as_secs_f64();
            m.streaming_duration
                .with_label_values(&[PROVIDER, self.model, ep])
                .observe(streaming);
            m.stage_duration
                .with_label_values(&["stream_processing", ep])
                .observe(streaming);
            m.frontend_processing
                .with_label_values(&[ep])
                .observe(self.frontend);
            let total = (t5 - self.start).as_secs_f64();
            for (stage, part) in [
                ("frontend_processing", self.frontend),
                ("backend_response", self.ttfb),
                ("stream_processing", streaming),
            ] {
                m.stage_percentage
                    .with_label_values(&[stage, ep])
                    .set(part * 100.0 / total);
            }
        }
        polled
    }
}
