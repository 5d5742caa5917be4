//! A gauge of things under way (requests, backend calls), sharded like the counters.

use super::family::Series;
use super::reading::{Extras, Kind, Value};
use super::shard::ShardedWords;

/// How many are under way: one add into the calling thread's shard to start, one
/// (wrapping) subtraction to finish, on whatever thread that happens.
pub(crate) struct InFlight(ShardedWords);

impl InFlight {
    pub fn new() -> Self {
        InFlight(ShardedWords::new(1))
    }

    #[inline]
    pub fn start(&self) {
        self.0.add(0, 1);
    }

    #[inline]
    pub fn finish(&self) {
        self.0.add(0, u64::MAX);
    }

    /// The count now. A scrape reads the shards one by one, so a start and its finish on two
    /// shards may be seen half: never below 0.
    pub fn get(&self) -> u64 {
        (self.0.sum(0) as i64).max(0) as u64
    }
}

impl Series for InFlight {
    const KIND: Kind = Kind::Gauge;

    fn read(&self, _: Extras, push: &mut dyn FnMut(Option<(&'static str, &'static str)>, Value)) {
        push(None, Value::Gauge(self.get() as f64));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_and_finishes_on_other_threads_balance() {
        let gauge = InFlight::new();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| (0..1000).for_each(|_| gauge.start()));
            }
        });
        assert_eq!(gauge.get(), 4000);
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| (0..1000).for_each(|_| gauge.finish()));
            }
        });
        assert_eq!(gauge.get(), 1000);
    }
}
