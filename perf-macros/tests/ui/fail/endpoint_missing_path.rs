use perf_runtime::perf_endpoint;

#[perf_endpoint]
async fn chat() {}

fn main() {}
