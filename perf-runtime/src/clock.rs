//! The one clock every measurement reads: monotonic, so wall-clock jumps never give negative or
//! inflated durations.

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
}
