//! #[perf_stage] and #[perf_backend] on sync fns returning a future: the methods of an
//! `#[async_trait]` impl (`Box::pin(async move { .. })` bodies), hand-written `BoxFuture`,
//! `LocalBoxFuture`, `Pin<Box<dyn Future>>` and `impl Future` returners, exactly boxed or not.
//! Signatures, `self`, `?`, early returns and `Send` are kept.

use std::future::Future;
use std::pin::Pin;

use async_trait::async_trait;
use futures_util::future::{BoxFuture, LocalBoxFuture};
use perf_runtime::{perf_backend, perf_endpoint, perf_stage};

#[derive(Debug, PartialEq)]
struct ApiError(String);

impl From<std::num::ParseIntError> for ApiError {
    fn from(error: std::num::ParseIntError) -> Self {
        ApiError(error.to_string())
    }
}

#[async_trait]
trait Provider {
    async fn validate(&self, key: &str) -> Result<(), ApiError>;
    async fn complete(&self, model: String, prompt: &str) -> Result<u32, ApiError>;
    async fn count<T: AsRef<str> + Send>(&mut self, items: Vec<T>) -> usize;
    async fn reset(&mut self);
    async fn consume(self: Box<Self>) -> String;
}

struct OpenRouter {
    name: String,
    calls: usize,
}

#[async_trait]
impl Provider for OpenRouter {
    #[perf_stage(auth_validation)]
    async fn validate(&self, key: &str) -> Result<(), ApiError> {
        if key.is_empty() {
            return Err(ApiError("no key".into()));
        }
        tokio::task::yield_now().await;
        Ok(())
    }

    /// `self` and an owned argument in the backend's arguments; `?`, an early return and a
    /// statement attribute in the body.
    #[perf_backend(provider = &self.name, model = &model)]
    async fn complete(&self, model: String, prompt: &str) -> Result<u32, ApiError> {
        if prompt.is_empty() {
            return Err(ApiError(format!("{model}: empty prompt")));
        }
        #[perf_stage(request_parsing)]
        let parsed: u32 = prompt.parse()?;
        tokio::task::yield_now().await;
        Ok(parsed + self.name.len() as u32)
    }

    #[perf_stage(request_preparation)]
    async fn count<T: AsRef<str> + Send>(&mut self, items: Vec<T>) -> usize {
        self.calls += 1;
        items.iter().map(|item| item.as_ref().len()).sum()
    }

    #[perf_backend(provider = "openrouter", model = "reset")]
    async fn reset(&mut self) {
        self.calls = 0;
    }

    #[perf_stage(request_preparation)]
    async fn consume(self: Box<Self>) -> String {
        self.name
    }
}

struct Client {
    provider: &'static str,
}

impl Client {
    /// `BoxFuture`, not exactly `Box::pin(async move { .. })`: wrapped; an early return of
    /// another future.
    #[perf_backend(provider = self.provider, model = model)]
    fn send<'a>(&'a self, model: &'a str, fail: bool) -> BoxFuture<'a, Result<String, ApiError>> {
        if fail {
            return Box::pin(async { Err(ApiError("refused".into())) });
        }
        let answer = format!("{}:{model}", self.provider);
        Box::pin(async move {
            tokio::task::yield_now().await;
            Ok(answer)
        })
    }

    /// `Pin<Box<dyn Future>>` by full paths, exactly `Box::pin(async move { .. })`, with `?`
    /// inside.
    #[perf_backend(provider = "parser", model = text)]
    fn parse<'a>(
        &'a self,
        text: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<u32, ApiError>> + Send + 'a>>
    {
        Box::pin(async move {
            let value: u32 = text.parse()?;
            Ok(value)
        })
    }

    /// `LocalBoxFuture`: no `Send` needed.
    #[perf_stage(request_parsing)]
    fn local(&self) -> LocalBoxFuture<'_, usize> {
        let rc = std::rc::Rc::new(self.provider.len());
        Box::pin(async move { *rc })
    }

    /// `Pin<Box<dyn Future>>` made elsewhere: wrapped, boxed again.
    #[perf_stage(request_preparation)]
    fn prepared(&self) -> Pin<Box<dyn Future<Output = usize> + Send + '_>> {
        self.local_len()
    }

    fn local_len(&self) -> Pin<Box<dyn Future<Output = usize> + Send + '_>> {
        Box::pin(async move { self.provider.len() })
    }
}

/// `impl Future`, exactly `async move { .. }`, with `?`.
#[perf_backend(provider = "openrouter", model = model)]
fn fetch(model: &str) -> impl Future<Output = Result<u32, ApiError>> + Send + '_ {
    async move {
        let value: u32 = model.parse()?;
        Ok(value)
    }
}

/// `impl Future` made by another fn: wrapped in an `async move` block.
#[perf_stage(request_parsing)]
fn parse_later(text: String) -> impl Future<Output = usize> + Send {
    let text = text.trim().to_string();
    std::future::ready(text.len())
}

#[perf_endpoint("/v1/boxed")]
async fn handler(mut provider: OpenRouter, client: Client, prompt: &str) -> Result<u32, ApiError> {
    provider.validate("demo-key").await?;
    let completed = provider.complete("gpt-4o".into(), prompt).await?;
    let counted = provider.count(vec!["ab", "c"]).await as u32;
    provider.reset().await;
    let sent = client.send("m", false).await?.len() as u32;
    let parsed = client.parse("7").await?;
    let prepared = client.prepared().await as u32;
    let fetched = fetch("5").await?;
    let later = parse_later(" abc ".into()).await as u32;
    let name = Box::new(provider).consume().await.len() as u32;
    Ok(completed + counted + sent + parsed + prepared + fetched + later + name)
}

fn assert_send<T: Send>(value: T) -> T {
    value
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let provider = || OpenRouter {
        name: "openrouter".into(),
        calls: 0,
    };
    let client = || Client { provider: "openai" };
    // 42 + 10, 3, "openai:m", 7, 6, 5, 3, "openrouter"
    assert_eq!(
        runtime.block_on(assert_send(handler(provider(), client(), "42"))),
        Ok(52 + 3 + 8 + 7 + 6 + 5 + 3 + 10)
    );
    assert_eq!(runtime.block_on(client().local()), 6);
    assert_eq!(
        runtime.block_on(handler(provider(), client(), "")),
        Err(ApiError("gpt-4o: empty prompt".into()))
    );
    assert!(runtime
        .block_on(handler(provider(), client(), "x"))
        .is_err());
    assert!(runtime.block_on(client().send("m", true)).is_err());
    assert!(runtime.block_on(client().parse("no")).is_err());
    assert!(runtime.block_on(fetch("no")).is_err());
    assert_eq!(
        runtime.block_on(async {
            let mut provider = provider();
            provider.count(vec![String::from("abc")]).await + provider.calls
        }),
        4
    );
}
