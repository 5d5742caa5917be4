//! What a provider's answer records as it goes, beyond the request's phases: its backend
//! windows (for `gateway_overhead_seconds`), the time to its first token, the gaps between its
//! chunks, its token usage, and the `Server-Timing` of the request so far.

use std::sync::atomic::Ordering::*;

use super::chunks::{Chunk, Usage};
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
    /// A backend window opens: a call is sent, or a stream starts relaying an answer.
    #[inline]
    pub fn open_window(&self, at: Clock) {
        if self.windows_open.fetch_add(1, AcqRel) == 0 {
            self.windows_since.store(at.0, Relaxed);
        }
    }

    /// A backend window closes; when the last open one does, the time since the first opened
    /// is covered.
    #[inline]
    pub fn close_window(&self, at: Clock) {
        if self.windows_open.fetch_sub(1, AcqRel) == 1 {
            let since = Clock(self.windows_since.load(Relaxed));
            self.windows_ticks.fetch_add(since.ticks_until(at), Relaxed);
        }
    }

    /// The backend whose labels the streaming (and its chunks) are recorded under: the last that
    /// answered, else `unknown`.
    #[inline]
    pub fn streaming_set(&self) -> &'static BackendSet {
        self.answered()
            .unwrap_or_else(|| self.endpoint().unknown_backend())
    }

    /// A streamed item, classified: the time to first token (from the latest backend call's
    /// start) or the gap since the previous content chunk, and its token usage.
    pub fn chunk(&self, chunk: Chunk, seen: &mut ContentSeen) {
        if chunk.content {
            let now = Clock::now();
            if seen.gaps.is_some() {
                seen.keep(seen.last.ticks_until(now));
            } else {
                let set = self.streaming_set();
                let start = self.last_call_start.load(Relaxed);
                if start != 0 {
                    set.ttft().observe_traced(
                        Clock(start).ticks_until(now),
                        Some(self.trace_id()),
                        now,
                    );
                }
                // Looked up once per stream, at its first content chunk.
                seen.gaps = Some(set.chunk_gap());
            }
            seen.last = now;
        }
        if let Some(usage) = chunk.usage {
            self.usage(usage);
        }
    }

    /// Counts the provider's token `usage` against the backend that answered (else the latest
    /// call; nothing without any).
    pub fn usage(&self, usage: Usage) {
        if let Some(set) = self.answered().or_else(|| self.last_call()) {
            for (kind, n) in usage.counts().into_iter().enumerate() {
                set.tokens(kind, n);
            }
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
        let backend = ticks_to_ns(self.backend_ticks.load(Relaxed));
        if backend > 0 {
            entry("backend", backend);
        }
        out
    }
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
