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

use std::error::Error as _;
use std::net::IpAddr;
use std::time::Duration;

use axum::http::header::{CONTENT_TYPE, LOCATION, RETRY_AFTER};
use axum::http::{HeaderValue, StatusCode};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use perf_runtime::ratelimits::RateLimits;
pub use perf_runtime::BackendErrorKind;
use perf_runtime::{current, TraceId};
use reqwest::{Client, Request, Response, Url};
use tokio::time::Instant;

use super::descriptors::{CallRoom, IDLE_PROVIDER_CONNECTIONS};
use super::error::ApiError;
use super::events::{body_usage, Usage};
use super::openai::OpenAiRequest;
use super::secrets::{fingerprint, Redactor};
use super::trace::TRACEPARENT;

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

/// Largest non-streamed answer read from the provider, in bytes.
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Most bytes of a provider's error body read (and quoted back to the client).
const MAX_ERROR_BYTES: usize = 16 * 1024;

/// Longest wait for a TCP (and TLS) connection to the provider, within the first-byte timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A failure of the provider: what the client is told, and how it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderFailure {
    kind: BackendErrorKind,
    error: ApiError,
    retryable: bool,
}

impl ProviderFailure {
    fn new(kind: BackendErrorKind, error: ApiError) -> Self {
        ProviderFailure {
            kind,
            error,
            retryable: false,
        }
    }

    fn retryable(mut self) -> Self {
        self.retryable = true;
        self
    }

    fn timeout(message: String) -> Self {
        Self::new(
            BackendErrorKind::Timeout,
            ApiError::gateway_timeout(message),
        )
    }

    /// A provider answer that is not what the API promises: a 502 of kind `Protocol`.
    pub fn protocol(message: impl Into<String>) -> Self {
        Self::new(BackendErrorKind::Protocol, ApiError::bad_gateway(message))
    }

    /// How the provider failed.
    pub fn kind(&self) -> BackendErrorKind {
        self.kind
    }

    /// What the client is told.
    pub fn error(&self) -> &ApiError {
        &self.error
    }

    /// Whether another try may succeed and is safe: the provider answered a 5xx, or could not
    /// be reached, before any response headers.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// Records the failure's kind for the current request's latest backend call
    /// (`backend_errors_total`).
    pub fn record(&self) {
        perf_runtime::current::backend_error(self.kind);
    }

    /// The error for the client, the failure being recorded already.
    pub fn into_error(self) -> ApiError {
        self.error
    }

    /// Records the failure (see [`record`](Self::record)), and gives the error for the client.
    pub fn report(self) -> ApiError {
        self.record();
        self.error
    }
}

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
        let answer = ProviderResponse {
            response,
            idle: self.timeouts.idle,
            deadline,
            room: None,
        };
        if answer.response.status().is_success() {
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

/// The provider's answer, its headers in: its body still to read, within the idle and total
/// timeouts.
#[derive(Debug)]
pub struct ProviderResponse {
    response: Response,
    idle: Option<Duration>,
    deadline: Option<Instant>,
    /// The call's room in the descriptor budget, freed with the body.
    room: Option<CallRoom>,
}

impl ProviderResponse {
    /// The answer, holding `room` in the descriptor budget until its body is read to its end
    /// or dropped.
    pub fn holding(mut self, room: CallRoom) -> ProviderResponse {
        self.room = Some(room);
        self
    }

    /// The answer's status.
    pub fn status(&self) -> StatusCode {
        self.response.status()
    }

    /// The answer's `Content-Type`, if it has a readable one.
    pub fn content_type(&self) -> Option<&str> {
        self.response.headers().get(CONTENT_TYPE)?.to_str().ok()
    }

    /// Checks that the answer to a streamed request is an SSE stream (`text/event-stream`).
    pub fn expect_event_stream(self) -> Result<ProviderResponse, ProviderFailure> {
        let media_type = self
            .content_type()
            .and_then(|t| t.split(';').next())
            .map(str::trim);
        if media_type.is_some_and(|t| t.eq_ignore_ascii_case("text/event-stream")) {
            return Ok(self);
        }
        Err(ProviderFailure::protocol(format!(
            "the provider answered a streamed request with {}, not text/event-stream",
            self.content_type().unwrap_or("no content type")
        )))
    }

    /// The body's chunks as they come, each within the idle timeout of the previous one and
    /// all within the total timeout. The stream ends after its first failure.
    pub fn chunks(self) -> impl Stream<Item = Result<Bytes, ProviderFailure>> + Send + 'static {
        let ProviderResponse {
            response,
            idle,
            deadline,
            room,
        } = self;
        let body = Box::pin(response.bytes_stream());
        // The room goes with the body: freed after its last chunk, its failure, or its drop.
        futures_util::stream::unfold(Some((body, room)), move |body| async move {
            let (mut body, room) = body?;
            let asked = Instant::now();
            let idle_until = idle.map(|idle| asked + idle);
            let next = match within(earliest(idle_until, deadline), body.next()).await {
                Some(next) => next,
                None => {
                    let which = if deadline.is_some_and(|d| idle_until.is_none_or(|i| d <= i)) {
                        "its answer's total time limit was reached"
                    } else {
                        "it sent nothing more"
                    };
                    let message = format!(
                        "the provider stopped in the middle of its answer: {which} after {:?}",
                        asked.elapsed()
                    );
                    return Some((Err(ProviderFailure::timeout(message)), None));
                }
            };
            match next? {
                Ok(bytes) => Some((Ok(bytes), Some((body, room)))),
                Err(e) => {
                    let failure = ProviderFailure::new(
                        BackendErrorKind::BrokenOff,
                        ApiError::bad_gateway(format!(
                            "provider answer broken off: {}",
                            describe(&e)
                        )),
                    );
                    Some((Err(failure), None))
                }
            }
        })
    }

    /// An error status, as the client gets it: a 4xx passed on (with the provider's OpenAI
    /// error, any known secret in it redacted, and `Retry-After`), except the provider refusing
    /// the gateway's own credentials (401, 403, 407), which the client cannot fix; a 502 for
    /// everything else (5xx, 3xx). For those 502s the client gets a message of the gateway's own
    /// naming trace `trace`, and the provider's text goes to the log, redacted.
    async fn status_failure(self, trace: TraceId, redactor: &Redactor) -> ProviderFailure {
        let status = self.status();
        let retry_after = self.response.headers().get(RETRY_AFTER).cloned();
        let location = self.response.headers().get(LOCATION).cloned();
        let url = self.response.url();
        let host = format!(
            "{}:{}",
            url.host_str().unwrap_or_default(),
            url.port_or_known_default().unwrap_or_default()
        );
        let mut body = Vec::new();
        let mut chunks = std::pin::pin!(self.chunks());
        while body.len() < MAX_ERROR_BYTES {
            match chunks.next().await {
                Some(Ok(chunk)) => body.extend_from_slice(&chunk),
                _ => break,
            }
        }
        body.truncate(MAX_ERROR_BYTES);
        let hidden = Hidden::of(status);
        let Some(hidden) = hidden else {
            let body = redactor.redact_bytes(&body);
            let error = ApiError::from_provider(status, &body, retry_after);
            return ProviderFailure::new(BackendErrorKind::Status, error);
        };
        let redirect = location
            .map(|l| {
                let l = redactor.log_quote(l.as_bytes());
                format!(" to {l}")
            })
            .unwrap_or_default();
        let text = match redactor.log_quote(&body) {
            text if text.is_empty() => String::from("(no body)"),
            text => text,
        };
        log::warn!(
            "trace {trace}: the provider at {host} answered {status}{redirect} ({}): {text}",
            hidden.what(),
        );
        let code = status.as_u16();
        let message = match hidden {
            Hidden::Redirect => format!(
                "the provider answered a redirect ({code}), which the gateway does not follow"
            ),
            Hidden::CredentialsRefused => {
                format!("the provider refused the gateway's credentials ({code})")
            }
            Hidden::Failed => format!("the provider failed ({code})"),
        };
        let error = ApiError::bad_gateway(format!(
            "{message}; the gateway's log has its answer under trace id {trace}"
        ));
        let failure = ProviderFailure::new(BackendErrorKind::Status, error);
        if status.is_server_error() {
            return failure.retryable();
        }
        failure
    }
}

/// An error status whose text the client does not see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hidden {
    /// A 3xx: never followed.
    Redirect,
    /// 401, 403, 407: the gateway's own credentials, which the client cannot fix (and the
    /// provider may quote).
    CredentialsRefused,
    /// Anything else that is no 4xx: the provider's own failure.
    Failed,
}

impl Hidden {
    /// `None` for a 4xx the client can fix (passed on), else how the status is hidden.
    fn of(status: StatusCode) -> Option<Hidden> {
        match status {
            StatusCode::UNAUTHORIZED
            | StatusCode::FORBIDDEN
            | StatusCode::PROXY_AUTHENTICATION_REQUIRED => Some(Hidden::CredentialsRefused),
            _ if status.is_client_error() => None,
            _ if status.is_redirection() => Some(Hidden::Redirect),
            _ => Some(Hidden::Failed),
        }
    }

    /// What the status means, for the log.
    fn what(self) -> &'static str {
        match self {
            Hidden::Redirect => "a redirect, not followed",
            Hidden::CredentialsRefused => "the gateway's credentials refused",
            Hidden::Failed => "a failure of the provider",
        }
    }
}

/// A whole non-streamed answer: its body, and the token usage it reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WholeBody {
    /// The body, a JSON object.
    pub body: Bytes,
    /// Its `usage`, if it has one the gateway can read.
    pub usage: Option<Usage>,
}

/// Reads a whole non-streamed answer, up to [`MAX_BODY_BYTES`], and checks that it is a JSON
/// object: a broken, late, oversized or invalid answer is a failure.
pub async fn read_body<S>(body: S) -> Result<WholeBody, ProviderFailure>
where
    S: Stream<Item = Result<Bytes, ProviderFailure>>,
{
    let mut body = std::pin::pin!(body);
    let mut answer = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        if answer.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(ProviderFailure::protocol("provider answer too large"));
        }
        answer.extend_from_slice(&chunk);
    }
    let usage = check_json_object(&answer)?;
    Ok(WholeBody {
        body: answer.into(),
        usage,
    })
}

/// Checks that `bytes` is one JSON object (what every OpenAI answer is), reading only its
/// `usage` (see [`body_usage`]).
pub fn check_json_object(bytes: &[u8]) -> Result<Option<Usage>, ProviderFailure> {
    let object = bytes.trim_ascii_start().first() == Some(&b'{');
    match body_usage(bytes) {
        Ok(usage) if object => Ok(usage),
        Ok(_) => Err(ProviderFailure::protocol(
            "the provider's answer is JSON, but not an object",
        )),
        Err(e) => Err(ProviderFailure::protocol(format!(
            "the provider's answer is not valid JSON: {e}"
        ))),
    }
}

/// A failure to get the response headers: the connection could not be made, was cut, or
/// carried no valid HTTP answer.
fn transport_failure(error: &reqwest::Error) -> ProviderFailure {
    if error.is_connect() {
        return ProviderFailure::new(
            BackendErrorKind::Connect,
            ApiError::bad_gateway(format!("provider unreachable: {}", describe(error))),
        )
        .retryable();
    }
    let invalid_http = error.is_redirect()
        || std::iter::successors(error.source(), |e| (*e).source())
            .filter_map(|e| e.downcast_ref::<hyper::Error>())
            .any(|e| e.is_parse() || e.is_parse_status() || e.is_parse_too_large());
    if invalid_http {
        return ProviderFailure::protocol(format!(
            "the provider's answer is not valid HTTP: {}",
            describe(error)
        ));
    }
    ProviderFailure::new(
        BackendErrorKind::BrokenOff,
        ApiError::bad_gateway(format!(
            "the provider closed the connection without an answer: {}",
            describe(error)
        )),
    )
}

/// The earlier of two optional deadlines.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// `future`'s output, or `None` if `deadline` passes first.
async fn within<F: std::future::Future>(deadline: Option<Instant>, future: F) -> Option<F::Output> {
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, future).await.ok(),
        None => Some(future.await),
    }
}

/// A reqwest error and its causes, without the URL (the provider's address is not the
/// client's business).
pub fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        String::from("timed out")
    } else if error.is_connect() {
        String::from("connection failed")
    } else {
        String::from("request failed")
    };
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
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
    fn only_json_objects_are_answers() {
        assert!(check_json_object(br#" {"id": "x", "choices": []}"#).is_ok());
        for bad in [
            &b"<html>502</html>"[..],
            b"{\"id\":",
            b"[1]",
            b"\"text\"",
            b"",
        ] {
            let failure = check_json_object(bad).expect_err("not an answer");
            assert_eq!(failure.kind(), BackendErrorKind::Protocol);
            assert_eq!(failure.error().status(), StatusCode::BAD_GATEWAY);
        }
    }

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

    #[test]
    fn earliest_of_optional_deadlines() {
        let now = Instant::now();
        let later = now + Duration::from_secs(1);
        assert_eq!(earliest(Some(later), Some(now)), Some(now));
        assert_eq!(earliest(None, Some(later)), Some(later));
        assert_eq!(earliest(None, None), None);
    }
}
