use perf_runtime::perf_stage;

#[perf_stage(request_preparation)]
fn prepare() -> u32 {
    #[perf_runtime::perf_endpoint("/v1/chat/completions")]
    let body = 1;
    body
}

fn main() {}
