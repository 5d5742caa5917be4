//! What a provider's answer records as it goes, beyond the request's phases: its backend
//! windows (for `gateway_overhead_seconds`), the time to its first token, the gaps between its
//! chunks, its token usage, and the `Server-Timing` of the request so far.

use std::sync::atomic::Ordering::*;

use super::chunks::Chunk;
use super::state::RequestState;
use crate::clock::{ticks_to_ns, Clock};
use crate::metrics::{BackendSet, Histogram};
use crate::stage::Stage;

/// Gaps a stream keeps before it records them together.
const WAITING_GAPS: usize = 16;

/// What a stream has seen of content so far: its last content chunk's time and the series its
/// gaps go to (none before its first content chunk), and the gaps not recorded yet.
///
/// A gap is kept in the stream, which only its reader touches, and recorded with the next
/// [`WAITING_GAPS`] − 1 at once, or when the stream lets go of its request (it ends or is
/// dropped): a chunk then costs its clock reading and a store, and the series sees the gaps of a
/// stream at most 15 chunks late. The batch records without waiting on each chunk's reading.
pub(crate) struct ContentSeen {
    last: Clock,
    gaps: Option<&'static Histogram>,
    waiting: usize,
    pending: [u64; WAITING_GAPS],
}

impl ContentSeen {
    /// No content seen yet.
    pub const fn new() -> Self {
        ContentSeen {
            last: Clock(0),
            gaps: None,
            waiting: 0,
            pending: [0; WAITING_GAPS],
        }
    }

    /// Keeps a gap of `ticks`, recording the batch when it is full.
    #[inline]
    fn keep(&mut self, ticks: u64) {
        // `waiting` is below WAITING_GAPS: a full batch is recorded at once, below.
        self.pending[self.waiting % WAITING_GAPS] = ticks;
        self.waiting += 1;
        if self.waiting == WAITING_GAPS {
            self.record();
        }
    }

    /// Records the gaps kept so far.
    pub fn record(&mut self) {
        if let Some(gaps) = self.gaps {
            gaps.observe_all(&self.pending[..self.waiting]);
        }
        self.waiting = 0;
    }
}

impl Drop for ContentSeen {
    /// A stream dropped before its end still records the gaps it kept.
    fn drop(&mut self) {
        self.record();
    }
}

impl RequestState {
    /// The backend whose labels the streaming (and chunks of no call) are recorded under: the
    /// last that answered, else `unknown`.
    #[inline]
    pub fn streaming_set(&self) -> &'static BackendSet {
        self.answered()
            .unwrap_or_else(|| self.endpoint().unknown_backend())
    }

    /// A streamed item of stream `number`, classified, relaying the answer of `call` (none if
    /// no call had answered): the call's time to first token (from its start) or the gap since
    /// the stream's previous content chunk, and the call's usage. Only the stream that reads the
    /// call's content counts its facts: a stream re-yielding chunks another already saw (wrapped
    /// twice, a peeked chunk chained back) counts nothing.
    pub fn chunk(&self, call: Option<u32>, number: u32, chunk: Chunk, seen: &mut ContentSeen) {
        let call = call.map(|index| self.call(index));
        if let Some(call) = call {
            if !call.read_by(number) {
                return;
            }
        }
        if chunk.content {
            let now = Clock::now();
            if seen.gaps.is_some() {
                seen.keep(seen.last.ticks_until(now));
            } else {
                let set = match call {
                    Some(call) => {
                        if call.first_token() {
                            set_ttft(call.set(), call.start(), now, self.trace_id());
                        }
                        call.set()
                    }
                    None => self.streaming_set(),
                };
                // Looked up once per stream, at its first content chunk.
                seen.gaps = Some(set.chunk_gap());
                self.content_at(now);
            }
            seen.last = now;
        }
        if let (Some(usage), Some(call)) = (chunk.usage, call) {
            self.record_usage(call, usage);
        }
    }

    /// The `Server-Timing` header value of the request so far: each stage that ran (but the
    /// backend's and the streaming's, which go as one `backend` entry), in milliseconds.
    pub fn server_timing(&self) -> String {
        // Room for the built-in stages and the backend: one allocation.
        let mut out = String::with_capacity(192);
        let mut entry = |name: &str, ns: u64| {
            if !out.is_empty() {
                out.push_str(", ");
            }
            out.push_str(name);
            out.push_str(";dur=");
            push_millis(&mut out, ns);
        };
        for (id, time) in self.stage_ticks.iter().enumerate() {
            let ns = ticks_to_ns(time.load(Relaxed));
            let stage = Stage::from_index(id);
            if ns > 0 && stage != Stage::BACKEND_FETCH && stage != Stage::STREAM_PROCESSING {
                entry(stage.name(), ns);
            }
        }
        let backend = ticks_to_ns(self.backend_ticks());
        if backend > 0 {
            entry("backend", backend);
        }
        out
    }
}

/// Records a call's time to first token: from its `start` to `now`.
fn set_ttft(set: &'static BackendSet, start: Clock, now: Clock, trace: crate::trace::TraceId) {
    set.ttft()
        .observe_traced(start.ticks_until(now), Some(trace), now);
}

/// Appends `ns` in milliseconds with three decimals (`0.041`, `501.700`), rounded to the
/// microsecond. Written digit by digit: formatting an `f64` took about 1,000 instructions an
/// entry, and with the string's growth a third of what instrumentation added to a JSON request
/// of the example gateway (`benches/end-to-end-instructions.sh`).
fn push_millis(out: &mut String, ns: u64) {
    let micros = ns.saturating_add(500) / 1000;
    // The whole milliseconds, last digit first (u64::MAX µs has 17 of them), then the three
    // decimals.
    let mut whole = [0u8; 20];
    let mut at = whole.len();
    let mut rest = micros / 1000;
    loop {
        at -= 1;
        whole[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend(whole[at..].iter().map(|&digit| char::from(digit)));
    out.push('.');
    let decimals = micros % 1000;
    for unit in [100, 10, 1] {
        out.push(char::from(b'0' + (decimals / unit % 10) as u8));
    }
}

#[cfg(test)]
mod tests {
    use super::push_millis;

    #[test]
    fn milliseconds_are_written_as_the_float_formatting_writes_them() {
        let values = crate::metrics::test_values::values(3000, [1_000_000, 999_999_500], 20_000);
        for ns in values {
            // Below 2^50 ns an f64 holds the value exactly; at a half microsecond the two
            // roundings may differ.
            if ns >= 1 << 50 || (499..=501).contains(&(ns % 1000)) {
                continue;
            }
            let mut ours = String::new();
            push_millis(&mut ours, ns);
            assert_eq!(ours, format!("{:.3}", ns as f64 / 1e6), "{ns}");
        }
        let mut longest = String::new();
        push_millis(&mut longest, u64::MAX);
        assert_eq!(longest, "18446744073709.551");
    }
}
