// `chunks` must take the stream's item by reference and say what it is.
use perf_runtime::{perf_endpoint, perf_stream, Chunk};

fn text_chunk(item: &String) -> Chunk {
    if item.is_empty() { Chunk::OTHER } else { Chunk::CONTENT }
}

#[perf_endpoint("/v1/chat/completions")]
async fn chat() -> usize {
    #[perf_stream(chunks = text_chunk)]
    let chunks = futures_util::stream::iter([1u8, 2, 3]);
    let _ = chunks;
    0
}

fn main() {}
