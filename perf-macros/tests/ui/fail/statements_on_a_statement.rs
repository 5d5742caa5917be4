use perf_runtime::{perf_endpoint, perf_statements};

#[perf_endpoint("/v1/chat/completions")]
async fn chat(model: String) -> usize {
    #[perf_statements]
    let answer = model.len();
    answer
}

fn main() {}
