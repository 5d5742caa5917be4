//! #[perf_stage], #[perf_backend] and #[perf_stream] on sync and async functions, methods and
//! generic functions, called inside and outside a request.

use futures_util::{stream, Stream, StreamExt};
use perf_runtime::{perf_backend, perf_endpoint, perf_stage, perf_stream};

#[perf_stage]
fn request_parsing(body: &str) -> Vec<&str> {
    body.split(',').collect()
}

#[perf_stage(auth_validation)]
async fn validate<K: AsRef<str>>(key: K) -> Result<(), String> {
    if key.as_ref() == "demo-key" {
        Ok(())
    } else {
        Err("invalid key".into())
    }
}

struct Upstream {
    provider: &'static str,
}

impl Upstream {
    #[perf_backend(provider = self.provider, model = model)]
    async fn send(&self, model: &str, fail: bool) -> Result<Vec<String>, String> {
        if fail {
            return Err("connection refused".into());
        }
        Ok(vec![model.to_string(), "done".to_string()])
    }

    #[perf_backend(provider = "sync", model = "m")]
    fn send_sync(&self) -> usize {
        7
    }
}

#[perf_stream]
fn relay<T: Send + 'static>(items: Vec<T>) -> impl Stream<Item = T> + Send {
    stream::iter(items)
}

#[perf_stream]
async fn relay_later(items: Vec<u8>) -> impl Stream<Item = u8> {
    stream::iter(items)
}

#[perf_endpoint("/v1/functions")]
async fn handler(body: &str, key: &str) -> Result<usize, String> {
    let parts = request_parsing(body);
    validate(key).await?;
    let upstream = Upstream { provider: "openrouter" };
    let answer = upstream.send(parts[0], parts.len() > 2).await?;
    let sync = upstream.send_sync();
    Ok(relay(answer).count().await + relay_later(vec![1]).await.count().await + sync)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    assert_eq!(runtime.block_on(handler("gpt-4o", "demo-key")), Ok(10));
    assert!(runtime.block_on(handler("a,b,c", "demo-key")).is_err());
    assert!(runtime.block_on(handler("gpt-4o", "bad")).is_err());
    // Outside any request: the functions run normally.
    assert_eq!(request_parsing("a,b").len(), 2);
}
