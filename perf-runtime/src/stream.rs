//! A response stream that carries its request past the handler's return.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use pin_project_lite::pin_project;

use crate::clock::Clock;
use crate::tracker::{Outcome, PerformanceTracker, UnwindWatch};

pin_project! {
    /// A stream that times its own streaming and ends its request when it ends or is dropped.
    ///
    /// Made by [`PerformanceTracker::stream`] or [`current::stream`](crate::current::stream)
    /// (`#[perf_stream]`). Streaming is timed from the wrapping until the inner stream yields
    /// `None` or this stream is dropped (a client that hangs up), and recorded once.
    pub struct TrackedStream<S> {
        #[pin]
        inner: S,
        request: Option<(PerformanceTracker, Clock)>,
    }

    impl<S> PinnedDrop for TrackedStream<S> {
        fn drop(this: Pin<&mut Self>) {
            finish(this.project().request, false);
        }
    }
}

impl<S> TrackedStream<S> {
    pub(crate) fn new(inner: S, tracker: PerformanceTracker) -> Self {
        TrackedStream {
            inner,
            request: Some((tracker, Clock::now())),
        }
    }
}

/// Records the streaming and ends the request, the first time it is called. A stream dropped
/// before its end still ends the request (its streaming really stopped there), counted as
/// `cancelled`; during a panic, or after a poll that panicked, it does not end (the tracker
/// counts an `error` when dropped).
fn finish(request: &mut Option<(PerformanceTracker, Clock)>, exhausted: bool) {
    if let Some((tracker, start)) = request.take() {
        tracker.record_streaming(start.elapsed());
        if !tracker.is_panicking() {
            tracker.end_as(if exhausted {
                None
            } else {
                Some(Outcome::Cancelled)
            });
        }
    }
}

impl<S: Stream> Stream for TrackedStream<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.project();
        let watch = UnwindWatch(this.request.as_ref().map(|(tracker, _)| tracker));
        let polled = this.inner.poll_next(cx);
        drop(watch);
        if let Poll::Ready(None) = polled {
            finish(this.request, true);
        }
        polled
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}
