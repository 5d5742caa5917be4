use perf_runtime::{perf_endpoint, perf_stage};

#[perf_endpoint("/v1/chat/completions")]
async fn chat() -> usize {
    #[perf_stage(request_parsing)]
    let length;
    length = 3;
    length
}

fn main() {}
