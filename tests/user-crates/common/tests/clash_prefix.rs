//! The application's own `requests_total` first, perf installed with the prefix `llm_`.
//! One scenario per test binary: perf's metrics and the logger are global to the process.

use user_app::{checks, Driver, BUILD};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clash_prefix() {
    checks::clash_prefix::<Driver>(BUILD).await;
}
