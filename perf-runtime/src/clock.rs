//! The one clock every measurement reads: monotonic, so wall-clock jumps never give negative or
//! inflated durations.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A point in time read from the monotonic clock.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock(Instant);

impl Clock {
    pub fn now() -> Self {
        Clock(Instant::now())
    }

    pub fn elapsed(self) -> Duration {
        self.0.elapsed()
    }

    /// Nanoseconds since the process first read the clock, plus one: a never-zero stamp that
    /// orders events across threads.
    pub fn stamp() -> u64 {
        static EPOCH: OnceLock<Instant> = OnceLock::new();
        let since = EPOCH.get_or_init(Instant::now).elapsed();
        u64::try_from(since.as_nanos()).unwrap_or(u64::MAX - 1) + 1
    }
}
