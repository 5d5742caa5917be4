use perf_runtime::perf_stage;

#[perf_stage(auth_validaton)]
async fn validate(key: &str) -> bool {
    key == "demo-key"
}

fn main() {}
