//! A histogram of durations, sharded so that concurrent requests do not contend.

use std::time::Duration;

use super::family::Series;
use super::reading::{Kind, Value};
use super::shard::ShardedWords;

/// A histogram of durations with fixed buckets.
///
/// Recording is two relaxed atomic adds into the calling thread's shard: the bucket's count and
/// the sum (in microseconds, so that a busy series takes centuries, not days, to overflow). A
/// scrape adds the shards; an observation in flight may show in its bucket a moment before its
/// sum.
pub(crate) struct Histogram {
    bounds: &'static [f64],
    bounds_ns: Box<[u64]>,
    /// Per shard: one count per bucket (the last one is `+Inf`), then the sum.
    words: ShardedWords,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            bounds_ns: bounds.iter().map(|b| (b * 1e9).round() as u64).collect(),
            words: ShardedWords::new(bounds.len() + 2),
        }
    }

    /// Records one observation of `elapsed`.
    pub fn observe(&self, elapsed: Duration) {
        self.observe_ns(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Records one observation of `ns` nanoseconds.
    pub fn observe_ns(&self, ns: u64) {
        // Every bound compared at once, branch-free: no chain of dependent loads and jumps.
        let bucket: usize = self.bounds_ns.iter().map(|&le| usize::from(le < ns)).sum();
        self.words.add(bucket, 1);
        self.words
            .add(self.sum_word(), ns.saturating_add(500) / 1000);
    }

    fn sum_word(&self) -> usize {
        self.bounds.len() + 1
    }
}

impl Series for Histogram {
    const KIND: Kind = Kind::Histogram;

    fn read(&self, push: &mut dyn FnMut(Option<(&'static str, &'static str)>, Value)) {
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
        let sum = self.words.sum(self.sum_word()) as f64 / 1e6;
        push(
            None,
            Value::Histogram {
                buckets,
                count,
                sum,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_upper_inclusive_and_cumulative() {
        static BOUNDS: [f64; 3] = [0.1, 0.5, 1.0];
        let h = Histogram::new(&BOUNDS);
        for ms in [100, 101, 500, 2000] {
            h.observe(Duration::from_millis(ms));
        }
        let mut read = None;
        h.read(&mut |_, value| read = Some(value));
        let Some(Value::Histogram {
            buckets,
            count,
            sum,
        }) = read
        else {
            panic!("a histogram reads as one histogram value");
        };
        assert_eq!(buckets, [(0.1, 1), (0.5, 3), (1.0, 3)]);
        assert_eq!(count, 4);
        assert!((sum - 2.701).abs() < 1e-9);
    }
}
