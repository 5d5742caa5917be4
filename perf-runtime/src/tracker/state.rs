//! The state of one request, shared by everything that acts for it: the handler's tracker (or
//! the layer's exchange), the streams it hands the request to, and the guards of its stages and
//! backend calls.
//!
//! The request **ends once**, when its last owner lets go. Its owners are the handler (its
//! tracker, or [`PerfLayer`](crate::PerfLayer)'s future until the response is made) and what
//! the answer is handed to: the layer's response body, or the streams a `#[perf_endpoint]`
//! handler hands the request to. What each owner saw then decides its outcome by [the outcome
//! rule](crate::metrics#what-a-request-is) (`Outcome`, `RequestState::outcome` below).
//!
//! Its phases are unions of intervals ([`phases`](super::phases)); each backend call is one
//! record ([`calls`](super::calls)).

use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering::*};

use super::calls::{current_call, CallRecord, MAX_CALLS};
use super::phases::Union;
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
/// The handler (or, under the layer, the response body) was dropped before its end.
const CANCELLED: u32 = 1 << 5;
/// The handler let go of the request (returned, cancelled or panicked): once only.
const HANDLER_GONE: u32 = 1 << 6;
const ENDED: u32 = 1 << 7;
/// Some stream or streaming guard was read: streaming is recorded at the end.
const STREAMED: u32 = 1 << 8;
/// The request is an HTTP exchange of the layer: its response body decides the outcome.
const EXCHANGE: u32 = 1 << 9;
/// A `#[perf_endpoint]` handler joined the layer's exchange: its `Err` fails it.
const HANDLER_JOINED: u32 = 1 << 10;

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
    /// Owners whose release may end the request: the handler, and what it handed off.
    owners: AtomicU32,
    flags: AtomicU32,
    /// Which request of this slot it is: a call noted on a thread names its request by it.
    generation: AtomicU32,
    /// Hand-offs to streams so far: a stream's number orders it among them.
    handoffs: AtomicU32,
    /// The say of the stream that decides: `number << 1 | read to its end`; 0 for none.
    stream_vote: AtomicU64,
    /// The front-end stages' union, cut where the first backend call started.
    frontend: Union,
    /// The backend calls' windows.
    calls_union: Union,
    /// Every backend window: calls, and streams relaying an answer.
    windows: Union,
    /// When the first backend call started ([`NOT_STARTED`] before).
    backend_started: AtomicU64,
    /// The last backend that answered: the labels of the streaming.
    backend: AtomicPtr<BackendSet>,
    /// Calls started so far (records used: at most [`MAX_CALLS`]).
    calls_made: AtomicU32,
    /// The call started last and the call that answered last, as index + 1 (0: none).
    last_started: AtomicU32,
    last_answered: AtomicU32,
    calls: [CallRecord; MAX_CALLS],
    /// When the request began.
    started: AtomicU64,
    /// When a stream first relayed content (0 before): its client's first token.
    first_content: AtomicU64,
    /// The layer's HTTP exchange: its method (an index into `HTTP_METHODS`) `<< 16 |` its
    /// status code; 0 before its response.
    http: AtomicU32,
    /// Time per stage, by stage id, for `Server-Timing`.
    pub(super) stage_ticks: [AtomicU64; TIMED_STAGES],
    /// The trace id, high and low halves: the exemplar of every bucket the request lands in.
    trace: [AtomicU64; 2],
    /// Its tenant, and what its calls spent: see [`spend`](super::spend).
    pub(super) spend: super::spend::RequestSpend,
}

impl RequestState {
    pub(super) fn empty() -> Self {
        RequestState {
            endpoint: AtomicPtr::new(ptr::null_mut()),
            refs: AtomicU32::new(0),
            owners: AtomicU32::new(0),
            flags: AtomicU32::new(0),
            generation: AtomicU32::new(0),
            handoffs: AtomicU32::new(0),
            stream_vote: AtomicU64::new(0),
            frontend: Union::new(),
            calls_union: Union::new(),
            windows: Union::new(),
            backend_started: AtomicU64::new(NOT_STARTED),
            backend: AtomicPtr::new(ptr::null_mut()),
            calls_made: AtomicU32::new(0),
            last_started: AtomicU32::new(0),
            last_answered: AtomicU32::new(0),
            calls: [const { CallRecord::empty() }; MAX_CALLS],
            started: AtomicU64::new(0),
            first_content: AtomicU64::new(0),
            http: AtomicU32::new(0),
            stage_ticks: Default::default(),
            trace: Default::default(),
            spend: super::spend::RequestSpend::new(),
        }
    }

    /// Makes a pooled slot a new request of `endpoint`, owned by its handler; `flags` to start
    /// with.
    #[inline]
    fn reset(&self, endpoint: &'static EndpointMetrics, flags: u32) {
        self.endpoint
            .store(ptr::from_ref(endpoint).cast_mut(), Relaxed);
        self.refs.store(1, Relaxed);
        self.owners.store(1, Relaxed);
        self.flags.store(flags, Relaxed);
        self.generation.fetch_add(1, Relaxed);
        self.handoffs.store(0, Relaxed);
        self.stream_vote.store(0, Relaxed);
        self.frontend.reset();
        self.calls_union.reset();
        self.windows.reset();
        self.backend_started.store(NOT_STARTED, Relaxed);
        self.backend.store(ptr::null_mut(), Relaxed);
        self.calls_made.store(0, Relaxed);
        self.last_started.store(0, Relaxed);
        self.last_answered.store(0, Relaxed);
        self.first_content.store(0, Relaxed);
        self.http.store(0, Relaxed);
        for stage in &self.stage_ticks {
            stage.store(0, Relaxed);
        }
        self.spend.reset();
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

    /// Opens a stage at `start`.
    #[inline]
    pub fn open_stage(&self, start: Clock) {
        self.frontend.open(start);
    }

    /// Closes a stage that ran `ticks` from `start` to `end`: the front end covers it up to where
    /// the first backend call started.
    #[inline]
    pub fn close_stage(&self, stage: Stage, ticks: u64, start: Clock, end: Clock) {
        if let Some(time) = self.stage_ticks.get(stage.index()) {
            time.fetch_add(ticks, Relaxed);
        }
        let backend_started = self.backend_started.load(Relaxed);
        self.frontend.close_before(end, backend_started);
        if start.0 < backend_started && self.flags.load(Relaxed) & FRONTEND_SEEN == 0 {
            self.flags.fetch_or(FRONTEND_SEEN, Relaxed);
        }
    }

    /// A backend call of `set` starts at `start`: its record's index.
    #[inline]
    pub fn open_call(&self, start: Clock, set: &'static BackendSet) -> u32 {
        // Past the last record, the latest call takes it over.
        let index = (self.calls_made.fetch_add(1, Relaxed) as usize).min(MAX_CALLS - 1);
        self.calls[index].reset(set, start);
        self.last_started.store(index as u32 + 1, Release);
        self.backend_started.fetch_min(start.0, Relaxed);
        self.calls_union.open(start);
        self.windows.open(start);
        index as u32
    }

    /// Call `index` ends at `end`, answered then if `answered`.
    #[inline]
    pub fn close_call(&self, index: u32, end: Clock, answered: bool) {
        self.call(index).close(end);
        self.calls_union.close(end);
        self.windows.close(end);
        if answered {
            let call = self.call(index);
            call.answer(end);
            self.backend
                .store(ptr::from_ref(call.set()).cast_mut(), Relaxed);
            self.last_answered.store(index + 1, Release);
            self.flags.fetch_or(ANSWERED, Relaxed);
        }
    }

    /// The record of call `index`.
    #[inline]
    pub fn call(&self, index: u32) -> &CallRecord {
        &self.calls[index as usize]
    }

    /// The call that answered last, if any.
    #[inline]
    pub fn last_answered(&self) -> Option<u32> {
        self.last_answered.load(Acquire).checked_sub(1)
    }

    /// The call started last, if any.
    #[inline]
    pub(super) fn last_started(&self) -> Option<u32> {
        self.last_started.load(Acquire).checked_sub(1)
    }

    /// The call a fact found now belongs to: the one current on this thread, else `fallback`.
    #[inline]
    pub(super) fn fact_call(&self, fallback: Option<u32>) -> Option<&CallRecord> {
        current_call()
            .of(self)
            .or(fallback)
            .map(|index| self.call(index))
    }

    /// Counts a failure of the call it belongs to (the current one, else the one started
    /// last) in `backend_errors_total`, once per call; nothing if the request made none.
    pub fn backend_error(&self, kind: BackendErrorKind) {
        if let Some(call) = self.fact_call(self.last_started()) {
            call.fail(kind);
        }
    }

    /// Sets the provider's token `usage` on the call it belongs to (the current one, else the
    /// one that answered last, else the one started last); nothing without any.
    pub fn usage(&self, usage: super::Usage) {
        if let Some(call) = self.fact_call(self.last_answered().or(self.last_started())) {
            self.record_usage(call, usage);
        }
    }

    /// The last backend that answered.
    #[inline]
    pub fn answered(&self) -> Option<&'static BackendSet> {
        // SAFETY: null or stored from a `&'static BackendSet`.
        unsafe { self.backend.load(Relaxed).as_ref() }
    }

    /// The backend calls' time so far.
    #[inline]
    pub fn backend_ticks(&self) -> u64 {
        self.calls_union.ticks()
    }

    // Streams.

    /// A stream starts relaying an answer at `at`: a backend window until it lets go.
    #[inline]
    pub fn open_stream(&self, at: Clock) {
        self.windows.open(at);
        if self.flags.load(Relaxed) & STREAMED == 0 {
            self.flags.fetch_or(STREAMED, Relaxed);
        }
    }

    /// A stream opened at `start` stops relaying at `end`. If the request has ended already
    /// (a streaming guard dropped late), its own time is recorded at once.
    #[inline]
    pub fn close_stream(&self, start: Clock, end: Clock) {
        if self.ended() {
            self.observe_streaming(start.ticks_until(end), self.trace_id(), end);
        } else {
            self.windows.close(end);
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

    // Owners.

    /// A stream takes a share of the request; returns its hand-off number.
    #[inline]
    pub fn hand_off(&self) -> u32 {
        self.owners.fetch_add(1, Relaxed);
        self.handoffs.fetch_add(1, Relaxed) + 1
    }

    /// The handler lets go, once; the request ends if nothing it handed off holds it.
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

    /// Stream number `number` lets go, saying whether it was read to its end (`None`: no say).
    /// Among streams with a say, the later hand-off decides. `at`: a reading just taken, which
    /// the request's end may use as its own.
    #[inline]
    pub fn release_stream(&self, number: u32, to_the_end: Option<bool>, at: Option<Clock>) {
        if let Some(to_the_end) = to_the_end {
            let say = u64::from(number) << 1 | u64::from(to_the_end);
            self.stream_vote.fetch_max(say, Relaxed);
        }
        self.release_owner(at);
    }

    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    /// The layer's response body lets go: at its end (`Some(true)`), after an error
    /// (`Some(false)`), or dropped before its end (`None`).
    #[inline]
    pub fn release_body(&self, ended: Option<bool>, at: Clock) {
        let flag = match ended {
            Some(true) => 0,
            Some(false) => FAILED,
            None => CANCELLED,
        };
        if flag != 0 {
            self.flags.fetch_or(flag, Relaxed);
        }
        self.release_owner(Some(at));
    }

    /// An owner lets go; the request ends (at `at`, a reading just taken, else now) if it was
    /// the last.
    #[inline]
    fn release_owner(&self, at: Option<Clock>) {
        if self.owners.fetch_sub(1, AcqRel) == 1 {
            self.end(at.unwrap_or_else(Clock::now));
        }
    }

    /// The outcome `flags` and the streams' vote make.
    fn outcome(&self, flags: u32) -> Outcome {
        let vote = self.stream_vote.load(Relaxed);
        if flags & (FAILED | PANICKED) != 0 {
            Outcome::Error
        } else if flags & CANCELLED != 0 || (flags & EXCHANGE == 0 && vote != 0 && vote & 1 == 0) {
            Outcome::Cancelled
        } else {
            Outcome::Completed
        }
    }

    /// The end of the request at `now`, exactly once: what the outcome allows, then
    /// `requests_total`.
    fn end(&self, now: Clock) {
        let flags = self.flags.fetch_or(ENDED, AcqRel);
        let outcome = self.outcome(flags);
        let endpoint = self.endpoint();
        let id = self.trace_id();
        let trace = Some(id);
        let [frontend, backend, streaming] = self.phase_ticks(now);
        if flags & (RETURNED | FRONTEND_SEEN) == RETURNED | FRONTEND_SEEN {
            endpoint.frontend.observe_traced(frontend, trace, now);
        }
        if flags & STREAMED != 0 {
            self.observe_streaming(streaming, id, now);
        }
        let lasted = Clock(self.started.load(Relaxed)).ticks_until(now);
        endpoint
            .duration(outcome as usize)
            .observe_traced(lasted, trace, now);
        if flags & RETURNED != 0 {
            let outside = lasted.saturating_sub(backend + streaming);
            endpoint.overhead.observe_ticks(outside);
        }
        self.end_calls(outcome, lasted, now);
        let http = self.http.load(Relaxed);
        if http != 0 {
            let (method, status) = ((http >> 16) as usize, (http & 0xffff) as u16);
            endpoint.http_duration(method, status).observe_ticks(lasted);
        }
        if outcome == Outcome::Completed && flags & ANSWERED != 0 {
            let phases = [frontend, backend, streaming];
            let total: u64 = phases.iter().sum();
            if total > 0 {
                let shares = phases.map(|phase| phase as f64 * 100.0 / total as f64);
                endpoint.split().set(now.0, shares);
            }
        }
        self.settle_spend(outcome as usize);
        // Counted last: whoever sees the request counted sees all it recorded.
        endpoint.outcomes[outcome as usize].inc();
        endpoint.in_flight.finish();
    }

    /// What the end records of the calls (`backend_call_duration_seconds`, `backend_call_tokens`)
    /// and of the answer's tokens as its client saw them (`request_ttft_seconds`,
    /// `request_time_per_output_token_seconds`, for a completed request).
    fn end_calls(&self, outcome: Outcome, lasted: u64, now: Clock) {
        let endpoint = self.endpoint();
        let trace = Some(self.trace_id());
        let made = (self.calls_made.load(Relaxed) as usize).min(MAX_CALLS);
        for call in &self.calls[..made] {
            if let Some((set, call_lasted, usage)) = call.summary() {
                set.call_duration().observe_traced(call_lasted, trace, now);
                set.call_tokens(usage);
            }
        }
        // The request's own count, which its spend keeps: every call's, past the records too.
        let output = self.output_tokens();
        let first = self.first_content.load(Relaxed);
        if outcome != Outcome::Completed || first == 0 {
            return;
        }
        let started = Clock(self.started.load(Relaxed));
        let to_first = started.ticks_until(Clock(first));
        endpoint
            .ttft()
            .observe_traced(to_first, trace, Clock(first));
        if output > 1 {
            let after = lasted.saturating_sub(to_first);
            endpoint
                .time_per_token()
                .observe_ticks(after / (output - 1));
        }
    }

    /// The first content chunk of the request's answer came at `at` (the first only counts).
    #[inline]
    pub fn content_at(&self, at: Clock) {
        let _ = self
            .first_content
            .compare_exchange(0, at.0, Relaxed, Relaxed);
    }

    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    /// The layer's exchange was answered `status` to a request of `method` (an index into
    /// `HTTP_METHODS`).
    #[inline]
    pub fn http_exchange(&self, method: usize, status: u16) {
        self.http
            .store((method as u32) << 16 | u32::from(status.max(1)), Relaxed);
    }

    /// Front end, backend and streaming so far (windows still open counted until `now`), in
    /// ticks: see [`phases`](super::phases).
    fn phase_ticks(&self, now: Clock) -> [u64; 3] {
        let backend = self.calls_union.ticks_at(now);
        let windows = self.windows.ticks_at(now);
        [
            self.frontend.ticks(),
            backend,
            windows.saturating_sub(backend),
        ]
    }

    /// Whether the request has ended: what a late guard adds no longer counts.
    #[inline]
    pub fn ended(&self) -> bool {
        self.flags() & ENDED != 0
    }

    /// The front-end, backend and streaming time so far, in nanoseconds.
    pub fn phases(&self) -> [u64; 3] {
        self.phase_ticks(Clock::now()).map(ticks_to_ns)
    }
}

/// A counted reference to a request's state: the slot goes back to the pool when the last one
/// is dropped.
pub(crate) struct StateRef(&'static RequestState);

impl StateRef {
    /// A new request of `endpoint`, owned by its handler.
    #[inline]
    pub fn new(endpoint: &'static EndpointMetrics) -> Self {
        let slot = pool::take();
        slot.reset(endpoint, 0);
        StateRef(slot)
    }

    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    /// A new request of `endpoint` that is the layer's HTTP exchange: its response body decides
    /// how it ends.
    #[inline]
    pub fn exchange(endpoint: &'static EndpointMetrics) -> Self {
        let slot = pool::take();
        slot.reset(endpoint, EXCHANGE);
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
