//! The trace id of each request, across the gateway: read from the client's W3C `traceparent`
//! header, given to the request's metrics (the exemplars of the buckets it lands in carry it),
//! returned to the client, and sent on to the provider.
//!
//! | where | what |
//! |---|---|
//! | the client's request | `traceparent: 00-<trace id>-<parent id>-<flags>`, optional: without a valid one, perf gives the request a random trace id |
//! | the answer (JSON, SSE, error) | `traceparent: 00-<trace id>-<new span id>-01` and `x-trace-id: <trace id>` (32 hex digits) |
//! | the provider's request | `traceparent: 00-<trace id>-<new span id>-01`, a new span id per try |
//!
//! An answer that no handler made (an unknown route, a body too large, a handler that panicked)
//! carries the client's trace id, or a new one, through [`tag_untagged`].

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use perf_runtime::{current, TraceId};

/// The W3C Trace Context header.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// The answer's trace id alone, 32 lowercase hex digits: what to paste into a tracing backend
/// or grep for in logs.
pub const X_TRACE_ID: HeaderName = HeaderName::from_static("x-trace-id");

/// The trace id of the client's `traceparent` header, if it sent a valid one.
pub fn from_headers(headers: &HeaderMap) -> Option<TraceId> {
    headers
        .get(TRACEPARENT)?
        .to_str()
        .ok()
        .and_then(TraceId::from_traceparent)
}

/// Gives the current request the trace id of the client's `traceparent` (call it first thing in
/// a `#[perf_endpoint]` handler, before any stage), and returns the request's trace id: the
/// client's, else the random one perf gave the request when it started (with the
/// instrumentation compiled out, a new random one).
pub fn adopt(headers: &HeaderMap) -> TraceId {
    let client = from_headers(headers);
    if let Some(id) = client {
        current::set_trace_id(id);
    }
    current::trace_id()
        .or(client)
        .unwrap_or_else(TraceId::random)
}

/// `answer` with the trace's headers: `traceparent` (the trace id, a new span id: the
/// gateway's) and `x-trace-id`.
pub fn tag(answer: impl IntoResponse, id: TraceId) -> Response {
    let mut response = answer.into_response();
    let headers = response.headers_mut();
    if let Ok(traceparent) = HeaderValue::from_str(&id.traceparent()) {
        headers.insert(TRACEPARENT, traceparent);
    }
    if let Ok(trace_id) = HeaderValue::from_str(&id.to_string()) {
        headers.insert(X_TRACE_ID, trace_id);
    }
    response
}

/// An answer, or an error, with the trace id it goes out with: its response carries the trace's
/// headers ([`tag`]).
#[derive(Debug)]
pub struct Traced<T> {
    answer: T,
    id: TraceId,
}

impl<T: IntoResponse> IntoResponse for Traced<T> {
    fn into_response(self) -> Response {
        tag(self.answer, self.id)
    }
}

/// A handler's answer, success or error, going out with the request's trace id: still an `Err`
/// for an error, so that `#[perf_endpoint]` counts it as one.
pub fn tag_result<T, E>(answer: Result<T, E>, id: TraceId) -> Result<Traced<T>, Traced<E>> {
    match answer {
        Ok(answer) => Ok(Traced { answer, id }),
        Err(answer) => Err(Traced { answer, id }),
    }
}

/// Middleware: an answer that no handler tagged (a 404, a 413 for a body too large, the 500 of a
/// handler that panicked) gets the client's trace id, or a new one.
pub async fn tag_untagged(request: Request, next: Next) -> Response {
    let client = from_headers(request.headers());
    let response = next.run(request).await;
    if response.headers().contains_key(X_TRACE_ID) {
        return response;
    }
    tag(response, client.unwrap_or_else(TraceId::random))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_clients_traceparent_only_when_valid() {
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        let mut headers = HeaderMap::new();
        assert_eq!(from_headers(&headers), None);
        headers.insert(TRACEPARENT, HeaderValue::from_static("00-nonsense-01"));
        assert_eq!(from_headers(&headers), None);
        let valid = format!("00-{id}-00f067aa0ba902b7-01");
        headers.insert(TRACEPARENT, HeaderValue::from_str(&valid).unwrap());
        assert_eq!(
            from_headers(&headers).map(|t| t.to_string()).as_deref(),
            Some(id)
        );
        // Outside a request, the client's id is still the answer's.
        assert_eq!(adopt(&headers).to_string(), id);
    }

    #[test]
    fn tags_answers_with_both_headers() {
        let id = TraceId::random();
        let response = tag("ok", id);
        let header = |name: HeaderName| response.headers()[name].to_str().unwrap().to_owned();
        assert_eq!(header(X_TRACE_ID), id.to_string());
        assert_eq!(TraceId::from_traceparent(&header(TRACEPARENT)), Some(id));
    }
}
