//! The gateway's handlers, instrumented stage by stage: the part of this example to copy into
//! your own gateway.
//!
//! Each API request (chat completions, responses, embeddings; `GET /v1/models` has no body to
//! parse) goes through `auth_validation`, `request_parsing` and `request_preparation`
//! (the gateway's own work, which should stay under 3 ms), then the backend call, timed until
//! the provider's first byte (tried again on a 5xx or a refused connection, with
//! `--upstream-retries`), then `stream_processing`: the answer relayed to the client, until
//! the stream ends or the client leaves.
//!
//! The relayed stream tells its events apart (`#[perf_stream(chunks = Relayed::chunk)]`): the
//! first content event gives the time to first token, each next one a chunk gap, and the usage
//! event the tokens. A streamed chat request asks the provider for its usage, which the client
//! gets only if it asked too; a whole answer's usage is read from its body
//! (`current::usage`), and the answer carries a `Server-Timing` header.
//!
//! First thing, each handler gives the request the trace id of the client's W3C `traceparent`
//! header (else perf's random one stays): the exemplars of the buckets the request lands in
//! carry it, every answer returns it (`traceparent`, `x-trace-id`), and each call to the
//! provider sends it on (see [`super::trace`]).

use std::future::ready;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::sse::Sse;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use perf_runtime::{perf_backend, perf_endpoint, perf_stage, perf_stream, TraceId};

use super::auth::ApiKeys;
use super::descriptors::CallBudget;
use super::error::{ApiError, RequestBody};
use super::openai::{parse, ChatRequest, EmbeddingsRequest, OpenAiRequest, ResponsesRequest};
use super::refusals::{self, Reason};
use super::sse::{relay, Relayed};
use super::trace::{self, Traced};
use super::upstream::{read_body, ProviderFailure, ProviderResponse, Upstream};

/// What the handlers share: the clients' keys, the provider, its `provider` label, and how
/// requests are forwarded and answered.
#[derive(Debug, Clone)]
pub struct App {
    keys: Arc<ApiKeys>,
    upstream: Upstream,
    provider: Arc<str>,
    retries: u32,
    server_timing: bool,
    calls: CallBudget,
}

impl App {
    /// The state of a gateway letting in `keys` and forwarding to `upstream`, labelled
    /// `provider` in the metrics; no retries, `Server-Timing` on whole answers.
    pub fn new(keys: ApiKeys, upstream: Upstream, provider: &str) -> App {
        App {
            keys: Arc::new(keys),
            upstream,
            provider: provider.into(),
            retries: 0,
            server_timing: true,
            calls: CallBudget::unlimited(),
        }
    }

    /// Tries a provider call up to `retries` more times when it fails with a 5xx or cannot
    /// connect, before any headers (`--upstream-retries`).
    pub fn with_retries(mut self, retries: u32) -> App {
        self.retries = retries;
        self
    }

    /// Sends a `Server-Timing` header with whole answers, or not (`--no-server-timing`).
    pub fn with_server_timing(mut self, on: bool) -> App {
        self.server_timing = on;
        self
    }

    /// Provider calls at once within `calls` (the gateway's descriptor budget); past it, a 503.
    pub fn with_call_budget(mut self, calls: CallBudget) -> App {
        self.calls = calls;
        self
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
) -> Result<Traced<Response>, Traced<ApiError>> {
    let trace = trace::adopt(&headers);
    let answer = forward::<ChatRequest>(&app, &headers, &body, trace).await;
    trace::tag_result(answer, trace)
}

/// `POST /v1/responses`: a `response` object, or with `"stream": true` an SSE stream of
/// `response.*` events.
#[perf_endpoint("/v1/responses")]
pub async fn responses(
    State(app): State<App>,
    headers: HeaderMap,
    RequestBody(body): RequestBody,
) -> Result<Traced<Response>, Traced<ApiError>> {
    let trace = trace::adopt(&headers);
    let answer = forward::<ResponsesRequest>(&app, &headers, &body, trace).await;
    trace::tag_result(answer, trace)
}

/// `POST /v1/embeddings`: a `list` of `embedding`s, one per input. Never streamed: the backend
/// call waits for the whole answer, whose `usage.prompt_tokens` (or `total_tokens`, when that
/// is all it reports) count as input tokens.
#[perf_endpoint("/v1/embeddings")]
pub async fn embeddings(
    State(app): State<App>,
    headers: HeaderMap,
    RequestBody(body): RequestBody,
) -> Result<Traced<Response>, Traced<ApiError>> {
    let trace = trace::adopt(&headers);
    let answer = forward::<EmbeddingsRequest>(&app, &headers, &body, trace).await;
    trace::tag_result(answer, trace)
}

/// `GET /v1/models`: the provider's `GET /models` (`{"object": "list", "data": [...]}`, the mock
/// lists its models), relayed as it answers. The key is checked as for the other routes.
#[perf_endpoint("/v1/models")]
pub async fn models(
    State(app): State<App>,
    headers: HeaderMap,
) -> Result<Traced<Response>, Traced<ApiError>> {
    let trace = trace::adopt(&headers);
    let answer = list_models(&app, &headers, trace).await;
    trace::tag_result(answer, trace)
}

/// The `model` label of a backend call that concerns no model (the listing of models).
pub const NO_MODEL: &str = "";

/// The listing, through the same steps as a request of the APIs, less the parsing: a backend
/// call (its wait is the provider's, not the gateway's overhead) of model [`NO_MODEL`].
async fn list_models(app: &App, headers: &HeaderMap, trace: TraceId) -> Result<Response, ApiError> {
    validate(app, headers)?;
    let request = models_request(app)?;
    let upstream = call_with_retries(app, "/v1/models", NO_MODEL, request, trace).await?;
    let whole = read_body(relay_body(upstream))
        .await
        .map_err(ProviderFailure::report)?;
    Ok(whole_response(app, whole.body))
}

/// Builds the provider's `GET /models`.
#[perf_stage(request_preparation)]
fn models_request(app: &App) -> Result<reqwest::Request, ApiError> {
    app.upstream.prepare_get("/models")
}

/// One request of any of the APIs, through every stage. Each step is a function with its own
/// attribute; they record into the request the calling `#[perf_endpoint]` handler started.
/// `trace` goes on to the provider.
async fn forward<R: OpenAiRequest>(
    app: &App,
    headers: &HeaderMap,
    body: &[u8],
    trace: TraceId,
) -> Result<Response, ApiError> {
    // The key first: an anonymous client gets its 401 without making the gateway parse (up to
    // `--max-body-bytes` of) its JSON.
    validate(app, headers)?;
    let mut req: R = request_parsing(body)?;
    let (prepared, usage_asked) = request_preparation(app, &mut req)?;
    let upstream = call_with_retries(app, R::ENDPOINT, req.model(), prepared, trace).await?;
    if req.is_stream() {
        // An answer that is no SSE stream would reach the client as an empty one.
        let upstream = upstream
            .expect_event_stream()
            .map_err(ProviderFailure::report)?;
        // The usage chunk the gateway asked for on the client's behalf is read by the tracked
        // stream (for the tokens), then kept from a client that did not ask for it.
        let events = relay_events(upstream)
            .filter_map(move |event| ready(event.for_client(usage_asked).map(Ok::<_, Never>)));
        return Ok(Sse::new(events).into_response());
    }
    let whole = read_body(relay_body(upstream))
        .await
        .map_err(ProviderFailure::report)?;
    if let Some(usage) = whole.usage {
        perf_runtime::current::usage(usage);
    }
    Ok(whole_response(app, whole.body))
}

/// A whole JSON answer of the provider, for the client: with `Server-Timing` unless
/// `--no-server-timing`.
fn whole_response(app: &App, body: Bytes) -> Response {
    let mut response = json_response(body);
    if app.server_timing {
        add_server_timing(&mut response);
    }
    response
}

/// An SSE stream that never fails (its failures are `error` events).
type Never = std::convert::Infallible;

/// Calls the provider, and again (at once, up to `--upstream-retries` more times) while it
/// answers a 5xx or cannot be reached: nothing went to the client yet, and the provider
/// generated nothing. Each try is a backend call of its own: its wait is a backend window (left
/// out of the gateway's overhead), its failure is counted in `backend_errors_total`, and only
/// the one that answers records a TTFB.
///
/// First, the call must fit the gateway's descriptor budget: else the client gets a 503 with
/// `Retry-After` at once, and the provider is not tried (counted in
/// `gateway_refused_requests_total{endpoint, reason="over_capacity"}`). The room is held until
/// the answer is read to its end.
async fn call_with_retries(
    app: &App,
    endpoint: &'static str,
    model: &str,
    mut request: reqwest::Request,
    trace: TraceId,
) -> Result<ProviderResponse, ApiError> {
    let Some(room) = app.calls.try_call() else {
        refusals::count(endpoint, Reason::OverCapacity);
        return Err(ApiError::overloaded(
            "the gateway is at capacity: try again shortly",
            1,
        ));
    };
    let mut retries = app.retries;
    loop {
        let again = (retries > 0).then(|| request.try_clone()).flatten();
        let failure = match call_provider(app, model, request, trace).await {
            Ok(answer) => return Ok(answer.holding(room)),
            Err(failure) => failure,
        };
        match again {
            Some(next) if failure.is_retryable() => {
                retries -= 1;
                request = next;
            }
            _ => return Err(failure.into_error()),
        }
    }
}

/// Reads the client's JSON body: a 400 for anything malformed.
#[perf_stage]
fn request_parsing<R: OpenAiRequest>(body: &[u8]) -> Result<R, ApiError> {
    parse(body)
}

/// Checks the client's bearer key; the request is counted under the key's tenant, if it has
/// one (`--api-key KEY=TENANT`).
#[perf_stage(auth_validation)]
fn validate(app: &App, headers: &HeaderMap) -> Result<(), ApiError> {
    if let Some(tenant) = app.keys.check(headers)? {
        perf_runtime::current::set_tenant(tenant);
    }
    Ok(())
}

/// Builds the provider's request: URL, headers, body, asking for the usage of a streamed
/// answer; and tells whether the client asked for that usage itself.
#[perf_stage]
fn request_preparation<R: OpenAiRequest>(
    app: &App,
    req: &mut R,
) -> Result<(reqwest::Request, bool), ApiError> {
    let usage_asked = req.ask_for_usage();
    Ok((app.upstream.prepare(req)?, usage_asked))
}

/// Sends the request to the provider, with a `traceparent` of `trace`; done when its response
/// headers arrive (the first byte). A failure (no answer within `--upstream-timeout-ms`, no
/// connection, an error status) records no TTFB; its kind is recorded here, for this backend
/// call, and the client gets a 504, a 502, or the provider's own 4xx (unless a retry answers).
#[perf_backend(provider = app.provider(), model = model)]
async fn call_provider(
    app: &App,
    model: &str,
    request: reqwest::Request,
    trace: TraceId,
) -> Result<ProviderResponse, ProviderFailure> {
    app.upstream
        .send(request, trace)
        .await
        .inspect_err(ProviderFailure::record)
}

/// The provider's SSE stream re-framed for the client: streaming is timed until it ends or the
/// client leaves, and the request ends then. Each event says what it is (`Relayed::chunk`):
/// the first content event records the time to first token, each later one a chunk gap, the
/// usage event the tokens. A provider that breaks off or stalls mid-stream (past
/// `--upstream-idle-timeout-ms`) ends it with an SSE `error` event, and fails the request.
#[perf_stream(chunks = Relayed::chunk)]
fn relay_events(upstream: ProviderResponse) -> impl Stream<Item = Relayed> + Send + 'static {
    relay(upstream.chunks())
}

/// The provider's non-streamed answer, read as `stream_processing` too, so that the three shares
/// of the request cover all of it. If it breaks off or stalls, `read_body` drops it and the
/// handler returns a 502 or a 504: the request counts as an `error`, whatever the dropped
/// stream says.
#[perf_stream]
fn relay_body(upstream: ProviderResponse) -> impl Stream<Item = Result<Bytes, ProviderFailure>> {
    upstream.chunks()
}

/// A JSON answer, passed on as the provider sent it (once checked to be a JSON object).
fn json_response(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Adds the request's `Server-Timing` so far (each stage, and the backend's wait for its first
/// byte, in milliseconds): browsers' developer tools and `curl -i` show where the time went.
fn add_server_timing(response: &mut Response) {
    let timing = perf_runtime::current::server_timing()
        .filter(|timing| !timing.is_empty())
        .and_then(|timing| HeaderValue::from_str(&timing).ok());
    if let Some(timing) = timing {
        response.headers_mut().insert("server-timing", timing);
    }
}

/// `GET /healthz`: the gateway is up.
pub async fn healthz() -> &'static str {
    "ok"
}
