//! `stage_percentage`: the time split of the last request that ended, as one consistent triple.
//!
//! Three separate gauges set one after the other let a scrape, or two requests ending at once,
//! mix the shares of different requests (seen in tests: sums far from 100). Here each shard holds
//! a whole triple behind a sequence lock, stamped with the time the request ended; a scrape reads
//! every shard's triple consistently and shows the newest.

use std::sync::atomic::{fence, AtomicU64, Ordering};

use super::family::Series;
use super::reading::{Extras, Kind, Value};
use super::shard::{self, Line, SHARDS};

/// The `stage` label values of `stage_percentage`, in the order of a request's phases.
pub const PHASES: [&str; 3] = [
    "frontend_processing",
    "backend_response",
    "stream_processing",
];

// Word layout of a shard's line: sequence, time stamp, then the three shares as f64 bits.
const SEQ: usize = 0;
const AT: usize = 1;
const SHARES: usize = 2;

/// The `stage_percentage` gauges of one endpoint: the three shares of the last completed request,
/// written together (a seqlock per shard), so a scrape never reads shares of two requests.
pub(crate) struct StageShares {
    shards: Box<[Line]>,
}

impl StageShares {
    pub fn new() -> Self {
        StageShares {
            shards: (0..SHARDS).map(|_| Line::new()).collect(),
        }
    }

    /// Sets the shares of a request that ended at `at` (a monotonic stamp, never 0).
    pub fn set(&self, at: u64, shares: [f64; 3]) {
        let shard = shard::current();
        let line = &self.shards[shard.index()].0;
        let mut seq = line[SEQ].load(Ordering::Relaxed);
        if shard.owned() {
            // The only writer: no other write can be under way.
            line[SEQ].store(seq + 1, Ordering::Relaxed);
        } else {
            // Take the shard's writer lock: an odd sequence means a write is under way.
            loop {
                if seq % 2 == 1 {
                    std::hint::spin_loop();
                    seq = line[SEQ].load(Ordering::Relaxed);
                    continue;
                }
                match line[SEQ].compare_exchange_weak(
                    seq,
                    seq + 1,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => break,
                    Err(now) => seq = now,
                }
            }
        }
        // The odd sequence must be visible before any share is: a reader that sees a new share
        // (its loads, then an Acquire fence) then also sees the write under way and retries.
        // Without this fence the relaxed stores below may become visible first (on ARM, say).
        fence(Ordering::Release);
        if at >= line[AT].load(Ordering::Relaxed) {
            line[AT].store(at, Ordering::Relaxed);
            for (word, share) in line[SHARES..SHARES + 3].iter().zip(shares) {
                word.store(share.to_bits(), Ordering::Relaxed);
            }
        }
        line[SEQ].store(seq + 2, Ordering::Release);
    }

    /// The newest triple over all shards, if any request ended.
    pub fn latest(&self) -> Option<[f64; 3]> {
        self.shards
            .iter()
            .filter_map(|line| read(&line.0))
            .max_by_key(|(at, _)| *at)
            .map(|(_, shares)| shares)
    }
}

/// One shard's `(stamp, shares)`, read consistently.
fn read(line: &[AtomicU64]) -> Option<(u64, [f64; 3])> {
    loop {
        let before = line[SEQ].load(Ordering::Acquire);
        if before % 2 == 1 {
            std::hint::spin_loop();
            continue;
        }
        let at = line[AT].load(Ordering::Relaxed);
        let shares: [f64; 3] =
            std::array::from_fn(|i| f64::from_bits(line[SHARES + i].load(Ordering::Relaxed)));
        fence(Ordering::Acquire);
        if line[SEQ].load(Ordering::Relaxed) == before {
            return (at != 0).then_some((at, shares));
        }
    }
}

impl Series for StageShares {
    const KIND: Kind = Kind::Gauge;

    fn read(&self, _: Extras, push: &mut dyn FnMut(Option<(&'static str, &'static str)>, Value)) {
        let Some(shares) = self.latest() else {
            return;
        };
        for (stage, share) in PHASES.iter().zip(shares) {
            push(Some(("stage", stage)), Value::Gauge(share));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_triple_wins_across_threads() {
        let split = StageShares::new();
        assert_eq!(split.latest(), None);
        split.set(10, [10.0, 60.0, 30.0]);
        std::thread::scope(|s| {
            s.spawn(|| split.set(5, [1.0, 1.0, 98.0]));
        });
        assert_eq!(split.latest(), Some([10.0, 60.0, 30.0]));
        std::thread::scope(|s| {
            s.spawn(|| split.set(20, [20.0, 20.0, 60.0]));
        });
        assert_eq!(split.latest(), Some([20.0, 20.0, 60.0]));
    }

    #[test]
    fn concurrent_writers_never_tear_a_triple() {
        let split = StageShares::new();
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let split = &split;
                s.spawn(move || {
                    for i in 1..2000u64 {
                        let a = (t * 10 + i % 7) as f64;
                        split.set(i * 4 + t, [a, a, 100.0 - 2.0 * a]);
                    }
                });
            }
            for _ in 0..2000 {
                if let Some([a, b, c]) = split.latest() {
                    assert_eq!(a, b);
                    assert_eq!(a + b + c, 100.0);
                }
            }
        });
    }
}
