//! The application served over real HTTP with axum: `POST /v1/chat/completions` (the instrumented
//! handler, streamed answers as a chunked body) and `GET /metrics` (perf's `metrics_handler`),
//! on 127.0.0.1:0, and a reqwest client for it.

use std::convert::Infallible;
use std::future::IntoFuture;

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures_util::StreamExt;

use crate::app::{self, ApiError, Reply, Transport};

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        match self {
            Reply::Text(text) => text.into_response(),
            Reply::Stream(chunks) => (
                [(header::CONTENT_TYPE, "text/event-stream")],
                Body::from_stream(chunks.map(Ok::<_, Infallible>)),
            )
                .into_response(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, self.message).into_response()
    }
}

/// The application's router.
pub fn router() -> Router {
    Router::new()
        .route(app::ENDPOINT, post(app::chat))
        .route("/metrics", get(perf_runtime::exposition::metrics_handler))
}

/// The application on an ephemeral loopback port, and a client for it.
pub struct Http {
    base: String,
    client: reqwest::Client,
}

impl Transport for Http {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let address = listener.local_addr().expect("local address");
        tokio::spawn(axum::serve(listener, router()).into_future());
        Http {
            base: format!("http://{address}"),
            client: reqwest::Client::new(),
        }
    }

    async fn send(&self, body: String) -> Result<String, u16> {
        let response = self
            .client
            .post(format!("{}{}", self.base, app::ENDPOINT))
            .body(body)
            .send()
            .await
            .expect("POST the chat request");
        let status = response.status();
        // Reads the body to its end: for a streamed answer, the whole stream.
        let text = response.text().await.expect("read the answer");
        if status.is_success() {
            Ok(text)
        } else {
            Err(status.as_u16())
        }
    }

    async fn metrics(&self) -> String {
        self.scrape(None, perf_runtime::exposition::CONTENT_TYPE)
            .await
    }

    async fn openmetrics(&self) -> String {
        let format = perf_runtime::exposition::Format::OpenMetrics;
        self.scrape(Some(OPENMETRICS_ACCEPT), format.content_type())
            .await
    }
}

/// What Prometheus 2.42 sends by default.
const OPENMETRICS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

impl Http {
    /// `GET /metrics` with `accept`, checking the answer's content type.
    async fn scrape(&self, accept: Option<&str>, content_type: &str) -> String {
        let mut request = self.client.get(format!("{}/metrics", self.base));
        if let Some(accept) = accept {
            request = request.header(header::ACCEPT.as_str(), accept);
        }
        let response = request.send().await.expect("GET /metrics");
        assert!(
            response.status().is_success(),
            "/metrics: {}",
            response.status()
        );
        let served_type = response
            .headers()
            .get(header::CONTENT_TYPE.as_str())
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert_eq!(served_type, content_type);
        response.text().await.expect("read /metrics")
    }
}
