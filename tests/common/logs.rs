//! Every log line of the test process, kept: a `log::Log` installed once per test binary
//! (by the first [`capture_logs`]), at every level, for tests that check what the gateway
//! logs, and what it never logs (a secret).

use std::sync::{Mutex, OnceLock, PoisonError};

use log::{LevelFilter, Log, Metadata, Record};

struct Captured(Mutex<Vec<String>>);

impl Log for Captured {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &Record<'_>) {
        let line = format!("{} {}: {}", record.level(), record.target(), record.args());
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(line);
    }

    fn flush(&self) {}
}

static CAPTURED: OnceLock<&'static Captured> = OnceLock::new();

/// Installs the capturing logger, once per process (the first call wins; it panics if another
/// logger was installed before).
pub fn capture_logs() {
    CAPTURED.get_or_init(|| {
        let captured: &'static Captured = Box::leak(Box::new(Captured(Mutex::new(Vec::new()))));
        log::set_logger(captured).expect("no other logger in this test binary");
        log::set_max_level(LevelFilter::Trace);
        captured
    });
}

/// Every line logged since [`capture_logs`] first ran.
pub fn logged_lines() -> Vec<String> {
    capture_logs();
    CAPTURED
        .get()
        .map(|captured| {
            captured
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        })
        .unwrap_or_default()
}
