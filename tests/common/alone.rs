//! A test in a process of its own, inside the one test binary: [`alone!`](crate::alone) at the
//! top of a test runs this binary again for that test alone and passes or fails with it.
//!
//! What a process holds once is shared by every test in it: perf's global metrics (with their
//! label settings, fixed by the first gateway started), the logger, the open-file limit. The
//! tests of `tests/gateway/` that start the gateway in the test process assert exact counts in
//! the global registry, or set the label budget, or capture the log: each of those runs alone,
//! as it did when each file was a binary of its own, without a link step per file.

use std::process::Command;

/// The variable that tells a test run by [`alone!`](crate::alone) that it is the one test of
/// its process.
const ALONE: &str = "PERF_TEST_ALONE";

/// Starts the calling test alone in a process of its own, unless it is already: the first
/// statement of a test whose process must hold nothing else.
///
/// In the binary's own run, the test runs this binary again for itself alone (`--exact`), waits
/// for it, prints what it printed, and returns if it passed (panics if not); in that process,
/// `alone!()` does nothing and the test goes on.
#[macro_export]
macro_rules! alone {
    () => {{
        fn here() {}
        if !$crate::common::alone::in_own_process(::std::any::type_name_of_val(&here)) {
            return;
        }
    }};
}

/// Whether this process runs one test alone (of [`alone!`](crate::alone)).
pub fn is_alone() -> bool {
    std::env::var_os(ALONE).is_some()
}

/// Whether the test whose local fn `here` has the type name `here` (its path, closures
/// included) is in a process of its own; if not, runs it in one, to its end.
pub fn in_own_process(here: &str) -> bool {
    let name = test_name(here);
    if std::env::var(ALONE).as_deref() == Ok(name.as_str()) {
        return true;
    }
    let binary = std::env::current_exe().expect("the test binary's path");
    let output = Command::new(binary)
        .args([name.as_str(), "--exact", "--nocapture", "--test-threads=1"])
        .env(ALONE, &name)
        .output()
        .expect("the test binary runs again");
    // Through `print!`, so that the harness shows it with this test's own output.
    print!("{}", String::from_utf8_lossy(&output.stdout));
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{name}, alone: {}", output.status);
    assert!(
        stdout.contains("1 passed"),
        "{name} did not run in its own process"
    );
    false
}

/// The harness' name of a test (`module::test`) from the type name of a fn declared in it
/// (`crate::module::test::{{closure}}::here`).
fn test_name(here: &str) -> String {
    let path = here
        .strip_suffix("::here")
        .expect("the fn `here` of alone!");
    let segments: Vec<&str> = path
        .split("::")
        .skip(1) // the crate: the test binary
        .filter(|segment| *segment != "{{closure}}")
        .collect();
    segments.join("::")
}
