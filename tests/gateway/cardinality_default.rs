//! 3000 distinct model names through a gateway at the default label cap (500, no flag): each
//! backend family keeps exactly 500 model values plus `other`, which holds the other 2500
//! requests exactly; the series count and the size of `/metrics` stay bounded.
//!
//! The label budget belongs to the process, so the test runs alone (`common::alone!`).

use crate::common;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_thousand_models_at_the_default_cap_leave_501_series() {
    common::alone!(heavy);
    assert_eq!(perf_runtime::metrics::DEFAULT_LABEL_CAP, 500);
    common::check_label_cap(
        &[],
        500,
        3000,
        "three_thousand_models_at_the_default_cap_leave_501_series",
    )
    .await;
}
