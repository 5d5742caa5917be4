use perf_runtime::perf_statements;

#[perf_statements(request_parsing)]
fn helper() {}

fn main() {
    helper();
}
