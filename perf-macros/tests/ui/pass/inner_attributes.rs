//! Inner attributes at the top of an instrumented fn's body (`#![allow(..)]`) stay at the top of
//! its body, for every attribute, on sync and async fns.

#![deny(unused_variables)]

use futures_util::{stream, Stream, StreamExt};
use perf_runtime::{perf_backend, perf_endpoint, perf_stage, perf_stream};

#[perf_endpoint("/v1/inner-attributes")]
async fn handler(body: &str) -> usize {
    #![allow(unused_variables)]
    let unused = body.len();
    request_parsing(body) + validate(body).await + call(body) + relay().count().await
}

#[perf_stage]
fn request_parsing(body: &str) -> usize {
    #![allow(unused_variables)]
    let unused = 1;
    body.len()
}

#[perf_stage(auth_validation)]
async fn validate(key: &str) -> usize {
    #![allow(unused_variables)]
    let unused = 1;
    key.len()
}

#[perf_backend(provider = "openrouter", model = model)]
fn call(model: &str) -> usize {
    #![allow(unused_variables)]
    let unused = 1;
    model.len()
}

#[perf_stream]
fn relay() -> impl Stream<Item = u8> {
    #![allow(unused_variables)]
    let unused = 1;
    stream::iter(vec![1, 2])
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    assert_eq!(runtime.block_on(handler("ab")), 8);
}
