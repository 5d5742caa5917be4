// `#[perf_statements]` lets plain helpers (generic, async or not, methods) hold timed
// statements that record into the calling request.
use perf_runtime::{perf_backend, perf_endpoint, perf_stage, perf_statements, perf_stream};

trait Provider {
    fn complete(&self, prompt: &str) -> impl std::future::Future<Output = Result<Vec<u8>, String>> + Send;
}

struct Echo;

impl Provider for Echo {
    async fn complete(&self, prompt: &str) -> Result<Vec<u8>, String> {
        Ok(prompt.as_bytes().to_vec())
    }
}

#[perf_statements]
async fn ask<P: Provider + Sync>(provider: &P, model: &str) -> Result<Vec<u8>, String> {
    #![allow(unused_mut)]
    #[perf_stage(request_preparation)]
    let mut prompt = format!("{model}: hi");
    #[perf_backend(provider = "echo", model = model)]
    let answer = provider.complete(&prompt).await?;
    Ok(answer)
}

#[perf_statements]
fn relay(chunks: Vec<u8>) -> impl futures_util::Stream<Item = u8> {
    #[perf_stream]
    let relayed = futures_util::stream::iter(chunks);
    relayed
}

struct Gateway;

impl Gateway {
    #[perf_statements]
    fn parse(&self, body: &str) -> usize {
        #[perf_stage(request_parsing)]
        let len = body.len();
        len
    }
}

#[perf_endpoint("/v1/ask")]
async fn handler(body: String) -> Result<usize, String> {
    let parsed = Gateway.parse(&body);
    let answer = ask(&Echo, "echo-1").await?;
    let _relayed = relay(answer);
    Ok(parsed)
}

fn assert_send<T: Send>(_: T) {}

fn main() {
    assert_send(handler(String::new()));
}
