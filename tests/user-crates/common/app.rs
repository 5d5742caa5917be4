//! The application under test: one chat-completions handler, instrumented the way the README
//! shows, with all four attributes. It knows nothing of HTTP, so that it is an axum handler when
//! the crate has axum (`String` in, `IntoResponse` out, see `http.rs`) and a plain future to
//! drive with tokio when it has not (`Direct`).

use std::fmt;
use std::future::Future;

use futures_util::stream::{self, BoxStream, StreamExt};
use perf_runtime::{perf_backend, perf_endpoint, perf_stage, perf_stream};

/// The instrumented endpoint.
pub const ENDPOINT: &str = "/v1/chat/completions";
/// The `provider` label of the mock provider.
pub const PROVIDER: &str = "mock";
/// The only API key accepted; any other gives an `Err` from the `auth_validation` stage.
pub const API_KEY: &str = "demo-key";
/// How many chunks the mock provider answers with.
pub const CHUNKS: usize = 3;

/// A request, in a tiny `key=value;...` format: `model=gpt-4o-mini;key=demo-key;stream=true`.
pub struct ChatRequest {
    pub model: String,
    pub key: String,
    pub stream: bool,
}

/// The handler's answer: the whole text, or a stream of chunks.
pub enum Reply {
    Text(String),
    Stream(BoxStream<'static, String>),
}

/// The handler's error: an HTTP status and a message.
#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError {
        status: 400,
        message: message.into(),
    }
}

impl std::str::FromStr for ChatRequest {
    type Err = ApiError;

    fn from_str(body: &str) -> Result<Self, ApiError> {
        let mut req = ChatRequest {
            model: String::new(),
            key: String::new(),
            stream: false,
        };
        for pair in body.split(';').filter(|p| !p.is_empty()) {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| bad_request(format!("not a key=value pair: {pair:?}")))?;
            match name {
                "model" => req.model = value.to_owned(),
                "key" => req.key = value.to_owned(),
                "stream" => req.stream = value == "true",
                _ => return Err(bad_request(format!("unknown field {name:?}"))),
            }
        }
        if req.model.is_empty() {
            return Err(bad_request("no model"));
        }
        Ok(req)
    }
}

/// The handler, with all four attributes.
#[perf_endpoint("/v1/chat/completions")]
pub async fn chat(body: String) -> Result<Reply, ApiError> {
    #[perf_stage(request_parsing)]
    let req: ChatRequest = body.parse()?;
    DemoKeys.auth_validation(&req.key).await?;
    // The statement's value is the provider's `Result`: an `Ok` records the TTFB.
    #[perf_backend(provider = PROVIDER, model = &req.model)]
    let upstream = mock_provider(&req.model).await;
    let chunks = upstream?;
    if req.stream {
        #[perf_stream]
        let events = stream::iter(chunks);
        return Ok(Reply::Stream(events.boxed()));
    }
    Ok(Reply::Text(chunks.concat()))
}

/// The keys the gateway accepts, behind a trait as applications write it: `#[async_trait]`
/// makes the method a fn returning a boxed future, which `#[perf_stage]` times as it runs.
#[async_trait::async_trait]
pub trait KeyCheck {
    /// `Ok` for a known key, a 401 otherwise.
    async fn auth_validation(&self, key: &str) -> Result<(), ApiError>;
}

/// The one key of the demo.
pub struct DemoKeys;

/// How long a key check takes: the `auth_validation` stage must record at least this.
pub const AUTH_MS: u64 = 5;

#[async_trait::async_trait]
impl KeyCheck for DemoKeys {
    /// A `#[perf_stage]` method: the stage is named after it.
    #[perf_stage]
    async fn auth_validation(&self, key: &str) -> Result<(), ApiError> {
        tokio::time::sleep(std::time::Duration::from_millis(AUTH_MS)).await;
        if key == API_KEY {
            Ok(())
        } else {
            Err(ApiError {
                status: 401,
                message: "invalid API key".into(),
            })
        }
    }
}

/// Stands in for the provider: its first byte after a yield, then [`CHUNKS`] chunks.
async fn mock_provider(model: &str) -> Result<Vec<String>, ApiError> {
    tokio::task::yield_now().await;
    Ok((0..CHUNKS)
        .map(|i| format!("data: {model} {i}\n\n"))
        .collect())
}

/// The whole text the handler answers for `model`, streamed or not.
pub fn expected_answer(model: &str) -> String {
    (0..CHUNKS)
        .map(|i| format!("data: {model} {i}\n\n"))
        .collect()
}

/// How the checks reach the application.
pub trait Transport: Sized {
    /// Starts the application.
    fn start() -> impl Future<Output = Self> + Send;
    /// Sends one request and reads its answer to the end: `Ok(body)` or `Err(status)`.
    fn send(&self, body: String) -> impl Future<Output = Result<String, u16>> + Send;
    /// What perf serves on `/metrics`.
    fn metrics(&self) -> impl Future<Output = String> + Send;
    /// What perf serves on `/metrics` to a scraper that asks for OpenMetrics (as Prometheus
    /// does first).
    fn openmetrics(&self) -> impl Future<Output = String> + Send;
}

/// No HTTP: each request drives the handler's future on a tokio task of its own (which also
/// checks that the instrumented future is `Send + 'static`), and reads a streamed answer to its
/// end. `/metrics` is what `metrics_handler` serves: `render_global()`.
pub struct Direct;

impl Transport for Direct {
    async fn start() -> Self {
        Direct
    }

    async fn send(&self, body: String) -> Result<String, u16> {
        let task = tokio::spawn(async move {
            match chat(body).await {
                Ok(Reply::Text(text)) => Ok(text),
                Ok(Reply::Stream(chunks)) => Ok(chunks.collect::<Vec<_>>().await.concat()),
                Err(e) => Err(e.status),
            }
        });
        task.await.expect("the handler's task panicked")
    }

    async fn metrics(&self) -> String {
        perf_runtime::exposition::render_global()
    }

    async fn openmetrics(&self) -> String {
        let format = perf_runtime::exposition::Format::OpenMetrics;
        String::from_utf8(perf_runtime::exposition::render_global_as(format)).expect("UTF-8")
    }
}
