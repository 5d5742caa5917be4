//! The content of an answer as its stream relays it: the time to the first token of the call it
//! relays (from the call's start), the gaps between its content chunks, and the usage its
//! chunks report, counted once per call whatever number of streams re-yield them.

use super::state::RequestState;
use crate::chunk::Chunk;
use crate::clock::Clock;
use crate::metrics::{BackendSet, Histogram};

/// Gaps a stream keeps before it records them together.
const WAITING_GAPS: usize = 16;

/// What a stream has seen of content so far: its last content chunk's time and the series its
/// gaps go to (none before its first content chunk), and the gaps not recorded yet.
///
/// A gap is kept in the stream, which only its reader touches, and recorded with the next
/// [`WAITING_GAPS`] − 1 at once, or when the stream lets go of its request (it ends or is
/// dropped): a chunk then costs its clock reading and a store, and the series sees the gaps of a
/// stream at most 15 chunks late. The batch records without waiting on each chunk's reading.
pub(crate) struct ContentGaps {
    last: Clock,
    series: Option<&'static Histogram>,
    waiting: usize,
    pending: [u64; WAITING_GAPS],
}

impl ContentGaps {
    /// No content seen yet.
    pub const fn new() -> Self {
        ContentGaps {
            last: Clock(0),
            series: None,
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
        if let Some(series) = self.series {
            series.observe_all(&self.pending[..self.waiting]);
        }
        self.waiting = 0;
    }
}

impl Drop for ContentGaps {
    /// A stream dropped before its end still records the gaps it kept.
    fn drop(&mut self) {
        self.record();
    }
}

impl RequestState {
    /// A streamed item of stream `number`, classified, relaying the answer of `call` (none if
    /// no call had answered): the call's time to first token (from its start) or the gap since
    /// the stream's previous content chunk, and the call's usage. Only the stream that reads the
    /// call's content counts its facts: a stream re-yielding chunks another already saw (wrapped
    /// twice, a peeked chunk chained back) counts nothing.
    pub fn chunk(&self, call: Option<u32>, number: u32, chunk: Chunk, gaps: &mut ContentGaps) {
        let call = call.map(|index| self.call(index));
        if let Some(call) = call {
            if !call.read_by(number) {
                return;
            }
        }
        if chunk.content {
            let now = Clock::now();
            if gaps.series.is_some() {
                gaps.keep(gaps.last.ticks_until(now));
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
                gaps.series = Some(set.chunk_gap());
                self.content_at(now);
            }
            gaps.last = now;
        }
        if let (Some(usage), Some(call)) = (chunk.usage, call) {
            self.spend.record(call, usage);
        }
    }
}

/// Records a call's time to first token: from its `start` to `now`.
fn set_ttft(set: &'static BackendSet, start: Clock, now: Clock, trace: crate::trace::TraceId) {
    set.ttft()
        .observe_traced(start.ticks_until(now), Some(trace), now);
}
