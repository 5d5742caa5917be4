//! The state of one request, shared by everything that acts for it: the handler's tracker, the
//! streams it hands the request to, and the guards of its stages and backend calls.
//!
//! The request **ends once**, when its last owner lets go: the handler (its tracker) has
//! returned, been cancelled or panicked, **and** every stream handed off has ended or been
//! dropped. What each owner saw decides the outcome at that moment, in this order:
//!
//! 1. an `Err` returned by the handler, [`fail`](RequestState::fail) (from the handler or from a
//!    stream), or a panic: `error`;
//! 2. a handler dropped before returning (the client left before the answer began): `cancelled`;
//! 3. else the stream that took the request last among those that were read (or, if none was
//!    read, the last one): `completed` if it was read to its end, `cancelled` if it was dropped
//!    first (the client left). So a fallback's first try, dropped unread, does not decide over
//!    the stream that was returned and read;
//! 4. else `completed`.
//!
//! Phases come from the time intervals themselves: front-end time is the outermost stages'
//! time before the first backend call started (a stage around a backend call stops counting
//! when the call starts), backend time is the backend calls' time, streaming is the streams'
//! time less any backend call made while they were read (a provider called lazily).

use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering::*};

use super::pool;
use crate::clock::{ticks_to_ns, Clock};
use crate::metrics::{BackendErrorKind, BackendSet, EndpointMetrics};
use crate::stage::Stage;
use crate::trace::TraceId;

/// Stages whose time a request keeps for its `Server-Timing` header: those with the smallest
/// ids (the built-in ones, then the first declared).
pub(super) const TIMED_STAGES: usize = 8;

const FRONTEND_SEEN: u32 = 1;
const ANSWERED: u32 = 1 << 1;
const FAILED: u32 = 1 << 2;
/// A poll of the handler or of a stream unwound (even if the panic was caught later).
const PANICKED: u32 = 1 << 3;
/// The handler returned (its front-end time is then recorded).
const RETURNED: u32 = 1 << 4;
/// The handler was dropped before it returned.
const CANCELLED: u32 = 1 << 5;
/// The handler let go of the request (returned, cancelled or panicked): once only.
const HANDLER_GONE: u32 = 1 << 6;
const ENDED: u32 = 1 << 7;
/// Some stream or streaming guard was read: streaming is recorded at the end.
const STREAMED: u32 = 1 << 8;

/// No backend call started yet.
const NOT_STARTED: u64 = u64::MAX;

/// How the handler let go of its request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum HandlerExit {
    /// It returned; `false` for an `Err`.
    Returned(bool),
    /// Its future or tracker was dropped before it returned.
    Cancelled,
    /// It panicked.
    Panicked,
}

/// How a request ended: the `outcome` label of `requests_total`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Outcome {
    Completed = 0,
    Error = 1,
    Cancelled = 2,
}

/// One request's bookkeeping, in a pooled slot (see [`pool`]): made and reused without
/// allocating once the pool is warm. Every field is atomic: a stream may be read on another
/// thread while the handler still runs.
pub(crate) struct RequestState {
    endpoint: AtomicPtr<EndpointMetrics>,
    /// Handles that keep this slot out of the pool: trackers, streams, guards.
    refs: AtomicU32,
    /// Owners whose release may end the request: the handler, and each stream handed off.
    owners: AtomicU32,
    flags: AtomicU32,
    open_stages: AtomicU32,
    /// Hand-offs to streams so far: a stream's number orders it among them.
    handoffs: AtomicU32,
    /// The say of the stream that decides: `read << 40 | number << 1 | read to its end`; 0 for
    /// none.
    stream_vote: AtomicU64,
    frontend_ticks: AtomicU64,
    pub(super) backend_ticks: AtomicU64,
    streaming_ticks: AtomicU64,
    /// When the first backend call started ([`NOT_STARTED`] before).
    backend_started: AtomicU64,
    /// The last backend that answered: the labels of the streaming.
    backend: AtomicPtr<BackendSet>,
    /// The latest backend call, answered or not: what a reported error is counted against.
    last_call: AtomicPtr<BackendSet>,
    /// When the latest backend call started: the start of its time to first token.
    pub(super) last_call_start: AtomicU64,
    /// When the request began (its handler's start).
    started: AtomicU64,
    /// Backend windows (a backend call, or a stream relaying an answer) open now, since when
    /// at least one has been open, and the time covered by them so far: their union.
    pub(super) windows_open: AtomicU32,
    pub(super) windows_since: AtomicU64,
    pub(super) windows_ticks: AtomicU64,
    /// Time per stage, by stage id, for `Server-Timing`.
    pub(super) stage_ticks: [AtomicU64; TIMED_STAGES],
    /// The trace id, high and low halves: the exemplar of every bucket the request lands in.
    trace: [AtomicU64; 2],
}

impl RequestState {
    pub(super) fn empty() -> Self {
        RequestState {
            endpoint: AtomicPtr::new(ptr::null_mut()),
            refs: AtomicU32::new(0),
            owners: AtomicU32::new(0),
            flags: AtomicU32::new(0),
            open_stages: AtomicU32::new(0),
            handoffs: AtomicU32::new(0),
            stream_vote: AtomicU64::new(0),
            frontend_ticks: AtomicU64::new(0),
            backend_ticks: AtomicU64::new(0),
            streaming_ticks: AtomicU64::new(0),
            backend_started: AtomicU64::new(NOT_STARTED),
            backend: AtomicPtr::new(ptr::null_mut()),
            last_call: AtomicPtr::new(ptr::null_mut()),
            last_call_start: AtomicU64::new(0),
            started: AtomicU64::new(0),
            windows_open: AtomicU32::new(0),
            windows_since: AtomicU64::new(0),
            windows_ticks: AtomicU64::new(0),
            stage_ticks: Default::default(),
            trace: Default::default(),
        }
    }

    /// Makes a pooled slot a new request of `endpoint`, owned by its handler.
    #[inline]
    fn reset(&self, endpoint: &'static EndpointMetrics) {
        self.endpoint
            .store(ptr::from_ref(endpoint).cast_mut(), Relaxed);
        self.refs.store(1, Relaxed);
        self.owners.store(1, Relaxed);
        self.flags.store(0, Relaxed);
        self.open_stages.store(0, Relaxed);
        self.handoffs.store(0, Relaxed);
        self.stream_vote.store(0, Relaxed);
        self.frontend_ticks.store(0, Relaxed);
        self.backend_ticks.store(0, Relaxed);
        self.streaming_ticks.store(0, Relaxed);
        self.backend_started.store(NOT_STARTED, Relaxed);
        self.backend.store(ptr::null_mut(), Relaxed);
        self.last_call.store(ptr::null_mut(), Relaxed);
        self.last_call_start.store(0, Relaxed);
        self.windows_open.store(0, Relaxed);
        self.windows_ticks.store(0, Relaxed);
        for stage in &self.stage_ticks {
            stage.store(0, Relaxed);
        }
        self.set_trace_id(TraceId::random());
        let start = Clock::now();
        self.started.store(start.0, Relaxed);
        // An endpoint's first statement, if timed, begins here (one reading for both).
        super::guards::closed_at(start);
        endpoint.in_flight.start();
    }

    #[inline]
    pub fn endpoint(&self) -> &'static EndpointMetrics {
        // SAFETY: set from a `&'static EndpointMetrics` before the slot is handed out.
        unsafe { &*self.endpoint.load(Relaxed) }
    }

    /// When the request began.
    #[cfg(test)]
    pub fn started(&self) -> Clock {
        Clock(self.started.load(Relaxed))
    }

    /// The request's trace id.
    #[inline]
    pub fn trace_id(&self) -> TraceId {
        let id =
            u128::from(self.trace[0].load(Relaxed)) << 64 | u128::from(self.trace[1].load(Relaxed));
        TraceId::from_u128(id).unwrap_or_else(TraceId::random)
    }

    /// Sets the request's trace id (from the client's `traceparent`).
    #[inline]
    pub fn set_trace_id(&self, id: TraceId) {
        let id = id.as_u128();
        self.trace[0].store((id >> 64) as u64, Relaxed);
        self.trace[1].store(id as u64, Relaxed);
    }

    #[inline]
    fn flags(&self) -> u32 {
        self.flags.load(Acquire)
    }

    /// Marks the request failed: it ends as `error`.
    #[inline]
    pub fn fail(&self) {
        self.flags.fetch_or(FAILED, Relaxed);
    }

    /// Notes that a poll for this request panicked.
    #[inline]
    pub fn panicked(&self) {
        self.flags.fetch_or(PANICKED, Relaxed);
    }

    /// Whether a poll for this request panicked, now or earlier.
    #[inline]
    pub fn is_panicking(&self) -> bool {
        std::thread::panicking() || self.flags() & PANICKED != 0
    }

    // Stages and backend calls.

    /// Opens a stage at `start`; tells whether it counts as front-end time (it is outermost and
    /// no backend call has started).
    #[inline]
    pub fn open_stage(&self) -> bool {
        let outermost = self.open_stages.fetch_add(1, Relaxed) == 0;
        outermost && self.backend_started.load(Relaxed) == NOT_STARTED
    }

    /// Closes a stage that ran `ticks` from `start` to `end`: its front-end share stops where the
    /// first backend call started.
    #[inline]
    pub fn close_stage(&self, stage: Stage, ticks: u64, start: Clock, end: Clock, frontend: bool) {
        self.open_stages.fetch_sub(1, Relaxed);
        if let Some(time) = self.stage_ticks.get(stage.index()) {
            time.fetch_add(ticks, Relaxed);
        }
        if frontend {
            let backend_started = self.backend_started.load(Relaxed);
            let share = if end.0 <= backend_started {
                ticks
            } else {
                start.ticks_until(Clock(backend_started))
            };
            self.frontend_ticks.fetch_add(share, Relaxed);
            if self.flags.load(Relaxed) & FRONTEND_SEEN == 0 {
                self.flags.fetch_or(FRONTEND_SEEN, Relaxed);
            }
        }
    }

    #[inline]
    pub fn open_backend(&self, start: Clock, call: &'static BackendSet) {
        self.backend_started.fetch_min(start.0, Relaxed);
        self.last_call
            .store(ptr::from_ref(call).cast_mut(), Relaxed);
        self.last_call_start.store(start.0, Relaxed);
        self.open_window(start);
    }

    #[inline]
    pub fn close_backend(&self, ticks: u64, answered: Option<&'static BackendSet>) {
        self.backend_ticks.fetch_add(ticks, Relaxed);
        if let Some(set) = answered {
            self.backend.store(ptr::from_ref(set).cast_mut(), Relaxed);
            self.flags.fetch_or(ANSWERED, Relaxed);
        }
    }

    /// Counts a failure of the latest backend call in `backend_errors_total`; nothing if the
    /// request made none.
    pub fn backend_error(&self, kind: BackendErrorKind) {
        if let Some(call) = self.last_call() {
            call.error(kind);
        }
    }

    /// The last backend that answered.
    #[inline]
    pub fn answered(&self) -> Option<&'static BackendSet> {
        set_in(&self.backend)
    }

    /// The latest backend call, answered or not.
    pub fn last_call(&self) -> Option<&'static BackendSet> {
        set_in(&self.last_call)
    }

    /// Backend time so far: a stream subtracts what was spent during its reading.
    #[inline]
    pub fn backend_ticks(&self) -> u64 {
        self.backend_ticks.load(Relaxed)
    }

    /// Adds streaming time; it is recorded once, at the request's end. Returns `false` if the
    /// request has ended already (the caller records it then).
    #[inline]
    pub fn add_streaming(&self, ticks: u64) -> bool {
        self.streaming_ticks.fetch_add(ticks, Relaxed);
        self.flags.fetch_or(STREAMED, AcqRel) & ENDED == 0
    }

    /// Records `ticks` of streaming, ended at `at`, with the request's `trace`:
    /// `streaming_duration_seconds` (labelled with the last backend that answered, else
    /// `unknown`) and the `stream_processing` stage.
    pub fn observe_streaming(&self, ticks: u64, trace: TraceId, at: Clock) {
        let trace = Some(trace);
        self.streaming_set()
            .streaming
            .observe_traced(ticks, trace, at);
        self.endpoint()
            .stage(Stage::STREAM_PROCESSING)
            .observe_traced(ticks, trace, at);
    }

    // Owners.

    /// A stream takes a share of the request; returns its hand-off number.
    #[inline]
    pub fn hand_off(&self) -> u32 {
        self.owners.fetch_add(1, Relaxed);
        self.handoffs.fetch_add(1, Relaxed) + 1
    }

    /// The handler lets go, once; the request ends if no stream holds it.
    #[inline]
    pub fn release_handler(&self, exit: HandlerExit) {
        let flag = match exit {
            HandlerExit::Returned(true) => RETURNED,
            HandlerExit::Returned(false) => RETURNED | FAILED,
            HandlerExit::Cancelled => CANCELLED,
            HandlerExit::Panicked => PANICKED,
        };
        if self.flags.fetch_or(HANDLER_GONE | flag, AcqRel) & HANDLER_GONE == 0 {
            self.release_owner(None);
        }
    }

    /// Whether the handler has let go.
    #[inline]
    pub fn handler_gone(&self) -> bool {
        self.flags() & HANDLER_GONE != 0
    }

    /// Stream number `number` lets go, saying whether it was read to its end (`None`: no say,
    /// it was only read inside another stream of the request). A stream that was read outranks
    /// any that was not; among equals, the later hand-off outranks the earlier. `at`: a reading
    /// just taken, which the request's end may use as its own.
    #[inline]
    pub fn release_stream(
        &self,
        number: u32,
        read: bool,
        to_the_end: Option<bool>,
        at: Option<Clock>,
    ) {
        if let Some(to_the_end) = to_the_end {
            let say = u64::from(read) << 40 | u64::from(number) << 1 | u64::from(to_the_end);
            self.stream_vote.fetch_max(say, Relaxed);
        }
        self.release_owner(at);
    }

    /// An owner lets go; the request ends (at `at`, a reading just taken, else now) if it was
    /// the last.
    #[inline]
    fn release_owner(&self, at: Option<Clock>) {
        if self.owners.fetch_sub(1, AcqRel) == 1 {
            self.end(at.unwrap_or_else(Clock::now));
        }
    }

    /// The end of the request at `now`, exactly once: what the outcome allows, then
    /// `requests_total`.
    fn end(&self, now: Clock) {
        let flags = self.flags.fetch_or(ENDED, AcqRel);
        let vote = self.stream_vote.load(Relaxed);
        let outcome = if flags & (FAILED | PANICKED) != 0 {
            Outcome::Error
        } else if flags & CANCELLED != 0 || (vote != 0 && vote & 1 == 0) {
            Outcome::Cancelled
        } else {
            Outcome::Completed
        };
        let endpoint = self.endpoint();
        let id = self.trace_id();
        let trace = Some(id);
        let frontend = self.frontend_ticks.load(Relaxed);
        if flags & (RETURNED | FRONTEND_SEEN) == RETURNED | FRONTEND_SEEN {
            endpoint.frontend.observe_traced(frontend, trace, now);
        }
        let streaming = self.streaming_ticks.load(Relaxed);
        if flags & STREAMED != 0 {
            self.observe_streaming(streaming, id, now);
        }
        let lasted = Clock(self.started.load(Relaxed)).ticks_until(now);
        endpoint
            .duration(outcome as usize)
            .observe_traced(lasted, trace, now);
        if flags & RETURNED != 0 {
            let outside = lasted.saturating_sub(self.windows_ticks.load(Relaxed));
            endpoint.overhead.observe_ticks(outside);
        }
        if outcome == Outcome::Completed && flags & ANSWERED != 0 {
            let phases = [frontend, self.backend_ticks.load(Relaxed), streaming];
            let total: u64 = phases.iter().sum();
            if total > 0 {
                let shares = phases.map(|phase| phase as f64 * 100.0 / total as f64);
                endpoint.split().set(now.0, shares);
            }
        }
        // Counted last: whoever sees the request counted sees all it recorded.
        endpoint.outcomes[outcome as usize].inc();
        endpoint.in_flight.finish();
    }

    /// Whether the request has ended: what a late guard adds no longer counts.
    #[inline]
    pub fn ended(&self) -> bool {
        self.flags() & ENDED != 0
    }

    /// The front-end, backend and streaming time so far, in nanoseconds.
    pub fn phases(&self) -> [u64; 3] {
        [
            &self.frontend_ticks,
            &self.backend_ticks,
            &self.streaming_ticks,
        ]
        .map(|phase| ticks_to_ns(phase.load(Relaxed)))
    }
}

/// The backend set a pointer of the state holds, if any.
#[inline]
fn set_in(pointer: &AtomicPtr<BackendSet>) -> Option<&'static BackendSet> {
    // SAFETY: the state's backend pointers are null or stored from a `&'static BackendSet`.
    unsafe { pointer.load(Relaxed).as_ref() }
}

/// A counted reference to a request's state: the slot goes back to the pool when the last one
/// is dropped.
pub(crate) struct StateRef(&'static RequestState);

impl StateRef {
    /// A new request of `endpoint`, owned by its handler.
    #[inline]
    pub fn new(endpoint: &'static EndpointMetrics) -> Self {
        let slot = pool::take();
        slot.reset(endpoint);
        StateRef(slot)
    }
}

impl StateRef {
    /// The handler hands its request to what `make` builds (a stream, with a counted reference)
    /// and lets go of it: the request ends when that lets go.
    #[inline]
    pub fn hand_over<T>(&self, make: impl FnOnce(StateRef) -> T) -> T {
        let taker = make(self.clone());
        self.release_handler(HandlerExit::Returned(true));
        taker
    }
}

impl std::ops::Deref for StateRef {
    type Target = RequestState;

    #[inline]
    fn deref(&self) -> &RequestState {
        self.0
    }
}

impl Clone for StateRef {
    #[inline]
    fn clone(&self) -> Self {
        self.0.refs.fetch_add(1, Relaxed);
        StateRef(self.0)
    }
}

impl Drop for StateRef {
    #[inline]
    fn drop(&mut self) {
        if self.0.refs.fetch_sub(1, Release) == 1 {
            std::sync::atomic::fence(Acquire);
            pool::give_back(self.0);
        }
    }
}

impl RequestState {
    /// A new counted reference to this state, which the caller holds alive.
    #[inline]
    pub fn counted(&'static self) -> StateRef {
        self.refs.fetch_add(1, Relaxed);
        StateRef(self)
    }
}
