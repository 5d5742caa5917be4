//! The provider's answer once its headers are in: its status, its body as chunks within the
//! idle and total timeouts, what the client gets for an error status; and a whole non-streamed
//! body, read and checked.

use std::time::Duration;

use axum::http::header::{CONTENT_TYPE, LOCATION, RETRY_AFTER};
use axum::http::StatusCode;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use perf_runtime::{BackendErrorKind, TraceId};
use reqwest::Response;
use tokio::time::Instant;

use super::deadline::{earliest, within};
use super::failure::{describe, ProviderFailure};
use crate::gateway::descriptors::CallRoom;
use crate::gateway::error::ApiError;
use crate::gateway::events::{body_usage, Usage};
use crate::gateway::secrets::Redactor;

/// Largest non-streamed answer read from the provider, in bytes.
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Most bytes of a provider's error body read (and quoted back to the client).
const MAX_ERROR_BYTES: usize = 16 * 1024;

/// The provider's answer, its headers in: its body still to read, within the idle and total
/// timeouts.
#[derive(Debug)]
pub struct ProviderResponse {
    response: Response,
    idle: Option<Duration>,
    deadline: Option<Instant>,
    /// The call's room in the descriptor budget, freed with the body.
    room: Option<CallRoom>,
}

impl ProviderResponse {
    /// The answer `response`, its headers in, its body to be read within `idle` of each chunk
    /// and by `deadline`.
    pub(super) fn new(
        response: Response,
        idle: Option<Duration>,
        deadline: Option<Instant>,
    ) -> ProviderResponse {
        ProviderResponse {
            response,
            idle,
            deadline,
            room: None,
        }
    }

    /// The answer, holding `room` in the descriptor budget until its body is read to its end
    /// or dropped.
    pub fn holding(mut self, room: CallRoom) -> ProviderResponse {
        self.room = Some(room);
        self
    }

    /// The answer's status.
    pub fn status(&self) -> StatusCode {
        self.response.status()
    }

    /// The answer's `Content-Type`, if it has a readable one.
    pub fn content_type(&self) -> Option<&str> {
        self.response.headers().get(CONTENT_TYPE)?.to_str().ok()
    }

    /// Checks that the answer to a streamed request is an SSE stream (`text/event-stream`).
    pub fn expect_event_stream(self) -> Result<ProviderResponse, ProviderFailure> {
        let media_type = self
            .content_type()
            .and_then(|t| t.split(';').next())
            .map(str::trim);
        if media_type.is_some_and(|t| t.eq_ignore_ascii_case("text/event-stream")) {
            return Ok(self);
        }
        Err(ProviderFailure::protocol(format!(
            "the provider answered a streamed request with {}, not text/event-stream",
            self.content_type().unwrap_or("no content type")
        )))
    }

    /// The body's chunks as they come, each within the idle timeout of the previous one and
    /// all within the total timeout. The stream ends after its first failure.
    pub fn chunks(self) -> impl Stream<Item = Result<Bytes, ProviderFailure>> + Send + 'static {
        let ProviderResponse {
            response,
            idle,
            deadline,
            room,
        } = self;
        let body = Box::pin(response.bytes_stream());
        // The room goes with the body: freed after its last chunk, its failure, or its drop.
        futures_util::stream::unfold(Some((body, room)), move |body| async move {
            let (mut body, room) = body?;
            let asked = Instant::now();
            let idle_until = idle.map(|idle| asked + idle);
            let next = match within(earliest(idle_until, deadline), body.next()).await {
                Some(next) => next,
                None => {
                    let which = if deadline.is_some_and(|d| idle_until.is_none_or(|i| d <= i)) {
                        "its answer's total time limit was reached"
                    } else {
                        "it sent nothing more"
                    };
                    let message = format!(
                        "the provider stopped in the middle of its answer: {which} after {:?}",
                        asked.elapsed()
                    );
                    return Some((Err(ProviderFailure::timeout(message)), None));
                }
            };
            match next? {
                Ok(bytes) => Some((Ok(bytes), Some((body, room)))),
                Err(e) => {
                    let failure = ProviderFailure::new(
                        BackendErrorKind::BrokenOff,
                        ApiError::bad_gateway(format!(
                            "provider answer broken off: {}",
                            describe(&e)
                        )),
                    );
                    Some((Err(failure), None))
                }
            }
        })
    }

    /// An error status, as the client gets it: a 4xx passed on (with the provider's OpenAI
    /// error, any known secret in it redacted, and `Retry-After`), except the provider refusing
    /// the gateway's own credentials (401, 403, 407), which the client cannot fix; a 502 for
    /// everything else (5xx, 3xx). For those 502s the client gets a message of the gateway's own
    /// naming trace `trace`, and the provider's text goes to the log, redacted.
    pub(super) async fn status_failure(
        self,
        trace: TraceId,
        redactor: &Redactor,
    ) -> ProviderFailure {
        let status = self.status();
        let retry_after = self.response.headers().get(RETRY_AFTER).cloned();
        let location = self.response.headers().get(LOCATION).cloned();
        let url = self.response.url();
        let host = format!(
            "{}:{}",
            url.host_str().unwrap_or_default(),
            url.port_or_known_default().unwrap_or_default()
        );
        let mut body = Vec::new();
        let mut chunks = std::pin::pin!(self.chunks());
        while body.len() < MAX_ERROR_BYTES {
            match chunks.next().await {
                Some(Ok(chunk)) => body.extend_from_slice(&chunk),
                _ => break,
            }
        }
        body.truncate(MAX_ERROR_BYTES);
        let hidden = Hidden::of(status);
        let Some(hidden) = hidden else {
            let body = redactor.redact_bytes(&body);
            let error = ApiError::from_provider(status, &body, retry_after);
            return ProviderFailure::new(BackendErrorKind::Status, error);
        };
        let redirect = location
            .map(|l| {
                let l = redactor.log_quote(l.as_bytes());
                format!(" to {l}")
            })
            .unwrap_or_default();
        let text = match redactor.log_quote(&body) {
            text if text.is_empty() => String::from("(no body)"),
            text => text,
        };
        log::warn!(
            "trace {trace}: the provider at {host} answered {status}{redirect} ({}): {text}",
            hidden.what(),
        );
        let code = status.as_u16();
        let message = match hidden {
            Hidden::Redirect => format!(
                "the provider answered a redirect ({code}), which the gateway does not follow"
            ),
            Hidden::CredentialsRefused => {
                format!("the provider refused the gateway's credentials ({code})")
            }
            Hidden::Failed => format!("the provider failed ({code})"),
        };
        let error = ApiError::bad_gateway(format!(
            "{message}; the gateway's log has its answer under trace id {trace}"
        ));
        let failure = ProviderFailure::new(BackendErrorKind::Status, error);
        if status.is_server_error() {
            return failure.retryable();
        }
        failure
    }
}

/// An error status whose text the client does not see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hidden {
    /// A 3xx: never followed.
    Redirect,
    /// 401, 403, 407: the gateway's own credentials, which the client cannot fix (and the
    /// provider may quote).
    CredentialsRefused,
    /// Anything else that is no 4xx: the provider's own failure.
    Failed,
}

impl Hidden {
    /// `None` for a 4xx the client can fix (passed on), else how the status is hidden.
    fn of(status: StatusCode) -> Option<Hidden> {
        match status {
            StatusCode::UNAUTHORIZED
            | StatusCode::FORBIDDEN
            | StatusCode::PROXY_AUTHENTICATION_REQUIRED => Some(Hidden::CredentialsRefused),
            _ if status.is_client_error() => None,
            _ if status.is_redirection() => Some(Hidden::Redirect),
            _ => Some(Hidden::Failed),
        }
    }

    /// What the status means, for the log.
    fn what(self) -> &'static str {
        match self {
            Hidden::Redirect => "a redirect, not followed",
            Hidden::CredentialsRefused => "the gateway's credentials refused",
            Hidden::Failed => "a failure of the provider",
        }
    }
}

/// A whole non-streamed answer: its body, and the token usage it reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WholeBody {
    /// The body, a JSON object.
    pub body: Bytes,
    /// Its `usage`, if it has one the gateway can read.
    pub usage: Option<Usage>,
}

/// Reads a whole non-streamed answer, up to [`MAX_BODY_BYTES`], and checks that it is a JSON
/// object: a broken, late, oversized or invalid answer is a failure.
pub async fn read_body<S>(body: S) -> Result<WholeBody, ProviderFailure>
where
    S: Stream<Item = Result<Bytes, ProviderFailure>>,
{
    let mut body = std::pin::pin!(body);
    let mut answer = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        if answer.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(ProviderFailure::protocol("provider answer too large"));
        }
        answer.extend_from_slice(&chunk);
    }
    let usage = check_json_object(&answer)?;
    Ok(WholeBody {
        body: answer.into(),
        usage,
    })
}

/// Checks that `bytes` is one JSON object (what every OpenAI answer is), reading only its
/// `usage` (see [`body_usage`]).
pub fn check_json_object(bytes: &[u8]) -> Result<Option<Usage>, ProviderFailure> {
    let object = bytes.trim_ascii_start().first() == Some(&b'{');
    match body_usage(bytes) {
        Ok(usage) if object => Ok(usage),
        Ok(_) => Err(ProviderFailure::protocol(
            "the provider's answer is JSON, but not an object",
        )),
        Err(e) => Err(ProviderFailure::protocol(format!(
            "the provider's answer is not valid JSON: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_json_objects_are_answers() {
        assert!(check_json_object(br#" {"id": "x", "choices": []}"#).is_ok());
        for bad in [
            &b"<html>502</html>"[..],
            b"{\"id\":",
            b"[1]",
            b"\"text\"",
            b"",
        ] {
            let failure = check_json_object(bad).expect_err("not an answer");
            assert_eq!(failure.kind(), BackendErrorKind::Protocol);
            assert_eq!(failure.error().status(), StatusCode::BAD_GATEWAY);
        }
    }
}
