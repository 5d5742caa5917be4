use perf_runtime::{perf_endpoint, perf_stream};

#[perf_endpoint("/v1/chat/completions")]
async fn chat() {
    #[perf_stream]
    let body = vec![1u8, 2, 3];
    drop(body);
}

fn main() {}
