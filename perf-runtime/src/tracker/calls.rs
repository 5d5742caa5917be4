//! A request's backend calls, one record each: which provider and model, when it started and
//! answered, who reads its content, the usage it reported and whether it failed.
//!
//! A fact (an error kind, a usage report, a chunk) belongs to a call, not to "the latest": the
//! call whose future is being polled ([`CURRENT_CALL`], set by each poll of a `#[perf_backend]`
//! call and of a stream relaying its answer), else, for a fact found after the call (a usage in
//! a JSON body, an error found once the headers came), the call that answered last (errors: the
//! call started last).

use std::cell::Cell;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering::*};

use super::chunks::Usage;
use super::state::RequestState;
use crate::clock::Clock;
use crate::metrics::{BackendErrorKind, BackendSet};

/// Calls a request keeps a record of; further calls still record their own TTFB and errors,
/// but facts found outside them go to the recorded ones.
pub(crate) const MAX_CALLS: usize = 8;

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
    pub fn close(&self, at: Clock) {
        self.open.store(false, Relaxed);
        self.finish(at);
    }

    /// Something of it ended at `at`: the call itself, or a stream relaying its answer.
    #[inline]
    pub fn finish(&self, at: Clock) {
        self.finished.fetch_max(at.0, Relaxed);
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
    pub fn answer(&self, at: Clock) {
        let _ = self.answered.compare_exchange(0, at.0, Relaxed, Relaxed);
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

/// A call of a request, as the thread that acts for it knows it: the state, the request's
/// generation (a pooled state reused by a later request is not this one), the record's index.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct CallRef {
    /// The state's address: kept as a number, so that a guard holding a `CallRef` stays `Send`.
    state: usize,
    generation: u32,
    index: u32,
    relay: bool,
}

impl CallRef {
    pub const NONE: CallRef = CallRef {
        state: 0,
        generation: 0,
        index: 0,
        relay: false,
    };

    #[inline]
    pub fn new(state: &RequestState, index: u32) -> Self {
        CallRef {
            state: ptr::from_ref(state) as usize,
            generation: state.generation(),
            index,
            relay: false,
        }
    }

    /// The call a stream relays: current while the stream is polled, though it has ended.
    #[inline]
    pub fn relayed(state: &RequestState, index: u32) -> Self {
        CallRef {
            relay: true,
            ..CallRef::new(state, index)
        }
    }

    /// Its index, if it is a call of `state`'s current request.
    #[inline]
    fn index_in(self, state: &RequestState) -> Option<u32> {
        (self.state == ptr::from_ref(state) as usize && self.generation == state.generation())
            .then_some(self.index)
    }

    /// The call a fact found now belongs to, if this one of `state`'s request: the call being
    /// made, or the one a stream being read relays. (A call a guard noted on a thread and ended
    /// on another is not current any more.)
    #[inline]
    pub fn of(self, state: &RequestState) -> Option<u32> {
        self.index_in(state)
            .filter(|&index| self.relay || state.call(index).is_open())
    }

    /// The call a backend call opened now joins, if this is one of `state`'s request being made
    /// (not one a stream relays: a call made as a stream is read is a call of its own).
    #[inline]
    pub fn joined_by(self, state: &RequestState) -> Option<u32> {
        self.index_in(state)
            .filter(|&index| !self.relay && state.call(index).is_open())
    }
}

thread_local! {
    /// The call whose future (or the stream relaying whose answer) is being polled on this
    /// thread, or a backend statement's call while it is evaluated.
    static CURRENT_CALL: Cell<CallRef> = const { Cell::new(CallRef::NONE) };
}

/// The call current on this thread.
#[inline]
pub(crate) fn current_call() -> CallRef {
    CURRENT_CALL.try_with(Cell::get).unwrap_or(CallRef::NONE)
}

/// Makes `call` current until the returned guard drops, which restores the one before.
#[inline]
pub(crate) fn enter_call(call: CallRef) -> EnteredCall {
    EnteredCall(
        CURRENT_CALL
            .try_with(|c| c.replace(call))
            .unwrap_or(CallRef::NONE),
    )
}

/// Restores the call current before [`enter_call`].
pub(crate) struct EnteredCall(CallRef);

impl EnteredCall {
    /// Leaves the entered call current: returns the one before, for the caller to restore.
    #[inline]
    pub fn keep(self) -> CallRef {
        let before = self.0;
        std::mem::forget(self);
        before
    }
}

impl Drop for EnteredCall {
    #[inline]
    fn drop(&mut self) {
        let _ = CURRENT_CALL.try_with(|c| c.set(self.0));
    }
}
