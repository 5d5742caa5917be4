//! The smallest gateway perf times: providers behind a trait, the second answering when the
//! first fails, a stage, and the answer streamed as it comes. `cargo run --example minimal`.

use std::{convert::Infallible, sync::Arc, time::Duration};

use async_trait::async_trait;
use axum::response::{sse::Event, IntoResponse, Response, Sse};
use axum::{body::Bytes, extract::State, http::StatusCode, routing::get, routing::post, Router};
use futures_util::{stream, stream::BoxStream, FutureExt, Stream, StreamExt};
use perf_runtime::{perf_backend, perf_stage, perf_statements, perf_stream};
use perf_runtime::{BackendErrorKind, Chunk, PerfLayer};
use tokio::time::sleep;

/// An answer's events: its text, or `None` for a keep-alive.
pub type Events = BoxStream<'static, Option<String>>;

/// An LLM provider: `Ok` once its first byte is in, with its answer's events to stream.
#[async_trait]
pub trait Provider: Send + Sync {
    fn name(&self) -> &'static str;
    async fn answer(&self, prompt: &str) -> Result<Events, BackendErrorKind>;
}

/// A fake provider: after 50 ms its failure, if any, else a keep-alive and a word every 10 ms.
struct Fake(&'static str, Option<BackendErrorKind>);

#[async_trait]
impl Provider for Fake {
    fn name(&self) -> &'static str {
        self.0
    }
    async fn answer(&self, prompt: &str) -> Result<Events, BackendErrorKind> {
        sleep(Duration::from_millis(50)).await;
        self.1.map_or(Ok(()), Err)?;
        let words = format!("You said: {prompt}");
        let words: Vec<String> = words.split_inclusive(' ').map(String::from).collect();
        let words =
            stream::iter(words).then(|w| sleep(Duration::from_millis(10)).map(|()| Some(w)));
        Ok(stream::iter([None]).chain(words).boxed())
    }
}

/// `POST /v1/chat/completions`: the answer of the first provider that gives one, as SSE.
#[perf_statements]
async fn chat(State(providers): State<Arc<[Box<dyn Provider>]>>, body: Bytes) -> Response {
    let prompt = request_parsing(&body).unwrap_or_default();
    for provider in providers.iter() {
        #[perf_backend(provider = provider.name(), model = "demo")]
        let answer = provider.answer(&prompt).await;
        match answer {
            Ok(events) => return Sse::new(relay(events).map(sse)).into_response(),
            Err(kind) => perf_runtime::current::backend_error(kind), // then the next provider
        }
    }
    (StatusCode::BAD_GATEWAY, "every provider failed").into_response()
}

/// The prompt: the first message's text, if the body has one.
#[perf_stage]
fn request_parsing(body: &[u8]) -> Option<String> {
    let body: serde_json::Value = serde_json::from_slice(body).ok()?;
    Some(body["messages"][0]["content"].as_str()?.to_owned())
}

/// The answer as it comes: its first text is the time to first token, each next one a gap.
#[perf_stream(chunks = |e: &Option<_>| if e.is_some() { Chunk::CONTENT } else { Chunk::OTHER })]
fn relay(events: Events) -> impl Stream<Item = Option<String>> + Send + 'static {
    events
}

fn sse(text: Option<String>) -> Result<Event, Infallible> {
    Ok(text.map_or(Event::default().comment("keep-alive"), |t| {
        Event::default().data(t)
    }))
}

/// The app: its route timed by perf's layer (a request per HTTP exchange, until the end of the
/// response body), then `/metrics`, added after the layer: not timed.
pub fn router() -> Router {
    perf_runtime::Metrics::init();
    let providers: [Box<dyn Provider>; 2] = [
        Box::new(Fake("first", Some(BackendErrorKind::Status))),
        Box::new(Fake("second", None)),
    ];
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .with_state(Arc::from(providers))
        .layer(PerfLayer::new())
        .route("/metrics", get(perf_runtime::exposition::metrics_handler))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    let addr = listener.local_addr()?;
    println!("perf minimal example on http://{addr}\n  curl -N {addr}/v1/chat/completions \\");
    println!("    -d '{{\"messages\":[{{\"role\":\"user\",\"content\":\"Hi there\"}}]}}'");
    println!("  curl -s {addr}/metrics | grep -E '^(requests_total|backend_)'");
    axum::serve(listener, router()).await
}
