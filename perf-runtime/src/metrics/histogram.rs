//! A histogram of durations, sharded so that concurrent requests do not contend.

use std::time::Duration;

use super::exemplar::Exemplars;
use super::family::Series;
use super::native::NativeBuckets;
use super::reading::{ExemplarReading, Extras, HistogramReading, Kind, Value};
use super::shard::{self, Shard, ShardedWords, SHARDS};
use crate::clock::{self, Clock, WallAnchor};
use crate::trace::TraceId;

/// A sum adds each value in units of 2^10 ticks (0.34 µs at 3 GHz, 1 µs where the clock counts
/// nanoseconds), rounded: a shift, not a division, on the way in.
const SUM_UNIT_SHIFT: u32 = 10;
/// Ticks per unit of a sum.
const SUM_UNIT: f64 = (1u64 << SUM_UNIT_SHIFT) as f64;

/// A histogram of durations with fixed buckets.
///
/// Values are durations in clock ticks (see `clock.rs`). Recording adds to two words of the
/// calling thread's shard (plain stores where the thread owns it, see `shard.rs`): the bucket's
/// count and the sum (in units of 2^[`SUM_UNIT_SHIFT`] ticks, so that a busy series takes decades,
/// not days, to overflow); a third for the native bucket, and an exemplar write, where the series
/// keeps them. A scrape adds the shards; an observation in flight may show in its bucket a moment
/// before its sum.
pub(crate) struct Histogram {
    bounds: &'static [f64],
    /// The bounds in clock ticks, then `u64::MAX` (the `+Inf` bucket's).
    bounds_ticks: Box<[u64]>,
    /// For values whose highest set bit is bit `k - 1` (0 for the value 0), the first bucket
    /// that can hold them: the number of bounds below `2^(k - 1)`.
    first: [u8; 65],
    /// Per shard: one count per bucket (the last one is `+Inf`), then the sum.
    words: ShardedWords,
    exemplars: Option<Exemplars>,
    native: Option<NativeBuckets>,
}

impl Histogram {
    pub fn new(bounds: &'static [f64], detail: Extras) -> Self {
        let bounds_ticks: Box<[u64]> = bounds
            .iter()
            .map(|b| clock::ns_to_ticks((b * 1e9).round() as u64))
            .chain([u64::MAX])
            .collect();
        let first = std::array::from_fn(|k| {
            let low = if k == 0 { 0 } else { 1u64 << (k - 1) };
            let below = bounds_ticks.iter().filter(|&&le| le < low).count();
            u8::try_from(below).expect("fewer than 256 buckets")
        });
        Histogram {
            bounds,
            bounds_ticks,
            first,
            words: ShardedWords::new(bounds.len() + 2),
            exemplars: detail.exemplars.then(|| Exemplars::new(bounds.len() + 1)),
            native: detail.native.then(NativeBuckets::new),
        }
    }

    /// Records one observation of `elapsed`.
    pub fn observe(&self, elapsed: Duration) {
        self.observe_ns(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Records one observation of `ns` nanoseconds.
    pub fn observe_ns(&self, ns: u64) {
        self.observe_ticks(clock::ns_to_ticks(ns));
    }

    /// An observation of `ticks` without a trace.
    #[inline]
    pub fn observe_ticks(&self, ticks: u64) {
        self.record(shard::current(), ticks);
    }

    /// Observations of each of `ticks`, without a trace.
    pub fn observe_all(&self, ticks: &[u64]) {
        let shard = shard::current();
        for &ticks in ticks {
            self.record(shard, ticks);
        }
    }

    /// Records one observation of `ticks` clock ticks (a duration as `Clock` measures it) that
    /// ended at `at`, by request `trace` (if any): the exemplar of its bucket too, if the series
    /// keeps exemplars.
    #[inline]
    pub fn observe_traced(&self, ticks: u64, trace: Option<TraceId>, at: Clock) {
        let shard = shard::current();
        let bucket = self.record(shard, ticks);
        if let (Some(exemplars), Some(trace)) = (&self.exemplars, trace) {
            exemplars.record(shard, bucket, trace, ticks, at);
        }
    }

    #[inline]
    fn record(&self, shard: Shard, ticks: u64) -> usize {
        let bucket = self.bucket(ticks);
        let words = self.words.words(shard);
        // SAFETY: `bucket` is at most the `+Inf` bucket's index, and the sum is the word after
        // it: both within the `bounds.len() + 2` words per shard.
        let (count, sum) = unsafe { (words.at(bucket), words.at(self.sum_word())) };
        shard.add(count, 1);
        let half_unit = 1 << (SUM_UNIT_SHIFT - 1);
        shard.add(sum, ticks.saturating_add(half_unit) >> SUM_UNIT_SHIFT);
        if let Some(native) = &self.native {
            shard.add(native.cell(shard, ticks), 1);
        }
        bucket
    }

    /// The bucket of `ticks`: the first whose bound is not below it. Found from the first bucket
    /// that values of its power of two can fall in: at most a step or three. The steps branch:
    /// a series' values mostly fall in one bucket or two (its bounds are 1.3 to 2.5 apart), so
    /// the branch is predicted, and a predicted branch is cheaper than a chain of comparisons
    /// (measured: a content chunk's gap observation, 26.4 ns branchless against 21.3 ns).
    #[inline]
    fn bucket(&self, ticks: u64) -> usize {
        let mut bucket = usize::from(self.first[(u64::BITS - ticks.leading_zeros()) as usize]);
        // SAFETY: `first` is at most the `+Inf` bucket's index, whose bound (`u64::MAX`) no
        // value is above: the search stops there at the latest.
        while unsafe { *self.bounds_ticks.get_unchecked(bucket) } < ticks {
            bucket += 1;
        }
        bucket
    }

    fn sum_word(&self) -> usize {
        self.bounds.len() + 1
    }

    /// The latest exemplar of each bucket that has one, with its raw clock reading.
    #[cfg(test)]
    pub fn exemplars(&self) -> Vec<super::exemplar::Exemplar> {
        let Some(exemplars) = &self.exemplars else {
            return Vec::new();
        };
        (0..=self.bounds.len())
            .filter_map(|bucket| exemplars.read(bucket, SHARDS))
            .collect()
    }

    /// The series as plain data, with the exemplars and native buckets `want` asks for (and
    /// the series keeps): the text format reads neither.
    pub fn reading(&self, want: Extras) -> HistogramReading {
        let mut cumulative = 0;
        let buckets = self
            .bounds
            .iter()
            .enumerate()
            .map(|(i, &le)| {
                cumulative += self.words.sum(i);
                (le, cumulative)
            })
            .collect();
        let count = cumulative + self.words.sum(self.bounds.len());
        let sum = clock::ticks_to_seconds(self.words.sum(self.sum_word())) * SUM_UNIT;
        let exemplars = match self.exemplars.as_ref().filter(|_| want.exemplars) {
            Some(exemplars) => {
                let anchor = WallAnchor::now();
                (0..=self.bounds.len())
                    .map(|bucket| {
                        exemplars.read(bucket, SHARDS).map(|e| ExemplarReading {
                            trace: e.trace,
                            value: clock::ticks_to_seconds(e.ticks),
                            timestamp: anchor.unix_seconds(e.at),
                        })
                    })
                    .collect()
            }
            None => Vec::new(),
        };
        HistogramReading {
            buckets,
            count,
            sum,
            exemplars,
            native: self
                .native
                .as_ref()
                .filter(|_| want.native)
                .map(NativeBuckets::read),
        }
    }
}

/// One stage histogram on its own, for the benchmarks: what an observation costs with and
/// without exemplars and native buckets (feature `bench-internals`).
#[cfg(feature = "bench-internals")]
pub struct BenchHistogram(Histogram, TraceId);

#[cfg(feature = "bench-internals")]
impl BenchHistogram {
    /// A histogram with the stage buckets, keeping exemplars and native buckets or not.
    pub fn new(exemplars: bool, native: bool) -> Self {
        let detail = Extras { exemplars, native };
        BenchHistogram(
            Histogram::new(&super::STAGE_BUCKETS, detail),
            TraceId::random(),
        )
    }

    /// An observation without a trace.
    pub fn observe(&self, ns: u64) {
        self.0.observe_ns(ns);
    }

    /// An observation of `ticks` with a trace and the clock reading its guard already has.
    pub fn observe_traced(&self, ticks: u64) {
        self.0
            .observe_traced(ticks, Some(self.1), Clock(ticks.max(1)));
    }

    /// A reading of perf's clock, as a guard takes it.
    #[inline]
    pub fn now() -> u64 {
        Clock::now().0
    }

    /// The time between two readings, observed with a trace as a guard observes its own.
    #[inline]
    pub fn observe_between(&self, start: u64, end: u64) {
        let end = Clock(end);
        self.0
            .observe_traced(Clock(start).ticks_until(end), Some(self.1), end);
    }
}

impl Series for Histogram {
    const KIND: Kind = Kind::Histogram;

    fn read(
        &self,
        want: Extras,
        push: &mut dyn FnMut(Option<(&'static str, &'static str)>, Value),
    ) {
        push(None, Value::Histogram(self.reading(want)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static BOUNDS: [f64; 3] = [0.1, 0.5, 1.0];

    #[test]
    fn buckets_are_upper_inclusive_and_cumulative() {
        let h = Histogram::new(&BOUNDS, Extras::default());
        for ms in [100, 101, 500, 2000] {
            h.observe(Duration::from_millis(ms));
        }
        let reading = h.reading(Extras::ALL);
        assert_eq!(reading.buckets, [(0.1, 1), (0.5, 3), (1.0, 3)]);
        assert_eq!(reading.count, 4);
        // The sum keeps units of 2^10 ticks: within half a unit (≤ 0.5 µs) per observation.
        assert!(
            (reading.sum - 2.701).abs() < 4.0 * 0.6e-6,
            "{}",
            reading.sum
        );
        assert!(reading.exemplars.is_empty());
        assert_eq!(reading.native, None);
    }

    #[test]
    fn buckets_found_by_power_of_two_are_the_first_not_below() {
        use crate::metrics::*;
        // Every bucket list of the contract, and a crowded one.
        static CROWDED: [f64; 5] = [1e-6, 1.1e-6, 1.2e-6, 1.3e-6, 1.9e-6];
        let lists: [&'static [f64]; 8] = [
            &STAGE_BUCKETS,
            &BACKEND_BUCKETS,
            &FRONTEND_BUCKETS,
            &TTFT_BUCKETS,
            &CHUNK_GAP_BUCKETS,
            &REQUEST_BUCKETS,
            &OVERHEAD_BUCKETS,
            &CROWDED,
        ];
        for bounds in lists {
            let h = Histogram::new(bounds, Extras::default());
            let edges = h.bounds_ticks.iter().copied();
            let values = crate::metrics::test_values::values(2000, edges, 10_000);
            for ticks in values {
                let linear = h.bounds_ticks.iter().filter(|&&le| le < ticks).count();
                assert_eq!(h.bucket(ticks), linear, "{ticks}");
            }
        }
    }

    #[test]
    fn traced_observations_leave_their_trace_in_their_bucket() {
        let h = Histogram::new(
            &BOUNDS,
            Extras {
                exemplars: true,
                native: true,
            },
        );
        let (slow, fast) = (TraceId::random(), TraceId::random());
        let before = WallAnchor::now().unix_seconds(Clock::now());
        let ticks = clock::ns_to_ticks;
        h.observe_traced(ticks(2_000_000_000), Some(slow), Clock::now());
        h.observe_traced(ticks(50_000_000), Some(fast), Clock::now());
        h.observe_ns(60_000_000);
        let reading = h.reading(Extras::ALL);
        let exemplars: Vec<_> = reading
            .exemplars
            .iter()
            .map(|e| e.map(|e| e.trace))
            .collect();
        assert_eq!(exemplars, [Some(fast), None, None, Some(slow)]);
        let slow = reading.exemplars[3].unwrap();
        assert!((slow.value - 2.0).abs() < 1e-8, "{}", slow.value);
        assert!(
            slow.timestamp >= before - 0.001,
            "{} < {before}",
            slow.timestamp
        );
        let native = reading.native.unwrap();
        assert_eq!(native.buckets.iter().map(|b| b.1).sum::<u64>(), 3);
    }
}
