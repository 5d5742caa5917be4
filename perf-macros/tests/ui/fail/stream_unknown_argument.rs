use perf_runtime::perf_stream;

#[perf_stream(classify = |_: &u8| perf_runtime::Chunk::CONTENT)]
fn relay() -> futures_util::stream::Empty<u8> {
    futures_util::stream::empty()
}

fn main() {}
