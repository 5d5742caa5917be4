//! The connections of a server: HTTP/1.1 and HTTP/2 (prior knowledge) on one listener with
//! hyper, an idle timeout that covers both, a cap on open connections, and graceful shutdown,
//! none of which `axum::serve` gives (its header timeout has no timer, so is never in force).

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::http::header::CONNECTION;
use axum::http::Version;
use axum::response::Response;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{oneshot, watch, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

use super::descriptors::{self, Use};
use super::idle::{held_open, Activity, Idle};

/// Streams one HTTP/2 connection may have open at once (hyper's default is 200): what each costs
/// is counted in the gateway's descriptor budget anyway, this bounds one client's share.
const MAX_H2_STREAMS: u32 = 100;

/// How long a connection told to close (a body cut off by its read timeout) may take to send
/// its last answer.
const CLOSE_LINGER: Duration = Duration::from_secs(5);

/// How the gateway's server treats client connections: each `None` is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConnectionLimits {
    /// Time to send a complete request head, from connecting or from the end of the previous
    /// answer on a kept-alive connection: `--header-read-timeout-ms`.
    pub header_read_timeout: Option<Duration>,
    /// Connections served at once: `--max-connections`, lowered to fit the descriptor budget.
    pub max_connections: Option<usize>,
    /// Its connections count in `gateway_descriptors_in_use{use="client_connections"}`: the
    /// gateway's listeners (not the mock provider's).
    pub counted: bool,
}

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

    /// Serves `router` on `listener` in a new task, over HTTP/1.1 and HTTP/2 (a client that
    /// opens with HTTP/2's preface: prior knowledge, h2c) with hyper, within `limits`:
    ///
    /// * a connection with no request open for `limits.header_read_timeout` is closed: one that
    ///   has not sent a complete request head within that time of connecting, or of its
    ///   previous answer's end (an idle kept-alive connection, an HTTP/2 one with no stream);
    /// * at most `limits.max_connections` connections are served at once: the server accepts
    ///   the next one only when one has closed, and meanwhile new ones wait in the kernel's
    ///   listen backlog (and, past it, their client retries the connection);
    /// * an HTTP/2 connection has at most 100 streams open at once.
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

/// Connections waiting to be accepted that the kernel keeps (it caps this at
/// `net.core.somaxconn`, 4,096 on current Linux): in a burst, a client past the backlog has its
/// connection retried by its kernel after a second, and again after three.
const BACKLOG: u32 = 4096;

/// A listener on `addr` with a backlog of `BACKLOG` (4,096) (tokio's `bind` asks for 1,024).
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Accepts connections until told to stop (or the handle is dropped), each served in a task of
/// its own; then closes the idle ones, and waits for the others to finish their answers.
async fn accept_loop(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    mut stopped: oneshot::Receiver<()>,
) {
    let http = builder(&limits);
    let permits = limits
        .max_connections
        .map(|n| Arc::new(Semaphore::new(n.min(Semaphore::MAX_PERMITS))));
    // Told to every connection at shutdown; each then closes once its answers are out.
    let (stop_all, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
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
            // Reaps the tasks of closed connections as it goes.
            Some(_) = connections.join_next() => continue,
            _ = &mut stopped => break,
        };
        // SSE events are small writes: without TCP_NODELAY each waits for the client's delayed
        // ACK (~40 ms), which would show up as streaming time.
        let _ = tcp.set_nodelay(true);
        let counted = limits.counted.then(ConnectionCounted::open);
        let activity = Activity::new();
        let service = watched(router.clone(), activity.clone());
        let connection = http
            .serve_connection(TokioIo::new(tcp), service)
            .into_owned();
        let idle_limit = limits.header_read_timeout;
        let mut stopping = stopping.clone();
        connections.spawn(async move {
            // Errors are the client's: a timeout, a reset, a malformed request.
            tokio::pin!(connection);
            let linger = tokio::select! {
                _ = connection.as_mut() => None,
                // Dropped: closed at once (nothing is on its way out).
                Idle::TimedOut = activity.idle_for(idle_limit) => None,
                // Its last answer may still be on its way out; a client that stops reading
                // gets a few seconds.
                _ = activity.idle_for(None) => Some(CLOSE_LINGER),
                // The answers open finish first (the caller bounds the shutdown).
                _ = stopping.wait_for(|stop| *stop) => Some(Duration::MAX),
            };
            if let Some(linger) = linger {
                // Idle HTTP/1.1 connections close, HTTP/2 ones get a GOAWAY.
                connection.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(linger, connection).await;
            }
            drop((permit, counted));
        });
    }
    drop(listener);
    let _ = stop_all.send(true);
    while connections.join_next().await.is_some() {}
}

/// hyper's builder for both protocols: HTTP/1.1 with its header-read timeout (a head trickled
/// within a kept-alive connection), HTTP/2 with at most [`MAX_H2_STREAMS`] streams.
fn builder(limits: &ConnectionLimits) -> auto::Builder<TokioExecutor> {
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    http.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_H2_STREAMS);
    http
}

/// `router` as one connection's hyper service: each request open from its head to the end of
/// its answer's body, for the idle timeout.
fn watched(
    router: Router,
    activity: Arc<Activity>,
) -> impl hyper::service::Service<
    Request<hyper::body::Incoming>,
    Response = Response,
    Error = Infallible,
    Future = impl std::future::Future<Output = Result<Response, Infallible>> + Send + 'static,
> + Clone {
    let service = TowerToHyperService::new(router);
    hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
        let open = activity.open();
        let http2 = request.version() == Version::HTTP_2;
        let answer = hyper::service::Service::call(&service, request);
        let activity = activity.clone();
        async move {
            let mut response: Response = answer.await?;
            // `Connection: close` (a body cut off by its read timeout) closes an HTTP/1.1
            // connection in hyper; HTTP/2 has no such header: the connection is closed once
            // its streams are done.
            if http2 && response.headers_mut().remove(CONNECTION).is_some() {
                activity.close_when_idle();
            }
            Ok::<_, Infallible>(response.map(|body| held_open(body, open)))
        }
    })
}

/// A client connection open, in `gateway_descriptors_in_use{use="client_connections"}` until
/// it closes.
struct ConnectionCounted;

impl ConnectionCounted {
    fn open() -> ConnectionCounted {
        descriptors::in_use(Use::ClientConnections, 1);
        ConnectionCounted
    }
}

impl Drop for ConnectionCounted {
    fn drop(&mut self) {
        descriptors::in_use(Use::ClientConnections, -1);
    }
}
