//! The provider client: forwards prepared requests over HTTP to the mock or a real
//! OpenAI-compatible provider, and turns every failure into a 502.

use std::error::Error as _;
use std::net::IpAddr;
use std::time::Duration;

use axum::http::header::CONTENT_TYPE;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::{Client, Request, Response, Url};

use super::error::ApiError;
use super::openai::OpenAiRequest;

/// Largest non-streamed answer read from the provider, in bytes.
pub const MAX_ANSWER_BYTES: usize = 32 * 1024 * 1024;

/// Most bytes of a provider's error body quoted back to the client.
const MAX_ERROR_BYTES: usize = 4 * 1024;

/// An OpenAI-compatible provider: its base URL, its key, and a pooled HTTP client.
#[derive(Debug, Clone)]
pub struct Upstream {
    client: Client,
    base: Url,
    key: Option<String>,
}

impl Upstream {
    /// A provider at `base` (e.g. `https://api.openai.com/v1`), authenticated with `key` if
    /// given. A loopback `base` (the mock) is reached directly, never through a proxy.
    pub fn new(base: Url, key: Option<String>) -> reqwest::Result<Upstream> {
        let mut client = Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .tcp_nodelay(true);
        if is_loopback(&base) {
            client = client.no_proxy();
        }
        Ok(Upstream {
            client: client.build()?,
            base,
            key,
        })
    }

    /// The provider's base URL.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// Builds the provider request for `req`: URL, headers and JSON body.
    pub fn prepare<R: OpenAiRequest>(&self, req: &R) -> Result<Request, ApiError> {
        let url = format!(
            "{}{}",
            self.base.as_str().trim_end_matches('/'),
            R::UPSTREAM_PATH
        );
        let body = serde_json::to_vec(req).map_err(|e| ApiError::internal(e.to_string()))?;
        let mut builder = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(key) = &self.key {
            builder = builder.bearer_auth(key);
        }
        builder
            .build()
            .map_err(|e| ApiError::internal(describe(&e)))
    }

    /// Sends a prepared request; returns once the provider's response headers have arrived
    /// (the time to first byte). An unreachable provider or an error status gives a 502.
    pub async fn send(&self, request: Request) -> Result<Response, ApiError> {
        let response = self.client.execute(request).await.map_err(|e| {
            ApiError::bad_gateway(format!("provider unreachable: {}", describe(&e)))
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let detail = error_detail(response).await;
        Err(ApiError::bad_gateway(format!(
            "provider answered {status}: {detail}"
        )))
    }
}

/// Reads a whole non-streamed answer, up to [`MAX_ANSWER_BYTES`]; a broken or oversized
/// answer gives a 502.
pub async fn read_body<S>(body: S) -> Result<Bytes, ApiError>
where
    S: Stream<Item = reqwest::Result<Bytes>>,
{
    let mut body = std::pin::pin!(body);
    let mut answer = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_gateway(format!("provider answer broken off: {}", describe(&e)))
        })?;
        if answer.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(ApiError::bad_gateway("provider answer too large"));
        }
        answer.extend_from_slice(&chunk);
    }
    Ok(answer.into())
}

/// The message of a provider's error body (OpenAI shape if it is one), cut short.
async fn error_detail(mut response: Response) -> String {
    let mut body = Vec::new();
    while body.len() < MAX_ERROR_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    body.truncate(MAX_ERROR_BYTES);
    let message = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned));
    message.unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned())
}

/// A reqwest error and its causes, without the URL (the provider's address is not the
/// client's business).
pub fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        String::from("timed out")
    } else if error.is_connect() {
        String::from("connection failed")
    } else {
        String::from("request failed")
    };
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

fn is_loopback(url: &Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    let ip = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || ip.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
