//! The gateway's handlers, instrumented stage by stage: the part of this example to copy into
//! your own gateway.
//!
//! Each request goes through `auth_validation`, `request_parsing` and `request_preparation`
//! (the gateway's own work, which should stay under 3 ms), then the backend call, timed until
//! the provider's first byte, then `stream_processing`: the answer relayed to the client, until
//! the stream ends or the client leaves.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::Stream;
use perf_runtime::{perf_backend, perf_endpoint, perf_stage, perf_stream};

use super::auth::ApiKeys;
use super::error::{ApiError, RequestBody};
use super::openai::{parse, ChatRequest, OpenAiRequest, ResponsesRequest};
use super::sse::relay;
use super::upstream::{read_body, Answer, ProviderFailure, Upstream};

/// What the handlers share: the clients' keys, the provider, and its `provider` label.
#[derive(Debug, Clone)]
pub struct App {
    keys: Arc<ApiKeys>,
    upstream: Upstream,
    provider: Arc<str>,
}

impl App {
    /// The state of a gateway letting in `keys` and forwarding to `upstream`, labelled
    /// `provider` in the metrics.
    pub fn new(keys: ApiKeys, upstream: Upstream, provider: &str) -> App {
        App {
            keys: Arc::new(keys),
            upstream,
            provider: provider.into(),
        }
    }

    /// The `provider` label of the backend metrics.
    pub fn provider(&self) -> &str {
        &self.provider
    }
}

/// `POST /v1/chat/completions`: a `chat.completion`, or with `"stream": true` an SSE stream of
/// `chat.completion.chunk`s ending with `data: [DONE]`.
#[perf_endpoint("/v1/chat/completions")]
pub async fn chat_completions(
    State(app): State<App>,
    headers: HeaderMap,
    RequestBody(body): RequestBody,
) -> Result<Response, ApiError> {
    forward::<ChatRequest>(&app, &headers, &body).await
}

/// `POST /v1/responses`: a `response` object, or with `"stream": true` an SSE stream of
/// `response.*` events.
#[perf_endpoint("/v1/responses")]
pub async fn responses(
    State(app): State<App>,
    headers: HeaderMap,
    RequestBody(body): RequestBody,
) -> Result<Response, ApiError> {
    forward::<ResponsesRequest>(&app, &headers, &body).await
}

/// One request of either API, through every stage. Each step is a function with its own
/// attribute; they record into the request the calling `#[perf_endpoint]` handler started.
async fn forward<R: OpenAiRequest>(
    app: &App,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    // The key first: an anonymous client gets its 401 without making the gateway parse (up to
    // `--max-body-bytes` of) its JSON.
    validate(app, headers)?;
    let req: R = request_parsing(body)?;
    let prepared = request_preparation(app, &req)?;
    let upstream = call_provider(app, req.model(), prepared).await?;
    if req.is_stream() {
        // An answer that is no SSE stream would reach the client as an empty one.
        let upstream = upstream
            .expect_event_stream()
            .map_err(ProviderFailure::report)?;
        return Ok(Sse::new(relay_events(upstream)).into_response());
    }
    let body = read_body(answer(upstream))
        .await
        .map_err(ProviderFailure::report)?;
    Ok(json_response(body))
}

/// Reads the client's JSON body: a 400 for anything malformed.
#[perf_stage]
fn request_parsing<R: OpenAiRequest>(body: &[u8]) -> Result<R, ApiError> {
    parse(body)
}

/// Checks the client's bearer key.
#[perf_stage(auth_validation)]
fn validate(app: &App, headers: &HeaderMap) -> Result<(), ApiError> {
    app.keys.check(headers)
}

/// Builds the provider's request: URL, headers, body.
#[perf_stage]
fn request_preparation<R: OpenAiRequest>(app: &App, req: &R) -> Result<reqwest::Request, ApiError> {
    app.upstream.prepare(req)
}

/// Sends the request to the provider; done when its response headers arrive (the first byte).
/// A failure (no answer within `--upstream-timeout-ms`, no connection, an error status) records
/// no TTFB; its kind is reported here, for this backend call, and the client gets a 504, a 502,
/// or the provider's own 4xx.
#[perf_backend(provider = app.provider(), model = model)]
async fn call_provider(
    app: &App,
    model: &str,
    request: reqwest::Request,
) -> Result<Answer, ApiError> {
    app.upstream
        .send(request)
        .await
        .map_err(ProviderFailure::report)
}

/// The provider's SSE stream re-framed for the client: streaming is timed until it ends or the
/// client leaves, and the request ends then. A provider that breaks off or stalls mid-stream
/// (past `--upstream-idle-timeout-ms`) ends it with an SSE `error` event, and fails the request.
#[perf_stream]
fn relay_events(
    upstream: Answer,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    relay(upstream.chunks())
}

/// The provider's non-streamed answer, read as `stream_processing` too, so that the three shares
/// of the request cover all of it. If it breaks off or stalls, `read_body` drops it and the
/// handler returns a 502 or a 504: the request counts as an `error`, whatever the dropped
/// stream says.
#[perf_stream]
fn answer(upstream: Answer) -> impl Stream<Item = Result<Bytes, ProviderFailure>> {
    upstream.chunks()
}

/// A JSON answer, passed on as the provider sent it (once checked to be a JSON object).
fn json_response(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `GET /healthz`: the gateway is up.
pub async fn healthz() -> &'static str {
    "ok"
}
