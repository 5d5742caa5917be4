//! The one clock every measurement reads: monotonic, so wall-clock jumps never give negative or
//! inflated durations.
//!
//! A reading is quanta's raw counter: the TSC where the processor has an invariant one (about 10 ns
//! a read here, against 23 ns for `Instant::now`; a request reads it 7 or 8 times, 11 without
//! `StageGuard::next`), else the OS's monotonic clock in nanoseconds. Readings of different guards
//! and threads compare (a front-end stage is cut where a backend call started); a difference is
//! scaled to nanoseconds only when a duration is needed. quanta's own `Instant::now` would first
//! look for a thread's mock clock on every read.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point in time: a raw reading of the process' clock source (never 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Clock(pub u64);

/// The calibrated clock source, made on first use.
#[inline]
fn source() -> &'static quanta::Clock {
    static SOURCE: OnceLock<quanta::Clock> = OnceLock::new();
    SOURCE.get_or_init(|| {
        let clock = quanta::Clock::new();
        SCALE.store(clock.delta_as_nanos(1, 1 + (1 << 32)).max(1), Relaxed);
        clock
    })
}

/// Nanoseconds per 2^32 raw units (quanta's calibration, read once; 2^32 where the raw clock
/// counts nanoseconds), 0 before the first reading: a difference is scaled with one multiply,
/// no call.
static SCALE: AtomicU64 = AtomicU64::new(0);

/// The scale, once `source` has set it: for readings that did not come from [`Clock::now`].
#[cold]
fn calibrated_scale() -> u64 {
    source();
    SCALE.load(Relaxed)
}

impl Clock {
    #[inline]
    pub fn now() -> Self {
        Clock(source().raw().max(1))
    }

    /// Nanoseconds from `self` to `later` (0 if `later` is not later).
    #[inline]
    pub fn until(self, later: Clock) -> u64 {
        if later.0 <= self.0 {
            return 0;
        }
        let mut scale = SCALE.load(Relaxed);
        if scale == 0 {
            scale = calibrated_scale();
        }
        let scale = u128::from(scale);
        let ns = (u128::from(later.0 - self.0) * scale) >> 32;
        u64::try_from(ns).unwrap_or(u64::MAX)
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
    #[inline]
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

    #[test]
    fn differences_scale_as_quantas() {
        let start = Clock::now();
        for ticks in [1u64, 1000, 1 << 20, 3 << 30, 1 << 40, 1 << 50] {
            let ours = start.until(Clock(start.0 + ticks)) as f64;
            let quantas = source().delta_as_nanos(start.0, start.0 + ticks) as f64;
            assert!(
                (ours - quantas).abs() <= 1.0 + quantas * 1e-6,
                "{ticks}: {ours} {quantas}"
            );
        }
    }
}
