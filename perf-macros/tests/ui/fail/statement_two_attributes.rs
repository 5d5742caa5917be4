use perf_runtime::{perf_backend, perf_endpoint, perf_stage};

#[perf_endpoint("/v1/chat/completions")]
async fn chat(model: String) -> usize {
    #[perf_stage(request_preparation)]
    #[perf_backend(provider = "openrouter", model = &model)]
    let answer = model.len();
    answer
}

fn main() {}
