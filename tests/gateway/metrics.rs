//! The five metric families after real traffic: exact names, types, label names and buckets,
//! and exact counts under concurrent requests. One gateway in a process of its own
//! (`common::alone!`), so the counts in the default registry are all its own.

use crate::common;

use std::collections::BTreeSet;

use common::{
    chat, count, eventually, family, gauge, get, global, post, responses, series, start, Outcomes,
    FAST_MOCK, KEY,
};
use prometheus::proto::{MetricFamily, MetricType};

const BACKEND_BUCKETS: [f64; 9] = [0.1, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 5.0, 10.0];
const FRONTEND_BUCKETS: [f64; 8] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5];
const STAGES: [&str; 5] = [
    "request_parsing",
    "auth_validation",
    "request_preparation",
    "backend_fetch",
    "stream_processing",
];
const CHAT: &str = "/v1/chat/completions";
const RESPONSES: &str = "/v1/responses";

/// Checks every series of `family` has exactly `labels` (and `buckets`, for a histogram).
fn check_shape(family: &MetricFamily, kind: MetricType, labels: &[&str], buckets: Option<&[f64]>) {
    assert_eq!(family.get_field_type(), kind, "{}", family.name());
    assert!(
        !family.get_metric().is_empty(),
        "{} has series",
        family.name()
    );
    let want: BTreeSet<&str> = labels.iter().copied().collect();
    for metric in family.get_metric() {
        let names: BTreeSet<&str> = metric.get_label().iter().map(|l| l.name()).collect();
        assert_eq!(names, want, "labels of {}", family.name());
        if let Some(buckets) = buckets {
            let bounds: Vec<f64> = metric
                .get_histogram()
                .get_bucket()
                .iter()
                .map(|b| b.upper_bound())
                .collect();
            assert_eq!(bounds, buckets, "buckets of {}", family.name());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn families_labels_buckets_and_counts() {
    common::alone!();
    let gateway = start(FAST_MOCK).await;

    // 8 concurrent requests: 6 streamed chats (3 models), 2 non-streamed responses; and 2
    // turned away (no key, bad body).
    let mut requests = Vec::new();
    for i in 0..6 {
        let model = ["model-a", "model-b", "model-c"][i % 3];
        requests.push(("/chat/completions", chat(model, true)));
    }
    requests.push(("/responses", responses("model-a", false)));
    requests.push(("/responses", responses("model-a", false)));
    let sends = requests.into_iter().map(|(path, body)| {
        let gateway = &gateway;
        async move {
            let response = post(gateway, path, Some(KEY), body).await;
            assert_eq!(response.status(), 200);
            response.bytes().await.unwrap();
        }
    });
    futures_util::future::join_all(sends).await;
    assert_eq!(
        post(&gateway, "/chat/completions", None, chat("model-a", true))
            .await
            .status(),
        401
    );
    assert_eq!(
        post(&gateway, "/chat/completions", Some(KEY), "{")
            .await
            .status(),
        400
    );
    // A streamed request ends just after its client has read the last byte; `requests_total`
    // counts it last, once everything else is recorded.
    let ended = || (Outcomes::of(CHAT).total(), Outcomes::of(RESPONSES).total());
    assert!(eventually(|| ended() == (8, 2)).await, "{:?}", ended());

    let ttfb = family(global(), "backend_ttfb_seconds").expect("backend_ttfb_seconds");
    let streaming =
        family(global(), "streaming_duration_seconds").expect("streaming_duration_seconds");
    let frontend =
        family(global(), "frontend_processing_seconds").expect("frontend_processing_seconds");
    let stages =
        family(global(), "request_stage_duration_seconds").expect("request_stage_duration_seconds");
    let percentage = family(global(), "stage_percentage").expect("stage_percentage");
    let backend_labels = ["provider", "model", "endpoint"];
    check_shape(
        &ttfb,
        MetricType::HISTOGRAM,
        &backend_labels,
        Some(&BACKEND_BUCKETS),
    );
    check_shape(
        &streaming,
        MetricType::HISTOGRAM,
        &backend_labels,
        Some(&BACKEND_BUCKETS),
    );
    check_shape(
        &frontend,
        MetricType::HISTOGRAM,
        &["endpoint"],
        Some(&FRONTEND_BUCKETS),
    );
    check_shape(
        &stages,
        MetricType::HISTOGRAM,
        &["stage", "endpoint"],
        Some(&perf_runtime::STAGE_BUCKETS),
    );
    check_shape(&percentage, MetricType::GAUGE, &["stage", "endpoint"], None);
    let stage_buckets = perf_runtime::STAGE_BUCKETS;
    assert!(stage_buckets[0] <= 0.0001 && stage_buckets[stage_buckets.len() - 1] >= 10.0);

    // Backend series: one per provider, model and endpoint, counting every answered call.
    for model in ["model-a", "model-b", "model-c"] {
        let labels = [("provider", "mock"), ("model", model), ("endpoint", CHAT)];
        assert_eq!(
            count(global(), "backend_ttfb_seconds", &labels),
            2,
            "{model}"
        );
        assert_eq!(
            count(global(), "streaming_duration_seconds", &labels),
            2,
            "{model}"
        );
    }
    let labels = [
        ("provider", "mock"),
        ("model", "model-a"),
        ("endpoint", RESPONSES),
    ];
    assert_eq!(count(global(), "backend_ttfb_seconds", &labels), 2);
    assert_eq!(count(global(), "streaming_duration_seconds", &labels), 2);
    assert_eq!(series(global(), "backend_ttfb_seconds", &[]).len(), 4);

    // Front end: every request that ran a front-end stage, answered or not.
    assert_eq!(
        count(
            global(),
            "frontend_processing_seconds",
            &[("endpoint", CHAT)]
        ),
        8
    );
    assert_eq!(
        count(
            global(),
            "frontend_processing_seconds",
            &[("endpoint", RESPONSES)]
        ),
        2
    );

    // Stages: the five of each request, as far as it went.
    // The keyless request stopped at auth, before parsing; the bad body at parsing.
    let chat_stages = [7, 8, 6, 6, 6];
    for (stage, count) in STAGES.iter().zip(chat_stages) {
        let labels = [("stage", *stage), ("endpoint", CHAT)];
        assert_eq!(
            common::count(global(), "request_stage_duration_seconds", &labels),
            count,
            "{stage}"
        );
    }
    for stage in STAGES {
        let labels = [("stage", stage), ("endpoint", RESPONSES)];
        assert_eq!(
            count(global(), "request_stage_duration_seconds", &labels),
            2,
            "{stage}"
        );
    }

    // Percentages: three stages per endpoint, summing to 100.
    for endpoint in [CHAT, RESPONSES] {
        let split: Vec<f64> = [
            "frontend_processing",
            "backend_response",
            "stream_processing",
        ]
        .iter()
        .map(|stage| {
            gauge(
                global(),
                "stage_percentage",
                &[("stage", stage), ("endpoint", endpoint)],
            )
            .expect("a percentage")
        })
        .collect();
        let sum: f64 = split.iter().sum();
        assert!((sum - 100.0).abs() < 1e-6, "{endpoint}: {split:?}");
        assert_eq!(
            series(global(), "stage_percentage", &[("endpoint", endpoint)]).len(),
            3
        );
    }

    // The same, in the text format at /metrics.
    let (status, text) = get(&gateway.metrics_url(), None).await;
    assert_eq!(status, 200);
    for (name, kind) in [
        ("backend_ttfb_seconds", "histogram"),
        ("streaming_duration_seconds", "histogram"),
        ("frontend_processing_seconds", "histogram"),
        ("request_stage_duration_seconds", "histogram"),
        ("stage_percentage", "gauge"),
    ] {
        assert!(text.contains(&format!("# TYPE {name} {kind}\n")), "{name}");
    }
    let bucket = r#"backend_ttfb_seconds_bucket{endpoint="/v1/chat/completions",model="model-a",provider="mock",le="1.5"} 2"#;
    assert!(text.contains(bucket), "{text}");
}
