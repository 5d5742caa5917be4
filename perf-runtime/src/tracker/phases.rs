//! The time a request's intervals cover: each phase is the union of its intervals, so parallel
//! stages, calls or streams count the wall time they took once.
//!
//! * front end: the union of its stages' intervals before its first backend call started;
//! * backend: the union of its backend calls' windows (a call's start to its first byte);
//! * streaming: the union of every backend window (calls and streams relaying an answer, from
//!   their first poll to their end) less the backend's: streaming time no call overlapped;
//! * overhead (`gateway_overhead_seconds`): the request's duration less the union of every
//!   backend window.
//!
//! So front end + backend + streaming never exceed the request's duration, and the split and the
//! overhead read the same windows. A union is counted as its intervals open and close: when the
//! last open one closes, the time since the first of them opened is covered.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};

use crate::clock::Clock;

/// The union of a set of intervals, as they open and close.
pub(crate) struct Union {
    open: AtomicU32,
    since: AtomicU64,
    ticks: AtomicU64,
}

impl Union {
    pub const fn new() -> Self {
        Union {
            open: AtomicU32::new(0),
            since: AtomicU64::new(0),
            ticks: AtomicU64::new(0),
        }
    }

    #[inline]
    pub fn reset(&self) {
        self.open.store(0, Relaxed);
        self.ticks.store(0, Relaxed);
    }

    /// An interval opens at `at`.
    #[inline]
    pub fn open(&self, at: Clock) {
        if self.open.fetch_add(1, AcqRel) == 0 {
            self.since.store(at.0, Relaxed);
        }
    }

    /// An interval closes at `at`; the part of the covered stretch it ends that lies before
    /// `until` is added.
    #[inline]
    pub fn close_before(&self, at: Clock, until: u64) {
        if self.open.fetch_sub(1, AcqRel) == 1 {
            let since = self.since.load(Relaxed);
            let end = at.0.min(until);
            if end > since {
                self.ticks
                    .fetch_add(Clock(since).ticks_until(Clock(end)), Relaxed);
            }
        }
    }

    /// An interval closes at `at`.
    #[inline]
    pub fn close(&self, at: Clock) {
        self.close_before(at, u64::MAX);
    }

    /// The time covered so far by intervals that closed, in ticks.
    #[inline]
    pub fn ticks(&self) -> u64 {
        self.ticks.load(Relaxed)
    }

    /// The time covered so far, counting intervals still open as closing `now`.
    #[inline]
    pub fn ticks_at(&self, now: Clock) -> u64 {
        let mut ticks = self.ticks();
        if self.open.load(Acquire) > 0 {
            ticks += Clock(self.since.load(Relaxed)).ticks_until(now);
        }
        ticks
    }
}
