use perf_runtime::perf_endpoint;

#[perf_endpoint("/v1/chat/completions")]
struct Chat {
    model: String,
}

fn main() {}
