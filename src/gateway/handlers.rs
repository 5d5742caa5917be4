//! The gateway's handlers, instrumented stage by stage: the part of this example to copy into
//! your own gateway.
//!
//! Each request goes through `request_parsing`, `auth_validation` and `request_preparation`
//! (the gateway's own work, which should stay under 3 ms), then the backend call, timed until
//! the provider's first byte, then `stream_processing`: the answer relayed to the client, until
//! the stream ends or the client leaves.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::sse::Sse;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use perf_runtime::{perf_backend, perf_endpoint, perf_stage, perf_stream};

use super::auth::ApiKeys;
use super::error::{ApiError, RequestBody};
use super::openai::{parse, ChatRequest, OpenAiRequest, ResponsesRequest};
use super::sse::relay;
use super::upstream::{read_body, Upstream};

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
    #[perf_stage(request_parsing)]
    let req: ChatRequest = parse(&body)?;
    validate(&app, &headers)?;
    let prepared = request_preparation(&app, &req)?;
    #[perf_backend(provider = app.provider(), model = &req.model)]
    let upstream = app.upstream.send(prepared).await?;
    if req.is_stream() {
        #[perf_stream]
        let events = relay(upstream.bytes_stream());
        return Ok(Sse::new(events).into_response());
    }
    #[perf_stream]
    let answer = upstream.bytes_stream();
    Ok(json_response(read_body(answer).await?))
}

/// `POST /v1/responses`: a `response` object, or with `"stream": true` an SSE stream of
/// `response.*` events.
#[perf_endpoint("/v1/responses")]
pub async fn responses(
    State(app): State<App>,
    headers: HeaderMap,
    RequestBody(body): RequestBody,
) -> Result<Response, ApiError> {
    #[perf_stage(request_parsing)]
    let req: ResponsesRequest = parse(&body)?;
    validate(&app, &headers)?;
    let prepared = request_preparation(&app, &req)?;
    #[perf_backend(provider = app.provider(), model = &req.model)]
    let upstream = app.upstream.send(prepared).await?;
    if req.is_stream() {
        #[perf_stream]
        let events = relay(upstream.bytes_stream());
        return Ok(Sse::new(events).into_response());
    }
    #[perf_stream]
    let answer = upstream.bytes_stream();
    Ok(json_response(read_body(answer).await?))
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

/// A JSON answer, passed on as the provider sent it.
fn json_response(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `GET /healthz`: the gateway is up.
pub async fn healthz() -> &'static str {
    "ok"
}
