//! The live table of `--demo`: p50/p95/p99 per stage and the split of the time, then the
//! LLM-native numbers (time to first token, chunk gaps, the gateway's overhead, tokens), read
//! back from perf's metrics the way Prometheus would read `/metrics`: quantiles as
//! `histogram_quantile` gives them, from the native buckets where the family keeps them (stages,
//! front end, TTFB, streaming: within 4.3 % at any scale, so a stage of a few µs reads true),
//! else interpolated within the classic buckets.

use std::fmt::Write as _;

use perf_runtime::metrics::snapshot::{counter, gauge, histogram, HistogramSnapshot};
use perf_runtime::metrics::{
    BACKEND_CHUNK_GAP, BACKEND_TOKENS, BACKEND_TTFB, BACKEND_TTFT, FRONTEND_PROCESSING,
    GATEWAY_OVERHEAD, PHASES, REQUEST_STAGE_DURATION, STAGE_PERCENTAGE, STREAMING_DURATION,
};
use perf_runtime::Metrics;

/// The endpoints whose last request's split is shown.
pub const ENDPOINTS: [&str; 2] = ["/v1/chat/completions", "/v1/responses"];

/// Renders the table from `metrics`, over every endpoint: one row per front-end stage and per
/// phase (front end, backend TTFB, streaming) with its count, mean, p50/p95/p99 and share of
/// the time; rows for the time to first token, the chunk gaps and the gateway's overhead (no
/// share: they overlap the phases); the tokens counted; then the split of each endpoint's last
/// request (`stage_percentage`).
pub fn render(metrics: &Metrics) -> String {
    let read = |family: &str, labels: &[(&str, &str)]| {
        histogram(metrics, family, labels).unwrap_or_default()
    };
    let stage = |name: &str| read(REQUEST_STAGE_DURATION, &[("stage", name)]);
    let frontend = read(FRONTEND_PROCESSING, &[]);
    let backend = read(BACKEND_TTFB, &[]);
    let streaming = read(STREAMING_DURATION, &[]);
    let total = frontend.sum + backend.sum + streaming.sum;
    let rows = [
        ("  request_parsing", stage("request_parsing"), true),
        ("  auth_validation", stage("auth_validation"), true),
        ("  request_preparation", stage("request_preparation"), true),
        ("frontend_processing", frontend, true),
        ("backend_response (TTFB)", backend, true),
        ("stream_processing", streaming, true),
        ("time to first token", read(BACKEND_TTFT, &[]), false),
        ("chunk gap", read(BACKEND_CHUNK_GAP, &[]), false),
        ("gateway overhead", read(GATEWAY_OVERHEAD, &[]), false),
    ];

    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<24} {:>7} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "stage", "count", "mean", "p50", "p95", "p99", "share"
    );
    for (name, h, shared) in &rows {
        let _ = writeln!(
            out,
            "{name:<24} {:>7} {:>9} {:>9} {:>9} {:>9} {:>7}",
            h.count,
            secs(h.mean()),
            secs(h.quantile(0.5)),
            secs(h.quantile(0.95)),
            secs(h.quantile(0.99)),
            if *shared {
                share(h, total)
            } else {
                String::from("-")
            },
        );
    }
    let tokens =
        |kind: &str| counter(metrics, BACKEND_TOKENS, &[("type", kind)]).unwrap_or_default();
    let _ = writeln!(
        out,
        "{:<24} {:>7} (input {}, of which cached {}; reasoning {})",
        "output tokens",
        tokens("output"),
        tokens("input"),
        tokens("cached_input"),
        tokens("reasoning"),
    );
    let _ = writeln!(
        out,
        "(p50/p95/p99 as histogram_quantile gives them: from the native buckets, within 4.3 %, \
         for the stages,\n front end, TTFB and streaming; interpolated within the classic \
         buckets for the rest; mean exact)"
    );
    for endpoint in ENDPOINTS {
        let split: Vec<String> = PHASES
            .iter()
            .filter_map(|phase| {
                let labels = [("stage", *phase), ("endpoint", endpoint)];
                let pct = gauge(metrics, STAGE_PERCENTAGE, &labels)?;
                Some(format!("{phase} {pct:.1}%"))
            })
            .collect();
        if !split.is_empty() {
            let _ = writeln!(out, "last request on {endpoint}: {}", split.join(", "));
        }
    }
    out
}

/// `h`'s part of `total` seconds, in percent.
fn share(h: &HistogramSnapshot, total: f64) -> String {
    let pct = h.sum * 100.0 / total;
    if total <= 0.0 {
        String::from("-")
    } else if pct < 0.1 {
        format!("{pct:.3}%")
    } else {
        format!("{pct:.1}%")
    }
}

/// A duration in seconds, in the unit that reads best.
fn secs(value: Option<f64>) -> String {
    match value {
        None => String::from("-"),
        Some(s) if s < 1e-6 => format!("{:.0} ns", s * 1e9),
        Some(s) if s < 1e-5 => format!("{:.1} µs", s * 1e6),
        Some(s) if s < 1e-3 => format!("{:.0} µs", s * 1e6),
        Some(s) if s < 1.0 => format!("{:.1} ms", s * 1e3),
        Some(s) => format!("{s:.2} s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(secs(None), "-");
        assert_eq!(secs(Some(0.000_000_42)), "420 ns");
        assert_eq!(secs(Some(0.000_003_14)), "3.1 µs");
        assert_eq!(secs(Some(0.000_25)), "250 µs");
        assert_eq!(secs(Some(0.0123)), "12.3 ms");
        assert_eq!(secs(Some(1.7)), "1.70 s");
    }

    #[test]
    fn renders_every_row_and_the_last_split() {
        use perf_runtime::{Endpoint, PerformanceTracker};
        static CHAT: Endpoint = Endpoint::new("/v1/chat/completions");
        let tracker = PerformanceTracker::at(&CHAT);
        drop(tracker.stage("request_parsing"));
        tracker.backend_request("mock", "m").first_byte();
        tracker.record_percentages();
        let table = render(perf_runtime::Metrics::global());
        for row in [
            "request_parsing",
            "request_preparation",
            "backend_response",
            "stream_processing",
            "time to first token",
            "chunk gap",
            "gateway overhead",
            "output tokens",
        ] {
            assert!(table.contains(row), "{table}");
        }
        assert!(
            table.contains("last request on /v1/chat/completions: frontend_processing"),
            "{table}"
        );
    }
}
