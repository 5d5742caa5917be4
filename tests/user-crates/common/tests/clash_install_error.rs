//! The application's own `requests_total` first, perf installed without a prefix: `install`
//! reports the clash. One scenario per test binary: perf's metrics and the logger are global to
//! the process.

use user_app::{checks, BUILD};

#[test]
fn clash_install_error() {
    checks::clash_install_error(BUILD);
}
