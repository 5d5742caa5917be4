//! `/metrics` of the example gateway in the format each scraper asks for: the text format
//! without an `Accept` header (valid for `promtool check metrics`), OpenMetrics for Prometheus'
//! default `Accept` (ending with `# EOF`, a slow request's trace id as the exemplar of its
//! `backend_ttfb_seconds` bucket), protobuf for a Prometheus with native histograms (decoding,
//! with native buckets for the stages and the same exemplars), each gzipped on demand.

use crate::common;

use common::{
    assert_lasted, chat, client, decode_families, gunzip, openmetrics_exemplars, post_traced,
    proto, scrape, scrape_as, start, trace_id_of, ttfb_bucket, ACCEPT_OPENMETRICS, ACCEPT_PROTOBUF,
    FAST_MOCK, OPENMETRICS_TYPE, PROTOBUF_TYPE, TEXT_TYPE, ZERO_MOCK,
};
use serde_json::json;

/// The zero bucket's breadth: 2^-24 s.
const ZERO_THRESHOLD: f64 = 1.0 / (1u64 << 24) as f64;

/// A chat completion of `model` that asks the mock for a time to first byte of `ttfb_ms`.
fn slow_chat(model: &str, ttfb_ms: u64) -> String {
    json!({"model": model, "messages": [{"role": "user", "content": "Hi"}],
           "metadata": {"mock_ttfb_ms": ttfb_ms.to_string()}})
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_in_each_format() {
    common::alone!();
    let test = "metrics_in_each_format";
    let gateway = start(&[FAST_MOCK, &["--metrics-max-age-ms", "60000"]].concat()).await;
    for stream in [true, false] {
        let response =
            post_traced(&gateway, "/chat/completions", chat("formats", stream), None).await;
        assert_eq!(response.status(), 200);
        response.bytes().await.expect("the whole answer");
    }
    let url = gateway.metrics_url();

    // No Accept (curl, or an old scraper): the text format, checked by promtool.
    let (content_type, text) = scrape_as(&url, None).await;
    assert_eq!(content_type, TEXT_TYPE);
    assert!(!text.ends_with(b"# EOF\n"));
    scrape(&gateway, test).await;

    // Prometheus' default: OpenMetrics.
    let (content_type, body) = scrape_as(&url, Some(ACCEPT_OPENMETRICS)).await;
    assert_eq!(content_type, OPENMETRICS_TYPE);
    let text = String::from_utf8(body).expect("UTF-8");
    assert!(text.ends_with("\n# EOF\n"), "ends with # EOF");
    assert_eq!(text.matches("# EOF").count(), 1);
    assert!(
        text.contains("# TYPE requests counter\n"),
        "no _total on a counter's TYPE"
    );
    assert!(text.contains("requests_total{"));
    assert!(text.contains("# UNIT backend_ttfb_seconds seconds\n"));
    let exemplars = openmetrics_exemplars(&text, "backend_ttfb_seconds");
    assert!(
        exemplars.iter().any(|e| e.labels["model"] == "formats"),
        "{exemplars:?}"
    );

    // A Prometheus with native histograms: protobuf, with native buckets for the stages.
    let (content_type, body) = scrape_as(&url, Some(ACCEPT_PROTOBUF)).await;
    assert_eq!(content_type, PROTOBUF_TYPE);
    let families = decode_families(&body);
    let stages = families
        .iter()
        .find(|f| f.name == "request_stage_duration_seconds")
        .expect("the stage family");
    assert_eq!(stages.r#type, proto::HISTOGRAM);
    let parsing = stages
        .metric
        .iter()
        .filter(|m| m.label("stage") == Some("request_parsing"))
        .filter_map(|m| m.histogram.as_ref())
        .find(|h| h.sample_count > 0)
        .expect("request_parsing observed");
    assert_eq!(parsing.schema, 3);
    assert_eq!(parsing.zero_threshold, ZERO_THRESHOLD);
    let native = parsing.native_buckets();
    assert!(!native.is_empty());
    let in_native: u64 = parsing.zero_count + native.iter().map(|b| b.1).sum::<u64>();
    assert_eq!(
        in_native, parsing.sample_count,
        "native buckets hold every observation"
    );
    assert_eq!(
        parsing.bucket.last().map(|b| b.cumulative_count),
        Some(parsing.sample_count),
        "the classic buckets are kept next to the native ones: {:?}",
        parsing.bucket
    );
    // A stage takes µs: its native buckets lie between 60 ns and 1 ms.
    for (index, _) in &native {
        let upper = 2f64.powf(f64::from(*index) / 8.0);
        assert!((ZERO_THRESHOLD..1e-3).contains(&upper), "{native:?}");
    }
    for family in ["backend_ttfb_seconds", "frontend_processing_seconds"] {
        let family = families
            .iter()
            .find(|f| f.name == family)
            .unwrap_or_else(|| panic!("no {family}"));
        assert!(
            family
                .metric
                .iter()
                .filter_map(|m| m.histogram.as_ref())
                .any(|h| h.sample_count > 0 && !h.positive_span.is_empty()),
            "{} has native buckets",
            family.name
        );
    }

    // Gzipped on demand, the same rendering (shared for 60 s).
    for (accept, plain) in [
        (ACCEPT_OPENMETRICS, text.into_bytes()),
        (ACCEPT_PROTOBUF, body),
    ] {
        let response = client()
            .get(&url)
            .header("accept", accept)
            .header("accept-encoding", "gzip")
            .send()
            .await
            .expect("the gateway answers");
        assert_eq!(response.headers()["content-encoding"], "gzip");
        assert_eq!(response.headers()["vary"], "accept, accept-encoding");
        let gzip = response.bytes().await.expect("a body");
        assert_eq!(gunzip(&gzip), plain, "{accept}");
    }
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_requests_trace_id_is_the_exemplar_of_its_ttfb_bucket() {
    common::alone!();
    const MODEL: &str = "exemplar-model";
    // The mock answers at once: the 0.1 s bucket; the slow request asks for 700 ms: the 1.0 s
    // bucket (0.5 < 0.7 ≤ 1.0), or a later one if a busy machine adds to it. Each exemplar is
    // checked on the bucket of its own value.
    let gateway = start(&[ZERO_MOCK, &["--metrics-max-age-ms", "0"]].concat()).await;
    for _ in 0..3 {
        let fast = post_traced(&gateway, "/chat/completions", chat(MODEL, false), None).await;
        assert_eq!(fast.status(), 200);
    }
    let slow = post_traced(&gateway, "/chat/completions", slow_chat(MODEL, 700), None).await;
    assert_eq!(slow.status(), 200);
    let slow_id = trace_id_of(slow.headers());
    // The latest fast request, with a trace id of the client's.
    let client_id = "5b8aa5a2d2c872e8321cf37308d69df2";
    let traceparent = format!("00-{client_id}-051581bf3cb55c13-01");
    let fast = post_traced(
        &gateway,
        "/chat/completions",
        chat(MODEL, false),
        Some(&traceparent),
    )
    .await;
    assert_eq!(fast.status(), 200);
    assert_eq!(trace_id_of(fast.headers()), client_id);

    let (_, body) = scrape_as(&gateway.metrics_url(), Some(ACCEPT_OPENMETRICS)).await;
    let text = String::from_utf8(body).expect("UTF-8");
    let ours: Vec<_> = openmetrics_exemplars(&text, "backend_ttfb_seconds")
        .into_iter()
        .filter(|e| e.labels["model"] == MODEL)
        .collect();
    let slow = ours
        .iter()
        .find(|e| e.trace_id == slow_id)
        .unwrap_or_else(|| panic!("no exemplar of {slow_id}: {ours:?}"));
    assert_lasted("the slow request's TTFB", slow.value * 1e3, 700.0);
    assert_eq!(slow.le(), ttfb_bucket(slow.value), "{slow:?}");
    assert_eq!(ours.iter().filter(|e| e.trace_id == slow_id).count(), 1);
    // The latest fast request's exemplar has replaced the earlier ones' on their bucket.
    let fast = ours
        .iter()
        .find(|e| e.trace_id == client_id)
        .unwrap_or_else(|| panic!("no exemplar of the latest fast request: {ours:?}"));
    assert_eq!(fast.le(), ttfb_bucket(fast.value), "{fast:?}");
    assert!(fast.le() < slow.le(), "fast {fast:?}, slow {slow:?}");
    println!("OpenMetrics: slow request {slow_id} -> {slow:?}; latest fast -> {fast:?}");

    // The same exemplar on the same bucket in the protobuf format.
    let (_, body) = scrape_as(&gateway.metrics_url(), Some(ACCEPT_PROTOBUF)).await;
    let families = decode_families(&body);
    let ttfb = families
        .iter()
        .find(|f| f.name == "backend_ttfb_seconds")
        .expect("the TTFB family");
    let series = ttfb
        .metric
        .iter()
        .find(|m| m.label("model") == Some(MODEL))
        .and_then(|m| m.histogram.as_ref())
        .expect("the model's series");
    let bucket = series
        .bucket
        .iter()
        .find(|b| b.upper_bound == slow.le())
        .expect("the slow request's bucket");
    let exemplar = bucket
        .exemplar
        .as_ref()
        .expect("an exemplar on the slow request's bucket");
    assert_eq!(exemplar.label.len(), 1);
    assert_eq!(exemplar.label[0].name, "trace_id");
    assert_eq!(exemplar.label[0].value, slow_id);
    assert_eq!(exemplar.value, slow.value);
    gateway.shutdown().await;
}
