use perf_runtime::perf_endpoint;

const PATH: &str = "/v1/chat/completions";

#[perf_endpoint(PATH)]
async fn chat() {}

fn main() {}
