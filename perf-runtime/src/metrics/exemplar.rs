//! Exemplars: each bucket of a histogram keeps the latest observation that landed in it, with
//! the trace id of its request, so that a slow bucket leads to a request.
//!
//! One slot per bucket per shard (a thread writes its own shard's slots, as it does its counts),
//! each a small seqlock: a write is one compare-and-swap on the slot's own cache line and four
//! stores; a scrape keeps, per bucket, the newest slot, waiting out a write under way. A write that
//! meets another mid-way (two threads dealt the same shard) gives way: an exemplar is a sample,
//! and the bucket keeps the other one.

use std::sync::atomic::{fence, Ordering::*};

use super::shard::{Shard, ShardedWords};
use crate::clock::Clock;
use crate::trace::TraceId;

/// Words of one slot: sequence, trace id (high, low), value in clock ticks, clock reading.
const WORDS: usize = 5;

/// The latest exemplar of each bucket of one histogram series.
pub(crate) struct Exemplars {
    slots: ShardedWords,
    buckets: usize,
}

impl Exemplars {
    /// Slots for `buckets` buckets (`+Inf` included).
    pub fn new(buckets: usize) -> Self {
        Exemplars {
            slots: ShardedWords::new(buckets * WORDS),
            buckets,
        }
    }

    /// Makes the observation of `ticks` at `at` by request `trace` the latest of `bucket`.
    #[inline]
    pub fn record(&self, shard: Shard, bucket: usize, trace: TraceId, ticks: u64, at: Clock) {
        if bucket >= self.buckets {
            return;
        }
        let words = self.slots.words(shard);
        // SAFETY: `new` made room for `buckets` slots of `WORDS` words per shard.
        let word = |i: usize| unsafe { words.at(bucket * WORDS + i) };
        let sequence = word(0);
        let before = sequence.load(Relaxed);
        if shard.owned() {
            // The only writer: no other write can be under way.
            sequence.store(before + 1, Relaxed);
        } else if before & 1 == 1
            || sequence
                .compare_exchange(before, before + 1, Relaxed, Relaxed)
                .is_err()
        {
            return;
        }
        // The odd sequence is visible before any word of the slot is: a reader that sees a new
        // word (its loads, then an Acquire fence) then sees the write under way and skips it.
        fence(Release);
        let id = trace.as_u128();
        word(1).store((id >> 64) as u64, Relaxed);
        word(2).store(id as u64, Relaxed);
        word(3).store(ticks, Relaxed);
        word(4).store(at.0, Relaxed);
        sequence.store(before + 2, Release);
    }

    /// The newest exemplar of `bucket` over the shards, if any.
    pub fn read(&self, bucket: usize, shards: usize) -> Option<Exemplar> {
        (0..shards)
            .filter_map(|shard| self.read_slot(shard, bucket))
            .max_by_key(|exemplar| exemplar.at)
    }

    /// The slot's exemplar. A slot being written is read again once the write is done (a few
    /// stores): skipping it would show an older exemplar of another shard, which Prometheus
    /// refuses as out of order.
    fn read_slot(&self, shard: usize, bucket: usize) -> Option<Exemplar> {
        let word = |i: usize| self.slots.word(shard, bucket * WORDS + i);
        for _ in 0..1000 {
            let before = word(0).load(Acquire);
            if before == 0 {
                return None;
            }
            if before & 1 == 0 {
                let id =
                    u128::from(word(1).load(Relaxed)) << 64 | u128::from(word(2).load(Relaxed));
                let ticks = word(3).load(Relaxed);
                let at = Clock(word(4).load(Relaxed));
                fence(Acquire);
                if word(0).load(Relaxed) == before {
                    return TraceId::from_u128(id).map(|trace| Exemplar { trace, ticks, at });
                }
            }
            std::hint::spin_loop();
        }
        None
    }
}

/// One exemplar: which request made the observation, its value, and when.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Exemplar {
    pub trace: TraceId,
    /// Its value, in clock ticks.
    pub ticks: u64,
    /// When it was observed; `WallAnchor::unix_seconds` gives the timestamp.
    pub at: Clock,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::shard::SHARDS;

    #[test]
    fn keeps_the_newest_exemplar_of_each_bucket_over_the_shards() {
        let exemplars = Exemplars::new(3);
        let id = |n| TraceId::from_u128(n).unwrap();
        let shard = Shard::SHARED;
        let mine = crate::metrics::shard::current();
        exemplars.record(mine, 1, id(1), 10, Clock(100));
        exemplars.record(shard, 1, id(2), 20, Clock(300));
        exemplars.record(mine, 1, id(3), 30, Clock(200));
        exemplars.record(mine, 2, id(u128::MAX), 40, Clock(50));
        assert_eq!(exemplars.read(0, SHARDS), None);
        let newest = exemplars.read(1, SHARDS).unwrap();
        assert_eq!(
            (newest.trace, newest.ticks, newest.at),
            (id(2), 20, Clock(300))
        );
        assert_eq!(exemplars.read(2, SHARDS).unwrap().trace, id(u128::MAX));
    }
}
