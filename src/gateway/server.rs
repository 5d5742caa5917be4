//! Starting and stopping the gateway: the router, its state, and the servers in the background.

use std::any::Any;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use perf_runtime::otlp::OtlpHandle;
use perf_runtime::InstallError;
#[cfg(not(feature = "uninstrumented"))]
use perf_runtime::PerfLayer;
use reqwest::Url;
use tower_http::catch_panic::CatchPanicLayer;

use super::auth::ApiKeys;
use super::body_timeout::BodyLimits;
use super::config::{Config, LabelSettings};
use super::descriptors::{CallBudget, DescriptorPlan};
use super::error::{fallback, ApiError};
use super::handlers::{chat_completions, embeddings, healthz, models, responses, App};
use super::listen::{self, ConnectionLimits, ServerHandle};
use super::mock::MockProvider;
use super::trace;
use super::upstream::Upstream;

pub use super::metrics_route::{metrics_routes, MetricsAccess, MetricsCache, RENDER_OPERATION};

/// The gateway's routes, with `app` as their state and request bodies limited to
/// `max_body_bytes` (a larger one is answered 413): the API, `/healthz`, and `/metrics` open to
/// anyone. A handler that panics is answered 500.
pub fn router(app: App, max_body_bytes: usize) -> Router {
    let metrics = MetricsCache::new(Duration::ZERO);
    service(
        api_routes().merge(metrics_routes(MetricsAccess::Open, metrics)),
        app,
        max_body_bytes,
        BodyLimits::default(),
    )
}

/// The API routes: `POST /v1/chat/completions`, `POST /v1/responses`, `POST /v1/embeddings` and
/// `GET /v1/models`, each HTTP exchange one request of [`PerfLayer`] (it ends with the answer's
/// body; the handlers' `#[perf_endpoint]` joins it), and `GET /healthz`, untimed.
pub fn api_routes() -> Router<App> {
    let api = Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/responses", post(responses))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(models));
    // The end-to-end benchmark's baseline (`--features uninstrumented`) runs no perf at all.
    #[cfg(not(feature = "uninstrumented"))]
    let api = api.layer(PerfLayer::new());
    api.route("/healthz", get(healthz))
}

/// `routes` as a service: unknown routes answered 404, request bodies limited to
/// `max_body_bytes` and read within `body`'s limits (from the head on: outermost), a panicking
/// handler answered 500, every answer with a trace id (those no handler tagged: the client's,
/// or a new one), `app` as the state.
fn service(routes: Router<App>, app: App, max_body_bytes: usize, body: BodyLimits) -> Router {
    routes
        .fallback(fallback)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(catch_panic())
        .layer(axum::middleware::from_fn(trace::tag_untagged))
        .layer(axum::middleware::map_request(move |request| async move {
            body.apply(request)
        }))
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
    fn panic_response(_panic: Box<dyn Any + Send + 'static>) -> Response {
        ApiError::internal("the gateway failed while handling this request").into_response()
    }
    CatchPanicLayer::custom(panic_response as fn(Box<dyn Any + Send + 'static>) -> Response)
}

/// This process's soft limit of open files (what the descriptor budget plans with); no limit
/// where the system has none, or it cannot be read.
pub fn open_file_limit() -> u64 {
    #[cfg(unix)]
    {
        rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(u64::MAX, |(soft, _)| soft)
    }
    #[cfg(not(unix))]
    {
        u64::MAX
    }
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
    descriptors: DescriptorPlan,
    otlp: Option<OtlpHandle>,
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
        if let Some(path) = &config.prices {
            super::prices::load(path)?;
        }
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
        .map_err(io::Error::other)?
        .with_secrets(config.secrets());
        // A call to the built-in mock holds both ends of its connection in this process.
        let per_call = if mock.is_some() { 2 } else { 1 };
        let descriptors = DescriptorPlan::new(
            open_file_limit(),
            config.connection_limits().max_connections,
            per_call,
        );
        if let Some(asked) = descriptors.connections_lowered_from {
            log::warn!(
                "gateway: --max-connections {asked} does not fit the open-file limit; planned \
                 with {descriptors}. Raise the limit (ulimit -n) to serve more."
            );
        }
        let app = App::new(
            ApiKeys::with_tenants(config.client_tenants()),
            client,
            &config.provider_label(),
        )
        .with_retries(config.upstream_retries)
        .with_server_timing(config.server_timing)
        .with_call_budget(CallBudget::new(&descriptors));
        let cache = MetricsCache::new(Duration::from_millis(config.metrics_max_age_ms));
        let limits = ConnectionLimits {
            max_connections: Some(descriptors.connections),
            counted: true,
            ..config.connection_limits()
        };
        let mut routes = api_routes().merge(routes);
        let metrics_server = match config.metrics_listen {
            Some(addr) => {
                let listener = listen::bind(addr)?;
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
        let listener = listen::bind(config.listen)?;
        let server = ServerHandle::serve_with(
            listener,
            service(routes, app, config.max_body_bytes, config.body_limits()),
            limits,
        )?;
        let otlp = match config.otlp() {
            Some(exporter) => Some(
                exporter
                    .start(perf_runtime::Metrics::global())
                    .map_err(io::Error::other)?,
            ),
            None => None,
        };
        Ok(Gateway {
            server,
            metrics_server,
            mock,
            upstream,
            descriptors,
            otlp,
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

    /// How the gateway shares its open files between client connections and provider calls.
    pub fn descriptor_plan(&self) -> &DescriptorPlan {
        &self.descriptors
    }

    /// The mock provider, if the gateway started one.
    pub fn mock(&self) -> Option<&MockProvider> {
        self.mock.as_ref()
    }

    /// Stops accepting connections, waits for the open ones to finish, sends a last OTLP
    /// export, then stops the mock.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
        if let Some(metrics) = self.metrics_server {
            metrics.shutdown().await;
        }
        if let Some(otlp) = self.otlp {
            otlp.shutdown().await;
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
