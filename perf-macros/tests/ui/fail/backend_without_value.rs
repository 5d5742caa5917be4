use perf_runtime::perf_backend;

#[perf_backend(provider, model = "gpt-4o")]
async fn call() {}

fn main() {}
