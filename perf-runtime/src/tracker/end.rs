//! How a request ends: its owners let go (the handler, and what it handed the answer to), the
//! last one ends it, and the end records, exactly once, what the outcome allows.

use std::sync::atomic::Ordering::*;

use super::access::Access;
use super::state::{
    HandlerExit, Outcome, RequestState, ANSWERED, CANCELLED, COUNT, ENDED, EXCHANGE, FAILED,
    FRONTEND_SEEN, HANDLER_GONE, OWNER, PANICKED, RETURNED, STREAMED,
};
use crate::clock::{ticks_to_ns, Clock};

/// The flags a handler's exit adds.
#[inline]
fn exit_flags(exit: HandlerExit) -> u32 {
    HANDLER_GONE
        | match exit {
            HandlerExit::Returned(true) => RETURNED,
            HandlerExit::Returned(false) => RETURNED | FAILED,
            HandlerExit::Cancelled => CANCELLED,
            HandlerExit::Panicked => PANICKED,
        }
}

impl RequestState {
    // Owners.

    /// The handler lets go, once; the request ends if nothing it handed off holds it.
    #[inline]
    pub fn release_handler(&self, exit: HandlerExit) {
        if self.flags.fetch_or(exit_flags(exit), AcqRel) & HANDLER_GONE == 0 {
            self.release_owner(None, Access::Shared);
        }
    }

    /// Whether the handler has let go.
    #[inline]
    pub fn handler_gone(&self) -> bool {
        self.flags() & HANDLER_GONE != 0
    }

    /// Stream number `number` lets go, saying whether it was read to its end (`None`: no verdict).
    /// Among streams with a verdict, the later hand-off decides. `at`: a reading just taken, which
    /// the request's end may use as its own. `access`: the stream's (see `stream.rs`).
    #[inline]
    pub fn release_stream(
        &self,
        number: u32,
        to_the_end: Option<bool>,
        at: Option<Clock>,
        access: Access,
    ) {
        if let Some(to_the_end) = to_the_end {
            let verdict = u64::from(number) << 1 | u64::from(to_the_end);
            access.raise(&self.answering_stream, verdict);
        }
        self.release_owner(at, access);
    }

    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    /// The layer's future, the exchange's handler and its one releaser, lets go (`exit`). Called
    /// with the future's handle, which nothing borrows: alone if it is the only one.
    #[inline]
    pub fn release_exchange_handler(&self, exit: HandlerExit) {
        match self.access() {
            Access::Alone => {
                Access::Alone.set_bits(&self.flags, exit_flags(exit));
                self.release_owner(None, Access::Alone);
            }
            Access::Shared => self.release_handler(exit),
        }
    }

    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    /// The layer's future returned an answer whose body carries the request on: the handler's
    /// share (its handle and its ownership) passes to the body whole, and only the flags
    /// change. Called as [`release_exchange_handler`](Self::release_exchange_handler) is.
    #[inline]
    pub fn pass_to_body(&self) {
        self.access().set_bits(&self.flags, HANDLER_GONE | RETURNED);
    }

    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    /// The layer's response body lets go: at its end (`Some(true)`), after an error
    /// (`Some(false)`), or dropped before its end (`None`). Called with the body's handle, which
    /// nothing borrows.
    #[inline]
    pub fn release_body(&self, ended: Option<bool>, at: Clock) {
        let flag = match ended {
            Some(true) => 0,
            Some(false) => FAILED,
            None => CANCELLED,
        };
        let access = self.access();
        access.set_bits(&self.flags, flag);
        self.release_owner(Some(at), access);
    }

    /// An owner lets go, as `access` allows; the request ends (at `at`, a reading just taken,
    /// else now) if it was the last.
    #[inline]
    fn release_owner(&self, at: Option<Clock>, access: Access) {
        // The owners' bits hold at least 1 here, so the subtraction borrows nothing.
        if (access.sub(&self.holds, OWNER) / OWNER) & COUNT == 1 {
            self.end(at.unwrap_or_else(Clock::now));
        }
    }

    /// The outcome `flags` and the streams' verdict make.
    fn outcome(&self, flags: u32) -> Outcome {
        let verdict = self.answering_stream.load(Relaxed);
        if flags & (FAILED | PANICKED) != 0 {
            Outcome::Error
        } else if flags & CANCELLED != 0
            || (flags & EXCHANGE == 0 && verdict != 0 && verdict & 1 == 0)
        {
            Outcome::Cancelled
        } else {
            Outcome::Completed
        }
    }

    /// The end of the request at `now`, exactly once: what the outcome allows, then
    /// `requests_total`.
    fn end(&self, now: Clock) {
        // A load and a store: the owners' count reached 0 once, here, and synchronized with
        // every owner's release; a late guard's flag racing with the store changes no outcome
        // (it is read above it, or ignored past the end).
        let flags = self.flags.load(Acquire);
        self.flags.store(flags | ENDED, Release);
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
        // SAFETY: null or stored from a `&'static Histogram`.
        if let Some(http) = unsafe { self.http.load(Relaxed).as_ref() } {
            http.observe_ticks(lasted);
        }
        if outcome == Outcome::Completed && flags & ANSWERED != 0 {
            let phases = [frontend, backend, streaming];
            let total: u64 = phases.iter().sum();
            if total > 0 {
                let shares = phases.map(|phase| phase as f64 * 100.0 / total as f64);
                endpoint.stage_shares().set(now.0, shares);
            }
        }
        self.spend.settle(outcome as usize);
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
        for call in self.calls.used() {
            if let Some((set, call_lasted, usage)) = call.summary() {
                set.call_duration().observe_traced(call_lasted, trace, now);
                set.call_tokens(usage);
            }
        }
        // The request's own count, which its spend keeps: every call's, past the records too.
        let output = self.spend.output_tokens();
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

    /// Front end, backend and streaming so far (windows still open counted until `now`), in
    /// ticks: see [`phases`](super::phases).
    fn phase_ticks(&self, now: Clock) -> [u64; 3] {
        let [backend, windows] = self.windows.ticks_at(now);
        [
            self.frontend.ticks(),
            backend,
            windows.saturating_sub(backend),
        ]
    }

    /// The front-end, backend and streaming time so far, in nanoseconds.
    pub fn phases(&self) -> [u64; 3] {
        self.phase_ticks(Clock::now()).map(ticks_to_ns)
    }
}
