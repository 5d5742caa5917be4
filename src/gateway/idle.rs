//! A connection's idle time: how long it has had no request open, for HTTP/1.1 and HTTP/2 alike.
//!
//! hyper's header-read timeout covers an HTTP/1.1 connection once hyper knows it is one; it does
//! not cover the first bytes (read to tell HTTP/1.1 from HTTP/2's preface), nor an HTTP/2
//! connection, which may stay open with no stream forever. The server closes a connection that
//! has had no request open for the header-read timeout instead: a request counts as open from
//! its head to the end (or drop) of its answer's body.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use http_body::{Frame, SizeHint};
use tokio::sync::Notify;
use tokio::time::Instant;

/// The requests open on one connection, and since when it has had none.
#[derive(Debug)]
pub struct Activity {
    born: Instant,
    open: AtomicUsize,
    /// When the connection last had no request open, in milliseconds since `born`.
    idle_since_ms: AtomicU64,
    changed: Notify,
}

impl Activity {
    /// A connection just accepted: idle from now.
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            born: Instant::now(),
            open: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            changed: Notify::new(),
        })
    }

    /// A request begins: the connection is busy until the returned guard drops.
    pub fn open(self: &Arc<Self>) -> OpenRequest {
        self.open.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_waiters();
        OpenRequest(self.clone())
    }

    /// Returns once the connection has had no request open for `limit`.
    pub async fn idle_for(&self, limit: Duration) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before the state is read: a change in between still wakes it.
            changed.as_mut().enable();
            if self.open.load(Ordering::Acquire) > 0 {
                changed.await;
                continue;
            }
            let since = Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire));
            let deadline = self.born + since + limit;
            if Instant::now() >= deadline {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {}
                _ = changed => {}
            }
        }
    }
}

/// A request open on its connection; dropped with the answer's body.
#[derive(Debug)]
pub struct OpenRequest(Arc<Activity>);

impl Drop for OpenRequest {
    fn drop(&mut self) {
        let activity = &self.0;
        let now = activity.born.elapsed().as_millis() as u64;
        activity.idle_since_ms.fetch_max(now, Ordering::AcqRel);
        activity.open.fetch_sub(1, Ordering::AcqRel);
        activity.changed.notify_waiters();
    }
}

/// An answer's body that keeps its request open until it ends or is dropped.
pub struct HeldBody {
    body: Body,
    _open: OpenRequest,
}

impl HeldBody {
    /// `body`, holding `open` as long as it lives.
    pub fn new(body: Body, open: OpenRequest) -> Body {
        Body::new(HeldBody { body, _open: open })
    }
}

impl http_body::Body for HeldBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
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

    #[tokio::test(start_paused = true)]
    async fn idle_counts_from_the_last_answer_and_not_while_one_is_open() {
        let activity = Activity::new();
        let limit = Duration::from_secs(10);
        let open = activity.open();
        let watch = tokio::spawn({
            let activity = activity.clone();
            async move { activity.idle_for(limit).await }
        });
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(!watch.is_finished(), "a request is open: never idle");
        let closed_at = Instant::now();
        drop(open);
        watch.await.unwrap();
        assert_eq!(
            Instant::now().duration_since(closed_at).as_secs(),
            10,
            "idle for the limit after the answer ended"
        );
    }
}
