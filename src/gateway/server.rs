//! Starting and stopping the gateway: the router, its state, and the servers in the background.

use std::any::Any;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use perf_runtime::InstallError;
use reqwest::Url;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tower_http::catch_panic::CatchPanicLayer;

use super::auth::ApiKeys;
use super::config::{Config, ConnectionLimits, LabelSettings};
use super::error::{fallback, ApiError};
use super::handlers::{chat_completions, healthz, responses, App};
use super::mock::MockProvider;
use super::upstream::Upstream;

/// The gateway's routes, with `app` as their state and request bodies limited to
/// `max_body_bytes` (a larger one is answered 413): the API, `/healthz`, and `/metrics` open to
/// anyone. A handler that panics is answered 500.
pub fn router(app: App, max_body_bytes: usize) -> Router {
    let metrics = MetricsCache::new(Duration::from_secs(1));
    service(
        api_routes().merge(metrics_routes(MetricsAccess::Open, metrics)),
        app,
        max_body_bytes,
    )
}

/// The API routes: `POST /v1/chat/completions`, `POST /v1/responses` and `GET /healthz`.
pub fn api_routes() -> Router<App> {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/responses", post(responses))
        .route("/healthz", get(healthz))
}

/// `routes` as a service: unknown routes answered 404, request bodies limited to
/// `max_body_bytes`, a panicking handler answered 500, `app` as the state.
fn service(routes: Router<App>, app: App, max_body_bytes: usize) -> Router {
    routes
        .fallback(fallback)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(catch_panic())
        .with_state(app)
}

/// Answers a handler that panicked with a 500 in the OpenAI error shape, instead of dropping the
/// connection without an answer. The request is still counted once, as
/// `requests_total{outcome="error"}`, and the stages it went through are recorded. The panic
/// message is not sent to the client (the panic hook prints it on the gateway's stderr).
///
/// It covers the handler's future; a panic while the response body streams (after the status was
/// sent) ends that connection only: the client sees the stream broken off.
fn catch_panic() -> CatchPanicLayer<fn(Box<dyn Any + Send + 'static>) -> Response> {
    fn answer(_panic: Box<dyn Any + Send + 'static>) -> Response {
        ApiError::internal("the gateway failed while handling this request").into_response()
    }
    CatchPanicLayer::custom(answer as fn(Box<dyn Any + Send + 'static>) -> Response)
}

/// Who may read `GET /metrics`.
#[derive(Debug, Clone)]
pub enum MetricsAccess {
    /// Anyone who reaches the listener: the default, for a Prometheus on a private network.
    Open,
    /// Only a request with `Authorization: Bearer TOKEN`: 401 otherwise.
    Token(Arc<ApiKeys>),
}

impl MetricsAccess {
    /// Open without a token, else behind it (`--metrics-token`). An empty token is refused: it
    /// would lock Prometheus out, or look like protection while being none.
    pub fn new(token: Option<&str>) -> io::Result<MetricsAccess> {
        match token {
            None => Ok(MetricsAccess::Open),
            Some(token) if token.trim().is_empty() => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "--metrics-token must not be empty",
            )),
            Some(token) => Ok(MetricsAccess::Token(Arc::new(ApiKeys::new([token.trim()])))),
        }
    }

    fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        match self {
            MetricsAccess::Open => Ok(()),
            MetricsAccess::Token(token) => token.check(headers).map_err(|_| {
                ApiError::unauthorized(
                    "/metrics needs `Authorization: Bearer TOKEN` with the gateway's --metrics-token",
                )
            }),
        }
    }
}

/// The `operation` of `operation_duration_seconds` that times each rendering of `/metrics`:
/// its count is the number of renderings, its sum their time.
pub const RENDER_OPERATION: &str = "metrics_render";

/// One rendering of `/metrics` shared by every scrape for a short while.
///
/// Rendering perf's families costs CPU in proportion to their series (a few ms for 1,000
/// models); scrapers that loop on `/metrics` would otherwise take that from the API. Here at
/// most one rendering is made per `max_age`: a scrape finds the last one if it is younger, and a
/// scrape arriving while another renders waits for that rendering instead of starting its own.
/// The rendering runs on tokio's blocking pool, off the workers that serve the API, timed as
/// `operation_duration_seconds{operation="metrics_render"}`. Its gzip form, for scrapers that
/// accept it (Prometheus does), is made once too, at the first such scrape.
#[derive(Debug)]
pub struct MetricsCache {
    max_age: Duration,
    /// The last rendering. The lock is held across a rendering: whoever comes meanwhile waits
    /// for it.
    latest: tokio::sync::Mutex<Option<Rendering>>,
}

#[derive(Debug)]
struct Rendering {
    /// When the rendering started: the age of its numbers.
    at: Instant,
    text: Bytes,
    gzip: Option<Bytes>,
}

impl MetricsCache {
    /// A cache whose renderings serve scrapes for `max_age` (zero: one rendering per scrape,
    /// one at a time).
    pub fn new(max_age: Duration) -> Arc<MetricsCache> {
        Arc::new(MetricsCache {
            max_age,
            latest: tokio::sync::Mutex::new(None),
        })
    }

    /// The text format of the global metrics, at most `max_age` old.
    pub async fn get(&self) -> io::Result<Bytes> {
        self.rendering(false).await
    }

    /// The same, gzip-compressed (`Content-Encoding: gzip`).
    pub async fn get_gzip(&self) -> io::Result<Bytes> {
        self.rendering(true).await
    }

    async fn rendering(&self, gzip: bool) -> io::Result<Bytes> {
        let mut latest = self.latest.lock().await;
        let fresh = latest
            .as_ref()
            .is_some_and(|rendering| rendering.at.elapsed() < self.max_age);
        let rendering = match &mut *latest {
            Some(rendering) if fresh => rendering,
            stale => {
                let at = Instant::now();
                let text = tokio::task::spawn_blocking(|| {
                    let _timer = perf_runtime::track_duration(RENDER_OPERATION);
                    perf_runtime::exposition::render_global()
                })
                .await
                .map_err(io::Error::other)?;
                stale.insert(Rendering {
                    at,
                    text: Bytes::from(text),
                    gzip: None,
                })
            }
        };
        if !gzip {
            return Ok(rendering.text.clone());
        }
        if let Some(compressed) = &rendering.gzip {
            return Ok(compressed.clone());
        }
        let text = rendering.text.clone();
        let compressed = tokio::task::spawn_blocking(move || compress(&text))
            .await
            .map_err(io::Error::other)??;
        Ok(rendering.gzip.insert(compressed).clone())
    }
}

/// `text` gzip-compressed, at the fastest level: the text format compresses well at any.
fn compress(text: &[u8]) -> io::Result<Bytes> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(text.len() / 8),
        flate2::Compression::fast(),
    );
    encoder.write_all(text)?;
    Ok(encoder.finish()?.into())
}

/// Whether an `Accept-Encoding` header accepts gzip (not with `q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

#[derive(Debug, Clone)]
struct MetricsState {
    access: MetricsAccess,
    cache: Arc<MetricsCache>,
}

/// `GET /metrics` (the Prometheus text format of the global metrics, through `cache`, gzipped
/// for a scraper that accepts it), behind `access`.
pub fn metrics_routes<S: Clone + Send + Sync + 'static>(
    access: MetricsAccess,
    cache: Arc<MetricsCache>,
) -> Router<S> {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(MetricsState { access, cache })
}

async fn metrics(State(state): State<MetricsState>, headers: HeaderMap) -> Response {
    if let Err(e) = state.access.check(&headers) {
        return e.into_response();
    }
    let content_type = (header::CONTENT_TYPE, perf_runtime::exposition::CONTENT_TYPE);
    let vary = (header::VARY, "accept-encoding");
    let answer = if accepts_gzip(&headers) {
        state.cache.get_gzip().await.map(|gzip| {
            let encoding = (header::CONTENT_ENCODING, "gzip");
            ([content_type, vary, encoding], gzip).into_response()
        })
    } else {
        state
            .cache
            .get()
            .await
            .map(|text| ([content_type, vary], text).into_response())
    };
    answer.unwrap_or_else(|_| ApiError::internal("rendering the metrics failed").into_response())
}

/// Raises this process's soft limit of open files to its hard limit (where the system allows
/// that much), and returns the soft limit now in force.
///
/// Every client connection, and every connection to the provider, is a file descriptor: with
/// the usual soft limit of 1,024, a thousand idle connections lock every other client out
/// (`accept` fails with `EMFILE`), long before `--max-connections`. The hard limit is what the
/// administrator allows; the soft one is only a default.
pub fn raise_open_file_limit() -> io::Result<u64> {
    #[cfg(unix)]
    {
        rlimit::increase_nofile_limit(u64::MAX)
    }
    #[cfg(not(unix))]
    {
        Ok(u64::MAX)
    }
}

/// Installs perf's global metrics in the default registry with `settings` (the label cap and
/// allow-list), once per process: the `#[perf_endpoint]` handlers record into them.
///
/// A later call with the same settings does nothing, so several gateways can run in one process
/// (the tests do); with other settings it fails, as the metrics of a process have one label
/// budget. If perf's metrics were already in use before the first call (installed by an
/// embedding program, or recorded into), only the default settings are accepted, and the
/// metrics are kept as they are.
pub fn install_metrics(settings: &LabelSettings) -> io::Result<()> {
    static INSTALLED: Mutex<Option<LabelSettings>> = Mutex::new(None);
    let mut installed = INSTALLED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(current) = &*installed {
        if current == settings {
            return Ok(());
        }
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "the metrics of this process were installed with {current}; \
                 a gateway in the same process cannot use {settings}"
            ),
        ));
    }
    match settings.builder().install(prometheus::default_registry()) {
        Ok(_) => {}
        Err(InstallError::AlreadyInstalled) if *settings == LabelSettings::default() => {}
        Err(InstallError::AlreadyInstalled) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "cannot apply {settings}: perf's metrics were already in use in this \
                     process before the gateway started"
                ),
            ))
        }
        Err(e) => return Err(io::Error::other(e)),
    }
    *installed = Some(settings.clone());
    Ok(())
}

/// A running gateway, with its mock provider unless it forwards to a real one.
///
/// Dropping it stops the servers too, gracefully, in the background; [`shutdown`](Self::shutdown)
/// also waits for them.
#[derive(Debug)]
pub struct Gateway {
    server: ServerHandle,
    metrics_server: Option<ServerHandle>,
    mock: Option<MockProvider>,
    upstream: Url,
}

impl Gateway {
    /// Starts the gateway on `config.listen` (port 0 for an ephemeral one), and the mock
    /// provider on its own ephemeral port unless `config.upstream` is set. `/metrics` is served
    /// on `config.metrics_listen` if set, else on `config.listen`; behind
    /// `config.metrics_token` if set.
    ///
    /// The first start in a process installs the metrics with the label settings of `config`
    /// (see [`install_metrics`]): a later one must ask for the same.
    pub async fn start(config: &Config) -> io::Result<Gateway> {
        Self::start_with_routes(config, Router::new()).await
    }

    /// Like [`start`](Self::start), with `routes` served next to the API, behind the same
    /// layers (body limit, 500 for a panicking handler) and with the same [`App`] state: for
    /// embedding the gateway, and for tests that need a handler of their own (one that fails
    /// on purpose). `routes` must not repeat a route of the gateway (axum panics on overlaps).
    pub async fn start_with_routes(config: &Config, routes: Router<App>) -> io::Result<Gateway> {
        install_metrics(&config.label_settings())?;
        let access = MetricsAccess::new(config.metrics_token.as_deref())?;
        let (mock, upstream) = match &config.upstream {
            Some(url) => (None, url.clone()),
            None => {
                let mock = MockProvider::start(config.mock()).await?;
                let url = Url::parse(&mock.base_url()).map_err(io::Error::other)?;
                (Some(mock), url)
            }
        };
        let client = Upstream::new(
            upstream.clone(),
            config.upstream_key.clone(),
            config.upstream_timeouts(),
        )
        .map_err(io::Error::other)?;
        let app = App::new(
            ApiKeys::new(&config.api_keys),
            client,
            &config.provider_label(),
        )
        .with_retries(config.upstream_retries)
        .with_server_timing(config.server_timing);
        let cache = MetricsCache::new(Duration::from_millis(config.metrics_max_age_ms));
        let limits = config.connection_limits();
        let mut routes = api_routes().merge(routes);
        let metrics_server = match config.metrics_listen {
            Some(addr) => {
                let listener = TcpListener::bind(addr).await?;
                let metrics = metrics_routes(access, cache)
                    .route("/healthz", get(healthz))
                    .fallback(fallback)
                    .layer(catch_panic());
                Some(ServerHandle::serve_with(listener, metrics, limits)?)
            }
            None => {
                routes = routes.merge(metrics_routes(access, cache));
                None
            }
        };
        let listener = TcpListener::bind(config.listen).await?;
        let server = ServerHandle::serve_with(
            listener,
            service(routes, app, config.max_body_bytes),
            limits,
        )?;
        Ok(Gateway {
            server,
            metrics_server,
            mock,
            upstream,
        })
    }

    /// The address the gateway listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The gateway's OpenAI base URL for a client on this machine, e.g.
    /// `http://127.0.0.1:8080/v1` (loopback when listening on all addresses).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", reachable(self.addr()))
    }

    /// The address `/metrics` is served on: `--metrics-listen`'s, else the gateway's.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_server
            .as_ref()
            .map_or_else(|| self.addr(), ServerHandle::addr)
    }

    /// The URL of `/metrics` for a client on this machine, e.g. `http://127.0.0.1:8080/metrics`.
    pub fn metrics_url(&self) -> String {
        format!("http://{}/metrics", reachable(self.metrics_addr()))
    }

    /// The provider's base URL: the mock's, or `--upstream`.
    pub fn upstream_url(&self) -> &Url {
        &self.upstream
    }

    /// The mock provider, if the gateway started one.
    pub fn mock(&self) -> Option<&MockProvider> {
        self.mock.as_ref()
    }

    /// Stops accepting connections, waits for the open ones to finish, then stops the mock.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
        if let Some(metrics) = self.metrics_server {
            metrics.shutdown().await;
        }
        if let Some(mock) = self.mock {
            mock.shutdown().await;
        }
    }
}

/// `addr`, with loopback in place of an unspecified IP (a server listening on all addresses).
fn reachable(mut addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
        });
    }
    addr
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn accept(values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(header::ACCEPT_ENCODING, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn gzip_when_accepted() {
        assert!(accepts_gzip(&accept(&["gzip"])));
        assert!(accepts_gzip(&accept(&["identity", "deflate, GZIP;q=0.5"])));
        assert!(accepts_gzip(&accept(&["*"])));
        assert!(!accepts_gzip(&accept(&[])));
        assert!(!accepts_gzip(&accept(&["br, deflate"])));
        assert!(!accepts_gzip(&accept(&["gzip;q=0"])));
    }

    #[tokio::test]
    async fn one_rendering_serves_both_forms() {
        let cache = MetricsCache::new(Duration::from_secs(60));
        let text = cache.get().await.expect("a rendering");
        let gzip = cache.get_gzip().await.expect("its gzip form");
        assert_eq!(cache.get_gzip().await.expect("the same"), gzip);
        let mut back = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gzip[..]), &mut back)
            .expect("valid gzip");
        assert_eq!(back, text);
    }
}
