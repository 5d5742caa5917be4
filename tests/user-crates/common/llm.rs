//! A chat-completions gateway as users write it for perf's layer (`PerfLayer`) and for
//! `#[perf_endpoint]` alone: a provider trait whose `#[async_trait]` methods are
//! `#[perf_backend]` calls, a `#[perf_stage]` fn, a provider answer relayed as a
//! `#[perf_stream(chunks = ..)]` stream (as SSE, or aggregated into one JSON answer), and the
//! application's own counter in the default registry. The tests (`tests/layer.rs`,
//! `tests/endpoint_alone.rs`, here in `common/`) build their routers around [`chat`] and drive them with
//! [`Gateway`] over real HTTP.
//!
//! A request is its query string: `?model=gpt-4o-mini&stream=true`. [`SLOW_MODEL`] answers
//! slowly (the client that leaves mid-stream), [`BROKEN_MODEL`] is served by a provider that
//! fails, and a request without a model is a 400.

use std::convert::Infallible;
use std::future::IntoFuture;
use std::sync::OnceLock;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::RawQuery;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures_util::future::{join_all, BoxFuture};
use futures_util::stream::{self, BoxStream, StreamExt};
use perf_runtime::{
    current, perf_backend, perf_stage, perf_statements, perf_stream, BackendErrorKind, Usage,
};
use prometheus::{IntCounterVec, Opts};

use crate::app::ApiError;
use crate::exposition::Exposition;

pub use crate::app::ENDPOINT;

/// The model of the requests that complete.
pub const MODEL: &str = "gpt-4o-mini";
/// A model the mock answers slowly: the client leaves after its first token.
pub const SLOW_MODEL: &str = "gpt-4o-slow";
/// A model only the failing provider serves.
pub const BROKEN_MODEL: &str = "gpt-4o-broken";
/// The `provider` label of the provider that answers.
pub const MOCK: &str = "mock";
/// The `provider` label of the provider that fails.
pub const DOWN: &str = "down";
/// Content chunks of an answer of [`MODEL`], [`GAP_MS`] apart.
pub const TOKENS: u64 = 4;
/// Milliseconds before each token of an answer of [`MODEL`].
pub const GAP_MS: u64 = 3;
/// Content chunks of an answer of [`SLOW_MODEL`], [`SLOW_GAP_MS`] apart: 2 s, far longer than
/// the client stays.
pub const SLOW_TOKENS: u64 = 100;
/// Milliseconds before each token of an answer of [`SLOW_MODEL`].
pub const SLOW_GAP_MS: u64 = 20;
/// The prompt tokens every answer's usage reports (its output tokens: its content chunks).
pub const PROMPT_TOKENS: u64 = 11;

/// The provider's events, and what each is to perf (`#[perf_stream(chunks = event_chunk)]`):
/// the workspace's handler-shape tests relay the same, from the test kit's file, included here by
/// path so that this crate depends on perf alone, as an application does.
#[path = "../../../test-kit/src/provider.rs"]
pub mod provider;

pub use provider::{event_chunk, Event};

/// An LLM provider, as applications write it: `#[async_trait]` methods.
#[async_trait::async_trait]
pub trait Provider: Send + Sync {
    /// Sends a chat request; `Ok` once the answer starts (its first byte).
    async fn chat(&self, model: &str) -> Result<BoxStream<'static, Event>, String>;
}

/// A provider that answers every model.
pub struct Mock;

#[async_trait::async_trait]
impl Provider for Mock {
    #[perf_backend(provider = MOCK, model = model)]
    async fn chat(&self, model: &str) -> Result<BoxStream<'static, Event>, String> {
        tokio::time::sleep(Duration::from_millis(2)).await;
        Ok(match model {
            SLOW_MODEL => events(SLOW_TOKENS, SLOW_GAP_MS),
            _ => events(TOKENS, GAP_MS),
        })
    }
}

/// A provider that answers 503 to everything.
pub struct Down;

#[async_trait::async_trait]
impl Provider for Down {
    #[perf_backend(provider = DOWN, model = model)]
    async fn chat(&self, model: &str) -> Result<BoxStream<'static, Event>, String> {
        tokio::time::sleep(Duration::from_millis(2)).await;
        current::backend_error(BackendErrorKind::Status);
        Err(format!("the provider of {model} answered 503"))
    }
}

/// The provider's answer: its role delta, `tokens` tokens, its usage, `[DONE]`.
fn answer_events(tokens: u64) -> Vec<Event> {
    let usage = Usage {
        input: PROMPT_TOKENS,
        output: tokens,
        ..Usage::default()
    };
    let tokens = (0..tokens).map(|i| Event::Token(format!("t{i}")));
    [Event::Role]
        .into_iter()
        .chain(tokens)
        .chain([Event::Usage(usage), Event::Done])
        .collect()
}

/// The provider's answer as it comes: each token `gap_ms` after the previous event.
fn events(tokens: u64, gap_ms: u64) -> BoxStream<'static, Event> {
    stream::iter(answer_events(tokens))
        .then(move |event| async move {
            if let Event::Token(_) = event {
                tokio::time::sleep(Duration::from_millis(gap_ms)).await;
            }
            event
        })
        .boxed()
}

/// A chat request.
pub struct Ask {
    pub model: String,
    pub stream: bool,
}

/// Reads the query string: a `#[perf_stage]` fn.
#[perf_stage(request_parsing)]
pub fn parse_ask(query: &str) -> Result<Ask, ApiError> {
    let mut ask = Ask {
        model: String::new(),
        stream: false,
    };
    for (name, value) in query.split('&').filter_map(|pair| pair.split_once('=')) {
        match name {
            "model" => ask.model = value.to_owned(),
            "stream" => ask.stream = value == "true",
            _ => {}
        }
    }
    if ask.model.is_empty() {
        return Err(ApiError {
            status: 400,
            message: "no model".into(),
        });
    }
    Ok(ask)
}

/// The handler, without `#[perf_endpoint]`: under `PerfLayer` it is a route as it stands; the
/// `#[perf_endpoint]` app calls it from its own handler. Its statement attributes record into
/// the request of whichever made one.
#[perf_statements]
pub async fn chat(RawQuery(query): RawQuery) -> Result<Response, ApiError> {
    let ask = parse_ask(query.as_deref().unwrap_or_default())?;
    let provider: &dyn Provider = match ask.model.as_str() {
        BROKEN_MODEL => &Down,
        _ => &Mock,
    };
    let upstream = provider.chat(&ask.model).await.map_err(|message| {
        // Reported again where the gateway maps the error: still one error of that call.
        current::backend_error(BackendErrorKind::Status);
        ApiError {
            status: 502,
            message,
        }
    })?;
    #[perf_stream(chunks = event_chunk)]
    let events = upstream;
    if ask.stream {
        answers().with_label_values(&["stream"]).inc();
        let body = Body::from_stream(events.map(|e| Ok::<_, Infallible>(sse_frame(&e))));
        return Ok(([(header::CONTENT_TYPE, "text/event-stream")], body).into_response());
    }
    // Aggregated: the whole stream read here, one JSON answer.
    let events: Vec<Event> = events.collect().await;
    answers().with_label_values(&["json"]).inc();
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        json_answer(&ask.model, &events),
    )
        .into_response())
}

/// `app_answers_total{mode}`: the application's own counter, in the default registry.
pub fn answers() -> &'static IntCounterVec {
    static ANSWERS: OnceLock<IntCounterVec> = OnceLock::new();
    ANSWERS.get_or_init(|| {
        let opts = Opts::new("app_answers_total", "Answers by mode.");
        let answers = IntCounterVec::new(opts, &["mode"]).unwrap();
        prometheus::register(Box::new(answers.clone())).expect("register app_answers_total");
        answers
    })
}

/// An event as an SSE frame.
pub fn sse_frame(event: &Event) -> Bytes {
    Bytes::from(match event {
        Event::Role => "data: {\"role\":\"assistant\"}\n\n".to_owned(),
        Event::Token(token) => format!("data: {{\"content\":\"{token}\"}}\n\n"),
        Event::Usage(u) => format!(
            "data: {{\"usage\":{{\"input\":{},\"output\":{}}}}}\n\n",
            u.input, u.output
        ),
        Event::Done => "data: [DONE]\n\n".to_owned(),
    })
}

/// The events of an answer as one JSON object.
pub fn json_answer(model: &str, events: &[Event]) -> String {
    let mut content = String::new();
    let mut usage = Usage::default();
    for event in events {
        match event {
            Event::Token(token) => content.push_str(token),
            Event::Usage(u) => usage = *u,
            Event::Role | Event::Done => {}
        }
    }
    format!(
        "{{\"model\":\"{model}\",\"content\":\"{content}\",\"usage\":{{\"input\":{},\"output\":{}}}}}",
        usage.input, usage.output
    )
}

/// What a request of [`MODEL`] answers: streamed, or aggregated.
pub fn expected_answer(stream: bool) -> String {
    let answer = answer_events(TOKENS);
    if stream {
        answer
            .iter()
            .map(|e| String::from_utf8_lossy(&sse_frame(e)).into_owned())
            .collect()
    } else {
        json_answer(MODEL, &answer)
    }
}

// ---------------------------------------------------------------------------------------------
// Over HTTP

/// The application on 127.0.0.1:0, and a reqwest client for it.
pub struct Gateway {
    base: String,
    client: reqwest::Client,
}

impl Gateway {
    /// Serves `router` (the app's counter registered first, as an app does at start-up).
    pub async fn start(router: Router) -> Gateway {
        answers();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let address = listener.local_addr().expect("local address");
        tokio::spawn(axum::serve(listener, router).into_future());
        Gateway {
            base: format!("http://{address}"),
            client: reqwest::Client::new(),
        }
    }

    fn chat_url(&self, query: &str) -> String {
        format!("{}{ENDPOINT}?{query}", self.base)
    }

    async fn answer(request: reqwest::RequestBuilder) -> (u16, String) {
        let response = request.send().await.expect("the gateway answers");
        let status = response.status().as_u16();
        // Read to its end: for a streamed answer, the whole stream.
        (status, response.text().await.expect("the whole answer"))
    }

    /// POSTs a chat request and reads the answer to its end.
    pub async fn post(&self, query: &str) -> (u16, String) {
        Self::answer(self.client.post(self.chat_url(query))).await
    }

    /// HEAD of a chat request.
    pub async fn head(&self, query: &str) -> (u16, String) {
        Self::answer(self.client.head(self.chat_url(query))).await
    }

    /// GET `path`.
    pub async fn get(&self, path: &str) -> (u16, String) {
        Self::answer(self.client.get(format!("{}{path}", self.base))).await
    }

    /// POSTs a streamed chat request, reads up to its first token and leaves (drops the
    /// connection); what it read.
    pub async fn leave_mid_stream(&self, query: &str) -> String {
        let mut response = self
            .client
            .post(self.chat_url(query))
            .send()
            .await
            .expect("the gateway answers");
        assert_eq!(response.status(), 200);
        let mut read = String::new();
        while !read.contains("\"content\"") {
            let chunk = response
                .chunk()
                .await
                .expect("a chunk")
                .expect("not the end");
            read.push_str(&String::from_utf8_lossy(&chunk));
        }
        read
    }

    /// `/metrics` in the text format, parsed.
    pub async fn metrics(&self) -> Exposition {
        let (status, text) = self.get("/metrics").await;
        assert_eq!(status, 200, "/metrics: {text}");
        Exposition::parse(&text)
    }

    /// `/metrics` once `requests_total{endpoint}` counts `n` requests (bounded wait: a request
    /// ends on the server a moment after its client has read the answer), and 50 ms more for
    /// one counted twice.
    pub async fn ended(&self, endpoint: &str, n: u64) -> Exposition {
        for _ in 0..250 {
            if self
                .metrics()
                .await
                .count("requests_total", &[("endpoint", endpoint)])
                >= n
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let metrics = self.metrics().await;
        let ended = metrics.count("requests_total", &[("endpoint", endpoint)]);
        assert_eq!(ended, n, "requests of {endpoint} ended\n{}", metrics.text);
        metrics
    }
}

// ---------------------------------------------------------------------------------------------
// The requests both apps are sent

/// Streamed answers read to their end.
pub const STREAMED: u64 = 3;
/// Answers aggregated by the handler into one JSON object.
pub const AGGREGATED: u64 = 2;
/// `HEAD` of a streamed answer.
pub const HEAD: u64 = 1;
/// Clients that leave after the first token of a [`SLOW_MODEL`] stream.
pub const LEFT: u64 = 1;
/// Requests whose provider fails: 502.
pub const FAILED: u64 = 2;
/// Requests without a model: 400, before any provider call.
pub const BAD: u64 = 1;
/// Every request.
pub const ALL: u64 = STREAMED + AGGREGATED + HEAD + LEFT + FAILED + BAD;

/// Sends every request of the plan at once and checks each answer.
pub async fn send_requests(gateway: &Gateway) {
    let stream = format!("model={MODEL}&stream=true");
    let json = format!("model={MODEL}&stream=false");
    let broken = format!("model={BROKEN_MODEL}&stream=true");
    let slow = format!("model={SLOW_MODEL}&stream=true");
    let expect = |status: u16, body: String| {
        move |answer: (u16, String)| {
            assert_eq!(answer, (status, body));
        }
    };
    let mut requests: Vec<BoxFuture<'_, ()>> = Vec::new();
    for _ in 0..STREAMED {
        let check = expect(200, expected_answer(true));
        requests.push(Box::pin(async { check(gateway.post(&stream).await) }));
    }
    for _ in 0..AGGREGATED {
        let check = expect(200, expected_answer(false));
        requests.push(Box::pin(async { check(gateway.post(&json).await) }));
    }
    for _ in 0..HEAD {
        let check = expect(200, String::new());
        requests.push(Box::pin(async { check(gateway.head(&stream).await) }));
    }
    for _ in 0..FAILED {
        let message = format!("the provider of {BROKEN_MODEL} answered 503");
        let check = expect(502, message);
        requests.push(Box::pin(async { check(gateway.post(&broken).await) }));
    }
    for _ in 0..BAD {
        let check = expect(400, "no model".into());
        requests.push(Box::pin(async { check(gateway.post("stream=true").await) }));
    }
    for _ in 0..LEFT {
        requests.push(Box::pin(async {
            let read = gateway.leave_mid_stream(&slow).await;
            assert!(read.starts_with("data: {\"role\""), "{read}");
        }));
    }
    join_all(requests).await;
}
