//! A connection's idle time: how long it has had no request open, for HTTP/1.1 and HTTP/2 alike.
//!
//! hyper's header-read timeout covers an HTTP/1.1 connection once hyper knows it is one; it does
//! not cover the first bytes (read to tell HTTP/1.1 from HTTP/2's preface), nor an HTTP/2
//! connection, which may stay open with no stream forever. The server closes a connection that
//! has had no request open for the header-read timeout instead: a request counts as open from
//! its head to the end (or drop) of its answer's body.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use std::time::Duration;

use axum::body::Body;
use http_body_util::BodyExt;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The requests open on one connection, and since when it has had none.
#[derive(Debug)]
pub struct Activity {
    born: Instant,
    open: AtomicUsize,
    /// When the connection last had no request open, in milliseconds since `born`.
    idle_since_ms: AtomicU64,
    /// Closed as soon as no request is open, without waiting for the limit.
    closing: AtomicBool,
    changed: Notify,
}

impl Activity {
    /// A connection just accepted: idle from now.
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            born: Instant::now(),
            open: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            changed: Notify::new(),
        })
    }

    /// A request begins: the connection is busy until the returned guard drops.
    pub fn open(self: &Arc<Self>) -> OpenRequest {
        self.open.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_waiters();
        OpenRequest(self.clone())
    }

    /// Has the connection closed once no request is open: an HTTP/2 client that trickled a
    /// body is told to go away as an HTTP/1.1 one is (`Connection: close`).
    pub fn close_when_idle(&self) {
        self.closing.store(true, Ordering::Release);
        self.changed.notify_waiters();
    }

    /// Returns once the connection has had no request open for `limit` (`None`: never), or at
    /// all once [`close_when_idle`](Self::close_when_idle) was called: which of the two.
    pub async fn idle_for(&self, limit: Option<Duration>) -> Idle {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before the state is read: a change in between still wakes it.
            changed.as_mut().enable();
            if self.open.load(Ordering::Acquire) > 0 {
                changed.await;
                continue;
            }
            if self.closing.load(Ordering::Acquire) {
                return Idle::Closing;
            }
            let since = Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire));
            match limit.and_then(|limit| (self.born + since).checked_add(limit)) {
                Some(deadline) if Instant::now() >= deadline => return Idle::TimedOut,
                Some(deadline) => tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => {}
                    _ = changed => {}
                },
                // No limit: only a change can end it.
                None => changed.await,
            }
        }
    }
}

/// Why an idle connection is to close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idle {
    /// No request for the idle limit: nothing is pending, it can be dropped.
    TimedOut,
    /// Told to close once its requests were answered: its last answer may still be on its way
    /// out, so it closes gracefully.
    Closing,
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

/// `body`, keeping its request open (`open`) until it ends or is dropped: the frames pass as they
/// are, and `open` goes with the body.
pub fn held_open(body: Body, open: OpenRequest) -> Body {
    Body::new(body.map_frame(move |frame| {
        let _open = &open;
        frame
    }))
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
            async move { activity.idle_for(Some(limit)).await }
        });
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(!watch.is_finished(), "a request is open: never idle");
        let closed_at = Instant::now();
        drop(open);
        assert_eq!(watch.await.unwrap(), Idle::TimedOut);
        assert_eq!(
            Instant::now().duration_since(closed_at).as_secs(),
            10,
            "idle for the limit after the answer ended"
        );
    }
}
