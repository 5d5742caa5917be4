//! The one clock every measurement reads: monotonic, so wall-clock jumps never give negative or
//! inflated durations.
//!
//! It is quanta's calibrated TSC clock where the processor has an invariant TSC (about 12 ns a
//! read here, against 30 ns for `Instant::now`, and a request reads it a dozen times), and the
//! OS's monotonic clock elsewhere. A reading is nanoseconds since the process' first reading, so
//! readings of different guards and threads compare: a front-end stage is cut where a backend
//! call started.

use std::sync::OnceLock;
use std::time::Duration;

use quanta::Instant;

/// A point in time: nanoseconds since the process first read the clock, plus one (never 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Clock(pub u64);

impl Clock {
    pub fn now() -> Self {
        static EPOCH: OnceLock<Instant> = OnceLock::new();
        let epoch = *EPOCH.get_or_init(Instant::now);
        let since = Instant::now().saturating_duration_since(epoch);
        Clock(u64::try_from(since.as_nanos()).unwrap_or(u64::MAX - 1) + 1)
    }

    /// Nanoseconds from `self` to `later` (0 if `later` is earlier).
    pub fn until(self, later: Clock) -> u64 {
        later.0.saturating_sub(self.0)
    }

    pub fn elapsed(self) -> Duration {
        Duration::from_nanos(self.until(Clock::now()))
    }
}
