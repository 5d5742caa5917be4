//! The provider client: forwards prepared requests over HTTP to the mock or a real
//! OpenAI-compatible provider, within its timeouts, and tells how a call failed.
//!
//! What the client gets when the provider fails:
//!
//! | failure | before the response headers | after them |
//! |---|---|---|
//! | no answer in time ([`UpstreamTimeouts`]) | 504 | streamed: an SSE `error` event; whole: 504 |
//! | the provider cannot be reached | 502 | |
//! | a 4xx status | the same status, the provider's OpenAI error, its `Retry-After` | |
//! | a 5xx status, a 401, 403, 407 (the gateway's own key refused), a 3xx (a redirect: never followed) | 502, a message of the gateway's own naming the trace id; the provider's text goes to the log | |
//! | an invalid answer (not JSON, not `text/event-stream` for a stream) | | 502, or an SSE `error` event |
//! | the connection cut | 502 | streamed: an SSE `error` event; whole: 502 |
//!
//! Each failure is a [`ProviderFailure`] of a [`BackendErrorKind`], which
//! [`ProviderFailure::report`] records for the request's backend call. A 5xx status or a
//! connection that could not be made is [retryable](ProviderFailure::is_retryable): nothing
//! reached the client yet, and the provider generated nothing it would bill.
//!
//! Redirects are not followed: a provider's 307 to another host would have the client's prompt
//! posted there (and a same-origin one the gateway's key along). Nor is a `Referer` sent.
//! The provider's error text is passed on only for a 4xx the client can fix; for the others
//! (its failures, its refusal of the gateway's own key, which it may quote) the client gets a
//! generic message, and the text, with every known secret replaced by its fingerprint
//! ([`Redactor`]), goes to the log (`log::warn!`) under the request's trace id.

mod deadline;
mod failure;
mod response;

use std::net::IpAddr;
use std::time::Duration;

use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderValue;
use perf_runtime::ratelimits::RateLimits;
pub use perf_runtime::BackendErrorKind;
use perf_runtime::{current, TraceId};
use reqwest::{Client, Request, Url};
use tokio::time::Instant;

use super::descriptors::IDLE_PROVIDER_CONNECTIONS;
use super::error::ApiError;
use super::openai::OpenAiRequest;
use super::secrets::{fingerprint, Redactor};
use super::trace::TRACEPARENT;
use deadline::{earliest, within};
use failure::transport_failure;

pub use failure::{describe, ProviderFailure};
pub use response::{check_json_object, read_body, ProviderResponse, WholeBody, MAX_BODY_BYTES};

/// How long the gateway waits for its provider: each `None` is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UpstreamTimeouts {
    /// Until the response headers (the first byte): `--upstream-timeout-ms`.
    pub first_byte: Option<Duration>,
    /// Between two chunks of the answer body: `--upstream-idle-timeout-ms`.
    pub idle: Option<Duration>,
    /// From sending the request to the answer's last byte: `--upstream-total-timeout-ms`.
    pub total: Option<Duration>,
}

/// Longest wait for a TCP (and TLS) connection to the provider, within the first-byte timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// An OpenAI-compatible provider: its base URL, its key, its timeouts and a pooled HTTP client.
/// Its `Debug` shows the key as its fingerprint.
#[derive(Clone)]
pub struct Upstream {
    client: Client,
    base: Url,
    key: Option<String>,
    timeouts: UpstreamTimeouts,
    redactor: Redactor,
}

impl Upstream {
    /// A provider at `base` (e.g. `https://api.openai.com/v1`), authenticated with `key` if
    /// given, waited for within `timeouts`. A loopback `base` (the mock) is reached directly,
    /// never through a proxy. Redirects are not followed (a 3xx is a failure), and no `Referer`
    /// is sent. `key` is redacted from what the provider answers (see
    /// [`with_secrets`](Self::with_secrets) for others).
    pub fn new(
        base: Url,
        key: Option<String>,
        timeouts: UpstreamTimeouts,
    ) -> reqwest::Result<Upstream> {
        let connect = timeouts
            .first_byte
            .map_or(CONNECT_TIMEOUT, |t| t.min(CONNECT_TIMEOUT));
        // At most 32 idle connections kept for reuse (reserved in the descriptor budget):
        // unbounded, a burst of 6,000 streams left ~4,000 of them open, with their buffers,
        // for minutes.
        let mut client = Client::builder()
            .connect_timeout(connect)
            .tcp_nodelay(true)
            .pool_max_idle_per_host(IDLE_PROVIDER_CONNECTIONS)
            .redirect(reqwest::redirect::Policy::none())
            .referer(false);
        if is_loopback(&base) {
            client = client.no_proxy();
        }
        Ok(Upstream {
            client: client.build()?,
            redactor: Redactor::new(key.as_slice()),
            base,
            key,
            timeouts,
        })
    }

    /// Also redacts `secrets` (the clients' keys, the metrics token) from the provider's text,
    /// besides its own key.
    pub fn with_secrets<I, S>(mut self, secrets: I) -> Upstream
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let secrets: Vec<String> = secrets.into_iter().map(|s| s.as_ref().to_owned()).collect();
        self.redactor = Redactor::new(self.key.iter().chain(&secrets));
        self
    }

    /// The provider's base URL.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// Builds the provider request for `req`: URL, headers and JSON body.
    pub fn prepare<R: OpenAiRequest>(&self, req: &R) -> Result<Request, ApiError> {
        let url = format!(
            "{}{}",
            self.base.as_str().trim_end_matches('/'),
            R::UPSTREAM_PATH
        );
        let body = serde_json::to_vec(req).map_err(|e| ApiError::internal(e.to_string()))?;
        let mut builder = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(key) = &self.key {
            builder = builder.bearer_auth(key);
        }
        builder
            .build()
            .map_err(|e| ApiError::internal(describe(&e)))
    }

    /// Builds the provider request `GET {base}{path}` (e.g. `/models`).
    pub fn prepare_get(&self, path: &str) -> Result<Request, ApiError> {
        let url = format!("{}{path}", self.base.as_str().trim_end_matches('/'));
        let mut builder = self.client.get(url);
        if let Some(key) = &self.key {
            builder = builder.bearer_auth(key);
        }
        builder
            .build()
            .map_err(|e| ApiError::internal(describe(&e)))
    }

    /// Sends a prepared request on behalf of trace `trace` (a `traceparent` header with its id
    /// and a new span id: each try is a span of its own); returns once the provider's response
    /// headers have arrived (the time to first byte) with a success status. Anything else is a
    /// failure: no headers within the first-byte (or total) timeout, no connection, an error
    /// status or a redirect.
    pub async fn send(
        &self,
        mut request: Request,
        trace: TraceId,
    ) -> Result<ProviderResponse, ProviderFailure> {
        if let Ok(traceparent) = HeaderValue::from_str(&trace.traceparent()) {
            request.headers_mut().insert(TRACEPARENT, traceparent);
        }
        let started = Instant::now();
        let deadline = self.timeouts.total.map(|t| started + t);
        let first_byte = self.timeouts.first_byte.map(|t| started + t);
        let response =
            match within(earliest(first_byte, deadline), self.client.execute(request)).await {
                Some(Ok(response)) => response,
                Some(Err(e)) => return Err(transport_failure(&e)),
                None => {
                    return Err(ProviderFailure::timeout(format!(
                        "the provider sent no answer within {:?}",
                        started.elapsed()
                    )))
                }
            };
        // The provider's word on its limits, success or not (a 429 states them too).
        let headers = response.headers().iter();
        current::rate_limits(&RateLimits::from_headers(
            headers.map(|(name, value)| (name.as_str(), value.as_bytes())),
        ));
        let answer = ProviderResponse::new(response, self.timeouts.idle, deadline);
        if answer.status().is_success() {
            return Ok(answer);
        }
        Err(answer.status_failure(trace, &self.redactor).await)
    }
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("base", &self.base.as_str())
            .field("key", &self.key.as_deref().map(fingerprint))
            .field("timeouts", &self.timeouts)
            .field("redactor", &self.redactor)
            .finish_non_exhaustive()
    }
}

fn is_loopback(url: &Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    let ip = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || ip.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_the_key_as_its_fingerprint() {
        let base = Url::parse("http://127.0.0.1:1/v1").unwrap();
        let key = "sk-a-secret-of-the-gateway";
        let upstream = Upstream::new(base, Some(key.into()), UpstreamTimeouts::default())
            .unwrap()
            .with_secrets(["client-key"]);
        let debug = format!("{upstream:?}");
        assert!(!debug.contains(key), "{debug}");
        assert!(debug.contains(&fingerprint(key)), "{debug}");
        assert!(debug.contains("Redactor(2 secrets)"), "{debug}");
    }
}
