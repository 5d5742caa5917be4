//! A provider of the test's own, served by axum on an ephemeral port, that misbehaves by the
//! model name, and remembers every request it got (path, `Authorization`, `Referer`):
//!
//! | model | answer |
//! |---|---|
//! | `redirect-away` | 307 to the same path on another provider (`FakeProvider::start(Some(other))`) |
//! | `redirect-here` | 308 to `/v1/landing` on itself (same origin) |
//! | (`GET /v1/models`) | 302 to the other provider's, if it has one; else a list of models |
//! | `echo-NNN` | status NNN, an OpenAI error whose message quotes the `Authorization` it got |
//! | `echo-NNN-text` | the same as plain text |
//! | anything else | a chat completion (whole, or streamed as SSE) |

use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};

use super::serve;

/// One request a [`FakeProvider`] got.
#[derive(Debug, Clone)]
pub struct Hit {
    pub path: String,
    pub authorization: Option<String>,
    pub referer: Option<String>,
}

/// A running fake provider.
#[derive(Clone)]
pub struct FakeProvider {
    /// `http://127.0.0.1:PORT`.
    pub origin: String,
    hits: Arc<Mutex<Vec<Hit>>>,
}

#[derive(Clone)]
struct Fake {
    redirect_to: Option<String>,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl FakeProvider {
    /// Starts one; `redirect_to` is the origin `redirect-away` sends to.
    pub async fn start(redirect_to: Option<&str>) -> FakeProvider {
        let hits = Arc::new(Mutex::new(Vec::new()));
        let fake = Fake {
            redirect_to: redirect_to.map(str::to_owned),
            hits: Arc::clone(&hits),
        };
        let router = Router::new().fallback(answer).with_state(fake);
        FakeProvider {
            origin: serve(router).await,
            hits,
        }
    }

    /// Its OpenAI base URL, for `--upstream`.
    pub fn base_url(&self) -> String {
        format!("{}/v1", self.origin)
    }

    /// The requests it got so far.
    pub fn hits(&self) -> Vec<Hit> {
        self.hits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

async fn answer(State(fake): State<Fake>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let authorization = header_text(&parts.headers, header::AUTHORIZATION);
    fake.hits
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Hit {
            path: parts.uri.path().to_owned(),
            authorization: authorization.clone(),
            referer: header_text(&parts.headers, header::REFERER),
        });
    if parts.uri.path() == "/v1/landing" {
        return (StatusCode::OK, "a redirect was followed").into_response();
    }
    if parts.uri.path() == "/v1/models" {
        return match fake.redirect_to {
            Some(to) => (
                StatusCode::FOUND,
                [(header::LOCATION, format!("{to}/v1/models"))],
            )
                .into_response(),
            None => axum::Json(json!({"object": "list", "data": []})).into_response(),
        };
    }
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let request: Value = serde_json::from_slice(&body).unwrap_or_default();
    let model = request["model"].as_str().unwrap_or_default();
    let stream = request["stream"] == true;
    let path = parts.uri.path();
    match model {
        "redirect-away" => {
            let to = format!("{}{path}", fake.redirect_to.unwrap_or_default());
            (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, to)]).into_response()
        }
        "redirect-here" => (
            StatusCode::PERMANENT_REDIRECT,
            [(header::LOCATION, "/v1/landing")],
        )
            .into_response(),
        _ => match model.strip_prefix("echo-") {
            Some(status) => echo(status, authorization.unwrap_or_default()),
            None => success(model, stream),
        },
    }
}

/// `NNN` or `NNN-text`: that status, quoting the `Authorization` the provider got, as OpenAI
/// does for a wrong key.
fn echo(status: &str, authorization: String) -> Response {
    let (code, text) = match status.strip_suffix("-text") {
        Some(code) => (code, true),
        None => (status, false),
    };
    let status = code
        .parse()
        .ok()
        .and_then(|code| StatusCode::from_u16(code).ok())
        .unwrap_or(StatusCode::IM_A_TEAPOT);
    let message = format!("Incorrect API key provided: {authorization}. Status {code}.");
    if text {
        return (status, message).into_response();
    }
    let body = json!({"error": {"message": message, "type": "invalid_request_error",
                                "param": null, "code": "invalid_api_key"}});
    (status, axum::Json(body)).into_response()
}

/// A chat completion of `model`, whole or streamed.
fn success(model: &str, stream: bool) -> Response {
    if stream {
        let chunk = json!({"id": "c1", "object": "chat.completion.chunk", "model": model,
            "choices": [{"index": 0, "delta": {"content": "Hello"}, "finish_reason": null}]});
        let body = format!("data: {chunk}\n\ndata: [DONE]\n\n");
        return (
            [(header::CONTENT_TYPE, "text/event-stream")],
            Bytes::from(body),
        )
            .into_response();
    }
    let answer = json!({"id": "c1", "object": "chat.completion", "model": model,
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "Hello"}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}});
    axum::Json(answer).into_response()
}
