//! A counter, sharded like the histograms.

use super::family::Series;
use super::reading::{Extras, Kind, Value};
use super::shard::ShardedWords;

/// A monotonic count: one add into the calling thread's shard (see `shard.rs`).
pub(crate) struct Counter(ShardedWords);

impl Counter {
    pub fn new() -> Self {
        Counter(ShardedWords::new(1))
    }

    #[inline]
    pub fn inc(&self) {
        self.0.add(0, 1);
    }

    #[inline]
    pub fn inc_by(&self, n: u64) {
        self.0.add(0, n);
    }
}

impl Series for Counter {
    const KIND: Kind = Kind::Counter;

    fn read(&self, _: Extras, push: &mut dyn FnMut(Option<(&'static str, &'static str)>, Value)) {
        push(None, Value::Counter(self.0.sum(0) as f64));
    }
}
