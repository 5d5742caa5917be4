use perf_runtime::perf_stage;

#[perf_stage(request_parsing, auth_validation)]
fn parse() {}

fn main() {}
