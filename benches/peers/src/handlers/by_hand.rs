//! Variant 7: the `metrics` facade by hand, as its README shows (`counter!`, `histogram!`), into
//! metrics-exporter-prometheus' recorder: one counter and one histogram per request, both recorded
//! when the answer's last chunk is out, so that the duration covers the streaming as perf's
//! request duration does.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Bytes;
use axum::response::Response;
use futures_util::stream::{Stream, StreamExt};
use metrics::{counter, histogram};

use super::{answer, call_provider, check, ChatError, ROUTE};

/// The handler with its counter and histogram written by hand.
pub async fn chat(body: Bytes) -> Result<Response, ChatError> {
    let start = Instant::now();
    let checked = check(&body)?;
    let chunks = call_provider(checked.model, checked.prepared).await?;
    Ok(answer(Timed {
        chunks,
        start,
        done: false,
    }))
}

/// The answer's stream, which records the request when it ends.
struct Timed<S> {
    chunks: S,
    start: Instant,
    done: bool,
}

impl<S: Stream<Item = Bytes> + Unpin> Stream for Timed<S> {
    type Item = Bytes;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let polled = self.chunks.poll_next_unpin(cx);
        if let Poll::Ready(None) = polled {
            if !self.done {
                self.done = true;
                counter!("app_requests_total", "endpoint" => ROUTE, "status" => "200").increment(1);
                histogram!("app_request_duration_seconds", "endpoint" => ROUTE)
                    .record(self.start.elapsed());
            }
        }
        polled
    }
}
