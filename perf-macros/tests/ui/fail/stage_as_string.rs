use perf_runtime::perf_stage;

#[perf_stage("request_parsing")]
fn parse() {}

fn main() {}
