//! The request body's read timeout: the whole body within a time of its head, and, after a
//! grace, at a minimum average rate. hyper times only the head: a body sent at one byte a second
//! would hold its connection (and its slot of `--max-connections`) for as long as it likes.
//!
//! The body is wrapped as the request comes in; reading it past a limit fails with a
//! [`BodyTimeout`], which the gateway answers 408 (see [`super::error::RequestBody`]).

use std::fmt;
use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use http_body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// How long a body's first part may take before its rate counts: a client's first packets
/// (and a TLS proxy's) may lag its head a little.
pub const MIN_RATE_GRACE: Duration = Duration::from_secs(2);

/// The limits on reading a request's body: each `None` is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BodyLimits {
    /// The whole body within this time of the head: `--body-read-timeout-ms`.
    pub timeout: Option<Duration>,
    /// After [`MIN_RATE_GRACE`], at least this many bytes a second on average since the head:
    /// `--body-min-rate`.
    pub min_rate: Option<u64>,
}

impl BodyLimits {
    /// `request` with its body read within these limits.
    pub fn apply(self, request: Request) -> Request {
        if self == BodyLimits::default() {
            return request;
        }
        request.map(|body| Body::new(TimedBody::new(body, self)))
    }
}

/// Why a body was cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyTimeout {
    /// The whole body did not arrive within `--body-read-timeout-ms`.
    Timeout,
    /// It came slower than `--body-min-rate`.
    TooSlow,
}

impl BodyTimeout {
    /// The `reason` label of the refusal: `body_timeout` or `body_too_slow`.
    pub fn reason(self) -> &'static str {
        match self {
            BodyTimeout::Timeout => "body_timeout",
            BodyTimeout::TooSlow => "body_too_slow",
        }
    }

    /// The cut-off that made reading a body fail with `error`, if one did (it is wrapped by
    /// axum's body and extractor errors).
    pub fn cause_of(error: &(dyn std::error::Error + 'static)) -> Option<BodyTimeout> {
        let mut next = Some(error);
        while let Some(error) = next {
            if let Some(&timeout) = error.downcast_ref::<BodyTimeout>() {
                return Some(timeout);
            }
            next = error.source();
        }
        None
    }
}

impl fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BodyTimeout::Timeout => "the request body did not arrive in time",
            BodyTimeout::TooSlow => "the request body arrived too slowly",
        })
    }
}

impl std::error::Error for BodyTimeout {}

/// A request body read within [`BodyLimits`].
struct TimedBody {
    body: Body,
    limits: BodyLimits,
    head: Instant,
    received: u64,
    /// Wakes the reader at the next limit while the client sends nothing.
    timer: Option<Pin<Box<Sleep>>>,
}

impl TimedBody {
    fn new(body: Body, limits: BodyLimits) -> TimedBody {
        TimedBody {
            body,
            limits,
            head: Instant::now(),
            received: 0,
            timer: None,
        }
    }

    /// The first limit the body reaches if nothing more comes, and which.
    fn next_limit(&self) -> Option<(Instant, BodyTimeout)> {
        let whole = self
            .limits
            .timeout
            .map(|t| (self.head + t, BodyTimeout::Timeout));
        let rate = self.limits.min_rate.filter(|&r| r > 0).map(|rate| {
            // What has come so far is enough until it would be `rate` a second since the head.
            let covered = Duration::from_secs_f64(self.received as f64 / rate as f64);
            let at = self.head + MIN_RATE_GRACE.max(covered);
            (at, BodyTimeout::TooSlow)
        });
        match (whole, rate) {
            (Some(w), Some(r)) => Some(if r.0 < w.0 { r } else { w }),
            (w, r) => w.or(r),
        }
    }
}

impl http_body::Body for TimedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                }
                return Poll::Ready(Some(Ok(frame)));
            }
            Poll::Ready(other) => return Poll::Ready(other),
            Poll::Pending => {}
        }
        let Some((at, which)) = this.next_limit() else {
            return Poll::Pending;
        };
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        if timer.deadline() != at {
            timer.as_mut().reset(at);
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(which)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    /// A body whose client sends `chunk` every `every`, forever.
    fn trickle(chunk: &'static [u8], every: Duration) -> Body {
        let chunks = futures_util::stream::unfold((), move |()| async move {
            tokio::time::sleep(every).await;
            Some((Ok::<_, std::io::Error>(Bytes::from_static(chunk)), ()))
        });
        Body::from_stream(chunks.boxed())
    }

    async fn cut_after(limits: BodyLimits, body: Body) -> (Duration, Option<BodyTimeout>) {
        let started = Instant::now();
        let request = limits.apply(Request::new(body));
        let error = axum::body::to_bytes(request.into_body(), usize::MAX)
            .await
            .err();
        let cause = error.as_ref().and_then(|e| BodyTimeout::cause_of(e));
        (started.elapsed(), cause)
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_trickles_is_cut_at_the_first_limit() {
        let limits = BodyLimits {
            timeout: Some(Duration::from_secs(30)),
            min_rate: Some(100),
        };
        // 1 byte a second: under 100 B/s, cut when the grace is over.
        let (after, why) = cut_after(limits, trickle(b"x", Duration::from_secs(1))).await;
        assert_eq!((after, why), (MIN_RATE_GRACE, Some(BodyTimeout::TooSlow)));
        // 150 B/s keeps above the rate: cut at the whole body's time limit.
        let (after, why) = cut_after(limits, trickle(&[b'x'; 150], Duration::from_secs(1))).await;
        assert_eq!(
            (after, why),
            (Duration::from_secs(30), Some(BodyTimeout::Timeout))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_in_time_is_read_whole() {
        let limits = BodyLimits {
            timeout: Some(Duration::from_secs(30)),
            min_rate: Some(100),
        };
        let body = Body::from("{\"model\": \"m\"}");
        let request = limits.apply(Request::new(body));
        let bytes = axum::body::to_bytes(request.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(&bytes[..], b"{\"model\": \"m\"}");
    }
}
