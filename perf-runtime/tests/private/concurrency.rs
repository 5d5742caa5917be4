//! Concurrent requests lose no observation: exact counts from many threads and many tasks
//! sharing one `Metrics`.

use std::future::Future;
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use perf_runtime::{current, Metrics, PerformanceTracker, StageName};
use perf_test_kit::*;
use prometheus::Registry;

const THREADS: usize = 8;
const PER_THREAD: usize = 500;
const MODELS: [&str; 4] = [
    "gpt-4o",
    "claude-3-5-sonnet",
    "llama-3.1-70b",
    "mistral-large",
];
const FRONT_STAGES: [&str; 3] = ["request_parsing", "auth_validation", "request_preparation"];
const ALL_STAGES: [&str; 5] = [
    "request_parsing",
    "auth_validation",
    "request_preparation",
    "backend_fetch",
    "stream_processing",
];

static PARSING: StageName = StageName::new("request_parsing");
static AUTH: StageName = StageName::new("auth_validation");
static PREPARATION: StageName = StageName::new("request_preparation");

fn stage(registry: &Registry, endpoint: &str, stage: &str) -> (u64, f64) {
    histogram(
        registry,
        "request_stage_duration_seconds",
        &[("stage", stage), ("endpoint", endpoint)],
    )
    .unwrap_or((0, 0.0))
}

/// Buckets are cumulative, never above the count.
fn assert_buckets_consistent(registry: &Registry, family_name: &str) {
    for m in series(registry, family_name, &[]) {
        let h = m.get_histogram();
        let mut previous = 0;
        for b in h.get_bucket() {
            assert!(b.cumulative_count() >= previous, "{family_name}");
            previous = b.cumulative_count();
        }
        assert!(previous <= h.get_sample_count(), "{family_name}");
    }
}

/// The checks shared by the thread and task tests: `requests` complete requests on `endpoint`,
/// each with three front-end stages, a backend call for `MODELS[i % 4]` and a stream.
fn assert_complete_requests(registry: &Registry, endpoint: &str, answered: u64, started: u64) {
    for name in FRONT_STAGES {
        assert_eq!(stage(registry, endpoint, name).0, started, "{name}");
    }
    assert_eq!(stage(registry, endpoint, "backend_fetch").0, started);
    assert_eq!(stage(registry, endpoint, "stream_processing").0, answered);

    let per_model = answered / MODELS.len() as u64;
    for model in MODELS {
        let labels = [
            ("provider", "openrouter"),
            ("model", model),
            ("endpoint", endpoint),
        ];
        assert_eq!(
            count(registry, "backend_ttfb_seconds", &labels),
            per_model,
            "{model}"
        );
        assert_eq!(
            count(registry, "streaming_duration_seconds", &labels),
            per_model,
            "{model}"
        );
    }
    let (ttfb_count, ttfb_sum) = histogram_total(registry, "backend_ttfb_seconds", &[]);
    let (stream_count, stream_sum) = histogram_total(registry, "streaming_duration_seconds", &[]);
    assert_eq!(ttfb_count, answered);
    assert_eq!(stream_count, answered);
    assert_eq!(series_count(registry, "backend_ttfb_seconds"), MODELS.len());
    assert_eq!(
        series_count(registry, "streaming_duration_seconds"),
        MODELS.len()
    );

    let (front_count, front_sum) = histogram(
        registry,
        "frontend_processing_seconds",
        &[("endpoint", endpoint)],
    )
    .unwrap();
    assert_eq!(front_count, answered);

    // Sums agree between the families that record the same measurement.
    if answered == started {
        assert_close(
            stage(registry, endpoint, "backend_fetch").1,
            ttfb_sum,
            "fetch vs ttfb",
        );
        let front_stages: f64 = FRONT_STAGES
            .iter()
            .map(|s| stage(registry, endpoint, s).1)
            .sum();
        assert!(
            (front_sum - front_stages).abs() <= 1e-6 * started as f64,
            "{front_sum} vs {front_stages}"
        );
    }
    assert_close(
        stage(registry, endpoint, "stream_processing").1,
        stream_sum,
        "stream_processing vs streaming",
    );
    // Requests ending at the same time each set the three gauges; the last writer of each wins,
    // so after a concurrent burst they need not come from one request: only their range holds.
    for p in percentages(registry, endpoint) {
        assert!((0.0..=100.0).contains(&p), "{p}");
    }

    for family_name in [
        "backend_ttfb_seconds",
        "streaming_duration_seconds",
        "frontend_processing_seconds",
        "request_stage_duration_seconds",
    ] {
        assert_buckets_consistent(registry, family_name);
    }
    assert_eq!(
        series_count(registry, "request_stage_duration_seconds"),
        ALL_STAGES.len()
    );
}

fn one_threaded_request(metrics: &'static Metrics, rt: &tokio::runtime::Runtime, i: usize) {
    let tracker = PerformanceTracker::with_metrics(metrics, CHAT);
    for name in FRONT_STAGES {
        drop(tracker.stage(name));
    }
    tracker
        .backend_request("openrouter", MODELS[i % MODELS.len()])
        .first_byte();
    let body = tracker.stream(stream::iter(0..3));
    assert_eq!(rt.block_on(body.count()), 3);
}

#[test]
fn threads_share_one_metrics_and_lose_nothing() {
    let (registry, metrics) = private_metrics();
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            scope.spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                for i in 0..PER_THREAD {
                    one_threaded_request(metrics, &rt, t + i);
                }
            });
        }
    });
    let total = (THREADS * PER_THREAD) as u64;
    assert_eq!(total, 4000);
    assert_complete_requests(&registry, CHAT, total, total);

    // One request alone sets a consistent split again.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    one_threaded_request(metrics, &rt, 0);
    assert_percentages_set(&registry, CHAT);
}

#[test]
fn threads_racing_for_the_label_cap_keep_it() {
    let registry = Registry::new();
    let metrics = Metrics::builder().label_cap(2).build(&registry).unwrap();
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            scope.spawn(move || {
                for i in 0..PER_THREAD {
                    let tracker = PerformanceTracker::with_metrics(metrics, "/race");
                    let model = format!("model-{}", (t * 7 + i) % 6);
                    tracker.backend_request("openrouter", &model).first_byte();
                }
            });
        }
    });
    let models = label_values(&registry, "backend_ttfb_seconds", "model");
    assert_eq!(models.len(), 3, "{models:?}");
    assert!(models.contains("other"));
    assert_eq!(
        histogram_total(&registry, "backend_ttfb_seconds", &[]).0,
        (THREADS * PER_THREAD) as u64
    );
}

#[test]
fn threads_on_many_endpoints() {
    let (registry, metrics) = private_metrics();
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            scope.spawn(move || {
                for i in 0..PER_THREAD {
                    let endpoint = format!("/ep/{}", (t + i) % 10);
                    let tracker = PerformanceTracker::with_metrics(metrics, &endpoint);
                    drop(tracker.stage("request_parsing"));
                    tracker.record_percentages();
                }
            });
        }
    });
    assert_eq!(series_count(&registry, "frontend_processing_seconds"), 10);
    for e in 0..10 {
        let endpoint = format!("/ep/{e}");
        assert_eq!(
            count(
                &registry,
                "frontend_processing_seconds",
                &[("endpoint", &endpoint)]
            ),
            400,
            "{endpoint}"
        );
    }
}

async fn handler(i: usize) -> impl futures_util::Stream<Item = usize> {
    {
        let _stage = current::stage(&PARSING);
        tokio::task::yield_now().await;
    }
    {
        let _stage = current::stage(&AUTH);
        tokio::task::yield_now().await;
    }
    {
        let _stage = current::stage(&PREPARATION);
    }
    let backend = current::backend_request("openrouter", MODELS[i % MODELS.len()]);
    tokio::task::yield_now().await;
    backend.first_byte();
    current::stream(stream::iter(0..3).then(|x| async move {
        tokio::task::yield_now().await;
        x
    }))
}

/// A handler whose provider never answers; cancelled by a timeout.
///
/// Its only await is the hanging one, so whatever the scheduling (a timeout can fire at the
/// first poll on a busy machine), every task reaches it: the counts stay exact.
async fn hanging_handler(i: usize) {
    for stage in [&PARSING, &AUTH, &PREPARATION] {
        drop(current::stage(stage));
    }
    let _backend = current::backend_request("openrouter", MODELS[i % MODELS.len()]);
    std::future::pending::<()>().await;
}

/// `tasks` tokio tasks, `task(i)` for each `i`, spawned at once on four workers: their outputs,
/// in order (a task's panic fails the test).
fn on_four_workers<F, T>(tasks: usize, task: impl Fn(usize) -> F) -> Vec<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let spawned: Vec<_> = (0..tasks).map(|i| tokio::spawn(task(i))).collect();
        let mut outputs = Vec::with_capacity(tasks);
        for handle in spawned {
            outputs.push(handle.await.unwrap());
        }
        outputs
    })
}

#[test]
fn tokio_tasks_with_run_and_current_lose_nothing() {
    const TASKS: usize = 2000;
    let (registry, metrics) = private_metrics();
    let chunks = on_four_workers(TASKS, |i| async move {
        let tracker = PerformanceTracker::with_metrics(metrics, CHAT);
        let body = tracker.run(handler(i)).await;
        tokio::task::yield_now().await; // the handler returned; then the body goes out
        body.count().await
    });
    assert!(chunks.iter().all(|&n| n == 3), "{chunks:?}");
    assert_complete_requests(&registry, CHAT, TASKS as u64, TASKS as u64);
}

#[test]
fn tokio_tasks_some_cancelled() {
    const TASKS: usize = 1000;
    let (registry, metrics) = private_metrics();
    on_four_workers(TASKS, |i| async move {
        let tracker = PerformanceTracker::with_metrics(metrics, "/mixed");
        if i % 5 == 0 {
            // Client disconnects before the provider answers.
            let out =
                tokio::time::timeout(Duration::from_millis(5), tracker.run(hanging_handler(i)))
                    .await;
            assert!(out.is_err());
        } else {
            tracker.run(handler(i)).await.count().await;
        }
    });
    let cancelled = (TASKS / 5) as u64;
    let answered = TASKS as u64 - cancelled;
    for name in FRONT_STAGES {
        assert_eq!(stage(&registry, "/mixed", name).0, TASKS as u64, "{name}");
    }
    assert_eq!(stage(&registry, "/mixed", "backend_fetch").0, TASKS as u64);
    assert_eq!(stage(&registry, "/mixed", "stream_processing").0, answered);
    assert_eq!(
        histogram_total(&registry, "backend_ttfb_seconds", &[]).0,
        answered
    );
    assert_eq!(
        histogram_total(&registry, "streaming_duration_seconds", &[]).0,
        answered
    );
    assert_eq!(
        count(
            &registry,
            "frontend_processing_seconds",
            &[("endpoint", "/mixed")]
        ),
        answered
    );
    // Nothing was recorded as work outside a request.
    assert!(series(
        &registry,
        "request_stage_duration_seconds",
        &[("endpoint", "none")]
    )
    .is_empty());
}
