//! Spreading concurrent writes over separate cache lines.
//!
//! One shared atomic per series makes every core that records into it fight for the same cache
//! line: on two cores the prometheus crate's histograms record *slower* from two threads than
//! from one. Each series here has a few shards, each on its own cache lines; a thread always
//! writes to the same shard, and a scrape adds the shards up. No observation is lost or counted
//! twice: each is one atomic add into exactly one shard.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// Shards per series: enough that the worker threads of a small machine rarely share one.
pub(crate) const SHARDS: usize = 8;

/// Words per cache line (128 bytes: two 64-byte lines, as adjacent-line prefetch pairs them).
pub(crate) const LINE_WORDS: usize = 16;

/// Sixteen atomic words alone on their cache lines.
#[repr(align(128))]
pub(crate) struct Line(pub [AtomicU64; LINE_WORDS]);

impl Line {
    pub fn new() -> Self {
        Line(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

/// `words` atomic words per shard, each shard on lines of its own.
pub(crate) struct ShardedWords {
    lines: Box<[Line]>,
    lines_per_shard: usize,
}

impl ShardedWords {
    pub fn new(words: usize) -> Self {
        let lines_per_shard = words.div_ceil(LINE_WORDS).max(1);
        ShardedWords {
            lines: (0..SHARDS * lines_per_shard).map(|_| Line::new()).collect(),
            lines_per_shard,
        }
    }

    /// Word `word` of shard `shard`.
    pub fn word(&self, shard: usize, word: usize) -> &AtomicU64 {
        &self.lines[shard * self.lines_per_shard + word / LINE_WORDS].0[word % LINE_WORDS]
    }

    /// Adds `n` to word `word` of the calling thread's shard.
    pub fn add(&self, word: usize, n: u64) {
        self.add_at(current(), word, n);
    }

    /// Adds `n` to word `word` of shard `shard`.
    pub fn add_at(&self, shard: usize, word: usize, n: u64) {
        self.word(shard, word).fetch_add(n, Relaxed);
    }

    /// Word `word` summed over the shards.
    pub fn sum(&self, word: usize) -> u64 {
        (0..SHARDS)
            .map(|shard| self.word(shard, word).load(Relaxed))
            .fold(0, u64::wrapping_add)
    }
}

/// The calling thread's shard: threads are dealt shards in turn when they first record.
pub(crate) fn current() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    SHARD.with(|shard| {
        let mut index = shard.get();
        if index == usize::MAX {
            index = NEXT.fetch_add(1, Relaxed) % SHARDS;
            shard.set(index);
        }
        index
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_every_shard_exactly() {
        let words = ShardedWords::new(20);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        words.add(19, 1);
                    }
                });
            }
        });
        assert_eq!(words.sum(19), 4000);
        assert_eq!(words.sum(0), 0);
    }
}
