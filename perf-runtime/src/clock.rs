//! The one clock every measurement reads: monotonic, so wall-clock jumps never give negative or
//! inflated durations.
//!
//! A reading is quanta's raw counter: the TSC where the processor has an invariant one (about
//! 10 ns a read here, against 23 ns for `Instant::now`, and a request reads it a dozen times),
//! else the OS's monotonic clock in nanoseconds. Readings of different guards and threads
//! compare (a front-end stage is cut where a backend call started); a difference is scaled to
//! nanoseconds only when a duration is needed. quanta's own `Instant::now` would first look for
//! a thread's mock clock on every read.

use std::sync::OnceLock;
use std::time::Duration;

/// A point in time: a raw reading of the process' clock source (never 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Clock(pub u64);

/// The calibrated clock source, made on first use.
fn source() -> &'static quanta::Clock {
    static SOURCE: OnceLock<quanta::Clock> = OnceLock::new();
    SOURCE.get_or_init(quanta::Clock::new)
}

impl Clock {
    pub fn now() -> Self {
        Clock(source().raw().max(1))
    }

    /// Nanoseconds from `self` to `later` (0 if `later` is not later).
    pub fn until(self, later: Clock) -> u64 {
        source().delta_as_nanos(self.0, later.0)
    }

    pub fn elapsed(self) -> Duration {
        Duration::from_nanos(self.until(Clock::now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_order_and_measure_in_nanoseconds() {
        let start = Clock::now();
        std::thread::sleep(Duration::from_millis(20));
        let end = Clock::now();
        assert!(end > start);
        let ns = start.until(end);
        assert!((20_000_000..2_000_000_000).contains(&ns), "{ns}");
        assert_eq!(end.until(start), 0);
    }
}
