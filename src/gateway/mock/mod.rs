//! The built-in mock LLM provider: OpenAI's wire format over real HTTP and SSE, with a
//! configurable time to first byte, time to first token and pace of chunks, so the gateway
//! shows true metrics with no API key.
//!
//! The mock answers `POST /v1/chat/completions` and `POST /v1/responses`, streamed or not, with
//! a canned text of [`MockConfig::chunks`] words; `POST /v1/embeddings` after its time to first
//! byte with one unit vector per input (of [`embedding::DEFAULT_DIMENSIONS`], or the request's
//! `dimensions`; floats, or base64 with `"encoding_format": "base64"`); and `GET /v1/models`
//! with [`MockConfig::models`], at once. It sends its response headers after
//! [`MockConfig::ttfb`]. A streamed answer then opens as real providers' do, at once: a
//! role-only first delta (`{"role":"assistant","content":""}`; for the Responses API
//! `response.created`, `response.in_progress`, `response.output_item.added` and
//! `response.content_part.added`) and an SSE comment (`: keep-alive`). The first content chunk
//! follows [`MockConfig::first_token`] after the headers, then one every
//! [`MockConfig::chunk_interval`]. A non-streamed answer comes whole once the same chunks are
//! "generated" (after the time to first byte, the first token and every interval), as real
//! providers answer.
//!
//! Every answer reports a `usage` that depends only on the request, so that tests predict it:
//!
//! | field | value |
//! |---|---|
//! | `prompt_tokens` (`input_tokens`) | the characters of the messages' text content (or `input`), a quarter of them rounded up; an array of content parts counts one character per part |
//! | `prompt_tokens_details.cached_tokens` | half of the prompt tokens, rounded down |
//! | `completion_tokens` (`output_tokens`) | [`MockConfig::chunks`] |
//! | `completion_tokens_details.reasoning_tokens` | a quarter of the completion tokens, rounded down |
//!
//! An embeddings answer reports `prompt_tokens` and `total_tokens` only, both a quarter of each
//! text's bytes rounded up (summed over the inputs), or one per token id of a tokenized input.
//!
//! A streamed chat answer reports it in a last chunk (`"choices": []`, before `[DONE]`) only
//! when the request asks with `stream_options.include_usage`, as OpenAI does (every other chunk
//! then has `"usage": null`); the Responses API in `response.completed`.
//!
//! A model named `fault:...` makes it fail instead, as real providers do: see [`fault`]. With
//! [`MockConfig::fail_every`], every Nth answer is a 500, whatever the model.
//!
//! One request can ask for a time to first byte of its own with `"metadata": {"mock_ttfb_ms":
//! "700"}` (OpenAI's `metadata`, which the gateway forwards as it is): exactly that long, no
//! jitter; the rest of its answer on the mock's schedule. The mock keeps the W3C `traceparent`
//! header of the last [`KEPT_TRACEPARENTS`] requests it got
//! ([`MockProvider::traceparents`]): what a provider's tracing would see of the gateway.

mod completion;
pub mod embedding;
pub mod fault;
pub mod limits;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::hash::{BuildHasher, RandomState};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::Stream;
use serde_json::{Map, Value};
use tokio::time::{sleep_until, Instant};

use self::completion::Completion;
use self::fault::Fault;
use super::error::{ApiError, RequestBody};
use super::listen::ServerHandle;
use super::openai::{parse, ChatRequest, EmbeddingsRequest, OpenAiRequest, ResponsesRequest};

/// The mock's timing, failures and models.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockConfig {
    /// Time until the response headers are sent.
    pub ttfb: Duration,
    /// Time from the headers to the first content chunk.
    pub first_token: Duration,
    /// Content chunks (words) in an answer.
    pub chunks: u32,
    /// Time between two content chunks.
    pub chunk_interval: Duration,
    /// Each delay varies uniformly by up to this much either way, never by more than the delay
    /// itself (so the mean stays as set). Zero for exact timing.
    pub jitter: Duration,
    /// Every this many answers, one (the Nth, the 2Nth, ...) is a 500 after the time to first
    /// byte. Zero for never.
    pub fail_every: u64,
    /// Requests a model may take a minute before the mock answers 429 (with
    /// [`limits::TOKENS_PER_REQUEST`] tokens for each): [`limits::REQUESTS_PER_MINUTE`] unless
    /// set.
    pub requests_per_minute: u64,
    /// The models `GET /v1/models` lists (the mock answers any model name).
    pub models: Vec<String>,
}

impl MockConfig {
    /// The delays of one answer: the time to first byte, then the time before each content
    /// chunk (the first token's, then the intervals).
    fn schedule(&self) -> (Duration, Vec<Duration>) {
        let intervals = (0..self.chunks)
            .map(|i| {
                let delay = if i == 0 {
                    self.first_token
                } else {
                    self.chunk_interval
                };
                jittered(delay, self.jitter)
            })
            .collect();
        (jittered(self.ttfb, self.jitter), intervals)
    }
}

/// How many of the latest requests' `traceparent` headers the mock keeps.
pub const KEPT_TRACEPARENTS: usize = 1024;

/// The mock's state: its configuration, the answers it has made and the latest `traceparent`
/// headers it got.
#[derive(Debug)]
struct Mock {
    config: MockConfig,
    answers: AtomicU64,
    traceparents: Mutex<VecDeque<String>>,
    limits: limits::Limits,
}

impl Mock {
    fn new(config: MockConfig) -> Mock {
        let limits = limits::Limits::new(config.requests_per_minute);
        Mock {
            config,
            answers: AtomicU64::new(0),
            traceparents: Mutex::new(VecDeque::new()),
            limits,
        }
    }

    /// Keeps the request's `traceparent` header, if it has one.
    fn saw(&self, headers: &HeaderMap) {
        let Some(traceparent) = headers.get("traceparent").and_then(|v| v.to_str().ok()) else {
            return;
        };
        let mut kept = self
            .traceparents
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if kept.len() == KEPT_TRACEPARENTS {
            kept.pop_front();
        }
        kept.push_back(traceparent.to_owned());
    }

    /// Counts one more answer; tells whether it is one that fails ([`MockConfig::fail_every`]).
    fn next_fails(&self) -> bool {
        let n = self.answers.fetch_add(1, Ordering::Relaxed) + 1;
        // `is_multiple_of(0)` holds for 0 only, and `n` starts at 1: 0 is never.
        n.is_multiple_of(self.config.fail_every)
    }

    /// The fault this answer plays instead: the one `model` names, else a 500 if it is the
    /// Nth ([`MockConfig::fail_every`]).
    fn fault(&self, model: &str) -> Option<Fault> {
        Fault::of(model).or_else(|| {
            self.next_fails().then_some(Fault::Status {
                status: axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                text: false,
            })
        })
    }
}

/// A running mock provider.
#[derive(Debug)]
pub struct MockProvider {
    server: ServerHandle,
    mock: Arc<Mock>,
}

impl MockProvider {
    /// Starts the mock on an ephemeral port of `127.0.0.1`.
    pub async fn start(config: MockConfig) -> io::Result<MockProvider> {
        let listener = super::listen::bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let mock = Arc::new(Mock::new(config));
        let server = ServerHandle::serve(listener, routes(mock.clone()))?;
        Ok(MockProvider { server, mock })
    }

    /// The `traceparent` headers of the latest [`KEPT_TRACEPARENTS`] requests that had one,
    /// oldest first.
    pub fn traceparents(&self) -> Vec<String> {
        let kept = self
            .mock
            .traceparents
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        kept.iter().cloned().collect()
    }

    /// The address the mock listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The mock's OpenAI base URL, e.g. `http://127.0.0.1:40123/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr())
    }

    /// Stops accepting connections and waits for the open ones to finish.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

/// The mock's routes.
pub fn router(config: MockConfig) -> Router {
    routes(Arc::new(Mock::new(config)))
}

fn routes(mock: Arc<Mock>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/responses", post(responses))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(models))
        // The gateway in front limits the bodies; the mock takes whatever it forwards.
        .layer(DefaultBodyLimit::disable())
        .with_state(mock)
}

async fn chat_completions(
    State(mock): State<Arc<Mock>>,
    headers: HeaderMap,
    RequestBody(body): RequestBody,
) -> Result<Response, ApiError> {
    mock.saw(&headers);
    let req: ChatRequest = parse(&body)?;
    let prompt = req.messages.iter().filter_map(|m| m.content.as_ref());
    let answer = Completion::new(
        &req.model,
        mock.config.chunks,
        prompt.map(|c| c.len()).sum(),
    );
    let include_usage = req.includes_usage();
    Ok(reply(
        &mock,
        &req,
        (ttfb_asked(&req.extra), answer.tokens()),
        |script| answer.chat_stream(script, include_usage),
        || answer.chat_completion(),
    )
    .await)
}

async fn responses(
    State(mock): State<Arc<Mock>>,
    headers: HeaderMap,
    RequestBody(body): RequestBody,
) -> Result<Response, ApiError> {
    mock.saw(&headers);
    let req: ResponsesRequest = parse(&body)?;
    let answer = Completion::new(&req.model, mock.config.chunks, req.input.len());
    Ok(reply(
        &mock,
        &req,
        (ttfb_asked(&req.extra), answer.tokens()),
        |script| answer.responses_stream(script),
        || answer.response(),
    )
    .await)
}

/// One embedding per input, after the time to first byte: nothing is generated.
async fn embeddings(
    State(mock): State<Arc<Mock>>,
    headers: HeaderMap,
    RequestBody(body): RequestBody,
) -> Result<Response, ApiError> {
    mock.saw(&headers);
    let req: EmbeddingsRequest = parse(&body)?;
    let ttfb =
        ttfb_asked(&req.extra).unwrap_or_else(|| jittered(mock.config.ttfb, mock.config.jitter));
    let answer = embedding::response(&req);
    if let Some(fault) = mock.fault(&req.model) {
        return Ok(fault.play(ttfb, false, Vec::new(), answer).await);
    }
    wait(ttfb).await;
    Ok(Json(answer).into_response())
}

/// The configured models, at once.
async fn models(State(mock): State<Arc<Mock>>, headers: HeaderMap) -> Json<Value> {
    mock.saw(&headers);
    Json(embedding::list(&mock.config.models))
}

/// The time to first byte a request asks for: `"metadata": {"mock_ttfb_ms": "700"}` (OpenAI's
/// metadata values are strings; a number is taken too).
fn ttfb_asked(extra: &Map<String, Value>) -> Option<Duration> {
    let ms = match extra.get("metadata")?.get("mock_ttfb_ms")? {
        Value::String(ms) => ms.trim().parse().ok()?,
        Value::Number(ms) => ms.as_u64()?,
        _ => return None,
    };
    Some(Duration::from_millis(ms))
}

/// Answers on the mock's schedule (with the time to first byte `ttfb` if the request asked for
/// one): an SSE stream paced by the chunk intervals, or a JSON body once every chunk would have
/// been generated; with the model's rate limits less the answer's `tokens` in its headers (a
/// 429 once they are spent).
async fn reply<R: OpenAiRequest>(
    mock: &Mock,
    req: &R,
    (ttfb, tokens): (Option<Duration>, u64),
    stream: impl FnOnce(Vec<Duration>) -> Vec<(Duration, Event)>,
    whole: impl FnOnce() -> serde_json::Value,
) -> Response {
    let (scheduled, intervals) = mock.config.schedule();
    let ttfb = ttfb.unwrap_or(scheduled);
    if let Some(fault) = mock.fault(req.model()) {
        return fault
            .play(ttfb, req.is_stream(), stream(intervals), whole())
            .await;
    }
    let limits = match mock.limits.take(req.model(), tokens) {
        Ok(limits) => limits,
        Err(spent) => {
            wait(ttfb).await;
            return spent.too_many();
        }
    };
    let answer = if req.is_stream() {
        wait(ttfb).await;
        Sse::new(paced(stream(intervals))).into_response()
    } else {
        wait(ttfb + intervals.iter().sum::<Duration>()).await;
        Json(whole()).into_response()
    };
    limits.stamp(answer)
}

/// How late tokio's timer may fire: it rounds each deadline up to its next 1 ms tick, and wakes
/// a little after.
const TIMER_SLACK: Duration = Duration::from_millis(2);

/// Waits `delay`, to within a fraction of a millisecond: tokio's timer to [`TIMER_SLACK`]
/// before the time, then yielding to the other tasks until it has come (a time to first byte of
/// 100 ms is then 100 ms, not 102). Not at all for no delay.
async fn wait(delay: Duration) {
    if delay.is_zero() {
        return;
    }
    let until = Instant::now() + delay;
    if delay > TIMER_SLACK {
        sleep_until(until - TIMER_SLACK).await;
    }
    while Instant::now() < until {
        tokio::task::yield_now().await;
    }
}

/// Sends each event after its delay, keeping to the schedule (the delays do not drift by the
/// time it takes to send).
fn paced(events: Vec<(Duration, Event)>) -> impl Stream<Item = Result<Event, Infallible>> {
    let start = Instant::now();
    futures_util::stream::unfold(
        (events.into_iter(), start),
        |(mut events, mut due)| async move {
            let (delay, event) = events.next()?;
            due += delay;
            if due > Instant::now() {
                sleep_until(due).await;
            }
            Some((Ok(event), (events, due)))
        },
    )
}

/// `base` moved at random by up to `jitter` either way, but never by more than `base`.
fn jittered(base: Duration, jitter: Duration) -> Duration {
    let spread = jitter.min(base);
    if spread.is_zero() {
        return base;
    }
    let span = u64::try_from(spread.as_nanos() * 2).unwrap_or(u64::MAX);
    // A fresh `RandomState` is randomly keyed: enough randomness for timing noise.
    let offset = RandomState::new().hash_one(0u8) % span.saturating_add(1);
    base - spread + Duration::from_nanos(offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_may_ask_for_its_time_to_first_byte() {
        let extra = |metadata: Value| {
            let mut extra = Map::new();
            extra.insert("metadata".into(), metadata);
            extra
        };
        let asked = |metadata| ttfb_asked(&extra(metadata));
        assert_eq!(
            asked(serde_json::json!({"mock_ttfb_ms": "700"})),
            Some(Duration::from_millis(700))
        );
        assert_eq!(
            asked(serde_json::json!({"mock_ttfb_ms": 5})),
            Some(Duration::from_millis(5))
        );
        assert_eq!(asked(serde_json::json!({"mock_ttfb_ms": "soon"})), None);
        assert_eq!(asked(serde_json::json!({"user": "x"})), None);
        assert_eq!(ttfb_asked(&Map::new()), None);
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let base = Duration::from_millis(50);
        for _ in 0..1000 {
            let d = jittered(base, Duration::from_millis(100));
            assert!(d <= Duration::from_millis(100));
        }
        for _ in 0..1000 {
            let d = jittered(base, Duration::from_millis(10));
            assert!(d >= Duration::from_millis(40) && d <= Duration::from_millis(60));
        }
        assert_eq!(jittered(base, Duration::ZERO), base);
    }
}
