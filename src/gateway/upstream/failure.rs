//! How a provider call failed: what the client is told, the kind recorded for the backend call,
//! whether another try may succeed; and the failures of the transport, told without the URL.

use std::error::Error as _;

use perf_runtime::BackendErrorKind;

use crate::gateway::error::ApiError;

/// A failure of the provider: what the client is told, and how it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderFailure {
    kind: BackendErrorKind,
    error: ApiError,
    retryable: bool,
}

impl ProviderFailure {
    pub(super) fn new(kind: BackendErrorKind, error: ApiError) -> Self {
        ProviderFailure {
            kind,
            error,
            retryable: false,
        }
    }

    pub(super) fn retryable(mut self) -> Self {
        self.retryable = true;
        self
    }

    pub(super) fn timeout(message: String) -> Self {
        Self::new(
            BackendErrorKind::Timeout,
            ApiError::gateway_timeout(message),
        )
    }

    /// A provider answer that is not what the API promises: a 502 of kind `Protocol`.
    pub fn protocol(message: impl Into<String>) -> Self {
        Self::new(BackendErrorKind::Protocol, ApiError::bad_gateway(message))
    }

    /// How the provider failed.
    pub fn kind(&self) -> BackendErrorKind {
        self.kind
    }

    /// What the client is told.
    pub fn error(&self) -> &ApiError {
        &self.error
    }

    /// Whether another try may succeed and is safe: the provider answered a 5xx, or could not
    /// be reached, before any response headers.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// Records the failure's kind for the current request's latest backend call
    /// (`backend_errors_total`).
    pub fn record(&self) {
        perf_runtime::current::backend_error(self.kind);
    }

    /// The error for the client, the failure being recorded already.
    pub fn into_error(self) -> ApiError {
        self.error
    }

    /// Records the failure (see [`record`](Self::record)), and gives the error for the client.
    pub fn report(self) -> ApiError {
        self.record();
        self.error
    }
}

/// A failure to get the response headers: the connection could not be made, was cut, or
/// carried no valid HTTP answer.
pub(super) fn transport_failure(error: &reqwest::Error) -> ProviderFailure {
    if error.is_connect() {
        return ProviderFailure::new(
            BackendErrorKind::Connect,
            ApiError::bad_gateway(format!("provider unreachable: {}", describe(error))),
        )
        .retryable();
    }
    let invalid_http = error.is_redirect()
        || std::iter::successors(error.source(), |e| (*e).source())
            .filter_map(|e| e.downcast_ref::<hyper::Error>())
            .any(|e| e.is_parse() || e.is_parse_status() || e.is_parse_too_large());
    if invalid_http {
        return ProviderFailure::protocol(format!(
            "the provider's answer is not valid HTTP: {}",
            describe(error)
        ));
    }
    ProviderFailure::new(
        BackendErrorKind::BrokenOff,
        ApiError::bad_gateway(format!(
            "the provider closed the connection without an answer: {}",
            describe(error)
        )),
    )
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
