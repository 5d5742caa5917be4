//! The built-in mock LLM provider: OpenAI's wire format over real HTTP and SSE, with a
//! configurable time to first byte and pace of chunks, so the gateway shows true metrics with
//! no API key.
//!
//! The mock answers `POST /v1/chat/completions` and `POST /v1/responses`, streamed or not, with
//! a canned text of [`MockConfig::chunks`] words. It sends its response headers after
//! [`MockConfig::ttfb`], then, when streaming, one chunk every [`MockConfig::chunk_interval`]. A
//! non-streamed answer comes whole once the same chunks are "generated" (after the time to first
//! byte and every interval), as real providers answer.
//!
//! A model named `fault:...` makes it fail instead, as real providers do: see [`fault`].

mod answer;
pub mod fault;

use std::convert::Infallible;
use std::hash::{BuildHasher, RandomState};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use futures_util::Stream;
use tokio::time::{sleep, sleep_until, Instant};

use self::answer::Answer;
use self::fault::Fault;
use super::error::{ApiError, RequestBody};
use super::openai::{parse, ChatRequest, OpenAiRequest, ResponsesRequest};
use super::server::ServerHandle;

/// The mock's timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MockConfig {
    /// Time until the response headers are sent.
    pub ttfb: Duration,
    /// Content chunks (words) in an answer.
    pub chunks: u32,
    /// Time before each chunk.
    pub chunk_interval: Duration,
    /// Each delay varies uniformly by up to this much either way, never by more than the delay
    /// itself (so the mean stays as set). Zero for exact timing.
    pub jitter: Duration,
}

impl MockConfig {
    /// The delays of one answer: the time to first byte, then the time before each chunk.
    fn schedule(&self) -> (Duration, Vec<Duration>) {
        let intervals = (0..self.chunks)
            .map(|_| jittered(self.chunk_interval, self.jitter))
            .collect();
        (jittered(self.ttfb, self.jitter), intervals)
    }
}

/// A running mock provider.
#[derive(Debug)]
pub struct MockProvider {
    server: ServerHandle,
}

impl MockProvider {
    /// Starts the mock on an ephemeral port of `127.0.0.1`.
    pub async fn start(config: MockConfig) -> io::Result<MockProvider> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let server = ServerHandle::serve(listener, router(config))?;
        Ok(MockProvider { server })
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
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/responses", post(responses))
        // The gateway in front limits the bodies; the mock takes whatever it forwards.
        .layer(DefaultBodyLimit::disable())
        .with_state(Arc::new(config))
}

async fn chat_completions(
    State(config): State<Arc<MockConfig>>,
    RequestBody(body): RequestBody,
) -> Result<Response, ApiError> {
    let req: ChatRequest = parse(&body)?;
    let prompt = req.messages.iter().filter_map(|m| m.content.as_ref());
    let answer = Answer::new(&req.model, config.chunks, prompt.map(|c| c.len()).sum());
    Ok(reply(
        &config,
        &req,
        |script| answer.chat_stream(script),
        || answer.chat_completion(),
    )
    .await)
}

async fn responses(
    State(config): State<Arc<MockConfig>>,
    RequestBody(body): RequestBody,
) -> Result<Response, ApiError> {
    let req: ResponsesRequest = parse(&body)?;
    let answer = Answer::new(&req.model, config.chunks, req.input.len());
    Ok(reply(
        &config,
        &req,
        |script| answer.responses_stream(script),
        || answer.response(),
    )
    .await)
}

/// Answers on the mock's schedule: an SSE stream paced by the chunk intervals, or a JSON body
/// once every chunk would have been generated.
async fn reply<R: OpenAiRequest>(
    config: &MockConfig,
    req: &R,
    stream: impl FnOnce(Vec<Duration>) -> Vec<(Duration, Event)>,
    whole: impl FnOnce() -> serde_json::Value,
) -> Response {
    let (ttfb, intervals) = config.schedule();
    if let Some(fault) = Fault::of(req.model()) {
        return fault
            .play(ttfb, req.is_stream(), stream(intervals), whole())
            .await;
    }
    if req.is_stream() {
        sleep(ttfb).await;
        Sse::new(paced(stream(intervals))).into_response()
    } else {
        sleep(ttfb + intervals.iter().sum::<Duration>()).await;
        Json(whole()).into_response()
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
            sleep_until(due).await;
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
