use perf_runtime::perf_stage;

// The stage is named after the function, and `billing` is not a declared stage.
#[perf_stage]
fn billing() {}

fn main() {}
