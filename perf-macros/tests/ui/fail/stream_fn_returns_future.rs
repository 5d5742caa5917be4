use futures_util::stream::{self, BoxStream, StreamExt};
use perf_runtime::perf_stream;

#[async_trait::async_trait]
trait Chat {
    async fn chunks(&self) -> BoxStream<'static, u8>;
}

struct Provider;

#[async_trait::async_trait]
impl Chat for Provider {
    #[perf_stream]
    async fn chunks(&self) -> BoxStream<'static, u8> {
        stream::iter(vec![1, 2]).boxed()
    }
}

#[perf_stream]
fn later() -> impl std::future::Future<Output = BoxStream<'static, u8>> {
    async { stream::iter(vec![1, 2]).boxed() }
}

fn main() {}
