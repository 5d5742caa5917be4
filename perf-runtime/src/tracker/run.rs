//! The future of one request: its body, with its request current while it is polled.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use super::handler::HandlerShare;
use super::on_thread;
use super::state::{HandlerExit, RequestState};
use super::unwind::UnwindWatch;

pin_project! {
    /// A request's future, made by [`PerformanceTracker::run`] (and by `#[perf_endpoint]`).
    ///
    /// It owns the handler's share of its request and makes its request current for each poll of the body,
    /// and for the body's drop, so that guards dropped by a cancelled body still find their
    /// request. When the body completes, the handler lets go of the request (`succeeded` decides
    /// whether as a success or an error); the request ends then, or when the last stream it was
    /// handed to ends. Dropped before, it lets go as cancelled.
    pub struct Run<F, C> {
        share: HandlerShare,
        #[pin]
        body: Option<F>,
        succeeded: Option<C>,
        // It joined a request it does not own: `Some(whether its failure fails it)`.
        joined: Option<bool>,
    }

    impl<F, C> PinnedDrop for Run<F, C> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            let _current = on_thread::enter(this.share.state());
            this.body.set(None);
        }
    }
}

impl<F: Future, C: FnOnce(&F::Output) -> bool> Run<F, C> {
    pub(crate) fn new(share: HandlerShare, body: F, succeeded: C) -> Self {
        Run {
            share,
            body: Some(body),
            succeeded: Some(succeeded),
            joined: None,
        }
    }

    /// `body`, run inside `state`'s request, which it joins rather than owns: an endpoint
    /// called inside another request (the layer's exchange, or another endpoint's). Only the
    /// exchange's own handler fails it with an `Err`.
    pub(crate) fn joined(state: &'static RequestState, body: F, succeeded: C) -> Self {
        Run {
            joined: Some(state.join_handler()),
            share: HandlerShare::view(state.counted()),
            body: Some(body),
            succeeded: Some(succeeded),
        }
    }
}

impl<F: Future, C: FnOnce(&F::Output) -> bool> Future for Run<F, C> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let mut this = self.project();
        let state = this.share.state();
        let entered = on_thread::enter(state);
        let watch = UnwindWatch::new(state);
        let body = this
            .body
            .as_mut()
            .as_pin_mut()
            .expect("a request future polled after it completed");
        let polled = body.poll(cx);
        watch.passed();
        // The output is looked at where it lies and returned as it was polled: moved out and
        // back it would be copied twice (a handler's answer is often a stream of 100+ bytes).
        let Poll::Ready(out) = &polled else {
            return Poll::Pending;
        };
        this.body.set(None);
        drop(entered);
        let succeeded = this.succeeded.take().is_none_or(|succeeded| succeeded(out));
        match this.joined {
            None => state.release_handler(HandlerExit::Returned(succeeded)),
            Some(true) if !succeeded => state.fail(),
            Some(_) => {}
        }
        polled
    }
}
