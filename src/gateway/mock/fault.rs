//! The mock's faults, chosen per request by the model name, so that one mock serves every test
//! (and a person with `curl`) through the gateway:
//!
//! | model | the mock |
//! |---|---|
//! | `fault:hang` | never sends its response headers |
//! | `fault:stall` | sends the headers and a first chunk, then nothing more |
//! | `fault:cut` | sends the headers and a first chunk, then cuts the connection |
//! | `fault:status-NNN` | answers status NNN with an OpenAI error body and `Retry-After: 7` (400: `context_length_exceeded`, 429: `rate_limit_exceeded`) |
//! | `fault:status-NNN-text` | the same with a plain-text body |
//! | `fault:invalid-json` | answers 200 with a body that is not JSON (streamed: an event whose data is not JSON) |
//! | `fault:not-sse` | answers a streamed request with a JSON body, not an SSE stream |
//! | `fault:drain` | answers normally, with rate limits of 10 requests a minute stated in its headers; past them, 429 (see [`limits`](super::limits)) |
//!
//! Each waits the mock's time to first byte first, as the normal answer does.

use std::convert::Infallible;
use std::io;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use futures_util::{stream, Stream, StreamExt};
use serde_json::{json, Value};
use tokio::time::sleep;

/// The model-name prefix that selects a fault.
pub const FAULT_PREFIX: &str = "fault:";

/// The `Retry-After` of the mock's error statuses, in seconds.
pub const RETRY_AFTER_SECS: u64 = 7;

/// A fault the mock plays instead of its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// No response headers, ever.
    Hang,
    /// The headers and a first chunk, then silence.
    Stall,
    /// The headers and a first chunk, then the connection cut.
    Cut,
    /// An error status, with a JSON (OpenAI) body or a plain-text one.
    Status {
        /// The status code.
        status: StatusCode,
        /// A plain-text body instead of an OpenAI error.
        text: bool,
    },
    /// 200 with a body (or an event) that is not JSON.
    InvalidJson,
    /// A JSON body in answer to a streamed request.
    NotSse,
}

impl Fault {
    /// The fault `model` asks for, if it names one.
    pub fn of(model: &str) -> Option<Fault> {
        let fault = model.strip_prefix(FAULT_PREFIX)?;
        Some(match fault {
            "hang" => Fault::Hang,
            "stall" => Fault::Stall,
            "cut" => Fault::Cut,
            "invalid-json" => Fault::InvalidJson,
            "not-sse" => Fault::NotSse,
            _ => {
                let status = fault.strip_prefix("status-")?;
                let (code, text) = match status.strip_suffix("-text") {
                    Some(code) => (code, true),
                    None => (status, false),
                };
                let status = StatusCode::from_u16(code.parse().ok()?).ok()?;
                Fault::Status { status, text }
            }
        })
    }

    /// Plays the fault, after `ttfb`, for a request streamed or not: `events` and `whole` are
    /// the answer the mock would have sent.
    pub async fn play(
        self,
        ttfb: Duration,
        streamed: bool,
        events: Vec<(Duration, Event)>,
        whole: Value,
    ) -> Response {
        if self == Fault::Hang {
            // Until the gateway gives up and closes the connection, which drops this future.
            std::future::pending::<()>().await;
        }
        super::wait(ttfb).await;
        let first = || events.into_iter().next().map(|(_, event)| event);
        let whole_text = whole.to_string();
        let half = Bytes::from(whole_text[..whole_text.len() / 2].to_owned());
        match self {
            Fault::Hang => unreachable!("a hang never gets here"),
            Fault::Status { status, text } => status_answer(status, text),
            Fault::NotSse => Json(whole).into_response(),
            Fault::InvalidJson if streamed => {
                let bad = Event::default().data("{\"choices\": [oops");
                let events = first()
                    .into_iter()
                    .chain([bad, Event::default().data("[DONE]")]);
                Sse::new(stream::iter(events.map(Ok::<_, Infallible>))).into_response()
            }
            Fault::InvalidJson => (
                [(header::CONTENT_TYPE, "application/json")],
                "<html><body>502 Bad Gateway</body></html>",
            )
                .into_response(),
            Fault::Stall | Fault::Cut if streamed => {
                let rest = then(self == Fault::Cut);
                let events = stream::iter(first().map(Ok)).chain(rest);
                Sse::new(events).into_response()
            }
            Fault::Stall | Fault::Cut => {
                let chunks = stream::iter([Ok(half)]).chain(then(self == Fault::Cut));
                Response::builder()
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from_stream(chunks))
                    .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
            }
        }
    }
}

/// After the first chunk: an error that makes hyper cut the connection (`cut`), or nothing
/// ever again (a stall). The cut comes a moment later, so that the first chunk is on the wire.
fn then<T: Send + 'static>(cut: bool) -> impl Stream<Item = io::Result<T>> + Send + 'static {
    stream::once(async move {
        if cut {
            sleep(Duration::from_millis(50)).await;
            Err(io::Error::other("the mock provider cut the connection"))
        } else {
            std::future::pending().await
        }
    })
}

/// An error status: an OpenAI error (or plain text) and `Retry-After`.
pub(super) fn status_answer(status: StatusCode, text: bool) -> Response {
    let (message, kind, param, code) = match status {
        StatusCode::BAD_REQUEST => (
            "This model's maximum context length is 128000 tokens. However, your messages \
             resulted in 128001 tokens. Please reduce the length of the messages.",
            "invalid_request_error",
            Some("messages"),
            Some("context_length_exceeded"),
        ),
        StatusCode::TOO_MANY_REQUESTS => (
            "Rate limit reached for requests. Please try again in 7s.",
            "requests",
            None,
            Some("rate_limit_exceeded"),
        ),
        _ => (
            "The mock provider failed on purpose.",
            "server_error",
            None,
            None,
        ),
    };
    let retry_after = [(header::RETRY_AFTER, RETRY_AFTER_SECS.to_string())];
    if text {
        return (status, retry_after, message).into_response();
    }
    let body = json!({"error": {"message": message, "type": kind, "param": param, "code": code}});
    (status, retry_after, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_by_model_name() {
        assert_eq!(Fault::of("gpt-4o"), None);
        assert_eq!(Fault::of("fault:hang"), Some(Fault::Hang));
        assert_eq!(Fault::of("fault:not-sse"), Some(Fault::NotSse));
        assert_eq!(
            Fault::of("fault:status-429"),
            Some(Fault::Status {
                status: StatusCode::TOO_MANY_REQUESTS,
                text: false
            })
        );
        assert_eq!(
            Fault::of("fault:status-503-text"),
            Some(Fault::Status {
                status: StatusCode::SERVICE_UNAVAILABLE,
                text: true
            })
        );
        for unknown in [
            "fault:",
            "fault:status-",
            "fault:status-abc",
            "fault:status-42",
            "fault:nap",
        ] {
            assert_eq!(Fault::of(unknown), None, "{unknown}");
        }
    }
}
