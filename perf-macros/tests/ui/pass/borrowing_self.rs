//! A sync #[perf_backend] or #[perf_stream] fn may return a borrow of its `&mut self` (the body
//! is evaluated in an `FnOnce` closure, which owns the reborrowed `self`), with `?` and early
//! `return` still delivering to the instrumentation.

use futures_util::{stream, Stream, StreamExt};
use perf_runtime::{perf_backend, perf_endpoint, perf_stream};

struct Buffer {
    items: Vec<u32>,
}

impl Buffer {
    #[perf_stream]
    fn drain(&mut self) -> impl Stream<Item = u32> + '_ {
        stream::iter(self.items.drain(..))
    }

    #[perf_backend(provider = "local", model = "buffer")]
    fn drain_backend(&mut self) -> impl Stream<Item = u32> + '_ {
        if self.items.is_empty() {
            return stream::iter(self.items.drain(..));
        }
        stream::iter(self.items.drain(1..))
    }

    #[perf_backend(provider = "local", model = "buffer")]
    fn first(&mut self) -> Result<&mut u32, String> {
        let first = self.items.first_mut().ok_or("empty")?;
        Ok(first)
    }

    #[perf_stream]
    fn tail(&mut self, from: usize) -> impl Stream<Item = &mut u32> {
        stream::iter(self.items.iter_mut().skip(from))
    }
}

#[perf_endpoint("/v1/borrowing-self")]
async fn handler(mut buffer: Buffer) -> Result<usize, String> {
    *buffer.first()? += 10;
    let tail = buffer.tail(0).count().await;
    let kept = buffer.drain_backend().count().await;
    Ok(tail + kept + buffer.drain().count().await)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let buffer = Buffer { items: vec![1, 2, 3] };
    assert_eq!(runtime.block_on(handler(buffer)), Ok(3 + 2 + 1));
    assert!(runtime.block_on(handler(Buffer { items: vec![] })).is_err());
}
