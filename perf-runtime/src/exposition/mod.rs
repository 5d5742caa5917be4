//! `/metrics` in every format Prometheus asks for: the text format (0.0.4), OpenMetrics 1.0
//! text (with exemplars) and the delimited protobuf format (with native histograms), chosen from
//! the scraper's `Accept` header ([`Format::from_accept`]). The same series in each.
//!
//! A scrape goes one way. perf's own families are read from the [`Metrics`] that owns them,
//! straight from its metric core. Every other family of its registry (the application's, the
//! `process` collector's) comes from the registry's `gather()`: through the `prometheus` crate's
//! `TextEncoder` in the text format, and read into the same plain data as perf's for the other
//! two (`metrics/gathered.rs`). Nothing here depends on the `prometheus` crate's features, so
//! the output is the same whatever features the program's dependency graph turns on.

mod format;
mod openmetrics;
mod protobuf;
mod text;
mod writer;

use prometheus::proto::MetricFamily;
use prometheus::{Encoder, TextEncoder};

pub use format::Format;

use crate::metrics::reading::{Extras, FamilyReading, Kind, ReadFamily};
use crate::metrics::{gathered, Metrics};

/// The `Content-Type` of the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One scrape of `metrics`' registry: perf's families, read from `metrics`, and every other
/// family of the registry, as `gather()` gives them (sorted by name).
struct Scrape<'a> {
    ours: Vec<&'a dyn ReadFamily>,
    theirs: Vec<MetricFamily>,
}

impl<'a> Scrape<'a> {
    fn of(metrics: &'a Metrics) -> Self {
        let ours: Vec<&dyn ReadFamily> = metrics.families.all().to_vec();
        // perf's collectors are in the registry too (for `prometheus::gather()`): their
        // families are taken from `metrics` instead.
        let theirs = metrics
            .registry()
            .gather()
            .into_iter()
            .filter(|family| !ours.iter().any(|ours| ours.name() == family.name()))
            .collect();
        Scrape { ours, theirs }
    }
}

/// Renders every family of `metrics`' registry in the Prometheus text format: the same bytes as
/// the `prometheus` crate's `gather` + `TextEncoder`, faster for perf's families (see
/// BENCHMARKS.md).
pub fn render(metrics: &Metrics) -> String {
    let Scrape { ours, theirs } = Scrape::of(metrics);
    let mut ours: Vec<_> = ours
        .iter()
        .map(|family| family.read(Extras::default()))
        .collect();
    ours.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = String::with_capacity(64 * 1024);
    let mut writer = writer::TextWriter::default();
    let mut theirs = theirs.into_iter().peekable();
    for family in &ours {
        while let Some(other) = theirs.next_if(|other| other.name() < &*family.name) {
            encode_theirs(&other, &mut out);
        }
        writer.family(family, &mut out);
    }
    for other in theirs {
        encode_theirs(&other, &mut out);
    }
    out
}

/// Renders every family of `metrics`' registry in `format` (see [`Format::content_type`] for the
/// response's `Content-Type`).
///
/// In OpenMetrics, an application family that takes one of the names of perf's families there
/// (a counter `requests` beside perf's `requests_total`: both `requests`; a gauge
/// `backend_ttfb_seconds_count` beside perf's histogram), or of an application family written
/// before it, is left out, and said once through `log`: a strict parser would reject the whole
/// page. The other formats keep it. docs/metrics.md, "Names OpenMetrics shares".
///
/// ```
/// use perf_runtime::exposition::{render_as, Format};
///
/// let registry = prometheus::Registry::new();
/// let metrics = perf_runtime::Metrics::builder().build(&registry).unwrap();
/// let tracker = perf_runtime::PerformanceTracker::with_metrics(metrics, "/v1/chat/completions");
/// tracker.backend_request("openai", "gpt-4o").first_byte();
/// drop(tracker);
///
/// let format = Format::from_accept(Some("application/openmetrics-text; version=1.0.0"));
/// let text = String::from_utf8(render_as(metrics, format)).unwrap();
/// assert!(text.contains("backend_ttfb_seconds_bucket{endpoint=\"/v1/chat/completions\",model=\"gpt-4o\",provider=\"openai\",le=\"0.1\"} 1 # {trace_id=\""));
/// assert!(text.ends_with("# EOF\n"));
/// ```
pub fn render_as(metrics: &Metrics, format: Format) -> Vec<u8> {
    if format == Format::Text {
        return render(metrics).into_bytes();
    }
    let Scrape { ours, theirs } = Scrape::of(metrics);
    // Exemplars in both formats; native buckets only in protobuf.
    let want = Extras {
        exemplars: true,
        native: format == Format::Protobuf,
    };
    let mut families: Vec<FamilyReading> = ours.iter().map(|family| family.read(want)).collect();
    let mut applications = Vec::with_capacity(theirs.len());
    for family in &theirs {
        match gathered::read(family) {
            Ok(family) => applications.push(family),
            Err(error) => log_once(&error),
        }
    }
    if format == Format::OpenMetrics {
        // An application family that takes one of perf's OpenMetrics names would make the
        // whole page invalid: it is left out of this format, and said once.
        applications = openmetrics::without_clashes(&families, applications);
    }
    families.extend(applications);
    families.sort_by(|a, b| a.name.cmp(&b.name));
    match format {
        Format::OpenMetrics | Format::Text => {
            let mut out = String::with_capacity(64 * 1024);
            let mut writer = writer::TextWriter::openmetrics();
            for family in &families {
                writer.family(family, &mut out);
            }
            openmetrics::finish(&mut out);
            out.into_bytes()
        }
        Format::Protobuf => {
            let mut out = Vec::with_capacity(64 * 1024);
            for family in &families {
                protobuf::family(family, &mut out);
            }
            out
        }
    }
}

/// One family of the application's, through the `prometheus` crate's own encoder (but for an
/// untyped one, which that encoder cannot write: it panics).
fn encode_theirs(family: &MetricFamily, out: &mut String) {
    if gathered::kind_of(family) == Kind::Untyped {
        return log_once(&format!("`{}` is untyped", family.name()));
    }
    let mut bytes = Vec::new();
    match TextEncoder::new().encode(std::slice::from_ref(family), &mut bytes) {
        Ok(()) => out.push_str(&String::from_utf8_lossy(&bytes)),
        Err(error) => log_once(&error),
    }
}

/// A family that cannot be encoded is left out, and said once.
fn log_once(error: &dyn std::fmt::Display) {
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| log::error!("perf: a metric family was left out of /metrics: {error}"));
}

/// Renders the registry of the global metrics (the default registry, unless another was
/// installed, or unless the default registry had taken perf's names: see [`Metrics::global`]).
pub fn render_global() -> String {
    render(Metrics::global())
}

/// [`render_global`] in `format`.
pub fn render_global_as(format: Format) -> Vec<u8> {
    render_as(Metrics::global(), format)
}

/// An axum handler serving [`render_global_as`] in the format the scraper's `Accept` header
/// asks for, with its content type.
///
/// ```
/// # #[cfg(feature = "axum")] {
/// let app: axum::Router = axum::Router::new()
///     .route("/metrics", axum::routing::get(perf_runtime::exposition::metrics_handler));
/// # }
/// ```
#[cfg(feature = "axum")]
pub async fn metrics_handler(headers: axum::http::HeaderMap) -> axum::response::Response {
    use axum::response::IntoResponse;
    let accept = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|value| value.to_str().ok());
    let format = Format::from_accept(accept);
    (
        [(axum::http::header::CONTENT_TYPE, format.content_type())],
        render_global_as(format),
    )
        .into_response()
}

#[cfg(test)]
mod tests;
