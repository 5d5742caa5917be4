//! The one clock every measurement reads: monotonic, so wall-clock jumps never give negative or
//! inflated durations.
//!
//! A reading is quanta's raw counter: the TSC where the processor has an invariant one (about 10 ns
//! a read here, against 23 ns for `Instant::now`; a request reads it 7 or 8 times, 11 without
//! `StageGuard::next`), else the OS's monotonic clock in nanoseconds. Readings of different guards
//! and threads compare (a front-end stage is cut where a backend call started). quanta's own
//! `Instant::now` would first look for a thread's mock clock on every read.
//!
//! Durations stay in the clock's own **ticks** from the reading to the histogram: a series holds
//! its bucket bounds in ticks, and its sum and exemplars in ticks, which a scrape scales to
//! seconds. An observation then takes a subtraction, not a multiplication on the way from the
//! clock to its bucket. Durations that come in nanoseconds (a `Duration`, a test's value) are
//! turned into ticks by [`ns_to_ticks`], which puts them in the same bucket as a measured
//! duration that scales to the same nanoseconds.

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

    /// Ticks from `self` to `later` (0 if `later` is not later): a duration in the clock's own
    /// unit, what histograms and a request's phases hold.
    #[inline]
    pub fn ticks_until(self, later: Clock) -> u64 {
        later.0.saturating_sub(self.0)
    }

    /// Nanoseconds from `self` to `later` (0 if `later` is not later).
    #[inline]
    pub fn until(self, later: Clock) -> u64 {
        ticks_to_ns(self.ticks_until(later))
    }

    pub fn elapsed(self) -> Duration {
        Duration::from_nanos(self.until(Clock::now()))
    }
}

/// The scale, set by the first reading (or by this call).
#[inline]
fn scale() -> u64 {
    match SCALE.load(Relaxed) {
        0 => calibrated_scale(),
        scale => scale,
    }
}

/// Nanoseconds in `ticks` of the clock (rounded down).
#[inline]
pub(crate) fn ticks_to_ns(ticks: u64) -> u64 {
    let ns = (u128::from(ticks) * u128::from(scale())) >> 32;
    u64::try_from(ns).unwrap_or(u64::MAX)
}

/// Seconds in `ticks` of the clock, unrounded: a histogram's sum.
pub(crate) fn ticks_to_seconds(ticks: u64) -> f64 {
    ticks as f64 * scale() as f64 / (1u64 << 32) as f64 * 1e-9
}

/// The most ticks that scale to no more than `ns` nanoseconds: a duration given in nanoseconds
/// lands in the bucket of every measured one that scales to the same nanoseconds (where the
/// clock ticks at least once a nanosecond, each nanosecond has such ticks; a coarser clock
/// measures no finer anyway).
pub(crate) fn ns_to_ticks(ns: u64) -> u64 {
    if ns == u64::MAX {
        return u64::MAX;
    }
    // floor(t × scale / 2^32) <= ns  ⇔  t × scale <= (ns + 1) × 2^32 − 1.
    let ticks = (((u128::from(ns) + 1) << 32) - 1) / u128::from(scale());
    u64::try_from(ticks).unwrap_or(u64::MAX)
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
    fn nanoseconds_turn_into_the_most_ticks_that_scale_to_them() {
        for ns in [
            0u64,
            1,
            2,
            999,
            1000,
            123_456_789,
            100_000_000,
            10_000_000_000,
        ] {
            let ticks = ns_to_ticks(ns);
            assert!(ticks_to_ns(ticks) <= ns, "{ns}");
            assert!(ticks_to_ns(ticks + 1) > ns, "{ns}");
        }
        assert_eq!(ns_to_ticks(u64::MAX), u64::MAX);
        let seconds = ticks_to_seconds(ns_to_ticks(2_000_000_000));
        assert!((seconds - 2.0).abs() < 1e-8, "{seconds}");
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
