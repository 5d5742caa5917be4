//! The three formats: the same series in each, exemplars and native buckets where the format
//! carries them, and the application's families beside perf's.

use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounter, Opts, Registry, TextEncoder};

use super::*;
use crate::PerformanceTracker;

/// perf's families written from its core, and the application's through `TextEncoder`,
/// interleaved by name: the same bytes as `gather` + `TextEncoder` of the whole registry.
#[test]
fn matches_the_prometheus_text_encoder_byte_for_byte() {
    let registry = Registry::new();
    let metrics = Metrics::builder().build(&registry).unwrap();
    let histogram = HistogramVec::new(
        HistogramOpts::new("app_seconds", "A help with \\ and\nnewline.")
            .buckets(vec![0.001, 0.5, 2.5]),
        &["model", "endpoint"],
    )
    .unwrap();
    registry.register(Box::new(histogram.clone())).unwrap();
    let counter = IntCounter::with_opts(Opts::new("zz_total", "Count.")).unwrap();
    registry.register(Box::new(counter.clone())).unwrap();
    for (model, v) in [("gpt-4o", 0.2), ("a\"b\\c\nd", 3.0), ("ünï", 0.0001)] {
        histogram.with_label_values(&[model, "/v1/x"]).observe(v);
        let tracker = PerformanceTracker::with_metrics(metrics, "/v1/\"x\"\n");
        drop(tracker.stage("request_parsing"));
        tracker.backend_request("p\\", model).first_byte();
        drop(tracker.streaming());
        tracker.record_percentages();
    }
    counter.inc_by(12);
    let mut theirs = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut theirs)
        .unwrap();
    let ours = render(metrics);
    assert_eq!(ours, String::from_utf8(theirs).unwrap());
    assert!(ours.contains("app_seconds_bucket{"), "{ours}");
    assert!(ours.contains("stage_percentage{"), "{ours}");
}

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// perf's families in a registry, one traced request of 2 ms stages and a 120 ms TTFB, and an
/// application counter and summary.
fn recorded() -> &'static Metrics {
    let registry = Registry::new();
    let metrics = Metrics::builder().build(&registry).unwrap();
    let app = IntCounter::with_opts(Opts::new("app_jobs_total", "Jobs.")).unwrap();
    registry.register(Box::new(app.clone())).unwrap();
    app.inc_by(3);
    let summary = prometheus::Histogram::with_opts(HistogramOpts::new("app_wait_seconds", "W."));
    registry.register(Box::new(summary.unwrap())).unwrap();
    let tracker = PerformanceTracker::with_metrics(metrics, "/v1/chat/completions");
    tracker.set_trace_id(crate::TraceId::from_traceparent(TRACEPARENT).unwrap());
    {
        let _stage = tracker.stage("auth_validation");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let backend = tracker.backend_request("openai", "gpt-4o");
    std::thread::sleep(std::time::Duration::from_millis(120));
    backend.first_byte();
    drop(tracker.streaming());
    tracker.record_percentages();
    metrics
}

/// The series of a text or OpenMetrics exposition: sample names and labels, without values,
/// exemplars or metadata.
fn series_of(text: &str) -> Vec<String> {
    let mut series: Vec<String> = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .map(|line| {
            let space = line.find(' ').unwrap();
            let end = match line.find('{') {
                Some(brace) if brace < space => line.find("} ").unwrap() + 1,
                _ => space,
            };
            line[..end].to_string()
        })
        .collect();
    series.sort();
    series
}

#[test]
fn openmetrics_has_the_text_formats_series_with_exemplars_and_its_own_rules() {
    let metrics = recorded();
    let text = render(metrics);
    let om = String::from_utf8(render_as(metrics, Format::OpenMetrics)).unwrap();
    let (om_series, text_series) = (series_of(&om), series_of(&text));
    assert!(om_series == text_series, "{om}\n---\n{text}");
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(om.contains("# TYPE requests counter\n"), "{om}");
    assert!(
        om.contains("requests_total{endpoint=\"/v1/chat/completions\",outcome=\"completed\"} 1\n")
    );
    assert!(om.contains("# TYPE app_jobs counter\n") && om.contains("\napp_jobs_total 3\n"));
    assert!(om.contains("# UNIT backend_ttfb_seconds seconds\n"), "{om}");
    // The request's 120 ms TTFB is in the 0.5 s bucket, with the client's trace id.
    let ttfb = om
        .lines()
        .find(|l| l.starts_with("backend_ttfb_seconds_bucket{") && l.contains("le=\"0.5\""))
        .unwrap();
    let (sample, exemplar) = ttfb.split_once(" # ").unwrap();
    assert!(sample.ends_with(" 1"), "{ttfb}");
    let exemplar: Vec<&str> = exemplar.split(' ').collect();
    assert_eq!(exemplar[0], format!("{{trace_id=\"{TRACE}\"}}"));
    let value: f64 = exemplar[1].parse().unwrap();
    assert!((0.12..0.5).contains(&value), "{ttfb}");
    let timestamp: f64 = exemplar[2].parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    assert!((now.as_secs_f64() - timestamp).abs() < 60.0, "{ttfb}");
    // The stage too (its one bucket with an exemplar); the 0.1 s bucket, where the TTFB is not, has no exemplar.
    let stage = om
        .lines()
        .find(|l| l.contains("stage=\"auth_validation\"") && l.contains(" # "))
        .unwrap();
    assert!(stage.contains(TRACE), "{stage}");
    let below = om
        .lines()
        .find(|l| l.starts_with("backend_ttfb_seconds_bucket{") && l.contains("le=\"0.1\""))
        .unwrap();
    assert!(!below.contains(" # "), "{below}");
}

#[test]
fn protobuf_has_the_same_series_with_native_buckets_and_exemplars() {
    use prost::Message;

    use super::protobuf::model::{MetricFamily, MetricType};

    let metrics = recorded();
    let bytes = render_as(metrics, Format::Protobuf);
    let mut rest = bytes.as_slice();
    let mut families = Vec::new();
    while !rest.is_empty() {
        families.push(MetricFamily::decode_length_delimited(&mut rest).unwrap());
    }
    let ours: Vec<_> = metrics
        .families
        .all()
        .iter()
        .map(|f| f.read(crate::metrics::reading::Extras::ALL))
        .collect();
    let series = |name: &str| {
        ours.iter()
            .find(|f| f.name == name)
            .map_or(0, |f| f.series.len())
    };
    for family in &families {
        if !family.name.starts_with("app_") {
            assert_eq!(family.metric.len(), series(&family.name), "{}", family.name);
        }
    }
    let family = |name: &str| families.iter().find(|f| f.name == name).unwrap();
    assert_eq!(
        family("app_jobs_total").metric[0]
            .counter
            .as_ref()
            .unwrap()
            .value,
        3.0
    );
    let requests = family("requests_total");
    assert_eq!(requests.r#type, MetricType::Counter as i32);

    let ttfb = family("backend_ttfb_seconds");
    assert_eq!(ttfb.unit, "seconds");
    let histogram = ttfb.metric[0].histogram.as_ref().unwrap();
    assert_eq!(histogram.sample_count, 1);
    assert_eq!(histogram.schema, 3);
    // One observation: one span of one bucket, whose upper bound is just above 0.12 s.
    assert_eq!(histogram.positive_delta, [1]);
    let index = histogram.positive_span[0].offset;
    let upper = 2f64.powf(f64::from(index) / 8.0);
    let value = histogram.sample_sum;
    assert!(
        upper >= value && upper / 2f64.powf(0.125) < value,
        "{index} {value}"
    );
    let half = histogram
        .bucket
        .iter()
        .find(|b| b.upper_bound == 0.5)
        .unwrap();
    let exemplar = half.exemplar.as_ref().unwrap();
    assert_eq!(exemplar.label[0].value, TRACE);
    assert!(exemplar.timestamp.as_ref().unwrap().seconds > 1_700_000_000);
    // Families without native buckets (the request's duration) have none.
    let duration = family("request_duration_seconds").metric[0]
        .histogram
        .as_ref()
        .unwrap();
    assert!(duration.positive_span.is_empty() && duration.schema == 0);
}

#[test]
fn negotiation_takes_the_highest_quality_the_earliest_on_a_tie() {
    let format = |accept: &str| Format::from_accept(Some(accept));
    assert_eq!(
        format("text/plain;version=0.0.4;q=0.5,application/openmetrics-text;q=0.4"),
        Format::Text
    );
    assert_eq!(
        format("application/openmetrics-text;version=2.0.0,text/plain"),
        Format::Text
    );
    assert_eq!(
        format("application/openmetrics-text;q=0, */*;q=0.1"),
        Format::Text
    );
    assert_eq!(
        format("application/vnd.google.protobuf;proto=other;encoding=delimited"),
        Format::Text
    );
    assert_eq!(
        format("garbage, application/openmetrics-text"),
        Format::OpenMetrics
    );
    assert_eq!(
        format("application/openmetrics-text; version=1.0.0; q=0.9, application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited; q=0.9"),
        Format::OpenMetrics
    );
    assert_eq!(Format::Protobuf.content_type(), protobuf::CONTENT_TYPE);
}
