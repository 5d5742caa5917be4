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

use std::sync::atomic::{AtomicU64, Ordering::*};

use super::access::Access;
use crate::clock::Clock;

/// The union of a set of intervals, as they open and close.
pub(crate) struct Union {
    open: AtomicU64,
    covered: Covered,
}

impl Union {
    pub const fn new() -> Self {
        Union {
            open: AtomicU64::new(0),
            covered: Covered::new(),
        }
    }

    #[inline]
    pub fn reset(&self) {
        self.open.store(0, Relaxed);
        self.covered.reset();
    }

    /// An interval opens at `at`.
    #[inline]
    pub fn open(&self, at: Clock, access: Access) {
        if access.add(&self.open, 1) == 0 {
            self.covered.first_opened(at);
        }
    }

    /// An interval closes at `at`; the part of the covered stretch it ends that lies before
    /// `until` is added.
    #[inline]
    pub fn close_before(&self, at: Clock, until: u64, access: Access) {
        if access.sub(&self.open, 1) == 1 {
            self.covered.last_closed(at, until, access);
        }
    }

    /// The time covered so far by intervals that closed, in ticks.
    #[inline]
    pub fn ticks(&self) -> u64 {
        self.covered.ticks()
    }
}

/// A request's backend windows: its calls' union and the union of every window (calls, and
/// streams relaying an answer), their open counts in one word. A call is in both, so it opens
/// and closes both with one locked operation, not two.
pub(crate) struct Windows {
    /// Open calls in the low half, open windows (calls included) in the high half.
    open: AtomicU64,
    calls: Covered,
    all: Covered,
}

/// One call, in both halves of [`Windows::open`].
const CALL: u64 = 1 | 1 << 32;
/// One stream's window, in the high half only.
const STREAM: u64 = 1 << 32;

impl Windows {
    pub const fn new() -> Self {
        Windows {
            open: AtomicU64::new(0),
            calls: Covered::new(),
            all: Covered::new(),
        }
    }

    #[inline]
    pub fn reset(&self) {
        self.open.store(0, Relaxed);
        self.calls.reset();
        self.all.reset();
    }

    /// A call opens at `at`.
    #[inline]
    pub fn open_call(&self, at: Clock, access: Access) {
        self.opened(CALL, at, access);
    }

    /// A call closes at `at`.
    #[inline]
    pub fn close_call(&self, at: Clock, access: Access) {
        self.closed(CALL, at, access);
    }

    /// A stream starts relaying at `at`.
    #[inline]
    pub fn open_stream(&self, at: Clock, access: Access) {
        self.opened(STREAM, at, access);
    }

    /// A stream stops relaying at `at`.
    #[inline]
    pub fn close_stream(&self, at: Clock, access: Access) {
        self.closed(STREAM, at, access);
    }

    #[inline]
    fn opened(&self, one: u64, at: Clock, access: Access) {
        let before = access.add(&self.open, one);
        if one & 1 == 1 && before as u32 == 0 {
            self.calls.first_opened(at);
        }
        if before >> 32 == 0 {
            self.all.first_opened(at);
        }
    }

    #[inline]
    fn closed(&self, one: u64, at: Clock, access: Access) {
        let before = access.sub(&self.open, one);
        if one & 1 == 1 && before as u32 == 1 {
            self.calls.last_closed(at, u64::MAX, access);
        }
        if before >> 32 == 1 {
            self.all.last_closed(at, u64::MAX, access);
        }
    }

    /// The calls' time covered so far by calls that closed, in ticks.
    #[inline]
    pub fn calls_ticks(&self) -> u64 {
        self.calls.ticks()
    }

    /// The calls' and every window's time covered so far, counting those still open as
    /// closing `now`, in ticks.
    #[inline]
    pub fn ticks_at(&self, now: Clock) -> [u64; 2] {
        let open = self.open.load(Acquire);
        [
            self.calls.ticks_at(now, open as u32 > 0),
            self.all.ticks_at(now, open >> 32 > 0),
        ]
    }
}

/// What a union has covered: the stretch open since the first of its open intervals opened,
/// and the time of the stretches that closed.
struct Covered {
    since: AtomicU64,
    ticks: AtomicU64,
}

impl Covered {
    const fn new() -> Self {
        Covered {
            since: AtomicU64::new(0),
            ticks: AtomicU64::new(0),
        }
    }

    #[inline]
    fn reset(&self) {
        self.ticks.store(0, Relaxed);
    }

    /// The first of the open intervals opened at `at`.
    #[inline]
    fn first_opened(&self, at: Clock) {
        self.since.store(at.0, Relaxed);
    }

    /// The last of the open intervals closed at `at`: the stretch, up to `until`, is covered.
    #[inline]
    fn last_closed(&self, at: Clock, until: u64, access: Access) {
        let since = self.since.load(Relaxed);
        let end = at.0.min(until);
        if end > since {
            access.add(&self.ticks, Clock(since).ticks_until(Clock(end)));
        }
    }

    #[inline]
    fn ticks(&self) -> u64 {
        self.ticks.load(Relaxed)
    }

    /// The time covered so far, the stretch still `open` (if it is) counted as closing `now`.
    #[inline]
    fn ticks_at(&self, now: Clock, open: bool) -> u64 {
        let mut ticks = self.ticks();
        if open {
            ticks += Clock(self.since.load(Relaxed)).ticks_until(now);
        }
        ticks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Calls and streams overlapping, nested and apart: the calls' union counts only calls,
    /// every window's union each covered stretch once, and open windows count until `now`.
    #[test]
    fn windows_count_each_union_once() {
        for access in [Access::Shared, Access::Alone] {
            count_each_union_once(access);
        }
    }

    fn count_each_union_once(access: Access) {
        let windows = Windows::new();
        windows.open_call(Clock(100), access);
        windows.open_stream(Clock(105), access);
        windows.close_call(Clock(110), access); // calls: 100..110
        windows.open_call(Clock(115), access);
        windows.close_call(Clock(118), access); // calls: 115..118, inside the stream
        windows.close_stream(Clock(120), access); // every window: 100..120
        windows.open_call(Clock(130), access);
        windows.open_call(Clock(132), access);
        windows.close_call(Clock(135), access);
        assert_eq!(windows.calls_ticks(), 10 + 3);
        // The call opened at 130 is still open: counted until 140.
        assert_eq!(windows.ticks_at(Clock(140)), [13 + 10, 20 + 10]);
        windows.close_call(Clock(150), access);
        windows.open_stream(Clock(160), access);
        assert_eq!(windows.ticks_at(Clock(170)), [13 + 20, 20 + 20 + 10]);
        windows.close_stream(Clock(170), access);
        windows.reset();
        assert_eq!(windows.ticks_at(Clock(200)), [0, 0]);
    }
}
