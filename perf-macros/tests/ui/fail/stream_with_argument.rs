use perf_runtime::perf_stream;

#[perf_stream(chunks)]
fn relay() -> futures_util::stream::Empty<u8> {
    futures_util::stream::empty()
}

fn main() {}
