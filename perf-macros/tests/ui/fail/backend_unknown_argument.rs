use perf_runtime::perf_backend;

#[perf_backend(provider = "openrouter", model = "gpt-4o", region = "eu")]
async fn call() {}

fn main() {}
