//! Native histogram buckets: Prometheus' sparse exponential buckets, which give real quantiles at
//! every scale (a 1 µs stage and a 10 s answer alike) with no bucket list to choose.
//!
//! Schema 3: each power of two is cut into 8 buckets, each bound 2^(1/8) ≈ 1.09 times the one
//! below, so a quantile read from them is within ±4.3 % of the truth. Observations are durations
//! from 2^-24 s (60 ns) to 2^16 s (18 h) in 320 buckets; shorter ones go to the zero bucket, and
//! longer ones to the last. Each shard's counts are allocated the first time a thread of that
//! shard records: a series recorded from 2 threads holds 2 × 2.5 KB, not 8.

use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering::*};
use std::sync::OnceLock;

use super::shard::{Shard, SHARDS};

/// The bucket schema: 2^3 buckets per power of two.
pub(crate) const SCHEMA: i32 = 3;
const PER_POWER: i32 = 1 << SCHEMA;
/// The lowest power of two kept in a bucket of its own; at or below it, the zero bucket.
const LOWEST_POWER: i32 = -24;
const HIGHEST_POWER: i32 = 16;
/// Index of the first bucket: the one just above the zero bucket's threshold.
const FIRST_INDEX: i32 = LOWEST_POWER * PER_POWER + 1;
const BUCKETS: usize = ((HIGHEST_POWER - LOWEST_POWER) * PER_POWER) as usize;

/// The breadth of the zero bucket, in seconds: 2^-24.
pub(crate) const ZERO_THRESHOLD: f64 = 1.0 / (1u64 << 24) as f64;

/// The bounds splitting `[0.5, 1)` into the 8 buckets of one power of two: 2^(i/8 - 1).
const FRACTIONS: [f64; 8] = [
    0.5,
    0.545_253_866_332_628_8,
    0.594_603_557_501_360_5,
    0.648_419_777_325_504_8,
    0.707_106_781_186_547_5,
    0.771_105_412_703_970_4,
    0.840_896_415_253_714_6,
    0.917_004_043_204_671_2,
];

/// One shard's counts: the zero bucket, then the buckets in index order.
struct Counts([AtomicU64; BUCKETS + 1]);

/// A series' native buckets, one set of counts per shard, made on first use.
pub(crate) struct NativeBuckets {
    shards: [AtomicPtr<Counts>; SHARDS],
    /// The process' slot tables, found once here rather than at each observation.
    slots: &'static Slots,
}

impl NativeBuckets {
    pub fn new() -> Self {
        NativeBuckets {
            shards: std::array::from_fn(|_| AtomicPtr::new(std::ptr::null_mut())),
            slots: Slots::get(),
        }
    }

    /// The count of the bucket of `ticks` (a duration in clock ticks) in shard `shard`: what an
    /// observation adds one to.
    #[inline]
    pub fn cell(&self, shard: Shard, ticks: u64) -> &AtomicU64 {
        let slot = self.slots.slot(ticks);
        // SAFETY: a slot is at most `BUCKETS`, the last of the `BUCKETS + 1` counts.
        unsafe { self.counts(shard).0.get_unchecked(slot) }
    }

    #[inline]
    fn counts(&self, shard: Shard) -> &Counts {
        let shard = shard.index();
        // SAFETY: a `Shard`'s index is below `SHARDS`.
        let counts = unsafe { self.shards.get_unchecked(shard) }.load(Acquire);
        if counts.is_null() {
            return self.first_counts(shard);
        }
        // SAFETY: a non-null pointer comes from `Box::into_raw` in `first_counts` and is set once (a
        // compare-exchange from null); only `Drop`, which has `&mut self`, frees it. So it points
        // to live counts for as long as the `&self` the returned borrow is tied to.
        unsafe { &*counts }
    }

    /// Shard `shard`'s counts, made by this call or a racing one: its first observation.
    #[cold]
    fn first_counts(&self, shard: usize) -> &Counts {
        let pointer = &self.shards[shard];
        let new = Box::into_raw(Box::new(Counts(std::array::from_fn(|_| AtomicU64::new(0)))));
        let counts = match pointer.compare_exchange(std::ptr::null_mut(), new, AcqRel, Acquire) {
            Ok(_) => new,
            Err(theirs) => {
                // SAFETY: `new` was never shared.
                drop(unsafe { Box::from_raw(new) });
                theirs
            }
        };
        // SAFETY: as in `counts`: `new`, just set, or the pointer a racing call set first.
        unsafe { &*counts }
    }

    /// The buckets summed over the shards, as Prometheus' protobuf format sends them.
    pub fn read(&self) -> NativeReading {
        let mut counts = [0u64; BUCKETS + 1];
        for pointer in &self.shards {
            // SAFETY: as in `counts`.
            if let Some(shard) = unsafe { pointer.load(Acquire).as_ref() } {
                for (sum, count) in counts.iter_mut().zip(&shard.0) {
                    *sum += count.load(Relaxed);
                }
            }
        }
        let buckets = counts[1..]
            .iter()
            .enumerate()
            .filter(|(_, &count)| count > 0)
            .map(|(i, &count)| (FIRST_INDEX + i as i32, count))
            .collect();
        NativeReading {
            zero_count: counts[0],
            buckets,
        }
    }
}

impl Drop for NativeBuckets {
    fn drop(&mut self) {
        for pointer in &mut self.shards {
            let counts = *pointer.get_mut();
            if !counts.is_null() {
                // SAFETY: made by `Box::into_raw` in `made`, and nobody borrows `self` now.
                drop(unsafe { Box::from_raw(counts) });
            }
        }
    }
}

/// Slots of durations in clock ticks found by integer steps: the same as [`tick_slot`], without
/// a float in sight. Made once, for the process' clock.
struct Slots {
    /// By the highest set bit of a value in ticks and the 3 bits below it (`8 * k + m`, see
    /// [`Slots::slot`]), the slot of the lowest value with those bits.
    first: [u16; 65 * 8],
    /// The highest value in ticks of each slot (`u64::MAX` for the last).
    highest: [u64; BUCKETS + 1],
}

impl Slots {
    fn get() -> &'static Slots {
        static SLOTS: OnceLock<Box<Slots>> = OnceLock::new();
        SLOTS.get_or_init(|| {
            let highest = std::array::from_fn(|s| {
                // The highest value whose slot is not above `s`: slots only grow with values.
                let (mut low, mut high) = (0u64, u64::MAX);
                while low < high {
                    let mid = low + (high - low).div_ceil(2);
                    if tick_slot(mid) <= s {
                        low = mid;
                    } else {
                        high = mid - 1;
                    }
                }
                low
            });
            let first = std::array::from_fn(|group| tick_slot(group_lowest(group)) as u16);
            Box::new(Slots { first, highest })
        })
    }

    /// The slot of `ticks`: from the lowest slot of its highest bits, at most two steps up (a
    /// slot is at least 1/11 of its values wide, the range of 3 bits at most 1/8 of its
    /// lowest; a test checks every group). The steps are taken without a branch: the values
    /// of a group land on either side of an edge at random, and a mispredicted branch costs
    /// more than the comparisons.
    #[inline]
    fn slot(&self, ticks: u64) -> usize {
        let k = (u64::BITS - ticks.leading_zeros()) as usize;
        let m = (ticks.checked_shl(ticks.leading_zeros()).unwrap_or(0) >> 60) as usize & 7;
        // SAFETY: `k <= 64` and `m <= 7`: within the 65 × 8 groups. Each group's first slot is
        // at most `BUCKETS`, whose highest value (`u64::MAX`) no value is above: no step passes
        // it.
        unsafe {
            let mut slot = usize::from(*self.first.get_unchecked(k * 8 + m));
            slot += usize::from(ticks > *self.highest.get_unchecked(slot));
            slot + usize::from(ticks > *self.highest.get_unchecked(slot))
        }
    }
}

/// The lowest value whose highest set bit is bit `k - 1` and the 3 bits below it `m`, for
/// `group = 8 * k + m` (fewer bits below for small `k`).
fn group_lowest(group: usize) -> u64 {
    match (group / 8, (group % 8) as u64) {
        (0, _) => 0,
        (k @ 1..4, m) => ((8 + m) << (k - 1)) >> 3,
        (k, m) => (8 + m) << (k - 4),
    }
}

/// The slot of a duration of `ticks`: that of the nanoseconds they scale to.
fn tick_slot(ticks: u64) -> usize {
    slot(crate::clock::ticks_to_ns(ticks))
}

/// The slot of an observation: 0 for the zero bucket, else 1 + its bucket's place.
fn slot(ns: u64) -> usize {
    let seconds = ns as f64 * 1e-9;
    if seconds <= ZERO_THRESHOLD {
        return 0;
    }
    let index = bucket_index(seconds).clamp(FIRST_INDEX, FIRST_INDEX + BUCKETS as i32 - 1);
    (index - FIRST_INDEX) as usize + 1
}

/// The index of the bucket `(2^((i-1)/8), 2^(i/8)]` that holds `seconds` (> 0, finite), as
/// Prometheus' Go client computes it: from the exponent and the fraction of the float.
fn bucket_index(seconds: f64) -> i32 {
    let bits = seconds.to_bits();
    // seconds = fraction × 2^exponent, fraction in [0.5, 1).
    let exponent = ((bits >> 52) & 0x7ff) as i32 - 1022;
    let fraction = f64::from_bits(bits & ((1 << 52) - 1) | 1022 << 52);
    let within: i32 = FRACTIONS.iter().map(|&f| i32::from(f < fraction)).sum();
    within + (exponent - 1) * PER_POWER
}

/// A series' native buckets at one scrape.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct NativeReading {
    /// Observations at or below [`ZERO_THRESHOLD`].
    pub zero_count: u64,
    /// `(index, count)` of every non-empty bucket, in index order: bucket `i` holds the
    /// observations in `(2^((i-1)/8), 2^(i/8)]` seconds.
    pub buckets: Vec<(i32, u64)>,
}

impl NativeReading {
    /// The upper bound of bucket `index`, in seconds.
    pub fn upper_bound(index: i32) -> f64 {
        2f64.powf(f64::from(index) / f64::from(PER_POWER))
    }

    /// The spans (gap to the previous span's end, or first index; length) and the count deltas
    /// (each bucket's count less the previous one's) of Prometheus' protobuf format.
    pub fn spans_and_deltas(&self) -> (Vec<(i32, u32)>, Vec<i64>) {
        let mut spans: Vec<(i32, u32)> = Vec::new();
        let mut deltas = Vec::with_capacity(self.buckets.len());
        let (mut next, mut previous) = (None, 0i64);
        for &(index, count) in &self.buckets {
            match (next, spans.last_mut()) {
                (Some(expected), Some(span)) if expected == index => span.1 += 1,
                (Some(expected), _) => spans.push((index - expected, 1)),
                (None, _) => spans.push((index, 1)),
            }
            next = Some(index + 1);
            let count = i64::try_from(count).unwrap_or(i64::MAX);
            deltas.push(count - previous);
            previous = count;
        }
        (spans, deltas)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::snapshot::NativeSnapshot;

    #[test]
    fn buckets_are_upper_inclusive_powers_of_two_to_the_eighth() {
        assert_eq!(bucket_index(1.0), 0);
        assert_eq!(bucket_index(2.0), 8);
        assert_eq!(bucket_index(0.5), -8);
        assert_eq!(bucket_index(1.0001), 1);
        assert_eq!(bucket_index(1.09), 1);
        assert_eq!(bucket_index(1.091), 2);
        for index in -150..100 {
            let upper = NativeReading::upper_bound(index);
            assert_eq!(bucket_index(upper * (1.0 - 1e-12)), index, "{index}");
            assert_eq!(bucket_index(upper * (1.0 + 1e-12)), index + 1, "{index}");
        }
        assert_eq!(slot(0), 0);
        assert_eq!(slot(59), 0);
        assert_eq!(slot(61), 1);
        assert_eq!(slot(u64::MAX), BUCKETS);
    }

    #[test]
    fn two_steps_from_the_highest_bits_reach_every_slot() {
        let slots = Slots::get();
        let lowest: Vec<u64> = (0..65 * 8).map(group_lowest).collect();
        for (i, &low) in lowest.iter().enumerate() {
            // A group ends where the next higher one begins.
            let high = lowest[i..]
                .iter()
                .find(|&&next| next > low)
                .map_or(u64::MAX, |next| next - 1);
            let first = usize::from(slots.first[i]);
            assert!(tick_slot(high) <= first + 2, "group {i}: {low}..={high}");
            assert_eq!(slots.slot(high), tick_slot(high), "{high}");
            assert_eq!(slots.slot(low), tick_slot(low), "{low}");
        }
    }

    #[test]
    fn integer_slots_are_the_float_ones() {
        let slots = Slots::get();
        let values = crate::metrics::test_values::values(5000, slots.highest, 100_000);
        for ticks in values {
            assert_eq!(slots.slot(ticks), tick_slot(ticks), "{ticks}");
        }
    }

    #[test]
    fn quantiles_are_within_the_schema_error() {
        let native = NativeBuckets::new();
        for i in 0..1000u64 {
            // 1.000 µs to 1.999 µs, evenly.
            let shard = crate::metrics::shard::current();
            let ticks = crate::clock::ns_to_ticks(1000 + i);
            shard.add(native.cell(shard, ticks), 1);
        }
        let reading = native.read();
        assert_eq!(reading.zero_count, 0);
        assert_eq!(reading.buckets.iter().map(|b| b.1).sum::<u64>(), 1000);
        for (q, truth) in [(0.5, 1.5e-6), (0.9, 1.9e-6), (0.1, 1.1e-6)] {
            let read = NativeSnapshot::from(&reading).quantile(q).unwrap();
            assert!((read / truth - 1.0).abs() < 0.05, "q{q}: {read} vs {truth}");
        }
    }

    #[test]
    fn spans_skip_empty_buckets_and_deltas_chain_counts() {
        let reading = NativeReading {
            zero_count: 0,
            buckets: vec![(-3, 2), (-2, 5), (4, 1), (5, 1), (6, 4)],
        };
        let (spans, deltas) = reading.spans_and_deltas();
        assert_eq!(spans, [(-3, 2), (5, 3)]);
        assert_eq!(deltas, [2, 3, -4, 0, 3]);
    }
}
