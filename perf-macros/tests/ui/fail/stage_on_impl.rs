use perf_runtime::perf_stage;

struct Parser;

#[perf_stage(request_parsing)]
impl Parser {}

fn main() {}
