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
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// A clock reading paired with the wall clock's at the same moment: what places earlier
/// readings (an exemplar's) on the wall clock.
pub(crate) struct WallAnchor {
    at: Clock,
    unix: f64,
}

impl WallAnchor {
    pub fn now() -> Self {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |since| since.as_secs_f64());
        WallAnchor {
            at: Clock::now(),
            unix,
        }
    }

    /// Seconds since the Unix epoch at reading `earlier`.
    pub fn unix_seconds(&self, earlier: Clock) -> f64 {
        self.unix - earlier.until(self.at) as f64 * 1e-9
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
