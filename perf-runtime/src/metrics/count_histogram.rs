//! A histogram of counts (a call's tokens), with an exact sum: the duration histogram keeps its
//! values in clock ticks and its sum in seconds, which would make 12 tokens 12.00000006.

use super::family::Series;
use super::reading::{Extras, HistogramReading, Kind, Value};
use super::shard::ShardedWords;

/// Counts in buckets of upper bounds `bounds` (whole numbers, increasing), and their sum.
pub(crate) struct CountHistogram {
    bounds: &'static [f64],
    /// One count per bucket (the last one is `+Inf`), then the sum.
    words: ShardedWords,
}

impl CountHistogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        CountHistogram {
            bounds,
            words: ShardedWords::new(bounds.len() + 2),
        }
    }

    /// Records one observation of `n`.
    pub fn observe(&self, n: u64) {
        let bucket = self
            .bounds
            .iter()
            .position(|&bound| n as f64 <= bound)
            .unwrap_or(self.bounds.len());
        self.words.add(bucket, 1);
        self.words.add(self.bounds.len() + 1, n);
    }
}

impl Series for CountHistogram {
    const KIND: Kind = Kind::Histogram;

    fn read(&self, _: Extras, push: &mut dyn FnMut(Option<(&'static str, &'static str)>, Value)) {
        let mut cumulative = 0;
        let buckets = self
            .bounds
            .iter()
            .enumerate()
            .map(|(i, &bound)| {
                cumulative += self.words.sum(i);
                (bound, cumulative)
            })
            .collect();
        let count = cumulative + self.words.sum(self.bounds.len());
        push(
            None,
            Value::Histogram(HistogramReading {
                buckets,
                count,
                sum: self.words.sum(self.bounds.len() + 1) as f64,
                exemplars: Vec::new(),
                native: None,
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_bucketed_upper_inclusive_and_summed_exactly() {
        static BOUNDS: [f64; 3] = [1.0, 4.0, 16.0];
        let h = CountHistogram::new(&BOUNDS);
        for n in [1, 4, 5, 100, 12] {
            h.observe(n);
        }
        let mut read = None;
        h.read(Extras::default(), &mut |_, value| read = Some(value));
        let Some(Value::Histogram(reading)) = read else {
            panic!()
        };
        assert_eq!(reading.buckets, [(1.0, 1), (4.0, 2), (16.0, 4)]);
        assert_eq!((reading.count, reading.sum), (5, 122.0));
    }
}
