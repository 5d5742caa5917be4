use perf_runtime::perf_endpoint;

#[perf_endpoint("v1/chat/completions")]
async fn chat() {}

fn main() {}
