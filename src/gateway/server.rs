//! Starting and stopping the gateway: the router, its state, and the servers in the background.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use perf_runtime::exposition::metrics_handler;
use reqwest::Url;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::auth::ApiKeys;
use super::config::Config;
use super::error::fallback;
use super::handlers::{chat_completions, healthz, responses, App};
use super::mock::MockProvider;
use super::upstream::Upstream;

/// The gateway's routes, with `app` as their state and request bodies limited to
/// `max_body_bytes` (a larger one is answered 413).
pub fn router(app: App, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/responses", post(responses))
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz))
        .fallback(fallback)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(app)
}

/// A running gateway, with its mock provider unless it forwards to a real one.
///
/// Dropping it stops the servers too, gracefully, in the background; [`shutdown`](Self::shutdown)
/// also waits for them.
#[derive(Debug)]
pub struct Gateway {
    server: ServerHandle,
    mock: Option<MockProvider>,
    upstream: Url,
}

impl Gateway {
    /// Starts the gateway on `config.listen` (port 0 for an ephemeral one), and the mock
    /// provider on its own ephemeral port unless `config.upstream` is set.
    pub async fn start(config: &Config) -> io::Result<Gateway> {
        let (mock, upstream) = match &config.upstream {
            Some(url) => (None, url.clone()),
            None => {
                let mock = MockProvider::start(config.mock()).await?;
                let url = Url::parse(&mock.base_url()).map_err(io::Error::other)?;
                (Some(mock), url)
            }
        };
        let client = Upstream::new(upstream.clone(), config.upstream_key.clone())
            .map_err(io::Error::other)?;
        let app = App::new(
            ApiKeys::new(&config.api_keys),
            client,
            &config.provider_label(),
        );
        let listener = TcpListener::bind(config.listen).await?;
        let server = ServerHandle::serve(listener, router(app, config.max_body_bytes))?;
        Ok(Gateway {
            server,
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
        let mut addr = self.addr();
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr {
                SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
            });
        }
        format!("http://{addr}/v1")
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
        if let Some(mock) = self.mock {
            mock.shutdown().await;
        }
    }
}

/// An axum server running in the background, shut down gracefully when told or dropped.
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<io::Result<()>>,
}

impl ServerHandle {
    /// Serves `router` on `listener` in a new task.
    pub fn serve(listener: TcpListener, router: Router) -> io::Result<ServerHandle> {
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    // Told to stop, or the handle was dropped.
                    let _ = stopped.await;
                })
                .await
        });
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
