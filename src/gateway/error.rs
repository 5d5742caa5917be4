//! Errors in the OpenAI error shape: `{"error": {"message", "type", "param", "code"}}`.

use std::borrow::Cow;

use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, MatchedPath, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

use super::body_timeout::BodyTimeout;
use super::refusals::{self, Reason};
use perf_runtime::UNMATCHED_ENDPOINT;

/// Most characters of a provider's error text quoted in a message.
const MAX_QUOTED_CHARS: usize = 1000;

/// An error answered to the client with its status code and an OpenAI error body.
///
/// Boxed: errors are the rare path, and a `Result<_, ApiError>` stays one pointer wide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError(Box<ErrorParts>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct ErrorParts {
    status: StatusCode,
    kind: Cow<'static, str>,
    code: Option<Cow<'static, str>>,
    param: Option<String>,
    message: String,
    retry_after: Option<HeaderValue>,
    /// The connection is closed after the answer (a request body left unread).
    close: bool,
}

impl ApiError {
    fn new(
        status: StatusCode,
        kind: &'static str,
        code: Option<&'static str>,
        message: String,
    ) -> Self {
        ApiError(Box::new(ErrorParts {
            status,
            kind: Cow::Borrowed(kind),
            code: code.map(Cow::Borrowed),
            param: None,
            message,
            retry_after: None,
            close: false,
        }))
    }

    /// A provider's error answer of status `status` (a 4xx) passed on to the client with the
    /// same status: its OpenAI error (`message`, `type`, `param`, `code`) if `body` is one,
    /// else an OpenAI error whose message quotes `body`; with the provider's `Retry-After`.
    pub fn from_provider(
        status: StatusCode,
        body: &[u8],
        retry_after: Option<HeaderValue>,
    ) -> Self {
        let fallback_kind = if status == StatusCode::TOO_MANY_REQUESTS {
            "rate_limit_error"
        } else {
            "invalid_request_error"
        };
        let mut error = match openai_error(body) {
            Some(error) => {
                let text = |key: &str| match error.get(key) {
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(Value::Number(n)) => Some(n.to_string()),
                    _ => None,
                };
                ApiError(Box::new(ErrorParts {
                    status,
                    kind: text("type").map_or(Cow::Borrowed(fallback_kind), Cow::Owned),
                    code: text("code").map(Cow::Owned),
                    param: text("param"),
                    message: text("message").unwrap_or_default(),
                    retry_after: None,
                    close: false,
                }))
            }
            None => {
                let code =
                    (status == StatusCode::TOO_MANY_REQUESTS).then_some("rate_limit_exceeded");
                let text = quote(body);
                let message = if text.is_empty() {
                    format!("the provider answered {status}")
                } else {
                    format!("the provider answered {status}: {text}")
                };
                Self::new(status, fallback_kind, code, message)
            }
        };
        error.0.retry_after = retry_after;
        error
    }

    /// 400: the body is not valid JSON, has a field of the wrong type, or lacks one.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            None,
            message.into(),
        )
    }

    /// 401: no API key, or not one the gateway knows.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            Some("invalid_api_key"),
            message.into(),
        )
    }

    /// 408: the request's body did not arrive in time (`--body-read-timeout-ms`,
    /// `--body-min-rate`).
    pub fn request_timeout(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "invalid_request_error",
            Some("request_timeout"),
            message.into(),
        )
    }

    /// 503 with `Retry-After`: the gateway has no room for one more provider call now.
    pub fn overloaded(message: impl Into<String>, retry_after_secs: u32) -> Self {
        let mut error = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            Some("overloaded"),
            message.into(),
        );
        error.0.retry_after = Some(HeaderValue::from(retry_after_secs));
        error
    }

    /// 404: no such route.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            Some("unknown_url"),
            message.into(),
        )
    }

    /// 502: the provider failed, answered with an error, or could not be reached.
    pub fn bad_gateway(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            Some("bad_gateway"),
            message.into(),
        )
    }

    /// 504: the provider did not answer in time.
    pub fn gateway_timeout(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_error",
            Some("gateway_timeout"),
            message.into(),
        )
    }

    /// 500: the gateway failed on its own.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            None,
            message.into(),
        )
    }

    /// An error of any other status, as the body of a request that could not be read gives.
    fn from_status(status: StatusCode, message: String) -> Self {
        match status {
            StatusCode::PAYLOAD_TOO_LARGE => Self::new(
                status,
                "invalid_request_error",
                Some("request_too_large"),
                format!("{message} (the gateway's limit is set by --max-body-bytes)"),
            ),
            _ if status.is_client_error() => {
                Self::new(status, "invalid_request_error", None, message)
            }
            _ => Self::new(status, "server_error", None, message),
        }
    }

    /// The HTTP status of the answer.
    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    /// The `Retry-After` header sent with the answer, if any (a provider's 429 or 503).
    pub fn retry_after(&self) -> Option<&HeaderValue> {
        self.0.retry_after.as_ref()
    }

    /// The error's body, as the client receives it.
    pub fn body(&self) -> ErrorBody<'_> {
        ErrorBody {
            error: ErrorDetail {
                message: &self.0.message,
                kind: &self.0.kind,
                param: self.0.param.as_deref(),
                code: self.0.code.as_deref(),
            },
        }
    }
}

/// The `error` object of an OpenAI error body, if `body` is one (a JSON object whose `error` is
/// an object with a string `message`).
fn openai_error(body: &[u8]) -> Option<serde_json::Map<String, Value>> {
    match serde_json::from_slice::<Value>(body).ok()? {
        Value::Object(mut top) => match top.remove("error")? {
            Value::Object(error) if error.get("message").is_some_and(Value::is_string) => {
                Some(error)
            }
            _ => None,
        },
        _ => None,
    }
}

/// `body` as text for a message: lossy UTF-8, whitespace trimmed, cut short.
fn quote(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// The OpenAI error body.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    /// The error itself.
    pub error: ErrorDetail<'a>,
}

/// The fields of an OpenAI error.
#[derive(Debug, Serialize)]
pub struct ErrorDetail<'a> {
    /// What went wrong, for a person.
    pub message: &'a str,
    /// The error class, e.g. `invalid_request_error`.
    #[serde(rename = "type")]
    pub kind: &'a str,
    /// The request parameter at fault, when known.
    pub param: Option<&'a str>,
    /// A machine-readable code, e.g. `invalid_api_key`.
    pub code: Option<&'a str>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.0.status, self.0.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.0.status, Json(self.body())).into_response();
        if self.0.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(retry_after) = self.0.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, retry_after);
        }
        if self.0.close {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

impl From<serde_json::Error> for ApiError {
    fn from(e: serde_json::Error) -> Self {
        ApiError::invalid_request(format!("invalid request body: {e}"))
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        ApiError::from_status(rejection.status(), rejection.body_text())
    }
}

/// The raw request body, within the router's `DefaultBodyLimit`: what a handler parses itself
/// (inside its `request_parsing` stage). A body that cannot be read, or is over the limit, is
/// answered with an [`ApiError`] (413 for the limit).
#[derive(Debug, Clone)]
pub struct RequestBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RequestBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let endpoint = req.extensions().get::<MatchedPath>().cloned();
        match Bytes::from_request(req, state).await {
            Ok(bytes) => Ok(RequestBody(bytes)),
            Err(rejection) => match BodyTimeout::cause_of(&rejection) {
                Some(timeout) => Err(too_slow(endpoint.as_ref(), timeout)),
                None => Err(rejection.into()),
            },
        }
    }
}

/// A body cut off by its read timeout: the request fails (`outcome="error"`), is counted in
/// `gateway_refused_requests_total`, and is answered 408 on a connection then closed.
fn too_slow(endpoint: Option<&MatchedPath>, timeout: BodyTimeout) -> ApiError {
    perf_runtime::current::fail();
    let reason = match timeout {
        BodyTimeout::Timeout => Reason::BodyTimeout,
        BodyTimeout::TooSlow => Reason::BodyTooSlow,
    };
    refusals::count(
        endpoint.map_or(UNMATCHED_ENDPOINT, MatchedPath::as_str),
        reason,
    );
    let mut error = ApiError::request_timeout(timeout.to_string());
    error.0.close = true;
    error
}

/// Answers routes the gateway does not have.
pub async fn fallback() -> ApiError {
    ApiError::not_found("unknown route: see /v1/chat/completions and /v1/responses")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_is_openai() {
        let e = ApiError::unauthorized("no key");
        let body = serde_json::to_value(e.body()).unwrap_or_default();
        assert_eq!(
            body,
            serde_json::json!({"error": {
                "message": "no key", "type": "invalid_request_error",
                "param": null, "code": "invalid_api_key"}})
        );
        assert_eq!(ApiError::invalid_request("x").body().error.code, None);
    }

    #[test]
    fn provider_errors_keep_their_status_shape_and_retry_after() {
        let body = br#"{"error": {"message": "too long", "type": "invalid_request_error",
            "param": "messages", "code": "context_length_exceeded", "extra": 1}}"#;
        let e = ApiError::from_provider(StatusCode::BAD_REQUEST, body, None);
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        let body = serde_json::to_value(e.body()).unwrap_or_default();
        assert_eq!(
            body,
            serde_json::json!({"error": {"message": "too long", "type": "invalid_request_error",
                "param": "messages", "code": "context_length_exceeded"}})
        );

        let retry = HeaderValue::from_static("7");
        let e = ApiError::from_provider(
            StatusCode::TOO_MANY_REQUESTS,
            b"  slow down\n",
            Some(retry.clone()),
        );
        let response = e.clone().into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], retry);
        let detail = e.body().error;
        assert_eq!(
            detail.message,
            "the provider answered 429 Too Many Requests: slow down"
        );
        assert_eq!(detail.kind, "rate_limit_error");
        assert_eq!(detail.code, Some("rate_limit_exceeded"));

        // A numeric code is kept as text; a body that is not an OpenAI error is quoted, cut.
        let e = ApiError::from_provider(
            StatusCode::NOT_FOUND,
            br#"{"error": {"message": "no such model", "code": 404}}"#,
            None,
        );
        assert_eq!(e.body().error.code, Some("404"));
        assert_eq!(e.body().error.kind, "invalid_request_error");
        let long = "é".repeat(5000);
        let e = ApiError::from_provider(StatusCode::BAD_REQUEST, long.as_bytes(), None);
        assert!(e.body().error.message.chars().count() < 1100);
        let e = ApiError::from_provider(StatusCode::CONFLICT, b"", None);
        assert_eq!(e.body().error.message, "the provider answered 409 Conflict");
    }
}
