use perf_runtime::perf_endpoint;

// Statement attributes resolve like any attribute: `perf_stage` must be imported.
#[perf_endpoint("/v1/chat/completions")]
async fn chat(body: &str) -> usize {
    #[perf_stage(request_parsing)]
    let length = body.len();
    length
}

fn main() {}
