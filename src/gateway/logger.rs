//! A small logger to stderr for the example binary: one line per record, `unix-seconds LEVEL
//! target: message`. The gateway and perf-runtime log through the `log` facade; an embedding
//! program installs its own logger instead (`env_logger`, `tracing`'s `LogTracer`, ...).
//!
//! What is logged never holds a secret: the gateway writes keys as fingerprints only, and
//! redacts them from the provider's text (see [`super::secrets`]).

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use log::{LevelFilter, Log, Metadata, Record};

/// The variable that sets the level: `error`, `warn`, `info` (the default), `debug`, `trace` or
/// `off`.
pub const LEVEL_VARIABLE: &str = "GATEWAY_LOG";

struct Stderr;

impl Log for Stderr {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        // One write of a whole line: lines of concurrent requests do not interleave.
        let line = format!(
            "{}.{:03} {:<5} {}: {}\n",
            now.as_secs(),
            now.subsec_millis(),
            record.level(),
            record.target(),
            record.args()
        );
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// Installs the stderr logger at the level of [`LEVEL_VARIABLE`] (`info` if unset or not a
/// level); does nothing if a logger is installed already.
pub fn log_to_stderr() {
    let level = std::env::var(LEVEL_VARIABLE)
        .ok()
        .and_then(|level| level.trim().parse().ok())
        .unwrap_or(LevelFilter::Info);
    if log::set_logger(&Stderr).is_ok() {
        log::set_max_level(level);
    }
}
