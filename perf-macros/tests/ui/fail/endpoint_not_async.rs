use perf_runtime::perf_endpoint;

#[perf_endpoint("/v1/chat/completions")]
fn chat() -> u16 {
    200
}

fn main() {}
