//! The connections of a server: hyper's HTTP/1.1 with a header-read timeout, a cap on open
//! connections, and graceful shutdown, which `axum::serve` does not give (its header timeout
//! has no timer, so is never in force).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Semaphore};
use tokio::task::JoinHandle;

use super::config::ConnectionLimits;

/// An axum server running in the background, shut down gracefully when told or dropped.
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl ServerHandle {
    /// Serves `router` on `listener` in a new task, with no limit on connections (the mock
    /// provider's way).
    pub fn serve(listener: TcpListener, router: Router) -> io::Result<ServerHandle> {
        Self::serve_with(listener, router, ConnectionLimits::default())
    }

    /// Serves `router` on `listener` in a new task, over HTTP/1.1 with hyper, within `limits`:
    ///
    /// * a connection that has not sent a complete request head within
    ///   `limits.header_read_timeout` of connecting, or of its previous answer's end (an idle
    ///   kept-alive connection), is closed by hyper (its `header_read_timeout`, which
    ///   `axum::serve` leaves without a timer, so never in force);
    /// * at most `limits.max_connections` connections are served at once: the server accepts
    ///   the next one only when one has closed, and meanwhile new ones wait in the kernel's
    ///   listen backlog (and, past it, their client retries the connection).
    pub fn serve_with(
        listener: TcpListener,
        router: Router,
        limits: ConnectionLimits,
    ) -> io::Result<ServerHandle> {
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(accept_loop(listener, router, limits, stopped));
        Ok(ServerHandle { addr, stop, task })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections and waits for the open ones to finish.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Accepts connections until told to stop (or the handle is dropped), each served in a task of
/// its own; then closes the idle ones, and waits for the others to finish their answers.
async fn accept_loop(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let permits = limits
        .max_connections
        .map(|n| Arc::new(Semaphore::new(n.min(Semaphore::MAX_PERMITS))));
    let graceful = GracefulShutdown::new();
    loop {
        let permit = match &permits {
            Some(permits) => tokio::select! {
                permit = permits.clone().acquire_owned() => permit.ok(),
                _ = &mut stopped => break,
            },
            None => None,
        };
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // A connection reset before it was accepted concerns that client only. Out
                    // of file descriptors (EMFILE), or of memory: wait for connections to close
                    // rather than spin; the pending ones stay in the backlog.
                    if !matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
                    ) {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    continue;
                }
            },
            _ = &mut stopped => break,
        };
        // SSE events are small writes: without TCP_NODELAY each waits for the client's delayed
        // ACK (~40 ms), which would show up as streaming time.
        let _ = tcp.set_nodelay(true);
        let connection =
            http.serve_connection(TokioIo::new(tcp), TowerToHyperService::new(router.clone()));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // Errors are the client's: a header timeout, a reset, a malformed request.
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
