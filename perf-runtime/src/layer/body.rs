//! The response body of a [`PerfLayer`](super::PerfLayer) exchange: the request ends with it.

use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::clock::Clock;
use crate::tracker::on_thread;
use crate::tracker::{HandlerExit, StateRef};

pin_project! {
    /// A response body that holds its request until its last frame is out, it yields an error,
    /// or it is dropped. The request is current while it is polled.
    pub struct PerfBody<B: Body> {
        #[pin]
        inner: B,
        // The request, until the body lets go of it.
        state: Option<StateRef>,
        // The answer to a `HEAD`: a server sends none of the body, and drops it unread.
        head: bool,
    }

    impl<B: Body> PinnedDrop for PerfBody<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(state) = this.state.take() {
                // A poll that panicked drops the body while unwinding (no watch per poll: a
                // frame's poll stays small).
                if std::thread::panicking() {
                    state.panicked();
                }
                // A server stops asking once the body says it is at its end, and drops it
                // (hyper, as soon as it has written the last frame): its end, not a hang-up. Not
                // asked at each frame: one dynamic call a frame fewer in axum's boxed bodies.
                let ended = (*this.head || this.inner.is_end_stream()).then_some(true);
                state.release_body(ended, Clock::now());
            }
        }
    }
}

impl<B: Body> PerfBody<B> {
    /// `inner`, holding no request: the body of a layer inside another's request.
    pub(crate) fn passing(inner: B) -> Self {
        PerfBody {
            inner,
            state: None,
            head: false,
        }
    }

    /// `inner`, holding the handler's share of `state`'s request, which its handler returned
    /// it in: [`take_over`](Self::take_over) says so.
    #[inline]
    pub(crate) fn new(inner: B, state: StateRef, head: bool) -> Self {
        PerfBody {
            inner,
            state: Some(state),
            head,
        }
    }

    /// The handler's share becomes the body's; a body already at its end lets go now. Apart
    /// from [`new`](Self::new), so that the body is moved only once, into the response.
    #[inline]
    pub(crate) fn take_over(&mut self) {
        let Some(state) = &self.state else {
            return;
        };
        if self.inner.is_end_stream() {
            state.release_exchange_handler(HandlerExit::Returned(true));
            self.state = None;
        } else {
            state.pass_to_body();
        }
    }
}

/// The body lets go of its request at its end (`ended`) or after an error. A function of its
/// own, apart from the frame's poll: that poll then stays small enough for a server's frame loop
/// to take in whole, and the frame (96 bytes) goes from the inner body to the loop without being
/// copied through the stack (3197fac: ~70 ns a request in the overhead bench's (f)). Marked
/// `#[inline(never)]` instead, it measured no gain: the frame loop then kept its call.
#[inline]
fn let_go(state: &mut Option<StateRef>, ended: bool) {
    if let Some(state) = state.take() {
        state.release_body(Some(ended), Clock::now());
    }
}

impl<B: Body> Body for PerfBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let mut this = self.project();
        let Some(state) = this.state.as_ref() else {
            return this.inner.poll_frame(cx);
        };
        let entered = on_thread::enter(state);
        let polled = this.inner.as_mut().poll_frame(cx);
        drop(entered);
        let ended = match &polled {
            Poll::Pending | Poll::Ready(Some(Ok(_))) => None,
            Poll::Ready(Some(Err(_))) => Some(false),
            Poll::Ready(None) => Some(true),
        };
        if let Some(ended) = ended {
            let_go(this.state, ended);
        }
        polled
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
