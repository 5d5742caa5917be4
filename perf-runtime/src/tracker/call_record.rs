//! A request's backend calls, one record each: which provider and model, when it started and
//! answered, who reads its content, the usage it reported and whether it failed. Which call a
//! fact belongs to is [`facts`](super::facts)' to say.

use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering::*};

use super::access::Access;
use crate::chunk::Usage;
use crate::clock::Clock;
use crate::metrics::{BackendErrorKind, BackendSet};

/// Calls a request keeps a record of; further calls still record their own TTFB and errors,
/// but facts found outside them go to the recorded ones.
pub(crate) const MAX_CALLS: usize = 8;

/// A request's calls: a record each (the last record is taken over by every call past
/// [`MAX_CALLS`]), and which was started last and which answered last.
pub(crate) struct CallTable {
    /// Calls started so far (records used: at most [`MAX_CALLS`]).
    started: AtomicU64,
    /// The call started last and the call that answered last, as index + 1 (0: none).
    last_started: AtomicU32,
    last_answered: AtomicU32,
    records: [CallRecord; MAX_CALLS],
}

impl CallTable {
    pub const fn new() -> Self {
        CallTable {
            started: AtomicU64::new(0),
            last_started: AtomicU32::new(0),
            last_answered: AtomicU32::new(0),
            records: [const { CallRecord::empty() }; MAX_CALLS],
        }
    }

    /// No calls: a new request.
    #[inline]
    pub fn reset(&self) {
        self.started.store(0, Relaxed);
        self.last_started.store(0, Relaxed);
        self.last_answered.store(0, Relaxed);
    }

    /// A call of `set` starts at `start`: its record's index.
    #[inline]
    pub fn open(&self, set: &'static BackendSet, start: Clock, access: Access) -> u32 {
        let index = (access.add(&self.started, 1) as usize).min(MAX_CALLS - 1);
        self.records[index].reset(set, start);
        self.last_started.store(index as u32 + 1, Release);
        index as u32
    }

    /// Call `index` answered: the latest to.
    #[inline]
    pub fn answered(&self, index: u32) {
        self.last_answered.store(index + 1, Release);
    }

    /// The record of call `index`.
    #[inline]
    pub fn get(&self, index: u32) -> &CallRecord {
        &self.records[index as usize]
    }

    /// The call that answered last, if any.
    #[inline]
    pub fn last_answered(&self) -> Option<u32> {
        self.last_answered.load(Acquire).checked_sub(1)
    }

    /// The call started last, if any.
    #[inline]
    pub fn last_started(&self) -> Option<u32> {
        self.last_started.load(Acquire).checked_sub(1)
    }

    /// The records the request's calls used.
    pub fn used(&self) -> &[CallRecord] {
        let used = (self.started.load(Relaxed) as usize).min(MAX_CALLS);
        &self.records[..used]
    }
}

/// One backend call of a request.
pub(crate) struct CallRecord {
    set: AtomicPtr<BackendSet>,
    start: AtomicU64,
    /// When it answered (its first byte); 0 before.
    answered: AtomicU64,
    /// The latest end seen of it: its own (answered or failed), then the end of each stream
    /// read relaying its answer.
    finished: AtomicU64,
    /// The hand-off number of the stream that reads its content: the first classified stream
    /// that saw one of its chunks. Others that re-yield the same chunks (a stream wrapped
    /// twice, a peeked first chunk chained back) leave the facts to it.
    reader: AtomicU32,
    /// It has not ended: only an open call can be joined or be a thread's current call.
    open: AtomicBool,
    /// Its time to first token is recorded (once).
    ttft_seen: AtomicBool,
    /// A failure of it is counted (once).
    failed: AtomicBool,
    /// The usage it reported: the highest count of each type (a usage is set, not added).
    usage: [AtomicU64; 5],
    /// What its usage so far cost, as counted (an `f64`'s bits: never below 0, so ordered
    /// like the numbers).
    cost: AtomicU64,
}

impl CallRecord {
    pub const fn empty() -> Self {
        CallRecord {
            set: AtomicPtr::new(ptr::null_mut()),
            start: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            reader: AtomicU32::new(0),
            open: AtomicBool::new(false),
            ttft_seen: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            usage: [const { AtomicU64::new(0) }; 5],
            cost: AtomicU64::new(0),
        }
    }

    /// Makes the record a new call of `set`, started at `start`.
    #[inline]
    pub fn reset(&self, set: &'static BackendSet, start: Clock) {
        self.set.store(ptr::from_ref(set).cast_mut(), Relaxed);
        self.start.store(start.0, Relaxed);
        self.answered.store(0, Relaxed);
        self.finished.store(0, Relaxed);
        self.reader.store(0, Relaxed);
        self.open.store(true, Relaxed);
        self.ttft_seen.store(false, Relaxed);
        self.failed.store(false, Relaxed);
        for count in &self.usage {
            count.store(0, Relaxed);
        }
        self.cost.store(0, Relaxed);
    }

    /// Its provider and model's series.
    #[inline]
    pub fn set(&self) -> &'static BackendSet {
        // SAFETY: stored from a `&'static BackendSet` before the record's index is published.
        unsafe { &*self.set.load(Relaxed) }
    }

    /// When it started.
    #[inline]
    pub fn start(&self) -> Clock {
        Clock(self.start.load(Relaxed))
    }

    /// It ends at `at` (its answer's headers, or its failure).
    #[inline]
    pub fn close(&self, at: Clock, access: Access) {
        self.open.store(false, Relaxed);
        self.finish(at, access);
    }

    /// Something of it ended at `at`: the call itself, or a stream relaying its answer.
    #[inline]
    pub fn finish(&self, at: Clock, access: Access) {
        access.raise(&self.finished, at.0);
    }

    /// Its whole duration, from its start to the latest end seen of it, and its usage: what the
    /// request's end records of it (`None` for a record no call used).
    pub fn summary(&self) -> Option<(&'static BackendSet, u64, [u64; 5])> {
        let set = self.set.load(Relaxed);
        // SAFETY: null, or stored from a `&'static BackendSet`.
        let set = unsafe { set.as_ref() }?;
        let finished = self.finished.load(Relaxed);
        let lasted = self
            .start()
            .ticks_until(Clock(finished.max(self.start.load(Relaxed))));
        let usage = std::array::from_fn(|kind| self.usage[kind].load(Relaxed));
        Some((set, lasted, usage))
    }

    /// Whether it has not ended.
    #[inline]
    pub fn is_open(&self) -> bool {
        self.open.load(Relaxed)
    }

    /// Notes its answer at `at`, if it had none.
    #[inline]
    pub fn answer(&self, at: Clock, access: Access) {
        access.set_once(&self.answered, at.0);
    }

    /// When it answered, if it did.
    #[inline]
    pub fn answered(&self) -> Option<Clock> {
        match self.answered.load(Relaxed) {
            0 => None,
            at => Some(Clock(at)),
        }
    }

    /// Whether stream `number` reads its content: the first to ask does.
    #[inline]
    pub fn read_by(&self, number: u32) -> bool {
        match self.reader.compare_exchange(0, number, Relaxed, Relaxed) {
            Ok(_) => true,
            Err(reader) => reader == number,
        }
    }

    /// Whether its time to first token is still to be recorded (it is then, once).
    #[inline]
    pub fn first_token(&self) -> bool {
        !self.ttft_seen.swap(true, Relaxed)
    }

    /// Counts a failure of kind `kind`, once per call.
    pub fn fail(&self, kind: BackendErrorKind) {
        if !self.failed.swap(true, Relaxed) {
            self.set().error(kind);
        }
    }

    /// Sets the usage it reported: only what exceeds the counts seen so far is counted, so the
    /// same report seen twice, or a running total, counts each token once. Returns the tokens
    /// counted now, by type, and the call's usage so far.
    pub fn set_usage(&self, usage: Usage) -> ([u64; 5], Usage) {
        let mut added = [0; 5];
        let mut total = [0; 5];
        for (kind, n) in usage.counts().into_iter().enumerate() {
            let before = self.usage[kind].fetch_max(n, Relaxed);
            total[kind] = n.max(before);
            if n > before {
                added[kind] = n - before;
                self.set().tokens(kind, n - before);
            }
        }
        (added, Usage::from_counts(total))
    }

    /// Its usage so far costs `usd`: returns what was not counted yet (0 if it all was).
    pub fn cost_to(&self, usd: f64) -> f64 {
        if !(usd.is_finite() && usd > 0.0) {
            return 0.0;
        }
        let before = f64::from_bits(self.cost.fetch_max(usd.to_bits(), Relaxed));
        (usd - before).max(0.0)
    }
}
