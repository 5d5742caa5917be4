//! A histogram of durations, sharded so that concurrent requests do not contend.

use std::time::Duration;

use prometheus::proto::{Bucket, Histogram as HistogramProto, Metric, MetricType};

use super::family::Series;
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
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
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
    const TYPE: MetricType = MetricType::HISTOGRAM;

    fn collect_into(&self, metric: Metric, out: &mut Vec<Metric>) {
        let mut cumulative = 0;
        let buckets = self
            .bounds
            .iter()
            .enumerate()
            .map(|(i, &le)| {
                cumulative += self.words.sum(i);
                let mut bucket = Bucket::default();
                bucket.set_upper_bound(le);
                bucket.set_cumulative_count(cumulative);
                bucket
            })
            .collect();
        let count = cumulative + self.words.sum(self.bounds.len());
        let mut histogram = HistogramProto::default();
        histogram.set_bucket(buckets);
        histogram.set_sample_count(count);
        histogram.set_sample_sum(self.words.sum(self.sum_word()) as f64 / 1e6);
        let mut metric = metric;
        metric.set_histogram(histogram);
        out.push(metric);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collected(h: &Histogram) -> HistogramProto {
        let mut out = Vec::new();
        h.collect_into(Metric::default(), &mut out);
        out.pop().unwrap().get_histogram().clone()
    }

    #[test]
    fn buckets_are_upper_inclusive_and_cumulative() {
        static BOUNDS: [f64; 3] = [0.1, 0.5, 1.0];
        let h = Histogram::new(&BOUNDS);
        for ms in [100, 101, 500, 2000] {
            h.observe(Duration::from_millis(ms));
        }
        let p = collected(&h);
        let counts: Vec<u64> = p
            .get_bucket()
            .iter()
            .map(|b| b.cumulative_count())
            .collect();
        assert_eq!(counts, [1, 3, 3]);
        assert_eq!(p.get_sample_count(), 4);
        assert!((p.get_sample_sum() - 2.701).abs() < 1e-9);
    }
}
