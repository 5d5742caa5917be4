//! (e) the floor: the handler with nothing but the clock readings and histogram observations of
//! (b) and (d), into perf's own histograms (feature `bench-internals`), and no request.
//!
//! What (b) records beyond these, and (e) does not, is the request's: its counters and gauges
//! (`requests_total`, `requests_in_flight` and `backend_in_flight` up and down, the
//! `stage_percentage` split), its phases, owners and call record.

use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use futures_util::stream::{Stream, StreamExt};
use perf_runtime::bench_internals::BenchHistogram;

use super::{authorize, parse, prepare, provider_call, BenchError, Chunks};

/// (e)'s 11 series, one per observation of (b) and (d): the 5 of the handler (3 stages,
/// `backend_fetch`, TTFB), then the 6 of the request's end (streaming, `stream_processing`,
/// front end, request duration, overhead, the call's duration). All with exemplars and native
/// buckets.
fn floor_series() -> &'static [BenchHistogram; 11] {
    static SERIES: OnceLock<[BenchHistogram; 11]> = OnceLock::new();
    SERIES.get_or_init(|| std::array::from_fn(|_| BenchHistogram::new(true, true)))
}

/// (e) The handler with nothing but the readings and observations of (b) and (d): 5 readings
/// here, 2 in its answer.
pub async fn floor(body: &'static str) -> Result<FloorStream, BenchError> {
    let series = floor_series();
    let start = BenchHistogram::now();
    let req = parse(body)?;
    let parsed = BenchHistogram::now();
    series[0].observe_between(start, parsed);
    authorize(req.key)?;
    let authorized = BenchHistogram::now();
    series[1].observe_between(parsed, authorized);
    let prepared = prepare(&req);
    let sent = BenchHistogram::now();
    series[2].observe_between(authorized, sent);
    let chunks = provider_call(req.model, prepared).await?;
    let first_byte = BenchHistogram::now();
    series[3].observe_between(sent, first_byte);
    series[4].observe_between(sent, first_byte);
    Ok(FloorStream {
        inner: chunks,
        start,
        sent,
        first_poll: 0,
    })
}

/// (e)'s answer: a reading at its first poll and one at its end, where it observes the rest.
pub struct FloorStream {
    inner: Chunks,
    start: u64,
    sent: u64,
    first_poll: u64,
}

impl Stream for FloorStream {
    type Item = &'static str;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<&'static str>> {
        if self.first_poll == 0 {
            self.first_poll = BenchHistogram::now();
        }
        let polled = self.inner.poll_next_unpin(cx);
        if let Poll::Ready(None) = polled {
            let series = floor_series();
            let end = BenchHistogram::now();
            series[5].observe_between(self.first_poll, end);
            series[6].observe_between(self.first_poll, end);
            series[7].observe_between(self.start, self.sent);
            series[8].observe_between(self.start, end);
            series[9].observe_between(self.start, end);
            series[10].observe_between(self.sent, end);
        }
        polled
    }
}
