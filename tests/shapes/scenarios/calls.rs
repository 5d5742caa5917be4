//! The handlers and scenarios of shapes 3, 4 and 7 (the provider calls: a backend marked twice,
//! hedged calls, coalesced and nested requests), shared by `tests/shapes/calls.rs` (each
//! handler wrapped in a `#[perf_endpoint]` fn) and `tests/shapes/layer_calls.rs` (the same
//! handlers behind `PerfLayer`). Each call is a simulated provider (a tokio sleep) with known
//! timing; each scenario states the truth for either.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use futures_util::future::{BoxFuture, Either, FutureExt, Shared};
use perf_runtime::{current, perf_backend, perf_statements, BackendErrorKind};
use serde_json::{json, Value};

use crate::common::{client, ms, relay, sse_response, Answer, Outcomes, Served};

pub type ApiError = (StatusCode, String);

// Shape 3. A `#[perf_backend]` statement around a call to a `#[perf_backend]` fn: one call.

#[perf_backend(provider = "twice", model = "marked")]
async fn call_marked(ttfb_ms: u64) -> Result<Answer, ApiError> {
    tokio::time::sleep(ms(ttfb_ms)).await;
    Ok(Answer::new(0, 2, 0))
}

#[perf_statements]
pub async fn backend_twice() -> Result<Json<Value>, ApiError> {
    #[perf_backend(provider = "twice", model = "marked")]
    let answer = call_marked(30).await?;
    Ok(Json(json!({ "tokens": answer.tokens })))
}

/// Shape 3: a `#[perf_backend]` statement around a `#[perf_backend]` fn; `path` serves
/// [`backend_twice`].
pub async fn a_backend_call_marked_twice_is_one_call(served: Served, path: &str) {
    served.post_ok(path).await;
    let numbers = &served.numbers;
    assert_eq!(numbers.ended(path, 1).await, Outcomes::new(1, 0, 0));

    let ttfb = numbers.count("backend_ttfb_seconds", &[("endpoint", path)]);
    let fetch = numbers.stage_count(path, "backend_fetch");
    assert_eq!(
        (ttfb, fetch),
        (1, 1),
        "(backend_ttfb_seconds count, backend_fetch stage count) for one call"
    );
}

// Shape 4. Hedged calls: call A at once, a hedge B 200 ms later, raced with `tokio::select!`.

/// Provider A: answers after `answer_ms`, or fails then with an error status (counted where
/// it is found, inside its own call). Its answer's first token comes at once.
#[perf_backend(provider = "a", model = model)]
async fn call_a(model: &'static str, answer_ms: u64, fails: bool) -> Result<Answer, ApiError> {
    tokio::time::sleep(ms(answer_ms)).await;
    if fails {
        current::backend_error(BackendErrorKind::Status);
        return Err((
            StatusCode::BAD_GATEWAY,
            "provider a answered 503".to_owned(),
        ));
    }
    Ok(Answer::new(0, 3, 10))
}

/// Provider B: answers after `answer_ms`.
#[perf_backend(provider = "b", model = model)]
async fn call_b(model: &'static str, answer_ms: u64) -> Result<Answer, ApiError> {
    tokio::time::sleep(ms(answer_ms)).await;
    Ok(Answer::new(0, 3, 10))
}

/// The hedge: B, started 200 ms after the request; it answers 800 ms later (at 1 s).
async fn hedge(model: &'static str) -> Result<Answer, ApiError> {
    tokio::time::sleep(ms(200)).await;
    call_b(model, 800).await
}

/// A at once (answering at 500 ms) raced with the hedge, both of model `model`.
pub async fn hedge_win(model: &'static str) -> Result<Response, ApiError> {
    let answer = tokio::select! {
        a = call_a(model, 500, false) => a?,
        b = hedge(model) => b?,
    };
    Ok(sse_response(relay(answer)))
}

/// Shape 4: hedged calls, A wins, B dropped; `path` serves [`hedge_win`].
pub async fn a_hedged_call_won_by_a_times_the_first_token_from_a(served: Served, path: &str) {
    let text = served.post_ok(path).await.text().await;
    assert_eq!(
        text.expect("the whole answer").matches("content").count(),
        3
    );
    let numbers = &served.numbers;
    assert_eq!(numbers.ended(path, 1).await, Outcomes::new(1, 0, 0));

    let of = |provider| [("provider", provider), ("endpoint", path)];
    let (a_ttft, a_seconds) = numbers.histogram("backend_ttft_seconds", &of("a"));
    let b_numbers = [
        numbers.count("backend_ttft_seconds", &of("b")),
        numbers.count("backend_chunk_gap_seconds", &of("b")),
        numbers.count("streaming_duration_seconds", &of("b")),
        numbers.count("backend_ttfb_seconds", &of("b")),
    ];
    assert_eq!(
        (a_ttft, b_numbers),
        (1, [0; 4]),
        "(TTFT of a, [TTFT, gaps, streaming, TTFB] of b): a answered; b was dropped unanswered"
    );
    assert!(
        (0.5..2.5).contains(&a_seconds),
        "TTFT runs from a's start: a answered at 500 ms, its first token came at once; \
         {a_seconds} s"
    );
}

/// A failing at 300 ms while the hedge, both of model `model`, is in flight.
pub async fn hedge_fail(model: &'static str) -> Result<Json<Value>, ApiError> {
    let mut a = std::pin::pin!(call_a(model, 300, true));
    let mut b = std::pin::pin!(hedge(model));
    let first = tokio::select! {
        a = &mut a => Either::Left(a),
        b = &mut b => Either::Right(b),
    };
    let answer = match first {
        Either::Left(Ok(answer)) => answer,
        Either::Left(Err(_)) => b.await?, // a failed while b is in flight: wait for b
        Either::Right(b) => b?,
    };
    Ok(Json(json!({ "tokens": answer.tokens })))
}

/// Shape 4 (variant): hedged calls, A fails while B is in flight; `path` serves
/// `hedge_fail(model)`.
pub async fn a_hedged_call_whose_first_call_fails_counts_the_error_against_it(
    served: Served,
    path: &str,
    model: &str,
) {
    served.post_ok(path).await;
    let numbers = &served.numbers;
    assert_eq!(numbers.ended(path, 1).await, Outcomes::new(1, 0, 0));

    let a_status = numbers.counter(
        "backend_errors_total",
        &[
            ("provider", "a"),
            ("model", model),
            ("endpoint", path),
            ("kind", "status"),
        ],
    );
    let b_any = numbers.counter(
        "backend_errors_total",
        &[("provider", "b"), ("endpoint", path)],
    );
    assert_eq!(
        (a_status, b_any),
        (1, 0),
        "(errors of a, errors of b): a failed inside its own call while b was in flight"
    );
}

// Shape 7a. Coalesced requests: A starts a provider call shared through app state, B awaits
// the same call 100 ms later, A's client leaves at 150 ms.

type SharedAnswer = Shared<BoxFuture<'static, Result<String, String>>>;

/// The one provider call in flight, shared by the requests that want its answer.
#[derive(Clone, Default)]
pub struct Coalescer(Arc<Mutex<Option<SharedAnswer>>>);

impl Coalescer {
    fn answer(&self) -> SharedAnswer {
        let mut slot = self.0.lock().expect("an unpoisoned slot");
        slot.get_or_insert_with(|| slow_call().boxed().shared())
            .clone()
    }
}

/// A provider whose first byte comes after 500 ms.
#[perf_backend(provider = "coalesce", model = "shared")]
async fn slow_call() -> Result<String, String> {
    tokio::time::sleep(ms(500)).await;
    Ok("the shared answer".to_owned())
}

/// A request wanting the answer of the one call in flight.
pub async fn coalesced(State(calls): State<Coalescer>) -> Result<String, ApiError> {
    calls
        .answer()
        .await
        .map_err(|e| (StatusCode::BAD_GATEWAY, e))
}

/// Shape 7a: coalesced requests sharing one call, the first client leaving; `first` and
/// `joined` serve [`coalesced`] with the same `Coalescer`.
pub async fn a_request_joining_a_coalesced_call_records_its_wait_as_backend(
    served: Served,
    first: &str,
    joined: &str,
) {
    let first_client = tokio::spawn(client().post(served.url(first)).timeout(ms(150)).send());
    tokio::time::sleep(ms(100)).await;
    let answer = served.post_ok(joined).await;
    assert_eq!(answer.text().await.unwrap(), "the shared answer");
    assert!(
        first_client.await.unwrap().is_err(),
        "the first client gave up at 150 ms"
    );
    let numbers = &served.numbers;
    assert_eq!(
        numbers.ended(first, 1).await,
        Outcomes::new(0, 0, 1),
        "the first client left: its handler was dropped"
    );
    assert_eq!(numbers.ended(joined, 1).await, Outcomes::new(1, 0, 0));

    let labels = [("endpoint", joined)];
    let ttfb = numbers.count("backend_ttfb_seconds", &labels);
    let (overheads, overhead) = numbers.histogram("gateway_overhead_seconds", &labels);
    assert_eq!(
        (ttfb, overheads, overhead < 0.1),
        (1, 1, true),
        "(TTFB count, overhead count, overhead < 0.1 s) of the joined request: it got the \
         provider's first byte, and its ~400 ms wait for it is not overhead ({overhead} s)"
    );
}

// Shape 7b. Nested endpoints: an endpoint fn awaiting another endpoint fn that calls the
// provider.

#[perf_backend(provider = "nested", model = "inner")]
async fn call_nested(ttfb_ms: u64) -> Result<Answer, ApiError> {
    tokio::time::sleep(ms(ttfb_ms)).await;
    Ok(Answer::new(0, 2, 0))
}

/// The inner handler's body: a provider call of 400 ms.
pub async fn nested_call() -> Result<Json<Value>, ApiError> {
    let answer = call_nested(400).await?;
    Ok(Json(json!({ "tokens": answer.tokens })))
}

/// Shape 7b: `outer` serves a handler awaiting the `#[perf_endpoint(inner)]` fn of
/// [`nested_call`]: one request.
pub async fn an_endpoint_awaited_inside_a_request_is_that_request(
    served: Served,
    outer: &str,
    inner: &str,
) {
    served.post_ok(outer).await;
    let numbers = &served.numbers;
    let outer_outcomes = numbers.ended(outer, 1).await;
    let (overheads, overhead) =
        numbers.histogram("gateway_overhead_seconds", &[("endpoint", outer)]);
    assert_eq!(
        (
            outer_outcomes,
            numbers.outcomes(inner),
            overheads,
            overhead < 0.1
        ),
        (Outcomes::new(1, 0, 0), Outcomes::default(), 1, true),
        "(outcomes of {outer}, of {inner}, overhead count and < 0.1 s of {outer}): one request, \
         the one the client made, whose 400 ms wait for the provider is not overhead \
         ({overhead} s)"
    );
}
