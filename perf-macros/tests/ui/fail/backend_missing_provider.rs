use perf_runtime::{perf_backend, perf_endpoint};

#[perf_endpoint("/v1/chat/completions")]
async fn chat(model: String) -> usize {
    #[perf_backend(model = &model)]
    let answer = model.len();
    answer
}

fn main() {}
