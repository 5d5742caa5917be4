use perf_runtime::perf_backend;

#[perf_backend(provider = "openrouter")]
async fn call() {}

fn main() {}
