use perf_runtime::perf_stage;

#[perf_stage(backend_fetch)]
async fn fetch() {}

fn main() {}
