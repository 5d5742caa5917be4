use perf_runtime::{perf_endpoint, perf_stage};

#[perf_endpoint("/v1/chat/completions")]
async fn chat(body: &str) -> usize {
    #[perf_stage]
    let length = body.len();
    length
}

fn main() {}
