//! Attributes on statements inside an instrumented body: `let`, `let`-`else`, blocks,
//! expression statements, and inside nested closures and async blocks.

use futures_util::{stream, StreamExt};
use perf_runtime::{perf_backend, perf_endpoint, perf_stage, perf_stream};

#[perf_endpoint("/v1/statements")]
async fn handler(body: String) -> Result<usize, String> {
    #[perf_stage(request_parsing)]
    let Some(model) = body.split(':').next().map(str::to_owned) else {
        return Err("no model".into());
    };
    #[perf_stage(auth_validation)]
    {
        if model.is_empty() {
            return Err("empty model".into());
        }
    }
    let mut prepared = Vec::new();
    #[perf_stage(request_preparation)]
    prepared.push(model.clone());
    #[perf_backend(provider = "openrouter", model = &model)]
    let answer: Result<Vec<u8>, String> = async { Ok(vec![1, 2, 3]) }.await;
    let answer = answer?;
    let relay = async {
        #[perf_stream]
        let chunks = stream::iter(answer);
        chunks.count().await
    };
    Ok(relay.await + prepared.len())
}

#[perf_stage(request_preparation)]
fn nested_closure(items: &[u32]) -> u32 {
    let double = |x: u32| {
        #[perf_stage(request_parsing)]
        let y = x * 2;
        y
    };
    items.iter().copied().map(double).sum()
}

/// Defines its input as written.
macro_rules! define {
    ($($item:item)*) => { $($item)* };
}

/// A `fn` a macro defines inside an instrumented body keeps its attribute: on an item, the
/// attribute is expanded (only statement attributes inside a macro's input are errors).
#[perf_stage(request_parsing)]
fn fn_defined_by_a_macro() -> usize {
    define! {
        #[perf_stage]
        #[inline]
        pub(crate) fn request_preparation() -> usize { 1 }
    }
    request_preparation()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    assert_eq!(runtime.block_on(handler("gpt-4o:hi".into())), Ok(4));
    assert!(runtime.block_on(handler(":".into())).is_err());
    assert_eq!(nested_closure(&[1, 2]), 6);
    assert_eq!(fn_defined_by_a_macro(), 1);
}
