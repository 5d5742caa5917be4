//! The one clock every measurement reads: monotonic, so wall-clock jumps never give negative or
//! inflated durations.
//!
//! It is quanta's calibrated TSC clock where the processor has an invariant TSC (about 12 ns a
//! read here, against 30 ns for `Instant::now`, and a request reads it a dozen times), and the
//! OS's monotonic clock elsewhere.

use std::sync::OnceLock;
use std::time::Duration;

use quanta::Instant;

/// A point in time read from the monotonic clock.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock(Instant);

impl Clock {
    pub fn now() -> Self {
        Clock(Instant::now())
    }

    pub fn elapsed(self) -> Duration {
        Instant::now().saturating_duration_since(self.0)
    }

    /// Nanoseconds since the process first read the clock, plus one: a never-zero stamp that
    /// orders events across threads.
    pub fn stamp() -> u64 {
        static EPOCH: OnceLock<Instant> = OnceLock::new();
        let since = Instant::now().saturating_duration_since(*EPOCH.get_or_init(Instant::now));
        u64::try_from(since.as_nanos()).unwrap_or(u64::MAX - 1) + 1
    }
}
