//! Variant 9, perf's floor: the handler with nothing but the clock readings and histogram
//! observations that variant 3's request makes, into perf's own histograms (feature
//! `bench-internals`), and no request: no layer, no request state, no counters or gauges.
//!
//! What perf's full request cannot cost less than while it records what it records: the 10
//! observations of variant 3 (`peers --families`), each with the exemplars and native buckets
//! its family keeps. The request's own work (its state, counters, gauges, `stage_percentage`, the
//! layer) is what variant 3 adds over this.

use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use axum::body::Bytes;
use axum::response::Response;
use futures_util::stream::{Stream, StreamExt};
use perf_runtime::bench_internals::BenchHistogram;

use super::{answer, call_provider, check, ChatError, Chunks};

/// Variant 3's histograms, one per observation, with what each family keeps:
/// `request_stage_duration_seconds{stage="request_parsing"}`, `frontend_processing_seconds`,
/// `backend_ttfb_seconds`, `request_stage_duration_seconds{stage="backend_fetch"}` (exemplars
/// and native buckets); at the answer's end `streaming_duration_seconds`,
/// `request_stage_duration_seconds{stage="stream_processing"}` (the same),
/// `backend_call_duration_seconds`, `request_duration_seconds` (exemplars),
/// `gateway_overhead_seconds` and `http_request_duration_seconds` (neither).
fn series() -> &'static [BenchHistogram; 10] {
    static SERIES: OnceLock<[BenchHistogram; 10]> = OnceLock::new();
    SERIES.get_or_init(|| {
        std::array::from_fn(|i| match i {
            0..=5 => BenchHistogram::new(true, true),
            6 | 7 => BenchHistogram::new(true, false),
            _ => BenchHistogram::new(false, false),
        })
    })
}

/// The handler with the readings and observations of variant 3: 3 readings here, 2 in its
/// answer.
pub async fn chat(body: Bytes) -> Result<Response, ChatError> {
    let series = series();
    let start = BenchHistogram::now();
    let checked = check(&body)?;
    let sent = BenchHistogram::now();
    series[0].observe_between(start, sent);
    series[1].observe_between(start, sent);
    let chunks = call_provider(checked.model, checked.prepared).await?;
    let answered = BenchHistogram::now();
    series[2].observe_between(sent, answered);
    series[3].observe_between(sent, answered);
    Ok(answer(Floor {
        chunks,
        start,
        sent,
        first_poll: 0,
        done: false,
    }))
}

/// The answer: a reading at its first poll and one at its end, where it observes the rest.
struct Floor {
    chunks: Chunks,
    start: u64,
    sent: u64,
    first_poll: u64,
    done: bool,
}

impl Stream for Floor {
    type Item = Bytes;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        if self.first_poll == 0 {
            self.first_poll = BenchHistogram::now();
        }
        let polled = self.chunks.poll_next_unpin(cx);
        if let (Poll::Ready(None), false) = (&polled, self.done) {
            self.done = true;
            let series = series();
            let end = BenchHistogram::now();
            series[4].observe_between(self.first_poll, end);
            series[5].observe_between(self.first_poll, end);
            series[6].observe_between(self.sent, end);
            series[7].observe_between(self.start, end);
            series[8].observe_between(self.start, end);
            series[9].observe_between(self.start, end);
        }
        polled
    }
}
