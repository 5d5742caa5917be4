//! OTLP/HTTP metrics export (feature `otlp`): perf's families pushed to an OpenTelemetry
//! Collector (or any OTLP backend) every interval, named after the OpenTelemetry GenAI and HTTP
//! semantic conventions where they cover them, with exponential histograms and exemplars.
//!
//! ```no_run
//! # async fn run() {
//! // OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318 OTEL_SERVICE_NAME=my-gateway
//! let exporter = perf_runtime::otlp::OtlpExporter::from_env()
//!     .start(perf_runtime::Metrics::global())
//!     .expect("an HTTP client");
//! // ... serve ...
//! exporter.shutdown().await; // one last export
//! # }
//! ```
//!
//! The export runs on a task of the application's tokio runtime: a request never waits for it,
//! and a collector that is down, slow or refusing costs requests nothing. What is sent is the
//! cumulative state perf keeps anyway (unless delta is asked for), so a failed export loses
//! nothing and the memory does not grow; it is counted in `otlp_export_failures_total{reason}`
//! (in the registry of the exported metrics, so in `/metrics`) and said once through `log`.

mod convert;
mod export;
mod names;
mod proto;

use std::time::Duration;

pub use export::{OtlpHandle, StartError, EXPORT_FAILURES};

/// How an export's sums and histograms count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Temporality {
    /// From the start of the process each time (the default, and what Prometheus' OTLP receiver
    /// wants).
    #[default]
    Cumulative,
    /// Since the previous export that succeeded (what Datadog and some backends prefer).
    /// Up-down sums (requests in flight) stay cumulative.
    Delta,
}

/// The default collector endpoint: a local collector's OTLP/HTTP receiver.
pub const DEFAULT_ENDPOINT: &str = "http://localhost:4318";

/// An OTLP/HTTP metrics exporter, configured from the standard `OTEL_*` variables and in code;
/// [`start`](Self::start) it on a tokio runtime.
#[derive(Clone, Debug)]
pub struct OtlpExporter {
    url: String,
    headers: Vec<(String, String)>,
    timeout: Duration,
    interval: Duration,
    temporality: Temporality,
    resource: Vec<(String, String)>,
    gzip: bool,
}

impl Default for OtlpExporter {
    /// `http://localhost:4318/v1/metrics`, every 60 s, 10 s timeout, cumulative, gzip,
    /// `service.name` `unknown_service`.
    fn default() -> Self {
        OtlpExporter {
            url: metrics_url(DEFAULT_ENDPOINT),
            headers: Vec::new(),
            timeout: Duration::from_secs(10),
            interval: Duration::from_secs(60),
            temporality: Temporality::Cumulative,
            resource: vec![("service.name".into(), "unknown_service".into())],
            gzip: true,
        }
    }
}

impl OtlpExporter {
    /// The defaults, then the standard variables: `OTEL_EXPORTER_OTLP_ENDPOINT` (the base URL:
    /// `/v1/metrics` is appended), `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` (the URL as is),
    /// `OTEL_EXPORTER_OTLP_HEADERS` and `..._METRICS_HEADERS` (`k=v,k2=v2`, values
    /// percent-decoded), `OTEL_EXPORTER_OTLP_TIMEOUT` and `..._METRICS_TIMEOUT` (ms),
    /// `OTEL_EXPORTER_OTLP_COMPRESSION` (`gzip` or `none`), `OTEL_METRIC_EXPORT_INTERVAL` (ms),
    /// `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE` (`cumulative`, `delta`),
    /// `OTEL_RESOURCE_ATTRIBUTES` (`k=v,...`) and `OTEL_SERVICE_NAME` (which wins over a
    /// `service.name` there). A value that does not parse is said once through `log` and left
    /// at its default.
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) with the variables `var` gives.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let mut exporter = OtlpExporter::default();
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        if let Some(url) = var("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") {
            exporter.url = url.trim().to_owned();
        } else if let Some(base) = var("OTEL_EXPORTER_OTLP_ENDPOINT") {
            exporter.url = metrics_url(base.trim());
        }
        for name in [
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
        ] {
            if let Some(headers) = var(name) {
                exporter.headers.extend(pairs(&headers));
            }
        }
        for name in [
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
        ] {
            if let Some(ms) = var(name).and_then(|v| millis(name, &v)) {
                exporter.timeout = ms;
            }
        }
        if let Some(ms) = var("OTEL_METRIC_EXPORT_INTERVAL")
            .and_then(|v| millis("OTEL_METRIC_EXPORT_INTERVAL", &v))
        {
            exporter.interval = ms.max(Duration::from_millis(1));
        }
        if let Some(compression) = var("OTEL_EXPORTER_OTLP_COMPRESSION") {
            exporter.gzip = !compression.trim().eq_ignore_ascii_case("none");
        }
        if let Some(preference) = var("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE") {
            exporter.temporality = match preference.trim().to_ascii_lowercase().as_str() {
                "delta" => Temporality::Delta,
                _ => Temporality::Cumulative,
            };
        }
        if let Some(attributes) = var("OTEL_RESOURCE_ATTRIBUTES") {
            for (key, value) in pairs(&attributes) {
                exporter = exporter.resource_attribute(&key, &value);
            }
        }
        if let Some(name) = var("OTEL_SERVICE_NAME") {
            exporter = exporter.service_name(name.trim());
        }
        exporter
    }

    /// Sends to the collector at `base` (e.g. `http://collector:4318`): to `{base}/v1/metrics`.
    pub fn endpoint(mut self, base: &str) -> Self {
        self.url = metrics_url(base);
        self
    }

    /// Sends to `url` as it is (e.g. a backend's own OTLP path).
    pub fn metrics_endpoint(mut self, url: &str) -> Self {
        self.url = url.to_owned();
        self
    }

    /// The URL the exports go to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Adds a header to every export (an API key of the backend).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Exports every `interval` (and once more at [`OtlpHandle::shutdown`]).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Gives up an export attempt after `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Cumulative (the default) or delta sums and histograms.
    pub fn temporality(mut self, temporality: Temporality) -> Self {
        self.temporality = temporality;
        self
    }

    /// Whether exports are gzip-compressed (the default).
    pub fn gzip(mut self, gzip: bool) -> Self {
        self.gzip = gzip;
        self
    }

    /// The resource's `service.name`.
    pub fn service_name(self, name: &str) -> Self {
        self.resource_attribute("service.name", name)
    }

    /// A resource attribute (replacing one of the same key).
    pub fn resource_attribute(mut self, key: &str, value: &str) -> Self {
        self.resource.retain(|(k, _)| k != key);
        self.resource.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The resource attributes sent with every export.
    pub fn resource(&self) -> &[(String, String)] {
        &self.resource
    }
}

/// `{base}/v1/metrics`.
fn metrics_url(base: &str) -> String {
    format!("{}/v1/metrics", base.trim_end_matches('/'))
}

/// `k=v,k2=v2`, keys and values trimmed and percent-decoded (the W3C baggage format the
/// variables use); a pair without `=` is skipped.
fn pairs(list: &str) -> Vec<(String, String)> {
    list.split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (percent_decoded(k.trim()), percent_decoded(v.trim())))
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

fn percent_decoded(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

fn millis(name: &str, value: &str) -> Option<Duration> {
    match value.trim().parse::<u64>() {
        Ok(ms) => Some(Duration::from_millis(ms)),
        Err(_) => {
            log::error!("perf: {name}={value:?} is not a number of milliseconds; ignored");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_variables_configure_it() {
        let vars = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "api-key=abc%3D1, x-team = llm",
            ),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "15000"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "service.name=a,deployment.environment=prod",
            ),
            ("OTEL_SERVICE_NAME", "gateway"),
            ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "Delta"),
        ];
        let exporter = OtlpExporter::from_vars(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        });
        assert_eq!(exporter.url(), "http://collector:4318/v1/metrics");
        assert_eq!(
            exporter.headers,
            [
                ("api-key".into(), "abc=1".into()),
                ("x-team".into(), "llm".into())
            ]
        );
        assert_eq!(exporter.timeout, Duration::from_millis(2500));
        assert_eq!(exporter.interval, Duration::from_secs(15));
        assert_eq!(exporter.temporality, Temporality::Delta);
        assert_eq!(
            exporter.resource(),
            [
                ("deployment.environment".into(), "prod".into()),
                ("service.name".into(), "gateway".into())
            ]
        );
        // The metrics endpoint is taken as it is.
        let exporter = OtlpExporter::from_vars(|name| {
            (name == "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT").then(|| "https://x/otlp".to_owned())
        });
        assert_eq!(exporter.url(), "https://x/otlp");
        assert_eq!(
            OtlpExporter::from_vars(|_| None).url(),
            "http://localhost:4318/v1/metrics"
        );
    }
}
