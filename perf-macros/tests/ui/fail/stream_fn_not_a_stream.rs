use perf_runtime::perf_stream;

#[perf_stream]
fn relay() -> Vec<u8> {
    vec![1, 2, 3]
}

fn main() {}
