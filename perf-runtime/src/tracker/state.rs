//! The state of one request, shared by everything that acts for it: the handler's tracker (or
//! the layer's exchange), the streams it hands the request to, and the guards of its stages and
//! backend calls.
//!
//! The request **ends once**, when its last owner lets go. Its owners are the handler (its
//! tracker, or [`PerfLayer`](crate::PerfLayer)'s future until the response is made) and what
//! the answer is handed to: the layer's response body, or the streams a `#[perf_endpoint]`
//! handler hands the request to. What each owner saw then decides its outcome by [the outcome
//! rule](crate::metrics#what-a-request-is), which `RequestState::outcome` (`end.rs`) is in code.
//!
//! Its phases are unions of intervals ([`phases`](super::phases)); each backend call is one
//! record ([`call_record`](super::call_record)).

use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering::*};

use super::access::Access;
use super::call_record::{CallRecord, CallTable};
use super::phases::{Union, Windows};
use super::spend::RequestSpend;
use crate::clock::Clock;
use crate::metrics::{BackendSet, EndpointMetrics, Histogram};
use crate::stage::Stage;
use crate::trace::TraceId;

/// Stages whose time a request keeps for its `Server-Timing` header: those with the smallest
/// ids (the built-in ones, then the first declared).
pub(super) const TIMED_STAGES: usize = 8;

pub(super) const FRONTEND_SEEN: u32 = 1;
pub(super) const ANSWERED: u32 = 1 << 1;
pub(super) const FAILED: u32 = 1 << 2;
/// A poll of the handler or of a stream unwound (even if the panic was caught later).
pub(super) const PANICKED: u32 = 1 << 3;
/// The handler returned (its front-end time is then recorded).
pub(super) const RETURNED: u32 = 1 << 4;
/// The handler (or, under the layer, the response body) was dropped before its end.
pub(super) const CANCELLED: u32 = 1 << 5;
/// The handler let go of the request (returned, cancelled or panicked): once only.
pub(super) const HANDLER_GONE: u32 = 1 << 6;
pub(super) const ENDED: u32 = 1 << 7;
/// Some stream or streaming guard was read: streaming is recorded at the end.
pub(super) const STREAMED: u32 = 1 << 8;
/// The request is an HTTP exchange of the layer: its response body decides the outcome.
pub(super) const EXCHANGE: u32 = 1 << 9;
/// A `#[perf_endpoint]` handler joined the layer's exchange: its `Err` fails it.
pub(super) const HANDLER_JOINED: u32 = 1 << 10;

/// One handle, in [`RequestState::holds`]' low 21 bits.
pub(super) const REF: u64 = 1;
/// One owner, in the next 21 bits.
pub(super) const OWNER: u64 = 1 << 21;
/// One hand-off, in the high 22 bits (they only number hand-offs: a wrap harms nothing).
pub(super) const HANDOFF: u64 = 1 << 42;
/// The bits of one count of [`REF`] or [`OWNER`].
pub(super) const COUNT: u64 = OWNER - 1;
/// The bits of both counts.
pub(super) const HELD: u64 = COUNT | (COUNT * OWNER);

/// No backend call started yet.
pub(super) const NOT_STARTED: u64 = u64::MAX;

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
    pub(super) endpoint: AtomicPtr<EndpointMetrics>,
    /// Who holds the request, in one word ([`REF`], [`OWNER`], [`HANDOFF`]): handles that keep
    /// this slot out of the pool (trackers, streams, guards); owners whose release may end the
    /// request (the handler, and what it handed off: each holds a handle too); hand-offs so
    /// far, which number them. A hand-off adds to all three with one locked operation, or with
    /// a load and a store where the caller holds the request alone (`access.rs`).
    pub(super) holds: AtomicU64,
    pub(super) flags: AtomicU32,
    /// Which request of this slot it is: a call noted on a thread names its request by it.
    pub(super) generation: AtomicU32,
    /// The verdict of the stream that answers the client, the last-handed of those read after
    /// the handler let go: `number << 1 | read to its end`; 0 for none.
    pub(super) answering_stream: AtomicU64,
    /// The front-end stages' union, cut where the first backend call started.
    pub(super) frontend: Union,
    /// The backend calls' windows, and every backend window: calls, and streams relaying an
    /// answer.
    pub(super) windows: Windows,
    /// When the first backend call started ([`NOT_STARTED`] before).
    pub(super) backend_started: AtomicU64,
    /// The last backend that answered: the labels of the streaming.
    pub(super) backend: AtomicPtr<BackendSet>,
    /// Its backend calls, one record each.
    pub(super) calls: CallTable,
    /// When the request began.
    pub(super) started: AtomicU64,
    /// When a stream first relayed content (0 before): its client's first token.
    pub(super) first_content: AtomicU64,
    /// The layer's HTTP exchange: the `http_request_duration_seconds` series of its method and
    /// status; null before its response.
    pub(super) http: AtomicPtr<Histogram>,
    /// Time per stage, by stage id, for `Server-Timing`.
    pub(super) stage_ticks: [AtomicU64; TIMED_STAGES],
    /// The trace id, high and low halves: the exemplar of every bucket the request lands in.
    pub(super) trace: [AtomicU64; 2],
    /// Its tenant, and what its calls spent: see [`spend`](super::spend).
    pub(super) spend: RequestSpend,
    /// The next free slot, while this one is free on a thread's list ([`pool`](super::pool)).
    pub(super) next_free: AtomicPtr<RequestState>,
}

impl RequestState {
    pub(super) fn empty() -> Self {
        RequestState {
            endpoint: AtomicPtr::new(ptr::null_mut()),
            holds: AtomicU64::new(0),
            flags: AtomicU32::new(0),
            generation: AtomicU32::new(0),
            answering_stream: AtomicU64::new(0),
            frontend: Union::new(),
            windows: Windows::new(),
            backend_started: AtomicU64::new(NOT_STARTED),
            backend: AtomicPtr::new(ptr::null_mut()),
            calls: CallTable::new(),
            started: AtomicU64::new(0),
            first_content: AtomicU64::new(0),
            http: AtomicPtr::new(ptr::null_mut()),
            stage_ticks: Default::default(),
            trace: Default::default(),
            spend: RequestSpend::new(),
            next_free: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Makes a pooled slot a new request of `endpoint`, owned by its handler; the layer's HTTP
    /// exchange if `exchange` (its response body then decides how it ends).
    #[inline]
    pub(super) fn reset(&self, endpoint: &'static EndpointMetrics, exchange: bool) {
        let flags = if exchange { EXCHANGE } else { 0 };
        self.endpoint
            .store(ptr::from_ref(endpoint).cast_mut(), Relaxed);
        self.holds.store(REF | OWNER, Relaxed);
        self.flags.store(flags, Relaxed);
        // A load and a store: the slot is this thread's alone until it is handed out.
        let generation = self.generation.load(Relaxed);
        self.generation.store(generation.wrapping_add(1), Relaxed);
        self.answering_stream.store(0, Relaxed);
        self.frontend.reset();
        self.windows.reset();
        self.backend_started.store(NOT_STARTED, Relaxed);
        self.backend.store(ptr::null_mut(), Relaxed);
        self.calls.reset();
        self.first_content.store(0, Relaxed);
        self.http.store(ptr::null_mut(), Relaxed);
        for stage in &self.stage_ticks {
            stage.store(0, Relaxed);
        }
        self.spend.reset();
        self.set_trace_id(TraceId::random());
        let start = Clock::now();
        self.started.store(start.0, Relaxed);
        // An endpoint's first statement, if timed, begins here (one reading for both).
        super::handoff::closed_at(start);
        endpoint.in_flight.start();
    }

    #[inline]
    pub fn endpoint(&self) -> &'static EndpointMetrics {
        // SAFETY: set from a `&'static EndpointMetrics` before the slot is handed out.
        unsafe { &*self.endpoint.load(Relaxed) }
    }

    /// Which request of its slot this is.
    #[inline]
    pub fn generation(&self) -> u32 {
        self.generation.load(Relaxed)
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
    pub(super) fn flags(&self) -> u32 {
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

    /// A `#[perf_endpoint]` handler joins this request: whether it is the exchange's handler
    /// (the first to join the layer's exchange), whose `Err` then fails the request. An
    /// endpoint called inside another's request is part of it, and its `Err` is the caller's
    /// to handle.
    #[inline]
    pub fn join_handler(&self) -> bool {
        self.flags() & EXCHANGE != 0
            && self.flags.fetch_or(HANDLER_JOINED, Relaxed) & HANDLER_JOINED == 0
    }

    // Stages and backend calls.

    /// How a caller may change the request, `here` of whose handles are on this thread and
    /// borrowed by nothing (the caller's own, and an enterer's it runs inside: not a guard that
    /// borrows a tracker's request, which a scoped thread may share): alone if those are all it
    /// has (see [`access`](super::access)). Every way in is a handle, or borrows one.
    #[inline]
    pub fn access_with(&self, here: u64) -> Access {
        if self.holds.load(Acquire) & COUNT == here * REF {
            Access::Alone
        } else {
            Access::Shared
        }
    }

    /// [`access_with`](Self::access_with) one handle: the caller's, or its enterer's.
    #[inline]
    pub fn access(&self) -> Access {
        self.access_with(1)
    }

    /// Opens a stage at `start`.
    #[inline]
    pub fn open_stage(&self, start: Clock, access: Access) {
        self.frontend.open(start, access);
    }

    /// Closes a stage that ran `ticks` from `start` to `end`: the front end covers it up to where
    /// the first backend call started.
    #[inline]
    pub fn close_stage(&self, stage: Stage, ticks: u64, start: Clock, end: Clock, access: Access) {
        if let Some(time) = self.stage_ticks.get(stage.index()) {
            // A load and a store, not a locked add: this tally only feeds `Server-Timing`, a
            // header read by a person, and two stages of one request closing at the same
            // instant on two threads (the one case that could lose one's time) are rare; the
            // histograms and phases never depend on it.
            time.store(time.load(Relaxed).wrapping_add(ticks), Relaxed);
        }
        let backend_started = self.backend_started.load(Relaxed);
        self.frontend.close_before(end, backend_started, access);
        if start.0 < backend_started {
            access.set_bits(&self.flags, FRONTEND_SEEN);
        }
    }

    /// A backend call of `set` starts at `start`: its record's index.
    #[inline]
    pub fn open_call(&self, start: Clock, set: &'static BackendSet, access: Access) -> u32 {
        let index = self.calls.open(set, start, access);
        access.lower(&self.backend_started, start.0);
        self.windows.open_call(start, access);
        index
    }

    /// Call `index` ends at `end`, answered then if `answered`.
    #[inline]
    pub fn close_call(&self, index: u32, end: Clock, answered: bool, access: Access) {
        self.call(index).close(end, access);
        self.windows.close_call(end, access);
        if answered {
            let call = self.call(index);
            call.answer(end, access);
            self.backend
                .store(ptr::from_ref(call.set()).cast_mut(), Relaxed);
            self.calls.answered(index);
            access.set_bits(&self.flags, ANSWERED);
        }
    }

    /// The record of call `index`.
    #[inline]
    pub fn call(&self, index: u32) -> &CallRecord {
        self.calls.get(index)
    }

    /// The call that answered last, if any.
    #[inline]
    pub fn last_answered(&self) -> Option<u32> {
        self.calls.last_answered()
    }

    /// The call started last, if any.
    #[inline]
    pub(super) fn last_started(&self) -> Option<u32> {
        self.calls.last_started()
    }

    /// The last backend that answered.
    #[inline]
    pub fn answered(&self) -> Option<&'static BackendSet> {
        // SAFETY: null or stored from a `&'static BackendSet`.
        unsafe { self.backend.load(Relaxed).as_ref() }
    }

    /// The backend whose labels the streaming (and chunks of no call) are recorded under: the
    /// last that answered, else `unknown`.
    #[inline]
    pub fn streaming_set(&self) -> &'static BackendSet {
        self.answered()
            .unwrap_or_else(|| self.endpoint().unknown_backend())
    }

    /// The request is `tenant`'s (its label through the tenant budget): its requests, tokens
    /// and cost are counted under it when it ends. Set again, the latest tenant counts.
    pub fn set_tenant(&self, tenant: &str) {
        self.spend.set_tenant(self.endpoint().tenant(tenant));
    }

    /// The `tenant` label of the request, if it has one.
    pub fn tenant(&self) -> Option<&'static str> {
        self.spend.tenant_label()
    }

    /// The backend calls' time so far.
    #[inline]
    pub fn backend_ticks(&self) -> u64 {
        self.windows.calls_ticks()
    }

    // Streams.

    /// A stream starts relaying an answer at `at`: a backend window until it lets go.
    #[inline]
    pub fn open_stream(&self, at: Clock, access: Access) {
        self.windows.open_stream(at, access);
        access.set_bits(&self.flags, STREAMED);
    }

    /// A stream opened at `start` stops relaying at `end`. If the request has ended already
    /// (a streaming guard dropped late), its own time is recorded at once.
    #[inline]
    pub fn close_stream(&self, start: Clock, end: Clock, access: Access) {
        if self.ended() {
            self.observe_streaming(start.ticks_until(end), self.trace_id(), end);
        } else {
            self.windows.close_stream(end, access);
        }
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

    /// The first content chunk of the request's answer came at `at` (the first only counts).
    #[inline]
    pub fn content_at(&self, at: Clock) {
        let _ = self
            .first_content
            .compare_exchange(0, at.0, Relaxed, Relaxed);
    }

    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    /// The layer's exchange was answered: its duration goes to `duration`, the series of its
    /// method and status.
    #[inline]
    pub fn http_exchange(&self, duration: &'static Histogram) {
        self.http.store(ptr::from_ref(duration).cast_mut(), Relaxed);
    }

    /// Whether the request has ended: what a late guard adds no longer counts.
    #[inline]
    pub fn ended(&self) -> bool {
        self.flags() & ENDED != 0
    }

    /// One more handle keeps the slot out of the pool.
    #[inline]
    pub(super) fn add_ref(&self) {
        self.holds.fetch_add(REF, Relaxed);
    }

    /// A handle goes: whether it was the last (the slot may go back to the pool).
    #[inline]
    pub(super) fn drop_ref(&self) -> bool {
        // The only handle left, and no owner: nothing else can count up or down meanwhile.
        if self.holds.load(Acquire) & HELD == REF {
            return true;
        }
        if self.holds.fetch_sub(REF, Release) & COUNT == 1 {
            std::sync::atomic::fence(Acquire);
            true
        } else {
            false
        }
    }
}
