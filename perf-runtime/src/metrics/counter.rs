//! A counter, sharded like the histograms.

use prometheus::proto::{Counter as CounterProto, Metric, MetricType};

use super::family::Series;
use super::shard::ShardedWords;

/// A monotonic count: one relaxed add into the calling thread's shard.
pub(crate) struct Counter(ShardedWords);

impl Counter {
    pub fn new() -> Self {
        Counter(ShardedWords::new(1))
    }

    pub fn inc(&self) {
        self.0.add(0, 1);
    }
}

impl Series for Counter {
    const TYPE: MetricType = MetricType::COUNTER;

    fn collect_into(&self, metric: Metric, out: &mut Vec<Metric>) {
        let mut counter = CounterProto::default();
        counter.set_value(self.0.sum(0) as f64);
        let mut metric = metric;
        metric.set_counter(counter);
        out.push(metric);
    }
}
