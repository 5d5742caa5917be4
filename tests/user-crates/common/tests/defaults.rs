//! No clash: perf's families beside the application's own in the default registry.
//! One scenario per test binary: perf's metrics and the logger are global to the process.

use user_app::{checks, Driver, BUILD};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defaults() {
    checks::defaults::<Driver>(BUILD).await;
}
