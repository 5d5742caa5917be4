//! One request through a router, in-process, as a server drives it: `Service::call`, the future
//! to its response, then the response body frame by frame to its end. No socket and no task:
//! every future here is ready at its first polls, so a noop waker and a loop are the executor,
//! and what a variant adds over variant 1 is its instrumentation alone.

use std::future::{poll_fn, Future};
use std::hint::black_box;
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Waker};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, Uri};
use axum::Router;
use http_body::Body as _;
use tower::Service;

use crate::handlers::{BODY, ROUTE};

/// Polls `fut` to its end on this thread. A future still pending after a few polls would wait
/// for a wake-up that never comes: the harness runs none, so that is a bug, not a wait.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..64 {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
    }
    panic!("a request stayed pending: the harness only runs futures that are ready");
}

/// One request of the handler through `router`: the response's status and the bytes of its
/// body.
pub fn request(router: &mut Router) -> (StatusCode, usize) {
    let mut request = Request::new(Body::from(black_box(BODY)));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = Uri::from_static(ROUTE);
    // A router is always ready (`poll_ready` is `Ready(Ok(()))`): `call` at once, as a server
    // holding a ready service does.
    let answer = router.call(request);
    block_on(async {
        let response = match answer.await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let status = response.status();
        let mut body = response.into_body();
        let mut sent = 0;
        while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            if let Ok(data) = frame.expect("the body yields no error").into_data() {
                sent += black_box(data).len();
            }
        }
        (status, sent)
    })
}

/// This thread's CPU time in ns: what the timed table measures a batch with. Unlike the wall
/// clock it leaves out the time the scheduler gave other processes in the middle of a batch
/// (a batch of 2000 requests takes 2 to 8 ms, about a scheduler slice, so on a loaded shared
/// machine most batches would include someone else's); the cache lines they evicted still
/// count, as they would in production.
pub fn thread_cpu_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec; the clock id is a constant Linux knows.
    let failed = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) } != 0;
    assert!(!failed, "CLOCK_THREAD_CPUTIME_ID is readable");
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}
