//! Which backend call a fact found in a request belongs to. Not "the latest": the call whose
//! future is being polled on this thread ([`on_thread`](super::on_thread): each poll of a
//! `#[perf_backend]` call, and of a stream relaying its answer, makes it current), else, for a
//! fact found after the call (a usage in a JSON body, an error found once the headers came, a
//! provider's rate-limit headers), the call that answered last (errors: the call started last).

use super::call_record::CallRecord;
use super::on_thread::current_call;
use super::state::RequestState;
use crate::chunk::Usage;
use crate::metrics::BackendErrorKind;
use crate::ratelimits::RateLimits;

impl RequestState {
    /// The call a fact found now belongs to: the one current on this thread, else `fallback`.
    #[inline]
    fn fact_call(&self, fallback: Option<u32>) -> Option<&CallRecord> {
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
    pub fn usage(&self, usage: Usage) {
        if let Some(call) = self.fact_call(self.last_answered().or(self.last_started())) {
            self.spend.record(call, usage);
        }
    }

    /// Sets the rate-limit gauges of the call `limits` belong to (the current one, else the
    /// one that answered last, else the one started last).
    pub fn rate_limits(&self, limits: &RateLimits) {
        if limits.is_empty() {
            return;
        }
        if let Some(call) = self.fact_call(self.last_answered().or(self.last_started())) {
            call.set().rate_limits(limits);
        }
    }
}
