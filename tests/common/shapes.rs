//! What the handler-shape tests share (`tests/shapes/*.rs`, with `#[perf_endpoint]` handlers or
//! behind the tower layer): a server for a test's own router, as it is or behind a `PerfLayer`,
//! a simulated provider whose answer is a stream of events with known timing, and the numbers of
//! one registry read back summed over series. The scenarios themselves, one file for each pair
//! of test files, are in `tests/shapes/scenarios/`.

use std::convert::Infallible;
use std::future::IntoFuture;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::{stream, Stream, StreamExt};
use perf_runtime::{perf_stream, Metrics, PerfLayer, Usage};
use prometheus::Registry;

pub use perf_test_kit::provider::{event_chunk, Event};

use super::{client, eventually, Outcomes};

/// Serves `router` on an ephemeral port of 127.0.0.1 (axum's own server); its base URL.
pub async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let address = listener.local_addr().expect("a bound address");
    tokio::spawn(axum::serve(listener, router).into_future());
    format!("http://{address}")
}

/// A test's router, served, and the registry its requests record into.
pub struct Served {
    pub numbers: Numbers,
    pub base: String,
}

impl Served {
    /// `router` as it is: its `#[perf_endpoint]` handlers record into the global metrics.
    pub async fn as_is(router: axum::Router) -> Served {
        let numbers = Numbers::global();
        let base = serve(router).await;
        Served { numbers, base }
    }

    /// `router` behind a `PerfLayer` recording into fresh metrics of its own.
    pub async fn layered(router: axum::Router) -> Served {
        let (numbers, metrics) = Numbers::private();
        let base = serve(router.layer(PerfLayer::with_metrics(metrics))).await;
        Served { numbers, base }
    }

    /// The URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends `method` to `path` with a JSON chat body; the response.
    pub async fn send(&self, method: reqwest::Method, path: &str) -> reqwest::Response {
        client()
            .request(method, self.url(path))
            .header("content-type", "application/json")
            .body(r#"{"model":"m","stream":false}"#)
            .send()
            .await
            .expect("the server answers")
    }

    /// POSTs to `path`; the response, after checking it is a 200.
    pub async fn post_ok(&self, path: &str) -> reqwest::Response {
        let response = self.send(reqwest::Method::POST, path).await;
        assert_eq!(response.status(), 200);
        response
    }
}

/// `n` milliseconds.
pub const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The timing of a simulated provider's answer: its role delta at once (unless `role` is
/// false), its first token after `first_ms`, then `tokens - 1` more `gap_ms` apart, then its
/// usage (if any) and `[DONE]`.
#[derive(Clone, Copy, Debug)]
pub struct Answer {
    pub role: bool,
    pub first_ms: u64,
    pub tokens: usize,
    pub gap_ms: u64,
    pub usage: Option<Usage>,
}

impl Answer {
    /// `tokens` tokens, the first after `first_ms`, the others `gap_ms` apart; no usage.
    pub const fn new(first_ms: u64, tokens: usize, gap_ms: u64) -> Answer {
        Answer {
            role: true,
            first_ms,
            tokens,
            gap_ms,
            usage: None,
        }
    }

    /// The same answer without its role delta: its first event is its first token.
    pub const fn without_role(self) -> Answer {
        Answer {
            role: false,
            ..self
        }
    }

    /// The same answer, reporting `input` prompt and `output` generated tokens.
    pub const fn with_usage(self, input: u64, output: u64) -> Answer {
        Answer {
            usage: Some(Usage {
                input,
                output,
                cached_input: 0,
                reasoning: 0,
                cache_write: 0,
            }),
            ..self
        }
    }

    /// Its events, at their times: what the provider's connection yields.
    pub fn events(self) -> impl Stream<Item = Event> + Send + 'static {
        let tokens = stream::iter(0..self.tokens).then(move |i| async move {
            let wait = if i == 0 { self.first_ms } else { self.gap_ms };
            tokio::time::sleep(ms(wait)).await;
            Event::Token(format!("t{i}"))
        });
        let tail = self
            .usage
            .map(Event::Usage)
            .into_iter()
            .chain([Event::Done]);
        stream::iter(self.role.then_some(Event::Role))
            .chain(tokens)
            .chain(stream::iter(tail))
    }
}

/// The provider's answer relayed as a chunked tracked stream: TTFT, chunk gaps and tokens.
#[perf_stream(chunks = event_chunk)]
pub fn relay(answer: Answer) -> impl Stream<Item = Event> + Send + 'static {
    answer.events()
}

/// An event as an SSE frame.
pub fn sse_frame(event: &Event) -> Bytes {
    match event {
        Event::Role => Bytes::from_static(b"data: {\"role\":\"assistant\"}\n\n"),
        Event::Token(token) => Bytes::from(format!("data: {{\"content\":\"{token}\"}}\n\n")),
        Event::Usage(usage) => Bytes::from(format!(
            "data: {{\"usage\":{{\"input\":{},\"output\":{}}}}}\n\n",
            usage.input, usage.output
        )),
        Event::Done => Bytes::from_static(b"data: [DONE]\n\n"),
    }
}

/// A `text/event-stream` answer whose body is `events`, framed.
pub fn sse_response(events: impl Stream<Item = Event> + Send + 'static) -> Response {
    let body = Body::from_stream(events.map(|e| Ok::<_, Infallible>(sse_frame(&e))));
    ([(header::CONTENT_TYPE, "text/event-stream")], body).into_response()
}

/// The registry a test's router records into (the global metrics', or a test's own), and its
/// numbers read with the test kit's reader, each summed over the series whose labels include
/// the given ones; 0 where no series exists yet.
#[derive(Clone)]
pub struct Numbers(Registry);

impl Numbers {
    /// The global metrics' registry: the one `#[perf_endpoint]` and `PerfLayer::new()` record
    /// into.
    pub fn global() -> Numbers {
        Numbers(perf_test_kit::global().clone())
    }

    /// A fresh registry with metrics of its own, for a test that can hand them to what it tests
    /// (`PerfLayer::with_metrics`).
    pub fn private() -> (Numbers, &'static Metrics) {
        let (registry, metrics) = perf_test_kit::private_metrics();
        (Numbers(registry), metrics)
    }

    pub fn registry(&self) -> &Registry {
        &self.0
    }

    /// `(count, sum)` of histogram `family` over the series with `labels`.
    pub fn histogram(&self, family: &str, labels: &[(&str, &str)]) -> (u64, f64) {
        perf_test_kit::histogram_total(&self.0, family, labels)
    }

    /// The observations of histogram `family` over the series with `labels`.
    pub fn count(&self, family: &str, labels: &[(&str, &str)]) -> u64 {
        self.histogram(family, labels).0
    }

    /// The seconds observed in histogram `family` over the series with `labels`.
    pub fn sum(&self, family: &str, labels: &[(&str, &str)]) -> f64 {
        self.histogram(family, labels).1
    }

    /// Counter `family` summed over the series with `labels`.
    pub fn counter(&self, family: &str, labels: &[(&str, &str)]) -> u64 {
        perf_test_kit::counter(&self.0, family, labels)
    }

    /// `requests_total{endpoint}` by outcome.
    pub fn outcomes(&self, endpoint: &str) -> Outcomes {
        Outcomes::in_registry(&self.0, endpoint)
    }

    /// Waits (boundedly) until `n` requests of `endpoint` have ended, and a little longer for
    /// one counted twice; their outcomes.
    pub async fn ended(&self, endpoint: &str, n: u64) -> Outcomes {
        let done = eventually(|| self.outcomes(endpoint).total() >= n).await;
        tokio::time::sleep(ms(50)).await;
        let outcomes = self.outcomes(endpoint);
        assert!(done, "{n} requests of {endpoint} ended: {outcomes:?}");
        outcomes
    }

    /// `stage_percentage{endpoint}` of frontend_processing, backend_response and
    /// stream_processing, if all three were set.
    pub fn percentages(&self, endpoint: &str) -> Option<[f64; 3]> {
        let get = |stage| {
            perf_test_kit::gauge(
                &self.0,
                "stage_percentage",
                &[("endpoint", endpoint), ("stage", stage)],
            )
        };
        Some([
            get("frontend_processing")?,
            get("backend_response")?,
            get("stream_processing")?,
        ])
    }

    /// The `endpoint` values of `requests_total` that counted a request, with their counts
    /// (every outcome); the series made at 0 for the program's known endpoints are left out.
    pub fn endpoints_with_requests(&self) -> std::collections::BTreeMap<String, u64> {
        perf_test_kit::label_values(&self.0, "requests_total", "endpoint")
            .into_iter()
            .map(|endpoint| {
                let n = self.outcomes(&endpoint).total();
                (endpoint, n)
            })
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// `request_stage_duration_seconds{endpoint, stage}` observations.
    pub fn stage_count(&self, endpoint: &str, stage: &str) -> u64 {
        self.count(
            "request_stage_duration_seconds",
            &[("endpoint", endpoint), ("stage", stage)],
        )
    }
}
