use perf_runtime::perf_endpoint;

#[perf_endpoint("/v1/chat/completions", streaming)]
async fn chat() {}

fn main() {}
