//! 3000 distinct model names through a gateway started with `--model-label-cap 20`: each
//! backend family keeps exactly 20 model values plus `other`, which holds the other 2980
//! requests exactly; the series count and the size of `/metrics` stay bounded.
//!
//! The label budget belongs to the process, so the test runs alone (`common::alone!`;
//! `cardinality_default.rs` does the same at the default cap).

use crate::common;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_thousand_models_leave_cap_plus_one_series() {
    common::alone!(heavy);
    common::check_label_cap(
        &["--model-label-cap", "20"],
        20,
        3000,
        "three_thousand_models_leave_cap_plus_one_series",
    )
    .await;
}
