//! A test in a process of its own, inside a test binary of many: [`alone!`](macro@crate::alone) at the
//! top of a test runs the binary again for that test alone and passes or fails with it; and
//! [`heavy`]: one test at a time of those that load the machine.
//!
//! What a process holds once is shared by every test in it: perf's global metrics (with their
//! label settings, fixed by the first gateway started), the logger, the open-file limit. A test
//! that asserts exact counts in the global registry, sets the label budget or captures the log
//! (the example gateway's, in `tests/gateway/`) runs alone, as it would in a binary of its own,
//! without a link step of its own.

use std::process::Command;
use std::sync::{Condvar, Mutex, PoisonError};

/// The variable that tells a test run by [`alone!`](macro@crate::alone) that it is the one test of
/// its process.
const ALONE: &str = "PERF_TEST_ALONE";

/// Starts the calling test alone in a process of its own, unless it is already: the first
/// statement of a test whose process must hold nothing else. `alone!(heavy)` also holds
/// [`heavy`] while it runs.
///
/// In the binary's own run, the test runs this binary again for itself alone (`--exact`), waits
/// for it, prints what it printed, and returns if it passed (panics if not); in that process,
/// `alone!()` does nothing and the test goes on.
#[macro_export]
macro_rules! alone {
    () => {
        $crate::alone!(@ false)
    };
    (heavy) => {
        $crate::alone!(@ true)
    };
    (@ $heavy:expr) => {{
        fn here() {}
        let name = ::std::any::type_name_of_val(&here);
        if !$crate::alone::in_own_process(name, $heavy) {
            return;
        }
    }};
}

/// Whether this process runs one test alone (of [`alone!`](macro@crate::alone)).
pub fn is_alone() -> bool {
    std::env::var_os(ALONE).is_some()
}

/// Whether the test whose local fn `here` has the type name `here` (its path, closures
/// included) is in a process of its own; if not, runs it in one, to its end, holding [`heavy`]
/// meanwhile if `heavy`.
pub fn in_own_process(here: &str, heavy: bool) -> bool {
    let name = test_name(here);
    if std::env::var(ALONE).as_deref() == Ok(name.as_str()) {
        return true;
    }
    let _heavy = heavy.then(self::heavy);
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

/// The turn of a test that loads the machine (thousands of connections, streams or model names,
/// a burst, real Prometheus under load) or measures latency: held, no other such test of this
/// binary runs. The tests around it run on, as the tests of one file did when each file was a
/// binary; two of those at once on a busy two-core machine starved each other's timings
/// (`tests/gateway/`).
pub struct Heavy(());

static BUSY: Mutex<bool> = Mutex::new(false);
static FREED: Condvar = Condvar::new();

/// Waits for the turn of a heavy test, and holds it until the [`Heavy`] is dropped.
pub fn heavy() -> Heavy {
    let mut busy = BUSY.lock().unwrap_or_else(PoisonError::into_inner);
    while *busy {
        busy = FREED.wait(busy).unwrap_or_else(PoisonError::into_inner);
    }
    *busy = true;
    Heavy(())
}

impl Drop for Heavy {
    fn drop(&mut self) {
        *BUSY.lock().unwrap_or_else(PoisonError::into_inner) = false;
        FREED.notify_one();
    }
}
