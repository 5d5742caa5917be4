//! `--prices FILE`: the price table the gateway's backend calls are priced with, read at start
//! and again on SIGHUP (`kill -HUP <pid>`): a reload that fails keeps the table in use.

use std::io;
use std::path::{Path, PathBuf};

use perf_runtime::Metrics;

/// Reads the price table at `path` into the global metrics; an error names the file and line.
pub fn load(path: &Path) -> io::Result<usize> {
    Metrics::global()
        .load_prices(path)
        .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error.to_string()))
}

/// Reads the table at `path` again, saying how it went (through `log`): on an error the table
/// in use stays.
pub fn reload(path: &Path) {
    match load(path) {
        Ok(models) => log::info!("prices reloaded from {}: {models} models", path.display()),
        Err(error) => log::error!("{error}; the prices in use stay"),
    }
}

/// Reloads the table at `path` on each SIGHUP, for the life of the process (unix only).
pub fn reload_on_sighup(path: PathBuf) -> io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = signal(SignalKind::hangup())?;
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                reload(&path);
            }
        });
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}
