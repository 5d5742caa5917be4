use std::future::Future;
use std::pin::Pin;

use perf_runtime::{perf_backend, perf_stage};

#[perf_stage(request_parsing)]
fn must_be_unpin() -> impl Future<Output = u32> + Send + Unpin {
    std::future::ready(1)
}

#[perf_backend(provider = "openrouter", model = "gpt-4o")]
fn unpinned_box() -> Box<dyn Future<Output = Result<u32, String>> + Send + Unpin> {
    Box::new(std::future::ready(Ok(1)))
}

#[perf_stage(auth_validation)]
fn pinned_reference<'a>(
    future: &'a mut (dyn Future<Output = u32> + Send),
) -> Pin<&'a mut (dyn Future<Output = u32> + Send)> {
    unsafe { Pin::new_unchecked(future) }
}

fn main() {}
