//! Errors in the OpenAI error shape: `{"error": {"message", "type", "param", "code"}}`.

use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde::Serialize;

/// An error answered to the client with its status code and an OpenAI error body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    code: Option<&'static str>,
    message: String,
}

impl ApiError {
    fn new(
        status: StatusCode,
        kind: &'static str,
        code: Option<&'static str>,
        message: String,
    ) -> Self {
        ApiError {
            status,
            kind,
            code,
            message,
        }
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
        self.status
    }

    /// The error's body, as the client receives it.
    pub fn body(&self) -> ErrorBody<'_> {
        ErrorBody {
            error: ErrorDetail {
                message: &self.message,
                kind: self.kind,
                param: None,
                code: self.code,
            },
        }
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
        write!(f, "{} {}", self.status, self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
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
        Ok(RequestBody(Bytes::from_request(req, state).await?))
    }
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
}
