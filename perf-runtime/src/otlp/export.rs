//! The export task: every interval, perf's families as one OTLP request, gzip-compressed and
//! POSTed; retried with backoff on what the OTLP spec calls retryable (429, 502, 503, 504, and a
//! collector that could not be reached), within the interval; counted and said once when it
//! fails.

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::IntCounterVec;
use prost::Message as _;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::convert::Converter;
use super::proto::{self, KeyValue};
use super::{OtlpExporter, Temporality};
use crate::metrics::Metrics;

/// The name of the counter of failed exports, in the exported metrics' registry.
pub const EXPORT_FAILURES: &str = "otlp_export_failures_total";

/// The first wait before trying a failed export again; it doubles each time.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// A running export; [`shutdown`](Self::shutdown) sends one last export and stops it. Dropping
/// the handle stops it too (after one last export, without waiting for it): keep it for as long
/// as the export is to run.
#[derive(Debug)]
pub struct OtlpHandle {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl OtlpHandle {
    /// Exports once more (what was recorded since the last export), then stops.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Why the export could not start.
#[derive(Debug)]
pub struct StartError(reqwest::Error);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the OTLP exporter's HTTP client could not be built: {}",
            self.0
        )
    }
}

impl std::error::Error for StartError {}

impl OtlpExporter {
    /// Starts exporting `metrics` on the current tokio runtime (it must be one: call it from
    /// inside `#[tokio::main]` or a task).
    pub fn start(self, metrics: &'static Metrics) -> Result<OtlpHandle, StartError> {
        let client = reqwest::Client::builder()
            .timeout(self.timeout)
            .build()
            .map_err(StartError)?;
        let failures = failure_counter(metrics);
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(run(self, client, metrics, failures, stopped));
        Ok(OtlpHandle { stop, task })
    }

    /// The body an export of `metrics` would POST now: the `ExportMetricsServiceRequest`
    /// (cumulative from now, whatever the temporality), gzip-compressed unless
    /// [`gzip(false)`](Self::gzip). To look at what is sent, or to time what one export costs
    /// (`cargo bench -p perf-runtime --features otlp --bench exposition -- otlp`); needs no
    /// runtime.
    pub fn body(&self, metrics: &'static Metrics) -> Vec<u8> {
        let now = now_nanos();
        let request = Converter::new(proto::Temporality::Cumulative, now).request(
            metrics,
            now,
            &resource(self),
        );
        encode(&request, self.gzip)
    }
}

async fn run(
    config: OtlpExporter,
    client: reqwest::Client,
    metrics: &'static Metrics,
    failures: Option<IntCounterVec>,
    mut stopped: oneshot::Receiver<()>,
) {
    let temporality = match config.temporality {
        Temporality::Cumulative => proto::Temporality::Cumulative,
        Temporality::Delta => proto::Temporality::Delta,
    };
    let mut converter = Converter::new(temporality, now_nanos());
    let resource = Arc::new(resource(&config));
    let reporter = Arc::new(Reporter::default());
    let mut next = Instant::now() + config.interval;
    loop {
        let last = tokio::select! {
            _ = tokio::time::sleep_until(next) => false,
            _ = &mut stopped => true,
        };
        next += config.interval;
        let deadline = if last {
            Instant::now() + config.timeout
        } else {
            next
        };
        let now = now_nanos();
        // Reading every family, converting and compressing take milliseconds with hundreds of
        // series (BENCHMARKS.md, "Exposition"): on the blocking pool, as /metrics renders, not on
        // a worker that requests are polled on.
        let (shared, gzip) = (resource.clone(), config.gzip);
        let built = tokio::task::spawn_blocking(move || {
            let request = converter.request(metrics, now, &shared);
            (encode(&request, gzip), converter)
        })
        .await;
        let body = match built {
            Ok((body, back)) => {
                converter = back;
                body
            }
            // The conversion panicked (a bug): nothing to send, nothing kept for a delta.
            Err(_) => {
                converter = Converter::new(temporality, now);
                if last {
                    break;
                }
                continue;
            }
        };
        match send(&client, &config, body, deadline).await {
            Ok(()) => {
                converter.sent(now);
                reporter.succeeded();
            }
            Err(failure) => {
                if let Some(failures) = &failures {
                    failures.with_label_values(&[failure.reason]).inc();
                }
                reporter.failed(&config.url, &failure.detail);
            }
        }
        if last {
            break;
        }
        // Late (a long retry, a paused process): the next export is one interval from now.
        if next < Instant::now() {
            next = Instant::now() + config.interval;
        }
    }
}

/// Why an export failed: the `reason` label, and what to say.
struct Failure {
    reason: &'static str,
    detail: String,
}

/// POSTs `body`, again after a backoff while the answer is retryable and `deadline` allows.
async fn send(
    client: &reqwest::Client,
    config: &OtlpExporter,
    body: Vec<u8>,
    deadline: Instant,
) -> Result<(), Failure> {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let mut request = client
            .post(&config.url)
            .header("content-type", "application/x-protobuf")
            .body(body.clone());
        if config.gzip {
            request = request.header("content-encoding", "gzip");
        }
        for (name, value) in &config.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let (failure, wait) = match request.send().await {
            Ok(response) if response.status().is_success() => {
                let answer = response.bytes().await.unwrap_or_default();
                partial_success(&answer, &config.url);
                return Ok(());
            }
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let retryable = matches!(status, 429 | 502 | 503 | 504);
                let failure = Failure {
                    reason: if retryable { "unavailable" } else { "rejected" },
                    detail: format!("the collector answered {status}"),
                };
                if !retryable {
                    return Err(failure);
                }
                (failure, retry_after.unwrap_or(backoff))
            }
            Err(e) => {
                let reason = if e.is_timeout() {
                    "timeout"
                } else {
                    "unreachable"
                };
                let failure = Failure {
                    reason,
                    detail: format!("{e}"),
                };
                (failure, backoff)
            }
        };
        if Instant::now() + wait >= deadline {
            return Err(failure);
        }
        tokio::time::sleep(wait).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// Says once what a collector rejected of an export it took.
fn partial_success(answer: &[u8], url: &str) {
    let Ok(response) = proto::ExportMetricsServiceResponse::decode(answer) else {
        return;
    };
    if let Some(partial) = response.partial_success {
        if partial.rejected_data_points > 0 || !partial.error_message.is_empty() {
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                log::warn!(
                    "perf: the OTLP collector at {url} rejected {} data points: {}",
                    partial.rejected_data_points,
                    partial.error_message
                )
            });
        }
    }
}

/// Says the first failure of a run of failures, and the recovery after one.
#[derive(Default)]
struct Reporter {
    failing: std::sync::atomic::AtomicBool,
}

impl Reporter {
    fn failed(&self, url: &str, detail: &str) {
        use std::sync::atomic::Ordering::Relaxed;
        if !self.failing.swap(true, Relaxed) {
            log::error!(
                "perf: the OTLP export to {url} failed ({detail}); counted in \
                 {EXPORT_FAILURES}, and said again only once it works again"
            );
        }
    }

    fn succeeded(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        if self.failing.swap(false, Relaxed) {
            log::info!("perf: the OTLP export works again");
        }
    }
}

fn encode(request: &proto::ExportMetricsServiceRequest, gzip: bool) -> Vec<u8> {
    let bytes = request.encode_to_vec();
    if !gzip {
        return bytes;
    }
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 4),
        flate2::Compression::fast(),
    );
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(&bytes);
    encoder.finish().unwrap_or(bytes)
}

fn resource(config: &OtlpExporter) -> Vec<KeyValue> {
    let mut attributes: Vec<KeyValue> = config
        .resource
        .iter()
        .map(|(k, v)| KeyValue::string(k, v.as_str()))
        .collect();
    for (key, value) in [
        ("telemetry.sdk.name", "perf"),
        ("telemetry.sdk.language", "rust"),
        ("telemetry.sdk.version", env!("CARGO_PKG_VERSION")),
    ] {
        if !config.resource.iter().any(|(k, _)| k == key) {
            attributes.push(KeyValue::string(key, value));
        }
    }
    attributes
}

/// `otlp_export_failures_total{reason}` in `metrics`' registry, or `None` (said once) if it
/// cannot be registered there (an exporter started twice on the same metrics shares it).
fn failure_counter(metrics: &'static Metrics) -> Option<IntCounterVec> {
    let counter = IntCounterVec::new(
        prometheus::Opts::new(
            EXPORT_FAILURES,
            "OTLP metric exports that failed, by reason: unreachable, timeout, unavailable \
             (429, 502, 503, 504 once the retries ran out), rejected (any other status).",
        ),
        &["reason"],
    )
    .ok()?;
    match metrics.registry().register(Box::new(counter.clone())) {
        Ok(()) => Some(counter),
        Err(prometheus::Error::AlreadyReg) => None,
        Err(e) => {
            log::error!("perf: {EXPORT_FAILURES} cannot be registered: {e}");
            None
        }
    }
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_the_request_gzipped_with_its_resource() {
        let registry = prometheus::Registry::new();
        let metrics = Metrics::builder().build(&registry).unwrap();
        drop(crate::PerformanceTracker::with_metrics(
            metrics,
            "/v1/chat/completions",
        ));
        let exporter = OtlpExporter::default().service_name("gateway");
        let decode = |body: &[u8]| {
            proto::ExportMetricsServiceRequest::decode(body).expect("an export request")
        };
        let mut plain = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(&exporter.body(metrics)[..]),
            &mut plain,
        )
        .expect("gzip");
        let zipped = decode(&plain);
        let request = decode(&exporter.clone().gzip(false).body(metrics));
        for request in [zipped, request] {
            let resource = &request.resource_metrics[0];
            let attributes = &resource.resource.as_ref().unwrap().attributes;
            assert!(attributes.contains(&KeyValue::string("service.name", "gateway")));
            let names: Vec<&str> = resource.scope_metrics[0]
                .metrics
                .iter()
                .map(|m| m.name.as_str())
                .collect();
            assert!(names.contains(&"perf.requests"), "{names:?}");
        }
    }
}
