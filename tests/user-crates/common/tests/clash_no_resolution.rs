//! The application's own `requests_total` first, nothing done about it.
//! One scenario per test binary: perf's metrics and the logger are global to the process.

use user_app::{checks, Driver, BUILD};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clash_no_resolution() {
    checks::clash_no_resolution::<Driver>(BUILD).await;
}
